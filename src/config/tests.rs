//! The configuration's unit tests: defaults, every refusal naming its key
//! and source, secrets, routes and the Nova settings.

use super::*;
use std::path::Path;
use std::time::Duration;

use figment::Jail;
use novabmc_proto::{CipherSuites, Privilege};

use crate::backend::nova::NetworkBoot;

const GOOD: &str = r#"
    [users.admin]
    password = "password"

    [nodes.node-0]
    address = "127.0.0.1"
    port = 6230
"#;

fn load(jail: &mut Jail, text: &str) -> Result<Config, LoadError> {
    jail.create_file("novabmc.toml", text).expect("write");
    Config::load(Path::new("novabmc.toml"))
}

#[test]
fn minimal_file_gets_defaults() {
    Jail::expect_with(|jail| {
        let c = load(jail, GOOD).expect("valid");
        assert_eq!(c.nodes.len(), 1);
        assert_eq!(c.nodes[0].server, "node-0");
        assert_eq!(c.bmc.max_sessions, 255);
        assert_eq!(c.bmc.max_sessions_total, DEFAULT_MAX_SESSIONS_TOTAL);
        assert_eq!(c.users[0].privilege, Privilege::Administrator);
        assert_eq!(c.bmc.cipher_suites, CipherSuites::default());
        Ok(())
    });
}

#[test]
fn errors_name_key_and_file() {
    Jail::expect_with(|jail| {
        let text = GOOD.replace(
            "password = \"password\"",
            "password = \"123456789012345678901\"",
        );
        let e = load(jail, &text).expect_err("too long").to_string();
        assert!(e.contains("users.admin.password"), "{e}");
        assert!(e.contains("novabmc.toml"), "{e}");
        assert!(e.contains("20 bytes"), "{e}");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors() {
    Jail::expect_with(|jail| {
        let text = format!("{GOOD}\n[bmc]\nmax_sesions = 4\n");
        let e = load(jail, &text).expect_err("typo").to_string();
        assert!(e.contains("max_sesions"), "{e}");
        Ok(())
    });
}

#[test]
fn environment_overrides_and_is_named() {
    Jail::expect_with(|jail| {
        jail.set_env("NOVABMC_BMC__MAX_SESSIONS", "256");
        let e = load(jail, GOOD).expect_err("out of range").to_string();
        assert!(e.contains("bmc.max_sessions"), "{e}");
        assert!(e.contains("NOVABMC_"), "{e}");
        jail.set_env("NOVABMC_BMC__MAX_SESSIONS", "8");
        let c = load(jail, GOOD).expect("valid");
        assert_eq!(c.bmc.max_sessions, 8);
        Ok(())
    });
}

#[test]
fn bad_values_are_refused() {
    Jail::expect_with(|jail| {
        let cases = [
            ("[bmc]\ncipher_suites = [0]\n", "bmc.cipher_suites"),
            ("[bmc]\ncipher_suites = []\n", "bmc.cipher_suites"),
            ("[bmc]\nkg = \"zz\"\n", "bmc.kg"),
            ("[bmc]\nkg = \"00ff\"\n", "bmc.kg"),
            ("[bmc]\nmanufacturer_id = 10876\n", "bmc.manufacturer_id"),
            ("[bmc]\nmax_sessions = 0\n", "bmc.max_sessions"),
            ("[bmc]\nmax_sessions_total = 3\n", "bmc.max_sessions_total"),
            ("[bmc]\nsetup_timeout_secs = 61\n", "bmc.setup_timeout_secs"),
            (
                "[bmc]\nsetup_timeout_secs = 9223372036854775807\n",
                "bmc.setup_timeout_secs",
            ),
            (
                "[bmc]\nidle_timeout_secs = 86401\n",
                "bmc.idle_timeout_secs",
            ),
            (
                "[bmc]\nidle_timeout_secs = 9223372036854775807\n",
                "bmc.idle_timeout_secs",
            ),
            (
                "[users.op]\npassword = \"x\"\nprivilege = \"boss\"\n",
                "users.op.privilege",
            ),
            (
                "[nodes.dup]\naddress = \"127.0.0.1\"\nport = 6230\n",
                "nodes.node-0.address",
            ),
            ("[nodes.any]\naddress = \"0.0.0.0\"\n", "nodes.any.address"),
            (
                "[users.f]\npassword = { file = \"missing.pw\" }\n",
                "users.f.password",
            ),
            (
                "[users.e]\npassword = { env = \"NOVABMC_TEST_UNSET\" }\n",
                "users.e.password",
            ),
        ];
        for (extra, key) in cases {
            let e = load(jail, &format!("{GOOD}\n{extra}"))
                .expect_err(extra)
                .to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        Ok(())
    });
}

#[test]
fn secret_files_readable_by_others_are_noticed() {
    use std::os::unix::fs::PermissionsExt;
    Jail::expect_with(|jail| {
        jail.create_file("open.pw", "s3cret")?;
        jail.create_file("closed.pw", "s3cret")?;
        let set =
            |f: &str, mode| std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode));
        set("open.pw", 0o644).expect("chmod");
        set("closed.pw", 0o600).expect("chmod");
        let open = Secret::File {
            file: "open.pw".into(),
        };
        let closed = Secret::File {
            file: "closed.pw".into(),
        };
        assert_eq!(
            open.exposed_file().map(|(_, m)| m),
            Some(0o644),
            "group and others may read it"
        );
        assert_eq!(closed.exposed_file(), None);
        assert_eq!(Secret::Inline("x".into()).exposed_file(), None);
        Ok(())
    });
}

#[test]
fn the_session_cap_leaves_room_for_every_node() {
    Jail::expect_with(|jail| {
        let mut text = format!("{GOOD}\n[bmc]\nmax_sessions_total = 8\n");
        let c = load(jail, &text).expect("1 node, 8 sessions");
        assert_eq!(c.bmc.max_sessions_total, 8);
        for i in 1..3 {
            text.push_str(&format!(
                "[nodes.extra-{i}]\naddress = \"127.0.0.1\"\nport = {}\n",
                7000 + i
            ));
        }
        let e = load(jail, &text).expect_err("3 nodes need 12").to_string();
        assert!(e.contains("bmc.max_sessions_total"), "{e}");
        assert!(e.contains("at least 12"), "{e}");
        Ok(())
    });
}

#[test]
fn secrets_from_file_and_env() {
    Jail::expect_with(|jail| {
        jail.create_file("admin.pw", "s3cret\n")?;
        jail.set_env("NOVABMC_TEST_KG", "0x0102030405");
        let text = r#"
            [bmc]
            kg = { env = "NOVABMC_TEST_KG" }
            [users.admin]
            password = { file = "admin.pw" }
            [nodes.n]
            address = "::1"
        "#;
        let c = load(jail, text).expect("valid");
        assert_eq!(&c.users[0].password[..], b"s3cret");
        assert_eq!(c.bmc.kg.as_deref(), Some(&[1u8, 2, 3, 4, 5][..]));
        assert_eq!(c.nodes[0].listen.port(), DEFAULT_PORT);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("115, 51"),
            "{shown}"
        );
        Ok(())
    });
}

#[test]
fn routes_are_optional_and_get_defaults() {
    Jail::expect_with(|jail| {
        let text = format!(
            "{GOOD}\n[nodes.r4]\naddress = \"10.0.2.10\"\n[nodes.r4.route]\n\
             table = 1002\ngateway = \"10.0.2.1\"\n\
             [nodes.r6]\naddress = \"fd00:3::10\"\n[nodes.r6.route]\n\
             table = 300\ngateway = \"fe80::1\"\ninterface = \"eth3\"\npriority = 50\n"
        );
        let c = load(jail, &text).expect("valid");
        assert!(!c.routing.keep_routes);
        let by_name = |n: &str| c.nodes.iter().find(|x| x.name == n).expect("node");
        assert_eq!(by_name("node-0").route, None);
        assert_eq!(
            by_name("r4").route,
            Some(RouteConfig {
                table: 1002,
                gateway: "10.0.2.1".parse().expect("ip"),
                interface: None,
                priority: DEFAULT_RULE_PRIORITY,
            })
        );
        let r6 = by_name("r6").route.clone().expect("route");
        assert_eq!((r6.table, r6.priority), (300, 50));
        assert_eq!(r6.interface.as_deref(), Some("eth3"));
        Ok(())
    });
}

#[test]
fn keep_routes_from_file_and_environment() {
    Jail::expect_with(|jail| {
        let c = load(jail, &format!("{GOOD}\n[routing]\nkeep_routes = true\n")).expect("ok");
        assert!(c.routing.keep_routes);
        jail.set_env("NOVABMC_ROUTING__KEEP_ROUTES", "false");
        let c = load(jail, &format!("{GOOD}\n[routing]\nkeep_routes = true\n")).expect("ok");
        assert!(!c.routing.keep_routes);
        Ok(())
    });
}

#[test]
fn bad_routes_are_refused_naming_the_key() {
    Jail::expect_with(|jail| {
        let node =
            |route: &str| format!("[nodes.b]\naddress = \"10.0.2.10\"\n[nodes.b.route]\n{route}\n");
        let mut cases = Vec::new();
        for table in RESERVED_TABLES {
            cases.push((
                node(&format!("table = {table}\ngateway = \"10.0.2.1\"")),
                "nodes.b.route.table",
                "reserved",
            ));
        }
        cases.extend([
            (
                node("table = 7\ngateway = \"fd00::1\""),
                "nodes.b.route.gateway",
                "same family",
            ),
            (
                node("table = 7\ngateway = \"10.0.2.10\""),
                "nodes.b.route.gateway",
                "unicast",
            ),
            (
                node("table = 7\ngateway = \"10.0.2.1\"\ninterface = \"a/b\""),
                "nodes.b.route.interface",
                "not an interface name",
            ),
            (
                node("table = 7\ngateway = \"10.0.2.1\"\ninterface = \"sixteen-chars-xx\""),
                "nodes.b.route.interface",
                "not an interface name",
            ),
            (
                node("table = 7\ngateway = \"10.0.2.1\"\npriority = 0"),
                "nodes.b.route.priority",
                "32765",
            ),
            (
                node("table = 7\ngateway = \"10.0.2.1\"\npriority = 32766"),
                "nodes.b.route.priority",
                "32765",
            ),
            (node("table = 7"), "gateway", "missing"),
            (
                node("table = 7\ngateway = \"10.0.2.1\"\nmetric = 3"),
                "metric",
                "unknown",
            ),
            (
                format!(
                    "{}[nodes.c]\naddress = \"10.0.3.10\"\n[nodes.c.route]\n\
                     table = 7\ngateway = \"10.0.3.1\"\n",
                    node("table = 7\ngateway = \"10.0.2.1\"")
                ),
                "nodes.c.route.table",
                "also node b's",
            ),
            (
                format!(
                    "{}[nodes.c]\naddress = \"10.0.2.10\"\nport = 624\n[nodes.c.route]\n\
                     table = 8\ngateway = \"10.0.2.1\"\n",
                    node("table = 7\ngateway = \"10.0.2.1\"")
                ),
                "nodes.c.route",
                "same address",
            ),
        ]);
        for (extra, key, why) in cases {
            let e = load(jail, &format!("{GOOD}\n{extra}"))
                .expect_err(&extra)
                .to_string();
            assert!(e.contains(key) && e.contains(why), "{extra}: {e}");
        }
        Ok(())
    });
}

#[test]
fn nodes_may_share_a_table_with_the_same_next_hop() {
    Jail::expect_with(|jail| {
        let mut text = GOOD.to_string();
        for (name, port) in [("a", 623), ("b", 624)] {
            text.push_str(&format!(
                "[nodes.{name}]\naddress = \"10.0.2.10\"\nport = {port}\n\
                 [nodes.{name}.route]\ntable = 7\ngateway = \"10.0.2.1\"\n"
            ));
        }
        let c = load(jail, &text).expect("valid");
        assert_eq!(c.nodes.iter().filter(|n| n.route.is_some()).count(), 2);
        Ok(())
    });
}

#[test]
fn nova_backend_settings() {
    Jail::expect_with(|jail| {
        jail.create_file("clouds.yaml", "clouds: {}\n")?;
        let nova = |backend: &str, node: &str| {
            format!(
                "[users.admin]\npassword = \"pw\"\n[backend]\ntype = \"nova\"\n{backend}\n\
                 [nodes.n]\naddress = \"127.0.0.1\"\nserver = \"vm-1\"\n{node}\n"
            )
        };
        let c = load(
            jail,
            &nova(
                "cloud = \"sim\"\nclouds_yaml = \"clouds.yaml\"\nrefresh_secs = 2.5\nipxe_image = \"ipxe\"",
                "network_boot = \"rescue\"\nefi = false",
            ),
        )
        .expect("valid");
        let BackendConfig::Nova(n) = &c.backend else {
            panic!("nova expected");
        };
        assert_eq!(n.settings.refresh, Duration::from_millis(2500));
        assert!(
            !n.settings.allow_plain_console,
            "ws:// consoles refused by default"
        );
        let plain = load(
            jail,
            &nova("ipxe_image = \"i\"\nallow_plain_console = true", ""),
        )
        .expect("valid");
        let BackendConfig::Nova(p) = &plain.backend else {
            panic!("nova expected");
        };
        assert!(p.settings.allow_plain_console);
        let e = load(
            jail,
            &nova("ipxe_image = \"i\"\nallow_plain_console = \"yes\"", ""),
        )
        .expect_err("not a boolean")
        .to_string();
        assert!(e.contains("expected a boolean"), "{e}");
        let nodes = c.nova_nodes(n);
        assert_eq!(nodes[0].network_boot, NetworkBoot::Rescue);
        assert_eq!(nodes[0].ipxe_image.as_deref(), Some("ipxe"));
        assert_eq!(nodes[0].efi, Some(false));
        let metadata =
            load(jail, &nova("network_boot = \"metadata\"", "")).expect("no image needed");
        assert!(matches!(metadata.backend, BackendConfig::Nova(_)));
        for (backend, node, key) in [
            ("", "", "nodes.n.ipxe_image"),
            ("network_boot = \"pxe\"", "", "backend.network_boot"),
            (
                "ipxe_image = \"i\"",
                "network_boot = \"tftp\"",
                "nodes.n.network_boot",
            ),
            (
                "clouds_yaml = \"clouds.yaml\"\nipxe_image = \"i\"",
                "",
                "backend.clouds_yaml",
            ),
            (
                "cloud = \"x\"\nclouds_yaml = \"absent.yaml\"\nipxe_image = \"i\"",
                "",
                "backend.clouds_yaml",
            ),
            (
                "refresh_secs = 0.0\nipxe_image = \"i\"",
                "",
                "backend.refresh_secs",
            ),
        ] {
            let e = load(jail, &nova(backend, node)).expect_err(key).to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = load(
            jail,
            &format!("{GOOD}\n[nodes.x]\naddress = \"127.0.0.2\"\nnetwork_boot = \"rebuild\"\n"),
        )
        .expect_err("simulated backend")
        .to_string();
        assert!(e.contains("nodes.x.network_boot"), "{e}");
        Ok(())
    });
}

#[test]
fn missing_file_is_an_error() {
    let e = Config::load(Path::new("/nonexistent/novabmc.toml")).expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/novabmc.toml"));
}

#[test]
fn errors_print_each_cause_once_with_keys_as_written() {
    Jail::expect_with(|jail| {
        let text = format!("{GOOD}\n[nodes.b]\naddress = \"127.0.0.1\"\nport = 6230\n");
        let e = anyhow::Error::from(load(jail, &text).expect_err("duplicate"));
        let shown = format!("{e:#}");
        assert_eq!(shown.matches("already used by node").count(), 1, "{shown}");
        let text = format!("{GOOD}\n[nodes.b]\naddress = \"x\"\n");
        let shown = format!(
            "{:#}",
            anyhow::Error::from(load(jail, &text).expect_err("ip"))
        );
        assert!(shown.starts_with("nodes.b.address: "), "{shown}");
        assert!(shown.ends_with("(in novabmc.toml)"), "{shown}");
        assert!(!shown.contains("default."), "{shown}");
        Ok(())
    });
}

#[test]
fn metrics_listen_only_on_loopback_unless_allowed() {
    Jail::expect_with(|jail| {
        let c = load(
            jail,
            &format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:9623\"\n"),
        )
        .expect("loopback");
        assert_eq!(
            c.metrics.map(|m| m.listen),
            Some("127.0.0.1:9623".parse().expect("addr"))
        );
        let public = format!("{GOOD}\n[metrics]\nlisten = \"0.0.0.0:9623\"\n");
        let e = load(jail, &public).expect_err("public").to_string();
        assert!(
            e.contains("metrics.listen") && e.contains("allow_public"),
            "{e}"
        );
        let c = load(jail, &format!("{public}allow_public = true\n")).expect("allowed");
        assert!(c.metrics.is_some_and(|m| m.allow_public));
        assert!(load(jail, GOOD).expect("no section").metrics.is_none());
        Ok(())
    });
}

const DISCOVERY: &str = r#"
    [users.admin]
    password = "password"

    [backend]
    type = "nova"
    cloud = "lab"
    ipxe_image = "ipxe"

    [discovery]
    tag = "baremetal"
    refresh = 5

    [discovery.address]
    mode = "pool"
    cidr = "192.0.2.0/24"
    exclude = ["192.0.2.1", "192.0.2.250-192.0.2.254"]

    [discovery.defaults]
    port = 6230
    network_boot = "rescue"
    redfish_port = 8443
    route = { table = 1000, gateway = "192.0.2.1" }
"#;

#[test]
fn discovery_needs_no_nodes_and_takes_defaults() {
    Jail::expect_with(|jail| {
        let c = load(jail, DISCOVERY).expect("valid");
        assert!(c.nodes.is_empty());
        let d = c.discovery.expect("discovery");
        assert_eq!(d.selector.tag.as_deref(), Some("baremetal"));
        assert_eq!(d.refresh, Duration::from_secs(5));
        assert_eq!(d.address.to_string(), "pool 192.0.2.0/24");
        assert_eq!(d.defaults.port, 6230);
        assert_eq!(d.defaults.network_boot, Some(NetworkBoot::Rescue));
        assert_eq!(d.defaults.redfish_port, Some(8443));
        assert_eq!(d.defaults.route.as_ref().map(|r| r.table), Some(1000));
        // Without [discovery], nodes are still needed.
        let e = load(jail, &DISCOVERY.replace("[discovery]", "[other]"))
            .expect_err("unknown section")
            .to_string();
        assert!(e.contains("other"), "{e}");
        Ok(())
    });
}

#[test]
fn discovery_refusals_name_their_key() {
    Jail::expect_with(|jail| {
        let cases: [(&str, &str, &str); 10] = [
            ("tag = \"baremetal\"\n", "", "needs a selector"),
            (
                "type = \"nova\"\n    cloud = \"lab\"\n    ipxe_image = \"ipxe\"",
                "type = \"simulated\"",
                "Nova cloud",
            ),
            ("refresh = 5", "refresh = 0", "discovery.refresh"),
            (
                "cidr = \"192.0.2.0/24\"",
                "cidr = \"192.0.2.7/24\"",
                "discovery.address.cidr",
            ),
            (
                "\"192.0.2.1\", ",
                "\"10.0.0.1\", ",
                "discovery.address.exclude",
            ),
            ("mode = \"pool\"", "mode = \"dhcp\"", "unknown variant"),
            (
                "mode = \"pool\"",
                "mode = \"port\"",
                "discovery.address: unknown field: found `cidr`",
            ),
            ("tag = \"baremetal\"", "tag = \"a,b\"", "discovery.tag"),
            ("port = 6230", "port = 0", "discovery.defaults.port"),
            (
                "gateway = \"192.0.2.1\"",
                "gateway = \"2001:db8::1\"",
                "discovery.defaults.route.gateway",
            ),
        ];
        for (from, to, expected) in cases {
            let text = DISCOVERY.replacen(from, to, 1);
            assert_ne!(text, DISCOVERY, "{from}");
            let e = load(jail, &text).expect_err(expected).to_string();
            assert!(e.contains(expected), "{from} -> {to}: {e}");
        }
        let text = DISCOVERY.replace(
            "[discovery.address]\n    mode = \"pool\"\n    cidr = \"192.0.2.0/24\"\n    exclude = [\"192.0.2.1\", \"192.0.2.250-192.0.2.254\"]\n",
            "",
        );
        assert_ne!(text, DISCOVERY);
        let e = load(jail, &text).expect_err("no address").to_string();
        assert!(e.contains("discovery.address: is needed"), "{e}");
        let text = DISCOVERY.replace("ipxe_image = \"ipxe\"\n", "");
        let e = load(jail, &text).expect_err("no image").to_string();
        assert!(e.contains("discovery.defaults.ipxe_image"), "{e}");
        // A configured node's table with another gateway.
        let text = format!(
            "{DISCOVERY}\n[nodes.a]\naddress = \"10.0.0.5\"\n[nodes.a.route]\ntable = 1000\ngateway = \"10.0.0.1\"\n"
        );
        let e = load(jail, &text).expect_err("shared table").to_string();
        assert!(
            e.contains("discovery.defaults.route.table") && e.contains("node a"),
            "{e}"
        );
        Ok(())
    });
}

const NOVA_NODES: &str = r#"
    [users.admin]
    password = "password"

    [backend]
    type = "nova"
    cloud = "sim"
    ipxe_image = "ipxe-boot"
    state_dir = "state"

    [nodes.node-1]
    address = "10.20.1.10"
    [nodes.node-2]
    address = "10.20.2.10"
"#;

#[test]
fn network_section_is_checked_against_backend_and_nodes() {
    Jail::expect_with(|jail| {
        let per_node = "[network]\nlayout = \"nic-per-node\"\nbmc_server = \"bmc\"\n";
        let e = load(jail, &format!("{NOVA_NODES}{per_node}"))
            .expect_err("no router")
            .to_string();
        assert!(e.contains("network.router"), "{e}");
        let e = load(jail, &format!("{GOOD}{per_node}router = \"r\"\n"))
            .expect_err("simulated backend")
            .to_string();
        assert!(e.contains("backend.type = \"nova\""), "{e}");
        let e = load(
            jail,
            &format!("{NOVA_NODES}{per_node}router = \"r\"\nprefix_len = 8\n"),
        )
        .expect_err("one subnet for both nodes")
        .to_string();
        assert!(
            e.contains("nodes.node-2.address") && e.contains("like node node-1's"),
            "{e}"
        );
        let e = load(
            jail,
            &format!("{NOVA_NODES}[network]\nlayout = \"one-nic\"\nbmc_server = \"bmc\"\nrouter = \"r\"\n"),
        )
        .expect_err("router in one-nic")
        .to_string();
        assert!(e.contains("network.router: only applies"), "{e}");
        let c = load(jail, &format!("{NOVA_NODES}{per_node}router = \"r\"\n")).expect("valid");
        let n = c.network.expect("network");
        assert_eq!(n.name, "bmc");
        assert_eq!(n.routes_file, Path::new("state").join(network::ROUTES_FILE));
        Ok(())
    });
}

#[test]
fn the_routes_file_gives_nodes_their_routes_and_the_file_loses_to_the_config() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "routes.toml",
            "[nodes.\"node-1\".route]\ntable = 1000\ngateway = \"10.20.1.1\"\ninterface = \"ens5\"\n\
             [nodes.\"node-2\".route]\ntable = 1001\ngateway = \"10.20.2.1\"\n\
             [nodes.\"gone\".route]\ntable = 1002\ngateway = \"10.20.3.1\"\n",
        )?;
        let text = format!(
            "{NOVA_NODES}[nodes.node-2.route]\ntable = 7\ngateway = \"10.20.2.1\"\n\
             [network]\nlayout = \"nic-per-node\"\nbmc_server = \"bmc\"\nrouter = \"r\"\n\
             routes_file = \"routes.toml\"\n"
        );
        let c = load(jail, &text).expect("valid");
        let route = |name: &str| {
            c.nodes
                .iter()
                .find(|n| n.name == name)
                .and_then(|n| n.route.clone())
                .expect("route")
        };
        assert_eq!(route("node-1").table, 1000);
        assert_eq!(route("node-1").interface.as_deref(), Some("ens5"));
        assert_eq!(route("node-2").table, 7, "the configuration's route wins");
        jail.create_file(
            "routes.toml",
            "[nodes.\"node-1\".route]\ntable = 254\ngateway = \"10.20.1.1\"\n",
        )?;
        let e = load(jail, &text).expect_err("reserved table").to_string();
        assert!(
            e.contains("nodes.node-1.route.table") && e.contains("routes.toml"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn discovery_port_modes_name_their_keys() {
    Jail::expect_with(|jail| {
        let with = |address: &str| {
            DISCOVERY.replace(
                "mode = \"pool\"\n    cidr = \"192.0.2.0/24\"\n    exclude = [\"192.0.2.1\", \"192.0.2.250-192.0.2.254\"]",
                address,
            )
        };
        let e = load(jail, &with("mode = \"port\"\n    name = \"bmc\""))
            .expect_err("one port for all")
            .to_string();
        assert!(
            e.contains("discovery.address.name") && e.contains("{server}"),
            "{e}"
        );
        let e = load(jail, &with("mode = \"port\""))
            .expect_err("no name or tag")
            .to_string();
        assert!(e.contains("discovery.address.name"), "{e}");
        let e = load(jail, &with("mode = \"new-port\"\n    network = \"\""))
            .expect_err("no network")
            .to_string();
        assert!(e.contains("discovery.address.network"), "{e}");
        let c = load(
            jail,
            &with("mode = \"new-port\"\n    network = \"bmc-net\"\n    subnet = \"s\""),
        )
        .expect("valid");
        let d = c.discovery.expect("discovery");
        assert_eq!(
            d.address.to_string(),
            "a port made on network bmc-net, subnet s"
        );
        Ok(())
    });
}
