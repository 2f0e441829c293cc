//! The keys an identity provider publishes as a JWKS (a JSON Web Key
//! Set), read from a file or fetched from an `https://` URL: a token's key
//! is chosen by its `kid`. The set is read at start, again every
//! [`JWKS_REFRESH`] while a server runs, and when a token names a key the
//! set lacks (a rotation), at most [`REFETCHES_PER_MINUTE`] times a
//! minute so that tokens with made-up `kid`s cannot make the server
//! hammer the provider. Only keys for signing with RS256 or ES256 are
//! taken.

use crate::auth::KeyError;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;
use std::time::Duration;
use tokio::time::Instant;

/// How often the set is read again, rotation or not.
pub const JWKS_REFRESH: Duration = Duration::from_secs(600);

/// How many times a minute an unknown `kid` may make the set be read again.
pub const REFETCHES_PER_MINUTE: usize = 3;

/// A key and the one algorithm it checks.
pub(crate) type VerifyingKey = (DecodingKey, Algorithm);

/// Where the set comes from.
#[derive(Debug, Clone)]
enum Source {
    File(std::path::PathBuf),
    Url(String),
}

/// A JWKS and how to read it again.
pub(crate) struct KeySet {
    source: Source,
    keys: RwLock<HashMap<Option<String>, VerifyingKey>>,
    /// When unknown `kid`s made the set be read, within the last minute.
    refetches: tokio::sync::Mutex<VecDeque<Instant>>,
}

impl KeySet {
    /// Reads the set at `location`: an `http://` or `https://` URL, else a
    /// file's path.
    pub async fn load(location: &str) -> Result<KeySet, KeyError> {
        let source = match location.split_once("://").map(|(scheme, _)| scheme) {
            Some("https") => Source::Url(location.to_owned()),
            Some("http") if is_loopback_url(location) => Source::Url(location.to_owned()),
            Some(_) => {
                let why =
                    "must be an https:// URL (keys fetched over plain http could be replaced on the way) or a file";
                return Err(KeyError::new(format!("the JWKS {location} {why}")));
            }
            None => Source::File(location.into()),
        };
        let keys = read(&source).await?;
        Ok(KeySet { source, keys: RwLock::new(keys), refetches: tokio::sync::Mutex::default() })
    }

    /// The key a token names by `kid`; a token without one may use the
    /// set's only key without one.
    pub fn key(&self, kid: Option<&str>) -> Option<VerifyingKey> {
        self.keys.read().expect("key set").get(&kid.map(str::to_owned)).cloned()
    }

    /// Reads the set again because a token named `kid`, unless that key
    /// arrived meanwhile or the refetch budget is spent. Returns whether
    /// the key is now known.
    pub async fn refetch_for(&self, kid: Option<&str>) -> bool {
        let mut refetches = self.refetches.lock().await;
        if self.key(kid).is_some() {
            return true; // another token's refetch brought it
        }
        let now = Instant::now();
        refetches.retain(|at| now.duration_since(*at) < Duration::from_secs(60));
        if refetches.len() >= REFETCHES_PER_MINUTE {
            tracing::debug!("unknown key id: refetch budget spent for this minute");
            return false;
        }
        refetches.push_back(now);
        self.refresh().await;
        self.key(kid).is_some()
    }

    /// Reads the set again; a failure keeps the keys it had.
    pub async fn refresh(&self) {
        match read(&self.source).await {
            Ok(keys) => *self.keys.write().expect("key set") = keys,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the identity provider's key set again; keeping the keys it had")
            }
        }
    }
}

/// Whether `url`'s host is this machine (a key set served beside the
/// server, or by a test, may use plain http).
fn is_loopback_url(url: &str) -> bool {
    let host = url.parse::<hyper::Uri>().ok().and_then(|uri| uri.host().map(str::to_owned));
    let host = host.as_deref().map(|h| h.trim_start_matches('[').trim_end_matches(']'));
    host.is_some_and(|h| h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

async fn read(source: &Source) -> Result<HashMap<Option<String>, VerifyingKey>, KeyError> {
    let (text, from) = match source {
        Source::File(path) => {
            let cannot = |e: std::io::Error| KeyError::new(format!("cannot read the JWKS {}: {e}", path.display()));
            let text = std::fs::read(path).map_err(cannot)?; // a small local file: no need for a blocking task
            (text, path.display().to_string())
        }
        Source::Url(url) => {
            let (status, body) = crate::http_client::http_request(hyper::Method::GET, url, None, String::new(), &[])
                .await
                .map_err(|e| KeyError::new(format!("cannot fetch the JWKS {url}: {e}")))?;
            if !status.is_success() {
                return Err(KeyError::new(format!("cannot fetch the JWKS {url}: it answered {status}")));
            }
            (body.to_vec(), url.clone())
        }
    };
    parse(&text).map_err(|e| KeyError::new(format!("the JWKS {from} {e}")))
}

/// The RS256 and ES256 keys of a JWKS document, by `kid`. Keys of other
/// types are skipped; a set with none of these is refused.
fn parse(json: &[u8]) -> Result<HashMap<Option<String>, VerifyingKey>, String> {
    let set: JwkSet = serde_json::from_slice(json).map_err(|e| format!("is not a JSON Web Key Set: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
            _ => continue,
        };
        // A key declared for another algorithm (RS512, RSA-OAEP) or for
        // encryption is not one this server checks signatures with.
        let declared = jwk.common.key_algorithm.map(|a| Algorithm::try_from(a).ok());
        let for_signing = jwk.common.public_key_use.as_ref().is_none_or(|u| *u == PublicKeyUse::Signature);
        if declared.is_some_and(|declared| declared != Some(algorithm)) || !for_signing {
            continue;
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("has a key that cannot be read: {e}"))?;
        keys.insert(jwk.common.key_id.clone(), (key, algorithm));
    }
    if keys.is_empty() {
        return Err("has no RS256 or ES256 key".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_without_usable_keys_or_not_a_set_is_refused() {
        assert!(parse(b"{}").unwrap_err().contains("not a JSON Web Key Set"));
        assert!(parse(br#"{"keys":[]}"#).unwrap_err().contains("no RS256 or ES256 key"));
        let secret = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#;
        assert!(parse(secret).unwrap_err().contains("no RS256 or ES256 key"), "a shared secret is not a public key");
    }

    #[test]
    fn keys_for_encryption_or_other_algorithms_are_skipped() {
        let rsa = |extra: &str| format!(r#"{{"keys":[{{"kty":"RSA","n":"sXch","e":"AQAB","kid":"k"{extra}}}]}}"#);
        assert!(parse(rsa("").as_bytes()).is_ok());
        assert!(parse(rsa(r#","alg":"RS256","use":"sig""#).as_bytes()).is_ok());
        for skipped in [r#","use":"enc""#, r#","alg":"RSA-OAEP""#, r#","alg":"RS512""#] {
            assert!(parse(rsa(skipped).as_bytes()).is_err(), "{skipped}");
        }
    }

    #[tokio::test]
    async fn a_key_set_over_plain_http_is_refused_unless_on_this_machine() {
        let error = KeySet::load("http://auth.example.com/jwks.json").await.err().expect("refused");
        assert!(error.to_string().contains("must be an https:// URL"), "{error}");
        assert!(is_loopback_url("http://127.0.0.1:8080/jwks.json") && is_loopback_url("http://localhost/"));
        assert!(!is_loopback_url("http://10.0.0.1/") && !is_loopback_url("http://localhost.example.com/"));
    }
}
