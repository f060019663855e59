//! The simulator's Neutron and Nova's interface attach over real HTTP, as
//! `novabmc network` uses them: networks, subnets with allocation pools,
//! ports with allocated fixed IPs and generated MACs, allowed address
//! pairs and port security, tags and tag filters, router interfaces,
//! quotas with Neutron's `OverQuota`, a missing extension and a policy
//! refusal, and a port hot-plugged into a server.

mod support;

use novabmc_novasim::{NewServer, SimServer};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Cloud {
    sim: SimServer,
    http: Client,
    token: String,
    _shutdown: CancellationToken,
}

impl Cloud {
    async fn start() -> Cloud {
        let s = support::start().await;
        let catalog = s.token_body["token"]["catalog"]
            .as_array()
            .expect("catalog");
        assert!(
            catalog.iter().any(|c| c["type"] == "network"),
            "no network service in {catalog:?}"
        );
        Cloud {
            sim: s.sim,
            http: s.http,
            token: s.token,
            _shutdown: s.shutdown,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.sim.base_url()))
            .header("x-auth-token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn control(&self, path: &str, body: Value) {
        let r = self
            .http
            .put(format!("{}/_sim/{path}", self.sim.sim.base_url()))
            .json(&body)
            .send()
            .await
            .expect("control");
        assert!(r.status().is_success(), "{}", r.status());
    }
}

#[tokio::test]
async fn networks_subnets_ports_and_tags() {
    let c = Cloud::start().await;
    let (s, net) = c
        .post(
            "/network/v2.0/networks",
            json!({"network": {"name": "n1", "description": "novabmc:bmc"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{net}");
    let net = net["network"]["id"].as_str().expect("id").to_string();
    let (s, sub) = c
        .post(
            "/network/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "10.9.0.0/29", "ip_version": 4,
                "name": "s1", "enable_dhcp": false}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["subnet"]["gateway_ip"], "10.9.0.1");
    assert_eq!(
        sub["subnet"]["allocation_pools"],
        json!([{"start": "10.9.0.2", "end": "10.9.0.6"}])
    );
    let subnet = sub["subnet"]["id"].as_str().expect("id").to_string();

    // Allocation: the next free address, a chosen one, and a taken one.
    let (s, p1) = c
        .post(
            "/network/v2.0/ports",
            json!({"port": {"network_id": net, "name": "p1"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p1}");
    assert_eq!(p1["port"]["fixed_ips"][0]["ip_address"], "10.9.0.2");
    assert!(
        p1["port"]["mac_address"]
            .as_str()
            .expect("mac")
            .starts_with("fa:16:3e:")
    );
    let (s, p2) = c
        .post(
            "/network/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": subnet, "ip_address": "10.9.0.5"}],
                "allowed_address_pairs": [{"ip_address": "10.9.0.6"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p2}");
    assert_eq!(
        p2["port"]["allowed_address_pairs"][0]["mac_address"],
        p2["port"]["mac_address"]
    );
    let (s, e) = c
        .post(
            "/network/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": [{"ip_address": "10.9.0.5"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["NeutronError"]["type"], "IpAddressAlreadyAllocated");
    // Pairs need port security.
    let p2id = p2["port"]["id"].as_str().expect("id").to_string();
    let (s, e) = c
        .call(
            Method::PUT,
            &format!("/network/v2.0/ports/{p2id}"),
            Some(json!({"port": {"port_security_enabled": false, "security_groups": []}})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        e["NeutronError"]["type"],
        "AddressPairAndPortSecurityRequired"
    );
    // Nor can port security go while a security group holds the port.
    assert_eq!(
        p2["port"]["security_groups"].as_array().map(Vec::len),
        Some(1)
    );
    let (s, e) = c
        .call(
            Method::PUT,
            &format!("/network/v2.0/ports/{p2id}"),
            Some(json!({"port": {"port_security_enabled": false, "allowed_address_pairs": []}})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        e["NeutronError"]["type"],
        "PortSecurityPortHasSecurityGroup"
    );

    // Tags, one at a time, and the filters.
    let p1id = p1["port"]["id"].as_str().expect("id").to_string();
    for tag in ["novabmc", "novabmc:bmc"] {
        let (s, _) = c
            .call(
                Method::PUT,
                &format!("/network/v2.0/ports/{p1id}/tags/{tag}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, l) = c
        .call(
            Method::GET,
            "/network/v2.0/ports?tags=novabmc,novabmc:bmc",
            None,
        )
        .await;
    let ids: Vec<&str> = l["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, vec![p1id.as_str()]);
    let (_, l) = c
        .call(
            Method::GET,
            &format!("/network/v2.0/ports?network_id={net}&fixed_ips=ip_address=10.9.0.5"),
            None,
        )
        .await;
    assert_eq!(l["ports"].as_array().map(Vec::len), Some(1));

    // In use: the subnet and network cannot go before their ports.
    let (s, e) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/networks/{net}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["NeutronError"]["type"], "NetworkInUse");
}

#[tokio::test]
async fn routers_quotas_extensions_policy_and_interface_attach() {
    let c = Cloud::start().await;
    let (_, r) = c
        .post("/network/v2.0/routers", json!({"router": {"name": "r"}}))
        .await;
    let router = r["router"]["id"].as_str().expect("id").to_string();
    let mut subnets = Vec::new();
    for i in 1..=2 {
        let (_, n) = c
            .post(
                "/network/v2.0/networks",
                json!({"network": {"name": format!("n{i}")}}),
            )
            .await;
        let net = n["network"]["id"].as_str().expect("id").to_string();
        let (_, s) = c
            .post(
                "/network/v2.0/subnets",
                json!({"subnet": {"network_id": net, "cidr": format!("10.8.{i}.0/24"), "ip_version": 4}}),
            )
            .await;
        subnets.push((net, s["subnet"]["id"].as_str().expect("id").to_string()));
    }
    let add = |subnet: String| {
        let path = format!("/network/v2.0/routers/{router}/add_router_interface");
        let c = &c;
        async move {
            c.call(Method::PUT, &path, Some(json!({"subnet_id": subnet})))
                .await
        }
    };
    let (s, i) = add(subnets[0].1.clone()).await;
    assert_eq!(s, StatusCode::OK, "{i}");
    let (s, e) = add(subnets[0].1.clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (_, gw) = c
        .call(
            Method::GET,
            &format!("/network/v2.0/ports?device_id={router}"),
            None,
        )
        .await;
    assert_eq!(gw["ports"][0]["fixed_ips"][0]["ip_address"], "10.8.1.1");
    assert_eq!(gw["ports"][0]["device_owner"], "network:router_interface");
    let (s, _) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/routers/{router}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Quota: one port left.
    c.control(
        "neutron",
        json!({"quotas": {"network": 100, "subnet": 100, "port": 2, "router": 10}}),
    )
    .await;
    let (s, p) = c
        .post(
            "/network/v2.0/ports",
            json!({"port": {"network_id": subnets[1].0}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, e) = add(subnets[1].1.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["NeutronError"]["type"], "OverQuota");
    assert_eq!(
        e["NeutronError"]["message"],
        "Quota exceeded for resources: ['port']."
    );
    let (_, d) = c
        .call(Method::GET, "/network/v2.0/quotas/x/details.json", None)
        .await;
    assert_eq!(
        d["quota"]["port"],
        json!({"limit": 2, "used": 2, "reserved": 0})
    );

    // A missing extension, a policy refusal.
    c.control(
        "neutron",
        json!({"extensions_off": ["allowed-address-pairs"], "forbid": ["create_network"]}),
    )
    .await;
    let (_, ext) = c.call(Method::GET, "/network/v2.0/extensions", None).await;
    let aliases: Vec<&str> = ext["extensions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["alias"].as_str())
        .collect();
    assert!(!aliases.contains(&"allowed-address-pairs"), "{aliases:?}");
    assert!(aliases.contains(&"port-security"), "{aliases:?}");
    let port = p["port"]["id"].as_str().expect("id").to_string();
    let (s, e) = c
        .call(
            Method::PUT,
            &format!("/network/v2.0/ports/{port}"),
            Some(json!({"port": {"allowed_address_pairs": []}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) = c
        .post("/network/v2.0/networks", json!({"network": {"name": "x"}}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["NeutronError"]["type"], "PolicyNotAuthorized");

    // Nova hot-plugs the port into a server, and unplugs it.
    let server = c
        .sim
        .sim
        .add_server(NewServer {
            name: "bmc".into(),
            ports: Some(0),
            ..NewServer::default()
        })
        .expect("server");
    let (s, a) = c
        .post(
            &format!("/compute/v2.1/servers/{server}/os-interface"),
            json!({"interfaceAttachment": {"port_id": port}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        a["interfaceAttachment"]["mac_addr"],
        p["port"]["mac_address"]
    );
    let (_, shown) = c
        .call(Method::GET, &format!("/network/v2.0/ports/{port}"), None)
        .await;
    assert_eq!(shown["port"]["device_id"], server.as_str());
    assert_eq!(shown["port"]["device_owner"], "compute:nova");
    let (_, list) = c
        .call(
            Method::GET,
            &format!("/compute/v2.1/servers/{server}/os-interface"),
            None,
        )
        .await;
    assert_eq!(list["interfaceAttachments"][0]["port_id"], port.as_str());
    let (s, _) = c
        .call(
            Method::DELETE,
            &format!("/compute/v2.1/servers/{server}/os-interface/{port}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (_, shown) = c
        .call(Method::GET, &format!("/network/v2.0/ports/{port}"), None)
        .await;
    assert_eq!(shown["port"]["device_id"], "");
}
