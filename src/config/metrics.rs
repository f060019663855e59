//! `[metrics]`: where the Prometheus endpoint (`/metrics`) and the health
//! check (`/healthz`) listen ([`crate::metrics`]). Off unless the section
//! is there. Neither endpoint asks for credentials, so a listening address
//! other than loopback must be asked for explicitly (`allow_public`).

use std::net::SocketAddr;

use serde::Deserialize;

use super::error::{Checker, ConfigError};

/// `[metrics]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    listen: SocketAddr,
    allow_public: Option<bool>,
}

/// The metrics endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address and port of the HTTP server.
    pub listen: SocketAddr,
    /// Whether a non-loopback address was allowed.
    pub allow_public: bool,
}

/// Validates `[metrics]`.
pub(super) fn check(raw: RawMetrics, c: &Checker<'_>) -> Result<MetricsConfig, ConfigError> {
    let allow_public = raw.allow_public.unwrap_or(false);
    if raw.listen.port() == 0 {
        return Err(c.error(
            "metrics.listen",
            "needs a port: Prometheus must know where to scrape",
        ));
    }
    if !raw.listen.ip().is_loopback() && !allow_public {
        return Err(c.error(
            "metrics.listen",
            format!(
                "{} is not a loopback address, and the metrics and health endpoints ask \
                 for no credentials; listen on 127.0.0.1 or ::1, or set \
                 metrics.allow_public = true to serve them there",
                raw.listen
            ),
        ));
    }
    Ok(MetricsConfig {
        listen: raw.listen,
        allow_public,
    })
}
