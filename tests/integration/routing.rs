//! Per-node policy routing, proven in network namespaces with the real
//! daemon and the real ipmitool.
//!
//! The lab is a small cloud: a BMC host, a router and a client host joined
//! by veth pairs. The router plays Neutron's port security: on each BMC
//! port it forwards only packets from that port's own addresses (its fixed
//! IP and allowed address pairs) and silently drops the rest, which is
//! what happens to a reply that leaves a cloud instance through the wrong
//! NIC. Interface TX counters on the BMC host show which NIC each reply
//! left by.

use crate::common;
use crate::netns;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use netns::{Lab, NsDaemon, ip, ip_output, ipmitool, novabmc};

/// The routers' link-local address on every BMC subnet (as a Neutron
/// router's gateway port has one).
const ROUTER_LL: &str = "fe80::1";

/// `ipmitool power status` gets at least this many replies (channel
/// authentication, cipher suites, open session, RAKP 2 and 4, privilege,
/// status, close); a NIC that sent fewer did not carry the exchange.
const MIN_REPLIES: u64 = 6;

/// At most this many stray packets (neighbour probes) may leave a NIC that
/// carries no replies.
const MAX_STRAY: u64 = 2;

/// A BMC port: the addresses the host holds on it (with prefix length) and
/// the sources the router accepts from it.
struct Port {
    addresses: Vec<String>,
    allowed: Vec<String>,
}

/// The built lab: names of the hosts and of the BMC's NICs.
struct Cloud {
    lab: Lab,
    bmc: String,
    cli: String,
    nics: Vec<String>,
    dir: tempfile::TempDir,
}

/// Builds a BMC host with one NIC per port (subnet `10.77.N.0/24` and
/// `fd77:N::/64` for the Nth), a router with anti-spoofing on every BMC
/// port, and a client at 10.77.9.20 / fd77:9::20. The BMC's main-table
/// default routes go through the first NIC.
fn cloud(ports: &[Port]) -> Cloud {
    let mut lab = Lab::new();
    let bmc = lab.host("bmc");
    let rtr = lab.host("rtr");
    let cli = lab.host("cli");
    lab.sysctl(&rtr, "net.ipv4.ip_forward=1");
    lab.sysctl(&rtr, "net.ipv6.conf.all.forwarding=1");
    // Loose reverse-path filtering, as cloud images ship: a request from
    // the client arriving on any NIC is accepted.
    lab.sysctl(&bmc, "net.ipv4.conf.all.rp_filter=2");
    let mut nics = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let n = i + 1;
        let (b, r) = (lab.ifname(&format!("b{n}")), lab.ifname(&format!("r{n}")));
        lab.wire(&bmc, &b, &rtr, &r);
        for a in &port.addresses {
            add_address(&bmc, a, &b);
        }
        add_address(&rtr, &format!("10.77.{n}.1/24"), &r);
        add_address(&rtr, &format!("fd77:{n}::1/64"), &r);
        add_address(&rtr, &format!("{ROUTER_LL}/64"), &r);
        for src in &port.allowed {
            let family = if src.contains(':') { "-6" } else { "-4" };
            ip(&[
                "-n", &rtr, family, "rule", "add", "iif", &r, "from", src, "lookup", "main",
                "pref", "100",
            ]);
        }
        for family in ["-4", "-6"] {
            ip(&[
                "-n",
                &rtr,
                family,
                "rule",
                "add",
                "iif",
                &r,
                "blackhole",
                "pref",
                "200",
            ]);
        }
        nics.push(b);
    }
    let (c, r) = (lab.ifname("c9"), lab.ifname("r9"));
    lab.wire(&cli, &c, &rtr, &r);
    add_address(&cli, "10.77.9.20/24", &c);
    add_address(&cli, "fd77:9::20/64", &c);
    add_address(&rtr, "10.77.9.1/24", &r);
    add_address(&rtr, "fd77:9::1/64", &r);
    ip(&["-n", &cli, "route", "add", "default", "via", "10.77.9.1"]);
    ip(&[
        "-n",
        &cli,
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fd77:9::1",
    ]);
    ip(&[
        "-n",
        &bmc,
        "route",
        "add",
        "default",
        "via",
        "10.77.1.1",
        "dev",
        &nics[0],
    ]);
    ip(&[
        "-n", &bmc, "-6", "route", "add", "default", "via", ROUTER_LL, "dev", &nics[0],
    ]);
    let c = Cloud {
        lab,
        bmc,
        cli,
        nics,
        dir: tempfile::tempdir().expect("temp dir"),
    };
    c.settle();
    c
}

fn add_address(ns: &str, address: &str, dev: &str) {
    if address.contains(':') {
        ip(&["-n", ns, "addr", "add", address, "dev", dev, "nodad"]);
    } else {
        ip(&["-n", ns, "addr", "add", address, "dev", dev]);
    }
}

/// A node of a test configuration.
struct Node<'a> {
    name: &'a str,
    address: &'a str,
    /// `(table, gateway)`, if the node has a route.
    route: Option<(u32, &'a str)>,
}

fn config(nodes: &[Node], extra: &str) -> String {
    let mut t = format!(
        "{extra}\n[users.{}]\npassword = \"{}\"\n[backend]\ntype = \"simulated\"\n",
        common::ADMIN.0,
        common::ADMIN.1
    );
    for n in nodes {
        let _ = write!(t, "[nodes.{}]\naddress = \"{}\"\n", n.name, n.address);
        if let Some((table, gateway)) = n.route {
            let _ = write!(
                t,
                "[nodes.{}.route]\ntable = {table}\ngateway = \"{gateway}\"\n",
                n.name
            );
        }
    }
    t
}

impl Cloud {
    fn write_config(&self, name: &str, text: &str) -> std::path::PathBuf {
        common::write_file(self.dir.path(), name, text)
    }

    fn start(&self, config: &Path, nodes: usize) -> NsDaemon {
        let log = self.dir.path().join(format!(
            "{}.log",
            config
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("daemon")
        ));
        let mut d = NsDaemon::start(&self.bmc, config, &log);
        d.wait_log(&["serving", &format!("node-{nodes}")]);
        d
    }

    /// Waits until the BMC's NICs have been silent for a second: links
    /// coming up send a few IPv6 multicast reports in their first moments,
    /// which would blur the counts.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = self.tx();
        let mut quiet = 0;
        while quiet < 4 {
            assert!(
                Instant::now() < deadline,
                "the BMC's NICs never went quiet for a second: tx {last:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
            let now = self.tx();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
    }

    fn tx(&self) -> Vec<u64> {
        self.nics
            .iter()
            .map(|n| self.lab.tx_packets(&self.bmc, n))
            .collect()
    }

    /// `ipmitool power status` from the client; returns whether it worked
    /// and how many packets each BMC NIC sent meanwhile.
    fn power_status(&self, address: &str) -> (bool, Vec<u64>, common::Out) {
        let before = self.tx();
        let out = ipmitool(&self.cli, address, 623, &["power", "status"]);
        let after = self.tx();
        let delta = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let ok = out.code == Some(0) && out.stdout.contains("Chassis Power is");
        (ok, delta, out)
    }

    fn rules(&self) -> String {
        ip_output(&["-n", &self.bmc, "-4", "rule"]) + &ip_output(&["-n", &self.bmc, "-6", "rule"])
    }

    /// Every rule and every route of every table, both families.
    fn tables(&self) -> String {
        self.rules()
            + &ip_output(&["-n", &self.bmc, "-4", "route", "show", "table", "all"])
            + &ip_output(&["-n", &self.bmc, "-6", "route", "show", "table", "all"])
    }
}

/// Layout (b): three NICs, one node each (node-3 over IPv6 with a
/// link-local gateway), main default route through the first NIC.
fn one_nic_per_node() -> (Cloud, [Node<'static>; 3]) {
    let c = cloud(&[
        Port {
            addresses: vec!["10.77.1.10/24".into()],
            allowed: vec!["10.77.1.10/32".into()],
        },
        Port {
            addresses: vec!["10.77.2.10/24".into()],
            allowed: vec!["10.77.2.10/32".into()],
        },
        Port {
            addresses: vec!["fd77:3::10/64".into()],
            allowed: vec!["fd77:3::10/128".into()],
        },
    ]);
    let nodes = [
        Node {
            name: "node-1",
            address: "10.77.1.10",
            route: Some((1001, "10.77.1.1")),
        },
        Node {
            name: "node-2",
            address: "10.77.2.10",
            route: Some((1002, "10.77.2.1")),
        },
        Node {
            name: "node-3",
            address: "fd77:3::10",
            route: Some((1003, ROUTER_LL)),
        },
    ];
    (c, nodes)
}

fn without_routes<'a>(nodes: &[Node<'a>]) -> Vec<Node<'a>> {
    nodes
        .iter()
        .map(|n| Node {
            name: n.name,
            address: n.address,
            route: None,
        })
        .collect()
}

#[test]
fn replies_leave_through_the_nic_they_came_in_on() {
    let started = Instant::now();
    let (c, nodes) = one_nic_per_node();

    // Without novabmc's rules every reply follows the main default route
    // out of the first NIC, and the router drops those of nodes 2 and 3.
    let plain = c.write_config("plain.toml", &config(&without_routes(&nodes), ""));
    let mut d = c.start(&plain, 3);
    let mut report = String::new();
    for (i, n) in nodes.iter().enumerate() {
        let (ok, delta, out) = c.power_status(n.address);
        let _ = writeln!(
            report,
            "without rules: {} ok={ok} tx per NIC {delta:?}",
            n.name
        );
        if i == 0 {
            assert!(
                ok,
                "node-1 is on the main route's NIC and must work: {out:#?}"
            );
            assert!(delta[0] >= MIN_REPLIES, "{report}");
        } else {
            assert!(
                !ok,
                "{} answered without policy routing; the lab does not drop spoofed \
                 replies: {out:#?}",
                n.name
            );
            assert!(
                delta[0] >= 1 && delta[i] <= MAX_STRAY,
                "{}'s replies should have left by the first NIC: {report}",
                n.name
            );
        }
    }
    assert_eq!(d.stop(), Some(0), "{}", d.log());

    // With them, each reply leaves through its node's own NIC.
    let routed = c.write_config("routed.toml", &config(&nodes, ""));
    let mut d = c.start(&routed, 3);
    for (i, n) in nodes.iter().enumerate() {
        let (ok, delta, out) = c.power_status(n.address);
        let _ = writeln!(
            report,
            "with rules:    {} ok={ok} tx per NIC {delta:?}",
            n.name
        );
        assert!(
            ok,
            "{} failed with policy routing: {out:#?}\n{}",
            n.name,
            d.log()
        );
        for (j, sent) in delta.iter().enumerate() {
            if j == i {
                assert!(*sent >= MIN_REPLIES, "{report}");
            } else {
                assert!(
                    *sent <= MAX_STRAY,
                    "NIC {} carried {}'s replies: {report}",
                    j + 1,
                    n.name
                );
            }
        }
    }
    let rules = c.rules();
    for (n, table) in nodes.iter().zip([1001, 1002, 1003]) {
        assert!(
            rules.contains(&format!("from {} lookup {table} proto 78", n.address)),
            "{rules}"
        );
    }

    // Shutdown takes exactly novabmc's entries away again, and leaves an
    // operator's rule and route in a node's table where they are.
    ip(&[
        "-n",
        &c.bmc,
        "rule",
        "add",
        "from",
        "10.77.1.99",
        "lookup",
        "1001",
        "pref",
        "1500",
    ]);
    ip(&[
        "-n",
        &c.bmc,
        "route",
        "add",
        "192.0.2.0/24",
        "via",
        "10.77.1.1",
        "dev",
        &c.nics[0],
        "table",
        "1001",
    ]);
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    let after = c.tables();
    assert!(!after.contains("proto 78"), "{after}");
    assert!(after.contains("from 10.77.1.99 lookup 1001"), "{after}");
    assert!(
        after.contains("192.0.2.0/24 via 10.77.1.1"),
        "the operator's route went: {after}"
    );
    assert!(
        !after
            .lines()
            .any(|l| l.starts_with("default") && l.contains("table 100")),
        "novabmc's default routes stayed: {after}"
    );
    eprintln!("{report}wall time {:?}", started.elapsed());
}

#[test]
fn many_addresses_on_one_nic() {
    let started = Instant::now();
    // Layout (a): every node address on one NIC, allowed by the port
    // (allowed-address-pairs); no routes needed.
    let v4: Vec<String> = (10..18).map(|i| format!("10.77.1.{i}")).collect();
    let mut addresses: Vec<String> = v4.iter().map(|a| format!("{a}/24")).collect();
    addresses.push("fd77:1::10/64".into());
    let mut allowed: Vec<String> = v4.iter().map(|a| format!("{a}/32")).collect();
    allowed.push("fd77:1::10/128".into());
    let c = cloud(&[Port { addresses, allowed }]);
    let names: Vec<String> = (1..=9).map(|i| format!("node-{i}")).collect();
    let mut all: Vec<&str> = v4.iter().map(String::as_str).collect();
    all.push("fd77:1::10");
    let nodes: Vec<Node> = names
        .iter()
        .zip(all)
        .map(|(name, address)| Node {
            name,
            address,
            route: None,
        })
        .collect();
    let path = c.write_config("shared.toml", &config(&nodes, ""));
    let mut d = c.start(&path, 9);
    let mut sent = 0;
    for n in &nodes {
        let (ok, delta, out) = c.power_status(n.address);
        assert!(ok, "{} failed: {out:#?}\n{}", n.name, d.log());
        assert!(delta[0] >= MIN_REPLIES, "{}: {delta:?}", n.name);
        sent += delta[0];
    }
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    eprintln!(
        "9 nodes on one NIC: {sent} packets out of it; wall time {:?}",
        started.elapsed()
    );
}

#[test]
fn routes_command_is_idempotent_and_names_conflicts() {
    let started = Instant::now();
    let (c, nodes) = one_nic_per_node();
    let path = c.write_config("routes.toml", &config(&nodes, ""));
    let cfg = path.to_str().expect("utf-8 path");
    let baseline = c.tables();

    let show = novabmc(&c.bmc, &["routes", "show", "--config", cfg]);
    assert_eq!(show.code, Some(0), "{show:#?}");
    assert_eq!(
        show.stdout.matches(": missing").count(),
        6,
        "{}",
        show.stdout
    );

    let first = novabmc(&c.bmc, &["routes", "apply", "--config", cfg]);
    assert_eq!(first.code, Some(0), "{first:#?}");
    let installed = c.tables();
    assert_eq!(installed.matches("proto 78").count(), 6, "{installed}");
    let second = novabmc(&c.bmc, &["routes", "apply", "--config", cfg]);
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert_eq!(
        second.stdout.matches("already in place").count(),
        3,
        "{second:#?}"
    );
    assert_eq!(c.tables(), installed, "a second apply changed the tables");
    let show = novabmc(&c.bmc, &["routes", "show", "--config", cfg]);
    assert_eq!(
        show.stdout.matches("installed (by novabmc)").count(),
        6,
        "{}",
        show.stdout
    );

    let flush = novabmc(&c.bmc, &["routes", "flush", "--config", cfg]);
    assert_eq!(flush.code, Some(0), "{flush:#?}");
    assert_eq!(c.tables(), baseline, "flush left something behind");

    // Someone else's rule for node-2's address.
    ip(&[
        "-n",
        &c.bmc,
        "rule",
        "add",
        "from",
        "10.77.2.10",
        "lookup",
        "999",
        "pref",
        "1000",
    ]);
    let apply = novabmc(&c.bmc, &["routes", "apply", "--config", cfg]);
    assert_ne!(apply.code, Some(0), "{apply:#?}");
    for needle in [
        "node node-2",
        "rule \"from 10.77.2.10 lookup 999 pref 1000",
        "wanted \"from 10.77.2.10 lookup 1002 pref 1000\"",
    ] {
        assert!(apply.stderr.contains(needle), "{needle}: {apply:#?}");
    }
    // apply went on with the other nodes; flush takes those and leaves the
    // foreign rule.
    assert!(
        c.rules().contains("from 10.77.1.10 lookup 1001 proto 78"),
        "{}",
        c.rules()
    );
    let flush = novabmc(&c.bmc, &["routes", "flush", "--config", cfg]);
    assert_eq!(flush.code, Some(0), "{flush:#?}");
    let left = c.tables();
    assert!(
        left.contains("from 10.77.2.10 lookup 999"),
        "foreign rule removed: {left}"
    );
    assert!(!left.contains("proto 78"), "{left}");
    // serve refuses to start on it, and takes back what it had installed.
    let log = c.dir.path().join("conflict.log");
    let mut d = NsDaemon::start(&c.bmc, &path, &log);
    assert_eq!(d.wait_exit(), Some(1), "{}", d.log());
    assert!(d.log().contains("lookup 999 pref 1000"), "{}", d.log());
    ip(&[
        "-n",
        &c.bmc,
        "rule",
        "del",
        "from",
        "10.77.2.10",
        "lookup",
        "999",
        "pref",
        "1000",
    ]);
    assert_eq!(
        c.tables(),
        baseline,
        "serve's failed start left entries behind"
    );

    // Someone else's default route in node-3's table.
    ip(&[
        "-n", &c.bmc, "-6", "route", "add", "default", "via", "fe80::99", "dev", &c.nics[0],
        "table", "1003",
    ]);
    let apply = novabmc(&c.bmc, &["routes", "apply", "--config", cfg]);
    assert_ne!(apply.code, Some(0), "{apply:#?}");
    let wanted = format!(
        "wanted \"default via fe80::1 dev {} table 1003\"",
        c.nics[2]
    );
    for needle in [
        "node node-3",
        &format!(
            "table 1003 already has \"default via fe80::99 dev {}",
            c.nics[0]
        ),
        &wanted,
    ] {
        assert!(apply.stderr.contains(needle), "{needle}: {apply:#?}");
    }
    let flush = novabmc(&c.bmc, &["routes", "flush", "--config", cfg]);
    assert_eq!(flush.code, Some(0), "{flush:#?}");
    assert!(
        c.tables().contains("default via fe80::99"),
        "foreign route removed"
    );
    ip(&["-n", &c.bmc, "-6", "route", "flush", "table", "1003"]);

    // An identical entry of someone else's is accepted and left alone.
    ip(&[
        "-n",
        &c.bmc,
        "rule",
        "add",
        "from",
        "10.77.2.10",
        "lookup",
        "1002",
        "pref",
        "1000",
    ]);
    let apply = novabmc(&c.bmc, &["routes", "apply", "--config", cfg]);
    assert_eq!(apply.code, Some(0), "{apply:#?}");
    assert!(
        !apply.stdout.contains("add rule from 10.77.2.10"),
        "{apply:#?}"
    );
    let flush = novabmc(&c.bmc, &["routes", "flush", "--config", cfg]);
    assert_eq!(flush.code, Some(0), "{flush:#?}");
    let left = c.rules();
    assert!(left.contains("from 10.77.2.10 lookup 1002"), "{left}");
    assert!(!left.contains("proto 78"), "{left}");

    // keep_routes leaves them for the next start.
    ip(&[
        "-n",
        &c.bmc,
        "rule",
        "del",
        "from",
        "10.77.2.10",
        "lookup",
        "1002",
        "pref",
        "1000",
    ]);
    let keep = c.write_config(
        "keep.toml",
        &config(&nodes, "[routing]\nkeep_routes = true\n"),
    );
    let mut d = c.start(&keep, 3);
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert_eq!(c.tables(), installed, "keep_routes did not keep them");
    eprintln!("wall time {:?}", started.elapsed());
}

#[test]
fn serve_starts_before_the_address_and_installs_when_it_appears() {
    let started = Instant::now();
    let (c, nodes) = one_nic_per_node();
    // node-2's address is not configured yet (DHCP has not run).
    ip(&[
        "-n",
        &c.bmc,
        "addr",
        "del",
        "10.77.2.10/24",
        "dev",
        &c.nics[1],
    ]);
    let path = c.write_config("late.toml", &config(&nodes, ""));
    let mut d = c.start(&path, 3);
    d.wait_log(&["WARN", "node-2", "routes not installed yet", "10.77.2.10"]);
    assert!(!c.rules().contains("10.77.2.10"), "{}", c.rules());
    let (ok, delta, out) = c.power_status("10.77.2.10");
    assert!(!ok, "an unconfigured address answered: {out:#?} {delta:?}");

    ip(&[
        "-n",
        &c.bmc,
        "addr",
        "add",
        "10.77.2.10/24",
        "dev",
        &c.nics[1],
    ]);
    let appeared = Instant::now();
    d.wait_log(&["routes installed", "node-2"]);
    let waited = appeared.elapsed();
    let (ok, delta, out) = c.power_status("10.77.2.10");
    assert!(
        ok,
        "node-2 failed once its address appeared: {out:#?}\n{}",
        d.log()
    );
    assert!(
        delta[1] >= MIN_REPLIES && delta[0] <= MAX_STRAY,
        "{delta:?}"
    );
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert!(!c.tables().contains("proto 78"), "{}", c.tables());
    eprintln!(
        "routes installed {waited:?} after the address appeared; tx per NIC {delta:?}; \
         wall time {:?}",
        started.elapsed()
    );
}

/// The BMC-instance cloud-init snippet carries the systemd unit as it is in
/// contrib/systemd, a configuration that loads, and node NICs that take no
/// routes from DHCP.
#[test]
fn contrib_bmc_instance_is_consistent() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let text = std::fs::read_to_string(root.join("cloud-init/bmc-instance.yaml")).expect("snippet");
    assert!(
        text.starts_with("#cloud-config\n"),
        "cloud-init needs the header"
    );
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    let files = doc["write_files"].as_sequence().expect("write_files");
    let content = |path: &str| -> String {
        files
            .iter()
            .find(|f| f["path"].as_str() == Some(path))
            .and_then(|f| f["content"].as_str())
            .unwrap_or_else(|| panic!("the snippet writes no {path}"))
            .to_string()
    };
    let directives = |t: &str| -> Vec<String> {
        t.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let unit = std::fs::read_to_string(root.join("systemd/novabmc.service")).expect("unit");
    assert_eq!(
        directives(&content("/etc/systemd/system/novabmc.service")),
        directives(&unit),
        "the snippet's unit differs from contrib/systemd/novabmc.service"
    );

    let dir = tempfile::tempdir().expect("dir");
    let password = common::write_file(
        dir.path(),
        "admin.password",
        &content("/etc/novabmc/admin.password"),
    );
    let toml = content("/etc/novabmc/novabmc.toml").replace(
        "/etc/novabmc/admin.password",
        password.to_str().expect("utf-8"),
    );
    let path = common::write_file(dir.path(), "novabmc.toml", &toml);
    let config = novabmc::config::Config::load(&path).expect("the snippet's config loads");
    assert!(
        config.nodes.iter().all(|n| n.route.is_some()),
        "layout (b): every node has a route"
    );

    let netplan: serde_yaml::Value =
        serde_yaml::from_str(&content("/etc/netplan/60-novabmc-nodes.yaml")).expect("netplan");
    let nics = netplan["network"]["ethernets"]
        .as_mapping()
        .expect("ethernets");
    assert_eq!(nics.len(), config.nodes.len());
    for (name, nic) in nics {
        assert_eq!(
            nic["dhcp4-overrides"]["use-routes"].as_bool(),
            Some(false),
            "{name:?} must not take routes from DHCP"
        );
    }
}
