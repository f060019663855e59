//! `novabmc demo`: four virtual machines in a built-in Nova simulator on
//! loopback, served by the real Nova backend, ready for ipmitool and
//! FreeIPMI with nothing to install or configure.

use std::net::{IpAddr, SocketAddr};

use novabmc_novasim::{NewServer, Sim};
use novabmc_proto::Privilege;

use crate::backend::nova::cloud::CloudSource;
use crate::backend::nova::{NetworkBoot, NovaSettings};
use crate::config::{
    BackendConfig, BmcSettings, Config, NodeConfig, NovaConfig, RoutingConfig, Secret, SecretBytes,
    UserConfig,
};

/// The demo's user.
pub const USER: &str = "admin";
/// The demo's password.
pub const PASSWORD: &str = "password";
/// The iPXE image the simulator holds and the demo boots from the network.
const IPXE_IMAGE: &str = "ipxe-boot";

/// Creates the demo's servers in `sim` and returns the configuration that
/// serves them: `count` nodes on `address`, ports from `base_port`, with
/// pending work kept in `state_dir` (a temporary directory).
pub fn config(
    sim: &Sim,
    address: IpAddr,
    base_port: u16,
    count: u16,
    state_dir: &std::path::Path,
) -> Result<Config, String> {
    let mut nodes = Vec::new();
    for i in 0..count {
        let name = format!("demo-{i}");
        sim.add_server(NewServer {
            name: name.clone(),
            image: Some("centos-stream-9".into()),
            ..NewServer::default()
        })?;
        nodes.push(NodeConfig {
            name: name.clone(),
            listen: SocketAddr::new(address, base_port.saturating_add(i)),
            server: name,
            route: None,
            network_boot: None,
            ipxe_image: None,
            efi: None,
            redfish_port: None,
        });
    }
    let mut settings = NovaSettings::new(CloudSource::Inline {
        name: "demo".into(),
        yaml: sim.clouds_yaml("demo"),
    });
    settings.refresh = std::time::Duration::from_secs(2);
    settings.state_dir = state_dir.to_path_buf();
    Ok(Config {
        bmc: BmcSettings::default(),
        users: vec![UserConfig {
            name: USER.into(),
            password: SecretBytes::new(PASSWORD.as_bytes().to_vec()),
            password_source: Secret::Inline(PASSWORD.into()),
            privilege: Privilege::Administrator,
        }],
        backend: BackendConfig::Nova(NovaConfig {
            settings,
            network_boot: NetworkBoot::default(),
            ipxe_image: Some(IPXE_IMAGE.into()),
        }),
        nodes,
        routing: RoutingConfig::default(),
        metrics: None,
        redfish: None,
    })
}

/// The lines printed for a newcomer to try.
pub fn instructions(config: &Config, sim_url: &str) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "novabmc demo: {} Nova servers in a built-in Nova simulator at {sim_url}\n\
         user {USER}, password {PASSWORD}; network boot rebuilds a server with the \
         {IPXE_IMAGE} image\n\n",
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
            "mc guid",
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
        s.push_str(&format!(
            "\nWatch the servers and the Nova calls:\n  curl -s {sim_url}/_sim/servers\n  curl -s {sim_url}/_sim/requests\n"
        ));
    }
    s.push_str("\nStop with Ctrl-C.\n");
    s
}
