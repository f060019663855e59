//! The Nova backend: every node is a Nova server; chassis commands become
//! Nova calls, power state comes from Nova, boot options live in the
//! server's metadata.
//!
//! Three kinds of task run in the background, started and stopped by
//! `lifecycle` (each stoppable alone, so a reload keeps unchanged nodes'):
//! - the resolver (`resolver`) connects to the cloud (retrying while
//!   Keystone or Nova is down), finds every node's server with one listing
//!   ([`server_index`]), resolves the iPXE images and restores the boot
//!   options saved in metadata ([`metadata`]);
//! - the poller (`poller`) keeps every node's view current with one
//!   `GET /servers/detail?changes-since=...` per refresh interval, however
//!   many nodes there are (and, every few minutes, one full listing, which
//!   catches what `changes-since` cannot show); it also finds servers that
//!   were deleted and re-created under the same name;
//! - one worker per node drives Nova towards what the node was asked
//!   ([`node`] for the semantics, [`plan`] for the calls, [`worker`] for
//!   the retries and time limits).
//!
//! The cloud is reached through [`compute::Compute`], which [`client`]
//! implements over HTTP; [`settings`] is what the backend is configured
//! with, [`store`] the state directory, [`trust`] the TLS trust the cloud
//! configuration asks for (its `cacert`), which the serial consoles use.
//!
//! The UDP side only ever touches each node's state under a short lock, so
//! replies never wait for the cloud. What has been acknowledged and not yet
//! carried out is written to the state directory ([`store`]) before the
//! reply leaves, and resumed at the next start.
//!
//! Each instance writes its name (host and state directory) once into the
//! metadata of the servers it serves, and warns when a listing shows
//! another instance's name there: two BMCs driving one server would undo
//! each other's work.

pub mod client;
pub mod cloud;
pub mod compute;
pub mod guid;
mod lifecycle;
pub mod media;
pub mod metadata;
pub mod node;
pub mod plan;
mod poller;
mod resolver;
pub mod serial_console;
pub mod server_index;
pub mod settings;
pub mod states;
pub mod store;
pub mod trust;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Datelike;
use novabmc_proto::{BootOptions, BootParameterWrite, ChassisControl, ChassisState};
use tokio::time::Instant;
use tracing::info;

use super::telemetry::CloudHealth;
use super::virtual_media::{MediaDevice, MediaError, MediaInsert, MediaView};
use super::{Backend, BackendError, NodeId, ServerInventory};
use client::NovaClient;
use compute::Compute;
use lifecycle::TaskStop;
use node::{NodeState, Resolution};
use worker::{NodeCell, WorkerContext};

pub use lifecycle::instance_name;
pub use server_index::{FindError, ServerIndex, find_server};
pub use settings::{NetworkBoot, NovaNode, NovaSettings, StartError};

/// The Nova backend.
#[derive(Debug)]
pub struct Nova<C = NovaClient> {
    cells: Vec<Arc<NodeCell>>,
    specs: Vec<NovaNode>,
    ctx: Arc<WorkerContext<C>>,
    settings: NovaSettings,
    /// Which node each server UUID belongs to, so applying a listing costs
    /// one lookup per server listed, not one pass over the nodes.
    by_server: Mutex<HashMap<String, NodeId>>,
    /// When a server listing last succeeded, for the health check.
    last_refresh: Mutex<Option<std::time::Instant>>,
    /// Per node, in node order: what stops its worker and what says it
    /// stopped, so a reload can stop some workers and keep the others.
    workers: Vec<TaskStop>,
    /// The same for the resolver and poller.
    control_stop: TaskStop,
}

impl<C: Compute> Nova<C> {
    /// The state directory in use.
    pub fn state_dir(&self) -> &std::path::Path {
        self.ctx.store.dir()
    }

    /// A copy of a node's state (for `check` and tests).
    pub fn node_state(&self, node: NodeId) -> Option<NodeState> {
        self.cells.get(node).map(|c| c.lock().clone())
    }

    fn cell(&self, node: NodeId) -> Result<&NodeCell, BackendError> {
        self.cells
            .get(node)
            .map(Arc::as_ref)
            .ok_or_else(|| BackendError::Unavailable(format!("no node {node}")))
    }
}

impl<C: Compute> CloudHealth for Nova<C> {
    fn last_refresh(&self) -> Option<std::time::Instant> {
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh_interval(&self) -> Duration {
        self.settings.refresh
    }
}

impl<C: Compute> Backend for Nova<C> {
    fn power_pending(&self, node: NodeId) -> bool {
        self.cell(node).is_ok_and(|c| c.lock().pending().is_some())
    }

    /// The server's Nova serial console, once the server is resolved.
    fn console(
        &self,
        node: NodeId,
    ) -> Result<Arc<dyn crate::backend::serial_console::ConsoleSource>, BackendError> {
        let s = self.cell(node)?.lock();
        match (&s.resolution, &s.server_id) {
            (Resolution::Failed(why) | Resolution::Missing(why), _) => {
                Err(BackendError::Unavailable(why.clone()))
            }
            (_, Some(id)) => Ok(Arc::new(serial_console::NovaConsole {
                ctx: self.ctx.clone(),
                server: id.clone(),
            })),
            (_, None) => Err(BackendError::NotReady(format!(
                "server {} not resolved yet",
                s.server_ref
            ))),
        }
    }

    fn chassis_status(&self, node: NodeId) -> Result<ChassisState, BackendError> {
        self.cell(node)?.lock().reported()
    }

    fn chassis_control(&self, node: NodeId, control: ChassisControl) -> Result<(), BackendError> {
        let cell = self.cell(node)?;
        let changed = {
            let mut s = cell.lock();
            let before = s.clone();
            let changed = s.accept(control, Instant::now(), worker::unix_ms())?;
            if changed {
                // Written before the console gets its answer; what cannot
                // be written is refused, and undone.
                if let Err(e) = self.ctx.record(&s) {
                    *s = before;
                    return Err(e);
                }
            }
            info!(node = %s.name, control = control.name(), changed, "chassis control");
            changed
        };
        if changed {
            cell.wake.notify_one();
        }
        Ok(())
    }

    fn boot_options(&self, node: NodeId) -> Result<BootOptions, BackendError> {
        let s = self.cell(node)?.lock();
        match (&s.resolution, &s.boot) {
            (Resolution::Failed(why) | Resolution::Missing(why), _) => {
                Err(BackendError::Unavailable(why.clone()))
            }
            (_, Some(b)) => Ok(*b),
            _ => Err(BackendError::NotReady(format!(
                "boot options of server {} not restored yet",
                s.server_ref
            ))),
        }
    }

    fn update_boot(
        &self,
        node: NodeId,
        change: &dyn Fn(&BootOptions) -> BootParameterWrite,
        mark_invalid: bool,
    ) -> Result<BootOptions, BackendError> {
        let cell = self.cell(node)?;
        let after = {
            let mut s = cell.lock();
            let s = &mut *s;
            match (&s.resolution, s.boot.as_mut()) {
                (Resolution::Failed(why) | Resolution::Missing(why), _) => {
                    return Err(BackendError::Unavailable(why.clone()));
                }
                (_, Some(b)) => {
                    let before = *b;
                    b.apply(change(b), mark_invalid);
                    let after = *b;
                    if after != before {
                        let (dirty, generation) = (s.boot_dirty, s.boot_generation);
                        s.boot_dirty = true;
                        s.boot_generation += 1;
                        if let Err(e) = self.ctx.record(s) {
                            (s.boot, s.boot_dirty, s.boot_generation) =
                                (Some(before), dirty, generation);
                            return Err(e);
                        }
                    }
                    after
                }
                // Not restored yet (the server is not resolved): kept, in
                // the state directory too, and laid over the options once
                // they are known, as a power command is carried out then.
                (_, None) => {
                    let kept = s.boot_early;
                    let early = s.boot_early.get_or_insert_with(Default::default);
                    let w = change(&early.options);
                    early.apply(w, mark_invalid);
                    let seen = early.options;
                    if let Err(e) = self.ctx.record(s) {
                        s.boot_early = kept;
                        return Err(e);
                    }
                    info!(node = %s.name, parameter = w.parameter(), "boot parameter kept until the server is resolved");
                    seen
                }
            }
        };
        cell.wake.notify_one();
        Ok(after)
    }

    fn virtual_media(&self, node: NodeId) -> Result<Vec<MediaView>, BackendError> {
        let s = self.cell(node)?.lock();
        Ok(MediaDevice::ALL
            .into_iter()
            .map(|d| {
                s.media
                    .iter()
                    .find(|m| m.device == d.id())
                    .map_or_else(|| MediaView::empty(d), |m| m.view(d))
            })
            .collect())
    }

    fn insert_media(
        &self,
        node: NodeId,
        device: MediaDevice,
        request: MediaInsert,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), MediaError>> + Send + '_>>
    {
        Box::pin(async move {
            let cell = self.cell(node)?;
            let occupied = |s: &NodeState| s.media.iter().any(|m| m.device == device.id());
            {
                let s = cell.lock();
                if let Resolution::Failed(why) | Resolution::Missing(why) = &s.resolution {
                    return Err(BackendError::Unavailable(why.clone()).into());
                }
                if occupied(&s) {
                    return Err(MediaError::Occupied(format!(
                        "{device} already holds media; eject it first"
                    )));
                }
            }
            if self.ctx.client.media_client().is_none() {
                return Err(BackendError::Unavailable(
                    "this cloud connection has no image service for virtual media".into(),
                )
                .into());
            }
            let settings = &self.ctx.media.settings;
            let url = media::source::check_url(&request.image)?;
            let probe = media::source::probe(
                &url,
                request.credentials.as_ref(),
                settings.probe_timeout,
                settings.max_size,
            )
            .await?;
            let mut s = cell.lock();
            if occupied(&s) {
                return Err(MediaError::Occupied(format!(
                    "{device} already holds media; eject it first"
                )));
            }
            let before = (s.media.clone(), s.media_generation);
            s.media_generation += 1;
            let (user, password) = match request.credentials {
                Some((u, p)) => (Some(u), Some(p)),
                None => (None, None),
            };
            let slot = media::record::Slot {
                device: device.id().to_string(),
                url: request.image.clone(),
                user,
                password,
                write_protected: request.write_protected,
                validator: probe.validator,
                phase: media::record::Phase::Loading,
                image: None,
                volume: None,
                attached: None,
                generation: s.media_generation,
            };
            s.media.push(slot);
            if let Err(e) = self.ctx.record(&s) {
                (s.media, s.media_generation) = before;
                return Err(e.into());
            }
            if device == MediaDevice::Cd {
                s.empty_tray_logged = false;
            }
            info!(node = %s.name, device = %device, url = %request.image, size = ?probe.size, "virtual media inserted");
            drop(s);
            cell.media_wake.notify_one();
            Ok(())
        })
    }

    fn eject_media(&self, node: NodeId, device: MediaDevice) -> Result<(), MediaError> {
        let cell = self.cell(node)?;
        let mut s = cell.lock();
        let Some(i) = s.media.iter().position(|m| m.device == device.id()) else {
            return Ok(());
        };
        let before = (s.media.clone(), s.media_cleanup.clone());
        let slot = s.media.remove(i);
        if slot.image.is_some() || slot.volume.is_some() {
            s.media_cleanup.push(media::record::Cleanup {
                volume: slot.volume.clone(),
                server: slot.attached.clone(),
                image: slot.image.clone(),
            });
        }
        if let Err(e) = self.ctx.record(&s) {
            (s.media, s.media_cleanup) = before;
            return Err(e.into());
        }
        info!(node = %s.name, device = %device, url = %slot.url, "virtual media ejected");
        drop(s);
        cell.media_wake.notify_one();
        cell.wake.notify_one();
        Ok(())
    }

    fn sol_settings(&self, node: NodeId) -> Option<Vec<u8>> {
        self.ctx.store.sol_settings(&self.specs.get(node)?.name)
    }

    fn save_sol_settings(&self, node: NodeId, settings: &[u8]) -> Result<(), BackendError> {
        let Some(spec) = self.specs.get(node) else {
            return Err(BackendError::Unavailable(format!("no node {node}")));
        };
        self.ctx
            .store
            .save_sol_settings(&spec.name, settings)
            .map_err(|e| BackendError::NotRecorded(e.to_string()))
    }

    fn inventory(
        &self,
        node: NodeId,
    ) -> Option<tokio::sync::watch::Receiver<Option<ServerInventory>>> {
        self.cells.get(node).map(|c| c.inventory.subscribe())
    }

    fn system_guid(&self, node: NodeId) -> Result<[u8; 16], BackendError> {
        let s = self.cell(node)?.lock();
        match (&s.resolution, s.uuid) {
            (Resolution::Found { .. }, Some(uuid)) => {
                Ok(guid::system_guid(uuid, chrono::Utc::now().year()))
            }
            (Resolution::Failed(why) | Resolution::Missing(why), _) => {
                Err(BackendError::Unavailable(why.clone()))
            }
            _ => Err(BackendError::NotReady(format!(
                "server {} not resolved yet",
                s.server_ref
            ))),
        }
    }
}
