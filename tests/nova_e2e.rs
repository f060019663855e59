//! End to end: ipmitool and ipmipower against the daemon, the daemon
//! against Nova. By default Nova is the simulator process; with
//! `NOVABMC_E2E_CLOUD`, `NOVABMC_E2E_SERVERS` and `NOVABMC_E2E_IPXE_IMAGE`
//! set, the same tests drive a real cloud (see the README). Checks of the
//! exact Nova calls made only run against the simulator, which records them.

mod cloud;
mod common;

use std::time::Duration;

use cloud::{Sim, TestCloud, TestServer};
use common::*;
use serde_json::json;

fn daemon(c: &TestCloud, mode: &str, servers: &[TestServer]) -> Daemon {
    let names: Vec<(String, &str)> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("node-{i}"), s.reference.as_str()))
        .collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let (toml, nodes) = cloud::config(&c.backend_toml(mode), unique_loopback(), &pairs, "");
    Daemon::start_with(&toml, nodes)
}

fn status(d: &Daemon, i: usize) -> String {
    ipmitool(d.nodes[i], ADMIN, &["power", "status"])
        .ok()
        .to_string()
}

/// Waits until the daemon can answer for node `i` (its server resolved).
fn resolved(d: &Daemon, i: usize) {
    eventually("server resolved", || {
        ipmitool(
            d.nodes[i],
            ADMIN,
            &["-R", "1", "-N", "1", "power", "status"],
        )
        .code
            == Some(0)
    });
}

/// Every row of the power mapping, with the Nova call each makes.
#[test]
fn power_mapping() {
    let c = TestCloud::from_env();
    let s = c.servers("power", 1, false).remove(0);
    let d = daemon(&c, "rebuild", std::slice::from_ref(&s));
    let n = d.nodes[0];
    resolved(&d, 0);
    assert_eq!(status(&d, 0), "Chassis Power is off\n");
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "on"]).ok(),
        "Chassis Power Control: Up/On\n"
    );
    // Reported at once: the state the node is heading to.
    assert_eq!(status(&d, 0), "Chassis Power is on\n");
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "ACTIVE");
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "cycle"]).ok(),
        "Chassis Power Control: Cycle\n"
    );
    c.wait_settled(&s.id);
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "reset"]).ok(),
        "Chassis Power Control: Reset\n"
    );
    assert_eq!(status(&d, 0), "Chassis Power is on\n");
    c.wait_settled(&s.id);
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "diag"]).ok(),
        "Chassis Power Control: Diag\n"
    );
    c.wait_settled(&s.id);
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "soft"]).ok(),
        "Chassis Power Control: Soft\n"
    );
    assert_eq!(status(&d, 0), "Chassis Power is off\n");
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "SHUTOFF");
    // Cycle while off powers on, as MAAS expects.
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "cycle"]).ok(),
        "Chassis Power Control: Cycle\n"
    );
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "ACTIVE");
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "off"]).ok(),
        "Chassis Power Control: Down/Off\n"
    );
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "SHUTOFF");
    assert_eq!(status(&d, 0), "Chassis Power is off\n");
    if let Some(actions) = c.actions(&s.id) {
        assert_eq!(
            actions,
            [
                "os-start",
                "reboot",
                "reboot",
                "trigger_crash_dump",
                "os-stop",
                "os-start",
                "os-stop"
            ]
        );
        let sim = c.sim().expect("sim");
        let crash = sim
            .requests()
            .into_iter()
            .find(|r| r["body"].get("trigger_crash_dump").is_some())
            .expect("crash dump sent");
        assert_eq!(crash["microversion"], "2.17");
        assert_eq!(sim.server(&s.reference)["nmis"], 1);
    }
}

/// One-time PXE through Ironic's UEFI raw path boots the network once in
/// every mode; persistent PXE boots it every time.
#[test]
fn network_boot_modes() {
    let c = TestCloud::from_env();
    for (mode, expect_once, expect_after) in [
        (
            "rebuild",
            vec!["rebuild", "os-start"],
            vec!["os-stop", "os-start"],
        ),
        (
            "rescue",
            vec!["rescue"],
            vec!["unrescue", "os-stop", "os-start"],
        ),
        ("metadata", vec!["os-start"], vec!["os-stop", "os-start"]),
    ] {
        let s = c.servers(&format!("boot-{mode}"), 1, false).remove(0);
        let d = daemon(&c, mode, std::slice::from_ref(&s));
        let n = d.nodes[0];
        resolved(&d, 0);
        ipmitool(n, ADMIN, &["raw", "0x00", "0x08", "0x03", "0x08"]).ok();
        ipmitool(
            n,
            ADMIN,
            &[
                "raw", "0x00", "0x08", "0x05", "0xa0", "0x04", "0x00", "0x00", "0x00",
            ],
        )
        .ok();
        ipmitool(n, ADMIN, &["power", "on"]).ok();
        let up = if mode == "rescue" { "RESCUE" } else { "ACTIVE" };
        c.wait_settled(&s.id);
        c.wait_for(&s.id, up);
        // Ironic's deploy: disk, persistent; then its reboot (off, on).
        ipmitool(
            n,
            ADMIN,
            &[
                "raw", "0x00", "0x08", "0x05", "0xe0", "0x08", "0x00", "0x00", "0x00",
            ],
        )
        .ok();
        ipmitool(n, ADMIN, &["power", "off"]).ok();
        ipmitool(n, ADMIN, &["power", "on"]).ok();
        c.wait_settled(&s.id);
        c.wait_for(&s.id, "ACTIVE");
        let text = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "5"])
            .ok()
            .to_string();
        assert!(
            text.contains("Force Boot from default Hard-Drive"),
            "{mode}: {text}"
        );
        if let Some(actions) = c.actions(&s.id) {
            assert_eq!(actions[..expect_once.len()], expect_once[..], "{mode}");
            // The reboot is one stop and one start, or one hard reboot,
            // depending on whether the stop had gone out when "on" came.
            let rest = &actions[expect_once.len()..];
            assert!(
                cloud::is_one_disk_reboot(rest),
                "{mode}: {actions:?} (expected after the deploy: {expect_after:?} or a reboot)"
            );
        }
        if let Some(boots) = c.boots(&s.id) {
            let first = match mode {
                "rescue" => "rescue",
                "metadata" => "network",
                _ => "disk",
            };
            assert_eq!(
                boots.first().map(String::as_str),
                Some(first),
                "{mode}: {boots:?}"
            );
            assert_eq!(
                boots.last().map(String::as_str),
                Some("disk"),
                "{mode}: {boots:?}"
            );
        }
        if mode == "metadata" {
            assert_eq!(
                c.metadata(&s.id)
                    .get("libvirt:pxe-first")
                    .map(String::as_str),
                Some("")
            );
        }
        // Persistent PXE: two boots, two network boots.
        ipmitool(
            n,
            ADMIN,
            &["chassis", "bootdev", "pxe", "options=persistent"],
        )
        .ok();
        for _ in 0..2 {
            ipmitool(n, ADMIN, &["power", "cycle"]).ok();
            c.wait_settled(&s.id);
            c.wait_for(&s.id, up);
        }
        if let Some(boots) = c.boots(&s.id) {
            let network = match mode {
                "rescue" => "rescue",
                "metadata" => "network",
                _ => "disk",
            };
            assert_eq!(
                boots.last().map(String::as_str),
                Some(network),
                "{mode}: {boots:?}"
            );
            if mode != "rebuild" {
                // Two more network boots (in rescue mode with the disk
                // briefly booted between them: a rescued server must be
                // unrescued before it can be rescued again).
                let count = |b: &[String]| b.iter().filter(|x| *x == network).count();
                assert_eq!(count(&boots), 3, "{mode}: {boots:?}");
            }
        }
        if let Some(actions) = c.actions(&s.id) {
            let network_calls = actions
                .iter()
                .filter(|a| matches!(a.as_str(), "rebuild" | "rescue"))
                .count();
            let expected = if mode == "metadata" { 0 } else { 3 };
            assert_eq!(network_calls, expected, "{mode}: {actions:?}");
        }
    }
}

/// `ipmitool mc guid` prints the server's UUID.
#[test]
fn system_guid_is_the_server_uuid() {
    let c = TestCloud::from_env();
    let servers = c.servers("guid", 4, false);
    let d = daemon(&c, "rebuild", &servers);
    for (i, s) in servers.iter().enumerate() {
        resolved(&d, i);
        let text = ipmitool(d.nodes[i], ADMIN, &["mc", "guid"])
            .ok()
            .to_string();
        let printed = text
            .lines()
            .find_map(|l| l.strip_prefix("System GUID   : "))
            .expect("GUID line");
        if printed != s.id {
            // About one UUID in a thousand has no encoding ipmitool's
            // guess reads right; it then gets the spec's, read with `ipmi`.
            let uuid = novabmc::backend::nova::guid::parse_uuid(&s.id).expect("uuid");
            let hopeless = [
                novabmc::backend::nova::guid::Layout::Ipmi,
                novabmc::backend::nova::guid::Layout::Rfc4122,
                novabmc::backend::nova::guid::Layout::Smbios,
            ]
            .iter()
            .all(|l| {
                novabmc::backend::nova::guid::ipmitool_detects(
                    &novabmc::backend::nova::guid::encode(uuid, *l),
                    2026,
                ) != Some(*l)
            });
            assert!(hopeless, "{} printed as {printed}", s.id);
            let text = ipmitool(d.nodes[i], ADMIN, &["mc", "guid", "ipmi"])
                .ok()
                .to_string();
            assert!(text.contains(&s.id), "{text}");
        }
    }
}

/// Boot options survive a restart of the daemon, from the server's
/// metadata.
#[test]
fn restart_keeps_boot_options() {
    let c = TestCloud::from_env();
    let s = c.servers("restart", 1, false).remove(0);
    let address = unique_loopback();
    let (toml, nodes) = cloud::config(
        &c.backend_toml("rebuild"),
        address,
        &[("node-0", s.reference.as_str())],
        "",
    );
    let d = Daemon::start_with(&toml, nodes.clone());
    resolved(&d, 0);
    ipmitool(
        d.nodes[0],
        ADMIN,
        &[
            "raw", "0x00", "0x08", "0x05", "0xe0", "0x14", "0x00", "0x00", "0x00",
        ],
    )
    .ok();
    ipmitool(d.nodes[0], ADMIN, &["raw", "0x00", "0x08", "0x03", "0x1f"]).ok();
    let before = ipmitool(d.nodes[0], ADMIN, &["chassis", "bootparam", "get", "5"])
        .ok()
        .to_string();
    eventually("saved", || c.metadata(&s.id).contains_key("novabmc_boot"));
    let dir = d.into_dir();
    let d = Daemon::start_in(dir, &toml, nodes);
    resolved(&d, 0);
    let after = ipmitool(d.nodes[0], ADMIN, &["chassis", "bootparam", "get", "5"])
        .ok()
        .to_string();
    assert_eq!(before, after);
    assert!(
        after.contains("Options apply to all future boots") && after.contains("CD/DVD"),
        "{after}"
    );
    let p3 = ipmitool(d.nodes[0], ADMIN, &["chassis", "bootparam", "get", "3"])
        .ok()
        .to_string();
    assert!(p3.contains("Boot parameter data: 1f"), "{p3}");
}

/// A slow Nova, a storm of 409s, 500s, a revoked token: the BMC keeps
/// answering at once, each request reaches Nova once, and the server ends
/// where it was asked to be.
#[test]
fn faults_do_not_reach_the_console() {
    let sim = Sim::start();
    let c = TestCloud::Sim(sim);
    let s = c.servers("faults", 1, false).remove(0);
    let d = daemon(&c, "rebuild", std::slice::from_ref(&s));
    let n = d.nodes[0];
    let h = n.ip();
    resolved(&d, 0);
    let sim = c.sim().expect("sim");
    sim.faults(json!({"latency_ms": 10000}));
    // ipmipower retransmits after 0.4 s: answers must come at once.
    let out = ipmipower(n, ADMIN, &["--on", "--retransmission-timeout", "400"]);
    assert_eq!(out.ok(), format!("{h}: ok\n"));
    assert_eq!(ipmipower(n, ADMIN, &["--stat"]).ok(), format!("{h}: on\n"));
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    // Nova takes 10 s per answer; the power-on goes out at once.
    for _ in 0..3 {
        if c.status(&s.id) == "ACTIVE" {
            break;
        }
        std::thread::sleep(Duration::from_secs(10));
    }
    c.wait_for(&s.id, "ACTIVE");
    sim.faults(json!({}));
    c.wait_settled(&s.id);
    sim.faults(json!({"conflict_next": 5, "fail_next": 3}));
    sim.expire_tokens();
    assert_eq!(ipmipower(n, ADMIN, &["--off"]).ok(), format!("{h}: ok\n"));
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "SHUTOFF");
    assert_eq!(c.actions(&s.id).expect("sim"), ["os-start", "os-stop"]);
    let log = d.log();
    assert!(log.contains("power state reached"), "{log}");
}

/// Keystone down when the daemon starts: nodes answer "busy" for their
/// state, accept power commands, and carry them out once it is back.
#[test]
fn keystone_down_at_start() {
    let sim = Sim::start();
    let id = sim.add_server("late-0", false);
    sim.faults(json!({"keystone_down": true}));
    let c = TestCloud::Sim(sim);
    let s = TestServer {
        reference: "late-0".into(),
        id,
    };
    let d = daemon(&c, "rebuild", std::slice::from_ref(&s));
    let n = d.nodes[0];
    let out = ipmitool(n, ADMIN, &["power", "status"]);
    assert!(out.failed().stderr.contains("Node busy"), "{out:?}");
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "on"]).ok(),
        "Chassis Power Control: Up/On\n"
    );
    assert_eq!(status(&d, 0), "Chassis Power is on\n");
    c.sim().expect("sim").faults(json!({}));
    c.wait_for(&s.id, "ACTIVE");
    assert_eq!(c.actions(&s.id).expect("sim"), ["os-start"]);
}

/// A server that does not exist fails its node alone.
#[test]
fn missing_server_fails_its_node_alone() {
    let sim = Sim::start();
    let c = TestCloud::Sim(sim);
    let s = c.servers("present", 1, false).remove(0);
    let ghost = TestServer {
        reference: "no-such-server".into(),
        id: String::new(),
    };
    let d = daemon(&c, "rebuild", &[s, ghost]);
    resolved(&d, 0);
    let out = ipmitool(d.nodes[1], ADMIN, &["power", "on"]);
    assert!(
        out.failed()
            .stderr
            .contains("not supported in present state"),
        "{out:?}"
    );
    eventually("logged", || {
        !d.log_lines(&["server no-such-server not found"]).is_empty()
    });
}
