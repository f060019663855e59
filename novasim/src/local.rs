//! The simulated cloud in process: the Nova and Glance calls a BMC makes,
//! served straight from the simulator's model with no HTTP, on tokio's
//! clock ([`Sim::in_process`]).
//!
//! Tests of a Nova client's worker use it with paused time, so backoff,
//! give-up times and Nova's transitions (seconds long) take no real time,
//! while the answers are exactly the HTTP simulator's: the same functions
//! build the bodies and errors, the same faults apply (latency, failures,
//! dropped and lost answers, calls that never end), and every call is
//! recorded in the same request log. What a call answers is Nova's JSON
//! body or Nova's error with its status ([`Failure`]); typing it is the
//! caller's business.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, Faults, Injected, LoggedRequest, Service, Sim};

/// One call to the in-process cloud, named after the API request it
/// stands for.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `GET /compute/v2.1/servers/detail` with these query parameters
    /// (`changes-since`, `name`, `marker`...), at microversion 2.1.
    ListServers {
        /// Query parameters.
        query: HashMap<String, String>,
    },
    /// `GET /compute/v2.1/servers/{id}` at microversion 2.1.
    ShowServer {
        /// Server ID.
        id: String,
    },
    /// `POST /compute/v2.1/servers/{id}/action`.
    ServerAction {
        /// Server ID.
        id: String,
        /// The action body (`{"os-start": null}`...).
        body: Value,
        /// The compute microversion's minor number (2.`minor`).
        minor: u32,
    },
    /// `PUT /compute/v2.1/servers/{id}/metadata/{key}`.
    SetMetadataItem {
        /// Server ID.
        id: String,
        /// Metadata key.
        key: String,
        /// Its value.
        value: String,
    },
    /// `GET /image/v2/images`, looking for one image by ID or name: the
    /// image as Glance shows it, or 404 when there is none.
    FindImage {
        /// Image ID or name.
        reference: String,
    },
    /// `GET /image/v2/images/{id}`.
    ShowImage {
        /// Image ID.
        id: String,
    },
}

impl Request {
    /// The HTTP method it stands for.
    pub fn method(&self) -> &'static str {
        match self {
            Request::ServerAction { .. } => "POST",
            Request::SetMetadataItem { .. } => "PUT",
            Request::ListServers { .. }
            | Request::ShowServer { .. }
            | Request::FindImage { .. }
            | Request::ShowImage { .. } => "GET",
        }
    }

    /// The path it stands for, as the request log shows it.
    pub fn path(&self) -> String {
        match self {
            Request::ListServers { .. } => "/compute/v2.1/servers/detail".into(),
            Request::ShowServer { id } => format!("/compute/v2.1/servers/{id}"),
            Request::ServerAction { id, .. } => format!("/compute/v2.1/servers/{id}/action"),
            Request::SetMetadataItem { id, key, .. } => {
                format!("/compute/v2.1/servers/{id}/metadata/{key}")
            }
            Request::FindImage { .. } => "/image/v2/images".into(),
            Request::ShowImage { id } => format!("/image/v2/images/{id}"),
        }
    }

    /// The request body, as the request log shows it.
    fn body(&self) -> Option<Value> {
        match self {
            Request::ServerAction { body, .. } => Some(body.clone()),
            Request::SetMetadataItem { key, value, .. } => Some(json!({"meta": {key: value}})),
            _ => None,
        }
    }
}

/// Why a call got no answer body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Nova's error (an injected failure, or the API's own 404, 409...).
    Api(ApiError),
    /// The connection dropped before the answer (the call may have been
    /// carried out: a lost answer).
    Dropped,
}

impl Sim {
    /// Serves `request` in process: faults first, then the call, recorded
    /// in the request log with the status the HTTP simulator would have
    /// answered (0 when the connection dropped). Like over HTTP, a hung
    /// call or a stalled body never returns; the caller bounds it.
    pub async fn call(&self, request: &Request) -> Result<Value, Failure> {
        let (at_ms, at_unix_ms) = self.stamp();
        let is_action = matches!(request, Request::ServerAction { .. });
        let (latency, injected) = self.take_fault(Service::Cloud, is_action, false, None);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let (status, result) = match injected {
            Injected::Hang => {
                self.record(request, at_ms, at_unix_ms, 0);
                return std::future::pending().await;
            }
            Injected::StallBody => {
                let status = match self.serve(request) {
                    Ok((status, _)) => status,
                    Err(e) => e.status,
                };
                self.record(request, at_ms, at_unix_ms, status.as_u16());
                return std::future::pending().await;
            }
            Injected::Drop => (0, Err(Failure::Dropped)),
            Injected::LoseAnswer => {
                let _ = self.serve(request);
                (0, Err(Failure::Dropped))
            }
            Injected::Fail(s) => (
                s,
                Err(Failure::Api(ApiError {
                    status: StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    kind: "computeFault",
                    message: "Unexpected API Error.".into(),
                })),
            ),
            Injected::Unauthorized | Injected::None => match self.serve(request) {
                Ok((status, body)) => (status.as_u16(), Ok(body)),
                Err(e) => (e.status.as_u16(), Err(Failure::Api(e))),
            },
        };
        self.record(request, at_ms, at_unix_ms, status);
        result
    }

    /// The injected faults as they stand (counters already consumed).
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// The call itself: the status and body the HTTP routes answer with.
    fn serve(&self, request: &Request) -> Result<(StatusCode, Value), ApiError> {
        match request {
            Request::ListServers { query } => {
                super::compute::list(self, query, 1, true).map(|v| (StatusCode::OK, v))
            }
            Request::ShowServer { id } => {
                super::compute::show(self, id, 1).map(|v| (StatusCode::OK, v))
            }
            Request::ServerAction { id, body, minor } => {
                super::compute::act(self, id, body, *minor)
                    .map(|(status, body)| (status, body.unwrap_or(Value::Null)))
            }
            Request::SetMetadataItem { id, key, value } => {
                super::compute::put_metadata_item(self, id, key, value).map(|v| (StatusCode::OK, v))
            }
            Request::FindImage { reference } => {
                let m = self.lock();
                m.images
                    .iter()
                    .find(|i| &i.id == reference || &i.name == reference)
                    .map(|i| (StatusCode::OK, super::image::image_json(i)))
                    .ok_or_else(|| ApiError::not_found(&format!("No image {reference}")))
            }
            Request::ShowImage { id } => {
                let m = self.lock();
                m.images
                    .iter()
                    .find(|i| &i.id == id)
                    .map(|i| (StatusCode::OK, super::image::image_json(i)))
                    .ok_or_else(|| ApiError::not_found(&format!("No image found with ID {id}")))
            }
        }
    }

    fn record(&self, request: &Request, at_ms: f64, at_unix_ms: u64, status: u16) {
        self.log(LoggedRequest {
            at_ms,
            at_unix_ms,
            method: request.method().into(),
            path: request.path(),
            query: String::new(),
            microversion: None,
            body: request.body(),
            status,
        });
    }
}
