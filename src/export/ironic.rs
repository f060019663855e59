//! The `ironic` format: a JSON file `openstack baremetal create FILE.json`
//! accepts.
//!
//! python-ironicclient validates the file against a schema whose top level
//! may hold only `chassis` and `nodes`, then passes each node to the node
//! create call, whose attributes are a fixed list (`name`, `driver`,
//! `driver_info`, `properties`, `extra`, `resource_class`, the
//! `*_interface` fields...), with `ports` taken apart and created for the
//! node. So every node here is:
//!
//! - `name`: the node's name in the configuration;
//! - `driver`: `ipmi`, with `driver_info` `ipmi_address`, `ipmi_port`,
//!   `ipmi_username`, `ipmi_password`, `ipmi_priv_level` (ADMINISTRATOR),
//!   `ipmi_cipher_suite` and, with a BMC key, `ipmi_hex_kg_key`;
//! - `properties`: `cpus`, `memory_mb`, `local_gb`, `cpu_arch` and
//!   `capabilities` with `boot_mode:uefi` or `boot_mode:bios`. The node's
//!   top-level `boot_mode` is not set: the API reports it read-only (the
//!   mode the conductor last saw) and the client refuses it at creation;
//!   the capability is how the deploy is told the firmware;
//! - `ports`: one `{"address": MAC}` per port of the server.
//!
//! The `ironic-redfish` format is the same with driver `redfish` and the
//! `driver_info` of Ironic's redfish hardware type: `redfish_address` (the
//! node's Redfish service), `redfish_system_id` (the system's URI, whose Id
//! is the Nova server's UUID), `redfish_username`, `redfish_password` and
//! `redfish_verify_ca` (false for the self-signed certificate novabmc
//! makes itself, whose fingerprint `novabmc check` prints).

use serde_json::{Value, json};

use super::inventory::Entry;
use super::{Access, ExportError, check_all, check_ironic_name};

/// Renders the file.
pub fn render(entries: &[Entry], access: &Access) -> Result<String, ExportError> {
    check_all(entries, |e| check_ironic_name(&e.name))?;
    let nodes: Vec<Value> = entries.iter().map(|e| node(e, access)).collect();
    let doc = json!({ "nodes": nodes });
    Ok(format!("{doc:#}\n"))
}

/// The `driver_info` of the `ipmi` hardware type.
fn driver_info(e: &Entry, access: &Access) -> Value {
    let mut info = json!({
        "ipmi_address": e.listen.ip().to_string(),
        "ipmi_port": e.listen.port(),
        "ipmi_username": access.user,
        "ipmi_password": access.password.json_text(),
        "ipmi_priv_level": access.privilege.name(),
        "ipmi_cipher_suite": access.cipher_suite,
    });
    if let Some(kg) = &access.kg {
        info["ipmi_hex_kg_key"] = json!(kg.json_text());
    }
    info
}

/// Renders the file for the `redfish` hardware type.
pub fn render_redfish(entries: &[Entry], access: &Access) -> Result<String, ExportError> {
    check_all(entries, |e| check_ironic_name(&e.name))?;
    check_all(entries, |e| {
        e.redfish
            .as_ref()
            .map(|_| ())
            .ok_or_else(|| "Redfish is not served for it".to_string())
    })?;
    let nodes: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut n = node(e, access);
            n["driver"] = json!("redfish");
            n["driver_info"] = json!({
                "redfish_address": e.redfish.clone().unwrap_or_default(),
                "redfish_system_id": format!("/redfish/v1/Systems/{}", e.machine.server_id),
                "redfish_username": access.user,
                "redfish_password": access.password.json_text(),
                "redfish_verify_ca": !e.redfish_self_signed,
            });
            n
        })
        .collect();
    let doc = json!({ "nodes": nodes });
    Ok(format!("{doc:#}\n"))
}

fn node(e: &Entry, access: &Access) -> Value {
    let m = &e.machine;
    let mut properties = json!({
        "cpus": m.cpus,
        "memory_mb": m.memory_mb,
        "local_gb": m.disk_gb,
        "cpu_arch": m.arch,
    });
    if let Some(mode) = m.boot_mode {
        properties["capabilities"] = json!(format!("boot_mode:{}", mode.ironic()));
    }
    json!({
        "name": e.name,
        "driver": "ipmi",
        "driver_info": driver_info(e, access),
        "properties": properties,
        "ports": m.macs.iter().map(|mac| json!({"address": mac})).collect::<Vec<_>>(),
    })
}
