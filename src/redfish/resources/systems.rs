//! The ComputerSystem (DSP0268) of each node: its power state and Reset
//! action, its boot override (the record IPMI's boot options are), its
//! NICs (the Nova server's ports) and its secure boot state.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{json_object, link};
use crate::backend::boot::{self, BootChange, BootMode, BootOverride, BootTarget, OverrideEnabled};
use crate::backend::power::{self, PowerRequest};
use crate::backend::{BackendError, inventory::MANUFACTURER};
use crate::redfish::auth::{Caller, Ctx, require_configure};
use crate::redfish::error::Error;
use crate::redfish::{System, odata};

/// The targets a client may set (what the Nova backend can boot).
const SETTABLE_TARGETS: [BootTarget; 5] = [
    BootTarget::None,
    BootTarget::Pxe,
    BootTarget::Hdd,
    BootTarget::Cd,
    BootTarget::BiosSetup,
];

const RESET: &str = "ComputerSystem.Reset";

fn target_name(t: BootTarget) -> &'static str {
    match t {
        BootTarget::None => "None",
        BootTarget::Pxe => "Pxe",
        BootTarget::Hdd => "Hdd",
        BootTarget::Cd => "Cd",
        BootTarget::BiosSetup => "BiosSetup",
        BootTarget::Floppy => "Floppy",
        BootTarget::Diags => "Diags",
        BootTarget::RemoteDrive => "RemoteDrive",
    }
}

fn enabled_name(e: OverrideEnabled) -> &'static str {
    match e {
        OverrideEnabled::Disabled => "Disabled",
        OverrideEnabled::Once => "Once",
        OverrideEnabled::Continuous => "Continuous",
    }
}

fn mode_name(m: BootMode) -> &'static str {
    match m {
        BootMode::Uefi => "UEFI",
        BootMode::Legacy => "Legacy",
    }
}

fn reset_name(r: PowerRequest) -> &'static str {
    match r {
        PowerRequest::On => "On",
        PowerRequest::ForceOn => "ForceOn",
        PowerRequest::ForceOff => "ForceOff",
        PowerRequest::GracefulShutdown => "GracefulShutdown",
        PowerRequest::ForceRestart => "ForceRestart",
        PowerRequest::GracefulRestart => "GracefulRestart",
        PowerRequest::PowerCycle => "PowerCycle",
        PowerRequest::Nmi => "Nmi",
    }
}

/// The URI of a system.
pub fn system_uri(id: &str) -> String {
    format!("/redfish/v1/Systems/{id}")
}

/// The answer for a backend refusal.
pub fn backend_error(e: &BackendError) -> Error {
    match e {
        BackendError::NotReady(why) => Error::unavailable(why),
        BackendError::Unavailable(why) => Error::not_possible(why),
        BackendError::NotRecorded(why) => Error::internal(why),
    }
}

fn find(ctx: &Ctx, id: &str) -> Result<System, Error> {
    ctx.service
        .system(&ctx.scope, id)
        .ok_or_else(|| Error::not_found(&system_uri(id)))
}

/// The Systems collection.
pub async fn collection(State(ctx): State<Ctx>) -> Response {
    let members = ctx
        .service
        .systems(&ctx.scope)
        .iter()
        .map(|s| system_uri(&s.id))
        .collect();
    odata::resource(
        odata::collection(
            "/redfish/v1/Systems",
            "#ComputerSystemCollection.ComputerSystemCollection",
            "Computer System Collection",
            members,
        ),
        false,
        "GET, HEAD",
    )
}

/// A system's representation.
pub fn system_json(s: &System) -> Value {
    let uri = system_uri(&s.id);
    let power = power::is_on(s.backend.as_ref(), s.node);
    let boot = boot::read(s.backend.as_ref(), s.node);
    let (state, power_state) = match &power {
        Ok(true) => ("Enabled", json!("On")),
        Ok(false) => ("Enabled", json!("Off")),
        Err(BackendError::NotReady(_)) => ("Starting", Value::Null),
        Err(BackendError::Unavailable(_) | BackendError::NotRecorded(_)) => {
            ("UnavailableOffline", Value::Null)
        }
    };
    let inv = s.inventory.as_ref();
    let mut boot_json = json!({
        "BootSourceOverrideEnabled@Redfish.AllowableValues": ["Disabled", "Once", "Continuous"],
        "BootSourceOverrideTarget@Redfish.AllowableValues":
            SETTABLE_TARGETS.iter().map(|t| target_name(*t)).collect::<Vec<_>>(),
        "BootSourceOverrideMode@Redfish.AllowableValues": ["UEFI", "Legacy"],
    });
    if let (Ok(b), Some(obj)) = (&boot, boot_json.as_object_mut()) {
        obj.insert(
            "BootSourceOverrideEnabled".into(),
            json!(enabled_name(b.enabled)),
        );
        obj.insert(
            "BootSourceOverrideTarget".into(),
            json!(target_name(b.target)),
        );
        obj.insert("BootSourceOverrideMode".into(), json!(mode_name(b.mode)));
    }
    let mut v = json!({
        "@odata.id": uri,
        "@odata.type": "#ComputerSystem.v1_27_0.ComputerSystem",
        "Id": s.id,
        "Name": inv.map_or(s.name.as_str(), |i| i.name.as_str()),
        "Description": format!("Node {} (a Nova server)", s.name),
        "SystemType": "Virtual",
        "Manufacturer": MANUFACTURER,
        "Model": inv.map_or("", |i| i.flavor.as_str()),
        "PowerState": power_state,
        "Status": { "State": state, "Health": "OK" },
        "Boot": boot_json,
        "EthernetInterfaces": link(format!("{uri}/EthernetInterfaces")),
        "SecureBoot": link(format!("{uri}/SecureBoot")),
        "Links": {
            "ManagedBy": [link(format!("/redfish/v1/Managers/{}", s.id))],
            "Chassis": [link(format!("/redfish/v1/Chassis/{}", s.id))],
        },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{uri}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues":
                    PowerRequest::ALL.iter().map(|r| reset_name(*r)).collect::<Vec<_>>(),
                "@Redfish.ActionInfo": format!("{uri}/ResetActionInfo"),
            }
        },
    });
    if let (Some(i), Some(obj)) = (inv, v.as_object_mut()) {
        obj.insert("UUID".into(), json!(i.uuid));
        obj.insert("SerialNumber".into(), json!(i.uuid));
    }
    if s.backend.virtual_media(s.node).is_ok()
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert(
            "VirtualMedia".into(),
            link(super::virtual_media::collection_uri(&uri)),
        );
    }
    v
}

/// GET a system.
pub async fn get_system(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match find(&ctx, &id) {
        Ok(s) => odata::resource(system_json(&s), true, "GET, HEAD, PATCH"),
        Err(e) => e.into_response(),
    }
}

/// PATCH a system: only `Boot`'s three override properties are writable.
pub async fn patch_system(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match patch(&ctx, &id, &caller, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn patch(
    ctx: &Ctx,
    id: &str,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let system = find(ctx, id)?;
    let body = json_object(headers, body).await?;
    require_configure(caller)?;
    let change = boot_change(&body)?;
    if let Some(m) = headers.get(header::IF_MATCH) {
        let current = odata::etag_of(&system_json(&system));
        if !odata::if_match_allows(m.to_str().unwrap_or_default(), &current) {
            return Err(Error::precondition_failed());
        }
    }
    if let Some(change) = change {
        let after = boot::change(system.backend.as_ref(), system.node, change)
            .map_err(|e| backend_error(&e))?;
        log_boot(&system, &after, &caller.user);
    }
    let after = find(ctx, id)?;
    Ok(odata::resource(
        system_json(&after),
        true,
        "GET, HEAD, PATCH",
    ))
}

fn log_boot(s: &System, o: &BootOverride, user: &str) {
    tracing::info!(
        node = %s.name,
        user,
        target = target_name(o.target),
        enabled = enabled_name(o.enabled),
        mode = mode_name(o.mode),
        "Redfish boot override set"
    );
}

/// The boot change a PATCH body asks for, or the first thing wrong in it
/// (every problem is named, with its JSON pointer).
fn boot_change(body: &Map<String, Value>) -> Result<Option<BootChange>, Error> {
    let mut errors: Option<Error> = None;
    let mut add = |e: Error| {
        errors = Some(match errors.take() {
            Some(prev) => prev.and(e),
            None => e,
        });
    };
    let mut change = BootChange::default();
    let mut any = false;
    for (k, v) in body {
        if k.starts_with('@') {
            continue;
        }
        match k.as_str() {
            "Boot" => {
                let Some(boot) = v.as_object() else {
                    add(Error::value_type("#/Boot", "Boot", v));
                    continue;
                };
                for (bk, bv) in boot {
                    let pointer = format!("#/Boot/{bk}");
                    if bk.starts_with('@') || bk.contains("@Redfish.") || bk.contains("@odata.") {
                        continue;
                    }
                    let Some(text) = bv.as_str() else {
                        if matches!(
                            bk.as_str(),
                            "BootSourceOverrideTarget"
                                | "BootSourceOverrideEnabled"
                                | "BootSourceOverrideMode"
                        ) {
                            add(Error::value_type(&pointer, bk, bv));
                        } else {
                            add(unwritable(&pointer, bk));
                        }
                        continue;
                    };
                    match bk.as_str() {
                        "BootSourceOverrideTarget" => {
                            match SETTABLE_TARGETS.iter().find(|t| target_name(**t) == text) {
                                Some(t) => change.target = Some(*t),
                                None => add(Error::value_not_in_list(&pointer, bk, text)),
                            }
                        }
                        "BootSourceOverrideEnabled" => match text {
                            "Disabled" => change.enabled = Some(OverrideEnabled::Disabled),
                            "Once" => change.enabled = Some(OverrideEnabled::Once),
                            "Continuous" => change.enabled = Some(OverrideEnabled::Continuous),
                            _ => add(Error::value_not_in_list(&pointer, bk, text)),
                        },
                        "BootSourceOverrideMode" => match text {
                            "UEFI" => change.mode = Some(BootMode::Uefi),
                            "Legacy" => change.mode = Some(BootMode::Legacy),
                            _ => add(Error::value_not_in_list(&pointer, bk, text)),
                        },
                        _ => add(unwritable(&pointer, bk)),
                    }
                    any = true;
                }
            }
            other => add(unwritable(&format!("#/{other}"), other)),
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(any.then_some(change)),
    }
}

/// Read-only properties of a system and its Boot object; others are
/// unknown.
fn unwritable(pointer: &str, name: &str) -> Error {
    const KNOWN: [&str; 28] = [
        "VirtualMedia",
        "Id",
        "Name",
        "Description",
        "SystemType",
        "Manufacturer",
        "Model",
        "PowerState",
        "Status",
        "UUID",
        "SerialNumber",
        "EthernetInterfaces",
        "SecureBoot",
        "Links",
        "Actions",
        "AssetTag",
        "HostName",
        "IndicatorLED",
        "BiosVersion",
        "ProcessorSummary",
        "MemorySummary",
        "Bios",
        "UefiTargetBootSourceOverride",
        "BootSourceOverrideEnabled@Redfish.AllowableValues",
        "BootOrder",
        "BootNext",
        "HttpBootUri",
        "AutomaticRetryConfig",
    ];
    if KNOWN.contains(&name) {
        Error::property_not_writable(pointer, name)
    } else {
        Error::property_unknown(pointer, name)
    }
}

/// POST ComputerSystem.Reset.
pub async fn reset(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match do_reset(&ctx, &id, &caller, &headers, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn do_reset(
    ctx: &Ctx,
    id: &str,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), Error> {
    let system = find(ctx, id)?;
    let body = json_object(headers, body).await?;
    require_configure(caller)?;
    let request = reset_type(&body)?;
    let control = power::request(system.backend.as_ref(), system.node, request)
        .map_err(|e| backend_error(&e))?;
    ctx.service.recorder.control(control.name());
    tracing::info!(node = %system.name, user = %caller.user, reset = reset_name(request), "Redfish reset");
    Ok(())
}

fn reset_type(body: &Map<String, Value>) -> Result<PowerRequest, Error> {
    for k in body.keys() {
        if k != "ResetType" && !k.starts_with('@') {
            return Err(Error::parameter_unknown(RESET, k));
        }
    }
    let Some(v) = body.get("ResetType") else {
        return Err(Error::parameter_missing(RESET, "ResetType"));
    };
    let Some(text) = v.as_str() else {
        return Err(Error::parameter_type(RESET, "ResetType", v));
    };
    PowerRequest::ALL
        .iter()
        .copied()
        .find(|r| reset_name(*r) == text)
        .ok_or_else(|| Error::parameter_not_in_list(RESET, "ResetType", text))
}

/// The Reset action's parameters.
pub async fn reset_action_info(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let s = match find(&ctx, &id) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let v = json!({
        "@odata.id": format!("{}/ResetActionInfo", system_uri(&s.id)),
        "@odata.type": "#ActionInfo.v1_5_0.ActionInfo",
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [{
            "Name": "ResetType",
            "Required": true,
            "DataType": "String",
            "AllowableValues": PowerRequest::ALL.iter().map(|r| reset_name(*r)).collect::<Vec<_>>(),
        }],
    });
    odata::resource(v, false, "GET, HEAD")
}

/// The NICs: one per port of the server.
pub async fn interfaces(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let s = match find(&ctx, &id) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let uri = format!("{}/EthernetInterfaces", system_uri(&s.id));
    let members = macs(&s)
        .iter()
        .map(|m| format!("{uri}/{}", nic_id(m)))
        .collect();
    odata::resource(
        odata::collection(
            &uri,
            "#EthernetInterfaceCollection.EthernetInterfaceCollection",
            "Ethernet Interface Collection",
            members,
        ),
        false,
        "GET, HEAD",
    )
}

fn macs(s: &System) -> Vec<String> {
    s.inventory
        .as_ref()
        .map(|i| i.macs.clone())
        .unwrap_or_default()
}

/// A NIC's Id: its MAC without separators.
fn nic_id(mac: &str) -> String {
    mac.replace(':', "").to_ascii_lowercase()
}

/// One NIC.
pub async fn interface(
    State(ctx): State<Ctx>,
    Path((id, nic)): Path<(String, String)>,
) -> Response {
    let s = match find(&ctx, &id) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let uri = format!("{}/EthernetInterfaces/{nic}", system_uri(&s.id));
    let Some(mac) = macs(&s).into_iter().find(|m| nic_id(m) == nic) else {
        return Error::not_found(&uri).into_response();
    };
    let v = json!({
        "@odata.id": uri,
        "@odata.type": "#EthernetInterface.v1_12_4.EthernetInterface",
        "Id": nic,
        "Name": "Nova port",
        "MACAddress": mac,
        "PermanentMACAddress": mac,
        "Status": { "State": "Enabled", "Health": "OK" },
    });
    odata::resource(v, false, "GET, HEAD")
}

/// Secure boot, as the server's image asks for it (read-only: Nova fixes
/// it at boot from `os_secure_boot`).
pub async fn secure_boot(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let s = match find(&ctx, &id) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let on = s
        .inventory
        .as_ref()
        .and_then(|i| i.secure_boot)
        .unwrap_or(false);
    let v = json!({
        "@odata.id": format!("{}/SecureBoot", system_uri(&s.id)),
        "@odata.type": "#SecureBoot.v1_1_2.SecureBoot",
        "Id": "SecureBoot",
        "Name": "UEFI Secure Boot",
        "SecureBootEnable": on,
        "SecureBootCurrentBoot": if on { "Enabled" } else { "Disabled" },
        "SecureBootMode": if on { "DeployedMode" } else { "SetupMode" },
    });
    odata::resource(v, true, "GET, HEAD")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_boot_patch_is_read_and_every_fault_named() {
        let c = boot_change(&body(json!({"Boot": {"BootSourceOverrideTarget": "Pxe"}})))
            .expect("ok")
            .expect("change");
        assert_eq!(c.target, Some(BootTarget::Pxe));
        assert_eq!(c.enabled, None, "kept as it is");
        let e = boot_change(&body(json!({
            "Boot": {"BootSourceOverrideTarget": "Floppy", "BootSourceOverrideEnabled": 1},
            "PowerState": "On",
            "Bogus": true,
        })))
        .expect_err("four faults");
        let keys: Vec<&str> = e.messages.iter().map(|m| m.key).collect();
        // In the order of the body's keys, sorted.
        assert_eq!(
            keys,
            [
                "PropertyUnknown",
                "PropertyValueTypeError",
                "PropertyValueNotInList",
                "PropertyNotWritable"
            ]
        );
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.messages[0].related, ["#/Bogus"]);
        assert_eq!(e.messages[1].related, ["#/Boot/BootSourceOverrideEnabled"]);
    }

    #[test]
    fn reset_types_are_checked() {
        assert_eq!(
            reset_type(&body(json!({"ResetType": "Nmi"}))).ok(),
            Some(PowerRequest::Nmi)
        );
        let keys = |v| reset_type(&body(v)).err().map(|e| e.messages[0].key);
        assert_eq!(keys(json!({})), Some("ActionParameterMissing"));
        assert_eq!(
            keys(json!({"ResetType": "Off"})),
            Some("ActionParameterValueNotInList")
        );
        assert_eq!(
            keys(json!({"ResetType": 1})),
            Some("ActionParameterValueTypeError")
        );
        assert_eq!(
            keys(json!({"ResetType": "On", "Force": true})),
            Some("ActionParameterUnknown")
        );
    }
}
