//! The `instackenv` format: TripleO's `nodes.json` (`openstack overcloud
//! node import`), as OpenStack Virtual Baremetal's `build-nodes-json`
//! writes it, but with the BMC's real user and password.
//!
//! TripleO turns `pm_addr`, `pm_port`, `pm_user` and `pm_password` into the
//! `ipmi_*` driver_info fields and passes any other `ipmi_*` key through,
//! which carries the cipher suite, the privilege and the BMC key; `cpu`,
//! `memory`, `disk` and `arch` become the node's properties, and
//! `capabilities` is the properties' capability string. MACs go in `ports`
//! (`mac` is the deprecated spelling TripleO warns about).

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

fn node(e: &Entry, access: &Access) -> Value {
    let m = &e.machine;
    let mut capabilities = Vec::new();
    if let Some(mode) = m.boot_mode {
        capabilities.push(format!("boot_mode:{}", mode.ironic()));
    }
    capabilities.push("boot_option:local".to_string());
    let mut n = json!({
        "name": e.name,
        "pm_type": "ipmi",
        "pm_addr": e.listen.ip().to_string(),
        "pm_port": e.listen.port(),
        "pm_user": access.user,
        "pm_password": access.password.json_text(),
        "ipmi_priv_level": access.privilege.name(),
        "ipmi_cipher_suite": access.cipher_suite,
        "ports": m.macs.iter().map(|mac| json!({"address": mac})).collect::<Vec<_>>(),
        "cpu": m.cpus,
        "memory": m.memory_mb,
        "disk": m.disk_gb,
        "arch": m.arch,
        "capabilities": capabilities.join(","),
    });
    if let Some(kg) = &access.kg {
        n["ipmi_hex_kg_key"] = json!(kg.json_text());
    }
    n
}
