//! What one look makes of a listing: configured nodes win their servers,
//! discovered nodes take the defaults, a name or an address a configured
//! node has is never given, and the outcome does not depend on the
//! listing's order.

use std::collections::HashMap;
use std::net::IpAddr;

use figment::Figment;
use figment::providers::{Format, Toml};

use super::*;
use crate::addressing::Cloud;
use crate::backend::nova::metadata::ADDRESS_KEY;
use crate::backend::nova::states::Status;

const CONFIG: &str = r#"
    [users.admin]
    password = "password"

    [backend]
    type = "nova"
    cloud = "lab"
    network_boot = "metadata"

    [nodes.infra]
    address = "192.0.2.2"
    server = "explicit-server"

    [discovery]
    tag = "baremetal"

    [discovery.address]
    mode = "pool"
    cidr = "192.0.2.0/28"
    exclude = ["192.0.2.1"]

    [discovery.defaults]
    port = 6230
    efi = true
    redfish_port = 8443
"#;

fn config() -> Config {
    Config::from_figment(&Figment::from(Toml::string(CONFIG))).expect("config")
}

fn server(id: &str, name: &str, created: &str, recorded: Option<&str>) -> ListedServer {
    ListedServer {
        id: id.into(),
        name: name.into(),
        status: Status::Active,
        created: created.into(),
        metadata: recorded
            .map(|r| HashMap::from([(ADDRESS_KEY.to_string(), r.to_string())]))
            .unwrap_or_default(),
        tags: vec!["baremetal".into()],
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[tokio::test]
async fn configured_nodes_win_and_discovered_ones_take_the_defaults() {
    let c = config();
    let d = c.discovery.clone().expect("discovery");
    let servers = [
        server(
            "u-explicit",
            "explicit-server",
            "2026-01-01T00:00:00Z",
            None,
        ),
        server("u-b", "Bm 1", "2026-01-03T00:00:00Z", None),
        server("u-a", "bm-0", "2026-01-02T00:00:00Z", Some("192.0.2.9")),
        server("u-infra", "infra", "2026-01-04T00:00:00Z", None),
    ];
    let p = plan(&c, &d, &servers, &HashMap::new(), Cloud::default()).await;
    let names: Vec<&str> = p.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["bm-0", "bm-1", "infra-uinfra"]);
    let bm0 = &p.nodes[0];
    assert_eq!(bm0.server, "u-a");
    assert_eq!(bm0.listen, "192.0.2.9:6230".parse().expect("addr"));
    assert_eq!(bm0.efi, Some(true));
    assert_eq!(bm0.redfish_port, Some(8443));
    assert_eq!(bm0.origin, Origin::Discovered);
    // 192.0.2.1 is excluded and 192.0.2.2 is node infra's.
    assert_eq!(p.addresses["u-b"], ip("192.0.2.3"));
    assert_eq!(p.addresses["u-infra"], ip("192.0.2.4"));
    assert!(!p.addresses.contains_key("u-explicit"));
    // What was recorded stays unwritten; the others are written.
    let written: Vec<&str> = p.records.iter().map(|r| r.server.as_str()).collect();
    assert_eq!(written, ["u-b", "u-infra"]);
    let notes: Vec<String> = p.notes.iter().map(ToString::to_string).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("is node infra of the configuration file")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("served as node infra-uinfra")),
        "{notes:?}"
    );
    // The merged configuration keeps the configured node, in name order.
    let merged = c.with_discovered(p.nodes.clone());
    let all: Vec<&str> = merged.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(all, ["bm-0", "bm-1", "infra", "infra-uinfra"]);
    let again = merged.with_discovered(Vec::new());
    assert_eq!(again.nodes.len(), 1);
    // Another listing order, same outcome.
    let mut reversed = servers.clone();
    reversed.reverse();
    let q = plan(&c, &d, &reversed, &HashMap::new(), Cloud::default()).await;
    assert_eq!(q.nodes, p.nodes);
}

#[tokio::test]
async fn an_exhausted_pool_leaves_only_the_late_servers_out() {
    let c = config();
    let d = c.discovery.clone().expect("discovery");
    // 192.0.2.0/28 gives .1 to .14, less .1 (excluded) and .2 (infra).
    let servers: Vec<ListedServer> = (0..14)
        .map(|i| {
            server(
                &format!("u-{i:02}"),
                &format!("bm-{i}"),
                &format!("2026-01-01T00:00:{i:02}Z"),
                None,
            )
        })
        .collect();
    let p = plan(&c, &d, &servers, &HashMap::new(), Cloud::default()).await;
    assert_eq!(p.nodes.len(), 12);
    let problems: Vec<String> = p
        .notes
        .iter()
        .filter(|n| n.is_problem())
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("bm-12") && problems[0].contains("192.0.2.0/28"));
}

#[tokio::test]
async fn discovered_nodes_share_the_default_route_and_leave_with_it() {
    let text = CONFIG.replace(
        "redfish_port = 8443\n",
        "redfish_port = 8443\nroute = { table = 1000, gateway = \"192.0.2.14\" }\n",
    );
    let c = Config::from_figment(&Figment::from(Toml::string(&text))).expect("config");
    let d = c.discovery.clone().expect("discovery");
    let servers = [
        server("u-a", "bm-0", "2026-01-02T00:00:00Z", None),
        server("u-b", "bm-1", "2026-01-03T00:00:00Z", None),
    ];
    let p = plan(&c, &d, &servers, &HashMap::new(), Cloud::default()).await;
    let served = c.with_discovered(p.nodes);
    let specs = served.route_specs();
    let routed: Vec<(&str, IpAddr, u32)> = specs
        .iter()
        .map(|s| (s.node.as_str(), s.address, s.table))
        .collect();
    assert_eq!(
        routed,
        [
            ("bm-0", ip("192.0.2.3"), 1000),
            ("bm-1", ip("192.0.2.4"), 1000)
        ]
    );
    // The gateway is never given (the pool ends at .14).
    let many: Vec<ListedServer> = (0..20)
        .map(|i| {
            server(
                &format!("u-{i:02}"),
                &format!("n{i}"),
                "2026-01-01T00:00:00Z",
                None,
            )
        })
        .collect();
    let p = plan(&c, &d, &many, &HashMap::new(), Cloud::default()).await;
    assert!(!p.addresses.values().any(|a| *a == ip("192.0.2.14")));
    // A server gone takes its route along: the reload flushes what the
    // new set no longer wants.
    let fewer = c.with_discovered(
        plan(&c, &d, &servers[..1], &HashMap::new(), Cloud::default())
            .await
            .nodes,
    );
    assert_eq!(fewer.route_specs().len(), 1);
}
