//! Live reload with the real ipmitool: SIGHUP re-reads the configuration,
//! starts added nodes, stops removed ones, restarts changed ones alone,
//! applies new passwords to new sessions, and leaves every other node's
//! socket and sessions alone; a broken file is refused and everything
//! keeps serving.

use crate::cloud;
use crate::common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;

/// A configuration with the test users (the operator's password given)
/// and nodes (name, port) on `ip`.
fn toml(ip: std::net::Ipv4Addr, operator_pw: &str, nodes: &[(&str, u16)]) -> String {
    let mut t = format!(
        "[users.{}]\npassword = \"{}\"\n[users.{}]\npassword = \"{operator_pw}\"\n\
         privilege = \"operator\"\n[backend]\ntype = \"simulated\"\npower_on_ms = 100\n\
         power_off_ms = 100\n",
        ADMIN.0, ADMIN.1, OPERATOR.0
    );
    for (name, port) in nodes {
        t.push_str(&format!(
            "[nodes.{name}]\naddress = \"{ip}\"\nport = {port}\n"
        ));
    }
    t
}

fn hup(d: &Daemon) {
    let ok = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP failed");
}

fn answers(node: SocketAddr) -> bool {
    ping(node, std::time::Duration::from_millis(200))
}

#[test]
fn reload_adds_removes_and_moves_nodes_while_sessions_survive() {
    let ip = unique_loopback();
    let at = |port| SocketAddr::from((ip, port));
    let (a, b, c, d_old, d_new) = (at(6230), at(6231), at(6232), at(6233), at(6243));
    let daemon = Daemon::start_with(
        &toml(ip, OPERATOR.1, &[("a", 6230), ("c", 6232), ("d", 6233)]),
        vec![a, c, d_old],
    );
    assert!(!answers(b));
    let mut shell = Shell::start(a, ADMIN, &[]);
    shell.run("power on", "Chassis Power Control: Up/On");
    shell.run("power status", "Chassis Power is on");

    write_file(
        daemon.dir(),
        "novabmc.toml",
        &toml(
            ip,
            "new-op-secret",
            &[("a", 6230), ("b", 6231), ("d", 6243)],
        ),
    );
    hup(&daemon);
    eventually("the reload to be logged", || {
        !daemon
            .log_lines(&["configuration reloaded", "added b; removed c; changed d"])
            .is_empty()
    });
    // The session opened before the reload still works, and it is the
    // only one node a has seen.
    shell.run("power off", "Chassis Power Control: Down/Off");
    shell.run("power status", "Chassis Power is off");
    assert_eq!(
        daemon.log_lines(&["session opened", "node=\"a\""]).len(),
        1,
        "{}",
        daemon.log()
    );
    // B answers, C is gone, D moved; a, on the rebuilt backend, still
    // shows its inventory, and b has one.
    ipmitool(b, ADMIN, &["power", "status"]).ok();
    for node in [a, b] {
        let fru = ipmitool(node, ADMIN, &["fru", "print", "0"]);
        assert!(fru.ok().contains("OpenStack Nova"), "{fru:#?}");
    }
    eventually("node c to stop answering", || !answers(c));
    assert!(!answers(d_old), "d still answers on its old port");
    assert!(
        ipmitool(d_new, ADMIN, &["power", "status"])
            .ok()
            .contains("Chassis Power is off")
    );
    // New sessions use the new password.
    ipmitool(
        a,
        (OPERATOR.0, "new-op-secret"),
        &["-L", "OPERATOR", "power", "status"],
    )
    .ok();
    ipmitool(a, OPERATOR, &["-L", "OPERATOR", "power", "status"]).failed();

    // A broken file is refused; everything keeps serving.
    write_file(daemon.dir(), "novabmc.toml", "[nodes.a\naddress = ");
    hup(&daemon);
    eventually("the refusal to be logged", || {
        !daemon.log_lines(&["ERROR", "reload refused"]).is_empty()
    });
    shell.run("power status", "Chassis Power is off");
    ipmitool(b, ADMIN, &["power", "status"]).ok();
    ipmitool(d_new, ADMIN, &["power", "status"]).ok();
    ipmitool(
        a,
        (OPERATOR.0, "new-op-secret"),
        &["-L", "OPERATOR", "power", "status"],
    )
    .ok();
}

/// With the Nova backend a reload that adds and removes nodes reconfigures
/// the backend in place: the node that did not change keeps its session,
/// its known server and its work in flight: a power on acknowledged while
/// Nova is still stopping the server, just before the reload, is carried
/// out after the stop, once; the node answers at once after the reload,
/// never "node busy"; the added node reaches its server and the removed
/// one stops.
#[test]
fn a_nova_reload_keeps_unchanged_nodes_answering_and_their_work_going() {
    let sim = cloud::Sim::start();
    let vm_a = sim.add_server("vm-a", true);
    sim.add_server("vm-b", false);
    sim.add_server("vm-c", true);
    sim.timings(
        serde_json::json!({"start_ms": 1500, "stop_ms": 3000, "reboot_ms": 1200,
        "rebuild_ms": 2500, "rescue_ms": 1500}),
    );
    let ip = unique_loopback();
    let at = |port| SocketAddr::from((ip, port));
    let (a, b, c) = (at(6230), at(6231), at(6232));
    let config = |nodes: &[(&str, u16)]| {
        let mut t = format!(
            "[users.admin]\npassword = \"password\"\n{}",
            sim.backend_toml("rebuild")
        );
        for (name, port) in nodes {
            t.push_str(&format!(
                "[nodes.{name}]\naddress = \"{ip}\"\nport = {port}\nserver = \"vm-{name}\"\n"
            ));
        }
        t
    };
    let daemon = Daemon::start_with(&config(&[("a", 6230), ("c", 6232)]), vec![a, c]);
    let mut shell = Shell::start(a, ADMIN, &[]);
    eventually("node a to know its server", || {
        shell.run("power status", "Chassis Power").contains("is on")
    });
    shell.run("power off", "Chassis Power Control: Down/Off");
    eventually("Nova to be stopping vm-a", || {
        sim.actions(&vm_a).iter().any(|k| k == "os-stop")
    });
    shell.run("power on", "Chassis Power Control: Up/On");

    write_file(
        daemon.dir(),
        "novabmc.toml",
        &config(&[("a", 6230), ("b", 6231)]),
    );
    hup(&daemon);
    eventually("the reload to be logged", || {
        !daemon
            .log_lines(&[
                "configuration reloaded",
                "added b; removed c",
                "backend_restarted=false",
            ])
            .is_empty()
    });
    // At once, not eventually: the unchanged node never stops answering.
    let status = shell.run("power status", "Chassis Power");
    assert!(status.contains("Chassis Power is on"), "{status}");
    eventually("vm-a to be started after its stop", || {
        sim.actions(&vm_a).len() >= 2
    });
    eventually("node b to report its server off", || {
        ipmitool(b, ADMIN, &["power", "status"])
            .stdout
            .contains("Chassis Power is off")
    });
    eventually("node c to stop answering", || !answers(c));
    assert_eq!(
        sim.actions(&vm_a),
        vec!["os-stop".to_string(), "os-start".to_string()],
        "vm-a got the one stop and the one start asked of it"
    );
    assert_eq!(
        daemon.log_lines(&["session opened", "node=\"a\""]).len(),
        1,
        "{}",
        daemon.log()
    );
}
