//! `novabmc network apply | show | destroy` against the simulator's
//! Neutron, Nova and Glance, from an empty simulated project.
//!
//! The end-to-end tests build the routing tests' lab (a BMC host, a
//! router that drops spoofed sources on every BMC port, a client) and
//! play the hypervisor: when Nova attaches a port to the BMC server, a NIC
//! with that port's MAC appears in the BMC namespace, wired to the router,
//! whose anti-spoofing allows what Neutron says the port may send (its
//! fixed IPs and allowed address pairs). `novabmc` runs inside the BMC
//! namespace and reaches the simulator (on the host's loopback) through a
//! socat relay over a Unix socket, since a namespace's loopback is its
//! own. `serve` runs there (in layout (b) from before the apply, and a
//! reload picks up the routes file the apply wrote), and ipmitool from
//! the client reaches every node; `destroy` leaves nothing of novabmc's,
//! asserted through the simulator's API.
//!
//! The other tests run `novabmc network` outside the BMC instance (no
//! local NIC has its ports' MACs), where only the cloud side is done: a
//! second apply makes no mutating call, `--dry-run` makes none, a quota
//! refusal stops a run halfway naming the limit and the next run
//! finishes without making anything twice, and a cloud without allowed
//! address pairs gets a clear message.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cloud::Sim;
use crate::common::{self, Out};
use crate::netns::{self, Lab, NsDaemon, ip, ipmitool};

/// The simulator's credentials (novasim's defaults).
const USER: (&str, &str, &str) = ("novabmc", "novabmc-secret", "baremetal");

/// The cloud's API as an operator (or the test) uses it.
struct Api {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn new(sim: &Sim) -> Api {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .expect("client");
        let r = http
            .post(format!("{}/identity/v3/auth/tokens", sim.base))
            .json(
                &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": USER.0, "password": USER.1, "domain": {"name": "Default"}}}},
                "scope": {"project": {"name": USER.2, "domain": {"name": "Default"}}}}}),
            )
            .send()
            .expect("token");
        let token = r.headers()["x-subject-token"]
            .to_str()
            .expect("token")
            .to_string();
        Api {
            base: sim.base.clone(),
            token,
            http,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("x-auth-token", &self.token);
        if let Some(b) = &body {
            r = r.json(b);
        }
        let r = r.send().expect("request");
        let status = r.status();
        let text = r.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "{method} {path} {body:?}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    /// A network with one IPv4 subnet; its ID and the subnet's.
    fn network(&self, name: &str, cidr: &str) -> (String, String) {
        let n = self.post("/network/v2.0/networks", json!({"network": {"name": name}}));
        let net = n["network"]["id"].as_str().expect("id").to_string();
        let s = self.post(
            "/network/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4, "name": name}}),
        );
        (net, s["subnet"]["id"].as_str().expect("id").to_string())
    }

    /// A port with `address`, attached to `server`; its MAC.
    fn attached_port(&self, server: &str, net: &str, address: &str) -> (String, String) {
        let p = self.post(
            "/network/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": [{"ip_address": address}]}}),
        );
        let id = p["port"]["id"].as_str().expect("id").to_string();
        self.post(
            &format!("/compute/v2.1/servers/{server}/os-interface"),
            json!({"interfaceAttachment": {"port_id": id}}),
        );
        (
            id,
            p["port"]["mac_address"].as_str().expect("mac").to_string(),
        )
    }
}

/// Every Neutron resource, as `GET /_sim/neutron/resources` shows them.
fn resources(sim: &Sim) -> Value {
    reqwest::blocking::get(format!("{}/_sim/neutron/resources", sim.base))
        .expect("resources")
        .json()
        .expect("json")
}

fn put_control(sim: &Sim, what: &str, body: Value) {
    let r = reqwest::blocking::Client::new()
        .put(format!("{}/_sim/{what}", sim.base))
        .json(&body)
        .send()
        .expect("control");
    assert!(r.status().is_success(), "{what}: {}", r.status());
}

fn clear_requests(sim: &Sim) {
    reqwest::blocking::Client::new()
        .delete(format!("{}/_sim/requests", sim.base))
        .send()
        .expect("clear");
}

/// The requests that change the network side of the cloud: not reads,
/// not Keystone, and not the server actions and metadata writes a running
/// `serve` makes.
fn mutations(sim: &Sim) -> Vec<String> {
    sim.requests()
        .iter()
        .filter(|r| r["method"] != "GET" && r["method"] != "HEAD")
        .filter(|r| {
            r["path"].as_str().is_some_and(|p| {
                !p.starts_with("/identity")
                    && !p.starts_with("/_sim")
                    && !p.ends_with("/action")
                    && !p.contains("/metadata")
            })
        })
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect()
}

/// What is left of novabmc's in the cloud: resources tagged or described
/// as its, router interfaces on its subnets, its images.
fn leftovers(sim: &Sim) -> Vec<String> {
    let all = resources(sim);
    let mut left = Vec::new();
    let ours = |r: &Value| {
        r["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "novabmc"))
            || r["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("novabmc"))
            || r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("novabmc-"))
    };
    for kind in ["networks", "subnets", "ports", "routers"] {
        for r in all[kind].as_array().into_iter().flatten() {
            if ours(r) {
                left.push(format!("{kind} {} {}", r["name"], r["id"]));
            }
        }
    }
    let images: Value = reqwest::blocking::get(format!("{}/_sim/images", sim.base))
        .expect("images")
        .json()
        .expect("json");
    for i in images["images"].as_array().into_iter().flatten() {
        if i["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "novabmc"))
        {
            left.push(format!("image {}", i["name"]));
        }
    }
    left
}

/// A config for the simulator with `[network]` and the nodes.
fn config(sim: &Sim, dir: &Path, network: &str, nodes: &[(&str, &str)]) -> PathBuf {
    let mut t = format!(
        "[users.{}]\npassword = \"{}\"\n{}[network]\n{network}\n",
        common::ADMIN.0,
        common::ADMIN.1,
        sim.backend_toml_in("rescue", &dir.join("state")),
    );
    for (name, address) in nodes {
        t.push_str(&format!("[nodes.{name}]\naddress = \"{address}\"\n"));
    }
    common::write_file(dir, "novabmc.toml", &t)
}

/// `novabmc ARGS` on the host.
fn novabmc(args: &[&str]) -> Out {
    Out::collect(
        Command::new(env!("CARGO_BIN_EXE_novabmc")).args(args),
        "run novabmc",
    )
}

/// An iPXE "image" file to upload (its content is not booted here).
fn ipxe_file(dir: &Path) -> PathBuf {
    let path = dir.join("ipxe.iso");
    std::fs::write(&path, b"iPXE test image, not bootable\n".repeat(100)).expect("ipxe");
    path
}

// ----- the lab ------------------------------------------------------------------

/// The BMC lab: namespaces, the API relay into the BMC namespace, the BMC
/// server and its management port.
struct Lab2 {
    lab: Lab,
    bmc: String,
    rtr: String,
    cli: String,
    relays: Vec<Child>,
    bmc_server: String,
    /// Ports already given a NIC, by ID.
    plugged: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for Lab2 {
    fn drop(&mut self) {
        for mut c in self.relays.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Lab2 {
    /// The namespaces, the relay, the client behind the router, and the
    /// BMC server with a port on `mgmt` (10.77.0.0/24), whose NIC is the
    /// BMC host's main route.
    fn new(sim: &Sim, api: &Api) -> Lab2 {
        common::require_tool("socat");
        let mut lab = Lab::new();
        let bmc = lab.host("bmc");
        let rtr = lab.host("rtr");
        let cli = lab.host("cli");
        lab.sysctl(&rtr, "net.ipv4.ip_forward=1");
        lab.sysctl(&rtr, "net.ipv6.conf.all.forwarding=1");
        lab.sysctl(&bmc, "net.ipv4.conf.all.rp_filter=2");
        let dir = tempfile::tempdir().expect("dir");
        let relays = relay(sim, &bmc, dir.path());
        let bmc_server = sim.add_server_spec(json!({"name": "bmc", "ports": 0, "on": true}));
        let (mgmt, _) = api.network("mgmt", "10.77.0.0/24");
        let (port, mac) = api.attached_port(&bmc_server, &mgmt, "10.77.0.10");
        let mut l = Lab2 {
            lab,
            bmc,
            rtr,
            cli,
            relays,
            bmc_server,
            plugged: vec![port],
            dir,
        };
        let m = l.nic(&mac, "m0", "10.77.0.1/24", &["10.77.0.10"]);
        ip(&["-n", &l.bmc, "addr", "add", "10.77.0.10/24", "dev", &m]);
        ip(&["-n", &l.bmc, "link", "set", &m, "up"]);
        ip(&["-n", &l.bmc, "route", "add", "default", "via", "10.77.0.1"]);
        let (c, r) = (l.lab.ifname("c9"), l.lab.ifname("r9"));
        l.lab.wire(&l.cli, &c, &l.rtr, &r);
        ip(&["-n", &l.cli, "addr", "add", "10.77.9.20/24", "dev", &c]);
        ip(&["-n", &l.rtr, "addr", "add", "10.77.9.1/24", "dev", &r]);
        ip(&["-n", &l.cli, "route", "add", "default", "via", "10.77.9.1"]);
        ip(&[
            "-n",
            &l.cli,
            "addr",
            "add",
            "fd77:9::20/64",
            "dev",
            &c,
            "nodad",
        ]);
        ip(&[
            "-n",
            &l.rtr,
            "addr",
            "add",
            "fd77:9::1/64",
            "dev",
            &r,
            "nodad",
        ]);
        ip(&[
            "-n",
            &l.cli,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd77:9::1",
        ]);
        l
    }

    /// A NIC with `mac` in the BMC namespace (left down, as a hot-plugged
    /// NIC appears), wired to the router, which holds `gateway` on it and
    /// forwards from it only packets from `allowed`; the BMC side's name.
    fn nic(&mut self, mac: &str, base: &str, gateway: &str, allowed: &[&str]) -> String {
        let (b, r) = (self.lab.ifname(base), self.lab.ifname(&format!("r{base}")));
        ip(&[
            "-n", &self.bmc, "link", "add", &b, "address", mac, "type", "veth", "peer", "name", &r,
            "netns", &self.rtr,
        ]);
        ip(&["-n", &self.rtr, "link", "set", &r, "up"]);
        if gateway.contains(':') {
            ip(&["-n", &self.rtr, "addr", "add", gateway, "dev", &r, "nodad"]);
        } else {
            ip(&["-n", &self.rtr, "addr", "add", gateway, "dev", &r]);
        }
        self.allow(&r, allowed);
        b
    }

    /// The router's anti-spoofing on its side `r` of a BMC port.
    fn allow(&self, r: &str, allowed: &[&str]) {
        for family in ["-4", "-6"] {
            let _ = Command::new("ip")
                .args([
                    "-n",
                    &self.rtr,
                    family,
                    "rule",
                    "del",
                    "iif",
                    r,
                    "blackhole",
                ])
                .args(["pref", "200"])
                .stderr(Stdio::null())
                .status();
        }
        for src in allowed {
            let family = if src.contains(':') { "-6" } else { "-4" };
            ip(&[
                "-n", &self.rtr, family, "rule", "add", "iif", r, "from", src, "lookup", "main",
                "pref", "100",
            ]);
        }
        for family in ["-4", "-6"] {
            ip(&[
                "-n",
                &self.rtr,
                family,
                "rule",
                "add",
                "iif",
                r,
                "blackhole",
                "pref",
                "200",
            ]);
        }
    }

    /// Plays the hypervisor: a NIC for every port newly attached to the
    /// BMC server, with the router's side holding the subnet's gateway.
    fn hot_plug(&mut self, sim: &Sim) -> usize {
        let all = resources(sim);
        let ports: Vec<Value> = all["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["device_id"] == self.bmc_server.as_str())
            .filter(|p| {
                !self
                    .plugged
                    .iter()
                    .any(|x| p["id"].as_str() == Some(x.as_str()))
            })
            .collect();
        for p in &ports {
            let mac = p["mac_address"].as_str().expect("mac").to_string();
            let fixed = p["fixed_ips"][0]["ip_address"].as_str().expect("ip");
            let subnet_id = p["fixed_ips"][0]["subnet_id"].as_str().expect("subnet");
            let subnet = all["subnets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["id"] == subnet_id)
                .expect("subnet");
            let prefix = subnet["cidr"]
                .as_str()
                .and_then(|c| c.split_once('/'))
                .map(|(_, l)| l.to_string())
                .expect("prefix");
            let gateway = format!("{}/{prefix}", subnet["gateway_ip"].as_str().expect("gw"));
            let n = self.plugged.len();
            let fixed = fixed.to_string();
            self.nic(&mac, &format!("n{n}"), &gateway, &[&fixed]);
            self.plugged.push(p["id"].as_str().expect("id").to_string());
        }
        ports.len()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Layout (a)'s setting: the operator's BMC network `bmc-net`
    /// (10.77.1.0/24) with the BMC instance's port on it (10.77.1.5), its
    /// NIC up and carrying the main route; the port's ID and the NIC.
    fn bmc_network(&mut self, api: &Api) -> (String, String) {
        let (net, _) = api.network("bmc-net", "10.77.1.0/24");
        let (port, mac) = api.attached_port(&self.bmc_server, &net, "10.77.1.5");
        self.plugged.push(port.clone());
        let b1 = self.nic(&mac, "b1", "10.77.1.1/24", &["10.77.1.5"]);
        ip(&["-n", &self.bmc, "addr", "add", "10.77.1.5/24", "dev", &b1]);
        ip(&["-n", &self.bmc, "link", "set", &b1, "up"]);
        ip(&[
            "-n",
            &self.bmc,
            "route",
            "replace",
            "default",
            "via",
            "10.77.1.1",
            "dev",
            &b1,
        ]);
        (port, b1)
    }
}

/// socat relays: the host end takes connections on a Unix socket to the
/// simulator; the BMC namespace's end listens on the simulator's own
/// loopback address there, so the clouds.yaml and the catalog's URLs work
/// unchanged inside.
fn relay(sim: &Sim, bmc: &str, dir: &Path) -> Vec<Child> {
    let sock = dir.join("api.sock");
    let hostport = sim.base.trim_start_matches("http://").to_string();
    let (host, port) = hostport.rsplit_once(':').expect("host:port");
    let outer = Command::new("socat")
        .arg(format!("UNIX-LISTEN:{},fork", sock.display()))
        .arg(format!("TCP:{hostport}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "socat made no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let inner = Command::new("ip")
        .args(["netns", "exec", bmc, "socat"])
        .arg(format!("TCP-LISTEN:{port},bind={host},fork,reuseaddr"))
        .arg(format!("UNIX-CONNECT:{}", sock.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat in the namespace");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = netns::exec(
            bmc,
            "socat",
            &["-u", "OPEN:/dev/null", &format!("TCP:{host}:{port}")],
        );
        if out.code == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay into {bmc} never listened: {out:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    vec![outer, inner]
}

/// `novabmc network apply` in the BMC namespace, playing the hypervisor
/// while it waits for the NICs; its output.
fn apply_in_lab(l: &mut Lab2, sim: &Sim, config: &Path) -> Out {
    let stdout = l.path("apply.out");
    let stderr = l.path("apply.err");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &l.bmc, env!("CARGO_BIN_EXE_novabmc")])
        .args(["network", "apply", "--wait-secs", "30", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("out"))
        .stderr(std::fs::File::create(&stderr).expect("err"))
        .spawn()
        .expect("apply");
    let started = Instant::now();
    let status = loop {
        l.hot_plug(sim);
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("apply did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Out {
        code: status.code(),
        stdout: std::fs::read_to_string(&stdout).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

fn serve_and_reach(l: &Lab2, config: &Path, addresses: &[&str]) {
    let mut d = NsDaemon::start(&l.bmc, config, &l.path("serve.log"));
    d.wait_log(&["serving"]);
    reach(l, &d, addresses);
    assert_eq!(d.stop(), Some(0), "{}", d.log());
}

/// ipmitool from the client gets every address's power state.
fn reach(l: &Lab2, d: &NsDaemon, addresses: &[&str]) {
    for a in addresses {
        // The node's server is found within a refresh or two.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = ipmitool(&l.cli, a, 623, &["power", "status"]);
            if out.code == Some(0) && out.stdout.contains("Chassis Power is") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{a} unreachable from the client: {out:#?}\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

// ----- tests ------------------------------------------------------------------------

#[test]
fn nic_per_node_from_an_empty_project_to_ipmi_and_back() {
    let started = Instant::now();
    let sim = Sim::start();
    let api = Api::new(&sim);
    let mut l = Lab2::new(&sim, &api);
    for n in ["node-1", "node-2", "node-3"] {
        sim.add_server(n, true);
    }
    let ipxe = ipxe_file(l.dir.path());
    let sg = api.post(
        "/network/v2.0/security-groups",
        json!({"security_group": {"name": "bmc-sg"}}),
    )["security_group"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = config(
        &sim,
        l.dir.path(),
        &format!(
            "layout = \"nic-per-node\"\nbmc_server = \"bmc\"\nrouter = \"bmc-router\"\n\
             security_groups = [\"bmc-sg\"]\n\
             [network.images.ipxe-net]\nfile = \"{}\"\nfirmware = \"uefi\"\n",
            ipxe.display()
        ),
        &[
            ("node-1", "10.77.1.10"),
            ("node-2", "10.77.2.10"),
            ("node-3", "fd77:3::10"),
        ],
    );
    let cfg = path.to_str().expect("utf-8");
    // serve runs before the network exists, as on a BMC instance that
    // starts it at boot; a reload after apply brings the routes.
    let mut d = NsDaemon::start(&l.bmc, &path, &l.path("serve.log"));
    d.wait_log(&["serving"]);

    // A dry run prints the calls and makes none.
    clear_requests(&sim);
    let dry = netns::novabmc(&l.bmc, &["network", "apply", "--dry-run", "--config", cfg]);
    assert_eq!(dry.code, Some(0), "{dry:#?}");
    for needle in [
        "would create network novabmc-bmc-node-1: POST network /networks",
        "would attach port novabmc-bmc-node-2 to server bmc",
        "would upload",
    ] {
        assert!(dry.stdout.contains(needle), "{needle}: {}", dry.stdout);
    }
    assert_eq!(mutations(&sim), Vec::<String>::new(), "{}", dry.stdout);

    let first = apply_in_lab(&mut l, &sim, &path);
    assert_eq!(first.code, Some(0), "{first:#?}");
    eprintln!("{}", first.stdout);
    let routes = std::fs::read_to_string(l.dir.path().join("state/network-routes.toml"))
        .expect("routes file");
    assert!(
        routes.contains("[nodes.\"node-1\".route]\ntable = 1000\ngateway = \"10.77.1.1\""),
        "{routes}"
    );
    let node_ports: Vec<Value> = resources(&sim)["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("novabmc-bmc-node-"))
        })
        .cloned()
        .collect();
    assert_eq!(node_ports.len(), 3);
    for p in &node_ports {
        assert_eq!(p["security_groups"], json!([sg]), "{p}");
        assert_eq!(
            p["tags"],
            json!(["novabmc", "novabmc:bmc"]),
            "tagged as novabmc's: {p}"
        );
    }
    assert!(
        routes.contains("[nodes.\"node-3\".route]\ntable = 1002\ngateway = \"fd77:3::1\""),
        "{routes}"
    );
    let addrs = netns::exec(&l.bmc, "ip", &["-o", "addr"]).stdout;
    for a in ["10.77.1.10/24", "10.77.2.10/24", "fd77:3::10/64"] {
        assert!(addrs.contains(a), "{a} not configured: {addrs}");
    }
    let images: Value = reqwest::blocking::get(format!("{}/_sim/images", sim.base))
        .expect("images")
        .json()
        .expect("json");
    let uploaded = images["images"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == "ipxe-net")
        .expect("image uploaded");
    assert_eq!(uploaded["hw_firmware_type"], "uefi");
    assert_eq!(uploaded["status"], "active");

    // Applying again makes no mutating call; show finds everything.
    clear_requests(&sim);
    let second = netns::novabmc(&l.bmc, &["network", "apply", "--config", cfg]);
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert_eq!(mutations(&sim), Vec::<String>::new(), "{}", second.stdout);
    assert!(second.stdout.contains("nothing to do"), "{}", second.stdout);
    let show = netns::novabmc(&l.bmc, &["network", "show", "--config", cfg]);
    assert_eq!(show.code, Some(0), "{show:#?}");
    assert!(
        show.stdout.contains("everything is in place") && !show.stdout.contains("MISSING"),
        "{}",
        show.stdout
    );

    // A reload reads the routes file and installs the routes; every node
    // answers through a router that drops spoofed sources.
    d.hangup();
    d.wait_log(&["routes installed", "node-1"]);
    d.wait_log(&["routes installed", "node-2"]);
    d.wait_log(&["routes installed", "node-3"]);
    reach(&l, &d, &["10.77.1.10", "10.77.2.10", "fd77:3::10"]);
    assert_eq!(d.stop(), Some(0), "{}", d.log());

    // destroy leaves nothing of novabmc's.
    let gone = netns::novabmc(&l.bmc, &["network", "destroy", "--config", cfg]);
    assert_eq!(gone.code, Some(0), "{gone:#?}");
    assert_eq!(leftovers(&sim), Vec::<String>::new(), "{}", gone.stdout);
    let all = resources(&sim);
    assert!(
        all["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|p| p["device_owner"] != "network:router_interface"),
        "router interfaces left: {all}"
    );
    assert!(!l.dir.path().join("state/network-routes.toml").exists());
    let addrs = netns::exec(&l.bmc, "ip", &["-4", "-o", "addr"]).stdout;
    assert!(!addrs.contains("10.77.1.10"), "{addrs}");
    // The operator's management network and port are untouched.
    assert!(
        all["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["name"] == "mgmt"),
        "{all}"
    );
    eprintln!("wall time {:?}", started.elapsed());
}

#[test]
fn one_nic_from_an_empty_project_to_ipmi_and_back() {
    let started = Instant::now();
    let sim = Sim::start();
    let api = Api::new(&sim);
    let mut l = Lab2::new(&sim, &api);
    for n in ["node-1", "node-2"] {
        sim.add_server(n, true);
    }
    // The operator's BMC network and the BMC instance's port on it.
    let (port, b1) = l.bmc_network(&api);
    let path = config(
        &sim,
        l.dir.path(),
        "layout = \"one-nic\"\nbmc_server = \"bmc\"\nnetwork = \"bmc-net\"\n",
        &[("node-1", "10.77.1.11"), ("node-2", "10.77.1.12")],
    );
    let cfg = path.to_str().expect("utf-8");
    let first = apply_in_lab(&mut l, &sim, &path);
    assert_eq!(first.code, Some(0), "{first:#?}");
    let shown = api.call(
        reqwest::Method::GET,
        &format!("/network/v2.0/ports/{port}"),
        None,
    );
    let pairs: Vec<&str> = shown["port"]["allowed_address_pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .filter_map(|p| p["ip_address"].as_str())
        .collect();
    assert_eq!(pairs, vec!["10.77.1.11", "10.77.1.12"]);
    let addrs = netns::exec(&l.bmc, "ip", &["-4", "-o", "addr", "show", "dev", &b1]).stdout;
    for a in ["10.77.1.11/24", "10.77.1.12/24"] {
        assert!(addrs.contains(a), "{a}: {addrs}");
    }
    // The router now lets out what Neutron allows the port.
    let r1 = l.lab.ifname("rb1");
    l.allow(&r1, &["10.77.1.11", "10.77.1.12"]);

    clear_requests(&sim);
    let again = netns::novabmc(&l.bmc, &["network", "apply", "--config", cfg]);
    assert_eq!(again.code, Some(0), "{again:#?}");
    assert_eq!(mutations(&sim), Vec::<String>::new(), "{}", again.stdout);

    serve_and_reach(&l, &path, &["10.77.1.11", "10.77.1.12"]);

    let gone = netns::novabmc(&l.bmc, &["network", "destroy", "--config", cfg]);
    assert_eq!(gone.code, Some(0), "{gone:#?}");
    assert_eq!(leftovers(&sim), Vec::<String>::new(), "{}", gone.stdout);
    let shown = api.call(
        reqwest::Method::GET,
        &format!("/network/v2.0/ports/{port}"),
        None,
    );
    assert_eq!(shown["port"]["allowed_address_pairs"], json!([]));
    assert_eq!(shown["port"]["device_id"], l.bmc_server.as_str());
    let addrs = netns::exec(&l.bmc, "ip", &["-4", "-o", "addr", "show", "dev", &b1]).stdout;
    assert!(
        addrs.contains("10.77.1.5/24") && !addrs.contains("10.77.1.11"),
        "{addrs}"
    );
    eprintln!("wall time {:?}", started.elapsed());
}

/// Outside the BMC instance: a quota refusal halfway, named with its
/// limit; the next run finishes without making anything twice; the one
/// after makes no mutating call; a policy refusal and a cloud without
/// allowed address pairs are named too.
#[test]
fn quota_halfway_then_a_second_apply_finishes() {
    let sim = Sim::start();
    let api = Api::new(&sim);
    let dir = tempfile::tempdir().expect("dir");
    let bmc = sim.add_server_spec(json!({"name": "bmc", "ports": 0, "on": true}));
    let (mgmt, _) = api.network("mgmt", "10.78.0.0/24");
    api.attached_port(&bmc, &mgmt, "10.78.0.10");
    let path = config(
        &sim,
        dir.path(),
        "layout = \"nic-per-node\"\nbmc_server = \"bmc\"\nrouter = \"bmc-router\"\n",
        &[
            ("node-1", "10.78.1.10"),
            ("node-2", "10.78.2.10"),
            ("node-3", "10.78.3.10"),
        ],
    );
    let cfg = path.to_str().expect("utf-8");
    // A run stopped between creating node-1's network and tagging it
    // left it described as novabmc's but untagged: it is taken, not made
    // again.
    api.post(
        "/network/v2.0/networks",
        json!({"network": {"name": "novabmc-bmc-node-1", "description": "novabmc:bmc"}}),
    );
    // One port (the BMC's) exists; node-1 takes two (router interface and
    // its own), node-2's router interface the fourth, and its port fails.
    put_control(
        &sim,
        "neutron",
        json!({"quotas": {"network": 100, "subnet": 100, "port": 4, "router": 10}}),
    );
    let first = novabmc(&["network", "apply", "--config", cfg]);
    first.failed();
    for needle in [
        "create port novabmc-bmc-node-2",
        "port quota is used up (limit 4, 4 in use)",
        "run `novabmc network apply` again",
    ] {
        assert!(first.stderr.contains(needle), "{needle}: {first:#?}");
    }
    assert!(
        first
            .stdout
            .contains("node-1: port novabmc-bmc-node-1 10.78.1.10: created"),
        "{first:#?}"
    );

    put_control(&sim, "neutron", json!({}));
    let second = novabmc(&["network", "apply", "--config", cfg]);
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert!(
        second
            .stdout
            .contains("node-1: network novabmc-bmc-node-1: present"),
        "{}",
        second.stdout
    );
    let all = resources(&sim);
    let adopted = all["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["name"] == "novabmc-bmc-node-1")
        .expect("network");
    assert_eq!(adopted["tags"], json!(["novabmc", "novabmc:bmc"]));
    for kind in ["networks", "subnets", "ports"] {
        for n in 1..=3 {
            let name = format!("novabmc-bmc-node-{n}");
            let count = all[kind]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["name"] == name.as_str())
                .count();
            assert_eq!(count, 1, "{kind} {name}: {all}");
        }
    }
    let routes =
        std::fs::read_to_string(dir.path().join("state/network-routes.toml")).expect("routes");
    for (n, table) in [(1, 1000), (2, 1001), (3, 1002)] {
        assert!(
            routes.contains(&format!(
                "[nodes.\"node-{n}\".route]\ntable = {table}\ngateway = \"10.78.{n}.1\"\n"
            )),
            "{routes}"
        );
    }
    // The routes file is part of the configuration now.
    let loaded = novabmc::config::Config::load(&path).expect("config loads");
    assert!(loaded.nodes.iter().all(|n| n.route.is_some()));

    clear_requests(&sim);
    let third = novabmc(&["network", "apply", "--config", cfg]);
    assert_eq!(third.code, Some(0), "{third:#?}");
    assert_eq!(mutations(&sim), Vec::<String>::new(), "{}", third.stdout);

    // A node taken out of the configuration: its resources are shown as
    // novabmc's but unwanted, and left for destroy.
    let path = config(
        &sim,
        dir.path(),
        "layout = \"nic-per-node\"\nbmc_server = \"bmc\"\nrouter = \"bmc-router\"\n",
        &[("node-1", "10.78.1.10"), ("node-2", "10.78.2.10")],
    );
    let cfg = path.to_str().expect("utf-8");
    let show = novabmc(&["network", "show", "--config", cfg]);
    assert_eq!(show.code, Some(0), "{show:#?}");
    assert!(
        show.stdout
            .contains("unwanted: port novabmc-bmc-node-3: novabmc's, for no configured node"),
        "{}",
        show.stdout
    );

    // A dry destroy makes no call; destroy takes everything.
    clear_requests(&sim);
    let dry = novabmc(&["network", "destroy", "--dry-run", "--config", cfg]);
    assert_eq!(dry.code, Some(0), "{dry:#?}");
    assert!(
        dry.stdout.contains("would delete port novabmc-bmc-node-3"),
        "{}",
        dry.stdout
    );
    assert_eq!(mutations(&sim), Vec::<String>::new(), "{}", dry.stdout);
    let gone = novabmc(&["network", "destroy", "--config", cfg]);
    assert_eq!(gone.code, Some(0), "{gone:#?}");
    assert_eq!(leftovers(&sim), Vec::<String>::new());
    // A policy refusal names what was refused.
    put_control(&sim, "neutron", json!({"forbid": ["create_network"]}));
    let refused = novabmc(&["network", "apply", "--config", cfg]);
    refused.failed();
    assert!(
        refused
            .stderr
            .contains("create network novabmc-bmc-node-1: refused by the cloud's policy"),
        "{refused:#?}"
    );
}

#[test]
fn one_nic_without_allowed_address_pairs_says_so() {
    let sim = Sim::start();
    let api = Api::new(&sim);
    let dir = tempfile::tempdir().expect("dir");
    let bmc = sim.add_server_spec(json!({"name": "bmc", "ports": 0, "on": true}));
    let (net, _) = api.network("bmc-net", "10.79.1.0/24");
    let (port, _) = api.attached_port(&bmc, &net, "10.79.1.5");
    put_control(
        &sim,
        "neutron",
        json!({"extensions_off": ["allowed-address-pairs"]}),
    );
    let path = config(
        &sim,
        dir.path(),
        "layout = \"one-nic\"\nbmc_server = \"bmc\"\nnetwork = \"bmc-net\"\n",
        &[("node-1", "10.79.1.11")],
    );
    let cfg = path.to_str().expect("utf-8");
    let out = novabmc(&["network", "apply", "--config", cfg]);
    out.failed();
    assert!(
        out.stderr.contains("no allowed-address-pairs extension")
            && out.stderr.contains("--disable-port-security"),
        "{out:#?}"
    );
    // With port security off on the BMC port, no pairs are needed.
    api.call(
        reqwest::Method::PUT,
        &format!("/network/v2.0/ports/{port}"),
        Some(json!({"port": {"port_security_enabled": false, "security_groups": []}})),
    );
    let out = novabmc(&["network", "apply", "--config", cfg]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(
        out.stdout.contains("port security is off"),
        "{}",
        out.stdout
    );
}

/// Discovered nodes are provisioned like configured ones, and their routes
/// reach them through the routes file once discovery has named them.
#[test]
fn discovered_nodes_get_their_ports_and_routes() {
    let sim = Sim::start();
    let api = Api::new(&sim);
    let dir = tempfile::tempdir().expect("dir");
    let bmc = sim.add_server_spec(json!({"name": "bmc", "ports": 0, "on": true}));
    let (mgmt, _) = api.network("mgmt", "10.80.9.0/24");
    api.attached_port(&bmc, &mgmt, "10.80.9.10");
    for n in ["bm-a", "bm-b"] {
        sim.add_server_spec(json!({"name": n, "on": true, "tags": ["baremetal"]}));
    }
    // The pool gives 10.80.0.2, then 10.80.0.10: a /29 each.
    let text = format!(
        "[users.{}]\npassword = \"{}\"\n{}\
         [discovery]\ntag = \"baremetal\"\n\
         [discovery.address]\nmode = \"pool\"\ncidr = \"10.80.0.0/24\"\n\
         exclude = [\"10.80.0.1\", \"10.80.0.3-10.80.0.9\"]\n\
         [network]\nlayout = \"nic-per-node\"\nbmc_server = \"bmc\"\nrouter = \"bmc-router\"\n\
         prefix_len = 29\n",
        common::ADMIN.0,
        common::ADMIN.1,
        sim.backend_toml_in("rescue", &dir.path().join("state")),
    );
    let path = common::write_file(dir.path(), "novabmc.toml", &text);
    let cfg = path.to_str().expect("utf-8");
    let out = novabmc(&["network", "apply", "--config", cfg]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    // Which server the pool gives which address depends on their UUIDs
    // (they were made in the same second): read bm-b's from its port.
    let port_of = |name: &str| -> String {
        resources(&sim)["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == format!("novabmc-bmc-{name}").as_str())
            .and_then(|p| p["fixed_ips"][0]["ip_address"].as_str())
            .unwrap_or_else(|| panic!("no port for {name}: {}", out.stdout))
            .to_string()
    };
    let (a, b) = (port_of("bm-a"), port_of("bm-b"));
    let mut both = [a.clone(), b.clone()];
    both.sort();
    assert_eq!(both, ["10.80.0.10", "10.80.0.2"], "{}", out.stdout);
    let gateway = |ip: &str| {
        if ip == "10.80.0.2" {
            "10.80.0.1"
        } else {
            "10.80.0.9"
        }
    };
    for (name, ip) in [("bm-a", &a), ("bm-b", &b)] {
        let needle = format!("{name}: route table 10");
        assert!(out.stdout.contains(&needle), "{needle}: {}", out.stdout);
        let needle = format!(" via {}: created (in the routes file)", gateway(ip));
        assert!(out.stdout.contains(&needle), "{needle}: {}", out.stdout);
    }
    // A load keeps the file's routes for nodes only discovery names, and
    // a discovered node takes its own.
    let loaded = novabmc::config::Config::load(&path).expect("config loads");
    let file = loaded.network.as_ref().expect("network").routes["bm-b"].clone();
    let with = loaded.with_discovered(vec![novabmc::config::NodeConfig {
        name: "bm-b".into(),
        listen: format!("{b}:623").parse().expect("addr"),
        server: "bm-b".into(),
        route: None,
        network_boot: None,
        ipxe_image: None,
        efi: None,
        redfish_port: None,
        origin: novabmc::config::Origin::Discovered,
    }]);
    let route = with.nodes[0].route.as_ref().expect("route from the file");
    assert_eq!(route, &file);
    assert_eq!(route.gateway.to_string(), gateway(&b));
    clear_requests(&sim);
    let again = novabmc(&["network", "apply", "--config", cfg]);
    assert_eq!(again.code, Some(0), "{again:#?}");
    assert_eq!(mutations(&sim), Vec::<String>::new(), "{}", again.stdout);
}

/// `[discovery]` with a tag, the given address section, and the BMC
/// server, for the discovery address-mode tests.
fn discovery_config(sim: &Sim, dir: &Path, address: &str) -> PathBuf {
    let text = format!(
        "[users.{}]\npassword = \"{}\"\n{}\
         [discovery]\ntag = \"baremetal\"\n[discovery.address]\n{address}\n",
        common::ADMIN.0,
        common::ADMIN.1,
        sim.backend_toml_in("rescue", &dir.join("state")),
    );
    common::write_file(dir, "novabmc.toml", &text)
}

/// The address `check --format json` gives node `name`.
fn checked_address(report: &Value, name: &str) -> Option<String> {
    report["nodes"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["bmc"].as_str())
        .and_then(|b| b.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip().to_string())
}

/// `mode = "port"`: each discovered server's address is that of the port
/// the operator made for it (by name); a server without one is not served,
/// and said so.
#[test]
fn discovery_addresses_from_existing_ports() {
    let sim = Sim::start();
    let api = Api::new(&sim);
    let dir = tempfile::tempdir().expect("dir");
    let (net, _) = api.network("bmc-net", "10.81.0.0/24");
    for (server, address) in [("bm-a", "10.81.0.21"), ("bm-b", "10.81.0.22")] {
        sim.add_server_spec(json!({"name": server, "on": true, "tags": ["baremetal"]}));
        api.post(
            "/network/v2.0/ports",
            json!({"port": {"network_id": net, "name": format!("bmc-{server}"),
                "fixed_ips": [{"ip_address": address}]}}),
        );
    }
    sim.add_server_spec(json!({"name": "bm-c", "on": true, "tags": ["baremetal"]}));
    let path = discovery_config(
        &sim,
        dir.path(),
        "mode = \"port\"\nname = \"bmc-{server}\"\nnetwork = \"bmc-net\"\n",
    );
    let cfg = path.to_str().expect("utf-8");
    let out = novabmc(&["check", "--config", cfg, "--format", "json"]);
    let report: Value = serde_json::from_str(&out.stdout).expect("check JSON");
    assert_eq!(
        checked_address(&report, "bm-a").as_deref(),
        Some("10.81.0.21"),
        "{report:#}"
    );
    assert_eq!(
        checked_address(&report, "bm-b").as_deref(),
        Some("10.81.0.22")
    );
    assert_eq!(checked_address(&report, "bm-c"), None);
    let all = novabmc(&["check", "--config", cfg]);
    all.failed();
    assert!(
        all.all().contains("bm-c")
            && all
                .all()
                .contains("is not served: no Neutron port is named bmc-bm-c"),
        "{all:#?}"
    );
}

/// `mode = "new-port"`: `check` makes nothing and says so; `export` makes
/// a port per server on the network (Neutron allocating the address),
/// tagged with the server's UUID; the next look finds the same ports and
/// makes none.
#[test]
fn discovery_addresses_from_ports_novabmc_makes() {
    let sim = Sim::start();
    let api = Api::new(&sim);
    let dir = tempfile::tempdir().expect("dir");
    let (net, _) = api.network("bmc-net", "10.82.0.0/24");
    let bmc = sim.add_server_spec(json!({"name": "bmc", "ports": 0, "on": true}));
    let (bmc_port, _) = api.attached_port(&bmc, &net, "10.82.0.250");
    let a = sim.add_server_spec(json!({"name": "bm-a", "on": true, "tags": ["baremetal"]}));
    sim.add_server_spec(json!({"name": "bm-b", "on": true, "tags": ["baremetal"]}));
    let path = discovery_config(
        &sim,
        dir.path(),
        "mode = \"new-port\"\nnetwork = \"bmc-net\"\n\
         [network]\nlayout = \"one-nic\"\nbmc_server = \"bmc\"\nnetwork = \"bmc-net\"\n",
    );
    let cfg = path.to_str().expect("utf-8");

    clear_requests(&sim);
    let check = novabmc(&["check", "--config", cfg]);
    assert!(
        check
            .all()
            .contains("has no BMC port yet: serve (or export) makes one on network bmc-net"),
        "{check:#?}"
    );
    assert_eq!(
        mutations(&sim),
        Vec::<String>::new(),
        "check made something"
    );

    let export = novabmc(&["export", "--config", cfg, "--format", "ironic"]);
    let doc: Value = serde_json::from_str(export.ok()).expect("export JSON");
    let made: Vec<Value> = resources(&sim)["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "novabmc:discovery"))
        })
        .collect();
    assert_eq!(made.len(), 2, "{made:#?}");
    let for_a = made
        .iter()
        .find(|p| {
            p["tags"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|t| t == format!("novabmc-server:{a}").as_str())
            })
        })
        .expect("bm-a's port");
    assert_eq!(for_a["name"], "novabmc-bm-a");
    let address = for_a["fixed_ips"][0]["ip_address"].as_str().expect("ip");
    let node = doc["nodes"]
        .as_array()
        .and_then(|l| l.iter().find(|n| n["name"] == "bm-a"))
        .expect("bm-a exported");
    assert_eq!(node["driver_info"]["ipmi_address"], address);

    clear_requests(&sim);
    let report: Value =
        serde_json::from_str(novabmc(&["check", "--config", cfg, "--format", "json"]).ok())
            .expect("check JSON");
    assert_eq!(checked_address(&report, "bm-a").as_deref(), Some(address));
    assert_eq!(
        mutations(&sim),
        Vec::<String>::new(),
        "a second look made ports"
    );

    // Layout (a) takes the ports discovery made as the addresses'
    // reservations, and allows the addresses on the BMC instance's port.
    let apply = novabmc(&["network", "apply", "--config", cfg]);
    assert_eq!(apply.code, Some(0), "{apply:#?}");
    assert!(
        apply.stdout.contains(&format!(
            "bm-a: port novabmc-bm-a {address} (reserves the address): present"
        )),
        "{}",
        apply.stdout
    );
    let shown = api.call(
        reqwest::Method::GET,
        &format!("/network/v2.0/ports/{bmc_port}"),
        None,
    );
    let pairs = shown["port"]["allowed_address_pairs"].to_string();
    for p in &made {
        let ip = p["fixed_ips"][0]["ip_address"].as_str().expect("ip");
        assert!(pairs.contains(ip), "{ip} not allowed: {pairs}");
    }

    // destroy takes the ports discovery made with the rest.
    let destroy = novabmc(&["network", "destroy", "--config", cfg]);
    assert_eq!(destroy.code, Some(0), "{destroy:#?}");
    assert_eq!(leftovers(&sim), Vec::<String>::new(), "{destroy:#?}");
}

/// The whole flow on discovered nodes, layout (b): tagged servers in an
/// empty project, `serve` with discovery started first, `network apply`
/// (ports, NICs, addresses, the routes file), a reload, and every node
/// answers ipmitool through a router that drops spoofed sources. A server
/// tagged afterwards is discovered by the running daemon, given its port
/// by a second apply, and answers after a reload, the daemon never
/// restarted; destroy leaves nothing of novabmc's.
#[test]
fn discovered_nodes_in_layout_b_reach_and_follow_the_cloud() {
    let sim = Sim::start();
    let api = Api::new(&sim);
    let mut l = Lab2::new(&sim, &api);
    for n in ["bm-a", "bm-b"] {
        sim.add_server_spec(json!({"name": n, "on": true, "tags": ["baremetal"]}));
    }
    // A /29 per node (block = 29): the pool gives 10.80.0.2, .10, then .18.
    let text = format!(
        "[users.{}]\npassword = \"{}\"\n{}\
         [discovery]\ntag = \"baremetal\"\nrefresh = 1\n\
         [discovery.address]\nmode = \"pool\"\ncidr = \"10.80.0.0/24\"\nblock = 29\n\
         [network]\nlayout = \"nic-per-node\"\nbmc_server = \"bmc\"\nrouter = \"bmc-router\"\n\
         prefix_len = 29\n",
        common::ADMIN.0,
        common::ADMIN.1,
        sim.backend_toml_in("rescue", &l.dir.path().join("state")),
    );
    let path = common::write_file(l.dir.path(), "novabmc.toml", &text);
    let cfg = path.to_str().expect("utf-8").to_string();
    let mut d = NsDaemon::start(&l.bmc, &path, &l.path("serve.log"));
    d.wait_log(&["serving"]);

    let first = apply_in_lab(&mut l, &sim, &path);
    assert_eq!(first.code, Some(0), "{first:#?}");
    d.hangup();
    d.wait_log(&["routes installed", "bm-a"]);
    d.wait_log(&["routes installed", "bm-b"]);
    reach(&l, &d, &["10.80.0.2", "10.80.0.10"]);

    // A server tagged later: discovered by the running daemon, its port
    // and NIC made by a second apply, answering after a reload.
    sim.add_server_spec(json!({"name": "bm-c", "on": true, "tags": ["baremetal"]}));
    d.wait_log(&["discovered server served", "bm-c"]);
    let second = apply_in_lab(&mut l, &sim, &path);
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert!(
        second.stdout.contains("bm-c"),
        "the second apply provisions bm-c: {}",
        second.stdout
    );
    d.hangup();
    d.wait_log(&["routes installed", "bm-c"]);
    reach(&l, &d, &["10.80.0.18", "10.80.0.2", "10.80.0.10"]);
    // routes show looks at the cloud for the discovered nodes: theirs are
    // in place, none missing.
    let show = netns::novabmc(&l.bmc, &["routes", "show", "--config", &cfg]);
    assert_eq!(show.code, Some(0), "{show:#?}");
    for node in ["bm-a", "bm-b", "bm-c"] {
        assert!(show.stdout.contains(node), "{node}: {}", show.stdout);
    }
    assert!(!show.stdout.contains(": missing"), "{}", show.stdout);
    assert_eq!(d.stop(), Some(0), "{}", d.log());

    let gone = netns::novabmc(&l.bmc, &["network", "destroy", "--config", &cfg]);
    assert_eq!(gone.code, Some(0), "{gone:#?}");
    assert_eq!(leftovers(&sim), Vec::<String>::new(), "{}", gone.stdout);
}

/// The same flow in layout (a): discovered nodes' addresses from a pool on
/// the operator's BMC network, reserved by ports and allowed on the BMC
/// instance's port; a server tagged later answers after a second apply,
/// the daemon never restarted; destroy leaves nothing of novabmc's.
#[test]
fn discovered_nodes_in_layout_a_reach_and_follow_the_cloud() {
    let sim = Sim::start();
    let api = Api::new(&sim);
    let mut l = Lab2::new(&sim, &api);
    for n in ["bm-a", "bm-b"] {
        sim.add_server_spec(json!({"name": n, "on": true, "tags": ["baremetal"]}));
    }
    let (port, _) = l.bmc_network(&api);
    let text = format!(
        "[users.{}]\npassword = \"{}\"\n{}\
         [discovery]\ntag = \"baremetal\"\nrefresh = 1\n\
         [discovery.address]\nmode = \"pool\"\ncidr = \"10.77.1.0/24\"\n\
         exclude = [\"10.77.1.1-10.77.1.10\"]\n\
         [network]\nlayout = \"one-nic\"\nbmc_server = \"bmc\"\nnetwork = \"bmc-net\"\n",
        common::ADMIN.0,
        common::ADMIN.1,
        sim.backend_toml_in("rescue", &l.dir.path().join("state")),
    );
    let path = common::write_file(l.dir.path(), "novabmc.toml", &text);
    let cfg = path.to_str().expect("utf-8").to_string();
    let mut d = NsDaemon::start(&l.bmc, &path, &l.path("serve.log"));
    d.wait_log(&["serving"]);
    // Plays Neutron's port security on the router: what the BMC port's
    // allowed address pairs hold gets out (the port's own address already
    // does).
    let mut allowed: Vec<String> = vec!["10.77.1.5".into()];
    let mut allow_pairs = |l: &Lab2| {
        let shown = api.call(
            reqwest::Method::GET,
            &format!("/network/v2.0/ports/{port}"),
            None,
        );
        let new: Vec<String> = shown["port"]["allowed_address_pairs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["ip_address"].as_str().map(str::to_string))
            .filter(|a| !allowed.contains(a))
            .collect();
        let refs: Vec<&str> = new.iter().map(String::as_str).collect();
        l.allow(&l.lab.ifname("rb1"), &refs);
        allowed.extend(new);
        allowed.clone()
    };

    let first = apply_in_lab(&mut l, &sim, &path);
    assert_eq!(first.code, Some(0), "{first:#?}");
    let allowed = allow_pairs(&l);
    assert!(
        allowed.contains(&"10.77.1.11".to_string()) && allowed.contains(&"10.77.1.12".to_string()),
        "{allowed:?}"
    );
    reach(&l, &d, &["10.77.1.11", "10.77.1.12"]);

    sim.add_server_spec(json!({"name": "bm-c", "on": true, "tags": ["baremetal"]}));
    d.wait_log(&["discovered server served", "bm-c"]);
    let second = apply_in_lab(&mut l, &sim, &path);
    assert_eq!(second.code, Some(0), "{second:#?}");
    let allowed = allow_pairs(&l);
    assert!(allowed.contains(&"10.77.1.13".to_string()), "{allowed:?}");
    reach(&l, &d, &["10.77.1.13", "10.77.1.11", "10.77.1.12"]);
    assert_eq!(d.stop(), Some(0), "{}", d.log());

    let gone = netns::novabmc(&l.bmc, &["network", "destroy", "--config", &cfg]);
    assert_eq!(gone.code, Some(0), "{gone:#?}");
    assert_eq!(leftovers(&sim), Vec::<String>::new(), "{}", gone.stdout);
}
