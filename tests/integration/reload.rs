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

/// `GET /healthz` on `listen`: its status, or 0 when it cannot be asked.
fn healthz(listen: SocketAddr) -> u16 {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .ok()
        .and_then(|c| c.get(format!("http://{listen}/healthz")).send().ok())
        .map_or(0, |r| r.status().as_u16())
}

/// Ironic keeps SOL open all the time. A reload that changes `[backend]`
/// while `ipmitool sol activate` is open takes effect whole: the nodes
/// answer again (the console no longer holds the old backend's state
/// directory), the console moves to the new backend and carries typing,
/// and `/healthz` is 200 again. A reload whose new backend cannot start
/// (its state directory cannot be created) is refused and the running
/// configuration keeps serving, and the same file loaded again is
/// retried rather than taken as current.
#[test]
fn a_backend_change_with_a_console_open_takes_effect_whole() {
    let sim = cloud::Sim::start();
    sim.add_server("vm-sol", true);
    let ip = unique_loopback();
    let node = SocketAddr::from((ip, 6230));
    let listen = SocketAddr::from((ip, 9623));
    let config = |backend: &str| {
        format!(
            "[users.admin]\npassword = \"password\"\n{backend}\
             [nodes.n]\naddress = \"{ip}\"\nport = 6230\nserver = \"vm-sol\"\n\
             [metrics]\nlisten = \"{listen}\"\n"
        )
    };
    let backend = sim.backend_toml("rebuild");
    let daemon = Daemon::start_with(&config(&backend), vec![node]);
    eventually("the server resolved", || {
        ipmitool(node, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).code == Some(0)
    });
    eventually("/healthz 200", || healthz(listen) == 200);
    let mut console = crate::sol::Terminal::sol(node, ADMIN);
    console.wait_for("vm-sol login: ");

    // [backend] changes (the refresh interval) with the console open.
    let changed = backend.replace("refresh_secs = 1\n", "refresh_secs = 2\n");
    write_file(daemon.dir(), "novabmc.toml", &config(&changed));
    hup(&daemon);
    eventually("the reload to be logged", || {
        !daemon
            .log_lines(&["configuration reloaded", "backend_restarted=true"])
            .is_empty()
    });
    eventually_within(
        "the node to answer on the new backend",
        std::time::Duration::from_secs(20),
        || ipmitool(node, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).code == Some(0),
    );
    eventually("/healthz 200 again", || healthz(listen) == 200);
    assert!(
        daemon
            .log_lines(&["is in use by another novabmc"])
            .is_empty(),
        "{}",
        daemon.log()
    );
    // The console moved to the new backend: typing reaches the server.
    console.type_text("root\r");
    console.wait_for("vm-sol:~$ ");

    // A backend that cannot start: the reload is refused, the node keeps
    // answering, and loading the same file again tries again.
    let blocker = write_file(daemon.dir(), "not-a-directory", "");
    let broken = backend.replace(
        &format!("state_dir = \"{}\"", sim.state_dir().display()),
        &format!("state_dir = \"{}\"", blocker.join("state").display()),
    );
    assert_ne!(broken, backend);
    write_file(daemon.dir(), "novabmc.toml", &config(&broken));
    hup(&daemon);
    eventually("the refusal to be logged", || {
        !daemon.log_lines(&["ERROR", "reload refused"]).is_empty()
    });
    ipmitool(node, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).ok();
    hup(&daemon);
    eventually("the same file to be refused again", || {
        daemon.log_lines(&["ERROR", "reload refused"]).len() >= 2
    });
    ipmitool(node, ADMIN, &["power", "status"]).ok();
    console.type_text("still here\r");
    console.wait_for("echo: still here");
}

/// The user ID `session info active` reports for `user` in a new session.
fn user_id(node: SocketAddr, user: (&str, &str), level: &str) -> String {
    let out = ipmitool(node, user, &["-L", level, "session", "info", "active"]);
    out.ok()
        .lines()
        .find(|l| l.trim_start().starts_with("user id"))
        .unwrap_or_else(|| panic!("no user id in {}", out.all()))
        .to_string()
}

/// User IDs are stable across a reload (a user added that sorts first
/// does not renumber the others), and the sessions of a user whose
/// password changed end at the reload while the others run on.
#[test]
fn user_ids_stay_and_sessions_of_changed_users_end_at_reload() {
    let ip = unique_loopback();
    let node = SocketAddr::from((ip, 6230));
    let daemon = Daemon::start_with(&toml(ip, OPERATOR.1, &[("a", 6230)]), vec![node]);
    let admin_id = user_id(node, ADMIN, "ADMINISTRATOR");
    let operator_id = user_id(node, OPERATOR, "OPERATOR");
    let mut admin = Shell::start(node, ADMIN, &[]);
    admin.run("power status", "Chassis Power is");
    let mut operator = Shell::start(node, OPERATOR, &["-L", "OPERATOR"]);
    operator.run("power status", "Chassis Power is");

    // A user that sorts before everyone, and the operator's new password.
    let text = toml(ip, "new-op-secret", &[("a", 6230)]).replacen(
        "[users.",
        "[users.aaa]\npassword = \"aaa-secret\"\n[users.",
        1,
    );
    write_file(daemon.dir(), "novabmc.toml", &text);
    hup(&daemon);
    eventually("the reload to be logged", || {
        !daemon.log_lines(&["configuration reloaded"]).is_empty()
    });
    assert_eq!(user_id(node, ADMIN, "ADMINISTRATOR"), admin_id);
    assert_eq!(
        user_id(node, (OPERATOR.0, "new-op-secret"), "OPERATOR"),
        operator_id
    );
    // The admin's session runs on; the operator's ended with the password.
    admin.run("power status", "Chassis Power is");
    let after = operator.run("power status", "Unable to get Chassis Power Status");
    assert!(!after.contains("Chassis Power is"), "{after}");
}
