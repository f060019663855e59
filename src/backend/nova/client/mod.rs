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
//! Nova's answers are typed once ([`error`]), the bodies read into small
//! structures ([`responses`]); the reads only `check` and `export` make are
//! in `inventory_reads`, the listing discovery makes in `discovery_reads`;
//! `raw` sends any call and hands the answer back unread (for `novabmc
//! network`, which types Neutron's errors itself).
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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use osauth::services::{COMPUTE, ServiceType};
use osauth::{ApiVersion, CloudConfig, ErrorKind, ServiceRequestBuilder, Session};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::backend::telemetry::{CallRecorder, CloudCall, NoRecorder};

mod discovery_reads;
mod error;
mod inventory_reads;
mod media_calls;
mod raw;
mod responses;

pub use discovery_reads::{ListedServer, TAGS};
pub use error::{NovaError, NovaErrorKind};
pub use inventory_reads::{
    AttachedVolume, CatalogEntry, FlavorInfo, ServerDetail, VolumeAttachment, VolumeInfo,
};
pub use media_calls::{ImageState, NewImage, VolumeState};
pub use raw::{Api, RawAnswer, RawBody, RawRequest};
pub use responses::{
    AddressInfo, ImageFirmware, ImageInfo, Listing, ServerAction, ServerInfo, macs_of,
};

#[derive(Deserialize)]
struct ServersPage<T> {
    servers: Vec<T>,
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
pub const MICROVERSIONS: [(ApiVersion, &str); 4] = [
    (ApiVersion(2, 17), "chassis power diag (trigger_crash_dump)"),
    (TAGS, "discovery by tag (server tags)"),
    (FLAVOR_EMBEDDED, "export (flavor embedded in the server)"),
    (
        ApiVersion(2, 87),
        "virtual media on volume-backed servers (stable-device rescue)",
    ),
];

/// A Nova (and Glance) client that rebuilds its session when Keystone
/// stops accepting the token, and bounds every call.
pub struct NovaClient {
    cloud: CloudConfig,
    /// The Keystone URL, for messages.
    auth_url: String,
    /// The cloud's `cacert` (a PEM file), which the API client trusts
    /// besides the public roots; the serial consoles use it too.
    cacert: Option<String>,
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

/// The `cacert` of a cloud configuration (clouds.yaml's `cacert`, or
/// `OS_CACERT`), read the same way.
fn cacert_of(cloud: &CloudConfig) -> Option<String> {
    serde_json::to_value(cloud)
        .ok()
        .and_then(|v| v.get("cacert").and_then(Value::as_str).map(str::to_string))
}

impl NovaClient {
    /// A client for `cloud` whose every call must finish within `timeout`;
    /// nothing is sent until the first call.
    pub fn new(cloud: CloudConfig, timeout: Duration) -> Self {
        NovaClient {
            auth_url: auth_url_of(&cloud),
            cacert: cacert_of(&cloud),
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

    /// Where calls are reported.
    pub fn recorder(&self) -> &dyn CallRecorder {
        self.recorder.as_ref()
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The cloud's `cacert`, if it names one.
    pub fn cacert(&self) -> Option<&str> {
        self.cacert.as_deref()
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
            let checked = match build(&s).send_unchecked().await {
                // osauth files 501 with every other 5xx, which are worth a
                // retry; 501 never is.
                Ok(r) if r.status() == reqwest::StatusCode::NOT_IMPLEMENTED => {
                    let message = match osauth::client::check(r).await {
                        Err(e) => e.to_string(),
                        Ok(_) => "not implemented".into(),
                    };
                    return Err(NovaError {
                        kind: NovaErrorKind::NotImplemented,
                        message,
                    });
                }
                Ok(r) => osauth::client::check(r).await,
                Err(e) => Err(e),
            };
            match checked {
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
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(t) = changes_since {
            query.push(("changes-since", t.to_string()));
        }
        if let Some(n) = name {
            // Nova's name filter is a regular expression.
            query.push(("name", format!("^{}$", regex_escape(n))));
        }
        self.bounded(("compute", "list_servers"), &call, async {
            let (servers, answered) = self.server_pages(query, None).await?;
            let mut listing = Listing { servers, answered };
            if let Some(n) = name {
                listing.servers.retain(|s| s.name == n);
            }
            Ok(listing)
        })
        .await
    }

    /// `GET /servers/detail` with `query`, every page, each server read as
    /// a `T`; with the time Nova answered the first page (its `Date`
    /// header). Unbounded: the caller bounds the whole call.
    async fn server_pages<T: serde::de::DeserializeOwned>(
        &self,
        query: Vec<(&str, String)>,
        version: Option<ApiVersion>,
    ) -> Result<(Vec<T>, Option<chrono::DateTime<chrono::Utc>>), NovaError> {
        let mut servers = Vec::new();
        let mut answered = None;
        let mut marker: Option<String> = None;
        loop {
            let mut query = query.clone();
            if let Some(m) = &marker {
                query.push(("marker", m.clone()));
            }
            let response = self
                .send(|s| {
                    let b = s.get(COMPUTE, &["servers", "detail"]).query(&query);
                    match version {
                        Some(v) => b.api_version(v),
                        None => b,
                    }
                })
                .await?;
            if answered.is_none() {
                answered = response
                    .headers()
                    .get("date")
                    .and_then(|d| d.to_str().ok())
                    .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
                    .map(|d| d.with_timezone(&chrono::Utc));
            }
            let page: ServersPage<T> = json_of(response).await?;
            let next = page
                .servers_links
                .iter()
                .find(|l| l.rel == "next")
                .and_then(|l| marker_of(&l.href));
            servers.extend(page.servers);
            match next {
                Some(m) if Some(&m) != marker.as_ref() => marker = Some(m),
                _ => break,
            }
        }
        Ok((servers, answered))
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
    pub async fn image_firmware(&self, image_id: &str) -> Result<ImageFirmware, NovaError> {
        let v = self.image(image_id).await?;
        Ok(ImageFirmware::of(&v))
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
    fn names_are_escaped_for_novas_filter() {
        assert_eq!(regex_escape("a.b[1]"), "a\\.b\\[1\\]");
    }

    #[test]
    fn the_cacert_is_read_from_the_cloud_configuration() {
        let cloud = |extra: &str| {
            super::super::cloud::load(&super::super::cloud::CloudSource::Inline {
                name: "c".into(),
                yaml: format!(
                    "clouds:\n  c:\n    auth:\n      auth_url: https://keystone.example/v3\n      \
                     username: u\n      password: p\n      project_name: x\n{extra}"
                ),
            })
            .expect("cloud")
        };
        let with = NovaClient::new(
            cloud("    cacert: /etc/ssl/cloud-ca.pem\n"),
            Duration::from_secs(1),
        );
        assert_eq!(with.cacert(), Some("/etc/ssl/cloud-ca.pem"));
        let without = NovaClient::new(cloud(""), Duration::from_secs(1));
        assert_eq!(without.cacert(), None);
    }
}
