//! The Nova, Glance and Cinder calls novabmc makes, on an `osauth`
//! session: the backend's, and the few reads `novabmc export` adds (a
//! server with its flavor, its interfaces, image properties, volumes).
//!
//! The `openstack` crate covers image lookup; everything it lacks or gets
//! wrong for us (`changes-since`, rebuild, rescue, metadata writes, the
//! crash dump that needs microversion 2.17, flavors embedded in servers,
//! Cinder) is a raw request on the same session. Responses are read into
//! small structures holding only what the backend uses, so unknown statuses
//! or new fields never break parsing.
//!
//! Nova's answers are typed here, once: a 409 says whether the server is
//! busy with a task (retry after it) or in the wrong state for the call
//! (re-read it and plan again), from the "while it is in task_state X" /
//! "vm_state X" that Nova puts in every such message; callers decide on
//! [`NovaErrorKind`], never on message text.
//!
//! Every call is bounded: authentication, token renewal, catalog and
//! version discovery happen inside the call that needs them, and the whole
//! call, body included, must finish within the request timeout, so a
//! Keystone or Nova that accepts the connection and never answers costs one
//! timeout, not a stuck task.
//!
//! A session whose token Keystone no longer accepts (revoked, or expired
//! earlier than announced) answers 401; osauth does not re-authenticate on
//! its own then, so the client drops the session and builds a new one from
//! the cloud configuration, once per call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use osauth::services::{COMPUTE, IMAGE, ServiceType};
use osauth::{ApiVersion, CloudConfig, ErrorKind, ServiceRequestBuilder, Session};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::states::{PowerState, Status, TaskState, VmState};
use crate::backend::telemetry::{CallRecorder, CloudCall, NoRecorder};

/// How a call failed, as far as the caller's next move is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NovaErrorKind {
    /// 409 while the server runs a task: retry once the task is over.
    Busy(TaskState),
    /// 409 because the call does not apply to the server's vm_state
    /// (start of an active server, stop of a rescued one): read the server
    /// again and plan from what it really is.
    WrongState(VmState),
    /// Any other 409 (a locked server, say): retry later.
    Conflict,
    /// 404: the server (or image) does not exist.
    NotFound,
    /// Keystone refused the credentials.
    Auth,
    /// No complete answer within the request timeout.
    Timeout,
    /// 5xx, refused or dropped connections, unreadable answers: retry.
    Transient,
    /// The request itself was wrong; retrying will not help.
    Permanent,
    /// clouds.yaml or the environment is wrong.
    Config,
}

impl NovaErrorKind {
    /// A stable name, for the metrics' `status` label.
    pub fn name(&self) -> &'static str {
        match self {
            NovaErrorKind::Busy(_) => "busy",
            NovaErrorKind::WrongState(_) => "wrong_state",
            NovaErrorKind::Conflict => "conflict",
            NovaErrorKind::NotFound => "not_found",
            NovaErrorKind::Auth => "auth",
            NovaErrorKind::Timeout => "timeout",
            NovaErrorKind::Transient => "transient",
            NovaErrorKind::Permanent => "permanent",
            NovaErrorKind::Config => "config",
        }
    }
}

/// A failed call, with Nova's own message.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct NovaError {
    /// For retry decisions.
    pub kind: NovaErrorKind,
    /// Nova's message, or the transport error, naming the call.
    pub message: String,
}

impl NovaError {
    /// Whether waiting and retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            NovaErrorKind::Busy(_)
                | NovaErrorKind::Conflict
                | NovaErrorKind::Timeout
                | NovaErrorKind::Transient
                | NovaErrorKind::Auth
        )
    }

    /// The error of a call that got no complete answer in time.
    pub fn timeout(call: &str, after: Duration) -> Self {
        NovaError {
            kind: NovaErrorKind::Timeout,
            message: format!("{call}: no answer within {after:?}"),
        }
    }

    /// Types a 409 from Nova's message: "Cannot 'stop' instance X while it
    /// is in task_state rebooting_hard" or "... in vm_state stopped".
    pub fn conflict(message: String) -> Self {
        let state = message
            .rfind("while it is in ")
            .map(|i| &message[i + "while it is in ".len()..]);
        let word = |s: &str| {
            s.split(|c: char| c.is_whitespace() || c == '.' || c == '"')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let kind = match state {
            Some(s) if s.starts_with("task_state ") => {
                NovaErrorKind::Busy(TaskState::parse(&word(&s["task_state ".len()..])))
            }
            Some(s) if s.starts_with("vm_state ") => {
                NovaErrorKind::WrongState(VmState::parse(&word(&s["vm_state ".len()..])))
            }
            _ => NovaErrorKind::Conflict,
        };
        NovaError { kind, message }
    }

    /// Prefixes the message with the call that failed.
    fn during(mut self, call: &str) -> Self {
        self.message = format!("{call}: {}", self.message);
        self
    }
}

impl From<osauth::Error> for NovaError {
    fn from(e: osauth::Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::Conflict => return NovaError::conflict(e.to_string()),
            ErrorKind::ResourceNotFound => NovaErrorKind::NotFound,
            ErrorKind::AuthenticationFailed | ErrorKind::AccessDenied => NovaErrorKind::Auth,
            ErrorKind::InvalidConfig => NovaErrorKind::Config,
            ErrorKind::OperationTimedOut => NovaErrorKind::Timeout,
            ErrorKind::InvalidInput
            | ErrorKind::IncompatibleApiVersion
            | ErrorKind::TooManyItems => NovaErrorKind::Permanent,
            _ => NovaErrorKind::Transient,
        };
        NovaError {
            kind,
            message: e.to_string(),
        }
    }
}

/// Nova shows "no task" as null; some versions and proxies send "".
fn non_empty<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<Option<T>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()).map(T::from))
}

impl From<String> for TaskState {
    fn from(s: String) -> Self {
        TaskState::parse(&s)
    }
}

impl From<String> for VmState {
    fn from(s: String) -> Self {
        VmState::parse(&s)
    }
}

/// What the backend reads from a server body.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// API status.
    pub status: Status,
    /// Task in progress, if any.
    #[serde(
        rename = "OS-EXT-STS:task_state",
        default,
        deserialize_with = "non_empty"
    )]
    pub task_state: Option<TaskState>,
    /// vm_state.
    #[serde(
        rename = "OS-EXT-STS:vm_state",
        default,
        deserialize_with = "non_empty"
    )]
    pub vm_state: Option<VmState>,
    /// power_state.
    #[serde(rename = "OS-EXT-STS:power_state", default)]
    pub power_state: Option<PowerState>,
    /// Metadata.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    /// The root disk's image ID: Nova sends `{"id": ..., "links": ...}`,
    /// or `""` for a server booted from a volume. Only the ID is kept, as a
    /// listing holds thousands of these.
    #[serde(default, deserialize_with = "image_ref")]
    pub image: Option<String>,
    /// Last change.
    #[serde(default)]
    pub updated: Option<String>,
    /// `{"id": ...}` below microversion 2.47; from 2.47 the flavor itself,
    /// with its `original_name`.
    #[serde(default)]
    pub flavor: Value,
}

impl ServerInfo {
    /// The root disk's image ID, if booted from an image.
    pub fn image_id(&self) -> Option<&str> {
        self.image.as_deref()
    }

    /// The flavor's name, when the server embeds its flavor (2.47 on).
    pub fn flavor_name(&self) -> Option<&str> {
        self.flavor.get("original_name").and_then(Value::as_str)
    }

    /// The flavor's ID, when the server refers to its flavor (below 2.47).
    pub fn flavor_id(&self) -> Option<&str> {
        self.flavor.get("id").and_then(Value::as_str)
    }
}

/// The `id` of Nova's `image` field, or nothing for `""`.
fn image_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Image {
        Ref { id: String },
        Other(serde::de::IgnoredAny),
    }
    Ok(match Image::deserialize(d)? {
        Image::Ref { id } if !id.is_empty() => Some(id),
        _ => None,
    })
}

/// A server action (`POST /servers/{id}/action`) the backend makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAction {
    /// `os-start`.
    Start,
    /// `os-stop` (graceful; Nova has no hard power-off).
    Stop,
    /// `reboot` of type HARD (it also starts a stopped server).
    HardReboot,
    /// `rebuild` with an image.
    Rebuild {
        /// Image ID.
        image: String,
    },
    /// `rescue` with an image.
    Rescue {
        /// Image ID.
        image: String,
    },
    /// `unrescue`.
    Unrescue,
    /// `trigger_crash_dump` (an NMI), microversion 2.17.
    CrashDump,
}

impl ServerAction {
    /// The action's key in the request body, as Nova names it.
    pub fn name(&self) -> &'static str {
        match self {
            ServerAction::Start => "os-start",
            ServerAction::Stop => "os-stop",
            ServerAction::HardReboot => "reboot",
            ServerAction::Rebuild { .. } => "rebuild",
            ServerAction::Rescue { .. } => "rescue",
            ServerAction::Unrescue => "unrescue",
            ServerAction::CrashDump => "trigger_crash_dump",
        }
    }

    /// The request body.
    pub fn body(&self) -> Value {
        match self {
            ServerAction::HardReboot => json!({"reboot": {"type": "HARD"}}),
            ServerAction::Rebuild { image } => json!({"rebuild": {"imageRef": image}}),
            ServerAction::Rescue { image } => json!({"rescue": {"rescue_image_ref": image}}),
            other => json!({ other.name(): null }),
        }
    }

    /// The microversion the action needs, if above 2.1.
    pub fn microversion(&self) -> Option<ApiVersion> {
        match self {
            ServerAction::CrashDump => Some(ApiVersion(2, 17)),
            _ => None,
        }
    }

    /// The task_states Nova shows once it has accepted this call: after a
    /// lost answer, finding one means the call went through and must not be
    /// sent again (a second hard reboot or rebuild would not be harmless).
    pub fn started_tasks(&self) -> &'static [TaskState] {
        use TaskState::*;
        match self {
            ServerAction::Start => &[PoweringOn],
            ServerAction::Stop => &[PoweringOff],
            ServerAction::HardReboot => &[RebootingHard, RebootPendingHard, RebootStartedHard],
            ServerAction::Rebuild { .. } => {
                &[Rebuilding, RebuildBlockDeviceMapping, RebuildSpawning]
            }
            ServerAction::Rescue { .. } => &[Rescuing],
            ServerAction::Unrescue => &[Unrescuing],
            ServerAction::CrashDump => &[],
        }
    }
}

/// A page-joined server listing, with the time Nova answered it (its
/// `Date` header): the next `changes-since` must come from Nova's clock.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The servers.
    pub servers: Vec<ServerInfo>,
    /// When the API server answered the first page.
    pub answered: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize)]
struct ServersPage {
    servers: Vec<ServerInfo>,
    #[serde(default)]
    servers_links: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    rel: String,
    href: String,
}

#[derive(Deserialize)]
struct ServerRoot {
    server: ServerInfo,
}

#[derive(Deserialize)]
struct FlavorRoot {
    flavor: FlavorName,
}

#[derive(Deserialize)]
struct FlavorName {
    name: String,
}

/// The microversion that embeds the flavor (vcpus, ram, disk) in a server,
/// so the export needs no flavor call (which a deleted or private flavor
/// would fail).
const FLAVOR_EMBEDDED: ApiVersion = ApiVersion(2, 47);

/// The compute microversions above 2.1 novabmc asks for, and what for.
pub const MICROVERSIONS: [(ApiVersion, &str); 2] = [
    (ApiVersion(2, 17), "chassis power diag (trigger_crash_dump)"),
    (FLAVOR_EMBEDDED, "export (flavor embedded in the server)"),
];

/// One service of the catalog, as the session resolved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The service type (`compute`, `image`).
    pub service: &'static str,
    /// The endpoint calls go to.
    pub endpoint: String,
    /// The lowest and highest microversions it supports, if it has them.
    pub versions: Option<(ApiVersion, ApiVersion)>,
}

/// A server as `novabmc export` needs it (read at microversion 2.47).
#[derive(Clone, Debug, Deserialize)]
pub struct ServerDetail {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// The embedded flavor.
    pub flavor: FlavorInfo,
    /// `{"id": ...}`, or `""` for a server booted from a volume.
    #[serde(default)]
    pub image: Value,
    /// Attached volumes (for a server booted from a volume, its root disk
    /// is one of them).
    #[serde(rename = "os-extended-volumes:volumes_attached", default)]
    pub volumes_attached: Vec<AttachedVolume>,
    /// The root disk's device (`/dev/vda`), shown to administrators.
    #[serde(rename = "OS-EXT-SRV-ATTR:root_device_name", default)]
    pub root_device_name: Option<String>,
    /// Addresses per network, each with its port's MAC.
    #[serde(default)]
    pub addresses: HashMap<String, Vec<AddressInfo>>,
}

impl ServerDetail {
    /// The root disk's image ID, if booted from an image.
    pub fn image_id(&self) -> Option<&str> {
        self.image
            .get("id")
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty())
    }

    /// The MACs of `addresses`, in network name order and without
    /// repeats (a port with two addresses shows twice).
    pub fn address_macs(&self) -> Vec<String> {
        let mut networks: Vec<_> = self.addresses.iter().collect();
        networks.sort_by(|a, b| a.0.cmp(b.0));
        let mut macs: Vec<String> = Vec::new();
        for (_, list) in networks {
            for a in list {
                if let Some(mac) = &a.mac
                    && !macs.contains(mac)
                {
                    macs.push(mac.clone());
                }
            }
        }
        macs
    }
}

/// The flavor as embedded in a server from microversion 2.47.
#[derive(Clone, Debug, Deserialize)]
pub struct FlavorInfo {
    /// vCPUs.
    pub vcpus: u32,
    /// RAM in MiB.
    pub ram: u64,
    /// Root disk in GiB (0 for flavors meant to boot from volume).
    pub disk: u64,
    /// The flavor's name when the server was created.
    #[serde(default)]
    pub original_name: Option<String>,
}

/// One entry of `os-extended-volumes:volumes_attached`.
#[derive(Clone, Debug, Deserialize)]
pub struct AttachedVolume {
    /// Volume ID.
    pub id: String,
}

/// One address of a server.
#[derive(Clone, Debug, Deserialize)]
pub struct AddressInfo {
    /// The port's MAC.
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr", default)]
    pub mac: Option<String>,
}

#[derive(Deserialize)]
struct ServerDetailRoot {
    server: ServerDetail,
}

#[derive(Deserialize)]
struct InterfaceList {
    #[serde(rename = "interfaceAttachments")]
    interfaces: Vec<Interface>,
}

#[derive(Deserialize)]
struct Interface {
    mac_addr: String,
}

/// A Cinder volume as `novabmc export` needs it.
#[derive(Clone, Debug, Deserialize)]
pub struct VolumeInfo {
    /// ID.
    pub id: String,
    /// Size in GiB.
    pub size: u64,
    /// `"true"` or `"false"` (Cinder sends a string).
    #[serde(default)]
    pub bootable: Value,
    /// The properties of the image the volume was made from.
    #[serde(default)]
    pub volume_image_metadata: HashMap<String, Value>,
    /// Where it is attached.
    #[serde(default)]
    pub attachments: Vec<VolumeAttachment>,
}

impl VolumeInfo {
    /// Whether Cinder marks the volume bootable.
    pub fn is_bootable(&self) -> bool {
        match &self.bootable {
            Value::Bool(b) => *b,
            Value::String(s) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }
}

/// One attachment of a volume.
#[derive(Clone, Debug, Deserialize)]
pub struct VolumeAttachment {
    /// The server.
    #[serde(default)]
    pub server_id: Option<String>,
    /// The device the server sees.
    #[serde(default)]
    pub device: Option<String>,
}

#[derive(Deserialize)]
struct VolumeRoot {
    volume: VolumeInfo,
}

/// Cinder v3 under one catalog name, without version discovery: the
/// catalog URL is the API root as it is. Discovery would move to the
/// unversioned document's link, which drops the project ID that most
/// catalogs put in the URL and that Cinder before 3.67 requires.
#[derive(Clone, Copy, Debug)]
struct Volumes(&'static str);

impl ServiceType for Volumes {
    fn catalog_type(&self) -> &'static str {
        self.0
    }

    fn version_discovery_supported(&self) -> bool {
        false
    }
}

/// Cinder's catalog names, newest first (`volumev3` is what older
/// deployments register).
const VOLUME_SERVICES: [&str; 2] = ["block-storage", "volumev3"];

/// An image as the backend needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// ID.
    pub id: String,
    /// Name.
    pub name: String,
}

/// A Nova (and Glance) client that rebuilds its session when Keystone
/// stops accepting the token, and bounds every call.
pub struct NovaClient {
    cloud: CloudConfig,
    /// The Keystone URL, for messages.
    auth_url: String,
    session: RwLock<Option<Session>>,
    timeout: Duration,
    /// Where each call is reported (the metrics, in the daemon).
    recorder: Arc<dyn CallRecorder>,
}

impl std::fmt::Debug for NovaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NovaClient")
            .field("auth_url", &self.auth_url)
            .finish_non_exhaustive()
    }
}

/// The `auth_url` of a cloud configuration, for messages (the type keeps
/// its fields private but serializes them).
fn auth_url_of(cloud: &CloudConfig) -> String {
    serde_json::to_value(cloud)
        .ok()
        .and_then(|v| {
            v.pointer("/auth/auth_url")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "the cloud's identity service".into())
}

impl NovaClient {
    /// A client for `cloud` whose every call must finish within `timeout`;
    /// nothing is sent until the first call.
    pub fn new(cloud: CloudConfig, timeout: Duration) -> Self {
        NovaClient {
            auth_url: auth_url_of(&cloud),
            cloud,
            session: RwLock::new(None),
            timeout,
            recorder: Arc::new(NoRecorder),
        }
    }

    /// The same client, reporting each call to `recorder`.
    pub fn recording(mut self, recorder: Arc<dyn CallRecorder>) -> Self {
        self.recorder = recorder;
        self
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `fut` (one whole call: authentication, discovery, request and
    /// body) within the timeout; `call` names it in the error.
    /// `op` is the call's service and fixed operation name, for the
    /// metrics (`call` holds IDs, which would make a series per server).
    async fn bounded<T>(
        &self,
        op: (&'static str, &'static str),
        call: &str,
        fut: impl Future<Output = Result<T, NovaError>>,
    ) -> Result<T, NovaError> {
        let started = std::time::Instant::now();
        let r = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| e.during(call)),
            Err(_) => Err(NovaError::timeout(call, self.timeout)),
        };
        let status = match &r {
            Ok(_) => "ok",
            Err(e) => e.kind.name(),
        };
        self.recorder.record(CloudCall {
            service: op.0,
            operation: op.1,
            status,
            took: started.elapsed(),
        });
        r
    }

    /// The current session, authenticating if there is none.
    async fn session(&self) -> Result<Session, NovaError> {
        if let Some(s) = self.session.read().await.as_ref() {
            return Ok(s.clone());
        }
        let mut slot = self.session.write().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let started = std::time::Instant::now();
        let s = self.cloud.clone().create_session().await.map_err(|e| {
            NovaError::from(e).during(&format!("authentication at {}", self.auth_url))
        });
        let status = s.as_ref().map_or_else(|e| e.kind.name(), |_| "ok");
        self.recorder.record(CloudCall {
            service: "identity",
            operation: "authenticate",
            status,
            took: started.elapsed(),
        });
        let s = s?;
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Authenticates now (used at start-up to report problems early).
    pub async fn connect(&self) -> Result<(), NovaError> {
        let call = format!("authentication at {}", self.auth_url);
        match tokio::time::timeout(self.timeout, self.session()).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(NovaError::timeout(&call, self.timeout)),
        }
    }

    async fn drop_session(&self) {
        *self.session.write().await = None;
    }

    /// Sends a request built by `build`, renewing the session once on 401.
    /// No per-request timeout is set here: the caller's [`Self::bounded`]
    /// covers the whole call, body included, and names it when it fires.
    async fn send<S: ServiceType + Send + Clone>(
        &self,
        build: impl Fn(&Session) -> ServiceRequestBuilder<S>,
    ) -> Result<reqwest::Response, NovaError> {
        let mut renewed = false;
        loop {
            let s = self.session().await?;
            match build(&s).send().await {
                Ok(r) => return Ok(r),
                Err(e) if e.kind() == ErrorKind::AuthenticationFailed && !renewed => {
                    tracing::info!("token refused by the cloud; authenticating again");
                    self.drop_session().await;
                    renewed = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Servers with details, following pagination; with `changes_since`,
    /// only those changed since then (deleted ones included); with `name`,
    /// those whose name matches it exactly.
    pub async fn list_servers(
        &self,
        changes_since: Option<&str>,
        name: Option<&str>,
    ) -> Result<Listing, NovaError> {
        let call = match (changes_since, name) {
            (Some(t), _) => format!("GET servers/detail?changes-since={t}"),
            (None, Some(n)) => format!("GET servers/detail?name={n}"),
            (None, None) => "GET servers/detail".to_string(),
        };
        self.bounded(("compute", "list_servers"), &call, async {
            let mut listing = Listing::default();
            let mut marker: Option<String> = None;
            loop {
                let mut query: Vec<(&str, String)> = Vec::new();
                if let Some(t) = changes_since {
                    query.push(("changes-since", t.to_string()));
                }
                if let Some(n) = name {
                    // Nova's name filter is a regular expression.
                    query.push(("name", format!("^{}$", regex_escape(n))));
                }
                if let Some(m) = &marker {
                    query.push(("marker", m.clone()));
                }
                let response = self
                    .send(|s| s.get(COMPUTE, &["servers", "detail"]).query(&query))
                    .await?;
                if listing.answered.is_none() {
                    listing.answered = response
                        .headers()
                        .get("date")
                        .and_then(|d| d.to_str().ok())
                        .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
                        .map(|d| d.with_timezone(&chrono::Utc));
                }
                let page: ServersPage = json_of(response).await?;
                let next = page
                    .servers_links
                    .iter()
                    .find(|l| l.rel == "next")
                    .and_then(|l| marker_of(&l.href));
                listing.servers.extend(page.servers);
                match next {
                    Some(m) if Some(&m) != marker.as_ref() => marker = Some(m),
                    _ => break,
                }
            }
            if let Some(n) = name {
                listing.servers.retain(|s| s.name == n);
            }
            Ok(listing)
        })
        .await
    }

    /// One server.
    pub async fn get_server(&self, id: &str) -> Result<ServerInfo, NovaError> {
        self.bounded(
            ("compute", "get_server"),
            &format!("GET servers/{id}"),
            async {
                let root: ServerRoot =
                    json_of(self.send(|s| s.get(COMPUTE, &["servers", id])).await?).await?;
                Ok(root.server)
            },
        )
        .await
    }

    /// A flavor's name (`GET /flavors/{id}`), for servers listed below
    /// microversion 2.47.
    pub async fn flavor_name(&self, id: &str) -> Result<String, NovaError> {
        self.bounded(
            ("compute", "get_flavor"),
            &format!("GET flavors/{id}"),
            async {
                let root: FlavorRoot =
                    json_of(self.send(|s| s.get(COMPUTE, &["flavors", id])).await?).await?;
                Ok(root.flavor.name)
            },
        )
        .await
    }

    /// `POST /servers/{id}/action`.
    pub async fn act(&self, id: &str, action: &ServerAction) -> Result<(), NovaError> {
        let body = action.body();
        let version = action.microversion();
        self.bounded(
            ("compute", action.name()),
            &format!("POST servers/{id}/action ({})", action.name()),
            async {
                self.send(|s| {
                    let b = s.post(COMPUTE, &["servers", id, "action"]).json(&body);
                    match version {
                        Some(v) => b.api_version(v),
                        None => b,
                    }
                })
                .await
                .map(|_| ())
            },
        )
        .await
    }

    /// `POST /servers/{id}/remote-consoles` for a serial console
    /// (microversion 2.6, the first to have it): the websocket URL, valid
    /// for one connection.
    pub async fn serial_console(&self, id: &str) -> Result<String, NovaError> {
        let body = json!({"remote_console": {"protocol": "serial", "type": "serial"}});
        self.bounded(
            ("compute", "remote_console"),
            &format!("POST servers/{id}/remote-consoles"),
            async {
                let response = self
                    .send(|s| {
                        s.post(COMPUTE, &["servers", id, "remote-consoles"])
                            .json(&body)
                            .api_version(ApiVersion(2, 6))
                    })
                    .await?;
                let root: RemoteConsoleRoot = json_of(response).await?;
                Ok(root.remote_console.url)
            },
        )
        .await
    }

    /// The last `length` lines of a server's console log
    /// (`os-getConsoleOutput`).
    pub async fn console_output(&self, id: &str, length: u32) -> Result<String, NovaError> {
        let body = json!({"os-getConsoleOutput": {"length": length}});
        self.bounded(
            ("compute", "os-getConsoleOutput"),
            &format!("POST servers/{id}/action (os-getConsoleOutput)"),
            async {
                let response = self
                    .send(|s| s.post(COMPUTE, &["servers", id, "action"]).json(&body))
                    .await?;
                let out: ConsoleOutput = json_of(response).await?;
                Ok(out.output)
            },
        )
        .await
    }

    /// Sets one metadata key.
    pub async fn set_metadata(&self, id: &str, key: &str, value: &str) -> Result<(), NovaError> {
        let body = json!({ "meta": { key: value } });
        self.bounded(
            ("compute", "set_metadata"),
            &format!("PUT servers/{id}/metadata/{key}"),
            async {
                self.send(|s| {
                    s.put(COMPUTE, &["servers", id, "metadata", key])
                        .json(&body)
                })
                .await
                .map(|_| ())
            },
        )
        .await
    }

    /// Removes one metadata key; a missing key is not an error.
    pub async fn delete_metadata(&self, id: &str, key: &str) -> Result<(), NovaError> {
        self.bounded(
            ("compute", "delete_metadata"),
            &format!("DELETE servers/{id}/metadata/{key}"),
            async {
                match self
                    .send(|s| s.delete(COMPUTE, &["servers", id, "metadata", key]))
                    .await
                {
                    Err(e) if e.kind == NovaErrorKind::NotFound => Ok(()),
                    r => r.map(|_| ()),
                }
            },
        )
        .await
    }

    /// Finds an image by ID or exact name through Glance.
    pub async fn find_image(&self, id_or_name: &str) -> Result<ImageInfo, NovaError> {
        self.bounded(
            ("image", "find_image"),
            &format!("image {id_or_name}"),
            async {
                let mut renewed = false;
                loop {
                    let s = self.session().await?;
                    let cloud = openstack::Cloud::from(s);
                    match cloud.get_image(id_or_name).await {
                        Ok(image) => {
                            return Ok(ImageInfo {
                                id: image.id().clone(),
                                name: image.name().clone(),
                            });
                        }
                        Err(e) if e.kind() == ErrorKind::AuthenticationFailed && !renewed => {
                            self.drop_session().await;
                            renewed = true;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            },
        )
        .await
    }

    /// An image's `hw_firmware_type` property (read raw: the `openstack`
    /// crate does not expose image properties).
    pub async fn image_firmware(&self, image_id: &str) -> Result<Option<String>, NovaError> {
        let v = self.image(image_id).await?;
        Ok(v.get("hw_firmware_type")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// An image as Glance v2 shows it: core fields and properties as
    /// top-level keys.
    pub async fn image(&self, image_id: &str) -> Result<Value, NovaError> {
        self.bounded(
            ("image", "get_image"),
            &format!("GET images/{image_id}"),
            async { json_of(self.send(|s| s.get(IMAGE, &["images", image_id])).await?).await },
        )
        .await
    }

    /// The compute and image endpoints the calls use, and their
    /// microversions (for `novabmc check`).
    pub async fn catalog(&self) -> Result<Vec<CatalogEntry>, NovaError> {
        self.bounded(
            ("compute", "discovery"),
            "service catalog and version discovery",
            async {
                let s = self.session().await?;
                let root: [&str; 0] = [];
                let compute = CatalogEntry {
                    service: "compute",
                    endpoint: s.get_endpoint(COMPUTE, root).await?.to_string(),
                    versions: s.get_api_versions(COMPUTE).await?,
                };
                let image = CatalogEntry {
                    service: "image",
                    endpoint: s.get_endpoint(IMAGE, root).await?.to_string(),
                    versions: s.get_api_versions(IMAGE).await?,
                };
                Ok(vec![compute, image])
            },
        )
        .await
    }

    /// One server with its flavor embedded (microversion 2.47).
    pub async fn get_server_detail(&self, id: &str) -> Result<ServerDetail, NovaError> {
        self.bounded(
            ("compute", "get_server_detail"),
            &format!("GET servers/{id} (2.47)"),
            async {
                let root: ServerDetailRoot = json_of(
                    self.send(|s| {
                        s.get(COMPUTE, &["servers", id])
                            .api_version(FLAVOR_EMBEDDED)
                    })
                    .await?,
                )
                .await?;
                Ok(root.server)
            },
        )
        .await
    }

    /// The MACs of a server's ports, in Nova's order
    /// (`GET /servers/{id}/os-interface`).
    pub async fn interface_macs(&self, id: &str) -> Result<Vec<String>, NovaError> {
        self.bounded(
            ("compute", "list_interfaces"),
            &format!("GET servers/{id}/os-interface"),
            async {
                let list: InterfaceList = json_of(
                    self.send(|s| s.get(COMPUTE, &["servers", id, "os-interface"]))
                        .await?,
                )
                .await?;
                Ok(list.interfaces.into_iter().map(|i| i.mac_addr).collect())
            },
        )
        .await
    }

    /// One Cinder volume, from whichever of Cinder's catalog names the
    /// cloud registers.
    pub async fn volume(&self, id: &str) -> Result<VolumeInfo, NovaError> {
        self.bounded(
            ("volume", "get_volume"),
            &format!("GET volumes/{id}"),
            async {
                let service = self.volume_service().await?;
                let root: VolumeRoot =
                    json_of(self.send(|s| s.get(service, &["volumes", id])).await?).await?;
                Ok(root.volume)
            },
        )
        .await
    }

    /// The first Cinder catalog entry the session knows.
    async fn volume_service(&self) -> Result<Volumes, NovaError> {
        let session = self.session().await?;
        for name in VOLUME_SERVICES {
            match session.get_endpoint(Volumes(name), &[] as &[&str]).await {
                Ok(_) => return Ok(Volumes(name)),
                Err(e) if e.kind() == ErrorKind::EndpointNotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(NovaError {
            kind: NovaErrorKind::Config,
            message: format!(
                "the cloud's catalog has no block storage service ({})",
                VOLUME_SERVICES.join(" or ")
            ),
        })
    }
}

/// `{"remote_console": {"url": ...}}`.
#[derive(Deserialize)]
struct RemoteConsoleRoot {
    remote_console: RemoteConsole,
}

#[derive(Deserialize)]
struct RemoteConsole {
    url: String,
}

/// `{"output": ...}`; Nova sends null for a server with no log yet.
#[derive(Deserialize)]
struct ConsoleOutput {
    #[serde(default, deserialize_with = "null_as_empty")]
    output: String,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

async fn json_of<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, NovaError> {
    r.json::<T>().await.map_err(|e| NovaError {
        kind: NovaErrorKind::Transient,
        message: format!("unreadable response: {e}"),
    })
}

/// The `marker` parameter of a pagination link.
fn marker_of(href: &str) -> Option<String> {
    let query = href.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("marker="))
        .map(str::to_string)
}

/// Escapes a server name for Nova's regular-expression name filter.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_from_next_link() {
        assert_eq!(
            marker_of("http://nova/v2.1/servers/detail?limit=1000&marker=abc-1").as_deref(),
            Some("abc-1")
        );
        assert_eq!(marker_of("http://nova/v2.1/servers/detail"), None);
    }

    #[test]
    fn server_body_with_unknown_fields_parses() {
        let body = json!({"id": "u", "name": "n", "status": "SOFT_DELETED", "future": 1,
            "OS-EXT-STS:power_state": 4, "OS-EXT-STS:task_state": "", "image": ""});
        let s: ServerInfo = serde_json::from_value(body).expect("parse");
        assert_eq!(s.image_id(), None);
        assert_eq!(s.power_state, Some(PowerState::Shutdown));
        assert_eq!(s.status, Status::SoftDeleted);
        assert_eq!(s.task_state, None);
    }

    #[test]
    fn conflicts_are_typed_from_novas_message() {
        let e = NovaError::conflict(
            "Requested cannot be fulfilled due to a conflict: Cannot 'stop' instance \
             8a3c while it is in task_state rebooting_hard"
                .into(),
        );
        assert_eq!(e.kind, NovaErrorKind::Busy(TaskState::RebootingHard));
        let e = NovaError::conflict(
            "Cannot 'start' instance 8a3c while it is in vm_state rescued".into(),
        );
        assert_eq!(e.kind, NovaErrorKind::WrongState(VmState::Rescued));
        let e = NovaError::conflict("Instance 8a3c is locked".into());
        assert_eq!(e.kind, NovaErrorKind::Conflict);
        assert!(e.is_retryable());
    }

    #[test]
    fn action_bodies() {
        assert_eq!(ServerAction::Start.body(), json!({"os-start": null}));
        assert_eq!(
            ServerAction::HardReboot.body(),
            json!({"reboot": {"type": "HARD"}})
        );
        assert_eq!(
            ServerAction::Rescue { image: "i".into() }.body(),
            json!({"rescue": {"rescue_image_ref": "i"}})
        );
        assert_eq!(
            ServerAction::CrashDump.microversion(),
            Some(ApiVersion(2, 17))
        );
        assert_eq!(regex_escape("a.b[1]"), "a\\.b\\[1\\]");
    }
}
