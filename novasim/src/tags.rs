//! Nova's server tags (compute API microversion 2.26 and later): the
//! `/servers/{id}/tags` routes (list, replace, clear, and one tag's check,
//! add and remove) and the `tags`, `tags-any`, `not-tags` and
//! `not-tags-any` filters of a server listing, with Nova's limits (50
//! tags a server, 60 characters a tag, no `/` or `,`).
//!
//! Below 2.26 the routes answer 404, as Nova's versioned controller does,
//! and a listing ignores the filters (Nova drops query parameters its
//! schema for the version does not know), so a client that forgets the
//! microversion sees every server, as it would on a real cloud. A tag
//! change does not touch the server's `updated` (tags live in a table of
//! their own in Nova), so `changes-since` does not show it.

use std::collections::{BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::{ApiError, St, microversion, with_version};
use super::model::Server;

/// The first microversion with server tags.
pub(super) const TAGS_MINOR: u32 = 26;

/// Most tags one server may carry.
const MAX_TAGS: usize = 50;

/// Longest tag.
const MAX_TAG_LEN: usize = 60;

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route(
            "/compute/v2.1/servers/{id}/tags",
            get(list_tags).put(replace_tags).delete(clear_tags),
        )
        .route(
            "/compute/v2.1/servers/{id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(remove_tag),
        )
}

/// Why a tag is refused, in Nova's words; `None` for a good one.
pub(crate) fn invalid_tag(tag: &str) -> Option<String> {
    if tag.is_empty() || tag.chars().count() > MAX_TAG_LEN {
        return Some(format!(
            "Tag '{tag}' is invalid: it must be 1 to {MAX_TAG_LEN} characters long"
        ));
    }
    if tag.contains(['/', ',']) {
        return Some(format!(
            "Tag '{tag}' is invalid: it must not contain '/' or ','"
        ));
    }
    None
}

/// Whether server `s` passes the tag filters of a listing at
/// microversion `2.minor` (all comma-separated values of `tags` and
/// `not-tags`, any of `tags-any` and `not-tags-any`).
pub(super) fn matches(q: &HashMap<String, String>, s: &Server, minor: u32) -> bool {
    if minor < TAGS_MINOR {
        return true;
    }
    let list = |key: &str| -> Option<Vec<&str>> {
        q.get(key)
            .map(|v| v.split(',').filter(|t| !t.is_empty()).collect())
    };
    let has = |t: &&str| s.tags.contains(*t);
    list("tags").is_none_or(|l| l.iter().all(has))
        && list("tags-any").is_none_or(|l| l.iter().any(has))
        && list("not-tags").is_none_or(|l| !l.iter().all(has))
        && list("not-tags-any").is_none_or(|l| !l.iter().any(has))
}

/// Runs `f` on live server `id` if the request's microversion has tags.
fn with_tags(
    sim: &St,
    headers: &HeaderMap,
    id: &str,
    f: impl FnOnce(&mut BTreeSet<String>) -> Result<Response, ApiError>,
) -> Response {
    let minor = match microversion(headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if minor < TAGS_MINOR {
        return ApiError::not_found("The resource could not be found.").into_response();
    }
    let mut m = sim.lock();
    let r = match m.servers.iter_mut().find(|s| s.id == id && !s.deleted) {
        None => Err(ApiError::not_found(&format!(
            "Instance {id} could not be found."
        ))),
        Some(s) => f(&mut s.tags),
    };
    with_version(minor, r.unwrap_or_else(IntoResponse::into_response))
}

fn tags_body(tags: &BTreeSet<String>) -> Value {
    json!({ "tags": tags })
}

async fn list_tags(State(sim): State<St>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    with_tags(&sim, &headers, &id, |tags| {
        Ok(Json(tags_body(tags)).into_response())
    })
}

/// `PUT /servers/{id}/tags` with `{"tags": [...]}`: replaces them all.
async fn replace_tags(
    State(sim): State<St>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_tags(&sim, &headers, &id, |tags| {
        let new: Vec<String> = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| serde_json::from_value(v.get("tags")?.clone()).ok())
            .ok_or_else(|| {
                ApiError::bad_request("Malformed request body: 'tags' is a required property")
            })?;
        if let Some(why) = new.iter().find_map(|t| invalid_tag(t)) {
            return Err(ApiError::bad_request(&why));
        }
        let new: BTreeSet<String> = new.into_iter().collect();
        if new.len() > MAX_TAGS {
            return Err(ApiError::bad_request(&format!(
                "The number of tags exceeded the per-server limit {MAX_TAGS}"
            )));
        }
        *tags = new;
        Ok(Json(tags_body(tags)).into_response())
    })
}

async fn clear_tags(State(sim): State<St>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    with_tags(&sim, &headers, &id, |tags| {
        tags.clear();
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// 204 if the server has the tag, 404 if not.
async fn check_tag(
    State(sim): State<St>,
    Path((id, tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_tags(&sim, &headers, &id, |tags| {
        if tags.contains(&tag) {
            Ok(StatusCode::NO_CONTENT.into_response())
        } else {
            Err(ApiError::not_found(&format!(
                "Tag {tag} could not be found."
            )))
        }
    })
}

/// 201 for a new tag, 204 for one the server had.
async fn add_tag(
    State(sim): State<St>,
    Path((id, tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let location = format!("{}/compute/v2.1/servers/{id}/tags/{tag}", sim.base_url);
    with_tags(&sim, &headers, &id, |tags| {
        if let Some(why) = invalid_tag(&tag) {
            return Err(ApiError::bad_request(&why));
        }
        if tags.contains(&tag) {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        if tags.len() >= MAX_TAGS {
            return Err(ApiError::bad_request(&format!(
                "The number of tags exceeded the per-server limit {MAX_TAGS}"
            )));
        }
        tags.insert(tag);
        Ok((StatusCode::CREATED, [("location", location)]).into_response())
    })
}

async fn remove_tag(
    State(sim): State<St>,
    Path((id, tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_tags(&sim, &headers, &id, |tags| {
        if tags.remove(&tag) {
            Ok(StatusCode::NO_CONTENT.into_response())
        } else {
            Err(ApiError::not_found(&format!(
                "Tag {tag} could not be found."
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(tags: &[&str]) -> Server {
        let mut s = Server::new(
            std::time::SystemTime::UNIX_EPOCH,
            "u".into(),
            "n".into(),
            "f".into(),
            "i".into(),
            false,
        );
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s
    }

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_follow_novas_all_and_any() {
        let s = server(&["bm", "rack1"]);
        assert!(matches(&q(&[("tags", "bm")]), &s, 26));
        assert!(matches(&q(&[("tags", "bm,rack1")]), &s, 26));
        assert!(!matches(&q(&[("tags", "bm,rack2")]), &s, 26));
        assert!(matches(&q(&[("tags-any", "x,rack1")]), &s, 26));
        assert!(!matches(&q(&[("not-tags", "bm,rack1")]), &s, 26));
        assert!(matches(&q(&[("not-tags", "bm,rack2")]), &s, 26));
        assert!(!matches(&q(&[("not-tags-any", "x,bm")]), &s, 26));
        // Below 2.26 the filters are not Nova's to apply.
        assert!(matches(&q(&[("tags", "other")]), &s, 25));
    }

    #[test]
    fn tags_are_checked_as_nova_does() {
        assert_eq!(invalid_tag("baremetal"), None);
        assert!(invalid_tag("").is_some());
        assert!(invalid_tag("a/b").is_some());
        assert!(invalid_tag("a,b").is_some());
        assert!(invalid_tag(&"x".repeat(61)).is_some());
    }
}
