//! Each node's virtual media (DSP0268 VirtualMedia v1_6, the
//! VirtualMediaCollection): a `Cd` (MediaTypes CD, DVD), a `UsbStick` and a
//! `Floppy`, with the `InsertMedia` and `EjectMedia` actions and, for
//! clients older than the actions, a PATCH of `Image` and `Inserted`.
//!
//! The same devices appear under the node's Manager (where Ironic's and
//! sushy's older code looks) and under its ComputerSystem (where Redfish
//! 2021.1 and later put them): two URIs for one device, as on physical
//! BMCs that serve both.
//!
//! An insert is answered once the URL has answered and the request is
//! recorded (204); the image then loads into the cloud in the background,
//! and `Status` shows it: `Starting` while it loads, `Enabled` once ready,
//! and a Critical condition with the reason if it failed (then `Inserted`
//! reads false).

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::json_object;
use crate::backend::virtual_media::{MediaDevice, MediaError, MediaInsert, MediaStatus, MediaView};
use crate::redfish::System;
use crate::redfish::auth::{Caller, Ctx, require_configure};
use crate::redfish::error::{BASE, Error};
use crate::redfish::odata;
use crate::redfish::resources::systems::backend_error;

const INSERT: &str = "VirtualMedia.InsertMedia";
const EJECT: &str = "VirtualMedia.EjectMedia";

/// The collection's URI under the resource at `base` (a system or manager).
pub fn collection_uri(base: &str) -> String {
    format!("{base}/VirtualMedia")
}

/// Where the request's collection hangs: everything before
/// `/VirtualMedia` in its path, with the node's canonical Id.
fn base_of(uri: &Uri, system: &System) -> String {
    if uri.path().starts_with("/redfish/v1/Managers/") {
        format!("/redfish/v1/Managers/{}", system.id)
    } else {
        format!("/redfish/v1/Systems/{}", system.id)
    }
}

fn find(ctx: &Ctx, uri: &Uri, id: &str) -> Result<System, Error> {
    ctx.service
        .system(&ctx.scope, id)
        .ok_or_else(|| Error::not_found(uri.path()))
}

fn device_of(uri: &Uri, id: &str) -> Result<MediaDevice, Error> {
    MediaDevice::of_id(id).ok_or_else(|| Error::not_found(uri.path()))
}

fn media_error(e: MediaError) -> Error {
    match e {
        MediaError::BadImage(why) => Error::parameter_value(INSERT, "Image", &why),
        MediaError::Occupied(why) => Error::media_in_use(&why),
        MediaError::Backend(b) => backend_error(&b),
    }
}

/// The node's devices, or the error a backend without them gives.
fn views(system: &System) -> Result<Vec<MediaView>, Error> {
    system
        .backend
        .virtual_media(system.node)
        .map_err(|e| backend_error(&e))
}

/// The collection.
pub async fn collection(State(ctx): State<Ctx>, Path(id): Path<String>, uri: Uri) -> Response {
    let system = match find(&ctx, &uri, &id) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let base = base_of(&uri, &system);
    let members = match views(&system) {
        Ok(v) => v
            .iter()
            .map(|m| format!("{}/{}", collection_uri(&base), m.device.id()))
            .collect(),
        Err(e) => return e.into_response(),
    };
    odata::resource(
        odata::collection(
            &collection_uri(&base),
            "#VirtualMediaCollection.VirtualMediaCollection",
            "Virtual Media Collection",
            members,
        ),
        false,
        "GET, HEAD",
    )
}

fn media_json(base: &str, m: &MediaView) -> Value {
    let uri = format!("{}/{}", collection_uri(base), m.device.id());
    let (name, types) = match m.device {
        MediaDevice::Cd => ("Virtual CD", json!(["CD", "DVD"])),
        MediaDevice::UsbStick => ("Virtual USB stick", json!(["USBStick"])),
        MediaDevice::Floppy => ("Virtual floppy", json!(["Floppy"])),
    };
    let protocol = m.image.as_deref().map(|i| {
        if i.starts_with("https:") {
            "HTTPS"
        } else {
            "HTTP"
        }
    });
    let mut status = Map::new();
    let (state, health) = match &m.status {
        MediaStatus::Empty | MediaStatus::Ejecting => ("Enabled", "OK"),
        MediaStatus::Loading => ("Starting", "OK"),
        MediaStatus::Ready => ("Enabled", "OK"),
        MediaStatus::Failed(_) => ("Enabled", "Critical"),
    };
    status.insert("State".into(), json!(state));
    status.insert("Health".into(), json!(health));
    if let MediaStatus::Failed(why) = &m.status {
        status.insert(
            "Conditions".into(),
            json!([{
                "MessageId": format!("{BASE}.GeneralError"),
                "Message": format!("The image could not be loaded: {why}"),
                "Severity": "Critical",
            }]),
        );
    }
    json!({
        "@odata.id": uri,
        "@odata.type": "#VirtualMedia.v1_6_5.VirtualMedia",
        "Id": m.device.id(),
        "Name": name,
        "MediaTypes": types,
        "Image": m.image,
        "ImageName": m.image_name,
        "Inserted": m.inserted,
        "WriteProtected": m.write_protected,
        "ConnectedVia": if m.image.is_some() { "URI" } else { "NotConnected" },
        "TransferProtocolType": protocol,
        "TransferMethod": "Upload",
        "Password": null,
        "Status": status,
        "Actions": {
            "#VirtualMedia.InsertMedia": {"target": format!("{uri}/Actions/{INSERT}")},
            "#VirtualMedia.EjectMedia": {"target": format!("{uri}/Actions/{EJECT}")},
        },
    })
}

fn one(system: &System, device: MediaDevice) -> Result<MediaView, Error> {
    views(system)?
        .into_iter()
        .find(|m| m.device == device)
        .ok_or_else(|| Error::not_possible("the node has no such device"))
}

/// One device.
pub async fn device(
    State(ctx): State<Ctx>,
    Path((id, dev)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let r = (|| {
        let system = find(&ctx, &uri, &id)?;
        let device = device_of(&uri, &dev)?;
        let m = one(&system, device)?;
        Ok::<_, Error>(media_json(&base_of(&uri, &system), &m))
    })();
    match r {
        Ok(v) => odata::resource(v, false, "GET, HEAD, PATCH"),
        Err(e) => e.into_response(),
    }
}

/// The insert request a body asks for (the action's parameters, or a
/// PATCH's properties), naming the parameter at fault.
fn insert_request(action: &str, body: &Map<String, Value>) -> Result<Option<MediaInsert>, Error> {
    const KNOWN: [&str; 7] = [
        "Image",
        "Inserted",
        "WriteProtected",
        "TransferProtocolType",
        "TransferMethod",
        "UserName",
        "Password",
    ];
    for k in body.keys() {
        if !KNOWN.contains(&k.as_str()) && !k.starts_with('@') {
            return Err(Error::parameter_unknown(action, k));
        }
    }
    let text = |name: &str| -> Result<Option<&str>, Error> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(Error::parameter_type(action, name, v)),
        }
    };
    let flag = |name: &str| -> Result<Option<bool>, Error> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Error::parameter_type(action, name, v)),
        }
    };
    let image = text("Image")?;
    let inserted = flag("Inserted")?;
    let write_protected = flag("WriteProtected")?.unwrap_or(true);
    if let Some(p) = text("TransferProtocolType")?
        && !matches!(p, "HTTP" | "HTTPS")
    {
        return Err(Error::parameter_not_in_list(
            action,
            "TransferProtocolType",
            p,
        ));
    }
    if let Some(m) = text("TransferMethod")?
        && !matches!(m, "Upload" | "Stream")
    {
        return Err(Error::parameter_not_in_list(action, "TransferMethod", m));
    }
    let user = text("UserName")?;
    let password = text("Password")?;
    let Some(image) = image.filter(|i| !i.is_empty()) else {
        return Ok(None);
    };
    if inserted == Some(false) {
        return Err(Error::parameter_value(
            action,
            "Inserted",
            "an image given with Inserted false would be neither inserted nor ejected",
        ));
    }
    if let Some(p) = text("TransferProtocolType")? {
        let scheme = image.split(':').next().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case(p) {
            return Err(Error::parameter_value(
                action,
                "TransferProtocolType",
                &format!("{p} does not match the scheme of Image ({scheme})"),
            ));
        }
    }
    Ok(Some(MediaInsert {
        image: image.to_string(),
        write_protected,
        credentials: user.map(|u| (u.to_string(), password.unwrap_or_default().to_string())),
    }))
}

async fn insert(
    ctx: &Ctx,
    system: &System,
    caller: &Caller,
    device: MediaDevice,
    request: MediaInsert,
) -> Result<(), Error> {
    let image = request.image.clone();
    system
        .backend
        .insert_media(system.node, device, request)
        .await
        .map_err(media_error)?;
    ctx.service.recorder.control("insert_media");
    tracing::info!(node = %system.name, user = %caller.user, device = %device, image = %image, "Redfish virtual media insert");
    Ok(())
}

fn eject(ctx: &Ctx, system: &System, caller: &Caller, device: MediaDevice) -> Result<(), Error> {
    system
        .backend
        .eject_media(system.node, device)
        .map_err(media_error)?;
    ctx.service.recorder.control("eject_media");
    tracing::info!(node = %system.name, user = %caller.user, device = %device, "Redfish virtual media eject");
    Ok(())
}

/// A change request's node and device and its body as a JSON object, once
/// the caller may change them. An empty body reads as `{}`: EjectMedia
/// has no parameters, and sushy posts no body for it.
async fn target(
    ctx: &Ctx,
    uri: &Uri,
    (id, dev): (&str, &str),
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<(System, MediaDevice, Map<String, Value>), Error> {
    let system = find(ctx, uri, id)?;
    let device = device_of(uri, dev)?;
    let bytes = axum::body::to_bytes(body, crate::redfish::MAX_BODY)
        .await
        .map_err(|_| Error::too_large(crate::redfish::MAX_BODY))?;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        json_object(headers, Body::from(bytes)).await?
    };
    require_configure(caller)?;
    Ok((system, device, body))
}

/// 204 for a carried-out action, else the error.
fn no_content(r: Result<(), Error>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `VirtualMedia.InsertMedia`.
pub async fn insert_action(
    State(ctx): State<Ctx>,
    Path((id, dev)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    no_content(
        async {
            let (system, device, body) =
                target(&ctx, &uri, (&id, &dev), &caller, &headers, body).await?;
            let Some(request) = insert_request(INSERT, &body)? else {
                return Err(Error::parameter_missing(INSERT, "Image"));
            };
            insert(&ctx, &system, &caller, device, request).await
        }
        .await,
    )
}

/// `VirtualMedia.EjectMedia`.
pub async fn eject_action(
    State(ctx): State<Ctx>,
    Path((id, dev)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    no_content(
        async {
            let (system, device, body) =
                target(&ctx, &uri, (&id, &dev), &caller, &headers, body).await?;
            if let Some(k) = body.keys().find(|k| !k.starts_with('@')) {
                return Err(Error::parameter_unknown(EJECT, k));
            }
            eject(&ctx, &system, &caller, device)
        }
        .await,
    )
}

/// PATCH of a device: `Image` (with `Inserted` true or absent) inserts,
/// `Image` null or empty or `Inserted` false ejects, as older clients do
/// it.
pub async fn patch(
    State(ctx): State<Ctx>,
    Path((id, dev)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let (system, device, body) =
            target(&ctx, &uri, (&id, &dev), &caller, &headers, body).await?;
        // Image null (sushy), "" (some other clients) or Inserted false.
        let ejecting = body
            .get("Image")
            .is_some_and(|i| i.is_null() || i.as_str() == Some(""))
            || body.get("Inserted") == Some(&Value::Bool(false));
        if ejecting {
            if let Some(k) = body
                .keys()
                .find(|k| !matches!(k.as_str(), "Image" | "Inserted") && !k.starts_with('@'))
            {
                return Err(Error::property_unknown(&format!("#/{k}"), k));
            }
            eject(&ctx, &system, &caller, device)?;
        } else {
            match insert_request("PATCH", &body)? {
                Some(request) => insert(&ctx, &system, &caller, device, request).await?,
                None => return Err(Error::property_missing("Image")),
            }
        }
        let m = one(&system, device)?;
        Ok(media_json(&base_of(&uri, &system), &m))
    }
    .await;
    match r {
        Ok(v) => odata::resource(v, false, "GET, HEAD, PATCH"),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn insert_parameters_are_checked_by_name() {
        let ok = insert_request(
            INSERT,
            &body(
                json!({"Image": "http://h/a.iso", "Inserted": true, "WriteProtected": true,
                "TransferProtocolType": "HTTP"}),
            ),
        );
        assert!(matches!(ok, Ok(Some(_))));
        for (b, name) in [
            (json!({"Image": 3}), "Image"),
            (
                json!({"Image": "http://h/a.iso", "TransferProtocolType": "NFS"}),
                "TransferProtocolType",
            ),
            (
                json!({"Image": "http://h/a.iso", "TransferProtocolType": "HTTPS"}),
                "TransferProtocolType",
            ),
            (json!({"Image": "http://h/a.iso", "Bogus": 1}), "Bogus"),
        ] {
            let e = insert_request(INSERT, &body(b.clone())).expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{b}");
            assert!(
                e.messages.iter().any(|m| m.args.iter().any(|a| a == name)),
                "{b}: {:?}",
                e.messages
            );
        }
    }
}
