//! Calls answered as they come: any method and path on Nova, Glance or
//! Neutron through the client's session (token renewal, the call's
//! timeout, the metrics), with the status and body handed back unread, so
//! a caller that decides on the service's own error types (Neutron's
//! `OverQuota` or `PolicyNotAuthorized`) reads them itself. Only a call
//! that got no answer at all is an error here.

use osauth::services::{COMPUTE, IMAGE, NETWORK, ServiceType};
use osauth::{ServiceRequestBuilder, Session};
use reqwest::Method;
use serde_json::Value;

use super::{NovaClient, NovaError, NovaErrorKind};
use crate::backend::telemetry::CloudCall;

/// The service a raw call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Nova.
    Compute,
    /// Glance.
    Image,
    /// Neutron.
    Network,
}

impl Api {
    /// The catalog's name, for messages and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Api::Compute => "compute",
            Api::Image => "image",
            Api::Network => "network",
        }
    }
}

/// What a raw call sends.
#[derive(Clone, Debug)]
pub struct RawRequest {
    /// The service.
    pub api: Api,
    /// The method.
    pub method: Method,
    /// Path segments below the service's versioned endpoint.
    pub path: Vec<String>,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// The body.
    pub body: RawBody,
}

/// A raw call's body.
#[derive(Clone, Debug)]
pub enum RawBody {
    /// None.
    Empty,
    /// JSON.
    Json(Value),
    /// Bytes sent as `application/octet-stream` (image data).
    Bytes(Vec<u8>),
}

/// What came back: the status and the body, unread.
#[derive(Clone, Debug)]
pub struct RawAnswer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn build<S: ServiceType + Send + Clone>(
    s: &Session,
    service: S,
    r: &RawRequest,
) -> ServiceRequestBuilder<S> {
    let b = s
        .request(service, r.method.clone(), &r.path)
        .query(&r.query);
    match &r.body {
        RawBody::Empty => b,
        RawBody::Json(v) => b.json(v),
        RawBody::Bytes(data) => b
            .header("content-type", "application/octet-stream")
            .body(data.clone()),
    }
}

impl NovaClient {
    /// Sends `r` within the call timeout, authenticating again once if
    /// the token is refused; `operation` names it in the metrics and
    /// `call` in errors.
    pub async fn raw(
        &self,
        operation: &'static str,
        call: &str,
        r: &RawRequest,
    ) -> Result<RawAnswer, NovaError> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.raw_unbounded(r)).await {
            Ok(r) => r.map_err(|e| e.during(call)),
            Err(_) => Err(NovaError::timeout(call, self.timeout)),
        };
        let status = match &result {
            Ok(a) if a.ok() => "ok",
            Ok(_) => "refused",
            Err(e) => e.kind.name(),
        };
        self.recorder.record(CloudCall {
            service: r.api.name(),
            operation,
            status,
            took: started.elapsed(),
        });
        result
    }

    async fn raw_unbounded(&self, r: &RawRequest) -> Result<RawAnswer, NovaError> {
        let mut renewed = false;
        loop {
            let s = self.session().await?;
            let sent = match r.api {
                Api::Compute => build(&s, COMPUTE, r).send_unchecked().await,
                Api::Image => build(&s, IMAGE, r).send_unchecked().await,
                Api::Network => build(&s, NETWORK, r).send_unchecked().await,
            }?;
            let status = sent.status().as_u16();
            if status == 401 && !renewed {
                tracing::info!("token refused by the cloud; authenticating again");
                self.drop_session().await;
                renewed = true;
                continue;
            }
            let body = sent.bytes().await.map_err(|e| NovaError {
                kind: NovaErrorKind::Transient,
                message: format!("unreadable response: {e}"),
            })?;
            return Ok(RawAnswer {
                status,
                body: body.to_vec(),
            });
        }
    }
}
