//! What every Redfish response carries (DSP0266 sections 8.1 and 9): JSON
//! with `@odata.id` and `@odata.type`, an `@odata.etag` and `ETag` header
//! on resources that change, `OData-Version: 4.0`, and bodies no client
//! can misread as another charset.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The media type of every JSON body.
pub const JSON: &str = "application/json; charset=utf-8";

/// A JSON body with its content type.
pub fn json_body(v: &Value) -> ([(header::HeaderName, HeaderValue); 1], String) {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        v.to_string(),
    )
}

/// The entity tag of a resource: a weak tag over its representation (so
/// two reads of an unchanged resource have the same tag, and any change
/// of what a client sees changes it).
pub fn etag_of(v: &Value) -> String {
    let digest = Sha256::digest(v.to_string().as_bytes());
    let h: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{h}\"")
}

/// Whether an `If-Match` value lets a change of the resource whose tag is
/// `current` go ahead (`*`, or a list holding the tag; weak and strong
/// forms compare equal, as clients echo what they read).
pub fn if_match_allows(if_match: &str, current: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let current = bare(current);
    if_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == current)
}

/// Where a resource's JSON schema is (DSP0266 section 8.4.3): the `Link`
/// header with `rel=describedby`, naming the same version as the
/// resource's `@odata.type`.
pub fn schema_link(odata_type: &str) -> Option<String> {
    // "#ComputerSystem.v1_27_0.ComputerSystem" -> "ComputerSystem.v1_27_0"
    // "#ComputerSystemCollection.ComputerSystemCollection" ->
    // "ComputerSystemCollection"
    let t = odata_type.strip_prefix('#')?;
    let (namespace, _) = t.rsplit_once('.')?;
    Some(format!(
        "<http://redfish.dmtf.org/schemas/v1/{namespace}.json>; rel=describedby"
    ))
}

/// A resource answer: the body (with `@odata.etag` added when `etag`),
/// its `ETag`, the methods it takes (`Allow`) and where its schema is.
pub fn resource(mut v: Value, etag: bool, allow: &'static str) -> Response {
    let tag = etag.then(|| etag_of(&v));
    if let (Some(t), Some(obj)) = (&tag, v.as_object_mut()) {
        obj.insert("@odata.etag".into(), Value::String(t.clone()));
    }
    let link = v
        .get("@odata.type")
        .and_then(Value::as_str)
        .and_then(schema_link);
    let mut r = (StatusCode::OK, json_body(&v)).into_response();
    let h = r.headers_mut();
    if let Some(t) = tag
        && let Ok(v) = HeaderValue::from_str(&t)
    {
        h.insert(header::ETAG, v);
    }
    if let Some(l) = link
        && let Ok(v) = HeaderValue::from_str(&l)
    {
        h.insert(header::LINK, v);
    }
    h.insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// A collection of `members` (their `@odata.id`s) at `id`.
pub fn collection(id: &str, odata_type: &str, name: &str, members: Vec<String>) -> Value {
    let members: Vec<Value> = members
        .into_iter()
        .map(|m| serde_json::json!({ "@odata.id": m }))
        .collect();
    serde_json::json!({
        "@odata.id": id,
        "@odata.type": odata_type,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_tags_weak_or_strong() {
        let t = "W/\"abc\"";
        assert!(if_match_allows("W/\"abc\"", t));
        assert!(if_match_allows("\"abc\"", t));
        assert!(if_match_allows("\"x\", W/\"abc\"", t));
        assert!(if_match_allows("*", t));
        assert!(!if_match_allows("W/\"abd\"", t));
    }

    #[test]
    fn the_schema_link_names_the_resource_version() {
        assert_eq!(
            schema_link("#ComputerSystem.v1_27_0.ComputerSystem").as_deref(),
            Some(
                "<http://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_27_0.json>; rel=describedby"
            )
        );
        assert_eq!(
            schema_link("#ComputerSystemCollection.ComputerSystemCollection").as_deref(),
            Some(
                "<http://redfish.dmtf.org/schemas/v1/ComputerSystemCollection.json>; rel=describedby"
            )
        );
    }

    #[test]
    fn the_tag_follows_the_content() {
        let a = serde_json::json!({"PowerState": "On"});
        let b = serde_json::json!({"PowerState": "Off"});
        assert_eq!(etag_of(&a), etag_of(&a.clone()));
        assert_ne!(etag_of(&a), etag_of(&b));
    }
}
