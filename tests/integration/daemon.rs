//! The daemon as an operator meets it: configuration errors, the demo,
//! signals, and logs that never show a secret.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn novabmc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_novabmc"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run novabmc")
}

#[test]
fn bad_config_names_field_and_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write_file(
        dir.path(),
        "bad.toml",
        "[users.admin]\npassword = \"x\"\nprivilege = \"root\"\n[nodes.a]\naddress = \"127.0.0.1\"\n",
    );
    let out = novabmc(&["serve", "--config", path.to_str().expect("path")]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("users.admin.privilege"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");

    let out = novabmc(&["serve", "--config", "/nonexistent/novabmc.toml"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/novabmc.toml"));

    let path = write_file(dir.path(), "syntax.toml", "[nodes.a\n");
    let out = novabmc(&["serve", "--config", path.to_str().expect("path")]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("syntax.toml"));
}

/// Each cause is printed once, and keys are named as the file spells
/// them (figment's profile name never shows).
#[test]
fn errors_say_each_thing_once() {
    let dir = tempfile::tempdir().expect("dir");
    let users = "[users.admin]\npassword = \"x\"\n";
    let cases = [
        (
            format!(
                "{users}[nodes.a]\naddress = \"127.0.0.1\"\nport = 7001\n\
                 [nodes.b]\naddress = \"127.0.0.1\"\nport = 7001\n"
            ),
            "nodes.b.address: 127.0.0.1:7001 is already used by node a (in ",
        ),
        (
            format!("{users}[nodes.a]\naddress = \"not-an-ip\"\n"),
            "nodes.a.address: ",
        ),
    ];
    for (text, wanted) in cases {
        let path = write_file(dir.path(), "bad.toml", &text);
        let out = novabmc(&["serve", "--config", path.to_str().expect("path")]);
        assert_ne!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches(wanted).count(), 1, "{err}");
        assert_eq!(err.matches("bad.toml").count(), 1, "{err}");
        assert!(!err.contains("default."), "{err}");
    }
    let out = novabmc(&["serve", "--config", "/nonexistent/novabmc.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// Start-up says once what is served (count, addresses, ports); the line
/// per node is at debug level, so 10,000 nodes do not log 10,000 lines.
#[test]
fn start_up_summarises_the_nodes_in_one_line() {
    let d = Daemon::start(&Setup {
        nodes: 3,
        ..Setup::default()
    });
    let ip = d.nodes[0].ip().to_string();
    eventually("the summary line", || {
        !d.log_lines(&["INFO", "serving", "nodes=3"]).is_empty()
    });
    let info = d.log_lines(&["INFO", "serving"]);
    assert_eq!(info.len(), 1, "{}", d.log());
    assert!(
        info[0].contains(&format!("{ip} ports 6230-6232")),
        "{info:?}"
    );
    assert_eq!(
        d.log_lines(&["DEBUG", "serving", "node="]).len(),
        3,
        "{}",
        d.log()
    );
}

#[test]
fn busy_address_is_a_clear_error() {
    let d = Daemon::start(&Setup::default());
    let dir = tempfile::tempdir().expect("dir");
    let node = d.nodes[0];
    let path = write_file(
        dir.path(),
        "clash.toml",
        &format!(
            "[users.admin]\npassword = \"x\"\n[nodes.clash]\naddress = \"{}\"\nport = {}\n",
            node.ip(),
            node.port()
        ),
    );
    let out = novabmc(&["serve", "--config", path.to_str().expect("path")]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node clash: cannot listen on"), "{err}");
}

#[test]
fn sigterm_stops_cleanly() {
    let mut d = Daemon::start(&Setup::default());
    ipmitool(d.nodes[0], ADMIN, &["power", "status"]).ok();
    let status = d.stop().expect("status");
    assert!(status.success(), "{status:?}");
    assert!(d.log().contains("stopped"), "{}", d.log());
}

#[test]
fn logs_never_show_secrets() {
    let secret = "Sup3rSecretPw";
    let kg = "6e6f766162636b6579";
    let dir = tempfile::tempdir().expect("dir");
    let node = std::net::SocketAddr::from((unique_loopback(), 6230));
    let path = write_file(
        dir.path(),
        "secret.toml",
        &format!(
            "[bmc]\nkg = \"{kg}\"\n[users.admin]\npassword = \"{secret}\"\n[nodes.a]\naddress = \"{}\"\nport = {}\n",
            node.ip(),
            node.port()
        ),
    );
    let log = std::fs::File::create(dir.path().join("log")).expect("log");
    let mut child = Spawned::new(
        Command::new(env!("CARGO_BIN_EXE_novabmc"))
            .args([
                "--log",
                "trace",
                "serve",
                "--config",
                path.to_str().expect("path"),
            ])
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    eventually("daemon up", || ping(node, Duration::from_millis(100)));
    ipmitool(node, ("admin", secret), &["-y", kg, "power", "on"]).ok();
    ipmitool(
        node,
        ("admin", "wrong-password"),
        &["-y", kg, "-R", "1", "-N", "1", "power", "status"],
    );
    child.stop();
    let text = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(
        text.contains("chassis control"),
        "trace log was written: {text}"
    );
    for s in [secret, kg, "wrong-password", "novabckey"] {
        assert!(!text.contains(s), "{s} in log:\n{text}");
    }
}

#[test]
fn demo_prints_what_to_try_and_serves() {
    let address = unique_loopback();
    let child = Spawned::new(
        Command::new(env!("CARGO_BIN_EXE_novabmc"))
            .args([
                "demo",
                "--address",
                &address.to_string(),
                "--base-port",
                "6230",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn demo"),
    );
    let node = std::net::SocketAddr::from((address, 6233));
    eventually("demo up", || ping(node, Duration::from_millis(100)));
    assert_eq!(
        ipmitool(node, ("admin", "password"), &["power", "status"]).ok(),
        "Chassis Power is off\n"
    );
    // The built-in simulator's console is plain ws:// on loopback, which
    // the demo's configuration allows.
    let mut sol = crate::sol::Terminal::sol(node, ("admin", "password"));
    sol.wait_for("demo-3 login: ");
    sol.type_text("~.");
    assert_eq!(sol.wait_exit(), Some(0), "{}", sol.output());
    let out = child.signal_and_wait("INT");
    assert!(out.status.success(), "{:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "ipmitool -I lanplus -H {address} -p 6230 -U admin -P password power status"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ipmipower -D LAN_2_0 -h {address}:6230 -u admin -p password --stat"
        )),
        "{text}"
    );
}
