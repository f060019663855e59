//! The resources (DSP0268 schemas), one module per part of the tree:
//! [`root`] (service root, `/odata`, `$metadata`), [`systems`] (the
//! ComputerSystem with its Reset action, boot override, NICs and secure
//! boot), [`managers`] (each node's BMC and chassis), [`accounts`]
//! (AccountService, read-only), [`sessions`] (SessionService) and
//! [`virtual_media`] (each node's CD, USB stick and floppy).

pub mod accounts;
pub mod managers;
pub mod root;
pub mod sessions;
pub mod systems;
pub mod virtual_media;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use super::MAX_BODY;
use super::error::Error;

/// Reads a request body as a JSON object: 413 past [`MAX_BODY`], 415 for
/// another media type, 400 for anything but a JSON object.
pub async fn json_object(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, Error> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.starts_with("application/json") {
            return Err(Error::unsupported_media_type());
        }
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Error::too_large(MAX_BODY))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::malformed_json("the body is not a JSON object")),
        Err(e) => Err(Error::malformed_json(&e.to_string())),
    }
}

/// `{"@odata.id": id}`.
pub fn link(id: impl Into<String>) -> Value {
    serde_json::json!({ "@odata.id": id.into() })
}
