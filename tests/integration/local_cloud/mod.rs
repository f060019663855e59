//! The Nova backend's [`Compute`] over the simulator's in-process cloud
//! (`novabmc_novasim::local`): no HTTP, on tokio's clock, so the worker's
//! tests run on paused time.
//!
//! The simulator answers each call with Nova's JSON body or Nova's error,
//! after the same faults, and records it in the same request log, as over
//! HTTP. This adapter is the client side the HTTP client would be: it
//! bounds every call by the request timeout, types the bodies, and types
//! the errors as the HTTP client does (409 with the task it names, 404,
//! 401/403, 5xx and dropped connections as transient).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use novabmc::backend::nova::client::{
    ImageFirmware, ImageInfo, Listing, NovaError, NovaErrorKind, ServerAction, ServerInfo,
};
use novabmc::backend::nova::compute::Compute;
use novabmc_novasim::Sim;
use novabmc_novasim::local::{Failure, Request};
use serde_json::Value;

/// The in-process cloud, as the Nova backend calls it.
#[derive(Debug, Clone)]
pub struct LocalCloud {
    sim: Arc<Sim>,
    timeout: Duration,
}

impl LocalCloud {
    /// A cloud over `sim` (made with [`Sim::in_process`]) whose calls time
    /// out after `timeout`.
    pub fn new(sim: Arc<Sim>, timeout: Duration) -> Self {
        LocalCloud { sim, timeout }
    }

    /// One call, bounded by the timeout like the HTTP client's calls; its
    /// errors name the call.
    async fn call(&self, request: Request) -> Result<Value, NovaError> {
        let what = format!("{} {}", request.method(), request.path());
        match tokio::time::timeout(self.timeout, self.sim.call(&request)).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(failure)) => {
                let mut e = nova_error(&failure);
                e.message = format!("{what}: {}", e.message);
                Err(e)
            }
            Err(_) => Err(NovaError::timeout(&what, self.timeout)),
        }
    }
}

/// Nova's error as the HTTP client would type it.
fn nova_error(failure: &Failure) -> NovaError {
    let e = match failure {
        Failure::Dropped => {
            return NovaError {
                kind: NovaErrorKind::Transient,
                message: "connection dropped by simulator".into(),
            };
        }
        Failure::Api(e) => e,
    };
    let kind = match e.status.as_u16() {
        409 => return NovaError::conflict(e.message.clone()),
        404 => NovaErrorKind::NotFound,
        401 | 403 => NovaErrorKind::Auth,
        500..=599 => NovaErrorKind::Transient,
        _ => NovaErrorKind::Permanent,
    };
    NovaError {
        kind,
        message: e.message.clone(),
    }
}

/// A body the backend's types cannot read, as a 500 would be.
fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, NovaError> {
    serde_json::from_value(v).map_err(|e| NovaError {
        kind: NovaErrorKind::Transient,
        message: format!("unreadable body: {e}"),
    })
}

impl Compute for LocalCloud {
    async fn connect(&self) -> Result<(), NovaError> {
        let faults = self.sim.faults();
        let what = "authentication at the in-process Keystone";
        if faults.keystone_hang {
            return Err(NovaError::timeout(what, self.timeout));
        }
        if faults.keystone_down {
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
            let mut query = HashMap::new();
            if let Some(t) = changes_since {
                query.insert("changes-since".to_string(), t.to_string());
            }
            if let Some(n) = name {
                query.insert("name".to_string(), format!("^{n}$"));
            }
            if let Some(m) = &marker {
                query.insert("marker".to_string(), m.clone());
            }
            let page = self.call(Request::ListServers { query }).await?;
            let more = page["servers_links"]
                .as_array()
                .is_some_and(|l| !l.is_empty());
            let servers: Vec<ServerInfo> = parse(page["servers"].clone())?;
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
        let body = self.call(Request::ShowServer { id: id.into() }).await?;
        parse(body["server"].clone())
    }

    async fn act(&self, id: &str, action: &ServerAction) -> Result<(), NovaError> {
        let request = Request::ServerAction {
            id: id.into(),
            body: action.body(),
            minor: action.microversion().map_or(1, |v| u32::from(v.1)),
        };
        self.call(request).await.map(|_| ())
    }

    async fn set_metadata(&self, id: &str, key: &str, value: &str) -> Result<(), NovaError> {
        let request = Request::SetMetadataItem {
            id: id.into(),
            key: key.into(),
            value: value.into(),
        };
        self.call(request).await.map(|_| ())
    }

    async fn find_image(&self, reference: &str) -> Result<ImageInfo, NovaError> {
        let request = Request::FindImage {
            reference: reference.into(),
        };
        let image = self.call(request).await?;
        Ok(ImageInfo {
            id: text(&image, "id"),
            name: text(&image, "name"),
        })
    }

    async fn image_firmware(&self, id: &str) -> Result<ImageFirmware, NovaError> {
        let image = self.call(Request::ShowImage { id: id.into() }).await?;
        Ok(ImageFirmware::of(&image))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A string field of a Glance image body ("" when absent).
fn text(image: &Value, key: &str) -> String {
    image[key].as_str().unwrap_or_default().to_string()
}
