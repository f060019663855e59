//! `novabmc check --config FILE`: everything `serve` would find wrong,
//! found before the first console connects, without serving anything.
//!
//! The configuration is loaded as `serve` loads it. For the Nova backend
//! the check then authenticates (reporting the catalog entries the calls
//! use and the compute microversions novabmc asks for), lists every server
//! once, and resolves each node exactly as `serve` does ([`ServerIndex`],
//! built once for the listing), so it costs one listing however many nodes
//! there are, plus one Glance read per distinct image. Each iPXE image must exist, and its `hw_firmware_type`
//! must match the node's boot mode (its `efi`, else its server's image):
//! a rebuild or rescue with an image of the other firmware boots the node
//! in a mode Ironic did not configure.
//!
//! With `[discovery]` the servers it picks are looked up first, as
//! `serve` looks them up ([`discovery::resolve`], recording nothing), and
//! their nodes are checked with the configured ones, each row saying
//! where its node comes from; a discovered server left unserved (its
//! address pool exhausted) or a cloud that cannot be listed is a problem,
//! the other discovery notes (a server renamed, a recorded address
//! reassigned, a server a configured node serves) are warnings.
//!
//! Problems (a server missing or ambiguous, an image missing or of the
//! wrong firmware, a cloud unreachable) fail the check; warnings (an
//! address no interface holds yet, a route someone else's entry blocks,
//! a microversion the cloud lacks) do not, as `serve` copes with them.
//!
//! - [`report`]: the table and the JSON document.

pub mod report;

use std::collections::HashMap;
use std::net::IpAddr;

use novabmc_proto::BootOptions;
use serde::Serialize;

use crate::backend::nova::client::{CatalogEntry, MICROVERSIONS, NovaClient};
use crate::backend::nova::metadata::{BOOT_KEY, OWNER_KEY, decode_boot};
use crate::backend::nova::{NetworkBoot, NovaNode, ServerIndex, cloud};
use crate::config::{BackendConfig, Config, NodeConfig, NovaConfig, Origin};
use crate::{discovery, routing};

/// What the check found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `simulated`, or `nova` and the cloud.
    pub backend: String,
    /// The cloud as reached, for the Nova backend.
    pub cloud: Option<CloudReport>,
    /// One row per node, in node order.
    pub nodes: Vec<NodeRow>,
    /// Warnings about no node in particular.
    pub warnings: Vec<String>,
    /// Problems about no node in particular (discovery's).
    pub problems: Vec<String>,
    /// What discovery found, when configured.
    pub discovery: Option<DiscoveryReport>,
    /// The Redfish listeners, when Redfish is served.
    pub redfish: Vec<RedfishListener>,
}

/// What discovery found.
#[derive(Clone, Debug, Serialize)]
pub struct DiscoveryReport {
    /// The selectors, as `tag baremetal, name bm-*`.
    pub selector: String,
    /// Where the addresses come from, as `pool 192.0.2.0/24`.
    pub address: String,
    /// Servers the selectors picked.
    pub servers_matched: usize,
    /// Nodes made of them (those a configured node serves, and those
    /// without an address, are not).
    pub nodes: usize,
}

/// One Redfish listener as it will serve.
#[derive(Clone, Debug, Serialize)]
pub struct RedfishListener {
    /// Its URL.
    pub url: String,
    /// The node whose system it shows, or `all`.
    pub serves: String,
    /// SHA-256 of its certificate, once there is one.
    pub fingerprint: Option<String>,
    /// Where the certificate is, or why there is none yet.
    pub certificate: String,
}

impl Report {
    /// The nodes with at least one problem.
    pub fn failing(&self) -> impl Iterator<Item = &NodeRow> {
        self.nodes.iter().filter(|n| !n.problems.is_empty())
    }
}

/// The cloud as the check reached it.
#[derive(Clone, Debug, Serialize)]
pub struct CloudReport {
    /// The catalog entries the calls use.
    pub catalog: Vec<Service>,
    /// The compute microversions novabmc asks for, and whether the cloud
    /// has them.
    pub microversions: Vec<Microversion>,
    /// Servers the listing returned.
    pub servers_listed: usize,
    /// How virtual media reaches this cloud: how a CD boots and how
    /// images get into Glance.
    pub virtual_media: String,
}

/// One catalog entry.
#[derive(Clone, Debug, Serialize)]
pub struct Service {
    /// Service type.
    pub service: String,
    /// Endpoint.
    pub endpoint: String,
    /// `MIN-MAX` microversions, if the service has them.
    pub versions: Option<String>,
}

/// One compute microversion novabmc uses.
#[derive(Clone, Debug, Serialize)]
pub struct Microversion {
    /// `2.17`.
    pub version: String,
    /// What it is for.
    pub used_for: String,
    /// Whether the cloud supports it.
    pub supported: bool,
}

/// One node as the check sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeRow {
    /// Node name.
    pub name: String,
    /// `configured` or `discovered`.
    pub origin: String,
    /// `address:port` of its BMC.
    pub bmc: String,
    /// The server's name, once found.
    pub server_name: Option<String>,
    /// The server's UUID, once found.
    pub server_id: Option<String>,
    /// Nova's status (`ACTIVE`, `SHUTOFF`...).
    pub status: Option<String>,
    /// Nova's power state.
    pub power: Option<String>,
    /// The boot device override (`none`, `pxe`, `disk`...).
    pub boot_device: Option<String>,
    /// Whether that override persists across boots.
    pub boot_persistent: Option<bool>,
    /// Firmware the node boots with (`uefi`, `bios`), when known.
    pub boot_mode: Option<String>,
    /// How network boot is done (`rebuild`, `rescue`, `metadata`).
    pub network_boot: Option<String>,
    /// What would make the node fail.
    pub problems: Vec<String>,
    /// What `serve` copes with but the operator should know.
    pub warnings: Vec<String>,
}

/// Checks a loaded configuration, with the nodes discovery finds.
pub async fn check(config: &Config) -> Report {
    let resolved = discovery::resolve(config, false).await;
    let config = &resolved.config;
    let mut rows: Vec<NodeRow> = config.nodes.iter().map(row).collect();
    let mut report = Report {
        backend: "simulated".into(),
        cloud: None,
        nodes: Vec::new(),
        warnings: Vec::new(),
        problems: Vec::new(),
        discovery: None,
        redfish: Vec::new(),
    };
    if let Some(d) = &config.discovery {
        report.discovery = Some(DiscoveryReport {
            selector: d.selector.describe(),
            address: d.address.to_string(),
            servers_matched: resolved.matched,
            nodes: config
                .nodes
                .iter()
                .filter(|n| n.origin == Origin::Discovered)
                .count(),
        });
        if let Some(e) = &resolved.error {
            report.problems.push(format!("discovery: {e}"));
        }
        for n in &resolved.notes {
            let text = format!("discovery: {n}");
            if n.is_problem() {
                report.problems.push(text);
            } else {
                report.warnings.push(text);
            }
        }
    }
    match &config.backend {
        BackendConfig::Simulated(s) => {
            for (row, node) in rows.iter_mut().zip(&config.nodes) {
                let efi = node.efi.unwrap_or(s.efi);
                row.server_name = Some(node.server.clone());
                row.status = Some("simulated".into());
                row.power = Some("off".into());
                boot_columns(row, &BootOptions::new(efi), Some(efi));
            }
        }
        BackendConfig::Nova(nova) => {
            report.backend = format!("nova ({})", nova.settings.cloud);
            let nodes = config.nova_nodes(nova);
            report.cloud = check_nova(nova, &nodes, &mut rows, &mut report.warnings).await;
        }
    }
    check_addresses(&config.nodes, &mut rows, &mut report.warnings).await;
    check_routes(config, &mut rows, &mut report.warnings).await;
    if let Some(r) = &config.redfish {
        report.redfish = check_redfish(r, &config.nodes, &mut rows);
    }
    report.nodes = rows;
    report
}

/// The Redfish listeners and their certificates. A configured certificate
/// and key are loaded (a pair rustls refuses is the node's problem); a
/// self-signed one is read if it was generated already, never generated
/// here (the daemon, as its own user, makes it at its first start).
fn check_redfish(
    r: &crate::config::RedfishConfig,
    nodes: &[NodeConfig],
    rows: &mut [NodeRow],
) -> Vec<RedfishListener> {
    use crate::config::redfish::Tls;
    use crate::redfish::{Scope, door, tls};
    let mut out = Vec::new();
    for (address, scope) in door::wanted(r, nodes) {
        let serves = match &scope {
            Scope::Node(n) => n.clone(),
            Scope::All => "all".into(),
        };
        let (scheme, fingerprint, certificate) = match &r.tls {
            Tls::Off => ("http", None, "none (plain HTTP, tls = false)".to_string()),
            Tls::SelfSigned(dir) if !tls::self_signed_paths(dir, address.ip()).0.exists() => (
                "https",
                None,
                format!(
                    "self-signed, generated at the first start in {}",
                    dir.display()
                ),
            ),
            tls_config => match tls::identity(tls_config, address.ip()) {
                Ok(Some(id)) => ("https", Some(id.fingerprint), id.path.display().to_string()),
                Ok(None) => ("https", None, String::new()),
                Err(e) => {
                    for row in rows
                        .iter_mut()
                        .filter(|row| row.name == serves || serves == "all")
                    {
                        row.problems.push(format!("Redfish certificate: {e}"));
                    }
                    ("https", None, e.to_string())
                }
            },
        };
        out.push(RedfishListener {
            url: format!("{scheme}://{address}"),
            serves,
            fingerprint,
            certificate,
        });
    }
    out
}

fn row(n: &NodeConfig) -> NodeRow {
    NodeRow {
        name: n.name.clone(),
        origin: n.origin.name().into(),
        bmc: n.listen.to_string(),
        ..NodeRow::default()
    }
}

/// Every node gets the same problem (the cloud cannot be used at all).
fn all_fail(rows: &mut [NodeRow], problem: &str) {
    for r in rows {
        r.problems.push(problem.to_string());
    }
}

async fn check_nova(
    nova: &NovaConfig,
    nodes: &[NovaNode],
    rows: &mut [NodeRow],
    warnings: &mut Vec<String>,
) -> Option<CloudReport> {
    let settings = &nova.settings;
    let cloud = match cloud::load(&settings.cloud) {
        Ok(c) => c,
        Err(e) => {
            all_fail(rows, &format!("cloud configuration: {e}"));
            return None;
        }
    };
    let client = NovaClient::new(cloud, settings.request_timeout);
    if let Err(e) = client.connect().await {
        all_fail(rows, &format!("cannot reach the cloud: {e}"));
        return None;
    }
    let catalog = match client.catalog().await {
        Ok(c) => c,
        Err(e) => {
            all_fail(rows, &format!("cannot use the cloud's catalog: {e}"));
            return None;
        }
    };
    let listing = match client.list_servers(None, None).await {
        Ok(l) => l.servers,
        Err(e) => {
            all_fail(rows, &format!("cannot list the servers: {e}"));
            return None;
        }
    };
    let microversions = microversions(&catalog);
    for m in microversions.iter().filter(|m| !m.supported) {
        warnings.push(format!(
            "the compute API lacks microversion {}, needed for {}",
            m.version, m.used_for
        ));
    }
    let index = ServerIndex::new(&listing);
    // What a daemon with this configuration writes as the owner key.
    let own = crate::backend::nova::instance_name(&settings.state_dir);
    let mut images = Images::default();
    for (spec, row) in nodes.iter().zip(rows.iter_mut()) {
        check_node(&client, spec, &index, &mut images, &own, row).await;
    }
    Some(CloudReport {
        catalog: catalog
            .iter()
            .map(|c| Service {
                service: c.service.to_string(),
                endpoint: c.endpoint.clone(),
                versions: c.versions.map(|(lo, hi)| format!("{lo}-{hi}")),
            })
            .collect(),
        virtual_media: media_plan(&client, settings, &microversions).await,
        microversions,
        servers_listed: listing.len(),
    })
}

/// How virtual media will work against this cloud, as the daemon decides
/// it: the CD boot method (and whether a volume-backed server can be
/// rescued) and how images are fetched.
async fn media_plan(
    client: &NovaClient,
    settings: &crate::backend::nova::NovaSettings,
    microversions: &[Microversion],
) -> String {
    use crate::backend::nova::media::MediaBoot;
    let stable = microversions
        .iter()
        .any(|m| m.version == "2.87" && m.supported);
    let boot = match (settings.media.boot, stable) {
        (MediaBoot::Rebuild, _) => "CD boots by rebuild with the image (the root disk is replaced)".to_string(),
        (MediaBoot::Rescue, true) => "CD boots by stable-device rescue (2.87: disks kept, volume-backed servers too)".to_string(),
        (MediaBoot::Rescue, false) => "CD boots by stable-device rescue; without 2.87 Nova refuses it for volume-backed servers, which then boot from disk".to_string(),
    };
    let fetch = match client.import_methods().await {
        Ok(m) if settings.media.web_download && m.iter().any(|x| x == "web-download") => {
            "images fetched by Glance (web-download), else uploaded by novabmc".to_string()
        }
        Ok(_) => {
            "images uploaded by novabmc (Glance offers no web-download, or it is off)".to_string()
        }
        Err(e) => format!("Glance's import methods unknown ({e}); images uploaded by novabmc"),
    };
    format!("{boot}; {fetch}")
}

fn microversions(catalog: &[CatalogEntry]) -> Vec<Microversion> {
    let compute = catalog.iter().find(|c| c.service == "compute");
    MICROVERSIONS
        .iter()
        .map(|(v, used_for)| Microversion {
            version: v.to_string(),
            used_for: used_for.to_string(),
            supported: compute
                .and_then(|c| c.versions)
                .is_some_and(|(lo, hi)| lo <= *v && *v <= hi),
        })
        .collect()
}

/// Glance answers, each asked once.
#[derive(Default)]
struct Images {
    /// iPXE image reference: its ID and `hw_firmware_type`, or why not.
    ipxe: HashMap<String, Result<(String, Option<String>), String>>,
    /// Server image ID: its `hw_firmware_type`, or why it is unknown.
    firmware: HashMap<String, Result<Option<String>, String>>,
}

fn is_uefi(firmware: Option<&str>) -> bool {
    firmware.is_some_and(|f| f.eq_ignore_ascii_case("uefi"))
}

fn mode_name(efi: bool) -> &'static str {
    if efi { "uefi" } else { "bios" }
}

async fn check_node(
    client: &NovaClient,
    spec: &NovaNode,
    index: &ServerIndex<'_>,
    images: &mut Images,
    own: &str,
    row: &mut NodeRow,
) {
    row.network_boot = Some(network_boot_name(spec.network_boot).into());
    let server = match index.find(&spec.server) {
        Ok(s) => s,
        Err(why) => {
            row.problems.push(why.to_string());
            return;
        }
    };
    row.server_name = Some(server.name.clone());
    row.server_id = Some(server.id.clone());
    row.status = Some(server.status.to_string());
    row.power = server.power_state.map(|p| p.to_string());
    // The key naming this very instance (same host and state directory)
    // is the normal case on a BMC instance already serving.
    if let Some(owner) = server.metadata.get(OWNER_KEY)
        && owner != own
    {
        row.warnings.push(format!(
            "the server's metadata names another novabmc instance, {owner} (this one is \
             {own}): serve each server from one instance"
        ));
    }
    // The node's boot mode: its own setting, else its server's image.
    let efi = match (spec.efi, server.image_id()) {
        (Some(e), _) => Some(e),
        (None, None) => Some(false),
        (None, Some(image)) => {
            if !images.firmware.contains_key(image) {
                let fw = client
                    .image_firmware(image)
                    .await
                    .map(|f| f.firmware_type)
                    .map_err(|e| e.to_string());
                images.firmware.insert(image.to_string(), fw);
            }
            match images.firmware.get(image) {
                Some(Ok(fw)) => Some(is_uefi(fw.as_deref())),
                Some(Err(e)) => {
                    row.warnings.push(format!(
                        "cannot read the server's image {image} (serve assumes BIOS): {e}"
                    ));
                    None
                }
                None => None,
            }
        }
    };
    let boot = match server.metadata.get(BOOT_KEY).map(|v| decode_boot(v)) {
        Some(Some(b)) => b,
        Some(None) => {
            row.warnings.push(format!(
                "unreadable {BOOT_KEY} metadata; serve starts from defaults"
            ));
            BootOptions::new(efi.unwrap_or(false))
        }
        None => BootOptions::new(efi.unwrap_or(false)),
    };
    boot_columns(row, &boot, efi);
    if !spec.network_boot.needs_image() {
        return;
    }
    let Some(image_ref) = &spec.ipxe_image else {
        row.problems
            .push("no ipxe_image configured for network boot".into());
        return;
    };
    if !images.ipxe.contains_key(image_ref) {
        let found = match client.find_image(image_ref).await {
            Ok(i) => client
                .image_firmware(&i.id)
                .await
                .map(|f| f.firmware_type)
                .map(|fw| (i.id, fw))
                .map_err(|e| format!("iPXE image {image_ref}: {e}")),
            Err(e) => Err(format!("iPXE image {image_ref}: {e}")),
        };
        images.ipxe.insert(image_ref.clone(), found);
    }
    match images.ipxe.get(image_ref) {
        Some(Ok((id, fw))) => {
            let ipxe_efi = is_uefi(fw.as_deref());
            if let Some(node_efi) = efi
                && node_efi != ipxe_efi
            {
                row.problems.push(format!(
                    "iPXE image {image_ref} ({id}) has hw_firmware_type={} and boots {}, \
                     but the node boots {}: a network boot would change its firmware; \
                     use an iPXE image for {} or set nodes.{}.efi",
                    fw.as_deref().unwrap_or("(unset)"),
                    mode_name(ipxe_efi),
                    mode_name(node_efi),
                    mode_name(node_efi),
                    spec.name,
                ));
            }
        }
        Some(Err(why)) => row.problems.push(why.clone()),
        None => {}
    }
}

fn boot_columns(row: &mut NodeRow, boot: &BootOptions, efi: Option<bool>) {
    let flags = boot.flags;
    row.boot_device = Some(if flags.valid() {
        device_name(flags.effective_device()).into()
    } else {
        "none".into()
    });
    row.boot_persistent = Some(flags.valid() && flags.persistent());
    row.boot_mode = efi.map(|e| mode_name(e).into());
}

fn device_name(d: novabmc_proto::BootDevice) -> &'static str {
    use novabmc_proto::BootDevice::*;
    match d {
        NoOverride => "none",
        Pxe => "pxe",
        Disk => "disk",
        DiskSafe => "safe",
        Diagnostic => "diag",
        Cdrom => "cdrom",
        BiosSetup => "bios",
        RemoteFloppy => "remote-floppy",
        RemoteCdrom => "remote-cdrom",
        RemoteMedia => "remote-media",
        RemoteDisk => "remote-disk",
        Floppy => "floppy",
    }
}

fn network_boot_name(m: NetworkBoot) -> &'static str {
    match m {
        NetworkBoot::Rebuild => "rebuild",
        NetworkBoot::Rescue => "rescue",
        NetworkBoot::Metadata => "metadata",
    }
}

/// Warns for node addresses no interface holds yet: `serve` binds them
/// anyway (IP_FREEBIND), and requests reach them once DHCP or the operator
/// configures them. All of loopback is local on Linux.
async fn check_addresses(nodes: &[NodeConfig], rows: &mut [NodeRow], warnings: &mut Vec<String>) {
    let held = match routing::netlink::Netlink::connect() {
        Ok(nl) => match nl.interfaces().await {
            Ok(ifs) => ifs.holders,
            Err(e) => {
                warnings.push(format!("cannot read the host's addresses: {e}"));
                return;
            }
        },
        Err(e) => {
            warnings.push(format!("cannot read the host's addresses: {e}"));
            return;
        }
    };
    for (node, row) in nodes.iter().zip(rows) {
        let ip = node.listen.ip();
        let local = match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => v6.is_loopback(),
        };
        if !local && !held.contains_key(&ip) {
            row.warnings.push(format!(
                "no interface holds {ip} yet; the node answers once one does"
            ));
        }
    }
}

/// Warns for routes `serve` could not install as they stand (the
/// `routes show` comparison).
async fn check_routes(config: &Config, rows: &mut [NodeRow], warnings: &mut Vec<String>) {
    let specs = config.route_specs();
    if specs.is_empty() {
        return;
    }
    let reports = match routing::ops::show(&specs).await {
        Ok(r) => r,
        Err(e) => {
            warnings.push(format!("cannot compare the nodes' routes: {e}"));
            return;
        }
    };
    let by_name: HashMap<String, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.clone(), i))
        .collect();
    for r in reports {
        let Some(row) = by_name.get(&r.spec.node).and_then(|&i| rows.get_mut(i)) else {
            continue;
        };
        for (what, (text, status)) in [("rule", &r.rule), ("route", &r.route)] {
            if matches!(
                status,
                routing::ops::Status::Conflict(_) | routing::ops::Status::Unknown(_)
            ) {
                row.warnings.push(format!("{what} {text}: {status}"));
            }
        }
    }
}
