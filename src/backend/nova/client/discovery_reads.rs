//! The listing discovery makes ([`crate::discovery`]): every server with
//! what selects it (name, metadata, tags) and what orders it (creation
//! time), filtered by tag in Nova when a tag selects (`GET
//! /servers/detail?tags=TAG`, microversion 2.26, the first with tags).

use std::collections::HashMap;

use osauth::ApiVersion;
use serde::Deserialize;

use super::{NovaClient, NovaError};
use crate::backend::nova::states::Status;

/// The first compute microversion with server tags (the `tags` field and
/// the `tags=` filter).
pub const TAGS: ApiVersion = ApiVersion(2, 26);

/// A server as discovery reads it from a listing.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ListedServer {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// API status.
    pub status: Status,
    /// Creation time as Nova writes it (ISO 8601, UTC), which orders
    /// servers the same way on every look.
    #[serde(default)]
    pub created: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    /// Tags; only shown from microversion 2.26.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl NovaClient {
    /// Every live server (deleted and soft-deleted ones left out), or with
    /// `tag` those carrying it, asked at 2.26 so Nova filters and shows
    /// the tags. A cloud without 2.26 refuses the call (406), which the
    /// error says.
    pub async fn list_for_discovery(
        &self,
        tag: Option<&str>,
    ) -> Result<Vec<ListedServer>, NovaError> {
        let call = match tag {
            Some(t) => format!("GET servers/detail?tags={t} (microversion 2.26)"),
            None => "GET servers/detail".to_string(),
        };
        let query: Vec<(&str, String)> = tag.map(|t| ("tags", t.to_string())).into_iter().collect();
        let version = tag.map(|_| TAGS);
        self.bounded(("compute", "discover_servers"), &call, async {
            let (mut servers, _) = self.server_pages::<ListedServer>(query, version).await?;
            servers.retain(|s| !matches!(s.status, Status::Deleted | Status::SoftDeleted));
            Ok(servers)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_server_needs_only_its_id_name_and_status() {
        let s: ListedServer = serde_json::from_value(serde_json::json!({
            "id": "u", "name": "n", "status": "ACTIVE", "future": 1
        }))
        .expect("parse");
        assert!(s.tags.is_empty() && s.metadata.is_empty() && s.created.is_empty());
        let s: ListedServer = serde_json::from_value(serde_json::json!({
            "id": "u", "name": "n", "status": "SHUTOFF", "created": "2026-01-01T00:00:00Z",
            "metadata": {"role": "bm"}, "tags": ["baremetal"]
        }))
        .expect("parse");
        assert_eq!(s.tags, ["baremetal"]);
        assert_eq!(s.metadata["role"], "bm");
    }
}
