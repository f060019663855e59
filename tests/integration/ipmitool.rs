//! ipmitool 1.8.19 (`-I lanplus`) against the real daemon: the checklist of
//! what Ironic and operators run (clients.md section 8, items 1-4, 6-19 and
//! 25-32).

use crate::common;

use common::*;

fn daemon() -> Daemon {
    Daemon::start(&Setup::default())
}

/// Item 1: the exact command line Ironic builds, with a password file.
#[test]
fn ironic_power_status_line() {
    let d = daemon();
    let node = d.nodes[0];
    let pw = write_file(d.dir(), "pw", ADMIN.1);
    let out = run(
        "ipmitool",
        &[
            "-I",
            "lanplus",
            "-H",
            &node.ip().to_string(),
            "-L",
            "ADMINISTRATOR",
            "-p",
            &node.port().to_string(),
            "-U",
            ADMIN.0,
            "-C",
            "3",
            "-R",
            "1",
            "-N",
            "5",
            "-f",
            pw.to_str().expect("path"),
            "power",
            "status",
        ],
    );
    assert_eq!(out.ok(), "Chassis Power is off\n");
    assert_eq!(out.stderr, "", "nothing on stderr");
}

/// Item 2: without -C, cipher suite discovery picks 17 with no error or
/// stall.
#[test]
fn cipher_suite_discovery_picks_17() {
    let d = daemon();
    let out = ipmitool(d.nodes[0], ADMIN, &["-v", "power", "status"]);
    out.ok();
    let all = out.all();
    assert!(
        all.contains("Using best available cipher suite 17"),
        "{all}"
    );
    assert!(
        !all.contains("Unable to Get Channel Cipher Suites"),
        "{all}"
    );
    assert!(!all.contains("Get Channel Cipher Suites failed"), "{all}");
}

/// Items 3, 4, 6, 7, 8: every power operation, in suite 17 and suite 3.
#[test]
fn power_operations() {
    let d = daemon();
    let n = d.nodes[0];
    for suite in ["17", "3"] {
        let op = |args: &[&str]| {
            let mut a = vec!["-C", suite];
            a.extend_from_slice(args);
            ipmitool(n, ADMIN, &a)
        };
        let status = || op(&["power", "status"]).ok().to_string();
        assert_eq!(op(&["power", "on"]).ok(), "Chassis Power Control: Up/On\n");
        assert_eq!(status(), "Chassis Power is on\n");
        assert_eq!(
            op(&["power", "off"]).ok(),
            "Chassis Power Control: Down/Off\n"
        );
        assert_eq!(status(), "Chassis Power is off\n");
        // Cycle while off powers on, as MAAS expects.
        assert_eq!(
            op(&["power", "cycle"]).ok(),
            "Chassis Power Control: Cycle\n"
        );
        assert_eq!(status(), "Chassis Power is on\n");
        assert_eq!(
            op(&["power", "cycle"]).ok(),
            "Chassis Power Control: Cycle\n"
        );
        assert_eq!(status(), "Chassis Power is on\n");
        assert_eq!(
            op(&["power", "reset"]).ok(),
            "Chassis Power Control: Reset\n"
        );
        assert_eq!(status(), "Chassis Power is on\n");
        assert_eq!(op(&["power", "diag"]).ok(), "Chassis Power Control: Diag\n");
        assert_eq!(op(&["power", "soft"]).ok(), "Chassis Power Control: Soft\n");
        assert_eq!(status(), "Chassis Power is off\n");
    }
    assert_eq!(
        d.log_lines(&["chassis control", "control=\"diag\""]).len(),
        2
    );
}

fn bootparam5(d: &Daemon) -> String {
    ipmitool(d.nodes[0], ADMIN, &["chassis", "bootparam", "get", "5"])
        .ok()
        .to_string()
}

/// Items 9, 10, 16, 18: Ironic's UEFI path (raw param 3 then param 5), the
/// read-back Ironic parses, and the one-time flag used up by the boot.
#[test]
fn ironic_uefi_one_time_pxe() {
    let d = daemon();
    let n = d.nodes[0];
    assert_eq!(
        ipmitool(n, ADMIN, &["raw", "0x00", "0x08", "0x03", "0x08"])
            .ok()
            .trim(),
        ""
    );
    ipmitool(
        n,
        ADMIN,
        &[
            "raw", "0x00", "0x08", "0x05", "0xa0", "0x04", "0x00", "0x00", "0x00",
        ],
    )
    .ok();
    let text = bootparam5(&d);
    for line in [
        "Boot parameter version: 1",
        "Boot Flag Valid",
        "Options apply to only next boot",
        "BIOS EFI boot",
        "Boot Device Selector : Force PXE",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // Ironic's expression for the device.
    let selector = text
        .lines()
        .find_map(|l| {
            l.split_once("Boot Device Selector : ")
                .map(|(_, v)| v.trim())
        })
        .expect("selector line");
    assert_eq!(selector, "Force PXE");
    assert!(!text.contains("Options apply to all future boots"));

    ipmitool(n, ADMIN, &["power", "on"]).ok();
    let text = bootparam5(&d);
    assert!(text.contains("Boot Flag Invalid"), "{text}");
    assert!(
        text.contains("Boot Device Selector : No override"),
        "{text}"
    );
    assert!(text.contains("BIOS EFI boot"), "EFI bit kept: {text}");
    ipmitool(n, ADMIN, &["power", "reset"]).ok();
    let boots = d.log_lines(&["simulated machine boots"]);
    assert_eq!(boots.len(), 2, "{boots:?}");
    assert!(boots[0].contains("Pxe"), "{boots:?}");
    assert!(boots[1].contains("NoOverride"), "{boots:?}");
}

/// Item 11: a persistent EFI disk boot survives power cycles.
#[test]
fn persistent_disk_survives_cycles() {
    let d = Daemon::start(&Setup {
        backend: "power_on_ms = 20\npower_off_ms = 20\n".into(),
        ..Setup::default()
    });
    let n = d.nodes[0];
    ipmitool(
        n,
        ADMIN,
        &[
            "raw", "0x00", "0x08", "0x05", "0xe0", "0x08", "0x00", "0x00", "0x00",
        ],
    )
    .ok();
    // Power cycles as off then on: each "on" after an "off" boots the
    // simulated machine at once, whatever state its last transition is in
    // (a "cycle" during a reboot would be absorbed, as a retransmission is).
    for _ in 0..3 {
        ipmitool(n, ADMIN, &["power", "off"]).ok();
        ipmitool(n, ADMIN, &["power", "on"]).ok();
    }
    let text = bootparam5(&d);
    assert!(text.contains("Options apply to all future boots"), "{text}");
    assert!(
        text.contains("Force Boot from default Hard-Drive"),
        "{text}"
    );
    assert!(text.contains("Boot Flag Valid"), "{text}");
    let boots = d.log_lines(&["simulated machine boots", "Disk"]);
    assert_eq!(boots.len(), 3, "{}", d.log());
}

/// Items 12-15: `chassis bootdev` for every device Ironic uses, in both
/// suites, and what `bootparam get 5` then says.
#[test]
fn chassis_bootdev_devices() {
    let d = daemon();
    let n = d.nodes[0];
    let out = ipmitool(n, ADMIN, &["chassis", "bootdev", "pxe"]);
    assert_eq!(out.ok(), "Set Boot Device to pxe\n");
    assert_eq!(out.stderr, "");
    let text = bootparam5(&d);
    assert!(text.contains("Boot Device Selector : Force PXE"), "{text}");
    assert!(text.contains("Boot parameter data: 8004000000"), "{text}");

    ipmitool(
        n,
        ADMIN,
        &["chassis", "bootdev", "disk", "options=persistent"],
    )
    .ok();
    let text = bootparam5(&d);
    assert!(text.contains("Options apply to all future boots"), "{text}");
    assert!(
        text.contains("Force Boot from default Hard-Drive"),
        "{text}"
    );

    let out = ipmitool(
        n,
        ADMIN,
        &["-C", "17", "chassis", "bootdev", "pxe", "options=efiboot"],
    );
    assert_eq!(out.ok(), "Set Boot Device to pxe\n");
    let text = bootparam5(&d);
    assert!(text.contains("Boot parameter data: a004000000"), "{text}");
    assert!(text.contains("BIOS EFI boot"), "{text}");

    for (dev, expect) in [
        ("cdrom", "CD/DVD"),
        ("bios", "BIOS Setup"),
        ("safe", "Hard-Drive, request Safe-Mode"),
    ] {
        ipmitool(n, ADMIN, &["chassis", "bootdev", dev]).ok();
        let text = bootparam5(&d);
        assert!(text.contains(expect), "{dev}: {text}");
    }
}

/// Item 17: parameters 0, 3 and 4 read back; unknown ones are 80h.
#[test]
fn other_boot_parameters() {
    let d = daemon();
    let n = d.nodes[0];
    ipmitool(n, ADMIN, &["raw", "0x00", "0x08", "0x03", "0x1f"]).ok();
    ipmitool(n, ADMIN, &["raw", "0x00", "0x08", "0x04", "0x1f", "0x1f"]).ok();
    let p3 = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "3"]);
    assert!(
        p3.ok()
            .contains("Don't clear valid bit on reset/power cycle cause by PEF"),
        "{p3:?}"
    );
    let p4 = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "4"]);
    assert!(
        p4.ok().contains("BIOS/POST has handled boot info"),
        "{p4:?}"
    );
    let p0 = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "0"]);
    assert!(p0.ok().contains("Set In Progress : set complete"), "{p0:?}");
    let p7 = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "7"]);
    assert!(
        p7.failed().stderr.contains("Unsupported parameter"),
        "{p7:?}"
    );
}

/// Item 19: `mc info` with a vendor Ironic does not special-case.
#[test]
fn mc_info() {
    let d = daemon();
    let text = ipmitool(d.nodes[0], ADMIN, &["mc", "info"])
        .ok()
        .to_string();
    assert!(text.contains("IPMI Version              : 2.0"), "{text}");
    let vendor = text
        .lines()
        .find_map(|l| l.strip_prefix("Manufacturer Name         : "))
        .expect("manufacturer line");
    assert_eq!(vendor, "Unknown");
}

const SESSION_FAILURE: &str = "Unable to establish IPMI v2 / RMCP+ session";

/// Items 25, 26: wrong password and unknown user fail cleanly, and the
/// half-open sessions they leave never lock anyone out.
#[test]
fn bad_credentials() {
    let d = Daemon::start(&Setup {
        bmc: "max_sessions = 4\nsetup_timeout_secs = 1\n".into(),
        ..Setup::default()
    });
    let n = d.nodes[0];
    let out = ipmitool(
        n,
        ("nobody", "x"),
        &["-R", "1", "-N", "1", "power", "status"],
    );
    assert!(out.failed().stderr.contains(SESSION_FAILURE), "{out:?}");
    assert!(
        !d.log_lines(&["login refused", "user=nobody", "UnauthorizedName"])
            .is_empty()
    );
    // More wrong passwords than the table holds sessions: each leaves a
    // half-open session behind, and none of them holds a slot.
    for _ in 0..8 {
        let out = ipmitool(
            n,
            ("admin", "wrong"),
            &["-R", "1", "-N", "1", "power", "status"],
        );
        assert!(out.failed().stderr.contains(SESSION_FAILURE), "{out:?}");
    }
    // The right password works at once.
    assert_eq!(
        ipmitool(n, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).ok(),
        "Chassis Power is off\n"
    );
}

/// Item 27: privilege levels.
#[test]
fn privilege_levels() {
    let d = daemon();
    let n = d.nodes[0];
    let out = ipmitool(n, ADMIN, &["-L", "USER", "power", "on"]);
    assert!(
        out.failed().stderr.contains("Insufficient privilege level"),
        "{out:?}"
    );
    assert_eq!(
        ipmitool(n, ADMIN, &["-L", "USER", "power", "status"]).ok(),
        "Chassis Power is off\n"
    );
    ipmitool(n, ADMIN, &["-L", "OPERATOR", "power", "on"]).ok();
    ipmitool(n, OPERATOR, &["-L", "OPERATOR", "power", "off"]).ok();
    // An operator asking for ADMINISTRATOR (ipmitool's default) is refused
    // in RAKP2.
    let out = ipmitool(n, OPERATOR, &["power", "status"]);
    assert!(out.failed().stderr.contains(SESSION_FAILURE), "{out:?}");
    let out = ipmitool(n, USER, &["-L", "USER", "power", "on"]);
    assert!(
        out.failed().stderr.contains("Insufficient privilege level"),
        "{out:?}"
    );
    // Reset needs ADMINISTRATOR.
    let out = ipmitool(n, OPERATOR, &["-L", "OPERATOR", "mc", "reset", "warm"]);
    assert!(
        out.failed().stderr.contains("Insufficient privilege level"),
        "{out:?}"
    );
    assert!(
        ipmitool(n, ADMIN, &["mc", "reset", "warm"])
            .ok()
            .contains("Sent warm reset command to MC")
    );
}

/// The active sessions a node reports (`session info active`, which counts
/// the asking session too).
fn active_sessions(n: std::net::SocketAddr) -> usize {
    let text = ipmitool(n, ADMIN, &["session", "info", "active"])
        .ok()
        .to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("active sessions"))
        .and_then(|v| v.trim_start().trim_start_matches(':').trim().parse().ok())
        .unwrap_or_else(|| panic!("no session count in {text:?}"))
}

/// Item 21: Cold and Warm Reset drop every session of the node they are
/// sent to, and nothing of any other node.
#[test]
fn reset_drops_the_nodes_sessions() {
    let d = Daemon::start(&Setup {
        nodes: 2,
        ..Setup::default()
    });
    let (n, other) = (d.nodes[0], d.nodes[1]);
    for (kind, printed) in [
        ("warm", "Sent warm reset command to MC"),
        ("cold", "Sent cold reset command to MC"),
    ] {
        let mut shell = Shell::start(n, ADMIN, &["-R", "1", "-N", "1"]);
        shell.run("power status", "Chassis Power is off");
        let mut elsewhere = Shell::start(other, ADMIN, &[]);
        elsewhere.run("power status", "Chassis Power is off");
        assert_eq!(active_sessions(n), 2, "the shell and the asking session");
        assert!(
            ipmitool(n, ADMIN, &["mc", "reset", kind])
                .ok()
                .contains(printed),
            "{kind}"
        );
        assert_eq!(active_sessions(n), 1, "{kind}: only the asking session");
        // The shell's session is gone: its next command gets no answer.
        let text = shell.run("power status", "Unable to get Chassis Power Status");
        assert!(!text.contains("Chassis Power is"), "{kind}: {text}");
        // The other node's session is untouched.
        elsewhere.run("power status", "Chassis Power is off");
        assert_eq!(active_sessions(other), 2, "{kind}");
    }
}

/// Item 28: username/privilege lookup (`-L LEVEL+`).
#[test]
fn username_privilege_lookup() {
    let d = daemon();
    let n = d.nodes[0];
    ipmitool(n, ADMIN, &["-L", "ADMINISTRATOR+", "power", "status"]).ok();
    let out = ipmitool(n, OPERATOR, &["-L", "ADMINISTRATOR+", "power", "status"]);
    assert!(out.failed().stderr.contains(SESSION_FAILURE), "{out:?}");
    ipmitool(n, OPERATOR, &["-L", "OPERATOR+", "power", "status"]).ok();
}

/// Item 29: the BMC key.
#[test]
fn bmc_key() {
    let kg = "31323334353637383930";
    let d = Daemon::start(&Setup {
        bmc: format!("kg = \"{kg}\"\n"),
        ..Setup::default()
    });
    let n = d.nodes[0];
    ipmitool(n, ADMIN, &["-y", kg, "power", "status"]).ok();
    ipmitool(n, ADMIN, &["-C", "3", "-y", kg, "power", "status"]).ok();
    // A wrong or missing key fails RAKP4's check in ipmitool. (ipmitool
    // 1.8.19 then exits 0 for some commands; the message is what counts.)
    for args in [&["-y", "41414141"][..], &[]] {
        let mut a = args.to_vec();
        a.extend_from_slice(&["-R", "1", "-N", "1", "power", "status"]);
        let out = ipmitool(n, ADMIN, &a);
        assert!(out.stderr.contains(SESSION_FAILURE), "{out:?}");
        assert!(!out.stdout.contains("Chassis Power"), "{out:?}");
    }
}

/// Item 30: concurrent ipmitool processes share one SIDm and must not
/// disturb each other.
#[test]
fn concurrent_sessions() {
    let d = daemon();
    let n = d.nodes[0];
    let handles: Vec<_> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                let args: &[&str] = if i % 2 == 0 {
                    &["-C", "3", "power", "status"]
                } else {
                    &["power", "status"]
                };
                ipmitool(n, ADMIN, args)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread").ok(), "Chassis Power is off\n");
    }
}

/// Item 31: a lost Chassis Control reply is answered again from the reply
/// cache when ipmitool retransmits, and the machine powers on once. Suite 2
/// (integrity, no encryption) lets the relay see which reply to drop.
#[test]
fn retransmission_is_answered_from_cache() {
    let d = Daemon::start(&Setup {
        bmc: "cipher_suites = [2, 3, 17]\n".into(),
        ..Setup::default()
    });
    let mut dropped = false;
    let relay = Relay::start(
        d.nodes[0],
        Box::new(move |datagram| {
            // RMCP(4) auth(1) type(1) sid(4) seq(4) len(2) then the message:
            // rqSA netFn chk rsSA seq cmd cc. Drop the first Chassis Control
            // response (netFn 01, cmd 02).
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
    let controls = relay
        .datagrams()
        .iter()
        .filter(|(dir, p)| {
            *dir == Dir::ToConsole && p.len() > 22 && p[17] >> 2 == 0x01 && p[21] == 0x02
        })
        .count();
    assert_eq!(controls, 2, "the reply was sent twice");
    assert_eq!(
        d.log_lines(&["chassis control", "control=\"on\""]).len(),
        1,
        "{}",
        d.log()
    );
    assert_eq!(d.log_lines(&["simulated machine boots"]).len(), 1);
}

/// Item 32: suite 0 is refused.
#[test]
fn suite_zero_refused() {
    let d = daemon();
    let out = ipmitool(d.nodes[0], ADMIN, &["-C", "0", "power", "status"]);
    assert!(
        out.failed().stderr.contains("no matching cipher suite"),
        "{out:?}"
    );
}

/// Item 44 (ipmitool side): a table full of established sessions answers
/// "insufficient resources".
#[test]
fn full_table_is_reported() {
    let d = Daemon::start(&Setup {
        bmc: "max_sessions = 2\n".into(),
        ..Setup::default()
    });
    let n = d.nodes[0];
    // Two shells hold the two sessions.
    let mut shells: Vec<Shell> = (0..2).map(|_| Shell::start(n, ADMIN, &[])).collect();
    for shell in &mut shells {
        shell.run("power status", "Chassis Power is off");
    }
    let out = ipmitool(n, ADMIN, &["-R", "1", "-N", "1", "power", "status"]);
    assert!(
        out.failed()
            .stderr
            .contains("insufficient resources for session"),
        "{out:?}"
    );
}
