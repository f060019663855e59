//! What the cloud says about each node's machine, for the export.
//!
//! One server listing resolves every node with [`ServerIndex`], as `serve`
//! does. Then, per server, at most a few reads (bounded by
//! `backend.max_concurrent_calls`, all nodes together):
//!
//! - the server at microversion 2.47, whose embedded flavor gives vCPUs,
//!   RAM and root disk;
//! - `GET /servers/{id}/os-interface` for the MACs, in port order; where a
//!   policy refuses it, the MACs of the server's `addresses` instead;
//! - for a server booted from an image, the Glance image (read once per
//!   image): `hw_firmware_type` (`uefi` means UEFI, anything else BIOS, as
//!   Nova's libvirt driver decides) and `hw_architecture` or `architecture`
//!   (x86_64 when unset);
//! - for a server booted from a volume (`image` is `""`), its root volume
//!   from Cinder: the size is the root disk (the flavor's is usually 0),
//!   and `volume_image_metadata` holds the properties of the image it was
//!   made from.
//!
//! A node's `efi` setting overrides the firmware read from the image, as
//! it does for `serve`.

use std::collections::HashMap;
use std::net::SocketAddr;

use futures::StreamExt;
use serde_json::Value;

use super::{ExportError, NodeFailure};
use crate::backend::nova::NovaSettings;
use crate::backend::nova::ServerIndex;
use crate::backend::nova::client::{NovaClient, NovaError, NovaErrorKind, ServerDetail};
use crate::config::{NodeConfig, RedfishConfig};

/// Nova's assumption for an image that names no architecture.
const DEFAULT_ARCH: &str = "x86_64";

/// The firmware a machine boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootMode {
    /// UEFI (`hw_firmware_type=uefi`).
    Uefi,
    /// Legacy BIOS.
    Bios,
}

impl BootMode {
    /// Ironic's name (`boot_mode:uefi` / `boot_mode:bios`).
    pub fn ironic(self) -> &'static str {
        match self {
            BootMode::Uefi => "uefi",
            BootMode::Bios => "bios",
        }
    }
}

/// A machine as the export describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Server UUID.
    pub server_id: String,
    /// Server name.
    pub server_name: String,
    /// vCPUs.
    pub cpus: u32,
    /// RAM in MiB.
    pub memory_mb: u64,
    /// Root disk in GiB.
    pub disk_gb: u64,
    /// Architecture as Nova and Ironic name it (`x86_64`, `aarch64`...).
    pub arch: String,
    /// Firmware; `None` when the image is gone from Glance and the node
    /// sets no `efi`.
    pub boot_mode: Option<BootMode>,
    /// MACs of the server's ports.
    pub macs: Vec<String>,
}

/// One node to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Node name.
    pub name: String,
    /// Its BMC's address and port.
    pub listen: SocketAddr,
    /// Its Redfish service's URL (`https://ADDRESS:PORT`), when Redfish
    /// is served.
    pub redfish: Option<String>,
    /// Whether that service's certificate is the self-signed one novabmc
    /// generates (a client cannot verify it against a CA).
    pub redfish_self_signed: bool,
    /// The machine behind it.
    pub machine: Machine,
}

/// What one server's reads produced, before its image is known.
struct ServerFacts {
    detail: ServerDetail,
    macs: Vec<String>,
    /// Root volume size and image metadata, for a server booted from one.
    volume: Option<(u64, HashMap<String, Value>)>,
}

/// Properties that decide firmware and architecture; `None` when the image
/// no longer exists.
type Properties = Option<HashMap<String, Value>>;

/// Where a node's system is served: its own listener, or the aggregate
/// one when nodes have none.
fn redfish_url(r: &RedfishConfig, node: &NodeConfig) -> String {
    let address = if r.per_node {
        SocketAddr::new(node.listen.ip(), node.redfish_port.unwrap_or(r.port))
    } else {
        r.aggregate
            .unwrap_or_else(|| SocketAddr::new(node.listen.ip(), r.port))
    };
    let scheme = if matches!(r.tls, crate::config::redfish::Tls::Off) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{address}")
}

/// Reads every node's machine; all or nothing, naming every failing node.
pub async fn gather(
    settings: &NovaSettings,
    nodes: &[NodeConfig],
    redfish: Option<&RedfishConfig>,
) -> Result<Vec<Entry>, ExportError> {
    let cloud = crate::backend::nova::cloud::load(&settings.cloud).map_err(ExportError::Cloud)?;
    let client = NovaClient::new(cloud, settings.request_timeout);
    let unreachable = |error: NovaError| ExportError::Unreachable {
        cloud: settings.cloud.to_string(),
        error,
    };
    // Bounded by the request timeout, authentication included.
    client.connect().await.map_err(unreachable)?;
    let servers = client
        .list_servers(None, None)
        .await
        .map_err(unreachable)?
        .servers;

    let index = ServerIndex::new(&servers);
    let mut failures = Vec::new();
    let mut resolved = Vec::new();
    for node in nodes {
        match index.find(&node.server) {
            Ok(s) => resolved.push((node, s.id.clone())),
            Err(why) => failures.push(NodeFailure {
                node: node.name.clone(),
                message: why.to_string(),
            }),
        }
    }

    let parallel = settings.max_concurrent_calls.max(1);
    let client = &client;
    let facts: Vec<(&NodeConfig, Result<ServerFacts, String>)> = futures::stream::iter(resolved)
        .map(|(node, id)| async move { (node, server_facts(client, &id).await) })
        .buffered(parallel)
        .collect()
        .await;

    let image_ids: Vec<String> = {
        let mut ids: Vec<String> = facts
            .iter()
            .filter_map(|(_, f)| f.as_ref().ok())
            .filter(|f| f.volume.is_none())
            .filter_map(|f| f.detail.image_id().map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let images: HashMap<String, Result<Properties, String>> = futures::stream::iter(image_ids)
        .map(|id| async move {
            let props = image_properties(client, &id).await;
            (id, props)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;

    let mut entries = Vec::new();
    for (node, f) in facts {
        let result = f.and_then(|f| machine(node, f, &images));
        match result {
            Ok(machine) => entries.push(Entry {
                name: node.name.clone(),
                listen: node.listen,
                redfish: redfish.map(|r| redfish_url(r, node)),
                redfish_self_signed: redfish
                    .is_some_and(|r| matches!(r.tls, crate::config::redfish::Tls::SelfSigned(_))),
                machine,
            }),
            Err(message) => failures.push(NodeFailure {
                node: node.name.clone(),
                message,
            }),
        }
    }
    if !failures.is_empty() {
        // Report in configuration order, whichever step failed.
        let order: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        failures.sort_by_key(|f| order.get(f.node.as_str()).copied());
        return Err(ExportError::Nodes {
            failures,
            total: nodes.len(),
        });
    }
    Ok(entries)
}

/// The server with its flavor, its MACs and, when it boots from a volume,
/// that volume.
async fn server_facts(client: &NovaClient, id: &str) -> Result<ServerFacts, String> {
    let detail = client
        .get_server_detail(id)
        .await
        .map_err(|e| format!("cannot read server {id}: {e}"))?;
    let macs = match client.interface_macs(id).await {
        Ok(macs) => macs,
        // Refused (403 by policy, 404 or 400 without the extension): the
        // addresses show the same ports. A 5xx or timeout is an error.
        Err(e) if !e.is_retryable() || e.kind == NovaErrorKind::Auth => {
            tracing::info!(server = %id, error = %e, "os-interface refused; reading MACs from the server's addresses");
            detail.address_macs()
        }
        Err(e) => return Err(format!("cannot list the interfaces of server {id}: {e}")),
    };
    if macs.is_empty() {
        return Err(format!(
            "server {id} has no network port, so nothing to boot from the network"
        ));
    }
    let volume = if detail.image_id().is_none() {
        Some(root_volume(client, &detail).await?)
    } else {
        None
    };
    Ok(ServerFacts {
        detail,
        macs,
        volume,
    })
}

/// The root volume of a server booted from a volume: the one attached at
/// the server's root device, else the first bootable one, else the first.
async fn root_volume(
    client: &NovaClient,
    server: &ServerDetail,
) -> Result<(u64, HashMap<String, Value>), String> {
    if server.volumes_attached.is_empty() {
        return Err(format!(
            "server {} shows neither an image nor a volume to boot from",
            server.id
        ));
    }
    let mut volumes = Vec::new();
    for v in &server.volumes_attached {
        let info = client
            .volume(&v.id)
            .await
            .map_err(|e| format!("cannot read volume {} of server {}: {e}", v.id, server.id))?;
        volumes.push(info);
    }
    let at_root = server.root_device_name.as_deref().and_then(|root| {
        volumes.iter().position(|v| {
            v.attachments.iter().any(|a| {
                a.server_id.as_deref() == Some(server.id.as_str())
                    && a.device.as_deref() == Some(root)
            })
        })
    });
    let index = at_root
        .or_else(|| volumes.iter().position(|v| v.is_bootable()))
        .unwrap_or(0);
    let root = volumes.swap_remove(index);
    Ok((root.size, root.volume_image_metadata))
}

/// An image's properties; a deleted image is `Ok(None)` (its server still
/// runs), any other failure is an error.
async fn image_properties(client: &NovaClient, id: &str) -> Result<Properties, String> {
    match client.image(id).await {
        Ok(Value::Object(map)) => Ok(Some(map.into_iter().collect())),
        Ok(_) => Err(format!(
            "image {id}: Glance answered something else than an image"
        )),
        Err(e) if e.kind == NovaErrorKind::NotFound => {
            tracing::warn!(image = %id, "image no longer in Glance; firmware unknown, architecture assumed {DEFAULT_ARCH}");
            Ok(None)
        }
        Err(e) => Err(format!("cannot read image {id}: {e}")),
    }
}

/// Puts one node's facts together.
fn machine(
    node: &NodeConfig,
    f: ServerFacts,
    images: &HashMap<String, Result<Properties, String>>,
) -> Result<Machine, String> {
    let (disk_gb, props): (u64, Properties) = match f.volume {
        Some((size, metadata)) => (size, Some(metadata)),
        None => {
            let id = f.detail.image_id().unwrap_or_default();
            let props = match images.get(id) {
                Some(Ok(p)) => p.clone(),
                Some(Err(e)) => return Err(e.clone()),
                None => return Err(format!("image {id} was not read")),
            };
            (f.detail.flavor.disk, props)
        }
    };
    let boot_mode = match node.efi {
        Some(true) => Some(BootMode::Uefi),
        Some(false) => Some(BootMode::Bios),
        None => props.as_ref().map(firmware),
    };
    let arch = props
        .as_ref()
        .map_or_else(|| DEFAULT_ARCH.to_string(), architecture);
    Ok(Machine {
        server_id: f.detail.id,
        server_name: f.detail.name,
        cpus: f.detail.flavor.vcpus,
        memory_mb: f.detail.flavor.ram,
        disk_gb,
        arch,
        boot_mode,
        macs: f.macs,
    })
}

fn text<'a>(props: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    props
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `hw_firmware_type=uefi` boots UEFI; anything else (or nothing) BIOS.
fn firmware(props: &HashMap<String, Value>) -> BootMode {
    match text(props, "hw_firmware_type") {
        Some(f) if f.eq_ignore_ascii_case("uefi") => BootMode::Uefi,
        _ => BootMode::Bios,
    }
}

/// `hw_architecture` (current) or `architecture` (legacy), in Nova's
/// canonical spelling.
fn architecture(props: &HashMap<String, Value>) -> String {
    let raw = text(props, "hw_architecture")
        .or_else(|| text(props, "architecture"))
        .unwrap_or(DEFAULT_ARCH);
    canonical_arch(raw)
}

/// Nova's canonical architecture names, plus the Debian spellings images
/// are sometimes tagged with.
pub fn canonical_arch(raw: &str) -> String {
    let lower = raw.to_ascii_lowercase();
    match lower.as_str() {
        "amd64" | "x86-64" | "x64" => "x86_64".to_string(),
        "arm64" => "aarch64".to_string(),
        "ppc64el" => "ppc64le".to_string(),
        "i386" | "i486" | "i586" => "i686".to_string(),
        _ => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> HashMap<String, Value> {
        serde_json::from_value(v).expect("map")
    }

    #[test]
    fn firmware_and_architecture_from_properties() {
        assert_eq!(
            firmware(&props(json!({"hw_firmware_type": "UEFI"}))),
            BootMode::Uefi
        );
        assert_eq!(
            firmware(&props(json!({"hw_firmware_type": "bios"}))),
            BootMode::Bios
        );
        assert_eq!(firmware(&props(json!({}))), BootMode::Bios);
        assert_eq!(architecture(&props(json!({}))), "x86_64");
        assert_eq!(
            architecture(&props(json!({"architecture": "arm64"}))),
            "aarch64"
        );
        assert_eq!(
            architecture(&props(
                json!({"architecture": "x86_64", "hw_architecture": "ppc64le"})
            )),
            "ppc64le"
        );
        assert_eq!(canonical_arch("AMD64"), "x86_64");
        assert_eq!(canonical_arch("s390x"), "s390x");
    }
}
