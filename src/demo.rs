//! `novabmc demo`: four virtual machines in a built-in Nova simulator on
//! loopback, served by the real Nova backend, ready for ipmitool and
//! FreeIPMI with nothing to install or configure.

use std::net::{IpAddr, SocketAddr};

use novabmc_novasim::{NewServer, Sim};
use novabmc_proto::Privilege;

use crate::backend::nova::cloud::CloudSource;
use crate::backend::nova::{NetworkBoot, NovaSettings};
use crate::config::redfish::Tls;
use crate::config::{
    BackendConfig, BmcSettings, Config, NodeConfig, NovaConfig, RedfishConfig, RoutingConfig,
    Secret, SecretBytes, UserConfig,
};

/// The demo's user.
pub const USER: &str = "admin";
/// The demo's password.
pub const PASSWORD: &str = "password";
/// The first node's Redfish port: 2000 above its IPMI port (8230 for the
/// default 6230); the aggregate listener is just below it.
fn redfish_base(ipmi_base: u16) -> u16 {
    ipmi_base.saturating_add(2000)
}

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
            redfish_port: Some(redfish_base(base_port).saturating_add(i)),
            origin: crate::config::Origin::Configured,
        });
    }
    let mut settings = NovaSettings::new(CloudSource::Inline {
        name: "demo".into(),
        yaml: sim.clouds_yaml("demo"),
    });
    settings.refresh = std::time::Duration::from_secs(2);
    settings.state_dir = state_dir.to_path_buf();
    // The built-in simulator's console is a ws:// websocket on loopback.
    settings.allow_plain_console = true;
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
        discovery: None,
        routing: RoutingConfig::default(),
        metrics: None,
        network: None,
        redfish: Some(RedfishConfig {
            port: redfish_base(base_port),
            per_node: true,
            aggregate: Some(SocketAddr::new(
                address,
                redfish_base(base_port).saturating_sub(1),
            )),
            tls: Tls::SelfSigned(state_dir.to_path_buf()),
            session_timeout: std::time::Duration::from_secs(1800),
            max_sessions: 64,
            max_connections: 128,
            read_timeout: std::time::Duration::from_secs(10),
        }),
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
        if let Some(r) = &config.redfish {
            let rp = first.redfish_port.unwrap_or(r.port);
            let scheme = if matches!(r.tls, Tls::Off) {
                "http"
            } else {
                "https"
            };
            s.push_str(&format!(
                "\nRedfish on the same nodes (self-signed certificate: curl -k):\n\
                 \x20 curl -sk -u {USER}:{PASSWORD} {scheme}://{host}:{rp}/redfish/v1/Systems\n\
                 \x20 curl -sk -u {USER}:{PASSWORD} {scheme}://{host}:{rp}/redfish/v1/Systems/{name}\n\
                 \x20 curl -sk -u {USER}:{PASSWORD} -H 'Content-Type: application/json' \
                 -d '{{\"ResetType\": \"On\"}}' {scheme}://{host}:{rp}/redfish/v1/Systems/{name}/Actions/ComputerSystem.Reset\n\
                 \x20 redfishtool -r {host}:{rp} -S Always -u {USER} -p {PASSWORD} Systems -I {name} get\n\
                 Virtual media (serve an ISO first, e.g. python3 -m http.server 8000 where it is):\n\
                 \x20 curl -sk -u {USER}:{PASSWORD} -H 'Content-Type: application/json' \
                 -d '{{\"Image\": \"http://127.0.0.1:8000/boot.iso\"}}' \
                 {scheme}://{host}:{rp}/redfish/v1/Managers/{name}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia\n\
                 \x20 then boot from CD (chassis bootdev cdrom, or Redfish Cd once) and power on: the ISO boots as a CD\n",
                name = first.name
            ));
            if let Some(a) = r.aggregate {
                s.push_str(&format!(
                    "  every node's system under one URL: {scheme}://{a}/redfish/v1/Systems\n"
                ));
            }
        }
        s.push_str(&format!(
            "\nWatch the servers and the Nova calls:\n  curl -s {sim_url}/_sim/servers\n  curl -s {sim_url}/_sim/requests\n"
        ));
    }
    s.push_str("\nStop with Ctrl-C.\n");
    s
}
