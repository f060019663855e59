//! The entry points (DSP0266 sections 6.2 to 6.4): `/redfish`, the
//! service root, the OData service document and the `$metadata` document
//! that names the schemas this service uses. None needs a login.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::link;
use crate::redfish::auth::Ctx;
use crate::redfish::odata;

/// The schema versions this service's resources are, for `$metadata`.
const SCHEMAS: [(&str, &str); 22] = [
    ("ServiceRoot_v1", "ServiceRoot.v1_20_0"),
    ("ComputerSystemCollection_v1", "ComputerSystemCollection"),
    ("ComputerSystem_v1", "ComputerSystem.v1_27_0"),
    ("ActionInfo_v1", "ActionInfo.v1_5_0"),
    (
        "EthernetInterfaceCollection_v1",
        "EthernetInterfaceCollection",
    ),
    ("EthernetInterface_v1", "EthernetInterface.v1_12_4"),
    ("SecureBoot_v1", "SecureBoot.v1_1_2"),
    ("ManagerCollection_v1", "ManagerCollection"),
    ("Manager_v1", "Manager.v1_24_0"),
    ("ChassisCollection_v1", "ChassisCollection"),
    ("Chassis_v1", "Chassis.v1_28_0"),
    ("AccountService_v1", "AccountService.v1_18_1"),
    ("ManagerAccountCollection_v1", "ManagerAccountCollection"),
    ("ManagerAccount_v1", "ManagerAccount.v1_14_1"),
    ("RoleCollection_v1", "RoleCollection"),
    ("Role_v1", "Role.v1_3_3"),
    ("SessionService_v1", "SessionService.v1_2_0"),
    ("SessionCollection_v1", "SessionCollection"),
    ("Session_v1", "Session.v1_8_0"),
    ("Message_v1", "Message.v1_3_0"),
    ("Resource_v1", "Resource.v1_23_0"),
    ("RedfishExtensions_v1", "RedfishExtensions.v1_0_0"),
];

/// `/redfish`: the protocol versions.
pub async fn versions() -> Response {
    (
        StatusCode::OK,
        odata::json_body(&json!({ "v1": "/redfish/v1/" })),
    )
        .into_response()
}

/// The service root.
pub async fn service_root(State(ctx): State<Ctx>) -> Response {
    let v = json!({
        "@odata.id": "/redfish/v1/",
        "@odata.type": "#ServiceRoot.v1_20_0.ServiceRoot",
        "Id": "RootService",
        "Name": "novabmc Redfish service",
        "RedfishVersion": "1.21.0",
        "UUID": ctx.service.uuid,
        "Vendor": "novabmc",
        "Product": "novabmc",
        "ProtocolFeaturesSupported": {
            "ExcerptQuery": false,
            "ExpandQuery": {
                "ExpandAll": false,
                "Levels": false,
                "Links": false,
                "NoLinks": false,
            },
            "FilterQuery": false,
            "OnlyMemberQuery": false,
            "SelectQuery": false,
        },
        "Systems": link("/redfish/v1/Systems"),
        "Managers": link("/redfish/v1/Managers"),
        "Chassis": link("/redfish/v1/Chassis"),
        "AccountService": link("/redfish/v1/AccountService"),
        "SessionService": link("/redfish/v1/SessionService"),
        "Links": {
            "Sessions": link("/redfish/v1/SessionService/Sessions"),
        },
    });
    odata::resource(v, false, "GET, HEAD")
}

/// The OData service document.
pub async fn odata() -> Response {
    let entry = |name: &str, url: &str| json!({"name": name, "kind": "Singleton", "url": url});
    let v = json!({
        "@odata.context": "/redfish/v1/$metadata",
        "value": [
            entry("Service", "/redfish/v1/"),
            entry("Systems", "/redfish/v1/Systems"),
            entry("Managers", "/redfish/v1/Managers"),
            entry("Chassis", "/redfish/v1/Chassis"),
            entry("AccountService", "/redfish/v1/AccountService"),
            entry("SessionService", "/redfish/v1/SessionService"),
            entry("Sessions", "/redfish/v1/SessionService/Sessions"),
        ],
    });
    (StatusCode::OK, odata::json_body(&v)).into_response()
}

/// `$metadata`: a reference to each schema the resources use, and the
/// entity container of the service root.
pub async fn metadata() -> Response {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    for (file, namespace) in SCHEMAS {
        let base = namespace.split('.').next().unwrap_or(namespace);
        x.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{file}.xml\">\n    \
             <edmx:Include Namespace=\"{base}\"/>\n"
        ));
        if namespace != base {
            x.push_str(&format!("    <edmx:Include Namespace=\"{namespace}\"/>\n"));
        }
        x.push_str("  </edmx:Reference>\n");
    }
    x.push_str(
        "  <edmx:DataServices>\n    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" \
         Namespace=\"Service\">\n      <EntityContainer Name=\"Service\" \
         Extends=\"ServiceRoot.v1_20_0.ServiceContainer\"/>\n    </Schema>\n  \
         </edmx:DataServices>\n</edmx:Edmx>\n",
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        )],
        x,
    )
        .into_response()
}
