//! Discovery end to end: the real daemon against the Nova simulator
//! process, serving the servers that carry a tag at addresses from a
//! loopback pool (all of 127/8 is local, so every pool address answers
//! without a namespace), reached by the real ipmitool and a Redfish
//! client; servers created and deleted while it serves, an explicit
//! `[nodes.NAME]` for a tagged server, a cloud that stops answering, a
//! restart that must give the same addresses, `check` and `export`, and
//! open sessions (SOL and an ipmitool shell) across a refresh.

use crate::cloud;
use crate::common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use cloud::Sim;
use common::*;
use serde_json::{Value, json};

/// The tag the tests select by.
const TAG: &str = "baremetal";
/// The IPMI port of every discovered node.
const IPMI_PORT: u16 = 6230;
/// The Redfish port of every discovered node.
const REDFISH_PORT: u16 = 8000;
/// The metadata key discovery records addresses under.
const ADDRESS_KEY: &str = "novabmc_bmc_address";

/// A configuration discovering tagged servers into `pool` (less its
/// first address), with plain-HTTP Redfish and `extra` appended.
fn config(sim: &Sim, pool: &str, refresh: f64, extra: &str) -> String {
    format!(
        "[users.admin]\npassword = \"password\"\n{}\
         [discovery]\ntag = \"{TAG}\"\nrefresh = {refresh}\n\
         [discovery.address]\nmode = \"pool\"\ncidr = \"{pool}\"\nexclude = [\"{}\"]\n\
         [discovery.defaults]\nport = {IPMI_PORT}\nredfish_port = {REDFISH_PORT}\n\
         [redfish]\ntls = false\n{extra}",
        sim.backend_toml("rebuild"),
        first_host(pool),
    )
}

/// The first host address of a /28 like `127.1.200.0/28`.
fn first_host(pool: &str) -> String {
    let net: std::net::Ipv4Addr = pool
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("pool");
    std::net::Ipv4Addr::from(u32::from(net) + 1).to_string()
}

/// Adds a server carrying the tag; returns its UUID.
fn tagged(sim: &Sim, name: &str, on: bool) -> String {
    sim.add_server_spec(json!({"name": name, "on": on, "tags": [TAG]}))
}

/// Adds a server carrying the tag with UUID `id`: servers created within
/// one second are ordered by UUID.
fn tagged_as(sim: &Sim, name: &str, id: &str) -> String {
    sim.add_server_spec(json!({"name": name, "on": true, "tags": [TAG], "id": id}))
}

/// The BMC address recorded in server `id`'s metadata, if any.
fn recorded(sim: &Sim, id: &str) -> Option<IpAddr> {
    sim.records()
        .into_iter()
        .find(|s| s["id"] == id)
        .and_then(|s| s["metadata"][ADDRESS_KEY].as_str().map(str::to_string))
        .and_then(|a| a.parse().ok())
}

/// Waits until server `id` has an address recorded and its node answers
/// there; returns the node's IPMI address.
fn served(sim: &Sim, id: &str, within: Duration) -> SocketAddr {
    let mut node = None;
    eventually_within(&format!("server {id} to be served"), within, || {
        node = recorded(sim, id).map(|ip| SocketAddr::new(ip, IPMI_PORT));
        node.is_some_and(|n| ping(n, Duration::from_millis(100)))
    });
    node.expect("served")
}

fn in_pool(ip: IpAddr, pool: &str) -> bool {
    let net: std::net::Ipv4Addr = pool
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("pool");
    match ip {
        IpAddr::V4(a) => u32::from(a) & !0xf == u32::from(net),
        IpAddr::V6(_) => false,
    }
}

fn hup(d: &Daemon) {
    let ok = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP failed");
}

/// `GET` a Redfish path on `node`'s address as the administrator.
fn redfish_get(node: SocketAddr, path: &str) -> (u16, Value) {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
        .get(format!("http://{}:{REDFISH_PORT}{path}", node.ip()))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .send()
        .expect("Redfish request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Tagged servers are served at pool addresses by ipmitool and Redfish;
/// a server created later is served without a restart within two
/// refresh intervals; a deleted one stops answering, with one log line
/// each; a tagged server an explicit `[nodes.NAME]` names is that node's;
/// a cloud that stops answering changes nothing and is logged once.
#[test]
fn tagged_servers_are_served_at_pool_addresses_and_follow_the_cloud() {
    let sim = Sim::start();
    let (pool, _) = unique_pool();
    let bm0 = tagged(&sim, "bm-0", false);
    let bm1 = tagged(&sim, "Bm 1", true);
    let explicit = tagged(&sim, "bm-explicit", true);
    let untagged = sim.add_server("other", true);
    let explicit_at = SocketAddr::from((unique_loopback(), IPMI_PORT));
    let toml = config(
        &sim,
        &pool,
        1.0,
        &format!(
            "[nodes.explicit]\naddress = \"{}\"\nport = {IPMI_PORT}\nserver = \"bm-explicit\"\n",
            explicit_at.ip()
        ),
    );
    let daemon = Daemon::start_with(&toml, vec![explicit_at]);
    let a0 = served(&sim, &bm0, EVENTUALLY);
    let a1 = served(&sim, &bm1, EVENTUALLY);
    assert_ne!(a0.ip(), a1.ip());
    for a in [a0, a1] {
        assert!(in_pool(a.ip(), &pool), "{a} outside {pool}");
        assert_ne!(
            a.ip().to_string(),
            first_host(&pool),
            "the excluded address was given"
        );
    }
    // ipmitool at each pool address; a power on reaches Nova.
    eventually("bm-0 to report its server off", || {
        ipmitool(a0, ADMIN, &["power", "status"])
            .stdout
            .contains("Chassis Power is off")
    });
    ipmitool(a0, ADMIN, &["power", "on"]).ok();
    eventually("Nova to start bm-0", || {
        sim.actions(&bm0).iter().any(|a| a == "os-start")
    });
    eventually("bm-1 to report its server on", || {
        ipmitool(a1, ADMIN, &["power", "status"])
            .stdout
            .contains("Chassis Power is on")
    });
    // Redfish at the same address: the system, by node name, is the
    // server's.
    eventually("bm-1's Redfish system to show its server", || {
        let (status, system) = redfish_get(a1, "/redfish/v1/Systems/bm-1");
        status == 200 && system["Id"] == bm1.as_str() && system["PowerState"] == "On"
    });
    // The explicit entry wins; the untagged server is left alone.
    assert_eq!(recorded(&sim, &explicit), None);
    assert_eq!(recorded(&sim, &untagged), None);
    ipmitool(explicit_at, ADMIN, &["power", "status"]).ok();

    // A server created now is served within two refresh intervals (plus
    // the time to list and start it).
    let created = Instant::now();
    let bm2 = tagged(&sim, "bm-2", true);
    let a2 = served(&sim, &bm2, Duration::from_secs(4));
    assert!(created.elapsed() < Duration::from_secs(4));
    assert!(in_pool(a2.ip(), &pool));

    // A deleted server stops answering.
    sim.delete_server(&bm1);
    eventually("bm-1 to stop answering", || {
        !ping(a1, Duration::from_millis(200))
    });
    ipmitool(a0, ADMIN, &["power", "status"]).ok();
    ipmitool(a2, ADMIN, &["power", "status"]).ok();

    // A cloud that stops answering: nothing changes, one line.
    sim.faults(json!({"nova_down": true}));
    std::thread::sleep(Duration::from_secs(4));
    for a in [a0, a2, explicit_at] {
        assert!(ping(a, Duration::from_millis(500)), "{a} stopped answering");
    }
    sim.faults(json!({}));
    eventually("the cloud to be reported back", || {
        !daemon
            .log_lines(&["discovery: the cloud answers again"])
            .is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));

    // One line per server served, per server gone, per note.
    let once = |needles: &[&str]| {
        let lines = daemon.log_lines(needles);
        assert_eq!(lines.len(), 1, "{needles:?}: {lines:#?}\n{}", daemon.log());
    };
    for name in ["bm-0", "Bm 1", "bm-2"] {
        once(&["discovered server served", &format!("server={name} ")]);
    }
    once(&["discovered server no longer served", "node=bm-1"]);
    once(&["cannot list the servers"]);
    once(&["is node explicit of the configuration file"]);
    assert!(
        daemon.log_lines(&["served anew"]).is_empty(),
        "{}",
        daemon.log()
    );
}

/// A restart gives every server the address recorded for it, writing
/// nothing; a recorded address outside the pool is reported once and
/// replaced; an address from an older server is kept by it.
#[test]
fn a_restart_gives_the_same_addresses() {
    let sim = Sim::start();
    let (pool, _) = unique_pool();
    let ids: Vec<String> = (0..3)
        .map(|i| tagged(&sim, &format!("bm-{i}"), true))
        .collect();
    let stray = sim.add_server_spec(json!({"name": "stray", "on": true, "tags": [TAG],
        "metadata": {ADDRESS_KEY: "10.9.9.9"}}));
    let toml = config(&sim, &pool, 1.0, "");
    let daemon = Daemon::start_with(&toml, Vec::new());
    let first: BTreeMap<String, SocketAddr> = ids
        .iter()
        .chain([&stray])
        .map(|id| (id.clone(), served(&sim, id, EVENTUALLY)))
        .collect();
    assert!(in_pool(first[&stray].ip(), &pool));
    let notes = daemon.log_lines(&["its recorded BMC address 10.9.9.9 is not in the pool"]);
    assert_eq!(notes.len(), 1, "{}", daemon.log());
    let writes = || {
        sim.requests()
            .iter()
            .filter(|r| r["method"] == "PUT")
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("metadata/{ADDRESS_KEY}")))
            })
            .count()
    };
    assert_eq!(writes(), 4);

    let dir = daemon.into_dir();
    for a in first.values() {
        assert!(!ping(*a, Duration::from_millis(100)), "{a} still answers");
    }
    let daemon = Daemon::start_in(dir, &toml, Vec::new());
    for (id, a) in &first {
        assert_eq!(served(&sim, id, EVENTUALLY), *a);
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(writes(), 4, "the restart wrote addresses again");
    ipmitool(first[&ids[0]], ADMIN, &["power", "status"]).ok();
    drop(daemon);
}

/// `check` lists discovered nodes with their addresses and ports
/// (recording nothing); `export` includes them at the same addresses in
/// every format and records them; an exhausted pool fails both, naming
/// the pool and the server.
#[test]
fn check_and_export_include_discovered_nodes() {
    let sim = Sim::start();
    let (pool, _) = unique_pool();
    let a = tagged_as(&sim, "bm-a", "aaaaaaaa-0000-4000-8000-000000000000");
    let b = tagged_as(&sim, "bm-b", "bbbbbbbb-0000-4000-8000-000000000000");
    let dir = tempfile::tempdir().expect("dir");
    write_file(dir.path(), "novabmc.toml", &config(&sim, &pool, 1.0, ""));
    let novabmc = |args: &[&str]| {
        Out::collect(
            Command::new(env!("CARGO_BIN_EXE_novabmc"))
                .args(["--log", "warn"])
                .args(args)
                .args(["--config", "novabmc.toml"])
                .current_dir(dir.path()),
            "run novabmc",
        )
    };
    let table = novabmc(&["check"]);
    let text = table.ok();
    assert!(
        text.contains(&format!(
            "discovery: tag {TAG}; addresses from pool {pool}; 2 servers picked, 2 nodes"
        )),
        "{text}"
    );
    let report: Value =
        serde_json::from_str(novabmc(&["check", "--format", "json"]).ok()).expect("check JSON");
    let mut checked = BTreeMap::new();
    for name in ["bm-a", "bm-b"] {
        let row = report["nodes"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("no row {name}: {report:#}"));
        assert_eq!(row["origin"], "discovered");
        let bmc: SocketAddr = row["bmc"]
            .as_str()
            .and_then(|b| b.parse().ok())
            .expect("bmc");
        assert_eq!(bmc.port(), IPMI_PORT);
        assert!(in_pool(bmc.ip(), &pool));
        assert!(
            text.lines().any(|l| l.starts_with(name)
                && l.contains("discovered")
                && l.contains(&bmc.to_string())),
            "{text}"
        );
        checked.insert(name, bmc);
    }
    let listeners: Vec<&str> = report["redfish"]
        .as_array()
        .expect("redfish")
        .iter()
        .filter_map(|l| l["url"].as_str())
        .collect();
    assert!(
        listeners.contains(&format!("http://{}:{REDFISH_PORT}", checked["bm-a"].ip()).as_str()),
        "{listeners:?}"
    );
    assert_eq!(recorded(&sim, &a), None, "check recorded an address");

    let out = novabmc(&["export", "--format", "ironic"]);
    let doc: Value = serde_json::from_str(out.ok()).expect("export JSON");
    for (name, id) in [("bm-a", &a), ("bm-b", &b)] {
        let node = doc["nodes"]
            .as_array()
            .and_then(|l| l.iter().find(|n| n["name"] == name))
            .unwrap_or_else(|| panic!("no node {name}: {doc:#}"));
        let at = checked[name];
        assert_eq!(node["driver_info"]["ipmi_address"], at.ip().to_string());
        assert_eq!(node["driver_info"]["ipmi_port"], IPMI_PORT);
        assert_eq!(recorded(&sim, id), Some(at.ip()), "export did not record");
    }
    // The other formats carry the same addresses.
    for format in ["instackenv", "maas", "ironic-redfish", "maas-redfish"] {
        let out = novabmc(&["export", "--format", format]);
        let text = out.ok();
        for at in checked.values() {
            assert!(text.contains(&at.ip().to_string()), "{format}: {text}");
        }
    }

    // Two addresses in a /30 (the /28's first two): bm-a keeps the
    // second, bm-b's is the /30's broadcast address and it gets the
    // first, and the third server, created last, has none.
    let small = pool.replace("/28", "/30");
    write_file(
        dir.path(),
        "novabmc.toml",
        &config(&sim, &small, 1.0, "")
            .replace(&format!("exclude = [\"{}\"]\n", first_host(&pool)), ""),
    );
    let late = tagged_as(&sim, "bm-late", "ffffffff-0000-4000-8000-000000000000");
    let out = novabmc(&["check"]);
    out.failed();
    let all = out.all();
    assert!(
        all.contains(&format!(
            "server bm-b ({b}): its recorded BMC address {} is not in the pool {small}",
            checked["bm-b"].ip()
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!("BMC address pool {small} is exhausted"))
            && all.contains(&format!("server bm-late ({late})")),
        "{all}"
    );
    let out = novabmc(&["export", "--format", "ironic"]);
    out.failed();
    assert!(out.all().contains("bm-late"), "{}", out.all());
}

/// A refresh that adds a node while a SOL console is open on one node and
/// an ipmitool shell on another keeps both: the console carries typing
/// and the shell its one session.
#[test]
fn a_refresh_keeps_open_consoles_and_sessions() {
    require_tool("script");
    let sim = Sim::start();
    let (pool, _) = unique_pool();
    let console_id = tagged(&sim, "bm-sol", true);
    let shell_id = tagged(&sim, "bm-shell", true);
    let daemon = Daemon::start_with(&config(&sim, &pool, 1.0, ""), Vec::new());
    let sol_at = served(&sim, &console_id, EVENTUALLY);
    let shell_at = served(&sim, &shell_id, EVENTUALLY);
    eventually("bm-sol's server resolved", || {
        ipmitool(sol_at, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).code == Some(0)
    });
    let mut console = crate::sol::Terminal::sol(sol_at, ADMIN);
    console.wait_for("bm-sol login: ");
    let mut shell = Shell::start(shell_at, ADMIN, &[]);
    shell.run("power status", "Chassis Power is on");

    let added = tagged(&sim, "bm-new", false);
    let new_at = served(&sim, &added, EVENTUALLY);
    eventually("the new node to know its server", || {
        ipmitool(new_at, ADMIN, &["power", "status"])
            .stdout
            .contains("Chassis Power is off")
    });
    // A file reload on top (SIGHUP goes through discovery too) changes
    // nothing that runs.
    hup(&daemon);
    eventually("the reload to be logged", || {
        !daemon.log_lines(&["configuration reloaded"]).is_empty()
    });
    console.type_text("root\r");
    console.wait_for("bm-sol:~$ ");
    let status = shell.run("power status", "Chassis Power");
    assert!(status.contains("Chassis Power is on"), "{status}");
    assert_eq!(
        daemon
            .log_lines(&["session opened", "node=\"bm-shell\""])
            .len(),
        1,
        "{}",
        daemon.log()
    );
    for line in daemon.log_lines(&["configuration reloaded"]) {
        assert!(line.contains("added=0 removed=0 changed=0"), "{line}");
    }
}

/// Discovery's own listings are counted on the metrics endpoint, apart
/// from the backend's (`operation="discover_servers"`).
#[test]
fn discovery_calls_are_counted_in_the_metrics() {
    let sim = Sim::start();
    let (pool, _) = unique_pool();
    let bm = tagged(&sim, "bm-m", true);
    let listen = SocketAddr::from((unique_loopback(), 9465));
    let toml = config(
        &sim,
        &pool,
        1.0,
        &format!("[metrics]\nlisten = \"{listen}\"\n"),
    );
    let _daemon = Daemon::start_with(&toml, vec![]);
    served(&sim, &bm, EVENTUALLY);
    eventually("discovery's listings counted", || {
        reqwest::blocking::get(format!("http://{listen}/metrics"))
            .ok()
            .and_then(|r| r.text().ok())
            .is_some_and(|t| {
                t.lines().any(|l| {
                    l.starts_with("novabmc_cloud_requests_total")
                        && l.contains("operation=\"discover_servers\"")
                        && l.contains("status=\"ok\"")
                })
            })
    });
}
