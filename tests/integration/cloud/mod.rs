//! The cloud behind end-to-end tests: by default the Nova simulator run as
//! its own process (`novabmc nova-simulator`) and driven through its
//! `/_sim/` control API; opt-in, a real cloud named by `OS_CLOUD` with
//! disposable servers listed in `NOVABMC_E2E_SERVERS`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::unique_loopback;

/// A simulator process and its control API.
pub struct Sim {
    child: Child,
    /// `http://host:port`.
    pub base: String,
    /// clouds.yaml naming the simulator as cloud `sim`.
    pub clouds_yaml: PathBuf,
    dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Sim {
    /// Starts a simulator with fast but realistic transitions.
    pub fn start() -> Sim {
        Sim::start_on(unique_loopback(), &[])
    }

    /// Starts a simulator listening on `ip`, with more `nova-simulator`
    /// arguments (`--console-cert`...).
    pub fn start_on(ip: std::net::Ipv4Addr, args: &[&std::ffi::OsStr]) -> Sim {
        let dir = tempfile::tempdir().expect("dir");
        let listen = SocketAddr::from((ip, 5000));
        let clouds_yaml = dir.path().join("clouds.yaml");
        let log = std::fs::File::create(dir.path().join("sim.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_novabmc"))
            .args([
                "nova-simulator",
                "--listen",
                &listen.to_string(),
                "--clouds-yaml",
            ])
            .arg(&clouds_yaml)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start simulator");
        let sim = Sim {
            child,
            base: format!("http://{listen}"),
            clouds_yaml,
            dir,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while sim
            .http
            .get(format!("{}/_sim/faults", sim.base))
            .send()
            .is_err()
        {
            assert!(Instant::now() < deadline, "simulator did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        sim.put(
            "timings",
            json!({"start_ms": 300, "stop_ms": 200, "reboot_ms": 300, "rebuild_ms": 400, "rescue_ms": 300}),
        );
        sim
    }

    fn put(&self, what: &str, body: Value) {
        let r = self
            .http
            .put(format!("{}/_sim/{what}", self.base))
            .json(&body)
            .send()
            .expect("control request");
        assert!(r.status().is_success(), "PUT {what}: {}", r.status());
    }

    /// Adds a server; returns its UUID.
    pub fn add_server(&self, name: &str, on: bool) -> String {
        let r: Value = self
            .http
            .post(format!("{}/_sim/servers", self.base))
            .json(&json!({"name": name, "on": on}))
            .send()
            .expect("add server")
            .json()
            .expect("json");
        r["id"].as_str().expect("id").to_string()
    }

    /// Adds a server from a full control-API spec (`name`, `image`,
    /// `flavor`, `volume_gb` for a server booted from a volume, `ports`,
    /// `on`, `id`); returns its UUID.
    pub fn add_server_spec(&self, spec: Value) -> String {
        self.create("servers", &spec)
    }

    /// Adds an image with `hw_firmware_type` and other properties
    /// (`{"hw_architecture": "aarch64"}`); returns its ID.
    pub fn add_image(&self, name: &str, firmware: Option<&str>, properties: Value) -> String {
        self.create(
            "images",
            &json!({"name": name, "hw_firmware_type": firmware, "properties": properties}),
        )
    }

    /// Adds a flavor.
    pub fn add_flavor(&self, id: &str, vcpus: u32, ram_mb: u32, disk_gb: u32) {
        self.create(
            "flavors",
            &json!({"id": id, "name": id, "vcpus": vcpus, "ram": ram_mb, "disk": disk_gb}),
        );
    }

    /// POSTs to the control API and returns the new object's ID.
    fn create(&self, what: &str, body: &Value) -> String {
        let r = self
            .http
            .post(format!("{}/_sim/{what}", self.base))
            .json(body)
            .send()
            .expect("control request");
        let status = r.status();
        let v: Value = r.json().expect("json");
        assert!(status.is_success(), "POST {what} {body}: {status} {v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Deletes a server.
    pub fn delete_server(&self, id: &str) {
        self.http
            .delete(format!("{}/_sim/servers/{id}", self.base))
            .send()
            .expect("delete");
    }

    /// Every simulator record, deleted servers included.
    pub fn records(&self) -> Vec<Value> {
        let mut r: Value = self
            .http
            .get(format!("{}/_sim/servers", self.base))
            .send()
            .expect("servers")
            .json()
            .expect("json");
        match r["servers"].take() {
            Value::Array(v) => v,
            other => panic!("servers is not an array: {other}"),
        }
    }

    /// A server's simulator record (status, boots, nmis, metadata...).
    pub fn server(&self, name: &str) -> Value {
        self.records()
            .into_iter()
            .find(|s| s["name"] == name && s["deleted"] == false)
            .unwrap_or_else(|| panic!("no server {name}"))
    }

    /// Settled status (ACTIVE, SHUTOFF, RESCUE...).
    pub fn status(&self, name: &str) -> String {
        let s = self.server(name);
        s["stable"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Sets faults.
    pub fn faults(&self, body: Value) {
        self.put("faults", body);
    }

    /// Sets the transition timings (`start_ms`, `stop_ms`, `reboot_ms`,
    /// `rebuild_ms`, `rescue_ms`).
    pub fn timings(&self, body: Value) {
        self.put("timings", body);
    }

    /// Transitions as long as a real cloud's (seconds), so that commands
    /// arrive while Nova is still busy with the last one.
    pub fn realistic_timings(&self) {
        self.timings(json!({"start_ms": 8000, "stop_ms": 8000, "reboot_ms": 8000,
            "rebuild_ms": 10000, "rescue_ms": 8000}));
    }

    /// Writes image `image` to a server's disk, as an Ironic or MAAS
    /// deployment does once the server has booted from the network.
    pub fn deploy(&self, id: &str, image: &str) {
        let r = self
            .http
            .post(format!("{}/_sim/servers/{id}/deploy", self.base))
            .json(&json!({"image": image}))
            .send()
            .expect("deploy");
        assert!(r.status().is_success(), "deploy: {}", r.status());
    }

    /// The ID of an image, by name.
    pub fn image_id(&self, name: &str) -> String {
        let r: Value = self
            .http
            .get(format!("{}/_sim/images", self.base))
            .send()
            .expect("images")
            .json()
            .expect("json");
        r["images"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["name"] == name))
            .and_then(|i| i["id"].as_str())
            .unwrap_or_else(|| panic!("no image {name}: {r}"))
            .to_string()
    }

    /// Makes a server's guest halt by itself.
    pub fn halt(&self, id: &str) {
        let r = self
            .http
            .post(format!("{}/_sim/servers/{id}/halt", self.base))
            .send()
            .expect("halt");
        assert!(r.status().is_success(), "halt: {}", r.status());
    }

    /// Invalidates every token.
    pub fn expire_tokens(&self) {
        self.http
            .post(format!("{}/_sim/expire-tokens", self.base))
            .send()
            .expect("expire");
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Value> {
        let r: Value = self
            .http
            .get(format!("{}/_sim/requests", self.base))
            .send()
            .expect("requests")
            .json()
            .expect("json");
        r["requests"].as_array().cloned().unwrap_or_default()
    }

    /// The actions Nova accepted for server `id`, in order (`os-start`,
    /// `reboot`...); refused or failed attempts are not counted.
    pub fn actions(&self, id: &str) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("{id}/action")))
            })
            .filter(|r| {
                r["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .filter_map(|r| r["body"].as_object().and_then(|o| o.keys().next().cloned()))
            .collect()
    }

    /// The `[backend]` section for this simulator, keeping pending work in
    /// a state directory of the simulator's (so a restarted daemon finds it).
    /// The simulator's serial consoles are plain `ws://` on loopback, which
    /// the section allows.
    pub fn backend_toml(&self, network_boot: &str) -> String {
        self.backend_toml_in(network_boot, &self.dir.path().join("state"))
    }

    /// Like [`Sim::backend_toml`], with the state directory `state_dir`.
    pub fn backend_toml_in(&self, network_boot: &str, state_dir: &std::path::Path) -> String {
        format!(
            "{}allow_plain_console = true\n",
            self.backend_section(network_boot, &self.clouds_yaml, state_dir)
        )
    }

    /// The `[backend]` section (rebuild) with the cloud's `cacert` set
    /// to `cacert` in a clouds.yaml of its own, and `allow_plain_console`
    /// as given (absent with `None`).
    pub fn backend_toml_trusting(
        &self,
        cacert: Option<&std::path::Path>,
        allow_plain_console: Option<bool>,
    ) -> String {
        let mut yaml = std::fs::read_to_string(&self.clouds_yaml).expect("clouds.yaml");
        if let Some(ca) = cacert {
            yaml.push_str(&format!("    cacert: {}\n", ca.display()));
        }
        static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.dir.path().join(format!("clouds-{n}.yaml"));
        std::fs::write(&file, yaml).expect("write clouds.yaml");
        let mut t = self.backend_section("rebuild", &file, &self.state_dir());
        if let Some(allow) = allow_plain_console {
            t.push_str(&format!("allow_plain_console = {allow}\n"));
        }
        t
    }

    fn backend_section(
        &self,
        network_boot: &str,
        clouds_yaml: &std::path::Path,
        state_dir: &std::path::Path,
    ) -> String {
        format!(
            "[backend]\ntype = \"nova\"\ncloud = \"sim\"\nclouds_yaml = \"{}\"\nrefresh_secs = 1\nnetwork_boot = \"{network_boot}\"\nipxe_image = \"ipxe-boot\"\nstate_dir = \"{}\"\n",
            clouds_yaml.display(),
            state_dir.display()
        )
    }

    /// The state directory of [`Sim::backend_toml`].
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The simulator's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sim.log")).unwrap_or_default()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon configuration for the given nodes (name, server) on one
/// address, with the standard test users.
pub fn config(
    backend: &str,
    address: std::net::Ipv4Addr,
    nodes: &[(&str, &str)],
    extra_node: &str,
) -> (String, Vec<SocketAddr>) {
    let mut t = String::from(
        "[users.admin]\npassword = \"password\"\n[users.operator]\npassword = \"op-secret\"\nprivilege = \"operator\"\n",
    );
    t.push_str(backend);
    let mut addrs = Vec::new();
    for (i, (name, server)) in nodes.iter().enumerate() {
        let port = 6230 + i as u16;
        t.push_str(&format!(
            "[nodes.{name}]\naddress = \"{address}\"\nport = {port}\nserver = \"{server}\"\n{extra_node}\n"
        ));
        addrs.push(SocketAddr::from((address, port)));
    }
    (t, addrs)
}

/// A real cloud, for the opt-in runs: `NOVABMC_E2E_CLOUD` names it in
/// clouds.yaml, `NOVABMC_E2E_SERVERS` lists disposable servers (names or
/// UUIDs, comma separated) and `NOVABMC_E2E_IPXE_IMAGE` the iPXE image.
pub struct Real {
    state: tempfile::TempDir,
    cloud: String,
    servers: Vec<String>,
    ipxe_image: String,
    client: novabmc::backend::nova::client::NovaClient,
    runtime: tokio::runtime::Runtime,
}

impl Real {
    fn from_env() -> Option<Real> {
        let cloud = std::env::var("NOVABMC_E2E_CLOUD").ok()?;
        let servers: Vec<String> = std::env::var("NOVABMC_E2E_SERVERS")
            .expect("NOVABMC_E2E_SERVERS must list disposable servers")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let ipxe_image = std::env::var("NOVABMC_E2E_IPXE_IMAGE")
            .expect("NOVABMC_E2E_IPXE_IMAGE must name the iPXE image");
        let source = novabmc::backend::nova::cloud::CloudSource::Named {
            name: cloud.clone(),
            file: None,
        };
        let config = novabmc::backend::nova::cloud::load(&source).expect("cloud configuration");
        Some(Real {
            state: tempfile::tempdir().expect("state dir"),
            cloud,
            servers,
            ipxe_image,
            client: novabmc::backend::nova::client::NovaClient::new(
                config,
                Duration::from_secs(60),
            ),
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
        })
    }

    fn server(&self, id: &str) -> novabmc::backend::nova::client::ServerInfo {
        self.runtime
            .block_on(self.client.get_server(id))
            .expect("get server")
    }
}

/// The cloud an end-to-end test runs against.
pub enum TestCloud {
    /// The simulator (default).
    Sim(Sim),
    /// A real cloud (opt-in); boxed, it holds a runtime.
    Real(Box<Real>),
}

/// A server a test uses: the name a node refers to, and its UUID.
#[derive(Clone, Debug)]
pub struct TestServer {
    /// Name or reference for `server =`.
    pub reference: String,
    /// UUID.
    pub id: String,
}

impl TestCloud {
    /// The simulator unless the environment names a real cloud.
    pub fn from_env() -> TestCloud {
        match Real::from_env() {
            Some(r) => TestCloud::Real(Box::new(r)),
            None => TestCloud::Sim(Sim::start()),
        }
    }

    /// The simulator, if that is what runs.
    pub fn sim(&self) -> Option<&Sim> {
        match self {
            TestCloud::Sim(s) => Some(s),
            TestCloud::Real(_) => None,
        }
    }

    /// The `[backend]` section.
    pub fn backend_toml(&self, network_boot: &str) -> String {
        match self {
            TestCloud::Sim(s) => s.backend_toml(network_boot),
            TestCloud::Real(r) => format!(
                "[backend]\ntype = \"nova\"\ncloud = \"{}\"\nrefresh_secs = 5\nnetwork_boot = \"{network_boot}\"\nipxe_image = \"{}\"\nstate_dir = \"{}\"\n",
                r.cloud,
                r.ipxe_image,
                r.state.path().display()
            ),
        }
    }

    /// `n` servers in the given power state, named with `prefix` in the
    /// simulator; the first `n` listed ones in a real cloud.
    pub fn servers(&self, prefix: &str, n: usize, on: bool) -> Vec<TestServer> {
        match self {
            TestCloud::Sim(s) => (0..n)
                .map(|i| {
                    let name = format!("{prefix}-{i}");
                    let id = s.add_server(&name, on);
                    TestServer {
                        reference: name,
                        id,
                    }
                })
                .collect(),
            TestCloud::Real(r) => {
                assert!(
                    r.servers.len() >= n,
                    "NOVABMC_E2E_SERVERS lists fewer than {n} servers"
                );
                r.servers[..n]
                    .iter()
                    .map(|reference| {
                        let info = r.server(reference);
                        let want = if on { "ACTIVE" } else { "SHUTOFF" };
                        if info.status != want {
                            use novabmc::backend::nova::client::ServerAction;
                            let action = if on {
                                ServerAction::Start
                            } else {
                                ServerAction::Stop
                            };
                            let _ = r.runtime.block_on(r.client.act(&info.id, &action));
                        }
                        let s = TestServer {
                            reference: info.id.clone(),
                            id: info.id,
                        };
                        crate::common::eventually("server in its starting state", || {
                            self.status(&s.id) == want && !self.busy(&s.id)
                        });
                        s
                    })
                    .collect()
            }
        }
    }

    fn sim_record(s: &Sim, id: &str) -> Value {
        s.records()
            .into_iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("no server {id}"))
    }

    /// The settled (or current, for a real cloud) status.
    pub fn status(&self, id: &str) -> String {
        match self {
            TestCloud::Sim(s) => Self::sim_record(s, id)["stable"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            TestCloud::Real(r) => r.server(id).status.to_string(),
        }
    }

    /// Whether a transition is under way.
    pub fn busy(&self, id: &str) -> bool {
        match self {
            TestCloud::Sim(s) => Self::sim_record(s, id)["busy"] == true,
            TestCloud::Real(r) => r.server(id).task_state.is_some(),
        }
    }

    /// Waits until the server is in `status` with no task.
    pub fn wait_for(&self, id: &str, status: &str) {
        crate::common::eventually(&format!("{id} {status}"), || {
            !self.busy(id) && self.status(id) == status
        });
    }

    /// The server's metadata.
    pub fn metadata(&self, id: &str) -> HashMapStrings {
        match self {
            TestCloud::Sim(s) => {
                serde_json::from_value(Self::sim_record(s, id)["metadata"].clone())
                    .unwrap_or_default()
            }
            TestCloud::Real(r) => r.server(id).metadata,
        }
    }

    /// Nova actions sent for the server, where they can be seen.
    pub fn actions(&self, id: &str) -> Option<Vec<String>> {
        self.sim().map(|s| s.actions(id))
    }

    /// What the simulated guest booted, in order (`disk`, `network`,
    /// `rescue`).
    pub fn boots(&self, id: &str) -> Option<Vec<String>> {
        self.sim().map(|s| {
            Self::sim_record(s, id)["boots"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .filter_map(|x| x["from"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        })
    }
}

/// Metadata as a map.
pub type HashMapStrings = std::collections::HashMap<String, String>;

/// The nodes with a power operation acknowledged and not yet carried out,
/// as the daemon's state directory shows them (it writes a node's file
/// before answering a command and removes the power part once Nova is
/// there).
pub fn pending_power(state_dir: &std::path::Path) -> Vec<String> {
    let Ok(list) = std::fs::read_dir(state_dir.join("nodes")) else {
        return Vec::new();
    };
    list.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(|v| !v["power"].is_null())
        .filter_map(|v| v["node"].as_str().map(str::to_string))
        .collect()
}

/// Whether `calls` are one reboot of a running server from disk, as
/// convergent commands make Ironic's "off, then on": a stop and a start
/// when the stop went out before the "on" arrived, else a hard reboot (and
/// for a rescued server, the unrescue that boots its disk, possibly
/// followed by either).
pub fn is_one_disk_reboot(calls: &[String]) -> bool {
    let calls: Vec<&str> = calls.iter().map(String::as_str).collect();
    let rest = match calls.split_first() {
        Some((&"unrescue", rest)) => {
            if rest.is_empty() {
                return true;
            }
            rest
        }
        _ => &calls[..],
    };
    matches!(rest, ["reboot"] | ["os-stop", "os-start"])
}

impl TestCloud {
    /// Where the daemons of [`TestCloud::backend_toml`] keep pending work.
    pub fn state_dir(&self) -> PathBuf {
        match self {
            TestCloud::Sim(s) => s.state_dir(),
            TestCloud::Real(r) => r.state.path().to_path_buf(),
        }
    }

    /// Waits until the daemon has carried out everything acknowledged and
    /// Nova has finished with server `id`.
    pub fn wait_settled(&self, id: &str) {
        let dir = self.state_dir();
        crate::common::eventually("pending work carried out", || {
            pending_power(&dir).is_empty() && !self.busy(id)
        });
    }
}
