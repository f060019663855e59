//! The service's TLS: the configured certificate chain and key, or a
//! self-signed certificate per listening address, generated once with its
//! address as subject alternative name and kept in the state directory so
//! that a client which pinned it keeps trusting it across restarts.
//!
//! rustls speaks TLS 1.2 and 1.3 only: SSL 3, TLS 1.0 and 1.1 are refused
//! by construction, as DSP0266 section 8.2 asks.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::redfish::Tls;

/// The service's certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate and key together.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
    /// A certificate could not be generated.
    #[error("cannot generate a certificate for {address}: {reason}")]
    Generate {
        /// The address it was for.
        address: IpAddr,
        /// Why.
        reason: String,
    },
}

/// A server certificate with what `check` prints of it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The rustls configuration serving it (HTTP/1.1 only).
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate, as `AB:CD:...`.
    pub fingerprint: String,
    /// Where it is kept.
    pub path: PathBuf,
}

/// The identity for a listener on `address`, or `None` for plain HTTP.
pub fn identity(tls: &Tls, address: IpAddr) -> Result<Option<Identity>, TlsError> {
    match tls {
        Tls::Off => Ok(None),
        Tls::Files { certificate, key } => load(certificate, key).map(Some),
        Tls::SelfSigned(dir) => self_signed(dir, address).map(Some),
    }
}

/// The paths of the generated certificate and key for `address`.
pub fn self_signed_paths(dir: &Path, address: IpAddr) -> (PathBuf, PathBuf) {
    let name = address.to_string().replace(':', "_");
    let d = dir.join("redfish");
    (d.join(format!("{name}.crt")), d.join(format!("{name}.key")))
}

fn self_signed(dir: &Path, address: IpAddr) -> Result<Identity, TlsError> {
    let (cert, key) = self_signed_paths(dir, address);
    if !cert.exists() || !key.exists() {
        generate(&cert, &key, address)?;
    }
    load(&cert, &key)
}

/// Writes a new certificate and key for `address` (the key readable by
/// the owner only), each through a temporary file renamed into place.
fn generate(cert: &Path, key: &Path, address: IpAddr) -> Result<(), TlsError> {
    let fail = |reason: String| TlsError::Generate { address, reason };
    let mut params = rcgen::CertificateParams::new(vec![address.to_string()])
        .map_err(|e| fail(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("novabmc {address}"));
    let signing = rcgen::KeyPair::generate().map_err(|e| fail(e.to_string()))?;
    let certificate = params
        .self_signed(&signing)
        .map_err(|e| fail(e.to_string()))?;
    let dir = cert.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    write_private(key, signing.serialize_pem().as_bytes()).map_err(&fail)?;
    write_private(cert, certificate.pem().as_bytes()).map_err(&fail)?;
    tracing::info!(%address, path = %cert.display(), "generated a self-signed Redfish certificate");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn load(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let file_error = |path: &Path, reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert, e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(file_error(cert, "holds no certificate".into()));
    };
    let fingerprint = fingerprint(leaf.as_ref());
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e.to_string()))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        fingerprint,
        path: cert.to_path_buf(),
    })
}

/// SHA-256 of a DER certificate, as `openssl x509 -fingerprint -sha256`
/// prints it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let tls = Tls::SelfSigned(dir.path().to_path_buf());
        let address: IpAddr = "127.0.0.1".parse().expect("ip");
        let first = identity(&tls, address).expect("first").expect("tls");
        let second = identity(&tls, address).expect("second").expect("tls");
        assert_eq!(first.fingerprint, second.fingerprint, "generated once");
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let (_, key) = self_signed_paths(dir.path(), address);
        let mode = std::fs::metadata(key).expect("key").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let tls = Tls::Files {
            certificate: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let e = identity(&tls, "127.0.0.1".parse().expect("ip")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    }
}
