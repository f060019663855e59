//! The TLS trust the cloud configuration asks for, for what novabmc opens
//! to the cloud besides its API calls: the serial console websockets
//! (`wss://`, from `remote-consoles`).
//!
//! The API client (osauth over reqwest with rustls) trusts the public
//! roots of `webpki-roots` and every certificate in the PEM file the
//! cloud's `cacert` names (clouds.yaml's `cacert`, or `OS_CACERT`), and
//! verifies every certificate and host name: osauth has no switch for
//! clouds.yaml's `verify: false`, so neither is there one here.
//! [`client_config`] builds exactly that trust (the same roots, the same
//! file read the same way, the ring provider, TLS 1.3 and 1.2), so a
//! console is trusted exactly when the API would be at the same address.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The cloud's `cacert` cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The file cannot be read.
    #[error("cannot read the cloud's cacert {path}: {reason}")]
    Unreadable {
        /// The file, as the configuration names it.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not PEM certificates, or one is not a CA rustls takes.
    #[error("the cloud's cacert {path} is not usable: {reason}")]
    Invalid {
        /// The file, as the configuration names it.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the settings (never expected with ring).
    #[error("TLS settings: {0}")]
    Settings(String),
}

/// The client settings for a TLS connection to the cloud: the public
/// roots, plus the certificates of `cacert` (a PEM file; a relative path
/// is read from the working directory, as the API client reads it).
pub fn client_config(cacert: Option<&str>) -> Result<Arc<ClientConfig>, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TrustError::Settings(e.to_string()))?
        .with_root_certificates(roots(cacert)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The roots: the public ones and those of `cacert`.
fn roots(cacert: Option<&str>) -> Result<RootCertStore, TrustError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = cacert {
        let pem = std::fs::read(path).map_err(|e| TrustError::Unreadable {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let invalid = |reason: String| TrustError::Invalid {
            path: path.to_string(),
            reason,
        };
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| invalid(e.to_string()))?;
            roots.add(cert).map_err(|e| invalid(e.to_string()))?;
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_roots_without_cacert_and_a_clear_error_for_a_bad_one() {
        assert!(client_config(None).is_ok());
        let dir = tempfile::tempdir().expect("dir");
        let absent = dir.path().join("absent.pem");
        let absent = absent.to_string_lossy();
        match client_config(Some(&absent)) {
            Err(TrustError::Unreadable { path, .. }) => assert_eq!(path, absent),
            other => panic!("{other:?}"),
        }
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = client_config(Some(&garbage.to_string_lossy())).expect_err("garbage");
        assert!(matches!(e, TrustError::Invalid { .. }), "{e:?}");
        assert!(e.to_string().contains("garbage.pem"), "{e}");
    }

    #[test]
    fn a_cacert_bundle_adds_every_certificate() {
        let dir = tempfile::tempdir().expect("dir");
        let mut bundle = String::new();
        for name in ["one", "two"] {
            let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("test CA {name}"));
            let key = rcgen::KeyPair::generate().expect("key");
            bundle.push_str(&params.self_signed(&key).expect("cert").pem());
        }
        let path = dir.path().join("bundle.pem");
        std::fs::write(&path, bundle).expect("write");
        let public = roots(None).expect("roots").len();
        let with_bundle = roots(Some(&path.to_string_lossy())).expect("roots").len();
        assert_eq!(with_bundle, public + 2);
        assert!(client_config(Some(&path.to_string_lossy())).is_ok());
    }
}
