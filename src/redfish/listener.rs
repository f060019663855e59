//! Listening: one TCP listener per node address (and the aggregate one),
//! TLS when configured, HTTP/1.1 served by hyper under the service's
//! router. What a client can hold is bounded: connections per listener
//! (past the cap, new ones wait in the kernel's backlog), the time to
//! finish a TLS handshake or a request's headers (a slowloris connection
//! is closed), the header buffer, and the body (see [`super::MAX_BODY`]).
//! Each connection runs on its own task, so one stalled client never
//! stalls the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::debug;

use super::auth::Peer;

/// Largest header block taken (hyper's buffer for one request head).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The most a connection may live, so none is held for ever.
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(600);

/// A listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("Redfish: cannot listen on {address}: {error}")]
pub struct ListenError {
    /// The address.
    pub address: SocketAddr,
    /// Why.
    pub error: std::io::Error,
}

/// Opens a TCP listener on exactly `address`, which need not exist yet
/// (IP_FREEBIND, as the UDP sockets), reusable at once after a restart.
pub fn bind(address: SocketAddr) -> Result<TcpListener, ListenError> {
    let open = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::STREAM.cloexec(),
            Some(Protocol::TCP),
        )?;
        if address.is_ipv6() {
            socket.set_only_v6(true)?;
            socket.set_freebind_v6(true)?;
        } else {
            socket.set_freebind_v4(true)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        socket.listen(1024)?;
        TcpListener::from_std(socket.into())
    };
    open().map_err(|error| ListenError { address, error })
}

/// How a listener treats its connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections at once.
    pub max_connections: usize,
    /// Time for a TLS handshake or a request's headers.
    pub read_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown`; with `tls`, over TLS.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        debug!(error = %e, "Redfish accept failed");
                        // EMFILE and friends: give the process a moment.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let acceptor = acceptor.clone();
            let limits = limits.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _permit = permit;
                connection(stream, peer, router, acceptor, &limits, shutdown).await;
            });
        }
    })
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    acceptor: Option<TlsAcceptor>,
    limits: &Limits,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        router.clone().oneshot(req.map(Body::new))
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let served = async {
        match acceptor {
            None => {
                let conn = http.serve_connection(TokioIo::new(stream), service);
                drive(conn, &shutdown).await
            }
            Some(acceptor) => {
                match tokio::time::timeout(limits.read_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let conn = http.serve_connection(TokioIo::new(tls), service);
                        drive(conn, &shutdown).await
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    };
    if tokio::time::timeout(MAX_CONNECTION_LIFE, served)
        .await
        .is_err()
    {
        debug!(%peer, "Redfish connection closed at its maximum life");
    }
}

async fn drive<I, S>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    shutdown: &CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(error = %e, "Redfish connection ended");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
