//! The AccountService (DSP0268), read-only: the configured users as
//! accounts with their roles, and the three predefined roles. Accounts
//! are managed in the configuration file, not over the wire.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::link;
use crate::redfish::accounts::Role;
use crate::redfish::auth::Ctx;
use crate::redfish::error::Error;
use crate::redfish::odata;

/// The AccountService.
pub async fn service() -> Response {
    let v = json!({
        "@odata.id": "/redfish/v1/AccountService",
        "@odata.type": "#AccountService.v1_18_1.AccountService",
        "Id": "AccountService",
        "Name": "Account Service",
        "Description": "The users of novabmc's configuration file (read-only)",
        "ServiceEnabled": true,
        "Status": { "State": "Enabled", "Health": "OK" },
        "Accounts": link("/redfish/v1/AccountService/Accounts"),
        "Roles": link("/redfish/v1/AccountService/Roles"),
    });
    odata::resource(v, false, "GET, HEAD")
}

/// The accounts.
pub async fn accounts(State(ctx): State<Ctx>) -> Response {
    let members = ctx
        .service
        .accounts()
        .list
        .iter()
        .map(|a| format!("/redfish/v1/AccountService/Accounts/{}", a.name))
        .collect();
    odata::resource(
        odata::collection(
            "/redfish/v1/AccountService/Accounts",
            "#ManagerAccountCollection.ManagerAccountCollection",
            "Accounts Collection",
            members,
        ),
        false,
        "GET, HEAD",
    )
}

/// One account.
pub async fn account(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let uri = format!("/redfish/v1/AccountService/Accounts/{id}");
    let accounts = ctx.service.accounts();
    let Some(a) = accounts.get(&id) else {
        return Error::not_found(&uri).into_response();
    };
    let v = json!({
        "@odata.id": uri,
        "@odata.type": "#ManagerAccount.v1_14_1.ManagerAccount",
        "Id": a.name,
        "Name": "User Account",
        "UserName": a.name,
        "RoleId": a.role.id(),
        "Enabled": true,
        "Locked": false,
        "AccountTypes": ["Redfish", "IPMI"],
        "Links": { "Role": link(format!("/redfish/v1/AccountService/Roles/{}", a.role.id())) },
    });
    odata::resource(v, true, "GET, HEAD")
}

/// The predefined roles.
pub async fn roles() -> Response {
    let members = Role::ALL
        .iter()
        .map(|r| format!("/redfish/v1/AccountService/Roles/{}", r.id()))
        .collect();
    odata::resource(
        odata::collection(
            "/redfish/v1/AccountService/Roles",
            "#RoleCollection.RoleCollection",
            "Roles Collection",
            members,
        ),
        false,
        "GET, HEAD",
    )
}

/// One role.
pub async fn role(Path(id): Path<String>) -> Response {
    let uri = format!("/redfish/v1/AccountService/Roles/{id}");
    let Some(r) = Role::ALL.iter().find(|r| r.id() == id) else {
        return Error::not_found(&uri).into_response();
    };
    let v = json!({
        "@odata.id": uri,
        "@odata.type": "#Role.v1_3_3.Role",
        "Id": r.id(),
        "Name": format!("{} role", r.id()),
        "RoleId": r.id(),
        "IsPredefined": true,
        "AssignedPrivileges": r.privileges(),
    });
    odata::resource(v, false, "GET, HEAD")
}
