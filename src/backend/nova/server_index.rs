//! Finding a node's server in a listing: by UUID, else by exact name,
//! live servers only. `serve`, `check` and `export` all resolve nodes with
//! this, so a node means the same server to each.

use std::collections::HashMap;

use super::client::ServerInfo;
use super::states::Status;

/// Why a node's server was not found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    /// No live server has that UUID or name.
    #[error("server {0} not found")]
    NotFound(String),
    /// Several live servers have that name.
    #[error(
        "server name {name} is ambiguous: {} servers have it ({}); use the UUID",
        ids.len(),
        ids.join(", ")
    )]
    Ambiguous {
        /// The name.
        name: String,
        /// The servers that have it.
        ids: Vec<String>,
    },
}

/// A listing indexed by UUID and by name (live servers only), so that
/// resolving thousands of nodes costs one pass over the listing, not one
/// per node.
#[derive(Debug)]
pub struct ServerIndex<'a> {
    by_id: HashMap<&'a str, &'a ServerInfo>,
    by_name: HashMap<&'a str, Vec<&'a ServerInfo>>,
}

impl<'a> ServerIndex<'a> {
    /// Indexes `servers`, leaving out deleted ones.
    pub fn new(servers: &'a [ServerInfo]) -> Self {
        let mut by_id = HashMap::with_capacity(servers.len());
        let mut by_name: HashMap<&str, Vec<&ServerInfo>> = HashMap::with_capacity(servers.len());
        for s in servers.iter().filter(|s| s.status != Status::Deleted) {
            by_id.insert(s.id.as_str(), s);
            by_name.entry(s.name.as_str()).or_default().push(s);
        }
        ServerIndex { by_id, by_name }
    }

    /// The server a node names: by UUID, else by exact name; a name
    /// several live servers share is an error naming their UUIDs. `serve`,
    /// `check` and `export` all resolve nodes with this, so a node means
    /// the same server to each.
    pub fn find(&self, reference: &str) -> Result<&'a ServerInfo, FindError> {
        if let Some(s) = self.by_id.get(reference) {
            return Ok(s);
        }
        match self.by_name.get(reference).map(Vec::as_slice) {
            Some([one]) => Ok(one),
            None | Some([]) => Err(FindError::NotFound(reference.to_string())),
            Some(many) => Err(FindError::Ambiguous {
                name: reference.to_string(),
                ids: many.iter().map(|s| s.id.clone()).collect(),
            }),
        }
    }
}

/// [`ServerIndex::find`] over a listing, for one lookup.
pub fn find_server<'a>(
    servers: &'a [ServerInfo],
    reference: &str,
) -> Result<&'a ServerInfo, FindError> {
    ServerIndex::new(servers).find(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, name: &str, status: &str, updated: &str) -> ServerInfo {
        ServerInfo {
            id: id.into(),
            name: name.into(),
            status: Status::parse(status),
            task_state: None,
            vm_state: None,
            power_state: None,
            metadata: Default::default(),
            image: None,
            updated: Some(updated.into()),
            flavor: serde_json::Value::Null,
            addresses: Default::default(),
        }
    }

    #[test]
    fn finds_by_uuid_or_unique_name() {
        let list = [
            s("u1", "a", "ACTIVE", "2026-01-01T00:00:00Z"),
            s("u2", "b", "ACTIVE", "2026-01-01T00:00:00Z"),
            s("u3", "b", "SHUTOFF", "2026-01-01T00:00:00Z"),
            s("u4", "c", "DELETED", "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(find_server(&list, "u2").map(|s| s.id.as_str()), Ok("u2"));
        assert_eq!(find_server(&list, "a").map(|s| s.id.as_str()), Ok("u1"));
        let ambiguous = find_server(&list, "b").expect_err("ambiguous");
        assert!(matches!(&ambiguous, FindError::Ambiguous { ids, .. } if ids.len() == 2));
        assert!(ambiguous.to_string().contains("ambiguous"));
        let deleted = find_server(&list, "c").expect_err("deleted");
        assert!(matches!(deleted, FindError::NotFound(_)));
        assert!(deleted.to_string().contains("not found"));
    }
}
