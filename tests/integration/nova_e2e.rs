//! End to end: ipmitool and ipmipower against the daemon, the daemon
//! against Nova. By default Nova is the simulator process; with
//! `NOVABMC_E2E_CLOUD`, `NOVABMC_E2E_SERVERS` and `NOVABMC_E2E_IPXE_IMAGE`
//! set, the same tests drive a real cloud (see the README). Checks of the
//! exact Nova calls made only run against the simulator, which records them.

use crate::cloud;
use crate::common;

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
/// every mode, then the deployed disk; persistent PXE boots the network
/// every time. Against the simulator each boot is checked by what it ran:
/// the iPXE image (a rebuild or rescue with it, or `libvirt:pxe-first`),
/// or the image the deployment wrote to the disk.
#[test]
fn network_boot_modes() {
    let c = TestCloud::from_env();
    for mode in ["rebuild", "rescue", "metadata"] {
        let s = c.servers(&format!("boot-{mode}"), 1, false).remove(0);
        let d = daemon(&c, mode, std::slice::from_ref(&s));
        let n = d.nodes[0];
        resolved(&d, 0);
        let param5 = || {
            ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "5"])
                .ok()
                .to_string()
        };
        ipmitool(n, ADMIN, &["raw", "0x00", "0x08", "0x03", "0x08"]).ok();
        ipmitool(
            n,
            ADMIN,
            &[
                "raw", "0x00", "0x08", "0x05", "0xa0", "0x04", "0x00", "0x00", "0x00",
            ],
        )
        .ok();
        assert!(param5().contains("Force PXE"), "{mode}");
        ipmitool(n, ADMIN, &["power", "on"]).ok();
        let up = if mode == "rescue" { "RESCUE" } else { "ACTIVE" };
        c.wait_settled(&s.id);
        c.wait_for(&s.id, up);
        // The boot used the one-time flag up.
        let after = param5();
        assert!(
            !after.contains("Force PXE") && after.contains("No override"),
            "{mode}: {after}"
        );
        let sim = c.sim();
        let ipxe = sim.map(|sim| sim.image_id("ipxe-boot"));
        let os = sim.map(|sim| sim.image_id("centos-stream-9"));
        if let Some(sim) = sim {
            let ipxe = ipxe.as_deref().expect("ipxe");
            let actions = sim.actions(&s.id);
            let boots = boot_records(sim, &s.id);
            match mode {
                "rebuild" => {
                    assert_eq!(actions, ["rebuild", "os-start"], "{mode}");
                    assert_eq!(rebuild_images(sim, &s.id), [ipxe], "{mode}");
                    assert_eq!(boots, [("disk".to_string(), ipxe.to_string())], "{mode}");
                }
                "rescue" => {
                    assert_eq!(actions, ["rescue"], "{mode}");
                    assert_eq!(boots, [("rescue".to_string(), ipxe.to_string())], "{mode}");
                }
                _ => {
                    assert_eq!(actions, ["os-start"], "{mode}");
                    assert_eq!(boots.len(), 1, "{mode}: {boots:?}");
                    assert_eq!(boots[0].0, "network", "{mode}: {boots:?}");
                }
            }
            // The deploy ramdisk, network-booted, writes the OS to the disk.
            sim.deploy(&s.id, "centos-stream-9");
        }
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
        // A persistent flag is not used up by the boots it applies to.
        let text = param5();
        assert!(
            text.contains("Force Boot from default Hard-Drive")
                && text.contains("Options apply to all future boots"),
            "{mode}: {text}"
        );
        if let Some(sim) = sim {
            let boots = boot_records(sim, &s.id);
            let last = boots.last().expect("a boot");
            assert_eq!(
                (last.0.as_str(), last.1.as_str()),
                ("disk", os.as_deref().expect("os")),
                "{mode}: the deployed disk boots: {boots:?}"
            );
            let actions = sim.actions(&s.id);
            let first = if mode == "rebuild" { 2 } else { 1 };
            assert!(
                cloud::is_one_disk_reboot(&actions[first..]),
                "{mode}: {actions:?}"
            );
            if mode == "rebuild" {
                assert_eq!(rebuild_images(sim, &s.id).len(), 1, "no second rebuild");
            }
            if mode == "metadata" {
                assert_eq!(
                    c.metadata(&s.id)
                        .get("libvirt:pxe-first")
                        .map(String::as_str),
                    Some("")
                );
            }
        }
        // Persistent PXE: two boots, two network boots.
        ipmitool(
            n,
            ADMIN,
            &["chassis", "bootdev", "pxe", "options=persistent"],
        )
        .ok();
        let before = c.sim().map(|sim| boot_records(sim, &s.id).len());
        for _ in 0..2 {
            ipmitool(n, ADMIN, &["power", "cycle"]).ok();
            c.wait_settled(&s.id);
            c.wait_for(&s.id, up);
        }
        assert!(param5().contains("Force PXE"), "{mode}: still persistent");
        if let (Some(sim), Some(before)) = (c.sim(), before) {
            let ipxe = ipxe.as_deref().expect("ipxe");
            let boots = boot_records(sim, &s.id);
            let network: Vec<_> = boots[before..]
                .iter()
                .filter(|(from, image)| match mode {
                    "rebuild" => from == "disk" && image == ipxe,
                    "rescue" => from == "rescue" && image == ipxe,
                    _ => from == "network",
                })
                .collect();
            // In rescue mode the disk boots briefly between the two: a
            // rescued server is unrescued before it is rescued again.
            assert_eq!(network.len(), 2, "{mode}: {:?}", &boots[before..]);
        }
    }
}

/// What the simulated server booted, in order: (`disk`, `network` or
/// `rescue`, the image ID it ran).
fn boot_records(sim: &Sim, id: &str) -> Vec<(String, String)> {
    sim.records()
        .into_iter()
        .find(|r| r["id"] == id)
        .and_then(|r| r["boots"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|b| {
            (
                b["from"].as_str().unwrap_or_default().to_string(),
                b["image"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The images of the rebuilds Nova accepted for server `id`.
fn rebuild_images(sim: &Sim, id: &str) -> Vec<String> {
    sim.requests()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("{id}/action")))
                && r["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
        })
        .filter_map(|r| {
            r["body"]["rebuild"]["imageRef"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// `ipmitool mc guid` prints the server's UUID. The bytes on the wire are
/// checked against the three layouts ipmitool knows, computed here from
/// the UUID: for the rare UUID whose every layout ipmitool misreads, the
/// daemon must send the IPMI layout, which `mc guid ipmi` and FreeIPMI's
/// `bmc-info` (which always reads the IPMI layout) print right.
#[test]
fn system_guid_is_the_server_uuid() {
    let c = TestCloud::from_env();
    let servers = c.servers("guid", 4, false);
    let d = daemon(&c, "rebuild", &servers);
    for (i, s) in servers.iter().enumerate() {
        resolved(&d, i);
        let n = d.nodes[i];
        let text = ipmitool(n, ADMIN, &["mc", "guid"]).ok().to_string();
        let printed = text
            .lines()
            .find_map(|l| l.strip_prefix("System GUID   : "))
            .expect("GUID line");
        let raw: Vec<u8> = ipmitool(n, ADMIN, &["raw", "0x06", "0x37"])
            .ok()
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect();
        let uuid: Vec<u8> = hex::decode(s.id.replace('-', "")).expect("uuid hex");
        let ipmi: Vec<u8> = uuid.iter().rev().copied().collect();
        let mut smbios = uuid.clone();
        smbios[0..4].reverse();
        smbios[4..6].reverse();
        smbios[6..8].reverse();
        assert!(
            raw == ipmi || raw == smbios || raw == uuid,
            "{}: {raw:02x?} is no layout of the UUID",
            s.id
        );
        let bmc_info = run(
            "bmc-info",
            &[
                "-D",
                "LAN_2_0",
                "-h",
                &hostport(n),
                "-u",
                ADMIN.0,
                "-p",
                ADMIN.1,
                "--get-system-guid",
            ],
        );
        if printed != s.id {
            assert_eq!(raw, ipmi, "{}: printed as {printed}", s.id);
            let text = ipmitool(n, ADMIN, &["mc", "guid", "ipmi"]).ok().to_string();
            assert!(text.contains(&s.id), "{text}");
        }
        if raw == ipmi {
            assert!(
                bmc_info.ok().to_lowercase().contains(&s.id),
                "{}: {bmc_info:?}",
                s.id
            );
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
    let nova_answers = || sim.requests().len();
    let before = nova_answers();
    // ipmipower retransmits after 0.4 s and gives up after its session
    // timeout: the answers come from the BMC without waiting for Nova,
    // which answers nothing for ten seconds.
    let out = ipmipower(n, ADMIN, &["--on", "--retransmission-timeout", "400"]);
    assert_eq!(out.ok(), format!("{h}: ok\n"));
    assert_eq!(ipmipower(n, ADMIN, &["--stat"]).ok(), format!("{h}: on\n"));
    assert_eq!(nova_answers(), before, "the replies did not wait for Nova");
    eventually_within("ACTIVE with a slow Nova", Duration::from_secs(120), || {
        c.status(&s.id) == "ACTIVE"
    });
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

/// Boot options set while a server is rescued (Nova refuses metadata
/// writes then) reach its metadata once it is unrescued.
#[test]
fn options_set_while_rescued_are_saved_once_unrescued() {
    let c = TestCloud::Sim(Sim::start());
    let s = c.servers("rescued", 1, true).remove(0);
    let d = daemon(&c, "rescue", std::slice::from_ref(&s));
    let n = d.nodes[0];
    resolved(&d, 0);
    ipmitool(n, ADMIN, &["chassis", "bootdev", "pxe"]).ok();
    ipmitool(n, ADMIN, &["power", "reset"]).ok();
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "RESCUE");
    let saved = || c.metadata(&s.id).get("novabmc_boot").cloned();
    eventually("the used-up PXE flag saved", || {
        saved().is_some_and(|v| flags_of(&v).1 == 0x00)
    });
    // Disk, persistent, while rescued: accepted, not yet in Nova.
    let sim = c.sim().expect("sim");
    let refused_writes = || {
        sim.requests()
            .iter()
            .filter(|r| {
                r["method"] == "PUT"
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/metadata/novabmc_boot"))
                    && r["status"] == 409
            })
            .count()
    };
    let refused_before = refused_writes();
    let before = saved();
    ipmitool(
        n,
        ADMIN,
        &["chassis", "bootdev", "disk", "options=persistent"],
    )
    .ok();
    eventually("the write tried and refused", || {
        refused_writes() > refused_before
    });
    assert_eq!(
        saved(),
        before,
        "Nova refuses metadata writes while rescued"
    );
    ipmitool(n, ADMIN, &["power", "cycle"]).ok();
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "ACTIVE");
    eventually("saved once unrescued", || {
        saved().is_some_and(|v| {
            let (d1, d2) = flags_of(&v);
            d1 & 0xc0 == 0xc0 && d2 == 0x08
        })
    });
}

/// Boot flag data 1 and 2 from the `novabmc_boot` metadata value
/// (`v1:` and the hex of set-in-progress, valid-bit clearing, boot-info
/// acknowledge, the five flag bytes and the invalid mask).
fn flags_of(v: &str) -> (u8, u8) {
    let bytes = hex::decode(v.strip_prefix("v1:").expect("v1")).expect("hex");
    (bytes[3], bytes[4])
}

/// A one-time boot flag is used up only by a boot: not by power off, an
/// NMI, a power on while on, or a boot whose Nova call failed.
#[test]
fn a_one_time_flag_waits_for_a_boot() {
    let c = TestCloud::Sim(Sim::start());
    let s = c.servers("flag", 1, true).remove(0);
    let d = daemon(&c, "rescue", std::slice::from_ref(&s));
    let n = d.nodes[0];
    resolved(&d, 0);
    let pxe = || {
        ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "5"])
            .ok()
            .contains("Force PXE")
    };
    ipmitool(n, ADMIN, &["chassis", "bootdev", "pxe"]).ok();
    for command in ["diag", "on", "off"] {
        ipmitool(n, ADMIN, &["power", command]).ok();
        c.wait_settled(&s.id);
        assert!(pxe(), "used up by power {command}");
    }
    c.wait_for(&s.id, "SHUTOFF");
    let sim = c.sim().expect("sim");
    sim.faults(json!({"nova_down": true}));
    ipmitool(n, ADMIN, &["power", "on"]).ok();
    eventually("calls refused", || {
        sim.requests().iter().filter(|r| r["status"] == 503).count() >= 2
    });
    assert!(pxe(), "used up by a boot that did not happen");
    sim.faults(json!({}));
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "RESCUE");
    assert!(!pxe(), "used up by the boot");
    assert_eq!(
        c.actions(&s.id).expect("sim"),
        ["trigger_crash_dump", "os-stop", "rescue"]
    );
}

/// A Chassis Control whose reply is lost and retransmitted by ipmitool is
/// answered from the reply cache and reaches Nova once.
#[test]
fn a_retransmitted_power_command_reaches_nova_once() {
    let c = TestCloud::Sim(Sim::start());
    let s = c.servers("retransmit", 1, false).remove(0);
    let backend = c.backend_toml("rebuild");
    let (toml, nodes) = cloud::config(
        &backend.replace("[backend]", "[bmc]\ncipher_suites = [2, 3, 17]\n[backend]"),
        unique_loopback(),
        &[("node-0", s.reference.as_str())],
        "",
    );
    let d = Daemon::start_with(&toml, nodes);
    resolved(&d, 0);
    let mut dropped = false;
    // Suite 2 (integrity, no encryption) lets the relay see which reply to
    // drop: the first Chassis Control response (netFn 01, cmd 02).
    let relay = Relay::start(
        d.nodes[0],
        Box::new(move |datagram| {
            let m = datagram.get(16..).unwrap_or_default();
            let is_control =
                datagram.get(5) == Some(&0x40) && m.len() > 6 && m[1] >> 2 == 0x01 && m[5] == 0x02;
            if is_control && !dropped {
                dropped = true;
                return true;
            }
            false
        }),
    );
    let out = ipmitool(
        relay.addr,
        ADMIN,
        &["-C", "2", "-R", "4", "-N", "1", "power", "on"],
    );
    assert_eq!(out.ok(), "Chassis Power Control: Up/On\n");
    let replies = relay
        .datagrams()
        .iter()
        .filter(|(dir, p)| {
            *dir == Dir::ToConsole && p.len() > 22 && p[17] >> 2 == 0x01 && p[21] == 0x02
        })
        .count();
    assert_eq!(replies, 2, "the reply was sent twice");
    c.wait_settled(&s.id);
    c.wait_for(&s.id, "ACTIVE");
    assert_eq!(c.actions(&s.id).expect("sim"), ["os-start"]);
}
