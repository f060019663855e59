//! The calls `novabmc network` makes to Neutron, Nova and Glance, on the
//! backend's session ([`NovaClient::raw`]), and how their refusals are
//! told apart: a quota (Neutron's 409 `OverQuota`, named with the limit
//! and the usage read from `quotas/{project}/details`), a policy refusal
//! (403), any other refusal with the service's own message.
//!
//! Reads always go to the cloud. Changes go through [`Cloud::change`],
//! which in a dry run prints the call instead of making it and answers
//! with a stand-in (`<new port novabmc-bmc-node-1>` as the ID), so the
//! same code plans, shows and applies.

use std::fmt;

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend::nova::client::{Api, NovaClient, NovaError, RawBody, RawRequest};

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The project's quota for `resource` is used up.
    #[error(
        "{action}: the project's {resource} quota is used up ({usage}); raise it \
         (openstack quota set --{resource}s N) or free some, then run `novabmc network apply` \
         again: what was made so far is kept and reused"
    )]
    Quota {
        /// What was being done.
        action: String,
        /// Neutron's name of the resource (`port`, `network`...).
        resource: String,
        /// "limit 4, 4 in use", or why it is unknown.
        usage: String,
    },
    /// The cloud's policy forbids the call.
    #[error(
        "{action}: refused by the cloud's policy ({message}); the project's role must be \
         allowed to do this, or an administrator must do it"
    )]
    Policy {
        /// What was being done.
        action: String,
        /// The service's message.
        message: String,
    },
    /// Any other refusal.
    #[error("{action}: {service} answered {status}{kind}: {message}")]
    Refused {
        /// What was being done.
        action: String,
        /// `network`, `compute`, `image`.
        service: &'static str,
        /// HTTP status.
        status: u16,
        /// " (NeutronErrorType)" or empty.
        kind: String,
        /// The service's message.
        message: String,
    },
    /// No answer (timeout, connection, authentication).
    #[error("{action}: {error}")]
    Cloud {
        /// What was being done.
        action: String,
        /// The client's error.
        error: NovaError,
    },
    /// The cloud does not hold what the configuration names, or holds it
    /// in a way novabmc cannot use.
    #[error("{0}")]
    Mismatch(String),
    /// The BMC instance's own side (links, addresses, the routes file).
    #[error("{0}")]
    Host(String),
}

impl NetError {
    /// The Neutron error type of a refusal, if it is one.
    pub fn neutron_kind(&self) -> Option<&str> {
        match self {
            NetError::Refused { kind, .. } => Some(kind.trim_matches([' ', '(', ')'])),
            _ => None,
        }
    }

    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            NetError::Refused { status, .. } => Some(*status),
            NetError::Quota { .. } => Some(409),
            NetError::Policy { .. } => Some(403),
            _ => None,
        }
    }
}

/// What the run does with changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Make them.
    Apply,
    /// Print them, make none.
    DryRun,
    /// Make none, print none: `show` only wants to know what is missing.
    Show,
}

/// One call, for messages and the dry run.
#[derive(Debug, Clone)]
pub struct Call {
    /// The service.
    pub api: Api,
    /// The method.
    pub method: Method,
    /// Path below the service's versioned endpoint.
    pub path: Vec<String>,
    /// Query.
    pub query: Vec<(String, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// Bytes to upload, if any.
    pub data: Option<Vec<u8>>,
}

impl Call {
    fn new(api: Api, method: Method, path: &[&str]) -> Call {
        Call {
            api,
            method,
            path: path.iter().map(|s| s.to_string()).collect(),
            query: Vec::new(),
            body: None,
            data: None,
        }
    }

    /// A GET.
    pub fn get(api: Api, path: &[&str]) -> Call {
        Call::new(api, Method::GET, path)
    }

    /// A POST with a JSON body.
    pub fn post(api: Api, path: &[&str], body: Value) -> Call {
        Call {
            body: Some(body),
            ..Call::new(api, Method::POST, path)
        }
    }

    /// A PUT with a JSON body (or none).
    pub fn put(api: Api, path: &[&str], body: Option<Value>) -> Call {
        Call {
            body,
            ..Call::new(api, Method::PUT, path)
        }
    }

    /// A PATCH with a JSON-patch body (Glance).
    pub fn patch(api: Api, path: &[&str], body: Value) -> Call {
        Call {
            body: Some(body),
            ..Call::new(api, Method::PATCH, path)
        }
    }

    /// A DELETE.
    pub fn delete(api: Api, path: &[&str]) -> Call {
        Call::new(api, Method::DELETE, path)
    }

    /// With query parameters.
    pub fn query(mut self, q: &[(&str, &str)]) -> Call {
        self.query = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} /{}",
            self.method,
            self.api.name(),
            self.path.join("/")
        )?;
        if !self.query.is_empty() {
            let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, "?{}", q.join("&"))?;
        }
        if let Some(b) = &self.body {
            write!(f, " {b}")?;
        }
        if let Some(d) = &self.data {
            write!(f, " <{} bytes>", d.len())?;
        }
        Ok(())
    }
}

/// The cloud as `novabmc network` sees it.
#[derive(Debug)]
pub struct Cloud {
    client: NovaClient,
    mode: Mode,
    /// The project, for quota look-ups once known.
    pub project: Option<String>,
    /// The changes made (or, in a dry run or `show`, that would be
    /// made), in order.
    pub changes: Vec<String>,
}

impl Cloud {
    /// A cloud reached through `client`.
    pub fn new(client: NovaClient, mode: Mode) -> Cloud {
        Cloud {
            client,
            mode,
            project: None,
            changes: Vec::new(),
        }
    }

    /// The run's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Makes a read.
    pub async fn read(&self, action: &str, call: Call) -> Result<Value, NetError> {
        self.send(action, &call).await
    }

    /// Makes a change, or in a dry run (and for `show`) records it and
    /// answers `stand_in`.
    pub async fn change(
        &mut self,
        action: &str,
        call: Call,
        stand_in: Value,
    ) -> Result<Value, NetError> {
        match self.mode {
            Mode::Apply => {
                let v = self.send(action, &call).await?;
                self.changes.push(action.to_string());
                Ok(v)
            }
            Mode::DryRun => {
                println!("would {action}: {call}");
                self.changes.push(action.to_string());
                Ok(stand_in)
            }
            Mode::Show => {
                self.changes.push(action.to_string());
                Ok(stand_in)
            }
        }
    }

    async fn send(&self, action: &str, call: &Call) -> Result<Value, NetError> {
        let request = RawRequest {
            api: call.api,
            method: call.method.clone(),
            path: call.path.clone(),
            query: call.query.clone(),
            body: match (&call.body, &call.data) {
                (_, Some(d)) => RawBody::Bytes(d.clone()),
                (Some(b), None) => RawBody::Json(b.clone()),
                (None, None) => RawBody::Empty,
            },
        };
        let operation = operation_name(call);
        let answer = self
            .client
            .raw(operation, &call.to_string(), &request)
            .await
            .map_err(|error| NetError::Cloud {
                action: action.to_string(),
                error,
            })?;
        if answer.ok() {
            return Ok(answer.json());
        }
        Err(self
            .refusal(action, call.api, answer.status, &answer.body)
            .await)
    }

    /// Types a refusal; a quota names its limit and usage.
    async fn refusal(&self, action: &str, api: Api, status: u16, body: &[u8]) -> NetError {
        let (kind, message) = error_of(body);
        if status == 403 {
            return NetError::Policy {
                action: action.to_string(),
                message,
            };
        }
        if kind == "OverQuota" {
            let resource = quota_resource(&message).unwrap_or_else(|| "resource".into());
            let usage = self.usage(&resource).await;
            return NetError::Quota {
                action: action.to_string(),
                resource,
                usage,
            };
        }
        NetError::Refused {
            action: action.to_string(),
            service: api.name(),
            status,
            kind: if kind.is_empty() {
                String::new()
            } else {
                format!(" ({kind})")
            },
            message,
        }
    }

    /// "limit N, M in use" for a Neutron resource.
    async fn usage(&self, resource: &str) -> String {
        let Some(project) = &self.project else {
            return "limit unknown".into();
        };
        let call = Call::get(Api::Network, &["quotas", project, "details"]);
        let request = RawRequest {
            api: Api::Network,
            method: Method::GET,
            path: call.path.clone(),
            query: Vec::new(),
            body: RawBody::Empty,
        };
        match self
            .client
            .raw("get_quota_details", &call.to_string(), &request)
            .await
        {
            Ok(a) if a.ok() => {
                let q = &a.json()["quota"][resource];
                match (q["limit"].as_i64(), q["used"].as_i64()) {
                    (Some(l), Some(u)) => format!("limit {l}, {u} in use"),
                    _ => "limit unknown".into(),
                }
            }
            _ => "limit unknown: the quota details cannot be read".into(),
        }
    }
}

/// A stable operation name for the metrics: the method and what it acts
/// on (never an ID).
fn operation_name(call: &Call) -> &'static str {
    let last = call.path.last().map(String::as_str).unwrap_or_default();
    let interface = call.path.iter().any(|p| p == "os-interface");
    match (call.method.as_str(), last) {
        ("GET", _) => "network_read",
        ("POST", _) if interface => "attach_interface",
        ("DELETE", _) if interface => "detach_interface",
        ("PUT", "add_router_interface") => "add_router_interface",
        ("PUT", "remove_router_interface") => "remove_router_interface",
        ("PUT", "file") => "upload_image",
        ("PUT", _) if call.path.iter().any(|p| p == "tags") => "tag",
        ("POST", _) => "create",
        ("PUT", _) | ("PATCH", _) => "update",
        ("DELETE", _) => "delete",
        _ => "other",
    }
}

/// The error type and message of a refusal, from Neutron's
/// `{"NeutronError": ...}`, Nova's `{"badRequest": {"message"}}` or
/// Glance's plain text.
pub fn error_of(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(e) = v.get("NeutronError") {
        return (
            e["type"].as_str().unwrap_or_default().to_string(),
            e["message"].as_str().unwrap_or_default().to_string(),
        );
    }
    if let Some((kind, e)) = v.as_object().and_then(|o| o.iter().next())
        && let Some(m) = e.get("message").and_then(Value::as_str)
    {
        return (kind.clone(), m.to_string());
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (String::new(), text)
}

/// `port` from Neutron's "Quota exceeded for resources: ['port']."
fn quota_resource(message: &str) -> Option<String> {
    let start = message.find("['")? + 2;
    let end = message[start..].find('\'')? + start;
    Some(message[start..end].to_string())
}

/// A stand-in ID for something a dry run would create.
pub fn stand_in_id(kind: &str, name: &str) -> String {
    format!("<new {kind} {name}>")
}

/// A stand-in resource body with an ID and name.
pub fn stand_in(kind: &str, name: &str) -> Value {
    json!({"id": stand_in_id(kind, name), "name": name})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_from_each_services_body() {
        let (k, m) = error_of(
            br#"{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['port'].", "detail": ""}}"#,
        );
        assert_eq!(k, "OverQuota");
        assert_eq!(quota_resource(&m).as_deref(), Some("port"));
        let (k, m) = error_of(
            br#"{"conflictingRequest": {"code": 409, "message": "Port x is still in use."}}"#,
        );
        assert_eq!(
            (k.as_str(), m.as_str()),
            ("conflictingRequest", "Port x is still in use.")
        );
        let (k, m) = error_of(b"409 Conflict\n\nImage exists\n\n");
        assert_eq!((k.as_str(), m.as_str()), ("", "409 Conflict Image exists"));
    }

    #[test]
    fn calls_print_as_the_dry_run_shows_them() {
        let c = Call::post(Api::Network, &["ports"], json!({"port": {"name": "p"}}));
        assert_eq!(
            c.to_string(),
            r#"POST network /ports {"port":{"name":"p"}}"#
        );
        let c = Call::get(Api::Network, &["ports"]).query(&[("tags", "novabmc")]);
        assert_eq!(c.to_string(), "GET network /ports?tags=novabmc");
    }
}
