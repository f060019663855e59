//! Restarts, kills and clouds that are down, silent or changing under the
//! daemon, with the real clients and the Nova simulator process: what was
//! acknowledged is carried out exactly once, whatever happens between.

use crate::cloud;
use crate::common;

use std::net::SocketAddr;
use std::process::Command;

use cloud::{Sim, TestCloud, TestServer};
use common::*;
use serde_json::json;

/// A daemon serving one server of a fresh simulator.
fn rig(mode: &str, on: bool, extra_backend: &str) -> (TestCloud, TestServer, String, Daemon) {
    let cloud = TestCloud::Sim(Sim::start());
    let server = cloud.servers(&format!("restart-{mode}"), 1, on).remove(0);
    let backend = format!("{}{extra_backend}", cloud.backend_toml(mode));
    let (toml, nodes) = cloud::config(
        &backend,
        unique_loopback(),
        &[("node-0", server.reference.as_str())],
        "",
    );
    let daemon = Daemon::start_with(&toml, nodes);
    resolved(daemon.nodes[0]);
    (cloud, server, toml, daemon)
}

fn resolved(node: SocketAddr) {
    eventually("server resolved", || {
        ipmitool(node, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).code == Some(0)
    });
}

fn status(node: SocketAddr) -> String {
    ipmitool(node, ADMIN, &["power", "status"]).ok().to_string()
}

/// Stops the daemon with `signal` and starts it again on the same
/// directory (and so the same state directory).
fn restart(d: Daemon, toml: &str, sigkill: bool) -> Daemon {
    let nodes = d.nodes.clone();
    let dir = if sigkill {
        d.kill_into_dir()
    } else {
        d.into_dir()
    };
    Daemon::start_in(dir, toml, nodes)
}

#[test]
fn a_power_on_acknowledged_while_nova_is_down_survives_sigterm_and_sigkill() {
    for sigkill in [false, true] {
        let (c, s, toml, d) = rig("rebuild", false, "");
        let sim = c.sim().expect("sim");
        sim.faults(json!({"nova_down": true}));
        assert_eq!(
            ipmitool(d.nodes[0], ADMIN, &["power", "on"]).ok(),
            "Chassis Power Control: Up/On\n"
        );
        if !sigkill {
            // SIGTERM: one line per node with work pending.
            let mut d = d;
            d.stop();
            assert!(
                !d.log_lines(&["stopping with work pending", "node-0", "power on"])
                    .is_empty(),
                "{}",
                d.log()
            );
            let nodes = d.nodes.clone();
            let d = Daemon::start_in(d.into_dir(), &toml, nodes);
            finish(&c, &s, d);
        } else {
            let d = restart(d, &toml, true);
            finish(&c, &s, d);
        }
    }

    fn finish(c: &TestCloud, s: &TestServer, d: Daemon) {
        // Nova is still down: the pending power-on is what the node reports.
        assert_eq!(status(d.nodes[0]), "Chassis Power is on\n");
        assert!(
            !d.log_lines(&["resuming a power on acknowledged before the restart"])
                .is_empty(),
            "{}",
            d.log()
        );
        c.sim().expect("sim").faults(json!({}));
        c.wait_settled(&s.id);
        c.wait_for(&s.id, "ACTIVE");
        assert_eq!(c.actions(&s.id).expect("sim"), ["os-start"], "exactly once");
    }
}

#[test]
fn a_one_time_pxe_set_while_nova_is_down_survives_a_kill_and_is_used_once() {
    for sigkill in [false, true] {
        let (c, s, toml, d) = rig("rescue", true, "");
        let sim = c.sim().expect("sim");
        sim.faults(json!({"nova_down": true}));
        ipmitool(d.nodes[0], ADMIN, &["chassis", "bootdev", "pxe"]).ok();
        let d = restart(d, &toml, sigkill);
        let n = d.nodes[0];
        let param = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "5"])
            .ok()
            .to_string();
        assert!(
            param.contains("Force PXE") && param.contains("only next boot"),
            "kept across the restart: {param}"
        );
        c.sim().expect("sim").faults(json!({}));
        eventually("saved in Nova", || {
            c.metadata(&s.id).contains_key("novabmc_boot")
        });
        for _ in 0..3 {
            ipmitool(n, ADMIN, &["power", "cycle"]).ok();
            c.wait_settled(&s.id);
        }
        let boots = c.boots(&s.id).expect("sim");
        assert_eq!(
            boots,
            ["rescue", "disk", "disk"],
            "the network boot once, then disk: {:?}",
            c.actions(&s.id)
        );
    }
}

#[test]
fn an_entry_older_than_the_give_up_time_is_dropped_with_a_log_line() {
    let (c, s, toml, d) = rig("rebuild", false, "give_up_after_secs = 10\n");
    c.sim().expect("sim").faults(json!({"nova_down": true}));
    ipmitool(d.nodes[0], ADMIN, &["power", "on"]).ok();
    let nodes = d.nodes.clone();
    let dir = d.kill_into_dir();
    // Age the entry as eleven seconds of waiting would.
    let path = c.state_dir().join("nodes/node-0.json");
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("entry")).expect("json");
    let changed = entry["power"]["changed_unix_ms"].as_u64().expect("ms");
    entry["power"]["changed_unix_ms"] = (changed - 11_000).into();
    std::fs::write(&path, entry.to_string()).expect("write");
    c.sim().expect("sim").faults(json!({}));
    let d = Daemon::start_in(dir, &toml, nodes);
    resolved(d.nodes[0]);
    assert!(
        !d.log_lines(&["dropping a power on acknowledged before the restart"])
            .is_empty(),
        "{}",
        d.log()
    );
    assert_eq!(status(d.nodes[0]), "Chassis Power is off\n");
    c.wait_settled(&s.id);
    assert!(c.actions(&s.id).expect("sim").is_empty());
}

#[test]
fn keystone_that_accepts_and_never_answers_delays_nothing_for_long() {
    let cloud = TestCloud::Sim(Sim::start());
    let s = cloud.servers("silent", 1, false).remove(0);
    let sim = cloud.sim().expect("sim");
    sim.faults(json!({"keystone_hang": true}));
    let backend = format!(
        "{}request_timeout_secs = 2\n",
        cloud.backend_toml("rebuild")
    );
    let (toml, nodes) = cloud::config(
        &backend,
        unique_loopback(),
        &[("node-0", s.reference.as_str())],
        "",
    );
    let d = Daemon::start_with(&toml, nodes);
    let n = d.nodes[0];
    // Answers come at once: "node busy" for the state, commands accepted.
    let out = ipmitool(n, ADMIN, &["power", "status"]);
    assert!(out.failed().stderr.contains("Node busy"), "{out:?}");
    ipmitool(n, ADMIN, &["power", "on"]).ok();
    assert_eq!(status(n), "Chassis Power is on\n");
    // The silence is timed out, logged with the endpoint, and retried.
    eventually("timeouts logged", || {
        d.log_lines(&[
            "WARN",
            "cannot reach the cloud",
            "authentication at http://",
            "no answer within 2s",
        ])
        .len()
            >= 2
    });
    sim.faults(json!({}));
    cloud.wait_settled(&s.id);
    cloud.wait_for(&s.id, "ACTIVE");
    assert_eq!(cloud.actions(&s.id).expect("sim"), ["os-start"]);
}

#[test]
fn nova_hanging_mid_response_is_timed_out_and_the_call_made_once() {
    let (c, s, _toml, d) = rig("rebuild", false, "request_timeout_secs = 2\n");
    let sim = c.sim().expect("sim");
    // The next two Nova answers stall after their headers: the worker's
    // read and its action (carried out by Nova, answer never finished).
    sim.faults(json!({"stall_body_next": 2}));
    ipmitool(d.nodes[0], ADMIN, &["power", "on"]).ok();
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "ACTIVE");
    assert_eq!(c.actions(&s.id).expect("sim"), ["os-start"]);
    assert!(
        !d.log_lines(&["WARN", "no answer within 2s"]).is_empty(),
        "{}",
        d.log()
    );
}

#[test]
fn a_server_deleted_and_recreated_is_served_again_without_a_restart() {
    let (c, s, _toml, d) = rig("rebuild", true, "");
    let sim = c.sim().expect("sim");
    let n = d.nodes[0];
    sim.delete_server(&s.id);
    eventually("unavailable", || {
        ipmitool(n, ADMIN, &["-R", "1", "-N", "1", "power", "on"])
            .stderr
            .contains("not supported in present state")
    });
    let new = sim.add_server(&s.reference, false);
    eventually("found again", || {
        ipmitool(n, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).stdout
            == "Chassis Power is off\n"
    });
    ipmitool(n, ADMIN, &["power", "on"]).ok();
    c.wait_settled(&new);
    c.wait_for(&new, "ACTIVE");
    assert_eq!(c.actions(&new).expect("sim"), ["os-start"]);
    assert!(
        !d.log_lines(&["server found again"]).is_empty(),
        "{}",
        d.log()
    );
}

#[test]
fn a_rescued_server_whose_guest_halted_powers_on_from_disk() {
    let (c, s, _toml, d) = rig("rescue", true, "");
    let n = d.nodes[0];
    ipmitool(n, ADMIN, &["chassis", "bootdev", "pxe"]).ok();
    ipmitool(n, ADMIN, &["power", "reset"]).ok();
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "RESCUE");
    c.sim().expect("sim").halt(&s.id);
    eventually("seen off", || status(n) == "Chassis Power is off\n");
    ipmitool(n, ADMIN, &["power", "on"]).ok();
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "ACTIVE");
    assert_eq!(c.actions(&s.id).expect("sim"), ["rescue", "unrescue"]);
    assert_eq!(
        c.boots(&s.id).expect("sim").last().map(String::as_str),
        Some("disk")
    );
}

#[test]
fn two_processes_serving_one_server_both_warn() {
    let cloud = TestCloud::Sim(Sim::start());
    let s = cloud.servers("shared", 1, false).remove(0);
    let sim = cloud.sim().expect("sim");
    let start = |state: &str| {
        let dir = tempfile::tempdir().expect("dir");
        let backend = sim.backend_toml_in("rebuild", &dir.path().join(state));
        let (toml, nodes) = cloud::config(
            &backend,
            unique_loopback(),
            &[("node-0", s.reference.as_str())],
            "",
        );
        let d = Daemon::start_with(&toml, nodes);
        resolved(d.nodes[0]);
        (dir, d)
    };
    let (_a_dir, a) = start("a");
    eventually("a's name written", || {
        cloud.metadata(&s.id).contains_key("novabmc_owner")
    });
    let (_b_dir, b) = start("b");
    eventually("b warns at once", || {
        !b.log_lines(&["WARN", "names another novabmc instance"])
            .is_empty()
    });
    eventually("a warns at its next listing", || {
        !a.log_lines(&["WARN", "another novabmc instance now claims this server"])
            .is_empty()
    });
    let warning = &a.log_lines(&["another novabmc instance now claims"])[0];
    assert!(
        warning.contains("/b"),
        "names the other instance: {warning}"
    );
}

#[test]
fn a_second_process_on_the_same_state_directory_is_refused() {
    let (c, s, _toml, _d) = rig("rebuild", false, "");
    let (toml, _nodes) = cloud::config(
        &c.backend_toml("rebuild"),
        unique_loopback(),
        &[("node-0", s.reference.as_str())],
        "",
    );
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(dir.path(), "second.toml", &toml);
    let out = Out::collect(
        Command::new("timeout")
            .arg("20")
            .arg(env!("CARGO_BIN_EXE_novabmc"))
            .args(["serve", "--config"])
            .arg(&config),
        "novabmc serve",
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    let dir_text = c.state_dir().display().to_string();
    assert!(
        out.stderr.contains(&dir_text)
            && out.stderr.contains("in use by another novabmc process")
            && out.stderr.contains("backend.state_dir"),
        "{}",
        out.stderr
    );
}

/// A boot device set before the node's server is resolved (Nova down from
/// the start) is accepted like a power command, kept in the state
/// directory across a kill, and applied once the server is known: Get
/// System Boot Options shows it and it is saved in the server's metadata.
#[test]
fn a_boot_device_set_before_the_server_is_resolved_is_kept_and_applied() {
    let sim = Sim::start();
    let id = sim.add_server("early-boot", false);
    sim.faults(json!({"nova_down": true}));
    let (toml, nodes) = cloud::config(
        &sim.backend_toml("rescue"),
        unique_loopback(),
        &[("node-0", "early-boot")],
        "",
    );
    let d = Daemon::start_with(&toml, nodes);
    let n = d.nodes[0];
    let set = ipmitool(n, ADMIN, &["chassis", "bootdev", "pxe"]);
    assert!(
        set.stdout.contains("Set Boot Device to pxe"),
        "accepted before the server is known: {}",
        set.all()
    );
    let record = std::fs::read_to_string(sim.state_dir().join("nodes/node-0.json"))
        .expect("the write is in the state directory");
    assert!(record.contains("early_boot"), "{record}");
    let d = restart(d, &toml, true);
    let n = d.nodes[0];
    sim.faults(json!({}));
    resolved(n);
    let param = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "5"])
        .ok()
        .to_string();
    assert!(
        param.contains("Force PXE") && param.contains("only next boot"),
        "applied once the server is known: {param}"
    );
    let cloud = TestCloud::Sim(sim);
    eventually("saved in Nova", || {
        cloud.metadata(&id).contains_key("novabmc_boot")
    });
}
