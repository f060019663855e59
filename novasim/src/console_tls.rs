//! The serial console proxy over TLS, as a cloud that puts
//! `nova-serialproxy` behind `wss://` serves it: the console websockets
//! on a listener of their own, with a certificate the caller gives (a
//! test makes its own CA), and `remote-consoles` answering `wss://` URLs.
//!
//! Each TLS handshake runs on its own task, bounded by
//! [`HANDSHAKE_TIMEOUT`], so a client that never finishes one holds up no
//! other; axum then serves the streams as it serves plain ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Longest time a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the serial console proxy serves TLS.
#[derive(Debug)]
pub struct ConsoleTls {
    listener: TcpListener,
    config: Arc<ServerConfig>,
}

impl ConsoleTls {
    /// The proxy on `listener`, presenting the PEM certificate chain
    /// `chain` (the leaf first) and its PEM private key `key`.
    pub fn from_pem(listener: TcpListener, chain: &[u8], key: &[u8]) -> Result<Self, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("console certificate: {e}"))?;
        if chain.is_empty() {
            return Err("console certificate: no certificate in the PEM".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("console key: {e}"))?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .map_err(|e| format!("console certificate and key: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ConsoleTls {
            listener,
            config: Arc::new(config),
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub(crate) fn into_listener(self) -> TlsListener {
        TlsListener {
            tcp: self.listener,
            acceptor: TlsAcceptor::from(self.config),
            handshakes: JoinSet::new(),
        }
    }
}

/// A TCP listener handing axum the streams whose TLS handshake succeeded.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                r = self.tcp.accept() => match r {
                    Ok((stream, peer)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some((tls, peer)),
                                Ok(Err(e)) => {
                                    tracing::info!(%peer, error = %e, "serial console proxy: TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::info!(%peer, "serial console proxy: TLS handshake timed out");
                                    None
                                }
                            }
                        });
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "serial console proxy: accept failed");
                        // EMFILE and friends: give the process a moment.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(accepted)) = done {
                        return accepted;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
