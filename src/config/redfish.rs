//! `[redfish]`: the Redfish service (DMTF DSP0266) beside IPMI on the same
//! nodes. Off unless the section is there. Each node answers on its own
//! address at `port` (443 by default, as a physical BMC; nodes share the
//! port as they share 623), and one aggregate listener can serve every
//! node's system under one URL (`aggregate`). HTTPS with the configured
//! certificate, or one generated and kept in `state_dir`; plain HTTP only
//! when `tls = false` says so.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{Checker, ConfigError};

/// The port a physical BMC serves Redfish on.
pub const DEFAULT_PORT: u16 = 443;

/// Where generated certificates are kept when nothing else says.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/novabmc";

/// `[redfish]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedfish {
    port: Option<u16>,
    per_node: Option<bool>,
    aggregate: Option<SocketAddr>,
    tls: Option<bool>,
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    session_timeout: Option<u64>,
    max_sessions: Option<usize>,
    max_connections: Option<usize>,
    read_timeout: Option<f64>,
}

/// How the service authenticates itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP (asked for with `tls = false`).
    Off,
    /// This certificate chain and key (PEM files).
    Files {
        /// The certificate chain.
        certificate: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A self-signed certificate per listening address, generated once and
    /// kept in this directory.
    SelfSigned(PathBuf),
}

/// The Redfish service's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedfishConfig {
    /// The port on each node's address (overridden by a node's
    /// `redfish_port`).
    pub port: u16,
    /// Whether each node listens on its own address.
    pub per_node: bool,
    /// One listener serving every node's system, if configured.
    pub aggregate: Option<SocketAddr>,
    /// HTTPS, and with which certificate.
    pub tls: Tls,
    /// How long a Redfish session lasts unused.
    pub session_timeout: Duration,
    /// Sessions open at once, service-wide.
    pub max_sessions: usize,
    /// Connections open at once per listener.
    pub max_connections: usize,
    /// How long a client may take over a TLS handshake, a request's
    /// headers or its body.
    pub read_timeout: Duration,
}

/// Validates `[redfish]`; `state_dir` is the backend's, if it has one.
pub(super) fn check(
    raw: RawRedfish,
    backend_state_dir: Option<&std::path::Path>,
    c: &Checker<'_>,
) -> Result<RedfishConfig, ConfigError> {
    let port = raw.port.unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(c.error("redfish.port", "must not be 0"));
    }
    let per_node = raw.per_node.unwrap_or(true);
    if !per_node && raw.aggregate.is_none() {
        return Err(c.error(
            "redfish.per_node",
            "is false and there is no redfish.aggregate: nothing would serve Redfish",
        ));
    }
    if let Some(a) = raw.aggregate
        && a.port() == 0
    {
        return Err(c.error("redfish.aggregate", "needs a port"));
    }
    let tls = match (raw.tls.unwrap_or(true), raw.certificate, raw.key) {
        (false, None, None) => Tls::Off,
        (false, _, _) => {
            return Err(c.error(
                "redfish.tls",
                "is false, but a certificate or key is configured: remove them or set tls = true",
            ));
        }
        (true, Some(certificate), Some(key)) => Tls::Files { certificate, key },
        (true, Some(_), None) => {
            return Err(c.error("redfish.key", "is needed with redfish.certificate"));
        }
        (true, None, Some(_)) => {
            return Err(c.error("redfish.certificate", "is needed with redfish.key"));
        }
        (true, None, None) => Tls::SelfSigned(
            raw.state_dir
                .or_else(|| backend_state_dir.map(std::path::Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        ),
    };
    let session_timeout = match raw.session_timeout {
        None => Duration::from_secs(1800),
        Some(s) if (30..=86_400).contains(&s) => Duration::from_secs(s),
        Some(_) => {
            return Err(c.error("redfish.session_timeout", "must be 30 to 86400 seconds"));
        }
    };
    let max_sessions = raw.max_sessions.unwrap_or(64);
    if max_sessions == 0 {
        return Err(c.error("redfish.max_sessions", "must be at least 1"));
    }
    let max_connections = raw.max_connections.unwrap_or(128);
    if max_connections == 0 {
        return Err(c.error("redfish.max_connections", "must be at least 1"));
    }
    let read_timeout = match raw.read_timeout {
        None => Duration::from_secs(10),
        Some(s) if (0.1..=300.0).contains(&s) => Duration::from_secs_f64(s),
        Some(_) => {
            return Err(c.error("redfish.read_timeout", "must be 0.1 to 300 seconds"));
        }
    };
    Ok(RedfishConfig {
        port,
        per_node,
        aggregate: raw.aggregate,
        tls,
        session_timeout,
        max_sessions,
        max_connections,
        read_timeout,
    })
}

/// Each per-node listener needs an address and port of its own: nodes
/// that share an address (as in the demo) need `redfish_port`s.
pub(super) fn check_addresses(
    config: &RedfishConfig,
    nodes: &[super::NodeConfig],
    c: &Checker<'_>,
) -> Result<(), ConfigError> {
    if !config.per_node {
        return Ok(());
    }
    let mut seen: std::collections::HashMap<SocketAddr, &str> = std::collections::HashMap::new();
    for n in nodes {
        let a = SocketAddr::new(n.listen.ip(), n.redfish_port.unwrap_or(config.port));
        if Some(a) == config.aggregate {
            return Err(c.error(
                &format!("nodes.{}.redfish_port", n.name),
                format!("{a} is also redfish.aggregate"),
            ));
        }
        if let Some(other) = seen.insert(a, &n.name) {
            return Err(c.error(
                &format!("nodes.{}.redfish_port", n.name),
                format!(
                    "node {other} already serves Redfish on {a}; nodes sharing an address \
                     need a redfish_port each"
                ),
            ));
        }
    }
    Ok(())
}
