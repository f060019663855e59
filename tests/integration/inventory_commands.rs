//! The everyday inventory commands with the real ipmitool and FreeIPMI
//! against the real daemon: `lan print`, `user list`/`summary`, `fru
//! print`, `sdr list`, `sensor list`, `sel info`/`list`, `bmc-config
//! --checkout`, `ipmi-fru`, `ipmi-sel` and `ipmi-sensors`, compared with
//! what the node is: its address, netmask and gateway, the configured
//! users, and its server's flavor, UUID and name (simulated backend, and
//! Nova through the simulator over HTTP).

use crate::cloud;
use crate::common;

use std::net::SocketAddr;
use std::path::Path;

use common::*;

/// A FreeIPMI tool as the administrator, at Administrator privilege.
fn freeipmi(tool: &str, node: SocketAddr, args: &[&str]) -> Out {
    let h = hostport(node);
    let mut all = vec![
        "-D", "LAN_2_0", "-h", &h, "-u", ADMIN.0, "-p", ADMIN.1, "-l", "ADMIN",
    ];
    all.extend_from_slice(args);
    run(tool, &all)
}

/// The SDR cache flags, so FreeIPMI writes nothing outside the test's
/// directory.
fn sdr_cache(dir: &Path) -> Vec<String> {
    vec![
        "--sdr-cache-directory".into(),
        dir.display().to_string(),
        "--quiet-cache".into(),
    ]
}

/// The value after `key` and its colon on the line that starts with it
/// (ipmitool pads keys with spaces).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The main table's IPv4 default gateway, as `ip` shows it, or 0.0.0.0.
fn main_gateway() -> String {
    let out = run("ip", &["-4", "route", "show", "default", "table", "main"]);
    out.ok()
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .unwrap_or("0.0.0.0")
        .to_string()
}

/// The MAC the daemon derives for a node name, as ipmitool prints it.
fn mac_text(node: &str) -> String {
    novabmc::ipmi::lan_config::mac_for(node)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The UUID `ipmitool mc guid` prints for the node.
fn printed_guid(node: SocketAddr) -> String {
    let text = ipmitool(node, ADMIN, &["mc", "guid"]).ok().to_string();
    field(&text, "System GUID")
        .expect("GUID line")
        .to_ascii_lowercase()
}

/// `lan print 1` is a full page that describes the node; so is
/// `bmc-config`'s Lan_Conf section; and nothing can be written.
#[test]
fn lan_configuration_is_the_nodes() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let gateway = main_gateway();
    let out = ipmitool(n, ADMIN, &["lan", "print", "1"]);
    let page = out.ok();
    // Every loopback address is on lo's 127.0.0.1/8.
    for (key, want) in [
        ("Set in Progress", "Set Complete"),
        ("IP Address Source", "Static Address"),
        ("IP Address", n.ip().to_string().as_str()),
        ("Subnet Mask", "255.0.0.0"),
        ("MAC Address", mac_text("node-0").as_str()),
        ("Default Gateway IP", gateway.as_str()),
        ("Backup Gateway IP", "0.0.0.0"),
        ("802.1q VLAN ID", "Disabled"),
        ("RMCP+ Cipher Suites", "3,17"),
        ("Cipher Suite Priv Max", "XXXaXXXXXXXXXXX"),
        ("Bad Password Threshold", "0"),
    ] {
        assert_eq!(field(page, key), Some(want), "{key} in\n{page}");
    }
    assert_eq!(out.stderr, "", "nothing on stderr");

    let conf = freeipmi("bmc-config", n, &["--checkout", "-S", "Lan_Conf"]);
    let text = conf.ok();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(str::trim))
            .unwrap_or_else(|| panic!("{key} in\n{text}"))
            .to_string()
    };
    assert_eq!(value("IP_Address_Source"), "Static");
    assert_eq!(value("IP_Address "), n.ip().to_string());
    assert_eq!(value("Subnet_Mask"), "255.0.0.0");
    assert_eq!(
        value("MAC_Address ").to_ascii_lowercase(),
        mac_text("node-0")
    );
    assert_eq!(value("Default_Gateway_IP_Address"), gateway);
    // The IPv6 parameters bmc-config reads all answer: IPv6 is off.
    let v6 = freeipmi("bmc-config", n, &["--checkout", "-S", "Lan6_Conf"]);
    assert!(v6.ok().contains("IPv6_Disabled"), "{}", v6.ok());

    // A write is refused, and the page is unchanged.
    ipmitool(n, ADMIN, &["lan", "set", "1", "ipaddr", "10.9.9.9"]).failed();
    let again = ipmitool(n, ADMIN, &["lan", "print", "1"]);
    assert_eq!(
        field(again.ok(), "IP Address"),
        Some(n.ip().to_string().as_str())
    );
    assert_eq!(field(again.ok(), "Set in Progress"), Some("Set Complete"));
}

/// `user list 1` and `user summary 1` show the configured users from ID 2
/// (1 is the null user) with their privilege limits; changes are refused;
/// `bmc-config`'s User sections check out with SOL payload access.
#[test]
fn users_are_the_configured_ones() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let list = ipmitool(n, ADMIN, &["user", "list", "1"]);
    let rows: Vec<Vec<&str>> = list
        .ok()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["1", "true", "false", "false", "NO", "ACCESS"],
            vec!["2", "admin", "true", "false", "true", "ADMINISTRATOR"],
            vec!["3", "operator", "true", "false", "true", "OPERATOR"],
            vec!["4", "viewer", "true", "false", "true", "USER"],
        ],
        "{}",
        list.ok()
    );
    let summary = ipmitool(n, ADMIN, &["user", "summary", "1"]);
    let s = summary.ok();
    assert_eq!(field(s, "Maximum IDs"), Some("4"), "{s}");
    assert_eq!(field(s, "Enabled User Count"), Some("3"), "{s}");
    assert_eq!(field(s, "Fixed Name Count"), Some("4"), "{s}");
    let refused = ipmitool(n, ADMIN, &["user", "set", "name", "3", "mallory"]);
    assert!(
        refused.failed().all().contains("command disabled"),
        "{}",
        refused.all()
    );
    assert_eq!(
        ipmitool(n, ADMIN, &["user", "test", "2", "16", ADMIN.1]).ok(),
        "Success\n"
    );
    // The operator may list users too (Get User Access is at Operator).
    ipmitool(n, OPERATOR, &["-L", "OPERATOR", "user", "list", "1"]).ok();
    // bmc-config's User sections check out, SOL allowed for configured
    // users only.
    for (section, sol) in [("User1", "No"), ("User2", "Yes"), ("User4", "Yes")] {
        let conf = freeipmi("bmc-config", n, &["--checkout", "-S", section]);
        let text = conf.ok();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("SOL_Payload_Access"))
            .unwrap_or_else(|| panic!("no SOL_Payload_Access in {section}:\n{text}"));
        assert!(line.trim_end().ends_with(sol), "{section}: {line}");
    }
}

/// An empty but valid SDR repository and SEL: ipmitool's `sdr list`,
/// `sdr elist` and `sensor list` print nothing, `sel info` shows 0
/// entries, `sel list` says so, `sel clear` works; FreeIPMI's
/// `ipmi-sensors` and `ipmi-sel` succeed.
#[test]
fn sdr_and_sel_are_empty_and_valid() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    for args in [&["sdr", "list"][..], &["sdr", "elist"], &["sensor", "list"]] {
        assert_eq!(ipmitool(n, ADMIN, args).ok(), "", "{args:?}");
    }
    let info = ipmitool(n, ADMIN, &["sel", "info"]);
    assert_eq!(field(info.ok(), "Entries"), Some("0"), "{}", info.ok());
    // ipmitool says so on stderr, and succeeds.
    let list = ipmitool(n, ADMIN, &["sel", "list"]);
    list.ok();
    assert_eq!(list.all().trim(), "SEL has no entries");
    ipmitool(n, ADMIN, &["sel", "clear"]).ok();
    ipmitool(n, ADMIN, &["sel", "time", "get"]).ok();

    let cache = tempfile::tempdir().expect("cache dir");
    let flags = sdr_cache(cache.path());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let sensors = freeipmi("ipmi-sensors", n, &flags);
    assert_eq!(
        sensors
            .ok()
            .lines()
            .filter(|l| !l.starts_with("ID "))
            .count(),
        0,
        "no sensors: {}",
        sensors.ok()
    );
    assert_eq!(freeipmi("ipmi-sel", n, &flags).ok(), "");
}

/// The simulated backend's FRU: OpenStack Nova, flavor "simulated", the
/// machine's UUID (the one Get System GUID reports) and the node's server
/// name, read by ipmitool in chunks and by FreeIPMI.
#[test]
fn simulated_fru() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let uuid = printed_guid(n);
    for args in [&["fru", "print", "0"][..], &["fru", "print"]] {
        let out = ipmitool(n, ADMIN, args);
        let t = out.ok();
        assert_eq!(
            field(t, "Product Manufacturer"),
            Some("OpenStack Nova"),
            "{t}"
        );
        assert_eq!(field(t, "Product Name"), Some("simulated"), "{t}");
        assert_eq!(field(t, "Product Serial"), Some(uuid.as_str()), "{t}");
        assert_eq!(field(t, "Product Asset Tag"), Some("node-0"), "{t}");
        assert_eq!(field(t, "Board Mfg"), Some("OpenStack Nova"), "{t}");
    }
    let fru = freeipmi("ipmi-fru", n, &[]);
    let t = fru.ok();
    assert_eq!(field(t, "FRU Product Name"), Some("simulated"), "{t}");
    assert_eq!(
        field(t, "FRU Product Serial Number"),
        Some(uuid.as_str()),
        "{t}"
    );
    assert_eq!(field(t, "FRU Product Asset Tag"), Some("node-0"), "{t}");
}

/// With Nova (the simulator over HTTP), the FRU shows the server's
/// flavor, UUID and name; a node whose server appears only after the
/// start answers "node busy" until then, and its FRU once the listing
/// shows the server.
#[test]
fn nova_fru_is_the_servers() {
    let sim = cloud::Sim::start();
    sim.add_flavor("bm.inventory", 2, 4096, 20);
    let id = sim.add_server_spec(serde_json::json!({
        "name": "inventory-server",
        "flavor": "bm.inventory",
        "on": false,
    }));
    let (toml, nodes) = cloud::config(
        &sim.backend_toml("rebuild"),
        unique_loopback(),
        &[("node-0", "inventory-server"), ("node-1", "late-server")],
        "",
    );
    let d = Daemon::start_with(&toml, nodes);
    let n = d.nodes[0];
    let late = d.nodes[1];
    let busy = ipmitool(
        late,
        ADMIN,
        &["-R", "1", "-N", "1", "raw", "0x0a", "0x10", "0x00"],
    );
    assert!(busy.failed().all().contains("rsp=0xc0"), "{}", busy.all());
    // The FRU answers "node busy" until the server is resolved.
    eventually("FRU readable", || {
        ipmitool(n, ADMIN, &["-R", "1", "-N", "1", "fru", "print", "0"]).code == Some(0)
    });
    let out = ipmitool(n, ADMIN, &["fru", "print", "0"]);
    let t = out.ok();
    assert_eq!(
        field(t, "Product Manufacturer"),
        Some("OpenStack Nova"),
        "{t}"
    );
    assert_eq!(field(t, "Product Name"), Some("bm.inventory"), "{t}");
    assert_eq!(field(t, "Product Serial"), Some(id.as_str()), "{t}");
    assert_eq!(
        field(t, "Product Asset Tag"),
        Some("inventory-server"),
        "{t}"
    );
    assert_eq!(field(t, "Chassis Serial"), Some(id.as_str()), "{t}");
    let fru = freeipmi("ipmi-fru", n, &[]);
    let t = fru.ok();
    assert_eq!(field(t, "FRU Product Name"), Some("bm.inventory"), "{t}");
    assert_eq!(
        field(t, "FRU Product Serial Number"),
        Some(id.as_str()),
        "{t}"
    );
    assert_eq!(
        field(t, "FRU Product Asset Tag"),
        Some("inventory-server"),
        "{t}"
    );
    assert_eq!(printed_guid(n), id, "FRU serial and system GUID agree");

    let late_id = sim.add_server_spec(serde_json::json!({
        "name": "late-server",
        "flavor": "bm.inventory",
        "on": false,
    }));
    eventually("the late server's FRU", || {
        let out = ipmitool(late, ADMIN, &["-R", "1", "-N", "1", "fru", "print", "0"]);
        out.code == Some(0) && field(&out.stdout, "Product Serial") == Some(late_id.as_str())
    });
    let t = ipmitool(late, ADMIN, &["fru", "print", "0"])
        .ok()
        .to_string();
    assert_eq!(field(&t, "Product Asset Tag"), Some("late-server"), "{t}");
    assert_eq!(field(&t, "Product Name"), Some("bm.inventory"), "{t}");
}

/// A node on an IPv6 address: no IPv4 address in `lan print`, and
/// `bmc-config`'s Lan6_Conf section shows its address, IPv6 only.
#[test]
fn ipv6_node() {
    // A free port on ::1 (loopback has only the one IPv6 address).
    let port = std::net::UdpSocket::bind("[::1]:0")
        .and_then(|s| s.local_addr())
        .expect("free port on ::1")
        .port();
    let node: SocketAddr = format!("[::1]:{port}").parse().expect("address");
    let toml = format!(
        "[users.admin]\npassword = \"{}\"\n[backend]\ntype = \"simulated\"\n[nodes.v6]\naddress = \"::1\"\nport = {port}\n",
        ADMIN.1
    );
    let d = Daemon::start_with(&toml, vec![node]);
    let n = d.nodes[0];
    let out = ipmitool(n, ADMIN, &["lan", "print", "1"]);
    assert_eq!(field(out.ok(), "IP Address"), Some("0.0.0.0"));
    assert_eq!(
        field(out.ok(), "MAC Address"),
        Some(mac_text("v6").as_str())
    );
    let conf = freeipmi("bmc-config", n, &["--checkout", "-S", "Lan6_Conf"]);
    let pairs: Vec<Vec<&str>> = conf
        .ok()
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    for want in [
        ["IPv6_IPv4_Addressing_Enables", "IPv6_Only"],
        ["IPv6_Static_Address_Enable", "Yes"],
        ["IPv6_Static_Address", "::1"],
        ["IPv6_Static_Address_Prefix_Length", "128"],
    ] {
        assert!(pairs.contains(&want.to_vec()), "{want:?} in {}", conf.ok());
    }
}
