//! Glance's web-download import, carried out by the simulator itself: it
//! fetches the URL over HTTP (reqwest, no proxy), bounded in size and
//! time, hashing the data as it streams and keeping none of it.
//!
//! The image walks Glance's statuses for one store: the import lock
//! `os_glance_import_task` is taken before the API's 202; the task then
//! sets `importing` (with `os_glance_importing_to_stores` and
//! `os_glance_failed_import` as empty store lists, as a Glance without
//! multiple stores shows them), and ends `active` with `size`, `checksum`
//! and `os_hash_value`, or back in `queued` with no size. Either way the
//! lock is released. Why it failed is only in the simulator's record
//! ([`super::ImportRecord`]), as real Glance keeps it in its task.
//!
//! The URL filter ([`uri_allowed`]) is Glance's `import_filtering_opts`
//! with their defaults (http and https, ports 80 and 443) plus refusing
//! loopback, private and link-local hosts, as operators add; it applies
//! only when the control API turns it on, so tests can serve files on
//! loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::http::St;
use super::image::{Hasher, requeue};
use super::model::iso8601;
use super::{ImportSettings, Model};

/// Whether Glance accepts `uri` for web-download: a URL with a host in
/// any case, and with `filter` Glance's default filtering plus no local
/// hosts.
pub(super) fn uri_allowed(uri: &str, filter: bool) -> bool {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    if !filter {
        return true;
    }
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    // Glance looks at the port written in the URL only.
    if url.port().is_some_and(|p| p != 80 && p != 443) {
        return false;
    }
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(a)) => !local_v4(a),
        Ok(IpAddr::V6(a)) => !local_v6(a),
        Err(_) => host != "localhost" && !host.ends_with(".localhost"),
    }
}

fn local_v4(a: Ipv4Addr) -> bool {
    a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified() || a.is_broadcast()
}

fn local_v6(a: Ipv6Addr) -> bool {
    let first = a.segments()[0];
    a.is_loopback()
        || a.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || a.to_ipv4_mapped().is_some_and(local_v4)
}

/// Sets the import record's state (and error) of image `id`.
fn record(m: &mut Model, id: &str, state: &str, error: Option<String>, bytes: u64) {
    if let Some(r) = m
        .images
        .iter_mut()
        .find(|i| i.id == id)
        .and_then(|i| i.import.as_mut())
    {
        r.state = state.into();
        r.error = error;
        r.bytes = bytes;
    }
}

/// The background task of a web-download import of `uri` into image `id`.
pub(super) async fn web_download(sim: St, id: String, uri: String, settings: ImportSettings) {
    {
        let mut m = sim.lock();
        let Some(image) = m.images.iter_mut().find(|i| i.id == id) else {
            return;
        };
        image.status = "importing".into();
        for key in ["os_glance_importing_to_stores", "os_glance_failed_import"] {
            image.properties.insert(key.into(), String::new());
        }
        record(&mut m, &id, "processing", None, 0);
    }
    let result = fetch(&sim, &id, &uri, &settings).await;
    let now = iso8601(sim.now());
    let mut m = sim.lock();
    match result {
        Ok(hasher) => {
            let bytes = hasher.size;
            if let Some(image) = m.images.iter_mut().find(|i| i.id == id) {
                hasher.finish(image, now);
            }
            record(&mut m, &id, "success", None, bytes);
        }
        Err((error, bytes)) => {
            tracing::debug!(image = %id, %uri, %error, "simulated web-download failed");
            requeue(&mut m, &id);
            record(&mut m, &id, "failure", Some(error), bytes);
        }
    }
    if let Some(image) = m.images.iter_mut().find(|i| i.id == id) {
        image.properties.remove("os_glance_import_task");
        image
            .properties
            .insert("os_glance_importing_to_stores".into(), String::new());
    }
}

/// Downloads `uri`, hashing it; the error and the bytes received on
/// failure.
async fn fetch(
    sim: &St,
    id: &str,
    uri: &str,
    settings: &ImportSettings,
) -> Result<Hasher, (String, u64)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(settings.timeout_ms))
        .build()
        .map_err(|e| (format!("cannot make an HTTP client: {e}"), 0))?;
    let mut response = client
        .get(uri)
        .send()
        .await
        .map_err(|e| (format!("cannot fetch {uri}: {e}"), 0))?;
    if !response.status().is_success() {
        return Err((format!("{uri} answered {}", response.status()), 0));
    }
    let mut hasher = Hasher::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                hasher.update(&chunk);
                if hasher.size > settings.max_bytes {
                    return Err((
                        format!("image larger than {} bytes", settings.max_bytes),
                        hasher.size,
                    ));
                }
                let mut m = sim.lock();
                let Some(image) = m.images.iter_mut().find(|i| i.id == id) else {
                    return Err(("image deleted during the import".into(), hasher.size));
                };
                if let Some(r) = image.import.as_mut() {
                    r.bytes = hasher.size;
                }
            }
            Ok(None) => return Ok(hasher),
            Err(e) => return Err((format!("download of {uri} broke: {e}"), hasher.size)),
        }
    }
}
