//! `novabmc check` run as the real binary against the Nova simulator
//! process: a good configuration passes with its table; a missing server,
//! an ambiguous name, a missing iPXE image, an iPXE image of the other
//! firmware and an unreachable cloud each fail, naming the node and the
//! problem; `--format json` parses; the simulated backend is checked too.

use crate::cloud;
use crate::common;

use std::path::Path;
use std::process::Command;

use cloud::Sim;
use common::{Out, unique_loopback, write_file};
use serde_json::Value;

fn check(config: &Path, json: bool) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_novabmc"));
    cmd.args(["check", "--config"]).arg(config);
    if json {
        cmd.args(["--format", "json"]);
    }
    Out::collect(&mut cmd, "novabmc check")
}

/// A Nova configuration serving `nodes` (name, server, extra TOML).
fn nova_config(clouds_yaml: &Path, nodes: &[(&str, &str, &str)]) -> String {
    let ip = unique_loopback();
    let mut t = format!(
        "[users.admin]\npassword = \"password\"\n[backend]\ntype = \"nova\"\ncloud = \"sim\"\n\
         clouds_yaml = \"{}\"\nipxe_image = \"ipxe-boot\"\nrequest_timeout_secs = 5\n",
        clouds_yaml.display()
    );
    for (i, (name, server, extra)) in nodes.iter().enumerate() {
        t.push_str(&format!(
            "[nodes.{name}]\naddress = \"{ip}\"\nport = {}\nserver = \"{server}\"\n{extra}\n",
            6230 + i
        ));
    }
    t
}

/// The row of `node` in the JSON report.
fn row<'a>(report: &'a Value, node: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("no row for {node}: {report}"))
}

#[test]
fn a_good_configuration_passes_with_its_table() {
    let sim = Sim::start();
    let on = sim.add_server("vm-on", true);
    let off = sim.add_server("vm-off", false);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        dir.path(),
        "good.toml",
        &nova_config(
            &sim.clouds_yaml,
            &[
                ("a", "vm-on", ""),
                // By UUID, network boot by metadata: no image needed.
                ("b", &off, "network_boot = \"metadata\""),
            ],
        ),
    );
    let out = check(&config, false);
    let text = out.ok();
    assert!(text.contains("catalog: compute http://"), "{text}");
    assert!(text.contains("microversion 2.17: supported"), "{text}");
    let line = |node: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{node} ")))
            .unwrap_or_else(|| panic!("no row for {node}:\n{text}"))
            .to_string()
    };
    let a = line("a");
    for want in [
        "vm-on",
        on.as_str(),
        "ACTIVE",
        "Running",
        "rebuild/uefi",
        "ok",
    ] {
        assert!(a.contains(want), "{want} missing in {a:?}");
    }
    let b = line("b");
    for want in ["vm-off", off.as_str(), "SHUTOFF", "metadata", "none", "ok"] {
        assert!(b.contains(want), "{want} missing in {b:?}");
    }
    assert!(!text.contains("problem:"), "{text}");

    let report: Value = serde_json::from_str(check(&config, true).ok()).expect("JSON report");
    assert_eq!(row(&report, "a")["server_id"], on.as_str());
    assert_eq!(row(&report, "a")["boot_mode"], "uefi");
    assert_eq!(row(&report, "b")["power"], "Shutdown");
    assert_eq!(row(&report, "b")["boot_persistent"], false);
    assert_eq!(report["cloud"]["servers_listed"], 2);
}

#[test]
fn each_problem_fails_naming_the_node() {
    let sim = Sim::start();
    sim.add_server("fine", false);
    sim.add_server("twin", false);
    sim.add_server("twin", false);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        dir.path(),
        "bad.toml",
        &nova_config(
            &sim.clouds_yaml,
            &[
                ("fine", "fine", ""),
                ("gone", "no-such-server", ""),
                ("twins", "twin", ""),
                ("noimage", "fine", "ipxe_image = \"no-such-image\""),
                // The server's image is UEFI, this iPXE image is BIOS.
                ("mismatch", "fine", "ipxe_image = \"ipxe-boot-bios\""),
            ],
        ),
    );
    let out = check(&config, false);
    out.failed();
    let problems: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    let has = |node: &str, what: &str| {
        problems
            .iter()
            .any(|l| l.starts_with(&format!("problem: node {node}: ")) && l.contains(what))
    };
    assert!(has("gone", "server no-such-server not found"), "{out:#?}");
    assert!(has("twins", "ambiguous"), "{out:#?}");
    assert!(has("noimage", "iPXE image no-such-image"), "{out:#?}");
    assert!(has("mismatch", "hw_firmware_type=(unset)"), "{out:#?}");
    assert!(
        !problems.iter().any(|l| l.contains("node fine:")),
        "{out:#?}"
    );
    assert_eq!(problems.len(), 4, "{out:#?}");
    assert!(
        out.stderr
            .contains("4 of 5 nodes have problems: gone, mismatch, noimage, twins"),
        "{out:#?}"
    );

    let out = check(&config, true);
    out.failed();
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON report");
    assert_eq!(
        row(&report, "fine")["problems"].as_array().map(Vec::len),
        Some(0)
    );
    let twins = row(&report, "twins")["problems"][0].as_str().expect("text");
    assert!(twins.contains("2 servers have it"), "{twins}");
}

#[test]
fn an_unreachable_cloud_fails_every_node() {
    // A port nothing listens on: bind one, note it, close it.
    let closed = std::net::TcpListener::bind((unique_loopback(), 0))
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("dir");
    let clouds = write_file(
        dir.path(),
        "clouds.yaml",
        &format!(
            "clouds:\n  sim:\n    auth:\n      auth_url: http://{closed}/v3\n      \
             username: u\n      password: p\n      project_name: p\n      \
             user_domain_name: Default\n      project_domain_name: Default\n"
        ),
    );
    let config = write_file(
        dir.path(),
        "down.toml",
        &nova_config(&clouds, &[("a", "vm-a", ""), ("b", "vm-b", "")]),
    );
    let out = check(&config, false);
    out.failed();
    for node in ["a", "b"] {
        assert!(
            out.stdout
                .contains(&format!("problem: node {node}: cannot reach the cloud")),
            "{out:#?}"
        );
    }
    assert!(out.stdout.contains(&closed.to_string()), "{out:#?}");
}

#[test]
fn the_simulated_backend_is_checked_too() {
    let dir = tempfile::tempdir().expect("dir");
    let ip = unique_loopback();
    let config = write_file(
        dir.path(),
        "sim.toml",
        &format!(
            "[users.admin]\npassword = \"password\"\n[backend]\ntype = \"simulated\"\nefi = false\n\
             [nodes.s0]\naddress = \"{ip}\"\nport = 6230\n\
             [nodes.s1]\naddress = \"{ip}\"\nport = 6231\nefi = true\n\
             [nodes.far]\naddress = \"192.0.2.77\"\nport = 6230\n"
        ),
    );
    let out = check(&config, true);
    let report: Value = serde_json::from_str(out.ok()).expect("JSON report");
    assert_eq!(report["backend"], "simulated");
    assert_eq!(row(&report, "s0")["boot_mode"], "bios");
    assert_eq!(row(&report, "s1")["boot_mode"], "uefi");
    assert_eq!(row(&report, "s0")["bmc"], format!("{ip}:6230"));
    // An address no interface holds is a warning, not a failure.
    let far = row(&report, "far")["warnings"][0]
        .as_str()
        .expect("warning");
    assert!(far.contains("no interface holds 192.0.2.77"), "{far}");
}

/// The owner key a serving daemon wrote names this very instance (same
/// host, same state directory): `check` with that configuration does not
/// warn; with another state directory it warns, naming the other
/// instance.
#[test]
fn the_owner_key_is_a_warning_only_when_it_names_another_instance() {
    let sim = Sim::start();
    let id = sim.add_server("owned", true);
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("state-a");
    let (toml, nodes) = cloud::config(
        &sim.backend_toml_in("rebuild", &state),
        unique_loopback(),
        &[("n", "owned")],
        "",
    );
    let mut daemon = common::Daemon::start_with(&toml, nodes);
    let cloud = cloud::TestCloud::Sim(sim);
    common::eventually("the owner key written", || {
        cloud.metadata(&id).contains_key("novabmc_owner")
    });
    let owner = cloud.metadata(&id)["novabmc_owner"].clone();
    daemon.stop();

    let same = write_file(dir.path(), "same.toml", &toml);
    let out = check(&same, true);
    let report: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        row(&report, "n")["warnings"],
        serde_json::json!([]),
        "this instance's own key: {report}"
    );

    let other_state = dir.path().join("state-b");
    let other = write_file(
        dir.path(),
        "other.toml",
        &toml.replace(
            &state.display().to_string(),
            &other_state.display().to_string(),
        ),
    );
    let out = check(&other, true);
    let report: Value = serde_json::from_str(&out.stdout).expect("json");
    let warnings = row(&report, "n")["warnings"].to_string();
    assert!(
        warnings.contains(&owner) && warnings.contains("another novabmc instance"),
        "{warnings}"
    );
}
