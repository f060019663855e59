//! FreeIPMI 1.6.10 against the real daemon, as MAAS runs it (clients.md
//! section 8, items 33 and 36-41, 44, 47), plus the other FreeIPMI tools an
//! operator reaches for.

use crate::common;

use common::*;

/// A FreeIPMI `tool` as MAAS runs it, as the administrator.
fn maas_run(tool: &str, node: std::net::SocketAddr, args: &[&str]) -> Out {
    maas(tool, node, ADMIN, args)
}

/// MAAS's `ipmipower` invocation.
fn maas_ipmipower(node: std::net::SocketAddr, args: &[&str]) -> Out {
    maas_run("ipmipower", node, args)
}

/// Item 33, 36, 37, 38: MAAS's power query and actions, with its parsing.
#[test]
fn maas_power_flow() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let h = n.ip();
    let state = |out: &Out| -> String {
        let s = out.ok();
        // MAAS: the first match of `:\s*(on|off)` in stdout.
        s.split_once(':')
            .map(|(_, rest)| rest.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(state(&maas_ipmipower(n, &["--stat"])), "off");
    // --cycle --on-if-off while off powers on.
    assert_eq!(
        maas_ipmipower(n, &["--cycle", "--on-if-off"]).ok(),
        format!("{h}: ok\n")
    );
    assert_eq!(state(&maas_ipmipower(n, &["--stat"])), "on");
    // While on it power-cycles, and the one-time PXE flag is used once.
    ipmitool(n, ADMIN, &["chassis", "bootdev", "pxe"]).ok();
    assert_eq!(
        maas_ipmipower(n, &["--cycle", "--on-if-off"]).ok(),
        format!("{h}: ok\n")
    );
    assert_eq!(state(&maas_ipmipower(n, &["--stat"])), "on");
    let boots = d.log_lines(&["simulated machine boots"]);
    assert_eq!(boots.len(), 2, "{boots:?}");
    assert!(boots[1].contains("Pxe"), "{boots:?}");
    assert_eq!(maas_ipmipower(n, &["--off"]).ok(), format!("{h}: ok\n"));
    assert_eq!(state(&maas_ipmipower(n, &["--stat"])), "off");
    // The boots after that one do not network-boot again.
    for k in 3..=4 {
        maas_ipmipower(n, &["--on"]).ok();
        assert_eq!(maas_ipmipower(n, &["--soft"]).ok(), format!("{h}: ok\n"));
        assert_eq!(state(&maas_ipmipower(n, &["--stat"])), "off");
        let boots = d.log_lines(&["simulated machine boots"]);
        assert_eq!(boots.len(), k, "{boots:?}");
        assert!(boots[k - 1].contains("NoOverride"), "{boots:?}");
    }
}

/// Item 39: suite 17 with FreeIPMI, and the default privilege/workarounds.
#[test]
fn suite_17_and_defaults() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let h = n.ip();
    assert_eq!(
        ipmipower(n, ADMIN, &["-I", "17", "--stat"]).ok(),
        format!("{h}: off\n")
    );
    assert_eq!(ipmipower(n, ADMIN, &["--stat"]).ok(), format!("{h}: off\n"));
    assert_eq!(
        ipmipower(n, ADMIN, &["-l", "ADMIN", "--stat"]).ok(),
        format!("{h}: off\n")
    );
    assert_eq!(
        ipmipower(n, ADMIN, &["-l", "USER", "--stat"]).ok(),
        format!("{h}: off\n")
    );
    assert_eq!(
        ipmipower(n, OPERATOR, &["-I", "17", "--on"]).ok(),
        format!("{h}: ok\n")
    );
}

/// Item 40: a Kg given when the BMC has none fails before Open Session.
#[test]
fn wrong_kg_is_reported() {
    let d = Daemon::start(&Setup::default());
    let out = ipmipower(d.nodes[0], ADMIN, &["--stat", "-k", "WRONG"]);
    assert!(out.all().contains("k_g invalid"), "{out:?}");
}

/// With a Kg configured, FreeIPMI logs in with it and fails without it.
#[test]
fn kg_configured() {
    let d = Daemon::start(&Setup {
        bmc: "kg = \"6b6579\"\n".into(),
        ..Setup::default()
    });
    let n = d.nodes[0];
    let h = n.ip();
    assert_eq!(
        ipmipower(n, ADMIN, &["--stat", "-k", "key"]).ok(),
        format!("{h}: off\n")
    );
    assert_eq!(
        ipmipower(n, ADMIN, &["--stat", "-k", "0x6b6579", "-I", "17"]).ok(),
        format!("{h}: off\n")
    );
    let out = ipmipower(n, ADMIN, &["--stat"]);
    assert!(out.all().contains("k_g invalid"), "{out:?}");
}

/// Item 41: IPMI 1.5 fails fast: we advertise no 1.5 authentication type.
#[test]
fn ipmi_15_fails_fast() {
    let d = Daemon::start(&Setup::default());
    let h = hostport(d.nodes[0]);
    let out = run(
        "ipmipower",
        &["-h", &h, "-u", ADMIN.0, "-p", ADMIN.1, "--stat"],
    );
    assert!(
        out.stdout
            .contains("authentication type unavailable for attempted privilege level"),
        "{out:?}"
    );
    // That message comes from the authentication capabilities answer; a
    // BMC that did not answer would give "connection timeout" instead.
    assert!(!out.stdout.contains("timeout"), "{out:?}");
}

/// Item 26, FreeIPMI side: unknown user and wrong password are named.
#[test]
fn bad_credentials_are_named() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let out = ipmipower(n, ("nobody", "x"), &["--stat"]);
    assert!(out.stdout.contains("username invalid"), "{out:?}");
    let out = ipmipower(n, ("admin", "wrong"), &["--stat"]);
    assert!(out.stdout.contains("password invalid"), "{out:?}");
    let out = ipmipower(n, USER, &["-l", "OPERATOR", "--stat"]);
    assert!(
        out.stdout
            .contains("privilege level cannot be obtained for this user"),
        "{out:?}"
    );
}

/// Item 44, FreeIPMI side: a table full of established sessions is "BMC
/// busy".
#[test]
fn full_table_is_busy() {
    let d = Daemon::start(&Setup {
        bmc: "max_sessions = 1\n".into(),
        ..Setup::default()
    });
    let n = d.nodes[0];
    let mut shell = Shell::start(n, ADMIN, &[]);
    shell.run("power status", "Chassis Power is off");
    let out = ipmipower(n, ADMIN, &["--stat"]);
    assert!(out.stdout.contains("BMC busy"), "{out:?}");
}

/// MAAS's boot-device commit: read-modify-write of parameter 5 keeps every
/// bit, then parameters 3 and 4.
#[test]
fn maas_chassis_config_commit() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let file = write_file(
        d.dir(),
        "boot.conf",
        "Section Chassis_Boot_Flags\n        Boot_Flags_Persistent No\n        Boot_Device PXE\nEndSection\n",
    );
    let out = maas_run(
        "ipmi-chassis-config",
        n,
        &["--commit", "--filename", file.to_str().expect("path")],
    );
    out.ok();
    assert_eq!(out.stderr, "");
    let text = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "5"])
        .ok()
        .to_string();
    // The simulated machines have EFI firmware; MAAS's "auto" keeps the bit.
    assert!(text.contains("Boot parameter data: a004000000"), "{text}");
    let p3 = ipmitool(n, ADMIN, &["chassis", "bootparam", "get", "3"])
        .ok()
        .to_string();
    assert!(p3.contains("Boot parameter data: 1f"), "{p3}");
}

/// Item 45 and 47 neighbours: bmc-info reads identity, GUID and channels.
#[test]
fn bmc_info() {
    let d = Daemon::start(&Setup::default());
    let h = hostport(d.nodes[0]);
    let out = run(
        "bmc-info",
        &["-D", "LAN_2_0", "-h", &h, "-u", ADMIN.0, "-p", ADMIN.1],
    );
    let text = out.ok();
    assert!(text.contains("IPMI Version          : 2.0"), "{text}");
    assert!(text.contains("System GUID"), "{text}");
    assert!(text.contains("Medium Type          : 802.3 LAN"), "{text}");
}

/// Item 47: rmcpping and ipmiping only speak to port 623, which needs root.
#[test]
fn pings_on_port_623() {
    assert!(
        running_as_root(),
        "binding port 623 needs root; run the suite as root (CI does)"
    );
    let d = Daemon::start(&Setup {
        base_port: 623,
        ..Setup::default()
    });
    let host = d.nodes[0].ip().to_string();
    let out = run("rmcpping", &["-c", "3", &host]);
    assert!(
        out.ok()
            .contains("3 pings transmitted, 3 pongs received in time"),
        "{out:?}"
    );
    let out = run("ipmiping", &["-r", "2.0", "-c", "3", &host]);
    assert!(
        out.ok()
            .contains("3 requests transmitted, 3 responses received in time"),
        "{out:?}"
    );
    let out = run("ipmiping", &["-c", "2", &host]);
    assert!(
        out.ok()
            .contains("2 requests transmitted, 2 responses received in time"),
        "{out:?}"
    );
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
