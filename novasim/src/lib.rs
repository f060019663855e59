//! A Nova simulator: Keystone v3, Nova (compute API 2.1 to 2.96), Glance
//! v2, the part of Cinder v3 that virtual media needs and the part of
//! Neutron v2.0 that provisioning the BMC network needs, over real HTTP
//! on loopback. It is the embedded cloud of `novabmc demo` and the cloud
//! of novabmc's tests (`novabmc nova-simulator` runs it on its own).
//!
//! It answers the way a real Nova does (see [`model`] for the state
//! machine): 202 with an empty body for power actions, a server body for
//! rebuild, Nova's 404 and 409 bodies, `changes-since` including deleted
//! servers, microversion headers, token expiry; rescue is a stable-device
//! rescue when the rescue image has `hw_rescue_device`/`hw_rescue_bus`
//! (and a volume-backed server needs 2.87 for it), legacy otherwise.
//! Glance creates, patches, uploads (streamed, never kept) and imports
//! images (web-download fetches the URL itself); Cinder makes volumes from
//! images, which Nova attaches and detaches. Neutron has networks,
//! subnets, ports (allocated addresses, allowed address pairs, port
//! security), routers and tags, with quotas, missing extensions and policy
//! refusals set under `/_sim/neutron`; Nova attaches its ports to servers
//! (`os-interface`). Faults can be injected
//! (latency, 5xx, dropped connections, a storm of 409s, tokens revoked,
//! Keystone down, imports refused) and every request is recorded, through
//! a small control API under `/_sim/` that tests drive over HTTP.
//!
//! The same simulated cloud also runs in process, without HTTP
//! ([`Sim::in_process`] and [`Sim::call`], in [`local`]), on tokio's
//! clock, so that tests of the Nova backend's worker run on paused time.
//!
//! This is a development tool: it accepts one user and one project and
//! keeps everything in memory. It is the cloud side only: it never depends
//! on the daemon (the `novabmc` package), whose Nova client it serves; it
//! has its own spelling of Nova's states ([`states`]).
//!
//! # Layout
//!
//! - [`model`]: servers, the transitions Nova walks them through, and how
//!   a server is rescued;
//! - [`states`]: Nova's status, task_state, vm_state and power_state
//!   values;
//! - `http`: the router, request log, faults, tokens, error envelopes and
//!   microversions; one module per service owns its routes: `identity`
//!   (Keystone), `compute` (Nova's servers, actions with the rescue modes,
//!   flavors), `attachments` (Nova's `os-volume_attachments`), `image`
//!   (Glance: images, data upload, interoperable import), `tags`
//!   (Nova's server tags and the listing's tag filters), `volume`
//!   (Cinder volumes), [`neutron`] (Neutron's networks, subnets, ports,
//!   routers, tags and quotas, and the ports Nova attaches), `console`
//!   (serial console websockets and console logs) and `control`
//!   (`/_sim/`); `console_tls` serves the console websockets over TLS
//!   (`wss://`) on a listener of their own;
//! - `import`: Glance's web-download, carried out in the background with
//!   its URL filter;
//! - [`local`]: the in-process cloud;
//! - [`shell`]: the line-echo shell behind simulated serial consoles.

mod attachments;
mod compute;
mod console;
pub mod console_tls;
mod control;
mod http;
mod identity;
mod image;
mod import;
pub mod local;
pub mod model;
pub mod neutron;
pub mod shell;
pub mod states;
mod tags;
mod volume;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use console_tls::ConsoleTls;
pub use http::ApiError;
pub use model::Timings;
use model::{Phase, Server, iso8601, new_uuid};

/// Credentials and names the simulated Keystone accepts.
#[derive(Clone, Debug)]
pub struct Identity {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Project name.
    pub project: String,
    /// Region of the catalog entries.
    pub region: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            user: "novabmc".into(),
            password: "novabmc-secret".into(),
            project: "baremetal".into(),
            region: "RegionOne".into(),
        }
    }
}

/// Injected faults. Counters count down as requests consume them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every Nova and Glance response.
    pub latency_ms: u64,
    /// Keystone refuses to issue tokens (503).
    pub keystone_down: bool,
    /// The next N Nova/Glance requests fail with `fail_status`.
    pub fail_next: u32,
    /// Status of injected failures (500 or 503).
    pub fail_status: u16,
    /// The next N server actions get 409 Conflict.
    pub conflict_next: u32,
    /// The next N Nova/Glance requests have their connection dropped.
    pub drop_next: u32,
    /// The next N server actions are carried out, then their connection is
    /// dropped before the answer (the answer is lost, not the call).
    pub lose_answer_next: u32,
    /// Lifetime of new tokens.
    pub token_lifetime_secs: u64,
    /// `GET /servers/{id}/os-interface` is refused by policy (403), as on
    /// clouds that keep the attached interfaces to administrators.
    pub forbid_os_interface: bool,
    /// `POST /servers/{id}/os-interface` is refused by policy (403).
    pub forbid_interface_attach: bool,
    /// Every Nova, Glance and Cinder request fails with 503 while set (the
    /// API is down; Keystone still answers).
    pub nova_down: bool,
    /// The next N Nova/Glance requests are accepted and never answered.
    pub hang_next: u32,
    /// The next N Nova/Glance requests get their status and headers, then
    /// a body that never ends (a Nova hanging mid-response).
    pub stall_body_next: u32,
    /// Keystone accepts token requests and never answers them.
    pub keystone_hang: bool,
    /// Server actions are accepted (202) but the task ends in ERROR, as on
    /// a compute host that fails everything.
    pub tasks_fail: bool,
    /// `remote-consoles` is refused with this status (400 or 501, as on
    /// clouds without serial consoles); 0 serves consoles.
    pub console_refuse_status: u16,
    /// `POST /v2/images/{id}/import` is refused with this status (403 as
    /// a policy refusal, 409 as a conflicting import, 400...); 0 accepts
    /// imports.
    pub import_refuse_status: u16,
    /// `rescue` is refused with Nova's 400 ("cannot be rescued"), as a
    /// cloud does whose driver or microversion cannot rescue the server.
    pub refuse_rescue: bool,
}

/// Which service a request is for, as far as faults are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    /// Keystone.
    Identity,
    /// Nova, Glance, Cinder or Neutron.
    Cloud,
    /// The control API.
    None,
}

/// What a request gets instead of (or on top of) its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    /// This status.
    Fail(u16),
    /// The connection drops before the answer.
    Drop,
    /// The call is carried out, then the connection drops.
    LoseAnswer,
    /// The answer's body never ends.
    StallBody,
    /// No answer ever.
    Hang,
    /// 401: the token is missing, unknown or expired.
    Unauthorized,
    /// Nothing.
    None,
}

/// Where the simulator's time comes from.
#[derive(Clone, Copy, Debug)]
enum Clock {
    /// The wall clock (the HTTP simulator).
    System {
        /// When it started, for request times.
        start: std::time::Instant,
    },
    /// tokio's clock, from a wall-clock origin (the in-process cloud, so
    /// that paused time moves servers along).
    Tokio {
        /// The wall-clock time at `start`.
        origin: SystemTime,
        /// When it started.
        start: tokio::time::Instant,
    },
}

/// One request as the simulator saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Milliseconds since the simulator started.
    pub at_ms: f64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Requested compute microversion, if any.
    pub microversion: Option<String>,
    /// Body of POST and PUT requests.
    pub body: Option<serde_json::Value>,
    /// Status answered; 0 when the connection was dropped.
    pub status: u16,
}

/// A Glance image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    /// ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// `hw_firmware_type` property, if set.
    pub hw_firmware_type: Option<String>,
    /// Other properties (`architecture`, `hw_architecture`,
    /// `hw_rescue_device`, `os_glance_failed_import`...), shown as
    /// top-level keys of the image as Glance v2 does.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Glance's status: `queued` (no data yet), `saving` (an upload under
    /// way), `importing` (an import under way), `active`.
    pub status: String,
    /// `disk_format` (`raw`, `qcow2`, `iso`...), unset until given.
    pub disk_format: Option<String>,
    /// `container_format` (`bare`...), unset until given.
    pub container_format: Option<String>,
    /// Size of the data in bytes, once there is data.
    pub size: Option<u64>,
    /// MD5 of the data (Glance's legacy `checksum`).
    pub checksum: Option<String>,
    /// SHA-512 of the data (`os_hash_value`, `os_hash_algo` sha512).
    pub os_hash_value: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// `public`, `private`, `shared` or `community`.
    pub visibility: String,
    /// Minimum disk (GiB) and RAM (MiB) to boot it.
    pub min_disk: u64,
    /// Minimum RAM in MiB.
    pub min_ram: u64,
    /// Refuses deletion while set.
    pub protected: bool,
    /// Creation time, Glance's format.
    pub created_at: String,
    /// Last change, Glance's format.
    pub updated_at: String,
    /// The last import asked for (simulator record, not shown by Glance).
    pub import: Option<ImportRecord>,
}

impl Image {
    /// An active image with data, as the seeded and control-API images
    /// are: 1 MiB of raw data in a bare container.
    fn ready(
        name: String,
        hw_firmware_type: Option<String>,
        properties: BTreeMap<String, String>,
    ) -> Self {
        Image {
            id: new_uuid(),
            name,
            hw_firmware_type,
            properties,
            status: "active".into(),
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            size: Some(1_048_576),
            checksum: None,
            os_hash_value: None,
            tags: Vec::new(),
            visibility: "public".into(),
            min_disk: 0,
            min_ram: 0,
            protected: false,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            import: None,
        }
    }

    /// A property as Nova reads it from the image (`hw_firmware_type` or
    /// any other).
    pub fn property(&self, key: &str) -> Option<&str> {
        if key == "hw_firmware_type" {
            return self.hw_firmware_type.as_deref();
        }
        self.properties.get(key).map(String::as_str)
    }
}

/// An image import as the simulator carried it out, for tests to look at
/// through `GET /_sim/images` (Glance keeps this in its tasks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// Import method (`web-download`, `copy-image`).
    pub method: String,
    /// The URL downloaded (web-download).
    pub uri: Option<String>,
    /// `processing`, `success` or `failure`, as Glance's task status.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Bytes received so far.
    pub bytes: u64,
}

/// Glance's interoperable image import configuration, set through
/// `PUT /_sim/glance/import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportSettings {
    /// `enabled_import_methods`, as `GET /v2/info/import` lists them.
    pub methods: Vec<String>,
    /// Filter web-download URLs as an operator hardening Glance does:
    /// only http and https, only ports 80 and 443 (Glance's defaults), and
    /// no loopback, private, link-local or unspecified address nor
    /// `localhost`. Off by default so tests can serve files on loopback.
    pub filter_uris: bool,
    /// Largest image accepted, by upload or web-download, in bytes.
    pub max_bytes: u64,
    /// Time allowed for a web-download, connection to last byte, in ms.
    pub timeout_ms: u64,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            methods: vec![
                "glance-direct".into(),
                "web-download".into(),
                "copy-image".into(),
            ],
            filter_uris: false,
            max_bytes: 64 << 30,
            timeout_ms: 600_000,
        }
    }
}

/// A Cinder volume: root volumes of servers booted from a volume, and
/// volumes created through the Cinder API (empty or from an image).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Size in GiB.
    pub size: u32,
    /// Whether it holds a bootable image.
    pub bootable: bool,
    /// The properties of the image it was made from, as Cinder copies them
    /// (`image_id`, `image_name`, `hw_firmware_type`, `architecture`...).
    pub image_metadata: BTreeMap<String, String>,
    /// The server it is attached to.
    pub server: Option<String>,
    /// Where the server sees it.
    pub device: Option<String>,
    /// Removed with the server (root volumes of boot-from-volume servers).
    #[serde(default)]
    pub delete_on_termination: bool,
    /// Statuses still to show before the settled one (`creating`,
    /// `downloading`, `attaching`, `detaching`), each with when it ends.
    #[serde(skip)]
    pub pending: Vec<(SystemTime, String)>,
}

impl Volume {
    /// The status Cinder shows at `now`: a pending one, else `in-use` when
    /// attached, else `available`.
    pub fn status(&self, now: SystemTime) -> &str {
        match self.pending.iter().find(|(end, _)| *end > now) {
            Some((_, s)) => s,
            None if self.server.is_some() => "in-use",
            None => "available",
        }
    }
}

/// A Nova flavor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flavor {
    /// ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// RAM in MiB.
    pub ram: u32,
    /// Root disk in GiB.
    pub disk: u32,
}

/// How to create a server through the control API.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NewServer {
    /// Name (required).
    pub name: String,
    /// UUID; a random one when absent.
    pub id: Option<String>,
    /// Powered on.
    pub on: bool,
    /// Image name or ID; the first image when absent.
    pub image: Option<String>,
    /// Flavor name or ID; the first flavor when absent.
    pub flavor: Option<String>,
    /// Boot from a volume of this size instead of an image.
    pub volume_gb: Option<u32>,
    /// Metadata.
    pub metadata: HashMap<String, String>,
    /// Tags (shown from microversion 2.26).
    pub tags: Vec<String>,
    /// Number of ports (MACs); 1 when absent.
    pub ports: Option<u32>,
}

impl NewServer {
    /// A server named `name`, off, from the first image and flavor.
    pub fn named(name: &str) -> Self {
        NewServer {
            name: name.to_string(),
            ..NewServer::default()
        }
    }

    /// Powered on.
    pub fn on(mut self) -> Self {
        self.on = true;
        self
    }

    /// From image `image` (name or ID).
    pub fn image(mut self, image: &str) -> Self {
        self.image = Some(image.to_string());
        self
    }
}

/// How to create an image through the control API.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NewImage {
    /// Name (required).
    pub name: String,
    /// `hw_firmware_type`.
    pub hw_firmware_type: Option<String>,
    /// Other properties.
    pub properties: BTreeMap<String, String>,
}

pub(crate) struct Model {
    servers: Vec<Server>,
    images: Vec<Image>,
    flavors: Vec<Flavor>,
    volumes: Vec<Volume>,
    tokens: HashMap<String, SystemTime>,
    faults: Faults,
    timings: Timings,
    log: Vec<LoggedRequest>,
    mac_counter: u32,
    import: ImportSettings,
    neutron: neutron::Neutron,
}

/// The simulator's shared state.
pub struct Sim {
    model: Mutex<Model>,
    identity: Identity,
    clock: Clock,
    project_id: String,
    user_id: String,
    base_url: String,
    /// `ws://host:port` or `wss://host:port`: where the serial console
    /// URLs point.
    console_url: String,
    consoles: console::Consoles,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Sim {
    fn lock(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The base URL, e.g. `http://127.0.0.1:5000`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Where the serial console URLs point: `ws://` on the API's address,
    /// or `wss://` on the TLS proxy's.
    pub fn console_url(&self) -> &str {
        &self.console_url
    }

    /// The simulator's time.
    pub fn now(&self) -> SystemTime {
        match self.clock {
            Clock::System { .. } => SystemTime::now(),
            Clock::Tokio { origin, start } => origin + start.elapsed(),
        }
    }

    /// The simulator's time in Nova's format.
    pub fn now_iso(&self) -> String {
        iso8601(self.now())
    }

    /// A request's arrival: milliseconds since the start and since the
    /// Unix epoch.
    pub(crate) fn stamp(&self) -> (f64, u64) {
        let since_start = match self.clock {
            Clock::System { start } => start.elapsed(),
            Clock::Tokio { start, .. } => start.elapsed(),
        };
        let unix = self
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        (since_start.as_secs_f64() * 1000.0, unix)
    }

    /// Records a request.
    pub(crate) fn log(&self, entry: LoggedRequest) {
        self.lock().log.push(entry);
    }

    /// Decides what a request gets, consuming one-shot faults: the added
    /// latency and the fault. `token` is `None` for public paths, else the
    /// request's token (checked against the issued ones).
    pub(crate) fn take_fault(
        &self,
        service: Service,
        is_action: bool,
        is_token_request: bool,
        token: Option<Option<&str>>,
    ) -> (Duration, Injected) {
        let now = self.now();
        let mut m = self.lock();
        match service {
            Service::None => (Duration::ZERO, Injected::None),
            Service::Identity if is_token_request && m.faults.keystone_hang => {
                (Duration::ZERO, Injected::Hang)
            }
            Service::Identity => (Duration::ZERO, Injected::None),
            Service::Cloud => {
                let latency = Duration::from_millis(m.faults.latency_ms);
                let f = &mut m.faults;
                let injected = if f.nova_down {
                    Injected::Fail(503)
                } else if f.hang_next > 0 {
                    f.hang_next -= 1;
                    Injected::Hang
                } else if f.drop_next > 0 {
                    f.drop_next -= 1;
                    Injected::Drop
                } else if f.fail_next > 0 {
                    f.fail_next -= 1;
                    Injected::Fail(f.fail_status)
                } else if f.lose_answer_next > 0 && is_action {
                    f.lose_answer_next -= 1;
                    Injected::LoseAnswer
                } else if f.stall_body_next > 0 {
                    f.stall_body_next -= 1;
                    Injected::StallBody
                } else {
                    match token {
                        None => Injected::None,
                        Some(t) => {
                            let valid = t
                                .and_then(|t| m.tokens.get(t))
                                .is_some_and(|exp| *exp > now);
                            if valid {
                                Injected::None
                            } else {
                                Injected::Unauthorized
                            }
                        }
                    }
                };
                (latency, injected)
            }
        }
    }

    /// Issues a token valid for `lifetime`; returns it and its expiry.
    pub(crate) fn issue_token(&self, lifetime: Duration) -> (String, SystemTime) {
        let token = new_uuid().replace('-', "");
        let expires = self.now() + lifetime;
        self.lock().tokens.insert(token.clone(), expires);
        (token, expires)
    }

    /// The guest of a server halts by itself.
    pub fn halt(&self, id: &str) -> bool {
        let now = self.now();
        let mut m = self.lock();
        match m.servers.iter_mut().find(|s| s.id == id && !s.deleted) {
            Some(s) => {
                s.settle(now);
                s.halt(now);
                true
            }
            None => false,
        }
    }

    /// What a deployment does to a server's disk: the deploy ramdisk,
    /// network-booted, writes image `image` (name or ID) over the root
    /// disk, so the next disk boot runs it. Returns false for an unknown
    /// server or image.
    pub fn deploy(&self, id: &str, image: &str) -> bool {
        let mut m = self.lock();
        let Some(image) = m
            .images
            .iter()
            .find(|i| i.id == image || i.name == image)
            .map(|i| i.id.clone())
        else {
            return false;
        };
        match m.servers.iter_mut().find(|s| s.id == id && !s.deleted) {
            Some(s) => {
                s.image = image;
                true
            }
            None => false,
        }
    }

    /// Puts a server in a settled state.
    pub fn set_state(&self, id: &str, phase: Phase) -> bool {
        let now = self.now();
        let mut m = self.lock();
        match m.servers.iter_mut().find(|s| s.id == id && !s.deleted) {
            Some(s) => {
                s.set_state(now, phase);
                true
            }
            None => false,
        }
    }

    /// The Keystone URL clients authenticate against.
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.base_url)
    }

    /// Credentials accepted.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A clouds.yaml document naming this simulator as cloud `name`.
    pub fn clouds_yaml(&self, name: &str) -> String {
        let i = &self.identity;
        format!(
            "clouds:\n  {name}:\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      project_name: {}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: {}\n    interface: public\n",
            self.auth_url(),
            i.user,
            i.password,
            i.project,
            i.region
        )
    }

    /// Adds a server. With `volume_gb` it boots from a new volume of that
    /// size made from the image (the first image when none is named), as
    /// `openstack server create --boot-from-volume` does: the server shows
    /// no image, and the volume carries the image's properties.
    pub fn add_server(&self, spec: NewServer) -> Result<String, String> {
        let mut m = self.lock();
        if spec.name.is_empty() {
            return Err("name is required".into());
        }
        let source = match &spec.image {
            Some(i) => Some(
                m.images
                    .iter()
                    .find(|x| &x.id == i || &x.name == i)
                    .cloned()
                    .ok_or_else(|| format!("no image {i}"))?,
            ),
            None => m.images.first().cloned(),
        };
        let image = match (&source, spec.volume_gb) {
            (_, Some(_)) | (None, None) => String::new(),
            (Some(i), None) => i.id.clone(),
        };
        let flavor = match &spec.flavor {
            Some(f) => m
                .flavors
                .iter()
                .find(|x| &x.id == f || &x.name == f)
                .map(|x| x.id.clone())
                .ok_or_else(|| format!("no flavor {f}"))?,
            None => m.flavors.first().map(|x| x.id.clone()).unwrap_or_default(),
        };
        if let Some(why) = spec.tags.iter().find_map(|t| tags::invalid_tag(t)) {
            return Err(why);
        }
        let id = spec.id.unwrap_or_else(new_uuid);
        if m.servers.iter().any(|s| s.id == id) {
            return Err(format!("server {id} exists"));
        }
        let mut s = Server::new(self.now(), id.clone(), spec.name, flavor, image, spec.on);
        s.volume_gb = spec.volume_gb;
        if let Some(size) = spec.volume_gb {
            let mut image_metadata = BTreeMap::new();
            if let Some(i) = &source {
                image_metadata.extend(i.properties.clone());
                if let Some(fw) = &i.hw_firmware_type {
                    image_metadata.insert("hw_firmware_type".into(), fw.clone());
                }
                image_metadata.insert("image_id".into(), i.id.clone());
                image_metadata.insert("image_name".into(), i.name.clone());
            }
            let volume = Volume {
                id: new_uuid(),
                name: String::new(),
                size,
                bootable: source.is_some(),
                image_metadata,
                server: Some(id.clone()),
                device: Some("/dev/vda".into()),
                delete_on_termination: true,
                pending: Vec::new(),
            };
            s.volumes.push(volume.id.clone());
            m.volumes.push(volume);
        }
        s.metadata = spec.metadata.into_iter().collect();
        s.tags = spec.tags.into_iter().collect();
        for _ in 0..spec.ports.unwrap_or(1) {
            let mac = neutron::next_mac(&mut m);
            s.macs.push(mac);
        }
        m.servers.push(s);
        Ok(id)
    }

    /// Deletes a server (it stays visible to `changes-since` as DELETED).
    /// Its volumes are detached, and those that go with it (the root
    /// volume) deleted, as Nova does.
    pub fn delete_server(&self, id: &str) -> bool {
        let mut m = self.lock();
        match m.servers.iter_mut().find(|s| s.id == id && !s.deleted) {
            Some(s) => {
                s.deleted = true;
                s.updated = self.now();
                // Its ports are unbound (those Nova made for it deleted).
                for port in std::mem::take(&mut s.ports) {
                    neutron::release(&mut m, &port);
                }
                m.volumes
                    .retain(|v| !(v.server.as_deref() == Some(id) && v.delete_on_termination));
                for v in m
                    .volumes
                    .iter_mut()
                    .filter(|v| v.server.as_deref() == Some(id))
                {
                    v.server = None;
                    v.device = None;
                }
                true
            }
            None => false,
        }
    }

    /// Adds an image.
    pub fn add_image(&self, name: &str, hw_firmware_type: Option<&str>) -> String {
        self.add_image_with(NewImage {
            name: name.into(),
            hw_firmware_type: hw_firmware_type.map(str::to_string),
            properties: BTreeMap::new(),
        })
    }

    /// Adds an image with properties.
    pub fn add_image_with(&self, spec: NewImage) -> String {
        let image = Image::ready(spec.name, spec.hw_firmware_type, spec.properties);
        let id = image.id.clone();
        self.lock().images.push(image);
        id
    }

    /// Adds a flavor (an existing ID is refused).
    pub fn add_flavor(&self, flavor: Flavor) -> Result<(), String> {
        let mut m = self.lock();
        if flavor.id.is_empty() || m.flavors.iter().any(|f| f.id == flavor.id) {
            return Err(format!("flavor ID {:?} is empty or taken", flavor.id));
        }
        m.flavors.push(flavor);
        Ok(())
    }

    /// Replaces the injected faults (a zero token lifetime or failure
    /// status means the default: an hour, 500).
    pub fn set_faults(&self, mut faults: Faults) {
        if faults.token_lifetime_secs == 0 {
            faults.token_lifetime_secs = 3600;
        }
        if faults.fail_status == 0 {
            faults.fail_status = 500;
        }
        self.lock().faults = faults;
    }

    /// Replaces the transition timings.
    pub fn set_timings(&self, timings: Timings) {
        self.lock().timings = timings;
    }

    /// Invalidates every token issued so far.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// The request log.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Every image, as the control API shows it.
    pub fn images(&self) -> Vec<Image> {
        self.lock().images.clone()
    }

    /// Every volume, as the control API shows it.
    pub fn volumes(&self) -> Vec<Volume> {
        self.lock().volumes.clone()
    }

    /// Glance's import configuration.
    pub fn import_settings(&self) -> ImportSettings {
        self.lock().import.clone()
    }

    /// Replaces Glance's import configuration.
    pub fn set_import_settings(&self, settings: ImportSettings) {
        self.lock().import = settings;
    }

    /// Settled snapshot of every server, as the control API shows it.
    pub fn servers(&self) -> Vec<Server> {
        let now = self.now();
        let mut m = self.lock();
        m.servers.iter_mut().for_each(|s| {
            s.settle(now);
        });
        m.servers.clone()
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimServer {
    /// Shared state, for in-process control.
    pub sim: Arc<Sim>,
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Stops serving.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Default flavors and images of a fresh simulator: a bare-metal-like
/// flavor, a disk image, and the iPXE images OVB uses (UEFI and BIOS).
fn seed(m: &mut Model) {
    m.flavors.push(Flavor {
        id: "bm.large".into(),
        name: "baremetal".into(),
        vcpus: 4,
        ram: 8192,
        disk: 40,
    });
    for (name, fw) in [
        ("centos-stream-9", Some("uefi")),
        ("ipxe-boot", Some("uefi")),
        ("ipxe-boot-bios", None),
    ] {
        m.images.push(Image::ready(
            name.into(),
            fw.map(str::to_string),
            BTreeMap::new(),
        ));
    }
}

impl Sim {
    /// A simulator with the default flavors and images, on `clock`.
    fn new(identity: Identity, clock: Clock, base_url: String, console_url: String) -> Sim {
        let mut model = Model {
            servers: Vec::new(),
            images: Vec::new(),
            flavors: Vec::new(),
            volumes: Vec::new(),
            tokens: HashMap::new(),
            faults: Faults {
                token_lifetime_secs: 3600,
                fail_status: 500,
                ..Faults::default()
            },
            timings: Timings::default(),
            log: Vec::new(),
            mac_counter: 0,
            import: ImportSettings::default(),
            neutron: neutron::Neutron::seeded("2026-01-01T00:00:00Z", new_uuid()),
        };
        seed(&mut model);
        Sim {
            model: Mutex::new(model),
            identity,
            clock,
            project_id: new_uuid().replace('-', ""),
            user_id: new_uuid().replace('-', ""),
            base_url,
            console_url,
            consoles: console::Consoles::default(),
        }
    }

    /// A simulator with no HTTP server, on tokio's clock, served through
    /// [`Sim::call`] (see [`local`]).
    pub fn in_process() -> Arc<Sim> {
        Arc::new(Sim::new(
            Identity::default(),
            Clock::Tokio {
                origin: SystemTime::now(),
                start: tokio::time::Instant::now(),
            },
            "http://in-process.invalid".into(),
            "ws://in-process.invalid".into(),
        ))
    }
}

/// Starts a simulator on `listener` until `shutdown` is cancelled, its
/// serial consoles `ws://` websockets on the same listener.
pub fn start(
    listener: TcpListener,
    identity: Identity,
    shutdown: CancellationToken,
) -> std::io::Result<SimServer> {
    start_with(listener, identity, None, shutdown)
}

/// Like [`start`]; with `console_tls`, the serial consoles are `wss://`
/// websockets on that listener alone.
pub fn start_with(
    listener: TcpListener,
    identity: Identity,
    console_tls: Option<ConsoleTls>,
    shutdown: CancellationToken,
) -> std::io::Result<SimServer> {
    let addr = listener.local_addr()?;
    let console_url = match &console_tls {
        Some(tls) => format!("wss://{}", tls.local_addr()?),
        None => format!("ws://{addr}"),
    };
    let sim = Arc::new(Sim::new(
        identity,
        Clock::System {
            start: std::time::Instant::now(),
        },
        format!("http://{addr}"),
        console_url,
    ));
    let app = http::router(sim.clone(), console_tls.is_none());
    let proxy = console_tls.map(|tls| {
        (
            tls.into_listener(),
            console::serial_routes().with_state(sim.clone()),
        )
    });
    let stopping = |sim: Arc<Sim>, shutdown: CancellationToken| async move {
        shutdown.cancelled().await;
        // Open console websockets would hold the shutdown up.
        sim.consoles.stop.cancel();
    };
    let api_stop = stopping(sim.clone(), shutdown.clone());
    let proxy_stop = stopping(sim.clone(), shutdown);
    let task = tokio::spawn(async move {
        let api = async {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(api_stop)
                .await
            {
                tracing::error!(error = %e, "nova simulator stopped");
            }
        };
        let proxy = async {
            if let Some((listener, routes)) = proxy
                && let Err(e) = axum::serve(listener, routes)
                    .with_graceful_shutdown(proxy_stop)
                    .await
            {
                tracing::error!(error = %e, "serial console proxy stopped");
            }
        };
        tokio::join!(api, proxy);
    });
    tracing::info!(url = %sim.base_url, consoles = %sim.console_url, "nova simulator listening");
    Ok(SimServer { sim, addr, task })
}
