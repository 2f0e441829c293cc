//! TLS as Haven's client and server set it up: rustls with the ring
//! provider (no OpenSSL), trusting the webpki roots plus any the app
//! adds, and certificate problems said in words a person can act on.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use std::sync::Arc;

/// Certificates or a key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct TlsError {
    /// What was read: a file's name, or "a trusted root certificate".
    pub what: String,
    /// What is wrong with it.
    pub reason: String,
}

impl TlsError {
    fn new(what: &str, reason: impl Into<String>) -> TlsError {
        TlsError { what: what.to_owned(), reason: reason.into() }
    }
}

/// The cryptography both ends use: ring, which builds with a C compiler
/// alone (aws-lc-rs, rustls's other provider, needs cmake). rustls marks
/// it deprecated because it lacks post-quantum key exchange; classical
/// X25519 and P-256 are what it offers.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in `pem` (one or more `CERTIFICATE` blocks); `what`
/// names the source in errors.
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(what, format!("not PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(TlsError::new(what, "no PEM certificate (-----BEGIN CERTIFICATE-----) in it"));
    }
    Ok(certificates)
}

/// The private key in `pem` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::new(what, "no private key (PKCS#8, PKCS#1 or SEC1 PEM) in it")
        }
        e => TlsError::new(what, format!("not a PEM private key: {e}")),
    })
}

/// A client's TLS set-up: the webpki roots, and the certificates in each
/// of `extra_roots` (PEM) trusted as well.
pub fn client_config(extra_roots: &[Vec<u8>]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let what = "a trusted root certificate";
    for pem in extra_roots {
        for certificate in certificates(pem, what)? {
            roots.add(certificate).map_err(|e| TlsError::new(what, e.to_string()))?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new("the TLS set-up", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why a TLS handshake failed, in words, when `error` (from a TLS
/// stream's handshake) says; `None` for an error TLS did not raise.
pub fn handshake_failure(error: &std::io::Error) -> Option<String> {
    let error = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match error {
        rustls::Error::InvalidCertificate(problem) => format!("certificate refused: {}", certificate_problem(problem)),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the peer does not speak TLS (plain ws:// or http:// on one end, wss:// or https:// on the other?)".into()
        }
        other => other.to_string(),
    })
}

fn certificate_problem(problem: &CertificateError) -> String {
    match problem {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "not valid yet".into(),
        CertificateError::UnknownIssuer => "unknown issuer (no trusted certificate authority signed it)".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "not valid for this host name".into()
        }
        CertificateError::Revoked => "revoked".into(),
        CertificateError::BadSignature => "bad signature".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_a_certificate_is_refused_by_name() {
        let error = certificates(b"hello", "ca.pem").unwrap_err();
        assert_eq!(error.what, "ca.pem");
        assert!(error.reason.contains("no PEM certificate"), "{error}");
        assert!(client_config(&[b"hello".to_vec()]).is_err());
        assert!(private_key(b"hello", "key.pem").unwrap_err().reason.contains("no private key"));
    }

    #[test]
    fn the_webpki_roots_are_trusted_without_extra_ones() {
        assert!(client_config(&[]).is_ok());
    }
}
