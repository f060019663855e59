//! Each node's BMC as a Manager (`ManagerType` BMC: novabmc itself,
//! serving this node) and its machine as a Chassis (DSP0268), linked to
//! the node's system both ways.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::link;
use super::systems::system_uri;
use crate::redfish::auth::Ctx;
use crate::redfish::error::Error;
use crate::redfish::odata;

/// The Managers collection.
pub async fn managers(State(ctx): State<Ctx>) -> Response {
    let members = ctx
        .service
        .systems(&ctx.scope)
        .iter()
        .map(|s| format!("/redfish/v1/Managers/{}", s.id))
        .collect();
    odata::resource(
        odata::collection(
            "/redfish/v1/Managers",
            "#ManagerCollection.ManagerCollection",
            "Manager Collection",
            members,
        ),
        false,
        "GET, HEAD",
    )
}

/// One node's BMC.
pub async fn manager(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let uri = format!("/redfish/v1/Managers/{id}");
    let Some(s) = ctx.service.system(&ctx.scope, &id) else {
        return Error::not_found(&uri).into_response();
    };
    let uri = format!("/redfish/v1/Managers/{}", s.id);
    let mut v = json!({
        "@odata.id": uri,
        "@odata.type": "#Manager.v1_24_0.Manager",
        "Id": s.id,
        "Name": format!("novabmc for {}", s.name),
        "Description": "The virtual BMC of a Nova server",
        "ManagerType": "BMC",
        "FirmwareVersion": env!("CARGO_PKG_VERSION"),
        "Model": "novabmc",
        "ServiceIdentification": s.name,
        "PowerState": "On",
        "Status": { "State": "Enabled", "Health": "OK" },
        "Links": {
            "ManagerForServers": [link(system_uri(&s.id))],
            "ManagerForChassis": [link(format!("/redfish/v1/Chassis/{}", s.id))],
        },
    });
    if s.backend.virtual_media(s.node).is_ok()
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert(
            "VirtualMedia".into(),
            link(super::virtual_media::collection_uri(&uri)),
        );
    }
    odata::resource(v, false, "GET, HEAD")
}

/// The Chassis collection.
pub async fn chassis_collection(State(ctx): State<Ctx>) -> Response {
    let members = ctx
        .service
        .systems(&ctx.scope)
        .iter()
        .map(|s| format!("/redfish/v1/Chassis/{}", s.id))
        .collect();
    odata::resource(
        odata::collection(
            "/redfish/v1/Chassis",
            "#ChassisCollection.ChassisCollection",
            "Chassis Collection",
            members,
        ),
        false,
        "GET, HEAD",
    )
}

/// One node's chassis.
pub async fn chassis(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let uri = format!("/redfish/v1/Chassis/{id}");
    let Some(s) = ctx.service.system(&ctx.scope, &id) else {
        return Error::not_found(&uri).into_response();
    };
    let power = crate::backend::power::is_on(s.backend.as_ref(), s.node).ok();
    let v = json!({
        "@odata.id": format!("/redfish/v1/Chassis/{}", s.id),
        "@odata.type": "#Chassis.v1_28_0.Chassis",
        "Id": s.id,
        "Name": format!("Chassis of {}", s.name),
        "ChassisType": "Other",
        "Manufacturer": crate::backend::inventory::MANUFACTURER,
        "PowerState": match power { Some(true) => json!("On"), Some(false) => json!("Off"), None => json!(null) },
        "Status": { "State": "Enabled", "Health": "OK" },
        "Links": {
            "ComputerSystems": [link(system_uri(&s.id))],
            "ManagedBy": [link(format!("/redfish/v1/Managers/{}", s.id))],
        },
    });
    odata::resource(v, true, "GET, HEAD")
}
