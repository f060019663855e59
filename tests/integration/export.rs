//! `novabmc export` run as the real binary against the Nova simulator
//! process: every field of the ironic, instackenv and maas formats checked
//! against what the simulated cloud holds (UEFI and BIOS images, a server
//! booted from a volume, several NICs, an IPv6 BMC address, a node that
//! overrides its firmware and names its server by UUID), the secrets as
//! values and as references, the choice of user, and the failures that
//! must export nothing.
//!
//! The MAAS script is run by `sh` with a stand-in `maas` that prints its
//! arguments, which proves the quoting as well as the values.

use crate::cloud;
use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use cloud::Sim;
use common::{Out, unique_loopback};
use serde_json::{Value, json};

/// The administrator's password: quotes, a dollar and a space, so only
/// correct quoting survives the shell.
const ADMIN_PW: &str = "p@ss w'rd $x\"y";
/// The operator's password.
const OPERATOR_PW: &str = "op-secret";

/// What `openstack baremetal create` passes to the node create call:
/// python-ironicclient's `NodeManager._creation_attributes` (current
/// release), plus `ports` and `portgroups`, which it creates separately.
/// Anything else in a node makes the client refuse the file.
const IRONIC_NODE_FIELDS: &[&str] = &[
    "chassis_uuid",
    "driver",
    "driver_info",
    "extra",
    "uuid",
    "properties",
    "name",
    "bios_interface",
    "boot_interface",
    "console_interface",
    "deploy_interface",
    "disable_power_off",
    "inspect_interface",
    "management_interface",
    "network_interface",
    "power_interface",
    "raid_interface",
    "rescue_interface",
    "storage_interface",
    "vendor_interface",
    "firmware_interface",
    "resource_class",
    "conductor_group",
    "automated_clean",
    "network_data",
    "parent_node",
    "owner",
    "lessee",
    "shard",
    "description",
    "instance_name",
    "ports",
    "portgroups",
];

/// driver_info keys Ironic's `ipmi` hardware type reads.
const IPMI_DRIVER_INFO: &[&str] = &[
    "ipmi_address",
    "ipmi_port",
    "ipmi_username",
    "ipmi_password",
    "ipmi_priv_level",
    "ipmi_cipher_suite",
    "ipmi_hex_kg_key",
    "ipmi_protocol_version",
    "ipmi_terminal_port",
];

/// One node as the cloud and the configuration define it.
#[derive(Debug)]
struct Expected {
    node: &'static str,
    server_name: &'static str,
    server_id: String,
    address: &'static str,
    port: u16,
    macs: Vec<String>,
    cpus: u64,
    ram: u64,
    disk: u64,
    arch: &'static str,
    maas_arch: &'static str,
    uefi: bool,
}

impl Expected {
    fn boot_mode(&self) -> &'static str {
        if self.uefi { "uefi" } else { "bios" }
    }

    fn ports(&self) -> Value {
        self.macs.iter().map(|m| json!({"address": m})).collect()
    }

    /// FreeIPMI's host:port, bracketed for IPv6.
    fn power_address(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// A simulated cloud with four different machines and a configuration
/// serving them.
struct Lab {
    sim: Sim,
    dir: tempfile::TempDir,
    expected: Vec<Expected>,
}

impl Lab {
    fn new() -> Lab {
        let sim = Sim::start();
        sim.add_image(
            "efi-image",
            Some("uefi"),
            json!({"hw_architecture": "x86_64"}),
        );
        sim.add_image("bios-image", None, json!({"architecture": "x86_64"}));
        sim.add_image(
            "arm-efi-image",
            Some("uefi"),
            json!({"hw_architecture": "aarch64"}),
        );
        sim.add_image("ppc-image", None, json!({"architecture": "ppc64el"}));
        sim.add_flavor("bfv.small", 2, 4096, 0);
        sim.add_flavor("big", 16, 65536, 200);
        let uefi =
            sim.add_server_spec(json!({"name": "vm-uefi", "image": "efi-image", "ports": 2}));
        let bios = sim.add_server_spec(
            json!({"name": "vm-bios", "image": "bios-image", "flavor": "big", "ports": 3}),
        );
        let bfv = sim.add_server_spec(json!({"name": "vm-bfv", "image": "arm-efi-image",
            "flavor": "bfv.small", "volume_gb": 80, "on": true}));
        let ppc = sim.add_server_spec(json!({"name": "vm-ppc", "image": "ppc-image"}));
        let macs = |name: &str| -> Vec<String> {
            serde_json::from_value(sim.server(name)["macs"].clone()).expect("macs")
        };
        let expected = vec![
            Expected {
                node: "node-uefi",
                server_name: "vm-uefi",
                server_id: uefi,
                address: "10.77.0.1",
                port: 623,
                macs: macs("vm-uefi"),
                cpus: 4,
                ram: 8192,
                disk: 40,
                arch: "x86_64",
                maas_arch: "amd64",
                uefi: true,
            },
            Expected {
                node: "node-bios",
                server_name: "vm-bios",
                server_id: bios,
                address: "fd00:77::2",
                port: 6231,
                macs: macs("vm-bios"),
                cpus: 16,
                ram: 65536,
                disk: 200,
                arch: "x86_64",
                maas_arch: "amd64",
                uefi: false,
            },
            Expected {
                node: "node-bfv",
                server_name: "vm-bfv",
                server_id: bfv,
                address: "10.77.0.3",
                port: 6232,
                macs: macs("vm-bfv"),
                cpus: 2,
                ram: 4096,
                // The volume's size: the flavor's disk is 0.
                disk: 80,
                arch: "aarch64",
                maas_arch: "arm64",
                uefi: true,
            },
            Expected {
                node: "node_ppc",
                server_name: "vm-ppc",
                server_id: ppc,
                address: "10.77.0.4",
                port: 6233,
                macs: macs("vm-ppc"),
                cpus: 4,
                ram: 8192,
                disk: 40,
                arch: "ppc64le",
                maas_arch: "ppc64el",
                // The image says BIOS; the node's `efi = true` wins.
                uefi: true,
            },
        ];
        assert_eq!(expected[0].macs.len(), 2);
        assert_eq!(expected[1].macs.len(), 3);
        let mut toml = format!(
            "[users.admin]\npassword = {}\n[users.operator]\npassword = \"{OPERATOR_PW}\"\n\
             privilege = \"operator\"\n{}",
            toml_string(ADMIN_PW),
            sim.backend_toml("rebuild")
        );
        for e in &expected {
            // The ppc node names its server by UUID, the others by name.
            let server = if e.node == "node_ppc" {
                e.server_id.clone()
            } else {
                e.server_name.to_string()
            };
            toml.push_str(&format!(
                "[nodes.{}]\naddress = \"{}\"\nserver = \"{server}\"\n",
                e.node, e.address
            ));
            if e.port != 623 {
                toml.push_str(&format!("port = {}\n", e.port));
            }
            if e.node == "node_ppc" {
                toml.push_str("efi = true\n");
            }
        }
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("novabmc.toml"), toml).expect("config");
        Lab { sim, dir, expected }
    }

    fn export(&self, args: &[&str]) -> Out {
        export(self.dir.path(), args, &[])
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs `novabmc export --config novabmc.toml ARGS` in `dir`.
fn export(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    Out::collect(
        Command::new(env!("CARGO_BIN_EXE_novabmc"))
            .args(["--log", "warn", "export", "--config", "novabmc.toml"])
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied()),
        "run novabmc export",
    )
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The node called `name` in a `{"nodes": [...]}` document.
fn node<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {doc:#}"))
}

/// Runs a MAAS script with `sh` and a stand-in `maas` that prints its
/// arguments; returns each command's words after `maas`.
fn run_maas_script(script: &str, env: &[(&str, &str)]) -> Result<Vec<Vec<String>>, Out> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("enroll.sh");
    std::fs::write(&path, script).expect("script");
    let out = Out::collect(
        Command::new("sh")
            .arg("-c")
            .arg("maas() { printf '%s\\n' \"$@\"; echo '--end--'; }; . \"$1\"")
            .arg("sh")
            .arg(&path)
            .env_remove("PROFILE")
            .envs(env.iter().copied()),
        "run sh",
    );
    if out.code != Some(0) {
        return Err(out);
    }
    Ok(out
        .stdout
        .split("--end--\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.lines().map(str::to_string).collect())
        .collect())
}

/// A `machines create` command's `key=value` parameters, in order.
fn maas_params(words: &[String]) -> Vec<(String, String)> {
    assert_eq!(words[1..3], ["machines", "create"], "{words:?}");
    words[3..]
        .iter()
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {w}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The MAAS parameters expected for `e` with the given user and password.
fn expected_maas(e: &Expected, user: &str, password: &str, suite: u8) -> Vec<(String, String)> {
    let mut p = vec![
        ("hostname", e.node.replace('_', "-")),
        ("architecture", format!("{}/generic", e.maas_arch)),
    ];
    p.extend(e.macs.iter().map(|m| ("mac_addresses", m.clone())));
    p.extend([
        ("power_type", "ipmi".to_string()),
        ("power_parameters_power_driver", "LAN_2_0".into()),
        ("power_parameters_power_address", e.power_address()),
        ("power_parameters_power_user", user.into()),
        ("power_parameters_power_pass", password.into()),
        ("power_parameters_cipher_suite_id", suite.to_string()),
        ("power_parameters_privilege_level", "OPERATOR".into()),
        (
            "power_parameters_power_boot_type",
            if e.uefi { "efi" } else { "legacy" }.into(),
        ),
    ]);
    pairs(&p)
}

#[test]
fn ironic_format_field_by_field() {
    let lab = Lab::new();
    let out = lab.export(&["--format", "ironic"]);
    let doc: Value = serde_json::from_str(out.ok()).expect("JSON");
    // python-ironicclient's schema: only chassis and nodes at the top.
    assert_eq!(keys(&doc), BTreeSet::from(["nodes".to_string()]));
    let names: Vec<&str> = doc["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["node-bfv", "node-bios", "node-uefi", "node_ppc"]);
    for e in &lab.expected {
        let n = node(&doc, e.node);
        for k in keys(n) {
            assert!(
                IRONIC_NODE_FIELDS.contains(&k.as_str()),
                "{k} refused by baremetal create"
            );
        }
        for k in keys(&n["driver_info"]) {
            assert!(
                IPMI_DRIVER_INFO.contains(&k.as_str()),
                "{k} unknown to ipmi"
            );
        }
        assert_eq!(
            *n,
            json!({
                "name": e.node,
                "driver": "ipmi",
                "driver_info": {
                    "ipmi_address": e.address,
                    "ipmi_port": e.port,
                    "ipmi_username": "admin",
                    "ipmi_password": ADMIN_PW,
                    "ipmi_priv_level": "ADMINISTRATOR",
                    "ipmi_cipher_suite": 17,
                },
                "properties": {
                    "cpus": e.cpus,
                    "memory_mb": e.ram,
                    "local_gb": e.disk,
                    "cpu_arch": e.arch,
                    "capabilities": format!("boot_mode:{}", e.boot_mode()),
                },
                "ports": e.ports(),
            }),
            "{}",
            e.node
        );
    }
    // The boot-from-volume server's disk came from Cinder, found through
    // the catalog URL that carries the project.
    let volume_reads: Vec<Value> = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/volume/v3/"))
        })
        .collect();
    assert_eq!(volume_reads.len(), 1, "{volume_reads:#?}");
    assert_eq!(volume_reads[0]["status"], 200);
    assert!(
        volume_reads[0]["path"]
            .as_str()
            .is_some_and(|p| p.split('/').count() == 6),
        "{volume_reads:#?}"
    );
    // Flavors came embedded in the servers (2.47): no flavor call.
    assert!(
        !lab.sim
            .requests()
            .iter()
            .any(|r| r["path"].as_str().is_some_and(|p| p.contains("/flavors")))
    );

    // --output writes the same document to a file only the owner can read,
    // even one that existed with a wider mode.
    use std::os::unix::fs::PermissionsExt;
    let file = lab.dir.path().join("nodes.json");
    std::fs::write(&file, "old").expect("old file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let to_file = lab.export(&["--format", "ironic", "--output", "nodes.json"]);
    assert_eq!(to_file.ok(), "", "nothing on stdout with --output");
    let written = std::fs::read_to_string(&file).expect("written");
    assert_eq!(
        serde_json::from_str::<Value>(&written).expect("JSON"),
        doc,
        "same document"
    );
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn instackenv_format_field_by_field() {
    let lab = Lab::new();
    let out = lab.export(&["--format", "instackenv"]);
    let doc: Value = serde_json::from_str(out.ok()).expect("JSON");
    assert_eq!(keys(&doc), BTreeSet::from(["nodes".to_string()]));
    assert_eq!(doc["nodes"].as_array().map(Vec::len), Some(4));
    for e in &lab.expected {
        assert_eq!(
            *node(&doc, e.node),
            json!({
                "name": e.node,
                "pm_type": "ipmi",
                "pm_addr": e.address,
                "pm_port": e.port,
                "pm_user": "admin",
                "pm_password": ADMIN_PW,
                "ipmi_priv_level": "ADMINISTRATOR",
                "ipmi_cipher_suite": 17,
                "ports": e.ports(),
                "cpu": e.cpus,
                "memory": e.ram,
                "disk": e.disk,
                "arch": e.arch,
                "capabilities": format!("boot_mode:{},boot_option:local", e.boot_mode()),
            }),
            "{}",
            e.node
        );
    }
}

#[test]
fn maas_commands_field_by_field_through_the_shell() {
    let lab = Lab::new();
    let out = lab.export(&["--format", "maas"]);
    let script = out.ok();
    let commands = run_maas_script(script, &[("PROFILE", "lab-admin")]).expect("script runs");
    assert_eq!(commands.len(), 4, "{script}");
    for e in &lab.expected {
        let hostname = format!("hostname={}", e.node.replace('_', "-"));
        let words = commands
            .iter()
            .find(|c| c.contains(&hostname))
            .unwrap_or_else(|| panic!("no command for {}:\n{script}", e.node));
        assert_eq!(words[0], "lab-admin");
        // The first operator-or-above user is admin (names in order).
        assert_eq!(
            maas_params(words),
            expected_maas(e, "admin", ADMIN_PW, 17),
            "{}",
            e.node
        );
        let firmware = if e.uefi { "UEFI" } else { "BIOS" };
        let comment = format!(
            "# {}: server {} ({}), {} vCPUs, {} MiB RAM, {} GiB disk, {}, {firmware}\n",
            e.node, e.server_name, e.server_id, e.cpus, e.ram, e.disk, e.arch
        );
        assert!(script.contains(&comment), "{comment}in\n{script}");
    }

    // Without PROFILE the script stops before any command.
    let unset = run_maas_script(script, &[]).expect_err("PROFILE unset");
    assert!(unset.stderr.contains("set PROFILE"), "{unset:?}");
    assert!(!unset.stdout.contains("--end--"), "{unset:?}");

    // A named profile, quoted; the operator user on request.
    let out = lab.export(&[
        "--format",
        "maas",
        "--maas-profile",
        "my profile",
        "--user",
        "operator",
    ]);
    let commands = run_maas_script(out.ok(), &[]).expect("no PROFILE needed");
    for words in &commands {
        assert_eq!(words[0], "my profile");
        let p = maas_params(words);
        assert!(p.contains(&("power_parameters_power_user".into(), "operator".into())));
        assert!(p.contains(&("power_parameters_power_pass".into(), OPERATOR_PW.into())));
    }
}

#[test]
fn os_interface_refused_falls_back_to_the_server_addresses() {
    let lab = Lab::new();
    lab.sim.faults(json!({"forbid_os_interface": true}));
    let out = lab.export(&["--format", "ironic"]);
    let doc: Value = serde_json::from_str(out.ok()).expect("JSON");
    for e in &lab.expected {
        assert_eq!(node(&doc, e.node)["ports"], e.ports(), "{}", e.node);
    }
    let refused = lab
        .sim
        .requests()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/os-interface"))
                && r["status"] == 403
        })
        .count();
    assert_eq!(refused, 4);
}

/// A cloud with one server, and a configuration whose secrets come from a
/// file and the environment.
fn secrets_lab(extra: &str) -> (Sim, tempfile::TempDir, Expected) {
    let sim = Sim::start();
    let id = sim.add_server_spec(json!({"name": "vm-0", "image": "centos-stream-9", "ports": 2}));
    let macs: Vec<String> =
        serde_json::from_value(sim.server("vm-0")["macs"].clone()).expect("macs");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("admin.pw"), "from-a-file\n").expect("pw");
    std::fs::write(dir.path().join("kg.hex"), "0x0102030405\n").expect("kg");
    let toml = format!(
        "{extra}[users.admin]\npassword = {{ file = \"admin.pw\" }}\n\
         [users.maas]\npassword = {{ env = \"EXPORT_TEST_MAAS_PW\" }}\nprivilege = \"operator\"\n\
         [users.zz-inline]\npassword = \"inline-pw\"\n{}\
         [nodes.node-0]\naddress = \"10.78.0.1\"\nserver = \"vm-0\"\n",
        sim.backend_toml("rebuild")
    );
    std::fs::write(dir.path().join("novabmc.toml"), toml).expect("config");
    let e = Expected {
        node: "node-0",
        server_name: "vm-0",
        server_id: id,
        address: "10.78.0.1",
        port: 623,
        macs,
        cpus: 4,
        ram: 8192,
        disk: 40,
        arch: "x86_64",
        maas_arch: "amd64",
        uefi: true,
    };
    (sim, dir, e)
}

const MAAS_PW: &str = "m4as pw'$(x)";

#[test]
fn password_references_name_the_file_or_variable() {
    let (_sim, dir, e) = secrets_lab("[bmc]\nkg = { file = \"kg.hex\" }\n");
    let env = [("EXPORT_TEST_MAAS_PW", MAAS_PW)];
    let here = dir.path().canonicalize().expect("dir");
    let file_ref = |name: &str| format!("file:{}", here.join(name).display());

    // By value: the file's contents without the newline, the key in hex.
    let plain: Value =
        serde_json::from_str(export(dir.path(), &["--format", "ironic"], &env).ok()).expect("JSON");
    let info = &node(&plain, "node-0")["driver_info"];
    assert_eq!(info["ipmi_password"], "from-a-file");
    assert_eq!(info["ipmi_hex_kg_key"], "0102030405");

    // By reference: paths made absolute, no secret in the output.
    let out = export(dir.path(), &["--format", "ironic", "--password-ref"], &env);
    assert!(!out.ok().contains("from-a-file"), "{}", out.stdout);
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let info = &node(&doc, "node-0")["driver_info"];
    assert_eq!(info["ipmi_password"], file_ref("admin.pw"));
    assert_eq!(info["ipmi_hex_kg_key"], file_ref("kg.hex"));
    assert_eq!(info["ipmi_username"], "admin");

    let out = export(
        dir.path(),
        &["--format", "instackenv", "--password-ref"],
        &env,
    );
    let doc: Value = serde_json::from_str(out.ok()).expect("JSON");
    let n = node(&doc, "node-0");
    assert_eq!(n["pm_password"], file_ref("admin.pw"));
    assert_eq!(n["ipmi_hex_kg_key"], file_ref("kg.hex"));

    let out = export(
        dir.path(),
        &["--format", "ironic", "--password-ref", "--user", "maas"],
        &env,
    )
    .failed()
    .all();
    assert!(
        out.contains("OPERATOR"),
        "ironic needs an administrator: {out}"
    );

    // MAAS reads the variable and the key file when the script runs.
    let out = export(
        dir.path(),
        &["--format", "maas", "--password-ref", "--user", "maas"],
        &env,
    );
    let script = out.ok();
    assert!(!script.contains("m4as"), "{script}");
    assert!(
        script.contains("power_parameters_power_pass=\"$EXPORT_TEST_MAAS_PW\""),
        "{script}"
    );
    let commands = run_maas_script(
        script,
        &[("PROFILE", "p"), ("EXPORT_TEST_MAAS_PW", MAAS_PW)],
    )
    .expect("runs");
    let mut want = expected_maas(&e, "maas", MAAS_PW, 17);
    want.push(("power_parameters_k_g".into(), "0x0102030405".into()));
    assert_eq!(maas_params(&commands[0]), want);

    // An inline password has nothing to refer to.
    let out = export(
        dir.path(),
        &["--format", "maas", "--password-ref", "--user", "zz-inline"],
        &env,
    );
    let text = out.failed().all();
    assert!(
        text.contains("user zz-inline") && text.contains("inline"),
        "{text}"
    );
    assert_eq!(out.stdout, "");
}

#[test]
fn cipher_suite_3_and_an_inline_bmc_key() {
    let (_sim, dir, e) = secrets_lab("[bmc]\ncipher_suites = [1, 3]\nkg = \"0x0a0b0c\"\n");
    let env = [("EXPORT_TEST_MAAS_PW", MAAS_PW)];
    let doc: Value =
        serde_json::from_str(export(dir.path(), &["--format", "ironic"], &env).ok()).expect("JSON");
    let info = &node(&doc, "node-0")["driver_info"];
    assert_eq!(info["ipmi_cipher_suite"], 3);
    assert_eq!(info["ipmi_hex_kg_key"], "0a0b0c");
    let doc: Value =
        serde_json::from_str(export(dir.path(), &["--format", "instackenv"], &env).ok())
            .expect("JSON");
    assert_eq!(node(&doc, "node-0")["ipmi_cipher_suite"], 3);
    let out = export(dir.path(), &["--format", "maas", "--user", "maas"], &env);
    let commands = run_maas_script(out.ok(), &[("PROFILE", "p")]).expect("runs");
    let mut want = expected_maas(&e, "maas", MAAS_PW, 3);
    want.push(("power_parameters_k_g".into(), "0x0a0b0c".into()));
    assert_eq!(maas_params(&commands[0]), want);
    // --password-ref with an inline key: nothing to refer to either.
    let text = export(
        dir.path(),
        &["--format", "maas", "--password-ref", "--user", "maas"],
        &env,
    )
    .failed()
    .all();
    assert!(text.contains("bmc.kg"), "{text}");
}

#[test]
fn the_exported_user_suits_the_consumer() {
    let sim = Sim::start();
    sim.add_server_spec(json!({"name": "vm-0"}));
    let dir = tempfile::tempdir().expect("dir");
    let toml = format!(
        "[users.a-viewer]\npassword = \"v\"\nprivilege = \"user\"\n\
         [users.b-operator]\npassword = \"o\"\nprivilege = \"operator\"\n\
         [users.c-admin]\npassword = \"a\"\n{}\
         [nodes.node-0]\naddress = \"10.79.0.1\"\nserver = \"vm-0\"\n",
        sim.backend_toml("rebuild")
    );
    std::fs::write(dir.path().join("novabmc.toml"), toml).expect("config");
    let user_of = |format: &str, args: &[&str]| -> String {
        let mut all = vec!["--format", format];
        all.extend_from_slice(args);
        let out = export(dir.path(), &all, &[]);
        let text = out.ok();
        match format {
            "ironic" => serde_json::from_str::<Value>(text).expect("JSON")["nodes"][0]
                ["driver_info"]["ipmi_username"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            "instackenv" => serde_json::from_str::<Value>(text).expect("JSON")["nodes"][0]
                ["pm_user"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            _ => {
                let commands = run_maas_script(text, &[("PROFILE", "p")]).expect("runs");
                maas_params(&commands[0])
                    .into_iter()
                    .find(|(k, _)| k == "power_parameters_power_user")
                    .map(|(_, v)| v)
                    .unwrap_or_default()
            }
        }
    };
    // Defaults: an administrator for Ironic and TripleO, the first
    // operator-or-above for MAAS.
    assert_eq!(user_of("ironic", &[]), "c-admin");
    assert_eq!(user_of("instackenv", &[]), "c-admin");
    assert_eq!(user_of("maas", &[]), "b-operator");
    assert_eq!(user_of("maas", &["--user", "c-admin"]), "c-admin");
    // Too low for what each consumer asks, or unknown: a clear refusal.
    let text = export(
        dir.path(),
        &["--format", "ironic", "--user", "b-operator"],
        &[],
    )
    .failed()
    .all();
    assert!(
        text.contains("b-operator") && text.contains("ADMINISTRATOR"),
        "{text}"
    );
    let text = export(dir.path(), &["--format", "maas", "--user", "a-viewer"], &[])
        .failed()
        .all();
    assert!(
        text.contains("a-viewer") && text.contains("OPERATOR"),
        "{text}"
    );
    let text = export(dir.path(), &["--format", "maas", "--user", "nobody"], &[])
        .failed()
        .all();
    assert!(text.contains("a-viewer, b-operator, c-admin"), "{text}");
}

#[test]
fn missing_or_ambiguous_servers_fail_the_whole_export_naming_each_node() {
    let sim = Sim::start();
    sim.add_server_spec(json!({"name": "vm-good"}));
    sim.add_server_spec(json!({"name": "twin"}));
    sim.add_server_spec(json!({"name": "twin"}));
    let gone = sim.add_server_spec(json!({"name": "vm-gone"}));
    sim.delete_server(&gone);
    let dir = tempfile::tempdir().expect("dir");
    let toml = format!(
        "[users.admin]\npassword = \"password\"\n{}\
         [nodes.a-good]\naddress = \"10.80.0.1\"\nserver = \"vm-good\"\n\
         [nodes.b-ghost]\naddress = \"10.80.0.2\"\n\
         [nodes.c-gone]\naddress = \"10.80.0.3\"\nserver = \"{gone}\"\n\
         [nodes.d-twin]\naddress = \"10.80.0.4\"\nserver = \"twin\"\n",
        sim.backend_toml("rebuild")
    );
    std::fs::write(dir.path().join("novabmc.toml"), toml).expect("config");
    for format in ["ironic", "instackenv", "maas"] {
        let out = export(dir.path(), &["--format", format, "--output", "out"], &[]);
        let text = out.failed().all();
        assert_eq!(out.stdout, "", "nothing exported");
        for want in [
            "3 of 4 nodes",
            "node b-ghost: server b-ghost not found",
            &format!("node c-gone: server {gone} not found"),
            "node d-twin: server name twin is ambiguous",
        ] {
            assert!(text.contains(want), "{format}: {want} in {text}");
        }
        assert!(!text.contains("a-good"), "{text}");
        assert!(!dir.path().join("out").exists(), "no partial file");
    }
}

#[test]
fn an_unreachable_cloud_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    // Nothing listens on port 9 of this address.
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  dead:\n    auth:\n      auth_url: http://{}:9/identity/v3\n      \
             username: u\n      password: p\n      project_name: x\n      \
             user_domain_name: Default\n      project_domain_name: Default\n",
            unique_loopback()
        ),
    )
    .expect("clouds.yaml");
    let toml = format!(
        "[users.admin]\npassword = \"password\"\n[backend]\ntype = \"nova\"\ncloud = \"dead\"\n\
         clouds_yaml = \"{}\"\nipxe_image = \"ipxe-boot\"\n\
         [nodes.n]\naddress = \"10.81.0.1\"\n",
        clouds.display()
    );
    std::fs::write(dir.path().join("novabmc.toml"), toml).expect("config");
    let out = export(dir.path(), &["--format", "ironic"], &[]);
    let text = out.failed().all();
    assert!(text.contains("cannot reach cloud \"dead\""), "{text}");
    assert_eq!(out.stdout, "");
}

#[test]
fn the_simulated_backend_has_nothing_to_export() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("novabmc.toml"),
        "[users.admin]\npassword = \"password\"\n[nodes.n]\naddress = \"10.82.0.1\"\n",
    )
    .expect("config");
    let text = export(dir.path(), &["--format", "ironic"], &[])
        .failed()
        .all();
    assert!(text.contains("backend.type is \"simulated\""), "{text}");
}
