//! Glance v2 as the simulator serves it: the version document, image
//! listing (by name, ID, status or tag) and show, with extra properties as
//! top-level keys as Glance shows them; image create (`queued`), JSON-patch
//! update, data upload (`PUT .../file`, streamed: only the size and the
//! hashes are kept), delete, and interoperable image import
//! (`GET /v2/info/import`, `POST /v2/images/{id}/import`, the web-download
//! itself in [`super::import`]).
//!
//! Errors are Glance's: a plain-text body (`"409 Conflict\n\n<why>\n\n"`)
//! with Glance's wording, the status codes its API gives (201 create, 200
//! patch, 204 upload and delete, 202 import, 403 read-only attributes, 409
//! wrong status, 415 wrong content type).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt as _;
use md5::Digest as _;
use serde_json::{Map, Value, json};

use super::http::St;
use super::model::{iso8601, new_uuid};
use super::{Image, ImportRecord, Model, Sim};

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route("/image", get(image_versions))
        .route("/image/", get(image_versions))
        .route("/image/v2/info/import", get(import_info))
        .route("/image/v2/images", get(list_images).post(create_image))
        .route(
            "/image/v2/images/{id}",
            get(get_image).patch(patch_image).delete(delete_image),
        )
        .route("/image/v2/images/{id}/file", put(upload_file))
        .route("/image/v2/images/{id}/import", post(import_image))
}

async fn image_versions(State(sim): State<St>) -> Response {
    Json(json!({"versions": [{"id": "v2.9", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/image/v2/", sim.base_url)}]}]}))
    .into_response()
}

/// Glance's error: the status line and the explanation as plain text.
pub(super) fn glance_error(status: StatusCode, explanation: &str) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=UTF-8")],
        format!(
            "{} {}\n\n{explanation}\n\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    )
        .into_response()
}

fn no_image(id: &str) -> Response {
    glance_error(
        StatusCode::NOT_FOUND,
        &format!("No image found with ID {id}"),
    )
}

/// An image as Glance v2 shows it.
pub(super) fn image_json(i: &Image) -> Value {
    let mut j = json!({"id": i.id, "name": i.name, "status": i.status, "visibility": i.visibility,
        "container_format": i.container_format, "disk_format": i.disk_format,
        "size": i.size, "virtual_size": i.size,
        "checksum": i.checksum, "os_hash_algo": i.os_hash_value.as_ref().map(|_| "sha512"),
        "os_hash_value": i.os_hash_value, "os_hidden": false,
        "min_disk": i.min_disk, "min_ram": i.min_ram, "protected": i.protected, "tags": i.tags,
        "created_at": i.created_at, "updated_at": i.updated_at,
        "self": format!("/v2/images/{}", i.id), "file": format!("/v2/images/{}/file", i.id),
        "schema": "/v2/schemas/image"});
    // Glance v2 shows extra properties as top-level keys; they never
    // replace the core ones.
    for (k, v) in &i.properties {
        if j.get(k).is_none() {
            j[k] = json!(v);
        }
    }
    if let Some(fw) = &i.hw_firmware_type {
        j["hw_firmware_type"] = json!(fw);
    }
    j
}

async fn list_images(State(sim): State<St>, Query(q): Query<HashMap<String, String>>) -> Response {
    let m = sim.lock();
    let list: Vec<Value> = m
        .images
        .iter()
        .filter(|i| q.get("name").is_none_or(|n| n == &i.name))
        .filter(|i| q.get("id").is_none_or(|n| n == &i.id))
        .filter(|i| q.get("status").is_none_or(|s| s == &i.status))
        .filter(|i| q.get("tag").is_none_or(|t| i.tags.contains(t)))
        .map(image_json)
        .collect();
    Json(json!({"images": list, "schema": "/v2/schemas/images", "first": "/v2/images"}))
        .into_response()
}

async fn get_image(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let m = sim.lock();
    match m.images.iter().find(|i| i.id == id) {
        Some(i) => Json(image_json(i)).into_response(),
        None => no_image(&id),
    }
}

// ----- create and update -----------------------------------------------------

/// Attributes Glance computes and never takes from a request.
const READ_ONLY: &[&str] = &[
    "checksum",
    "created_at",
    "direct_url",
    "file",
    "locations",
    "os_hash_algo",
    "os_hash_value",
    "schema",
    "self",
    "size",
    "status",
    "updated_at",
    "virtual_size",
];

const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];

/// A Glance refusal, answered with [`glance_error`].
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        glance_error(self.0, &self.1)
    }
}

fn schema_error(why: &str) -> Refusal {
    Refusal(
        StatusCode::BAD_REQUEST,
        format!("Provided object does not match schema 'image': {why}"),
    )
}

fn read_only(key: &str) -> Refusal {
    Refusal(
        StatusCode::FORBIDDEN,
        format!("Attribute '{key}' is read-only."),
    )
}

/// Sets `key` of `image` to `value` as Glance's schema allows: core
/// attributes with their types, anything else a string extra property.
fn set_attribute(image: &mut Image, key: &str, value: &Value) -> Result<(), Refusal> {
    let string = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| schema_error(&format!("{v} is not of type 'string'")))
    };
    let choice = |v: &Value, allowed: &[&str]| -> Result<Option<String>, Refusal> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) if allowed.contains(&s.as_str()) => Ok(Some(s.clone())),
            other => Err(schema_error(&format!("{other} is not one of {allowed:?}"))),
        }
    };
    let count = |v: &Value| {
        v.as_u64()
            .ok_or_else(|| schema_error(&format!("{v} is not of type 'integer'")))
    };
    match key {
        "id" => return Err(read_only("id")),
        k if READ_ONLY.contains(&k) => return Err(read_only(k)),
        k if k.starts_with("os_glance") => {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                format!("Attribute '{k}' is reserved."),
            ));
        }
        "name" => {
            image.name = match value {
                Value::Null => String::new(),
                v => string(v)?,
            }
        }
        "disk_format" => image.disk_format = choice(value, DISK_FORMATS)?,
        "container_format" => image.container_format = choice(value, CONTAINER_FORMATS)?,
        "visibility" => {
            image.visibility = choice(value, VISIBILITIES)?.unwrap_or_else(|| "shared".into())
        }
        "min_disk" => image.min_disk = count(value)?,
        "min_ram" => image.min_ram = count(value)?,
        "protected" => {
            image.protected = value
                .as_bool()
                .ok_or_else(|| schema_error(&format!("{value} is not of type 'boolean'")))?
        }
        "tags" => {
            let Some(tags) = value.as_array() else {
                return Err(schema_error(&format!("{value} is not of type 'array'")));
            };
            image.tags = tags.iter().map(string).collect::<Result<_, _>>()?;
        }
        "hw_firmware_type" => image.hw_firmware_type = Some(string(value)?),
        k => {
            image.properties.insert(k.to_string(), string(value)?);
        }
    }
    Ok(())
}

/// The Location and import-method headers of Glance's 201.
fn created(sim: &Sim, m: &Model, image: &Image) -> Response {
    let mut r = (StatusCode::CREATED, Json(image_json(image))).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{}/image/v2/images/{}", sim.base_url, image.id))
    {
        h.insert("location", v);
    }
    if !m.import.methods.is_empty()
        && let Ok(v) = HeaderValue::from_str(&m.import.methods.join(","))
    {
        h.insert("openstack-image-import-methods", v);
    }
    r
}

/// `POST /v2/images`: a `queued` image, no data yet.
async fn create_image(State(sim): State<St>, body: Bytes) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return glance_error(StatusCode::BAD_REQUEST, "Body expected in request.");
    };
    let now = iso8601(sim.now());
    let mut image = Image {
        id: new_uuid(),
        name: String::new(),
        hw_firmware_type: None,
        properties: Default::default(),
        status: "queued".into(),
        disk_format: None,
        container_format: None,
        size: None,
        checksum: None,
        os_hash_value: None,
        tags: Vec::new(),
        visibility: "shared".into(),
        min_disk: 0,
        min_ram: 0,
        protected: false,
        created_at: now.clone(),
        updated_at: now,
        import: None,
    };
    for (k, v) in &body {
        if k == "id" {
            match v.as_str() {
                Some(id)
                    if id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') =>
                {
                    image.id = id.to_ascii_lowercase()
                }
                _ => {
                    return schema_error(&format!("{v} does not match the UUID pattern"))
                        .into_response();
                }
            }
            continue;
        }
        if let Err(r) = set_attribute(&mut image, k, v) {
            return r.into_response();
        }
    }
    let mut m = sim.lock();
    if m.images.iter().any(|i| i.id == image.id) {
        return glance_error(
            StatusCode::CONFLICT,
            &format!("Image with identifier {} already exists!", image.id),
        );
    }
    let r = created(&sim, &m, &image);
    m.images.push(image);
    r
}

const PATCH_TYPES: &[&str] = &[
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
];

/// `PATCH /v2/images/{id}`: JSON-patch add, replace and remove of
/// attributes and properties (`{"op": "add", "path": "/hw_rescue_device",
/// "value": "cdrom"}`), with Glance's rules: `add` sets (under the v2.0
/// media type it refuses an existing key, 409), `replace` and `remove`
/// need the key to exist (409), core attributes cannot be removed (403).
async fn patch_image(
    State(sim): State<St>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let media = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !PATCH_TYPES.contains(&media) {
        let mut r = glance_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The request media type is not supported by this server.",
        );
        if let Ok(v) = HeaderValue::from_str(&PATCH_TYPES.join(", ")) {
            r.headers_mut().insert("accept-patch", v);
        }
        return r;
    }
    let strict_add = media.contains("v2.0");
    let Ok(Value::Array(ops)) = serde_json::from_slice::<Value>(&body) else {
        return glance_error(
            StatusCode::BAD_REQUEST,
            "Request body must be a JSON array of operation objects.",
        );
    };
    let now = iso8601(sim.now());
    let mut m = sim.lock();
    let Some(i) = m.images.iter().position(|i| i.id == id) else {
        return no_image(&id);
    };
    // All or nothing, as Glance saves the image once at the end.
    let mut image = m.images[i].clone();
    for op in &ops {
        let (Some(kind), Some(path)) = (op["op"].as_str(), op["path"].as_str()) else {
            return glance_error(
                StatusCode::BAD_REQUEST,
                "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
            );
        };
        let Some(key) = path
            .strip_prefix('/')
            .filter(|k| !k.is_empty() && !k.contains('/'))
        else {
            return glance_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid JSON pointer for this resource: '{path}'"),
            );
        };
        let key = key.replace("~1", "/").replace("~0", "~");
        let core = is_core(&key);
        let exists = core || image.property(&key).is_some();
        match kind {
            "add" | "replace" => {
                if kind == "replace" && !exists {
                    return glance_error(
                        StatusCode::CONFLICT,
                        &format!("Property {key} does not exist."),
                    );
                }
                if kind == "add" && strict_add && exists && !core {
                    return glance_error(
                        StatusCode::CONFLICT,
                        &format!("Property {key} already present."),
                    );
                }
                let Some(value) = op.get("value") else {
                    return glance_error(
                        StatusCode::BAD_REQUEST,
                        &format!("Operation \"{kind}\" requires a member named \"value\"."),
                    );
                };
                if let Err(r) = set_attribute(&mut image, &key, value) {
                    return r.into_response();
                }
            }
            "remove" => {
                if READ_ONLY.contains(&key.as_str()) || key == "id" {
                    return read_only(&key).into_response();
                }
                if core {
                    return glance_error(
                        StatusCode::FORBIDDEN,
                        &format!("Property {key} may not be removed."),
                    );
                }
                let removed = if key == "hw_firmware_type" {
                    image.hw_firmware_type.take().is_some()
                } else {
                    image.properties.remove(&key).is_some()
                };
                if !removed {
                    return glance_error(
                        StatusCode::CONFLICT,
                        &format!("Property {key} does not exist."),
                    );
                }
            }
            other => {
                return glance_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid operation: `{other}`."),
                );
            }
        }
    }
    image.updated_at = now;
    m.images[i] = image;
    Json(image_json(&m.images[i])).into_response()
}

/// Attributes every image has (they are replaced, never added or removed).
fn is_core(key: &str) -> bool {
    READ_ONLY.contains(&key)
        || [
            "id",
            "name",
            "disk_format",
            "container_format",
            "visibility",
            "min_disk",
            "min_ram",
            "protected",
            "tags",
            "owner",
            "os_hidden",
        ]
        .contains(&key)
}

/// `DELETE /v2/images/{id}`: 204, or 403 for a protected image.
async fn delete_image(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let mut m = sim.lock();
    let Some(i) = m.images.iter().position(|i| i.id == id) else {
        return no_image(&id);
    };
    if m.images[i].protected {
        return glance_error(
            StatusCode::FORBIDDEN,
            &format!("Image {id} is protected and cannot be deleted."),
        );
    }
    m.images.remove(i);
    StatusCode::NO_CONTENT.into_response()
}

// ----- data --------------------------------------------------------------------

/// Checks that `image` may take data now (Glance's status transition to
/// `target` and its formats rule).
fn check_takes_data(image: &Image, target: &str) -> Result<(), Refusal> {
    if image.status != "queued" {
        return Err(Refusal(
            StatusCode::CONFLICT,
            format!(
                "Image status transition from {} to {target} is not allowed",
                image.status
            ),
        ));
    }
    let missing: Vec<&str> = [
        ("disk_format", image.disk_format.is_none()),
        ("container_format", image.container_format.is_none()),
    ]
    .into_iter()
    .filter_map(|(k, missing)| missing.then_some(k))
    .collect();
    match missing.len() {
        0 => Ok(()),
        1 => Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("Property {} must be set prior to saving data.", missing[0]),
        )),
        _ => Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!(
                "Properties {} must be set prior to saving data.",
                missing.join(", ")
            ),
        )),
    }
}

/// The running size and hashes of image data.
pub(super) struct Hasher {
    md5: md5::Md5,
    sha512: sha2::Sha512,
    /// Bytes so far.
    pub(super) size: u64,
}

impl Hasher {
    pub(super) fn new() -> Self {
        Hasher {
            md5: md5::Md5::new(),
            sha512: sha2::Sha512::new(),
            size: 0,
        }
    }

    pub(super) fn update(&mut self, chunk: &[u8]) {
        self.md5.update(chunk);
        self.sha512.update(chunk);
        self.size += chunk.len() as u64;
    }

    /// Makes `image` active with this data.
    pub(super) fn finish(self, image: &mut Image, now: String) {
        image.size = Some(self.size);
        image.checksum = Some(hex::encode(self.md5.finalize()));
        image.os_hash_value = Some(hex::encode(self.sha512.finalize()));
        image.status = "active".into();
        image.updated_at = now;
    }
}

/// Sets the status of image `id` back to `queued` after a failed upload
/// or import.
pub(super) fn requeue(m: &mut Model, id: &str) {
    if let Some(i) = m.images.iter_mut().find(|i| i.id == id) {
        i.status = "queued".into();
        i.size = None;
    }
}

/// `PUT /v2/images/{id}/file`: the data, streamed (never held: only its
/// size, MD5 and SHA-512 are kept). 204, the image `active`.
async fn upload_file(
    State(sim): State<St>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let octets = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().map(str::trim) == Some("application/octet-stream"));
    if !octets {
        return glance_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The request media type is not supported by this server.",
        );
    }
    let max = {
        let mut m = sim.lock();
        let max = m.import.max_bytes;
        let Some(image) = m.images.iter_mut().find(|i| i.id == id) else {
            return no_image(&id);
        };
        if let Err(r) = check_takes_data(image, "saving") {
            return r.into_response();
        }
        image.status = "saving".into();
        max
    };
    let mut hasher = Hasher::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(_) => {
                requeue(&mut sim.lock(), &id);
                return glance_error(
                    StatusCode::BAD_REQUEST,
                    "Failed to upload image data: the request body ended early.",
                );
            }
        };
        hasher.update(&chunk);
        if hasher.size > max {
            requeue(&mut sim.lock(), &id);
            return glance_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Image exceeds the storage quota: the size limit is {max} bytes."),
            );
        }
    }
    let now = iso8601(sim.now());
    let mut m = sim.lock();
    match m.images.iter_mut().find(|i| i.id == id) {
        Some(image) => {
            hasher.finish(image, now);
            StatusCode::NO_CONTENT.into_response()
        }
        None => glance_error(
            StatusCode::GONE,
            &format!(
                "Image {id} could not be found after upload. The image may have been deleted during the upload."
            ),
        ),
    }
}

// ----- interoperable import ------------------------------------------------------

/// `GET /v2/info/import`: the enabled import methods.
async fn import_info(State(sim): State<St>) -> Response {
    let methods = sim.lock().import.methods.clone();
    Json(
        json!({"import-methods": {"description": "Import methods available.",
        "type": "array", "value": methods}}),
    )
    .into_response()
}

/// `POST /v2/images/{id}/import` `{"method": {"name": "web-download",
/// "uri": URL}}`: Glance's checks in its order, then 202 and the download
/// in the background. `copy-image` of an active image is accepted and
/// changes nothing (one store).
async fn import_image(State(sim): State<St>, Path(id): Path<String>, body: Bytes) -> Response {
    let refuse = sim.lock().faults.import_refuse_status;
    if refuse != 0 {
        let status = StatusCode::from_u16(refuse).unwrap_or(StatusCode::FORBIDDEN);
        let why = match status {
            StatusCode::FORBIDDEN => {
                "You are not authorized to complete image_import action.".to_string()
            }
            StatusCode::CONFLICT => format!(
                "New operation on image '{id}' is not permitted as prior operation is still in progress"
            ),
            _ => "The import was refused.".to_string(),
        };
        return glance_error(status, &why);
    }
    let body: Map<String, Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => o,
        _ => return glance_error(StatusCode::BAD_REQUEST, "Body expected in request."),
    };
    let Some(method) = body.get("method").and_then(Value::as_object) else {
        return glance_error(
            StatusCode::BAD_REQUEST,
            "Import request requires a 'method' field.",
        );
    };
    let Some(name) = method.get("name").and_then(Value::as_str) else {
        return glance_error(
            StatusCode::BAD_REQUEST,
            "Import request requires a 'name' field.",
        );
    };
    let uri = method
        .get("uri")
        .and_then(Value::as_str)
        .map(str::to_string);
    let settings = {
        let mut m = sim.lock();
        if !m.import.methods.iter().any(|x| x == name) {
            return glance_error(
                StatusCode::BAD_REQUEST,
                &format!("Unknown import method name '{name}'."),
            );
        }
        let settings = m.import.clone();
        let Some(image) = m.images.iter_mut().find(|i| i.id == id) else {
            return no_image(&id);
        };
        let conflict = |why: String| glance_error(StatusCode::CONFLICT, &why);
        if image.status == "active" && name != "copy-image" {
            return conflict("Image with status active cannot be target for import".into());
        }
        if image.status != "active" && name == "copy-image" {
            return conflict("Only images with status active can be targeted for copying".into());
        }
        if image.status != "queued" && name == "web-download" {
            return conflict(format!(
                "Image needs to be in 'queued' state to use '{name}' method"
            ));
        }
        if image.status != "uploading" && name == "glance-direct" {
            return conflict(
                "Image needs to be staged before 'glance-direct' method can be used".into(),
            );
        }
        if image.container_format.is_none() {
            return conflict("'container_format' needs to be set before import".into());
        }
        if image.disk_format.is_none() {
            return conflict("'disk_format' needs to be set before import".into());
        }
        if image.properties.contains_key("os_glance_import_task") {
            return conflict(format!(
                "New operation on image '{id}' is not permitted as prior operation is still in progress"
            ));
        }
        if name == "copy-image" {
            return StatusCode::ACCEPTED.into_response();
        }
        if !uri
            .as_deref()
            .is_some_and(|u| super::import::uri_allowed(u, settings.filter_uris))
        {
            return glance_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "URI for web-download does not pass filtering: {}",
                    uri.as_deref().unwrap_or("None")
                ),
            );
        }
        // The import lock, taken before the 202 as Glance does.
        image
            .properties
            .insert("os_glance_import_task".into(), new_uuid());
        image.import = Some(ImportRecord {
            method: name.to_string(),
            uri: uri.clone(),
            state: "pending".into(),
            error: None,
            bytes: 0,
        });
        settings
    };
    let Some(uri) = uri else {
        return glance_error(
            StatusCode::BAD_REQUEST,
            "URI for web-download does not pass filtering: None",
        );
    };
    tokio::spawn(super::import::web_download(sim.clone(), id, uri, settings));
    StatusCode::ACCEPTED.into_response()
}
