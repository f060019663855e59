//! The routes file: each node's `[nodes.NAME.route]` for layout (b),
//! written by `apply` (and removed by `destroy`) and read by every
//! configuration load (see [`crate::config::network`]), so `serve`
//! installs the policy routes at start and a reload (SIGHUP) picks up a
//! new apply. A node keeps its table from one apply to the next; a new
//! node gets the lowest free table from `network.table_base` on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

use super::cloud::NetError;

/// One node's route as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    /// The node's table.
    pub table: u32,
    /// The router's address on the node's subnet.
    pub gateway: IpAddr,
    /// The node's NIC, when `apply` ran on the BMC instance and found it.
    #[serde(default)]
    pub interface: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawFile {
    #[serde(default)]
    nodes: BTreeMap<String, RawNode>,
}

#[derive(Debug, Deserialize)]
struct RawNode {
    route: Entry,
}

/// The entries of the file at `path` (none when it does not exist).
pub fn read(path: &Path) -> Result<BTreeMap<String, Entry>, NetError> {
    if std::fs::metadata(path).is_err() {
        return Ok(BTreeMap::new());
    }
    let raw: RawFile = Figment::from(Toml::file_exact(path))
        .extract()
        .map_err(|e| NetError::Host(format!("cannot read {}: {e}", path.display())))?;
    Ok(raw.nodes.into_iter().map(|(k, v)| (k, v.route)).collect())
}

/// The lowest table from `base` on that no other node uses.
pub fn free_table(base: u32, used: &BTreeSet<u32>) -> u32 {
    let mut t = base;
    while used.contains(&t) || (253..=255).contains(&t) {
        t += 1;
    }
    t
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The file's text.
pub fn render(name: &str, entries: &BTreeMap<String, Entry>) -> String {
    let mut t = format!(
        "# Written by `novabmc network apply` for {}: the route of each node\n\
         # with a NIC of its own. novabmc reads it with its configuration (a\n\
         # reload picks up changes); a [nodes.NAME.route] in the configuration\n\
         # wins over the one here. Do not edit: the next apply rewrites it.\n",
        quoted(name)
    );
    for (node, e) in entries {
        t.push_str(&format!(
            "\n[nodes.{}.route]\ntable = {}\ngateway = {}\n",
            quoted(node),
            e.table,
            quoted(&e.gateway.to_string())
        ));
        if let Some(i) = &e.interface {
            t.push_str(&format!("interface = {}\n", quoted(i)));
        }
    }
    t
}

/// Writes `text` to `path` (creating its directory) unless it already
/// holds it; returns whether it wrote. The file is replaced whole, so a
/// reload never reads half of it.
pub fn write(path: &Path, text: &str) -> Result<bool, NetError> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| NetError::Host(format!("cannot create {}: {e}", dir.display())))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| NetError::Host(format!("cannot write in {}: {e}", dir.display())))?;
    use std::io::Write;
    tmp.write_all(text.as_bytes())
        .map_err(|e| NetError::Host(format!("cannot write {}: {e}", path.display())))?;
    tmp.persist(path)
        .map_err(|e| NetError::Host(format!("cannot write {}: {e}", path.display())))?;
    Ok(true)
}

/// Removes the file; whether there was one.
pub fn remove(path: &Path) -> Result<bool, NetError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(NetError::Host(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_entries_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub").join("routes.toml");
        let mut entries = BTreeMap::new();
        entries.insert(
            "node \"1\"".to_string(),
            Entry {
                table: 1001,
                gateway: "10.0.1.1".parse().expect("ip"),
                interface: Some("ens5".into()),
            },
        );
        entries.insert(
            "node-2".to_string(),
            Entry {
                table: 1002,
                gateway: "fd00::1".parse().expect("ip"),
                interface: None,
            },
        );
        let text = render("bmc", &entries);
        assert!(write(&path, &text).expect("write"));
        assert!(
            !write(&path, &text).expect("write"),
            "unchanged, not rewritten"
        );
        assert_eq!(read(&path).expect("read"), entries);
        assert!(remove(&path).expect("remove"));
        assert!(read(&path).expect("read").is_empty());
    }

    #[test]
    fn tables_skip_used_and_reserved_ones() {
        let used: BTreeSet<u32> = [1000, 1001].into_iter().collect();
        assert_eq!(free_table(1000, &used), 1002);
        assert_eq!(free_table(252, &[252].into_iter().collect()), 256);
    }
}
