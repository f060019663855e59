//! The Nova backend: every node is a Nova server; chassis commands become
//! Nova calls, power state comes from Nova, boot options live in the
//! server's metadata.
//!
//! Three kinds of task run in the background:
//! - the resolver connects to the cloud (retrying while Keystone or Nova is
//!   down), finds every node's server with one listing, resolves the iPXE
//!   images and restores the boot options saved in metadata;
//! - the poller keeps every node's view current with one
//!   `GET /servers/detail?changes-since=...` per refresh interval, however
//!   many nodes there are;
//! - one worker per node carries out its queued power operations
//!   ([`worker`]).
//!
//! The UDP side only ever touches each node's state under a short lock, so
//! replies never wait for the cloud.

pub mod client;
pub mod cloud;
pub mod guid;
pub mod node;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Datelike;
use novabmc_proto::{BootOptions, BootParameterWrite, ChassisControl, ChassisState};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{Backend, BackendError, NodeId};
use client::{NovaClient, NovaError, ServerInfo};
use cloud::CloudSource;
use node::{NodeState, Resolution};
use worker::{BOOT_KEY, NodeCell, WorkerContext};

/// How a node boots from the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkBoot {
    /// Rebuild the server with the iPXE image (rewrites the root disk, as
    /// a PXE deploy does anyway).
    Rebuild,
    /// Rescue the server with the iPXE image; unrescue to boot the disk.
    Rescue,
    /// Set `libvirt:pxe-first` (needs OVB's Nova patch on the host cloud).
    Metadata,
}

impl NetworkBoot {
    /// Parses the configuration value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rebuild" => Some(Self::Rebuild),
            "rescue" => Some(Self::Rescue),
            "metadata" => Some(Self::Metadata),
            _ => None,
        }
    }

    /// Whether this mode needs an iPXE image.
    pub fn needs_image(self) -> bool {
        !matches!(self, Self::Metadata)
    }
}

/// Backend-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NovaSettings {
    /// Where the cloud configuration comes from.
    pub cloud: CloudSource,
    /// How often the poller lists changed servers.
    pub refresh: Duration,
    /// HTTP timeout of one Nova call.
    pub request_timeout: Duration,
    /// How long a power operation may take before the worker gives up.
    pub give_up_after: Duration,
    /// Most Nova calls in flight at once, all nodes together.
    pub max_concurrent_calls: usize,
    /// How often a worker reads its server while Nova runs a task.
    pub task_poll: Duration,
}

impl NovaSettings {
    /// Defaults around a cloud source.
    pub fn new(cloud: CloudSource) -> Self {
        NovaSettings {
            cloud,
            refresh: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
            max_concurrent_calls: 16,
            task_poll: Duration::from_millis(500),
        }
    }
}

/// One node as the Nova backend needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NovaNode {
    /// Node name.
    pub name: String,
    /// Server name or UUID.
    pub server: String,
    /// Network boot mode.
    pub network_boot: NetworkBoot,
    /// iPXE image name or ID.
    pub ipxe_image: Option<String>,
    /// EFI firmware, when not read from the server's image.
    pub efi: Option<bool>,
}

/// The Nova backend.
#[derive(Debug)]
pub struct Nova {
    cells: Vec<Arc<NodeCell>>,
    specs: Vec<NovaNode>,
    ctx: Arc<WorkerContext>,
    settings: NovaSettings,
}

impl Nova {
    /// Reads the cloud configuration (an error there stops the start) and
    /// starts the resolver, poller and workers on the current runtime.
    pub fn start(
        settings: NovaSettings,
        nodes: Vec<NovaNode>,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Nova>, JoinSet<()>), String> {
        let cloud = cloud::load(&settings.cloud)?;
        let client = Arc::new(NovaClient::new(cloud, settings.request_timeout));
        let ctx = Arc::new(WorkerContext {
            client,
            limit: Semaphore::new(settings.max_concurrent_calls.max(1)),
            give_up_after: settings.give_up_after,
            poll: settings.task_poll,
        });
        let cells: Vec<Arc<NodeCell>> = nodes
            .iter()
            .map(|n| {
                Arc::new(NodeCell {
                    state: Mutex::new(NodeState::new(n.name.clone(), n.server.clone())),
                    wake: Notify::new(),
                    mode: n.network_boot,
                    ipxe_image: Mutex::new(None),
                })
            })
            .collect();
        let nova = Arc::new(Nova {
            cells,
            specs: nodes,
            ctx: ctx.clone(),
            settings,
        });
        let mut tasks = JoinSet::new();
        for cell in &nova.cells {
            tasks.spawn(worker::run(cell.clone(), ctx.clone(), shutdown.clone()));
        }
        let n = nova.clone();
        let s = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = n.control() => {}
                () = s.cancelled() => {}
            }
        });
        Ok((nova, tasks))
    }

    /// Whether a node has no power operation queued or running.
    pub fn is_idle(&self, node: NodeId) -> bool {
        self.cells.get(node).is_none_or(|c| c.lock().idle())
    }

    fn cell(&self, node: NodeId) -> Result<&NodeCell, BackendError> {
        self.cells
            .get(node)
            .map(Arc::as_ref)
            .ok_or_else(|| BackendError::Unavailable(format!("no node {node}")))
    }

    /// Connects, resolves, then polls for ever.
    async fn control(&self) {
        let mut delay = Duration::from_secs(1);
        let servers = loop {
            match self.connect_and_list().await {
                Ok(servers) => break servers,
                Err(e) => {
                    warn!(error = %e, retry_in = ?delay, "cannot reach the cloud; nodes answer 'node busy' until it is back");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        };
        let (servers, answered) = servers;
        self.resolve_all(&servers).await;
        let mut since = next_since(answered, &servers);
        // A fixed rate: a slow listing does not stretch the interval.
        let mut tick = tokio::time::interval(self.settings.refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let listed = {
                let _permit = self.ctx.limit.acquire().await;
                self.ctx.client.list_servers_at(since.as_deref()).await
            };
            match listed {
                Ok((changed, answered)) => {
                    self.apply(&changed).await;
                    if let Some(t) = next_since(answered, &changed) {
                        since = Some(t);
                    }
                }
                Err(e) => warn!(error = %e, "cannot list servers; keeping the last known states"),
            }
        }
    }

    async fn connect_and_list(
        &self,
    ) -> Result<(Vec<ServerInfo>, Option<chrono::DateTime<chrono::Utc>>), NovaError> {
        self.ctx.client.connect().await?;
        let _permit = self.ctx.limit.acquire().await;
        self.ctx.client.list_servers_at(None).await
    }

    /// Finds every node's server in one listing.
    async fn resolve_all(&self, servers: &[ServerInfo]) {
        let mut images: HashMap<String, Result<String, String>> = HashMap::new();
        let mut firmware: HashMap<String, Option<bool>> = HashMap::new();
        for (cell, spec) in self.cells.iter().zip(&self.specs) {
            if !matches!(cell.lock().resolution, Resolution::Pending) {
                continue;
            }
            self.resolve_one(cell, spec, servers, &mut images, &mut firmware)
                .await;
        }
        let found = self
            .cells
            .iter()
            .filter(|c| matches!(c.lock().resolution, Resolution::Found { .. }))
            .count();
        info!(nodes = self.cells.len(), found, "servers resolved");
    }

    async fn resolve_one(
        &self,
        cell: &NodeCell,
        spec: &NovaNode,
        servers: &[ServerInfo],
        images: &mut HashMap<String, Result<String, String>>,
        firmware: &mut HashMap<String, Option<bool>>,
    ) {
        let server = match find_server(servers, &spec.server) {
            Ok(s) => s,
            Err(why) => {
                error!(node = %spec.name, server = %spec.server, "{why}");
                cell.lock().resolution = Resolution::Failed(why);
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
                let found = self
                    .ctx
                    .client
                    .find_image(image_ref)
                    .await
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
                        let fw = self
                            .ctx
                            .client
                            .image_firmware(image)
                            .await
                            .ok()
                            .map(|f| f.is_some_and(|f| f.eq_ignore_ascii_case("uefi")));
                        firmware.insert(image.to_string(), fw);
                    }
                    firmware.get(image).copied().flatten().unwrap_or(false)
                }
                None => false,
            },
        };
        let saved = server.metadata.get(BOOT_KEY);
        let boot = match saved.map(|v| worker::decode_boot(v)) {
            Some(Some(b)) => b,
            Some(None) => {
                warn!(node = %spec.name, "unreadable {BOOT_KEY} metadata; starting from defaults");
                BootOptions::new(efi)
            }
            None => BootOptions::new(efi),
        };
        let uuid = guid::parse_uuid(&server.id);
        {
            let mut s = cell.lock();
            s.resolution = Resolution::Found {
                id: server.id.clone(),
            };
            s.uuid = uuid;
            s.observe(server);
            s.boot = Some(boot);
        }
        info!(node = %spec.name, server = %server.id, name = %server.name,
            status = %server.status, efi, restored = saved.is_some(), "serving server");
        cell.wake.notify_one();
    }

    /// Applies a changes-since listing.
    async fn apply(&self, changed: &[ServerInfo]) {
        let mut newly_listed = Vec::new();
        for server in changed {
            let mut matched = false;
            for cell in &self.cells {
                let mut s = cell.lock();
                if let Resolution::Found { id } = &s.resolution
                    && id == &server.id
                {
                    s.observe(server);
                    matched = true;
                }
            }
            if !matched && server.status != "DELETED" {
                newly_listed.push(server.clone());
            }
        }
        // A server created after start (or a cloud that was down) now
        // resolves the nodes still waiting for it.
        if !newly_listed.is_empty() {
            let waiting: Vec<usize> = (0..self.cells.len())
                .filter(|i| match &self.cells[*i].lock().resolution {
                    Resolution::Failed(why) => why.contains("not found"),
                    _ => false,
                })
                .collect();
            for i in waiting {
                if find_server(&newly_listed, &self.specs[i].server).is_ok() {
                    self.cells[i].lock().resolution = Resolution::Pending;
                    let mut images = HashMap::new();
                    let mut fw = HashMap::new();
                    self.resolve_one(
                        &self.cells[i],
                        &self.specs[i],
                        &newly_listed,
                        &mut images,
                        &mut fw,
                    )
                    .await;
                }
            }
        }
    }
}

/// The server a node names: by UUID, else by exact name; a name several
/// live servers share is an error naming their UUIDs. `serve` and `export`
/// both resolve nodes with this, so a node means the same server to both.
pub fn find_server<'a>(
    servers: &'a [ServerInfo],
    reference: &str,
) -> Result<&'a ServerInfo, String> {
    let live = || servers.iter().filter(|s| s.status != "DELETED");
    if let Some(s) = live().find(|s| s.id == reference) {
        return Ok(s);
    }
    let named: Vec<&ServerInfo> = live().filter(|s| s.name == reference).collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("server {reference} not found")),
        many => Err(format!(
            "server name {reference} is ambiguous: {} servers have it ({}); use the UUID",
            many.len(),
            many.iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The `changes-since` of the next listing: when Nova answered this one
/// (its `Date` header), else the latest `updated` it showed, minus two
/// seconds because Nova's times have one-second resolution. Both come from
/// Nova's clock, so a skewed local clock loses nothing.
fn next_since(
    answered: Option<chrono::DateTime<chrono::Utc>>,
    servers: &[ServerInfo],
) -> Option<String> {
    let latest = || {
        servers
            .iter()
            .filter_map(|s| s.updated.as_deref())
            .filter_map(|u| chrono::DateTime::parse_from_rfc3339(u).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .max()
    };
    answered.or_else(latest).map(|t| {
        (t - chrono::Duration::seconds(2))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    })
}

impl Backend for Nova {
    fn chassis_status(&self, node: NodeId) -> Result<ChassisState, BackendError> {
        self.cell(node)?.lock().reported()
    }

    fn chassis_control(&self, node: NodeId, control: ChassisControl) -> Result<(), BackendError> {
        let cell = self.cell(node)?;
        let wake = {
            let mut s = cell.lock();
            let wake = s.accept(control)?;
            info!(node = %s.name, control = control.name(), queued = wake, "chassis control");
            wake
        };
        if wake {
            cell.wake.notify_one();
        }
        Ok(())
    }

    fn boot_options(&self, node: NodeId) -> Result<BootOptions, BackendError> {
        let s = self.cell(node)?.lock();
        match (&s.resolution, &s.boot) {
            (Resolution::Found { .. }, Some(b)) => Ok(*b),
            (Resolution::Failed(why), _) => Err(BackendError::Unavailable(why.clone())),
            _ => Err(BackendError::NotReady(format!(
                "boot options of server {} not restored yet",
                s.server_ref
            ))),
        }
    }

    fn set_boot_parameter(
        &self,
        node: NodeId,
        write: BootParameterWrite,
        mark_invalid: bool,
    ) -> Result<(), BackendError> {
        let cell = self.cell(node)?;
        {
            let mut s = cell.lock();
            let s = &mut *s;
            match (&s.resolution, s.boot.as_mut()) {
                (Resolution::Found { .. }, Some(b)) => {
                    let before = *b;
                    b.apply(write, mark_invalid);
                    if *b != before {
                        s.boot_dirty = true;
                    }
                }
                (Resolution::Failed(why), _) => return Err(BackendError::Unavailable(why.clone())),
                _ => {
                    return Err(BackendError::NotReady(format!(
                        "boot options of server {} not restored yet",
                        s.server_ref
                    )));
                }
            }
        }
        cell.wake.notify_one();
        Ok(())
    }

    fn system_guid(&self, node: NodeId) -> Result<[u8; 16], BackendError> {
        let s = self.cell(node)?.lock();
        match (&s.resolution, s.uuid) {
            (Resolution::Found { .. }, Some(uuid)) => {
                Ok(guid::system_guid(uuid, chrono::Utc::now().year()))
            }
            (Resolution::Failed(why), _) => Err(BackendError::Unavailable(why.clone())),
            _ => Err(BackendError::NotReady(format!(
                "server {} not resolved yet",
                s.server_ref
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, name: &str, status: &str, updated: &str) -> ServerInfo {
        ServerInfo {
            id: id.into(),
            name: name.into(),
            status: status.into(),
            task_state: None,
            vm_state: None,
            power_state: None,
            metadata: Default::default(),
            image: serde_json::Value::Null,
            updated: Some(updated.into()),
        }
    }

    #[test]
    fn finds_by_uuid_or_unique_name() {
        let list = [
            s("u1", "a", "ACTIVE", "2026-01-01T00:00:00Z"),
            s("u2", "b", "ACTIVE", "2026-01-01T00:00:00Z"),
            s("u3", "b", "SHUTOFF", "2026-01-01T00:00:00Z"),
            s("u4", "c", "DELETED", "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(find_server(&list, "u2").map(|s| s.id.as_str()), Ok("u2"));
        assert_eq!(find_server(&list, "a").map(|s| s.id.as_str()), Ok("u1"));
        assert!(
            find_server(&list, "b")
                .expect_err("ambiguous")
                .contains("ambiguous")
        );
        assert!(
            find_server(&list, "c")
                .expect_err("deleted")
                .contains("not found")
        );
    }

    #[test]
    fn changes_since_uses_novas_clock() {
        let list = [
            s("u1", "a", "ACTIVE", "2026-01-01T00:00:10Z"),
            s("u2", "b", "ACTIVE", "2026-01-01T00:01:00Z"),
        ];
        assert_eq!(
            next_since(None, &list).as_deref(),
            Some("2026-01-01T00:00:58Z")
        );
        assert_eq!(next_since(None, &[]), None);
        let date = chrono::DateTime::parse_from_rfc2822("Thu, 01 Jan 2026 00:05:00 GMT")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            next_since(Some(date), &list).as_deref(),
            Some("2026-01-01T00:04:58Z")
        );
    }
}
