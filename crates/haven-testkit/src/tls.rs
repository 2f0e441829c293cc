//! Certificates made in the test: a certificate authority of its own, and
//! server certificates it signs (current, expired, for another host),
//! written as the PEM files `haven serve --tls-cert --tls-key` reads.

use haven_server::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::Path;

/// A certificate authority that exists only for a test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// How long a server certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From a year ago to a year from now.
    Current,
    /// It expired in 2020.
    Expired,
}

impl TestCa {
    /// A new CA, named `name` (its subject's common name).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        TestCa { issuer: Issuer::new(params, key), pem }
    }

    /// Its certificate, PEM: what a client trusts.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `hosts` (names or IP addresses) and its
    /// key, PEM, signed by this CA.
    pub fn server_certificate(&self, hosts: &[&str], validity: Validity) -> (String, String) {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).expect("server parameters");
        params.distinguished_name.push(DnType::CommonName, hosts.first().copied().unwrap_or("server"));
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        } else {
            let now = time_now_year();
            params.not_before = rcgen::date_time_ymd(now - 1, 1, 1);
            params.not_after = rcgen::date_time_ymd(now + 1, 12, 31);
        }
        let key = KeyPair::generate().expect("a server key");
        let certificate = params.signed_by(&key, &self.issuer).expect("a server certificate");
        (certificate.pem(), key.serialize_pem())
    }

    /// [`server_certificate`](TestCa::server_certificate), written to
    /// `dir` as `NAME.crt` and `NAME.key`.
    pub fn write_server_files(&self, dir: &Path, name: &str, hosts: &[&str], validity: Validity) -> TlsFiles {
        let (cert, key) = self.server_certificate(hosts, validity);
        let files = TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert, cert).expect("write the certificate");
        std::fs::write(&files.key, key).expect("write the key");
        files
    }
}

/// This year, by the system clock (a certificate's validity is by date).
fn time_now_year() -> i32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    1970 + (secs / 31_556_952) as i32
}
