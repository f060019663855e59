//! The `[metrics]` endpoint of the real daemon: the exact counter changes
//! one ipmitool session (`power status`, `power on`) and one wrong-password
//! login make, the exposition as `promtool check metrics` sees it, and
//! `/healthz` turning 503 when the simulated Keystone goes down.

use crate::cloud;
use crate::common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// `GET path`: status and body.
fn get(listen: SocketAddr, path: &str) -> (u16, String) {
    let r = http()
        .get(format!("http://{listen}{path}"))
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (r.status().as_u16(), r.text().expect("body"))
}

/// Every sample of an exposition, by its line's name and labels.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Fails loudly without promtool; otherwise checks the text with it.
fn promtool_check(text: &str) {
    require_tool("promtool");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn one_session_and_one_bad_login_are_counted_exactly() {
    let ip = unique_loopback();
    let listen = SocketAddr::from((ip, 9623));
    let node = SocketAddr::from((ip, 6230));
    // The bad login's half-open session expires after a second.
    let setup = Setup {
        address: ip,
        bmc: "setup_timeout_secs = 1\n".into(),
        ..Setup::default()
    };
    let text = format!("{}[metrics]\nlisten = \"{listen}\"\n", setup.toml());
    let _daemon = Daemon::start_with(&text, vec![node]);
    let (status, before) = get(listen, "/metrics");
    assert_eq!(status, 200);
    promtool_check(&before);
    let before = samples(&before);

    {
        let mut shell = Shell::start(node, ADMIN, &[]);
        shell.run("power status", "Chassis Power is off");
        shell.run("power on", "Chassis Power Control: Up/On");
    }
    ipmitool(node, (ADMIN.0, "wrong-password"), &["power", "status"]).failed();

    let mut after = HashMap::new();
    eventually("the close and the expiry to be counted", || {
        after = samples(&get(listen, "/metrics").1);
        after.get("novabmc_ipmi_sessions_total{event=\"closed\"}") == Some(&1.0)
            && after.get("novabmc_ipmi_sessions_total{event=\"expired\"}") == Some(&1.0)
    });
    let delta = |key: &str| {
        after.get(key).copied().unwrap_or(f64::NAN) - before.get(key).copied().unwrap_or(0.0)
    };
    let expected = [
        // The good session and the bad login both got past Open Session;
        // ipmitool itself finds the password wrong (RAKP 2's HMAC) and
        // gives up, so the BMC refuses nothing and the half-open session
        // expires.
        ("novabmc_ipmi_sessions_total{event=\"opened\"}", 2.0),
        ("novabmc_ipmi_sessions_total{event=\"established\"}", 1.0),
        ("novabmc_ipmi_sessions_total{event=\"closed\"}", 1.0),
        ("novabmc_ipmi_sessions_total{event=\"expired\"}", 1.0),
        ("novabmc_ipmi_sessions_total{event=\"failed\"}", 0.0),
        ("novabmc_ipmi_sessions_total{event=\"evicted\"}", 0.0),
        // Before each login, outside a session.
        (
            "novabmc_ipmi_requests_total{command=\"get_channel_auth_capabilities\"}",
            2.0,
        ),
        // In the session: what ipmitool's shell asks at start, the two
        // commands, and the close.
        (
            "novabmc_ipmi_requests_total{command=\"set_session_privilege_level\"}",
            1.0,
        ),
        (
            "novabmc_ipmi_requests_total{command=\"get_chassis_status\"}",
            1.0,
        ),
        (
            "novabmc_ipmi_requests_total{command=\"chassis_control\"}",
            1.0,
        ),
        (
            "novabmc_ipmi_requests_total{command=\"close_session\"}",
            1.0,
        ),
        ("novabmc_chassis_controls_total{control=\"on\"}", 1.0),
        ("novabmc_node_power_on{node=\"node-0\"}", 1.0),
        ("novabmc_nodes", 0.0),
    ];
    for (key, want) in expected {
        assert_eq!(delta(key), want, "{key}: {after:#?}");
    }
    assert_eq!(after.get("novabmc_nodes"), Some(&1.0));
    assert_eq!(
        after.get("novabmc_node_power_pending{node=\"node-0\"}"),
        Some(&0.0)
    );
    let text = get(listen, "/metrics").1;
    promtool_check(&text);

    let (status, body) = get(listen, "/healthz");
    assert_eq!((status, body.starts_with("ok")), (200, true), "{body}");
    assert_eq!(get(listen, "/nothing").0, 404);
}

#[test]
fn healthz_fails_while_keystone_is_down() {
    let sim = cloud::Sim::start();
    sim.add_server("vm-0", false);
    let ip = unique_loopback();
    let listen = SocketAddr::from((ip, 9623));
    let node = SocketAddr::from((ip, 6230));
    let text = format!(
        "[users.admin]\npassword = \"password\"\n{}refresh_secs = 0.2\n\
         [nodes.vm-0]\naddress = \"{ip}\"\nport = 6230\n[metrics]\nlisten = \"{listen}\"\n",
        sim.backend_toml("rebuild")
            .replace("refresh_secs = 1\n", "")
    );
    let _daemon = Daemon::start_with(&text, vec![node]);
    eventually("/healthz to answer 200", || {
        get(listen, "/healthz").0 == 200
    });
    let metrics = samples(&get(listen, "/metrics").1);
    assert!(
        metrics.contains_key("novabmc_cloud_last_refresh_age_seconds"),
        "{metrics:#?}"
    );
    assert!(
        metrics
            .keys()
            .any(|k| k.starts_with("novabmc_cloud_requests_total{")
                && k.contains("service=\"identity\"")),
        "{metrics:#?}"
    );
    promtool_check(&get(listen, "/metrics").1);

    // Keystone down and the token revoked: every listing fails now.
    sim.faults(json!({"keystone_down": true}));
    sim.expire_tokens();
    let mut body = String::new();
    eventually("/healthz to answer 503", || {
        let (status, b) = get(listen, "/healthz");
        body = b;
        status == 503
    });
    assert!(body.contains("three refresh intervals"), "{body}");
    sim.faults(json!({"keystone_down": false}));
    eventually("/healthz to recover", || get(listen, "/healthz").0 == 200);
}

#[test]
fn a_public_listen_address_is_refused_unless_allowed() {
    let setup = Setup::default();
    let dir = tempfile::tempdir().expect("dir");
    let path = write_file(
        dir.path(),
        "public.toml",
        &format!("{}[metrics]\nlisten = \"0.0.0.0:9623\"\n", setup.toml()),
    );
    let out = Out::collect(
        Command::new(env!("CARGO_BIN_EXE_novabmc"))
            .args(["serve", "--config"])
            .arg(&path),
        "novabmc serve",
    );
    out.failed();
    assert!(
        out.stderr.contains("metrics.listen") && out.stderr.contains("allow_public"),
        "{out:#?}"
    );
}

/// Whether the server closed `s` (end of stream or a reset), without
/// waiting.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let _ = s.set_nonblocking(true);
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// 300 clients that send half a request and stop: those over the
/// connection cap are closed at once, the rest when the header-read time
/// runs out, and a genuine scrape is served afterwards.
#[test]
fn half_sent_requests_are_capped_and_timed_out() {
    let ip = unique_loopback();
    let listen = SocketAddr::from((ip, 9623));
    let node = SocketAddr::from((ip, 6230));
    let setup = Setup {
        address: ip,
        ..Setup::default()
    };
    let text = format!("{}[metrics]\nlisten = \"{listen}\"\n", setup.toml());
    let _daemon = Daemon::start_with(&text, vec![node]);
    eventually("/healthz to answer", || {
        std::net::TcpStream::connect(listen).is_ok()
    });
    assert_eq!(get(listen, "/healthz").0, 200);
    let mut slow: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(listen).expect("connect");
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .expect("half a request");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let early = slow.iter_mut().map(closed_by_server).filter(|c| *c).count();
    assert!(
        early >= 300 - novabmc::metrics::http::MAX_CONNECTIONS,
        "only {early} of 300 half-sent requests closed beyond the cap"
    );
    eventually_within(
        "every half-sent request to be closed",
        novabmc::metrics::http::HEADER_READ_TIMEOUT + Duration::from_secs(5),
        || slow.iter_mut().all(closed_by_server),
    );
    drop(slow);
    assert_eq!(get(listen, "/healthz").0, 200);
}
