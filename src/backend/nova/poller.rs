//! The poller: after the resolver's first listing, one
//! `GET /servers/detail?changes-since=...` per refresh interval keeps every
//! node's view current however many nodes there are, and every few
//! minutes one full listing catches what `changes-since` cannot show; it
//! also finds servers deleted and re-created under the same name.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::Nova;
use super::client::ServerInfo;
use super::compute::Compute;
use super::metadata::OWNER_KEY;
use super::node::Resolution;
use super::server_index::ServerIndex;
use super::states::Status;
use super::worker;

/// How often the poller lists every server instead of the changed ones.
const FULL_LISTING_EVERY: Duration = Duration::from_secs(300);

impl<C: Compute> Nova<C> {
    /// Connects, resolves, then polls for ever.
    pub(super) async fn control(&self) {
        let mut attempt = 0;
        let listing = loop {
            match self.connect_and_list().await {
                Ok(l) => {
                    self.refreshed();
                    break l;
                }
                Err(e) => {
                    attempt += 1;
                    let delay = worker::backoff(attempt + 1);
                    warn!(error = %e, retry_in = ?delay, "cannot reach the cloud; nodes without pending work answer 'node busy' until it is back");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        self.resolve_all(&listing.servers).await;
        let mut since = next_since(listing.answered, &listing.servers);
        let full_every = (FULL_LISTING_EVERY.as_secs_f64() / self.settings.refresh.as_secs_f64())
            .ceil()
            .max(1.0) as u64;
        // A fixed rate: a slow listing does not stretch the interval.
        let mut tick = tokio::time::interval(self.settings.refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            let full = n.is_multiple_of(full_every);
            let listed = {
                let _permit = self.ctx.limit.acquire().await;
                let since = if full { None } else { since.as_deref() };
                self.ctx.client.list_servers(since, None).await
            };
            match listed {
                Ok(l) => {
                    self.refreshed();
                    self.apply(&l.servers, full).await;
                    if let Some(t) = next_since(l.answered, &l.servers) {
                        since = Some(t);
                    }
                }
                Err(e) => warn!(error = %e, "cannot list servers; keeping the last known states"),
            }
        }
    }

    pub(super) fn refreshed(&self) {
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now());
    }

    /// Applies a listing (only changed servers, unless `full`).
    pub(super) async fn apply(&self, listed: &[ServerInfo], full: bool) {
        let now = Instant::now();
        let mut unmatched = Vec::new();
        for server in listed {
            let node = self
                .by_server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&server.id)
                .copied();
            let matched = node.and_then(|i| self.cells.get(i)).is_some_and(|cell| {
                let mut s = cell.lock();
                if !matches!(&s.resolution, Resolution::Found { id } if id == &server.id) {
                    return false;
                }
                s.observe(server, OWNER_KEY, now);
                // A rename (or, at 2.47, a resize) shows in the FRU, and an
                // interface attached or detached in Redfish's interfaces.
                cell.inventory.send_if_modified(|inv| match inv {
                    Some(inv) => {
                        let flavor = server.flavor_name().unwrap_or(&inv.flavor);
                        let macs = server.macs();
                        let changed =
                            inv.name != server.name || inv.flavor != flavor || inv.macs != macs;
                        if changed {
                            inv.flavor = flavor.to_string();
                            inv.name = server.name.clone();
                            inv.macs = macs;
                        }
                        changed
                    }
                    None => false,
                });
                if server.status == Status::Deleted {
                    warn!(node = %s.name, server = %server.id, "the node's server was deleted; looking for it again by name");
                }
                if let Some(other) = server.metadata.get(OWNER_KEY)
                    && *other != self.ctx.owner
                    && s.owner_warned.as_ref() != Some(other)
                {
                    warn!(node = %s.name, server = %server.id, other = %other,
                        "another novabmc instance now claims this server in its metadata; two BMCs \
                         for one server undo each other's work. Serve each server from one instance");
                    s.owner_warned = Some(other.clone());
                }
                true
            });
            if !matched && server.status != Status::Deleted {
                unmatched.push(server);
            }
        }
        if unmatched.is_empty() && !full {
            return;
        }
        // A server created after start (a redeploy deletes and re-creates
        // it, or the cloud was down) resolves the nodes still looking.
        for (i, (cell, spec)) in self.cells.iter().zip(&self.specs).enumerate() {
            if !matches!(cell.lock().resolution, Resolution::Missing(_)) {
                continue;
            }
            let candidate = unmatched
                .iter()
                .any(|s| s.id == spec.server || s.name == spec.server);
            if !candidate {
                continue;
            }
            // A listing of changes shows only the new server: ask for every
            // server of that name, so a duplicate is still noticed.
            let named = if full {
                Ok(listed.to_vec())
            } else {
                let _permit = self.ctx.limit.acquire().await;
                self.ctx
                    .client
                    .list_servers(None, Some(&spec.server))
                    .await
                    .map(|l| l.servers)
            };
            match named {
                Ok(servers) => {
                    let mut images = HashMap::new();
                    let mut fw = HashMap::new();
                    let index = ServerIndex::new(&servers);
                    self.resolve_one(i, cell, spec, &index, &mut images, &mut fw)
                        .await;
                    self.publish_inventory(cell, &index, &mut HashMap::new())
                        .await;
                    if matches!(cell.lock().resolution, Resolution::Found { .. }) {
                        info!(node = %spec.name, server = %spec.server, "server found again");
                    }
                }
                Err(e) => warn!(node = %spec.name, error = %e, "cannot look the server up"),
            }
        }
    }
}

/// The `changes-since` of the next listing: when Nova answered this one
/// (its `Date` header), else the latest `updated` it showed, minus two
/// seconds because Nova's times have one-second resolution. Both come from
/// Nova's clock, so a skewed local clock loses nothing.
fn next_since(
    answered: Option<chrono::DateTime<chrono::Utc>>,
    servers: &[ServerInfo],
) -> Option<String> {
    let latest = || {
        servers
            .iter()
            .filter_map(|s| s.updated.as_deref())
            .filter_map(|u| chrono::DateTime::parse_from_rfc3339(u).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .max()
    };
    answered.or_else(latest).map(|t| {
        (t - chrono::Duration::seconds(2))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::super::states::Status;
    use super::*;

    pub(super) fn s(id: &str, name: &str, status: &str, updated: &str) -> ServerInfo {
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
    pub(super) fn changes_since_uses_novas_clock() {
        let list = [
            s("u1", "a", "ACTIVE", "2026-01-01T00:00:10Z"),
            s("u2", "b", "ACTIVE", "2026-01-01T00:01:00Z"),
        ];
        assert_eq!(
            next_since(None, &list).as_deref(),
            Some("2026-01-01T00:00:58Z")
        );
        assert_eq!(next_since(None, &[]), None);
        let date = chrono::DateTime::parse_from_rfc2822("Thu, 01 Jan 2026 00:05:00 GMT")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            next_since(Some(date), &list).as_deref(),
            Some("2026-01-01T00:04:58Z")
        );
    }
}
