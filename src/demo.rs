//! `novabmc demo`: four simulated machines on loopback, ready for ipmitool
//! and FreeIPMI, with nothing to install or configure.

use std::net::{IpAddr, SocketAddr};

use novabmc_proto::{CipherSuites, DeviceId, Privilege};

use crate::config::{
    BackendConfig, BmcSettings, Config, NodeConfig, RoutingConfig, SecretBytes, SimulatedConfig,
    UserConfig,
};

/// The demo's user.
pub const USER: &str = "admin";
/// The demo's password.
pub const PASSWORD: &str = "password";

/// The demo configuration: `count` nodes on `address`, ports from `base_port`.
pub fn config(address: IpAddr, base_port: u16, count: u16) -> Config {
    let nodes = (0..count)
        .map(|i| NodeConfig {
            name: format!("demo-{i}"),
            listen: SocketAddr::new(address, base_port.saturating_add(i)),
            server: format!("demo-{i}"),
            route: None,
        })
        .collect();
    Config {
        bmc: BmcSettings {
            cipher_suites: CipherSuites::default(),
            max_sessions: 32,
            kg: None,
            setup_timeout: std::time::Duration::from_secs(5),
            idle_timeout: std::time::Duration::from_secs(60),
            device: DeviceId::default(),
        },
        users: vec![UserConfig {
            name: USER.into(),
            password: SecretBytes::new(PASSWORD.as_bytes().to_vec()),
            privilege: Privilege::Administrator,
        }],
        backend: BackendConfig::Simulated(SimulatedConfig::default()),
        nodes,
        routing: RoutingConfig::default(),
    }
}

/// The lines printed for a newcomer to try.
pub fn instructions(config: &Config) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "novabmc demo: {} simulated machines, user {USER}, password {PASSWORD}\n\n",
        config.nodes.len()
    ));
    for n in &config.nodes {
        s.push_str(&format!("  {}  {}\n", n.name, n.listen));
    }
    if let Some(first) = config.nodes.first() {
        let (h, p) = (first.listen.ip(), first.listen.port());
        let host = match h {
            IpAddr::V6(_) => format!("[{h}]"),
            IpAddr::V4(_) => h.to_string(),
        };
        s.push_str("\nTry:\n");
        for cmd in [
            "power status",
            "power on",
            "chassis bootdev pxe",
            "chassis bootparam get 5",
            "power cycle",
            "mc info",
        ] {
            s.push_str(&format!(
                "  ipmitool -I lanplus -H {h} -p {p} -U {USER} -P {PASSWORD} {cmd}\n"
            ));
        }
        s.push_str(&format!(
            "  ipmipower -D LAN_2_0 -h {host}:{p} -u {USER} -p {PASSWORD} --stat\n"
        ));
        s.push_str(&format!(
            "  ipmipower -D LAN_2_0 -I 17 -h {host}:{p} -u {USER} -p {PASSWORD} --on\n"
        ));
    }
    s.push_str("\nStop with Ctrl-C.\n");
    s
}
