//! Redfish error responses (DSP0266 section 9.7): a status and an `error`
//! object whose `@Message.ExtendedInfo` holds messages of the Base
//! registry (DSP8011), each naming the property or parameter at fault in
//! `RelatedProperties`, so a client learns what to change.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The Base message registry version the message IDs name.
pub const BASE: &str = "Base.1.18.1";

/// One message of the Base registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message key (`PropertyUnknown`).
    pub key: &'static str,
    /// The text, arguments filled in.
    pub text: String,
    /// The arguments.
    pub args: Vec<String>,
    /// JSON pointers of the properties concerned (`#/Boot/...`).
    pub related: Vec<String>,
    /// `OK`, `Warning` or `Critical`.
    pub severity: &'static str,
    /// What the client should do.
    pub resolution: &'static str,
}

impl Message {
    fn json(&self) -> Value {
        json!({
            "@odata.type": "#Message.v1_1_2.Message",
            "MessageId": format!("{BASE}.{}", self.key),
            "Message": self.text,
            "MessageArgs": self.args,
            "RelatedProperties": self.related,
            "MessageSeverity": self.severity,
            "Resolution": self.resolution,
        })
    }
}

/// An error answer: a status, the messages, and extra headers.
#[derive(Clone, Debug)]
pub struct Error {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, most important first.
    pub messages: Vec<Message>,
    /// `WWW-Authenticate` for 401, `Retry-After` for 429 and 503.
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Error {
    fn new(status: StatusCode, message: Message) -> Self {
        Error {
            status,
            messages: vec![message],
            headers: Vec::new(),
        }
    }

    /// Adds a message (several properties wrong in one request).
    pub fn and(mut self, other: Error) -> Self {
        self.messages.extend(other.messages);
        self
    }

    fn header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// 404: nothing at this URI.
    pub fn not_found(uri: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Message {
                key: "ResourceMissingAtURI",
                text: format!("The resource at the URI {uri} was not found."),
                args: vec![uri.into()],
                related: vec![],
                severity: "Critical",
                resolution: "Place a valid resource at the URI or correct the URI and resubmit the request.",
            },
        )
    }

    /// 501: a `$` query the service does not implement.
    pub fn query_not_supported() -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            Message {
                key: "QueryNotSupported",
                text: "Querying is not supported by the implementation.".into(),
                args: vec![],
                related: vec![],
                severity: "Warning",
                resolution: "Remove the query parameters and resubmit the request if the operation failed.",
            },
        )
    }

    /// 405: the resource does not take this method.
    pub fn method_not_allowed(method: &str, uri: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Message {
                key: "OperationNotAllowed",
                text: format!("The {method} operation is not allowed on {uri}."),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Use one of the methods the Allow header lists.",
            },
        )
    }

    /// 401: no credentials, or wrong ones.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Message {
                key: "NoValidSession",
                text: "There is no valid session established with the implementation.".into(),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Establish a session before attempting any operations, or give valid Basic credentials.",
            },
        )
        .header(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"novabmc\", charset=\"UTF-8\"",
        )
    }

    /// 403: the account's role may not do this.
    pub fn insufficient_privilege() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Message {
                key: "InsufficientPrivilege",
                text: "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.".into(),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed.",
            },
        )
    }

    /// 429: too many failed logins from this source.
    pub fn too_many_failures() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Message {
                key: "ServiceTemporarilyUnavailable",
                text: "Too many failed logins from this address; try again later.".into(),
                args: vec!["2".into()],
                related: vec![],
                severity: "Critical",
                resolution: "Wait the number of seconds Retry-After gives and retry with valid credentials.",
            },
        )
        .header(header::RETRY_AFTER, "2")
    }

    /// 503: the node cannot answer yet (its server not found yet, or the
    /// backend restarting for a reload).
    pub fn unavailable(why: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Message {
                key: "ServiceTemporarilyUnavailable",
                text: format!("The service is temporarily unavailable: {why}."),
                args: vec!["2".into()],
                related: vec![],
                severity: "Critical",
                resolution: "Wait the number of seconds Retry-After gives and retry.",
            },
        )
        .header(header::RETRY_AFTER, "2")
    }

    /// 500: the service could not keep what it would acknowledge (the
    /// state directory refused the record), so it does not acknowledge it.
    pub fn internal(why: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Message {
                key: "GeneralError",
                text: format!("The request was not carried out: {why}."),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "See the BMC's log; resubmit the request once the condition is corrected.",
            },
        )
    }

    /// 409: the node's machine cannot do this at all.
    pub fn not_possible(why: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            Message {
                key: "ResourceInUse",
                text: format!("The change could not be made: {why}."),
                args: vec![],
                related: vec![],
                severity: "Warning",
                resolution: "Correct the condition the message names and resubmit the request.",
            },
        )
    }

    /// 400: the body is not JSON (or not an object).
    pub fn malformed_json(why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "MalformedJSON",
                text: format!(
                    "The request body submitted was malformed JSON and could not be parsed by the receiving service: {why}."
                ),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Ensure that the request body is valid JSON and resubmit the request.",
            },
        )
    }

    /// 413: the body is larger than the service takes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Message {
                key: "PayloadTooLarge",
                text: format!("The supplied payload exceeds the maximum size of {limit} bytes."),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Send a smaller request body.",
            },
        )
    }

    /// 408: the body did not arrive in time.
    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            Message {
                key: "GeneralError",
                text: "The request body did not arrive within the service's read timeout.".into(),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Send the whole request at once.",
            },
        )
    }

    /// 415: a body that is not `application/json`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Message {
                key: "UnsupportedMediaType",
                text: "The request specifies a Content-Type for the body that is not supported."
                    .into(),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Send the body as application/json.",
            },
        )
    }

    /// 400: a property the resource does not have.
    pub fn property_unknown(pointer: &str, name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "PropertyUnknown",
                text: format!(
                    "The property {name} is not in the list of valid properties for the resource."
                ),
                args: vec![name.into()],
                related: vec![pointer.into()],
                severity: "Warning",
                resolution: "Remove the unknown property from the request body and resubmit the request if the operation failed.",
            },
        )
    }

    /// 400: a read-only property in a PATCH.
    pub fn property_not_writable(pointer: &str, name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "PropertyNotWritable",
                text: format!(
                    "The property {name} is a read-only property and cannot be assigned a value."
                ),
                args: vec![name.into()],
                related: vec![pointer.into()],
                severity: "Warning",
                resolution: "Remove the property from the request body and resubmit the request if the operation failed.",
            },
        )
    }

    /// 400: a value of the wrong JSON type.
    pub fn value_type(pointer: &str, name: &str, value: &Value) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "PropertyValueTypeError",
                text: format!(
                    "The value {value} for the property {name} is not a type that the property can accept."
                ),
                args: vec![value.to_string(), name.into()],
                related: vec![pointer.into()],
                severity: "Warning",
                resolution: "Correct the value for the property in the request body and resubmit the request if the operation failed.",
            },
        )
    }

    /// 400: a value not among the allowed ones.
    pub fn value_not_in_list(pointer: &str, name: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "PropertyValueNotInList",
                text: format!(
                    "The value {value} for the property {name} is not in the list of acceptable values."
                ),
                args: vec![value.into(), name.into()],
                related: vec![pointer.into()],
                severity: "Warning",
                resolution: "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
            },
        )
    }

    /// 400: an action parameter missing.
    pub fn parameter_missing(action: &str, name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "ActionParameterMissing",
                text: format!(
                    "The action {action} requires the parameter {name} to be present in the request body."
                ),
                args: vec![action.into(), name.into()],
                related: vec![format!("#/{name}")],
                severity: "Critical",
                resolution: "Supply the action with the required parameter in the request body when the request is resubmitted.",
            },
        )
    }

    /// 400: an action parameter the action does not take.
    pub fn parameter_unknown(action: &str, name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "ActionParameterUnknown",
                text: format!(
                    "The action {action} was submitted with the invalid parameter {name}."
                ),
                args: vec![action.into(), name.into()],
                related: vec![format!("#/{name}")],
                severity: "Warning",
                resolution: "Correct the invalid parameter and resubmit the request if the operation failed.",
            },
        )
    }

    /// 400: an action parameter with a value not allowed.
    pub fn parameter_not_in_list(action: &str, name: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "ActionParameterValueNotInList",
                text: format!(
                    "The value {value} for the parameter {name} in the action {action} is not in the list of acceptable values."
                ),
                args: vec![value.into(), name.into(), action.into()],
                related: vec![format!("#/{name}")],
                severity: "Warning",
                resolution: "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
            },
        )
    }

    /// 400: an action parameter (or, with `action` a property pointer's
    /// owner, a property) whose value cannot be used, with why.
    pub fn parameter_value(action: &str, name: &str, why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "ActionParameterValueError",
                text: format!(
                    "The value for the parameter {name} in the action {action} is invalid: {why}."
                ),
                args: vec![name.into(), action.into()],
                related: vec![format!("#/{name}")],
                severity: "Warning",
                resolution: "Correct the value for the parameter in the request body and resubmit the request if the operation failed.",
            },
        )
    }

    /// 409: the virtual media device already holds media.
    pub fn media_in_use(why: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            Message {
                key: "ResourceInUse",
                text: format!(
                    "The change to the requested resource failed because the resource is in use or in transition: {why}."
                ),
                args: vec![],
                related: vec!["#/Image".into()],
                severity: "Warning",
                resolution: "Eject the media, then resubmit the request.",
            },
        )
    }

    /// 400: an action parameter of the wrong type.
    pub fn parameter_type(action: &str, name: &str, value: &Value) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "ActionParameterValueTypeError",
                text: format!(
                    "The value {value} for the parameter {name} in the action {action} is of a different type than the parameter can accept."
                ),
                args: vec![value.to_string(), name.into(), action.into()],
                related: vec![format!("#/{name}")],
                severity: "Warning",
                resolution: "Correct the value for the parameter in the request body and resubmit the request if the operation failed.",
            },
        )
    }

    /// 412: `If-Match` names another version of the resource.
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            Message {
                key: "PreconditionFailed",
                text: "The ETag supplied did not match the ETag required to change this resource."
                    .into(),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Try the operation again using the appropriate ETag.",
            },
        )
    }

    /// 400: a session request without its credentials.
    pub fn property_missing(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Message {
                key: "PropertyMissing",
                text: format!(
                    "The property {name} is a required property and must be included in the request."
                ),
                args: vec![name.into()],
                related: vec![format!("#/{name}")],
                severity: "Warning",
                resolution: "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed.",
            },
        )
    }

    /// 503 while every session is in use.
    pub fn session_limit() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Message {
                key: "SessionLimitExceeded",
                text: "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.".into(),
                args: vec![],
                related: vec![],
                severity: "Critical",
                resolution: "Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions (if supported).",
            },
        )
        .header(header::RETRY_AFTER, "2")
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let first = self.messages.first();
        let body = json!({
            "error": {
                "code": first.map_or_else(|| format!("{BASE}.GeneralError"), |m| format!("{BASE}.{}", m.key)),
                "message": first.map_or("An error occurred.", |m| m.text.as_str()),
                "@Message.ExtendedInfo": self.messages.iter().map(Message::json).collect::<Vec<_>>(),
            }
        });
        let mut r = (self.status, super::odata::json_body(&body)).into_response();
        for (k, v) in self.headers {
            r.headers_mut().insert(k, v);
        }
        r
    }
}
