//! Redfish on the same nodes as IPMI, against the daemon on the Nova
//! simulator: Ironic's calls through the real `sushy`, MAAS's requests,
//! DMTF's three validators, both protocols on one node, and the hostile
//! paths (wrong passwords, huge and malformed bodies, a slowloris
//! connection, twenty resetters at once, old TLS versions).
//!
//! The Python tools run from the virtual environment the test command
//! creates (`contrib/redfish-tools.sh`, pinned); a test fails loudly when
//! it cannot be made.

use crate::cloud;
use crate::common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cloud::Sim;
use common::*;
use serde_json::{Value, json};

/// The Redfish port of every node in these tests.
pub(crate) const PORT: u16 = 8443;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The virtual environment's python, made once per test run.
pub(crate) fn python() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let out = Command::new(root().join("contrib/redfish-tools.sh"))
            .output()
            .expect("run contrib/redfish-tools.sh");
        assert!(
            out.status.success(),
            "contrib/redfish-tools.sh failed (it needs python3 with venv and PyPI):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let venv = String::from_utf8_lossy(&out.stdout).trim().to_string();
        PathBuf::from(venv).join("bin/python")
    })
}

/// Runs a Python client script; returns its JSON lines, failing on a
/// non-zero exit.
pub(crate) fn client(script: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new(python())
        .arg(root().join("tests/redfish_clients").join(script))
        .args(args)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The daemon on the simulator with Redfish on every node.
pub(crate) struct Rig {
    pub(crate) sim: Sim,
    pub(crate) daemon: Daemon,
    pub(crate) servers: Vec<String>,
    /// The daemon's configuration and node addresses, to start it again.
    pub(crate) toml: String,
    pub(crate) addrs: Vec<SocketAddr>,
}

impl Rig {
    pub(crate) fn new(n: usize, redfish: &str) -> Rig {
        Rig::with_servers(n, redfish, |sim, i| {
            sim.add_server(&format!("rf-{i}"), false)
        })
    }

    pub(crate) fn with_servers(
        n: usize,
        redfish: &str,
        add: impl Fn(&Sim, usize) -> String,
    ) -> Rig {
        let sim = Sim::start();
        let servers: Vec<String> = (0..n).map(|i| add(&sim, i)).collect();
        let nodes: Vec<(String, String)> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("node-{i}"), s.clone()))
            .collect();
        let refs: Vec<(&str, &str)> = nodes
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let address = unique_loopback();
        let (mut toml, addrs) = cloud::config(&sim.backend_toml("rebuild"), address, &refs, "");
        toml.push_str(&format!(
            "[users.viewer]\npassword = \"view-secret\"\nprivilege = \"user\"\n\
             [redfish]\nport = {PORT}\n{redfish}\n"
        ));
        // Nodes share the test's address: one Redfish port each.
        for (i, (name, _)) in nodes.iter().enumerate() {
            toml = toml.replace(
                &format!("[nodes.{name}]\n"),
                &format!("[nodes.{name}]\nredfish_port = {}\n", PORT + i as u16),
            );
        }
        let daemon = Daemon::start_with(&toml, addrs.clone());
        let rig = Rig {
            sim,
            daemon,
            servers,
            toml,
            addrs,
        };
        for i in 0..n {
            let url = rig.url(i);
            eventually("the system resolved", || {
                get(&url, "/redfish/v1/Systems", ADMIN)
                    .map(|(s, v)| {
                        s == 200
                            && v["Members"][0]["@odata.id"]
                                .as_str()
                                .is_some_and(|m| !m.ends_with(&format!("node-{i}")))
                    })
                    .unwrap_or(false)
            });
        }
        rig
    }

    pub(crate) fn ip(&self) -> IpAddr {
        self.daemon.nodes[0].ip()
    }

    pub(crate) fn url(&self, i: usize) -> String {
        let scheme = if self.daemon.log().contains("tls=false") {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}:{}", self.ip(), PORT + i as u16)
    }

    pub(crate) fn system_path(&self, i: usize) -> String {
        format!("/redfish/v1/Systems/{}", self.servers[i])
    }
}

pub(crate) fn http(local: Option<IpAddr>) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10));
    if let Some(a) = local {
        b = b.local_address(a);
    }
    b.build().expect("client")
}

pub(crate) fn get(url: &str, path: &str, user: (&str, &str)) -> Option<(u16, Value)> {
    let r = http(None)
        .get(format!("{url}{path}"))
        .basic_auth(user.0, Some(user.1))
        .send()
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().unwrap_or(Value::Null)))
}

pub(crate) fn send(
    method: reqwest::Method,
    url: &str,
    path: &str,
    user: (&str, &str),
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http(None)
        .request(method, format!("{url}{path}"))
        .basic_auth(user.0, Some(user.1))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().expect("request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

pub(crate) fn reset(url: &str, path: &str, kind: &str) -> u16 {
    send(
        reqwest::Method::POST,
        url,
        &format!("{path}/Actions/ComputerSystem.Reset"),
        ADMIN,
        &json!({ "ResetType": kind }).to_string(),
        &[],
    )
    .0
}

/// Sends SIGHUP: the daemon reloads its configuration file.
pub(crate) fn hup(daemon: &Daemon) {
    let ok = Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -HUP failed");
}

/// Opens a Redfish session; returns its token.
fn login(url: &str, user: (&str, &str)) -> String {
    let r = http(None)
        .post(format!("{url}/redfish/v1/SessionService/Sessions"))
        .json(&json!({"UserName": user.0, "Password": user.1}))
        .send()
        .expect("login");
    assert_eq!(r.status().as_u16(), 201, "login as {}", user.0);
    r.headers()["x-auth-token"]
        .to_str()
        .expect("token")
        .to_string()
}

/// Ironic's path through sushy: every reset type, NMI, boot devices once
/// and persistent, boot mode both ways, secure boot read.
#[test]
fn ironic_through_sushy() {
    let rig = Rig::new(1, "");
    let lines = client(
        "ironic_flow.py",
        &[
            &rig.url(0),
            ADMIN.0,
            ADMIN.1,
            &rig.servers[0],
            "--verify",
            "false",
        ],
    );
    let steps: Vec<&str> = lines.iter().filter_map(|l| l["step"].as_str()).collect();
    for s in [
        "power-state",
        "reset",
        "inject-nmi",
        "set-boot",
        "set-boot-mode",
        "secure-boot",
    ] {
        assert!(steps.contains(&s), "step {s} ran: {steps:?}");
    }
    assert!(lines.iter().all(|l| l["ok"] == json!(true)), "{lines:?}");
    eventually("the NMI reached Nova", || {
        rig.sim
            .actions(&rig.servers[0])
            .iter()
            .any(|a| a == "trigger_crash_dump")
    });
}

/// MAAS's Redfish power driver: the first member of Systems, an ETag and
/// If-Match PATCH of Boot Once Pxe, ForceOff / On / GracefulRestart and
/// the polling of the state.
#[test]
fn maas_power_driver() {
    let rig = Rig::new(1, "");
    let lines = client(
        "maas_flow.py",
        &[
            &rig.url(0),
            ADMIN.0,
            ADMIN.1,
            "node-id",
            "query",
            "power-on",
            "power-off",
            "power-reset",
            "query",
        ],
    );
    assert!(lines.iter().all(|l| l["ok"] == json!(true)), "{lines:?}");
    let id = lines[0]["node_id"].as_str().expect("node id");
    assert_eq!(id, rig.servers[0], "the system is the Nova server");
}

/// DMTF's service and protocol validators pass; the interop validator with
/// Ironic's profile fails nothing but the virtual media it requires (the
/// virtual media issue adds it).
#[test]
fn dmtf_validators() {
    let rig = Rig::new(1, "");
    let out = tempfile::tempdir().expect("dir");
    let run = |mode: &str| {
        let o = Command::new(root().join("contrib/redfish-validate.sh"))
            .args([mode, &rig.url(0), ADMIN.0, ADMIN.1])
            .arg(out.path())
            .output()
            .expect("validator");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    // Ironic's interop profile included: its mandatory VirtualMedia is
    // served.
    for mode in ["service", "protocol", "interop"] {
        let (ok, text) = run(mode);
        assert!(ok, "{mode} validator:\n{text}");
        assert!(text.contains("FAIL=0"), "{mode}:\n{text}");
    }
}

/// One record, two protocols: Once Pxe set over Redfish is what
/// `chassis bootparam get 5` reads, and a power on over IPMI boots the
/// network exactly once; then the other way round.
#[test]
fn a_boot_override_is_one_record_for_both_protocols() {
    let rig = Rig::new(1, "");
    let url = rig.url(0);
    let path = rig.system_path(0);
    let node = rig.daemon.nodes[0];
    let (s, _) = send(
        reqwest::Method::PATCH,
        &url,
        &path,
        ADMIN,
        r#"{"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}"#,
        &[],
    );
    assert_eq!(s, 200);
    let param = ipmitool(node, ADMIN, &["chassis", "bootparam", "get", "5"]);
    let text = param.ok();
    assert!(text.contains("Force PXE"), "{text}");
    assert!(text.contains("Options apply to only next boot"), "{text}");
    ipmitool(node, ADMIN, &["power", "on"]).ok();
    eventually("one network boot", || {
        rig.sim
            .actions(&rig.servers[0])
            .iter()
            .any(|a| a == "rebuild")
    });
    eventually("the one-time override used up", || {
        get(&url, &path, ADMIN)
            .is_some_and(|(_, v)| v["Boot"]["BootSourceOverrideEnabled"] == "Disabled")
    });
    std::thread::sleep(Duration::from_secs(2));
    let rebuilds = rig
        .sim
        .actions(&rig.servers[0])
        .iter()
        .filter(|a| *a == "rebuild")
        .count();
    assert_eq!(rebuilds, 1, "exactly one network boot");

    // The reverse: IPMI sets it, Redfish reads it and boots it.
    ipmitool(node, ADMIN, &["power", "off"]).ok();
    eventually("off", || rig.sim.status("rf-0") == "SHUTOFF");
    ipmitool(node, ADMIN, &["chassis", "bootdev", "pxe"]).ok();
    let (_, v) = get(&url, &path, ADMIN).expect("system");
    assert_eq!(v["Boot"]["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(v["Boot"]["BootSourceOverrideEnabled"], "Once");
    assert_eq!(reset(&url, &path, "On"), 204);
    eventually("a second network boot", || {
        rig.sim
            .actions(&rig.servers[0])
            .iter()
            .filter(|a| *a == "rebuild")
            .count()
            == 2
    });
    eventually("power state agrees", || {
        get(&url, &path, ADMIN).is_some_and(|(_, v)| v["PowerState"] == "On")
            && ipmitool(node, ADMIN, &["power", "status"])
                .ok()
                .contains("on")
    });
}

/// Wrong passwords never lock an account out: after 200 from one source,
/// the right one from another source works at once; the guessing source
/// is slowed (429) rather than answered.
#[test]
fn wrong_passwords_are_slowed_per_source_and_lock_nobody_out() {
    let rig = Rig::new(1, "");
    let url = rig.url(0);
    let guesser = http(Some(IpAddr::from([127, 0, 0, 1])));
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..200 {
        let r = guesser
            .get(format!("{url}/redfish/v1/Systems"))
            .basic_auth(ADMIN.0, Some(format!("guess-{i}")))
            .send()
            .expect("guess");
        *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
        if r.status().as_u16() == 401 {
            assert!(r.headers().contains_key("www-authenticate"));
        }
    }
    assert!(statuses.get(&401).is_some_and(|n| *n >= 10), "{statuses:?}");
    assert!(
        statuses.get(&429).is_some_and(|n| *n > 100),
        "slowed: {statuses:?}"
    );
    let genuine = http(Some(rig.ip()));
    let started = Instant::now();
    let r = genuine
        .get(format!("{url}/redfish/v1/Systems"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .send()
        .expect("genuine");
    assert_eq!(r.status().as_u16(), 200, "the account is not locked");
    assert!(started.elapsed() < Duration::from_secs(1));
    // Sessions too.
    let r = genuine
        .post(format!("{url}/redfish/v1/SessionService/Sessions"))
        .json(&json!({"UserName": ADMIN.0, "Password": ADMIN.1}))
        .send()
        .expect("login");
    assert_eq!(r.status().as_u16(), 201);
    let token = r.headers()["x-auth-token"]
        .to_str()
        .expect("token")
        .to_string();
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let r = genuine
        .get(format!("{url}/redfish/v1/Systems"))
        .header("X-Auth-Token", &token)
        .send()
        .expect("with token");
    assert_eq!(r.status().as_u16(), 200);
    let r = genuine
        .delete(format!("{url}{location}"))
        .header("X-Auth-Token", &token)
        .send()
        .expect("logout");
    assert_eq!(r.status().as_u16(), 204);
    let r = genuine
        .get(format!("{url}/redfish/v1/Systems"))
        .header("X-Auth-Token", &token)
        .send()
        .expect("after logout");
    assert_eq!(r.status().as_u16(), 401);
}

/// Bad input gets a Redfish error naming what is wrong; roles are held.
#[test]
fn bad_requests_are_answered_with_what_is_wrong() {
    let rig = Rig::new(1, "");
    let url = rig.url(0);
    let path = rig.system_path(0);
    let patch = |body: &str, user, headers: &[(&str, &str)]| {
        send(reqwest::Method::PATCH, &url, &path, user, body, headers)
    };
    let message = |v: &Value| {
        v["error"]["@Message.ExtendedInfo"][0]["MessageId"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let related = |v: &Value| {
        v["error"]["@Message.ExtendedInfo"][0]["RelatedProperties"][0]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    let (s, v) = patch("{not json", ADMIN, &[]);
    assert_eq!(s, 400);
    assert!(message(&v).ends_with("MalformedJSON"), "{v}");
    let (s, v) = patch(
        r#"{"Boot": {"BootSourceOverrideTarget": "Usb"}}"#,
        ADMIN,
        &[],
    );
    assert_eq!(s, 400);
    assert!(message(&v).ends_with("PropertyValueNotInList"), "{v}");
    assert_eq!(related(&v), "#/Boot/BootSourceOverrideTarget");
    let (s, v) = patch(
        r#"{"Boot": {"BootSourceOverrideEnabled": true}}"#,
        ADMIN,
        &[],
    );
    assert_eq!(s, 400);
    assert!(message(&v).ends_with("PropertyValueTypeError"), "{v}");
    let (s, v) = patch(r#"{"Colour": "blue"}"#, ADMIN, &[]);
    assert_eq!(s, 400);
    assert!(message(&v).ends_with("PropertyUnknown"), "{v}");
    assert_eq!(related(&v), "#/Colour");
    let (s, v) = patch(r#"{"PowerState": "On"}"#, ADMIN, &[]);
    assert_eq!(s, 400);
    assert!(message(&v).ends_with("PropertyNotWritable"), "{v}");
    let (s, _) = patch(
        r#"{"Boot": {"BootSourceOverrideTarget": "Pxe"}}"#,
        USER,
        &[],
    );
    assert_eq!(s, 403, "a read-only account may not");
    let (s, _) = patch(
        r#"{"Boot": {"BootSourceOverrideTarget": "Pxe"}}"#,
        ("admin", "wrong"),
        &[],
    );
    assert_eq!(s, 401);
    let (s, v) = patch(
        r#"{"Boot": {"BootSourceOverrideTarget": "Pxe"}}"#,
        OPERATOR,
        &[("If-Match", "W/\"stale\"")],
    );
    assert_eq!(s, 412, "{v}");
    let (_, current) = get(&url, &path, ADMIN).expect("system");
    let tag = current["@odata.etag"].as_str().expect("etag").to_string();
    let (s, _) = patch(
        r#"{"Boot": {"BootSourceOverrideTarget": "Hdd"}}"#,
        OPERATOR,
        &[("If-Match", &tag)],
    );
    assert_eq!(s, 200, "an operator with the current ETag");
    let reset_with = |body: &str| {
        send(
            reqwest::Method::POST,
            &url,
            &format!("{path}/Actions/ComputerSystem.Reset"),
            ADMIN,
            body,
            &[],
        )
    };
    let (s, v) = reset_with(r#"{"ResetType": "Sideways"}"#);
    assert_eq!(s, 400);
    assert!(
        message(&v).ends_with("ActionParameterValueNotInList"),
        "{v}"
    );
    let (s, v) = reset_with("{}");
    assert_eq!(s, 400);
    assert!(message(&v).ends_with("ActionParameterMissing"), "{v}");
    let (s, _) = get(&url, "/redfish/v1/Systems/no-such-system", ADMIN).expect("404");
    assert_eq!(s, 404);
}

/// Twenty clients resetting one system at once are all acknowledged (never
/// 409 or 503 because Nova is busy), and the system ends in the state of
/// the command given after them.
#[test]
fn twenty_resetters_at_once() {
    let rig = Rig::new(1, "");
    rig.sim.realistic_timings();
    let url = rig.url(0);
    let path = rig.system_path(0);
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (url, path) = (url.clone(), path.clone());
            std::thread::spawn(move || {
                let kind = ["On", "ForceOff", "ForceRestart", "GracefulShutdown"][i % 4];
                reset(&url, &path, kind)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("resetter"), 204);
    }
    assert_eq!(reset(&url, &path, "On"), 204);
    eventually_within("on at last", Duration::from_secs(90), || {
        rig.sim.status("rf-0") == "ACTIVE"
            && get(&url, &path, ADMIN).is_some_and(|(_, v)| v["PowerState"] == "On")
    });
}

/// A connection that sends its headers slowly is closed at the read
/// timeout while other clients are served; TLS 1.0 and 1.1 are refused.
#[test]
fn slowloris_and_old_tls() {
    let rig = Rig::new(1, "read_timeout = 1.0\n");
    let url = rig.url(0);
    let addr = SocketAddr::new(rig.ip(), PORT);
    // A raw TCP connection that never finishes the TLS handshake.
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    slow.write_all(&[0x16, 0x03, 0x01]).expect("a few bytes");
    assert_eq!(
        get(&url, "/redfish/v1/", ADMIN).map(|r| r.0),
        Some(200),
        "others are served"
    );
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "within the read timeout"
    );

    require_tool("openssl");
    let handshake = |version: &str| {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-connect",
            ])
            .arg(addr.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("openssl");
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("openssl");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let modern = handshake("-tls1_2");
    assert!(
        modern.contains("TLSv1.2") && !modern.contains("Cipher is (NONE)"),
        "{modern}"
    );
    for old in ["-tls1", "-tls1_1"] {
        let text = handshake(old);
        assert!(text.contains("Cipher is (NONE)"), "{old} refused:\n{text}");
    }
}

/// A reload keeps Redfish sessions of unchanged accounts and ends those of
/// accounts removed.
#[test]
fn a_reload_ends_the_sessions_of_removed_accounts() {
    let rig = Rig::new(1, "");
    let url = rig.url(0);
    let c = http(None);
    let admin = login(&url, ADMIN);
    let viewer = login(&url, USER);
    let config = rig.daemon.dir().join("novabmc.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        "[users.viewer]\npassword = \"view-secret\"\nprivilege = \"user\"\n",
        "",
    );
    std::fs::write(&config, text).expect("write");
    hup(&rig.daemon);
    let status = |token: &str| {
        c.get(format!("{url}/redfish/v1/Systems"))
            .header("X-Auth-Token", token)
            .send()
            .expect("get")
            .status()
            .as_u16()
    };
    eventually("the removed account's session ended", || {
        status(&viewer) == 401
    });
    assert_eq!(status(&admin), 200, "the others' go on");
}

/// `novabmc export` enrolls the nodes with their Redfish service: Ironic's
/// redfish driver_info and MAAS's redfish power type, the system Id being
/// the Nova server's UUID.
#[test]
fn export_writes_redfish_enrollments() {
    let rig = Rig::new(1, "");
    let run = |format: &str| {
        Out::collect(
            Command::new(env!("CARGO_BIN_EXE_novabmc"))
                .args(["--log", "warn", "export", "--config"])
                .arg(rig.daemon.dir().join("novabmc.toml"))
                .args(["--format", format, "--user", OPERATOR.0]),
            "novabmc export",
        )
    };
    let ironic: Value = serde_json::from_str(run("ironic-redfish").ok()).expect("json");
    let node = &ironic["nodes"][0];
    assert_eq!(node["driver"], "redfish");
    let info = &node["driver_info"];
    assert_eq!(info["redfish_address"], json!(rig.url(0)));
    assert_eq!(
        info["redfish_system_id"],
        json!(format!("/redfish/v1/Systems/{}", rig.servers[0]))
    );
    assert_eq!(info["redfish_username"], OPERATOR.0);
    assert_eq!(info["redfish_password"], OPERATOR.1);
    assert_eq!(info["redfish_verify_ca"], false, "self-signed");
    // What Ironic would then call works with those very values.
    let (s, v) = get(
        info["redfish_address"].as_str().expect("address"),
        info["redfish_system_id"].as_str().expect("id"),
        OPERATOR,
    )
    .expect("system");
    assert_eq!(s, 200);
    assert_eq!(v["UUID"], json!(rig.servers[0]));
    let maas = run("maas-redfish");
    let text = maas.ok();
    assert!(
        text.contains("power_type='redfish'") || text.contains("power_type=redfish"),
        "{text}"
    );
    assert!(text.contains(&rig.servers[0]), "{text}");
}

/// `novabmc check` prints each listener's certificate fingerprint, as
/// `openssl x509 -fingerprint -sha256` shows it for the generated file.
#[test]
fn check_prints_the_certificate_fingerprint() {
    let rig = Rig::new(1, "");
    let out = Out::collect(
        Command::new(env!("CARGO_BIN_EXE_novabmc"))
            .args(["--log", "warn", "check", "--config"])
            .arg(rig.daemon.dir().join("novabmc.toml")),
        "novabmc check",
    );
    let text = out.all();
    let cert = rig
        .sim
        .state_dir()
        .join("redfish")
        .join(format!("{}.crt", rig.ip()));
    require_tool("openssl");
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl");
    let printed = String::from_utf8_lossy(&openssl.stdout);
    let fingerprint = printed.trim().rsplit('=').next().expect("fingerprint");
    assert!(text.contains(fingerprint), "{fingerprint} in:\n{text}");
    assert!(text.contains(&rig.url(0)), "{text}");
}

/// SecureBoot shows what the server's image asks Nova for
/// (`os_secure_boot`), and a server whose image does not ask has none.
#[test]
fn secure_boot_follows_the_image() {
    let rig = Rig::with_servers(2, "", |sim, i| {
        let secure = i == 0;
        let image = sim.add_image(
            &format!("image-{i}"),
            Some("uefi"),
            if secure {
                json!({"os_secure_boot": "required"})
            } else {
                json!({})
            },
        );
        sim.add_server_spec(json!({"name": format!("rf-{i}"), "image": image}))
    });
    for (i, expected) in [(0, true), (1, false)] {
        let (s, v) = get(
            &rig.url(i),
            &format!("{}/SecureBoot", rig.system_path(i)),
            ADMIN,
        )
        .expect("secure boot");
        assert_eq!(s, 200);
        assert_eq!(v["SecureBootEnable"], json!(expected), "server {i}: {v}");
        let (_, system) = get(&rig.url(i), &rig.system_path(i), ADMIN).expect("system");
        assert_eq!(system["Boot"]["BootSourceOverrideMode"], "UEFI");
    }
}

/// Redfish requests are counted by route, method and status with their
/// latency, open sessions are a gauge, and a reset counts as the chassis
/// control it became.
#[test]
fn metrics_count_redfish_requests() {
    let metrics = SocketAddr::new(unique_loopback().into(), 9464);
    let rig = Rig::new(1, &format!("[metrics]\nlisten = \"{metrics}\"\n"));
    let url = rig.url(0);
    let path = rig.system_path(0);
    assert_eq!(get(&url, &path, ADMIN).map(|r| r.0), Some(200));
    assert_eq!(reset(&url, &path, "On"), 204);
    let r = http(None)
        .post(format!("{url}/redfish/v1/SessionService/Sessions"))
        .json(&json!({"UserName": ADMIN.0, "Password": ADMIN.1}))
        .send()
        .expect("login");
    assert_eq!(r.status().as_u16(), 201);
    let _ = get(&url, "/redfish/v1/", ADMIN);
    let text = http(None)
        .get(format!("http://{metrics}/metrics"))
        .send()
        .expect("scrape")
        .text()
        .expect("text");
    for needle in [
        "novabmc_redfish_requests_total{resource=\"/redfish/v1/Systems/{id}\",method=\"GET\",status=\"200\"}",
        "novabmc_redfish_requests_total{resource=\"/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset\",method=\"POST\",status=\"204\"}",
        "novabmc_redfish_request_duration_seconds_bucket",
        "novabmc_redfish_sessions 1",
        "novabmc_chassis_controls_total{control=\"on\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
}

/// Both protocols on one node at once: IPMI chassis controls and Redfish
/// resets interleaved are all acknowledged, and both read the state of the
/// command given after them. A reload that adds a node meanwhile keeps the
/// Redfish session and the node's listener.
#[test]
fn both_protocols_at_once_and_a_reload_between() {
    let rig = Rig::new(1, "");
    let url = rig.url(0);
    let path = rig.system_path(0);
    let node = rig.daemon.nodes[0];
    let c = http(None);
    let token = login(&url, ADMIN);
    let ipmi = std::thread::spawn(move || {
        (0..6)
            .map(|i| {
                let cmd = if i % 2 == 0 { "on" } else { "off" };
                ipmitool(node, ADMIN, &["power", cmd]).code
            })
            .collect::<Vec<_>>()
    });
    let redfish: Vec<u16> = (0..6)
        .map(|i| reset(&url, &path, if i % 2 == 0 { "ForceOff" } else { "On" }))
        .collect();
    assert!(redfish.iter().all(|s| *s == 204), "{redfish:?}");
    assert!(ipmi.join().expect("ipmi").iter().all(|c| *c == Some(0)));

    // A reload that adds a node.
    let config = rig.daemon.dir().join("novabmc.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    let extra = rig.sim.add_server("rf-extra", false);
    text.push_str(&format!(
        "[nodes.extra]\naddress = \"{}\"\nport = {}\nserver = \"{extra}\"\nredfish_port = {}\n",
        node.ip(),
        node.port() + 50,
        PORT + 50
    ));
    std::fs::write(&config, text).expect("write");
    hup(&rig.daemon);
    let extra_url = format!("https://{}:{}", node.ip(), PORT + 50);
    eventually("the added node serves Redfish", || {
        get(&extra_url, "/redfish/v1/Systems", ADMIN).is_some_and(|(s, _)| s == 200)
    });
    let with_token = c
        .get(format!("{url}{path}"))
        .header("X-Auth-Token", &token)
        .send()
        .expect("after reload");
    assert_eq!(with_token.status().as_u16(), 200, "the session survived");

    assert_eq!(reset(&url, &path, "ForceOff"), 204);
    eventually_within("off through both doors", Duration::from_secs(60), || {
        rig.sim.status("rf-0") == "SHUTOFF"
            && get(&url, &path, ADMIN).is_some_and(|(_, v)| v["PowerState"] == "Off")
            && ipmitool(node, ADMIN, &["power", "status"])
                .ok()
                .contains("off")
    });
}

/// A body larger than the service takes is refused with 413 and a Redfish
/// error as soon as the limit is passed, without the rest being read (plain
/// HTTP and a raw socket, so the client reads the answer while it still
/// has bytes to send).
#[test]
fn a_huge_body_is_refused_at_the_limit() {
    use base64::Engine;
    let rig = Rig::new(1, "tls = false\n");
    assert!(rig.url(0).starts_with("http://"), "{}", rig.url(0));
    let mut s = TcpStream::connect(SocketAddr::new(rig.ip(), PORT)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1));
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: bmc\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        rig.system_path(0),
        10 << 20
    );
    s.write_all(head.as_bytes()).expect("head");
    // Well past the 64 KiB limit, far short of what was announced.
    let _ = s.write_all(&vec![b' '; 256 << 10]);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("PayloadTooLarge"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}
