//! A node's UDP socket: bound to exactly the node's address and port, so
//! every reply leaves from the address the request hit (ipmitool uses a
//! connected UDP socket and ignores anything else), optionally before the
//! address exists (IP_FREEBIND), as a BMC whose address arrives later.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::warn;

use crate::config::NodeConfig;

/// A node's socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("node {node}: cannot listen on {address}: {error}")]
pub struct BindError {
    /// The node.
    pub node: String,
    /// The address.
    pub address: SocketAddr,
    /// Why.
    pub error: std::io::Error,
}

/// Opens a UDP socket on exactly `address`. With `freebind` the address
/// need not exist yet (it may arrive later by DHCP). SO_REUSEADDR is not
/// set: two processes must never share a node's port.
pub fn bind_udp(address: SocketAddr, freebind: bool) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
        if freebind {
            socket.set_freebind_v6(true)?;
        }
    } else if freebind {
        socket.set_freebind_v4(true)?;
    }
    // tokio requires non-blocking sockets (a blocking one would stall a
    // worker thread).
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// Binds every node's socket; all failures are reported together.
pub fn bind_all(nodes: &[NodeConfig], freebind: bool) -> Result<Vec<UdpSocket>, Vec<BindError>> {
    let mut sockets = Vec::with_capacity(nodes.len());
    let mut errors = Vec::new();
    for n in nodes {
        match bind_udp(n.listen, freebind) {
            Ok(s) => sockets.push(s),
            Err(error) => errors.push(BindError {
                node: n.name.clone(),
                address: n.listen,
                error,
            }),
        }
    }
    if errors.is_empty() {
        Ok(sockets)
    } else {
        Err(errors)
    }
}

/// Logs bind failures and says how many nodes failed.
pub fn report_bind_errors(errors: &[BindError]) -> String {
    for e in errors {
        warn!("{e}");
    }
    let first = errors.first().map(ToString::to_string).unwrap_or_default();
    if errors.len() == 1 {
        first
    } else {
        format!("{first} (and {} more nodes)", errors.len() - 1)
    }
}
