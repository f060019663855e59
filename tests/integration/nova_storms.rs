//! Commands faster than Nova carries them out, with the real clients: the
//! daemon against the Nova simulator process with transitions seconds
//! long, as on a real cloud. No command is refused ("node busy" would make
//! ipmitool fail and ipmipower print nothing), the server ends where the
//! last command said, and Nova sees at most one stop and one boot after
//! the call under way when the storm began.

use crate::cloud;
use crate::common;

use cloud::{Sim, TestCloud, TestServer};
use common::*;

struct Rig {
    cloud: TestCloud,
    servers: Vec<TestServer>,
    daemon: Daemon,
}

impl Rig {
    fn new(mode: &str, on: &[bool]) -> Rig {
        let sim = Sim::start();
        let cloud = TestCloud::Sim(sim);
        let servers: Vec<TestServer> = on
            .iter()
            .enumerate()
            .map(|(i, on)| cloud.servers(&format!("storm{i}-{mode}"), 1, *on).remove(0))
            .collect();
        let names: Vec<(String, &str)> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("node-{i}"), s.reference.as_str()))
            .collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let (toml, nodes) = cloud::config(&cloud.backend_toml(mode), unique_loopback(), &pairs, "");
        let daemon = Daemon::start_with(&toml, nodes);
        for n in &daemon.nodes {
            eventually("server resolved", || {
                ipmitool(*n, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).code == Some(0)
            });
        }
        cloud.sim().expect("sim").realistic_timings();
        Rig {
            cloud,
            servers,
            daemon,
        }
    }

    fn actions(&self, i: usize) -> Vec<String> {
        self.cloud.actions(&self.servers[i].id).expect("sim")
    }

    fn boots(&self, i: usize) -> Vec<String> {
        self.cloud.boots(&self.servers[i].id).expect("sim")
    }

    fn settled(&self, i: usize) {
        self.cloud.wait_settled(&self.servers[i].id);
    }
}

fn count(actions: &[String], kinds: &[&str]) -> usize {
    actions
        .iter()
        .filter(|a| kinds.contains(&a.as_str()))
        .count()
}

const BOOTS: [&str; 4] = ["os-start", "reboot", "rebuild", "rescue"];

/// 50 alternating on/off with ipmitool.
fn ipmitool_storm(node: std::net::SocketAddr, first_on: bool) {
    for k in 0..50 {
        let on = (k % 2 == 0) == first_on;
        let out = ipmitool(node, ADMIN, &["power", if on { "on" } else { "off" }]);
        let want = if on {
            "Chassis Power Control: Up/On\n"
        } else {
            "Chassis Power Control: Down/Off\n"
        };
        assert_eq!(out.ok(), want, "command {k}: {out:?}");
    }
}

/// 50 alternating --on/--off with ipmipower; "ok" for each (ipmipower
/// prints nothing at all for a refused command).
fn ipmipower_storm(node: std::net::SocketAddr, first_on: bool) {
    let h = node.ip();
    for k in 0..50 {
        let on = (k % 2 == 0) == first_on;
        let out = ipmipower(node, ADMIN, &[if on { "--on" } else { "--off" }]);
        assert_eq!(out.ok(), format!("{h}: ok\n"), "command {k}: {out:?}");
    }
}

#[test]
fn storms_from_both_tools_end_in_the_last_state_with_one_stop_and_one_boot() {
    // Node 0 runs, node 1 is off; each tool sends 50 alternating commands
    // starting with the one that changes its node (so Nova is busy at
    // once) and ending with its opposite.
    let r = Rig::new("rebuild", &[true, false]);
    let (a, b) = (r.daemon.nodes[0], r.daemon.nodes[1]);
    std::thread::scope(|s| {
        s.spawn(|| ipmitool_storm(a, false));
        s.spawn(|| ipmipower_storm(b, true));
    });
    // ipmitool's last command was "on", ipmipower's "off".
    assert_eq!(
        ipmitool(a, ADMIN, &["power", "status"]).ok(),
        "Chassis Power is on\n"
    );
    assert_eq!(
        ipmipower(b, ADMIN, &["--stat"]).ok(),
        format!("{}: off\n", b.ip())
    );
    r.settled(0);
    r.settled(1);
    r.cloud.wait_for(&r.servers[0].id, "ACTIVE");
    r.cloud.wait_for(&r.servers[1].id, "SHUTOFF");
    for i in 0..2 {
        let actions = r.actions(i);
        assert!(
            count(&actions, &["os-stop"]) <= 1 && count(&actions, &BOOTS) <= 1,
            "node {i}: at most one stop and one boot: {actions:?}"
        );
    }
    assert_eq!(r.actions(1), ["os-start", "os-stop"]);
    let log = r.daemon.log();
    assert!(
        !log.contains("node busy") && !log.contains("NotReady"),
        "{log}"
    );
}

#[test]
fn a_storm_ending_on_on_with_pxe_set_boots_the_network_once() {
    let r = Rig::new("rescue", &[true]);
    let n = r.daemon.nodes[0];
    ipmitool(n, ADMIN, &["chassis", "bootdev", "pxe"]).ok();
    ipmitool_storm(n, false);
    r.settled(0);
    r.cloud.wait_for(&r.servers[0].id, "RESCUE");
    let boots = r.boots(0);
    assert_eq!(boots, ["rescue"], "one network boot: {:?}", r.actions(0));
    let actions = r.actions(0);
    assert!(count(&actions, &["os-stop"]) <= 1, "{actions:?}");
    // The one-time flag is used up: the next boot is from disk.
    ipmitool(n, ADMIN, &["power", "cycle"]).ok();
    r.settled(0);
    r.cloud.wait_for(&r.servers[0].id, "ACTIVE");
    assert_eq!(r.boots(0), ["rescue", "disk"]);
}

#[test]
fn ironic_reboot_is_exactly_one_reboot() {
    let r = Rig::new("rebuild", &[true]);
    let n = r.daemon.nodes[0];
    let status = || ipmitool(n, ADMIN, &["power", "status"]).ok().to_string();
    assert_eq!(status(), "Chassis Power is on\n");
    ipmitool(n, ADMIN, &["power", "off"]).ok();
    assert_eq!(status(), "Chassis Power is off\n");
    ipmitool(n, ADMIN, &["power", "on"]).ok();
    assert_eq!(status(), "Chassis Power is on\n");
    r.settled(0);
    r.cloud.wait_for(&r.servers[0].id, "ACTIVE");
    assert_eq!(r.boots(0).len(), 1, "{:?}", r.actions(0));
    assert!(
        cloud::is_one_disk_reboot(&r.actions(0)),
        "{:?}",
        r.actions(0)
    );
}

#[test]
fn maas_pxe_then_cycle_is_one_network_boot() {
    let r = Rig::new("rescue", &[true, false]);
    for node in &r.daemon.nodes {
        let file = maas_boot_file(r.daemon.dir(), None);
        maas(
            "ipmi-chassis-config",
            *node,
            OPERATOR,
            &["--commit", "--filename", file.to_str().expect("path")],
        )
        .ok();
        assert_eq!(
            maas("ipmipower", *node, OPERATOR, &["--cycle", "--on-if-off"]).ok(),
            format!("{}: ok\n", node.ip())
        );
    }
    for i in 0..2 {
        r.settled(i);
        r.cloud.wait_for(&r.servers[i].id, "RESCUE");
        assert_eq!(r.boots(i), ["rescue"], "node {i}: {:?}", r.actions(i));
    }
    assert_eq!(r.actions(0), ["rescue"], "running: rescued at once");
    assert_eq!(r.actions(1), ["rescue"], "off: rescued, which starts it");
}
