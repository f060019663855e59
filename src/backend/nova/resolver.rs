//! The resolver: connects to the cloud (retrying while Keystone or Nova is
//! down), finds every node's server in one listing, resolves the iPXE
//! images and restores the boot options saved in metadata, and publishes
//! each server's inventory for its FRU.

use std::collections::HashMap;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::client::{self, ImageFirmware, NovaError, ServerInfo};
use super::compute::Compute;
use super::server_index::ServerIndex;
use tokio::time::Instant;

use novabmc_proto::BootOptions;

use super::Nova;
use super::guid;
use super::metadata::{BOOT_KEY, OWNER_KEY, decode_boot};
use super::node::Resolution;
use super::settings::NovaNode;
use super::worker::NodeCell;
use crate::backend::NodeId;
use crate::backend::ServerInventory;

/// How often resolving a long list of nodes says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

impl<C: Compute> Nova<C> {
    pub(super) async fn connect_and_list(&self) -> Result<client::Listing, NovaError> {
        self.ctx.client.connect().await?;
        let _permit = self.ctx.limit.acquire().await;
        self.ctx.client.list_servers(None, None).await
    }

    /// Finds every node's server in one listing, with a progress line
    /// every [`PROGRESS_EVERY`] while that takes long (thousands of nodes,
    /// a slow Glance).
    pub(super) async fn resolve_all(&self, servers: &[ServerInfo]) {
        let mut images: HashMap<String, Result<String, String>> = HashMap::new();
        let mut firmware: HashMap<String, Option<ImageFirmware>> = HashMap::new();
        let mut flavors: HashMap<String, String> = HashMap::new();
        let index = ServerIndex::new(servers);
        let mut progress = Instant::now() + PROGRESS_EVERY;
        for (i, (cell, spec)) in self.cells.iter().zip(&self.specs).enumerate() {
            if Instant::now() >= progress {
                info!(done = i, nodes = self.cells.len(), "resolving servers");
                progress = Instant::now() + PROGRESS_EVERY;
            }
            if !matches!(cell.lock().resolution, Resolution::Pending) {
                continue;
            }
            self.resolve_one(i, cell, spec, &index, &mut images, &mut firmware)
                .await;
            self.publish_inventory(cell, &index, &mut flavors).await;
        }
        let found = self
            .cells
            .iter()
            .filter(|c| matches!(c.lock().resolution, Resolution::Found { .. }))
            .count();
        info!(nodes = self.cells.len(), found, "servers resolved");
    }

    pub(super) async fn resolve_one(
        &self,
        node: NodeId,
        cell: &NodeCell,
        spec: &NovaNode,
        index: &ServerIndex<'_>,
        images: &mut HashMap<String, Result<String, String>>,
        firmware: &mut HashMap<String, Option<ImageFirmware>>,
    ) {
        let server = match index.find(&spec.server) {
            Ok(s) => s,
            Err(why) => {
                error!(node = %spec.name, server = %spec.server, "{why}");
                cell.lock().resolution = Resolution::Missing(why.to_string());
                return;
            }
        };
        if spec.network_boot.needs_image() {
            let Some(image_ref) = &spec.ipxe_image else {
                let why = "no ipxe_image configured for network boot".to_string();
                error!(node = %spec.name, "{why}");
                cell.lock().resolution = Resolution::Failed(why);
                return;
            };
            if !images.contains_key(image_ref) {
                let found = {
                    let _permit = self.ctx.limit.acquire().await;
                    self.ctx.client.find_image(image_ref).await
                }
                .map(|i| i.id)
                .map_err(|e| format!("iPXE image {image_ref}: {e}"));
                images.insert(image_ref.clone(), found);
            }
            match images.get(image_ref) {
                Some(Ok(id)) => {
                    *cell.ipxe_image.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
                }
                Some(Err(why)) => {
                    error!(node = %spec.name, "{why}");
                    cell.lock().resolution = Resolution::Failed(why.clone());
                    return;
                }
                None => return,
            }
        }
        let efi = match spec.efi {
            Some(e) => e,
            None => match server.image_id() {
                Some(image) => {
                    if !firmware.contains_key(image) {
                        let fw = {
                            let _permit = self.ctx.limit.acquire().await;
                            self.ctx.client.image_firmware(image).await
                        }
                        .ok();
                        firmware.insert(image.to_string(), fw);
                    }
                    firmware
                        .get(image)
                        .and_then(Option::as_ref)
                        .is_some_and(ImageFirmware::uefi)
                }
                None => false,
            },
        };
        let secure_boot = server
            .image_id()
            .and_then(|image| firmware.get(image))
            .and_then(Option::as_ref)
            .map(ImageFirmware::secure_boot);
        *cell.secure_boot.lock().unwrap_or_else(|e| e.into_inner()) = secure_boot;
        let saved = server.metadata.get(BOOT_KEY);
        let from_metadata = match saved.map(|v| decode_boot(v)) {
            Some(Some(b)) => b,
            Some(None) => {
                warn!(node = %spec.name, "unreadable {BOOT_KEY} metadata; starting from defaults");
                BootOptions::new(efi)
            }
            None => BootOptions::new(efi),
        };
        let uuid = guid::parse_uuid(&server.id);
        let now = Instant::now();
        {
            let mut s = cell.lock();
            if let Some(old) = s.server_id.clone()
                && old != server.id
            {
                if let Some(what) = s.pending() {
                    warn!(node = %spec.name, old = %old, new = %server.id, pending = %what,
                        "the node's server is not the one the pending work was for; dropped");
                }
                s.desired = None;
                s.boot = None;
                s.boot_dirty = false;
            }
            if s.boot.is_none() {
                s.boot = Some(from_metadata);
            }
            if s.lay_early_boot() {
                info!(node = %spec.name, "boot-parameter writes made before the server was known applied");
                self.ctx.persist(&s);
                cell.wake.notify_one();
            }
            s.resolution = Resolution::Found {
                id: server.id.clone(),
            };
            s.server_id = Some(server.id.clone());
            self.by_server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(server.id.clone(), node);
            s.uuid = uuid;
            s.observe(server, OWNER_KEY, now);
            match server.metadata.get(OWNER_KEY) {
                Some(v) if *v == self.ctx.owner => {}
                Some(other) => {
                    warn!(node = %spec.name, server = %server.id, other = %other,
                        "the server's metadata names another novabmc instance serving it; two BMCs \
                         for one server undo each other's work. Serve each server from one instance \
                         (if that one no longer runs, ignore this: this instance now claims the server)");
                    s.owner_warned = Some(other.clone());
                    s.owner_dirty = true;
                }
                None => s.owner_dirty = true,
            }
            self.ctx.persist(&s);
        }
        debug!(node = %spec.name, server = %server.id, name = %server.name,
            status = %server.status, efi, restored = saved.is_some(), "serving server");
        cell.wake.notify_one();
    }

    /// Publishes the inventory of a node just resolved: the server's UUID,
    /// name and flavor name (embedded from microversion 2.47, else looked
    /// up once per flavor; a flavor that cannot be read shows as empty).
    pub(super) async fn publish_inventory(
        &self,
        cell: &NodeCell,
        index: &ServerIndex<'_>,
        flavors: &mut HashMap<String, String>,
    ) {
        let id = match &cell.lock().resolution {
            Resolution::Found { id } => id.clone(),
            _ => return,
        };
        let Ok(server) = index.find(&id) else {
            return;
        };
        let flavor = match (server.flavor_name(), server.flavor_id()) {
            (Some(name), _) => name.to_string(),
            (None, Some(fid)) => match flavors.get(fid) {
                Some(name) => name.clone(),
                None => {
                    let found = {
                        let _permit = self.ctx.limit.acquire().await;
                        self.ctx.client.flavor_name(fid).await
                    };
                    let name = match found {
                        Ok(name) => name.unwrap_or_default(),
                        Err(e) => {
                            warn!(server = %server.id, flavor = %fid, error = %e, "cannot read the flavor; the FRU shows none");
                            String::new()
                        }
                    };
                    flavors.insert(fid.to_string(), name.clone());
                    name
                }
            },
            (None, None) => String::new(),
        };
        cell.inventory.send_replace(Some(ServerInventory {
            uuid: server.id.clone(),
            name: server.name.clone(),
            flavor,
            macs: server.macs(),
            secure_boot: *cell.secure_boot.lock().unwrap_or_else(|e| e.into_inner()),
        }));
    }
}
