//! The simulated cloud in process: the Nova backend's [`Compute`] served
//! straight from the simulator's model, with no HTTP, on tokio's clock.
//!
//! Tests of the worker use it with paused time, so backoff, give-up times
//! and Nova's transitions (seconds long) take no real time, while the
//! answers are exactly the HTTP simulator's: the same functions build the
//! bodies and errors, the same faults apply (latency, failures, dropped and
//! lost answers, calls that never end), and every call is recorded in the
//! same request log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::http::ApiError;
use super::{Injected, LoggedRequest, Service, Sim};
use crate::backend::nova::client::{
    ImageInfo, Listing, NovaError, NovaErrorKind, ServerAction, ServerInfo,
};
use crate::backend::nova::compute::Compute;

/// The in-process cloud.
#[derive(Debug, Clone)]
pub struct LocalCloud {
    sim: Arc<Sim>,
    timeout: Duration,
}

impl LocalCloud {
    /// A cloud over `sim` whose calls time out after `timeout`.
    pub fn new(sim: Arc<Sim>, timeout: Duration) -> Self {
        LocalCloud { sim, timeout }
    }

    /// The simulator behind it.
    pub fn sim(&self) -> &Arc<Sim> {
        &self.sim
    }

    /// One call: faults first, then `work`, recorded in the request log;
    /// bounded by the timeout like the HTTP client's calls.
    async fn call<T>(
        &self,
        method: &str,
        path: String,
        body: Option<Value>,
        work: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<T, NovaError> {
        let what = format!("{method} {path}");
        let run = async {
            let (at_ms, at_unix_ms) = self.sim.stamp();
            let (latency, injected) =
                self.sim
                    .take_fault(Service::Cloud, path.ends_with("/action"), false, None);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let (status, result) = match injected {
                Injected::Hang => {
                    self.record(at_ms, at_unix_ms, method, &path, body, 0);
                    return std::future::pending().await;
                }
                Injected::StallBody => {
                    let r = work();
                    let status = r.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200);
                    self.record(at_ms, at_unix_ms, method, &path, body, status);
                    return std::future::pending().await;
                }
                Injected::Drop => (0, Err(dropped())),
                Injected::LoseAnswer => {
                    let _ = work();
                    (0, Err(dropped()))
                }
                Injected::Fail(s) => (
                    s,
                    Err(nova_error(&ApiError {
                        status: StatusCode::from_u16(s)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        kind: "computeFault",
                        message: "Unexpected API Error.".into(),
                    })),
                ),
                Injected::Unauthorized | Injected::None => match work() {
                    Ok(v) => (200, Ok(v)),
                    Err(e) => (e.status.as_u16(), Err(nova_error(&e))),
                },
            };
            self.record(at_ms, at_unix_ms, method, &path, body, status);
            result
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r.map_err(|mut e| {
                e.message = format!("{what}: {}", e.message);
                e
            }),
            Err(_) => Err(NovaError::timeout(&what, self.timeout)),
        }
    }

    fn record(
        &self,
        at_ms: f64,
        at_unix_ms: u64,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) {
        self.sim.log(LoggedRequest {
            at_ms,
            at_unix_ms,
            method: method.into(),
            path: path.into(),
            query: String::new(),
            microversion: None,
            body,
            status,
        });
    }
}

fn dropped() -> NovaError {
    NovaError {
        kind: NovaErrorKind::Transient,
        message: "connection dropped by simulator".into(),
    }
}

/// Nova's error as the HTTP client would type it.
fn nova_error(e: &ApiError) -> NovaError {
    let kind = match e.status {
        StatusCode::CONFLICT => return NovaError::conflict(e.message.clone()),
        StatusCode::NOT_FOUND => NovaErrorKind::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => NovaErrorKind::Auth,
        s if s.is_server_error() => NovaErrorKind::Transient,
        _ => NovaErrorKind::Permanent,
    };
    NovaError {
        kind,
        message: e.message.clone(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: "computeFault",
        message: format!("unreadable body: {e}"),
    })
}

impl Compute for LocalCloud {
    async fn connect(&self) -> Result<(), NovaError> {
        let (hang, down) = {
            let m = self.sim.lock();
            (m.faults.keystone_hang, m.faults.keystone_down)
        };
        let what = "authentication at the in-process Keystone";
        if hang {
            return Err(NovaError::timeout(what, self.timeout));
        }
        if down {
            return Err(NovaError {
                kind: NovaErrorKind::Transient,
                message: format!("{what}: 503 Service Unavailable"),
            });
        }
        Ok(())
    }

    async fn list_servers(
        &self,
        changes_since: Option<&str>,
        name: Option<&str>,
    ) -> Result<Listing, NovaError> {
        let mut listing = Listing {
            servers: Vec::new(),
            answered: Some(self.sim.now().into()),
        };
        let mut marker: Option<String> = None;
        loop {
            let mut q = HashMap::new();
            if let Some(t) = changes_since {
                q.insert("changes-since".to_string(), t.to_string());
            }
            if let Some(n) = name {
                q.insert("name".to_string(), format!("^{n}$"));
            }
            if let Some(m) = &marker {
                q.insert("marker".to_string(), m.clone());
            }
            let page: Value = self
                .call("GET", "/compute/v2.1/servers/detail".into(), None, || {
                    super::compute::list(&self.sim, &q, 1, true)
                })
                .await?;
            let more = page["servers_links"]
                .as_array()
                .is_some_and(|l| !l.is_empty());
            let servers: Vec<ServerInfo> =
                parse(page["servers"].clone()).map_err(|e| nova_error(&e))?;
            marker = servers.last().map(|s| s.id.clone());
            listing.servers.extend(servers);
            if !more || marker.is_none() {
                break;
            }
        }
        if let Some(n) = name {
            listing.servers.retain(|s| s.name == n);
        }
        Ok(listing)
    }

    async fn get_server(&self, id: &str) -> Result<ServerInfo, NovaError> {
        let path = format!("/compute/v2.1/servers/{id}");
        self.call("GET", path, None, || {
            let v = super::compute::show(&self.sim, id, 1)?;
            parse(v["server"].clone())
        })
        .await
    }

    async fn act(&self, id: &str, action: &ServerAction) -> Result<(), NovaError> {
        let body = action.body();
        let minor = action.microversion().map_or(1, |v| u32::from(v.1));
        let path = format!("/compute/v2.1/servers/{id}/action");
        self.call("POST", path, Some(body.clone()), || {
            super::compute::act(&self.sim, id, &body, minor).map(|_| ())
        })
        .await
    }

    async fn set_metadata(&self, id: &str, key: &str, value: &str) -> Result<(), NovaError> {
        let path = format!("/compute/v2.1/servers/{id}/metadata/{key}");
        let body = json!({"meta": {key: value}});
        self.call("PUT", path, Some(body), || {
            super::compute::put_metadata_item(&self.sim, id, key, value).map(|_| ())
        })
        .await
    }

    async fn find_image(&self, reference: &str) -> Result<ImageInfo, NovaError> {
        self.call("GET", "/image/v2/images".into(), None, || {
            let m = self.sim.lock();
            m.images
                .iter()
                .find(|i| i.id == reference || i.name == reference)
                .map(|i| ImageInfo {
                    id: i.id.clone(),
                    name: i.name.clone(),
                })
                .ok_or_else(|| ApiError::not_found(&format!("No image {reference}")))
        })
        .await
    }

    async fn image_firmware(&self, id: &str) -> Result<Option<String>, NovaError> {
        self.call("GET", format!("/image/v2/images/{id}"), None, || {
            let m = self.sim.lock();
            m.images
                .iter()
                .find(|i| i.id == id)
                .map(|i| i.hw_firmware_type.clone())
                .ok_or_else(|| ApiError::not_found(&format!("No image found with ID {id}")))
        })
        .await
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
