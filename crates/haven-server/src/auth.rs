//! Who may sync which partition: JSON Web Tokens whose `sub` is the user
//! and whose partitions claim lists the partitions it may read and write,
//! or, in development mode, anyone. Tokens are HS256 with the server's
//! secret, or RS256/ES256 with an identity provider's public key or key
//! set (JWKS).

use crate::jwks::{KeySet, VerifyingKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use std::sync::Arc;

/// Checks tokens.
pub enum Authenticator {
    /// Accepts any token (the server allows this on loopback only).
    Dev,
    /// Accepts tokens signed with one key.
    Jwt(JwtVerifier),
}

/// How tokens are checked: the key and its one algorithm, and the claims
/// a token must carry.
///
/// ```
/// use haven_server::{Authenticator, JwtVerifier};
/// let verifier = JwtVerifier::from_secret(b"a secret")
///     .issuer("https://auth.example.com/")
///     .audience("haven")
///     .partitions_claim("app_metadata.partitions");
/// let auth = Authenticator::Jwt(verifier);
/// # let _ = auth;
/// assert!(JwtVerifier::from_public_key_pem(b"not a key").is_err());
/// ```
pub struct JwtVerifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    partitions_claim: String,
    leeway_secs: u64,
}

/// The keys tokens are checked with.
enum Keys {
    /// One key and its one algorithm.
    One(VerifyingKey),
    /// An identity provider's key set, by `kid`.
    Set(Arc<KeySet>),
}

/// A token refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was sent.
    #[error("no token: send a JWT signed with the key the server checks (its secret, or the identity provider's)")]
    MissingToken,
    /// The token's `exp` has passed.
    #[error("the token has expired: get a new one")]
    Expired,
    /// Forged, malformed, signed with another algorithm or key, not yet
    /// valid, or for another issuer or audience.
    #[error("the token is not valid ({0})")]
    Invalid(String),
    /// Signed with a key (`kid`) the identity provider's key set does not
    /// hold, even read again.
    #[error("the token's signing key is not in the identity provider's key set")]
    UnknownKey,
    /// The user's tokens issued before this time were revoked
    /// (`haven admin revoke-user`).
    #[error("user '{user}' was signed out by an operator: sign in again")]
    Revoked {
        /// The token's `sub`.
        user: String,
    },
    /// A valid token that does not list the partition.
    #[error("user '{user}' may not sync partition '{partition}'")]
    PartitionDenied {
        /// The token's `sub`.
        user: String,
        /// The partition asked for.
        partition: String,
    },
}

/// Who a token stands for, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub` ("dev" in dev mode).
    pub user: String,
    /// Its `exp`, in seconds since the Unix epoch (`None` in dev mode).
    pub expires_at: Option<u64>,
    /// Its `iat`, if it has one: a revocation refuses tokens issued
    /// before it (a token without `iat` counts as issued before any).
    pub issued_at: Option<u64>,
}

/// A public key or key set that cannot be used to check tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl KeyError {
    pub(crate) fn new(message: impl Into<String>) -> KeyError {
        KeyError(message.into())
    }
}

/// The partitions claim by default.
pub const DEFAULT_PARTITIONS_CLAIM: &str = "partitions";

/// The clock skew allowed on `exp` and `nbf` by default, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

impl Authenticator {
    /// Checks HS256 tokens against `secret` ([`JwtVerifier::from_secret`]).
    pub fn jwt(secret: &[u8]) -> Authenticator {
        Authenticator::Jwt(JwtVerifier::from_secret(secret))
    }

    /// Returns who a token stands for, if it may sync `partition`. The
    /// token itself is never logged or echoed. A token signed with a key
    /// an identity provider's key set lacks makes the set be read again
    /// (within a bound) before it is refused.
    pub async fn authorize(&self, token: &str, partition: &str) -> Result<Identity, AuthError> {
        match self {
            Authenticator::Dev => Ok(Identity { user: "dev".to_owned(), expires_at: None, issued_at: None }),
            Authenticator::Jwt(verifier) => match verifier.authorize(token, partition) {
                Err(AuthError::UnknownKey) => verifier.authorize_after_refetch(token, partition).await,
                checked => checked,
            },
        }
    }

    /// The clock skew allowed on `exp` and `nbf`, in seconds.
    pub fn leeway_secs(&self) -> u64 {
        match self {
            Authenticator::Dev => 0,
            Authenticator::Jwt(verifier) => verifier.leeway_secs,
        }
    }

    /// The identity provider's key set, when tokens are checked against one.
    pub(crate) fn key_set(&self) -> Option<&Arc<KeySet>> {
        match self {
            Authenticator::Jwt(JwtVerifier { keys: Keys::Set(set), .. }) => Some(set),
            _ => None,
        }
    }
}

impl JwtVerifier {
    /// HS256 tokens signed with `secret`.
    pub fn from_secret(secret: &[u8]) -> JwtVerifier {
        JwtVerifier::new(Keys::One((DecodingKey::from_secret(secret), Algorithm::HS256)))
    }

    /// Tokens signed with one of the RS256 or ES256 keys of an identity
    /// provider's JWKS, chosen by the token's `kid`. `location` is an
    /// `https://` (or `http://`) URL, fetched now and every
    /// [`JWKS_REFRESH`](crate::JWKS_REFRESH) while a [`Server`](crate::Server)
    /// runs, or a file's path; either is read again when a token names a
    /// key the set lacks, at most
    /// [`REFETCHES_PER_MINUTE`](crate::REFETCHES_PER_MINUTE) times a minute.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), haven_server::KeyError> {
    /// use haven_server::JwtVerifier;
    /// let verifier = JwtVerifier::from_jwks("https://example.eu.auth0.com/.well-known/jwks.json").await?
    ///     .issuer("https://example.eu.auth0.com/")
    ///     .audience("haven");
    /// # let _ = verifier; Ok(()) }
    /// ```
    pub async fn from_jwks(location: &str) -> Result<JwtVerifier, KeyError> {
        Ok(JwtVerifier::new(Keys::Set(Arc::new(KeySet::load(location).await?))))
    }

    /// Tokens an identity provider signs: RS256 for an RSA public key,
    /// ES256 for a P-256 one, given as PEM. Only that algorithm is
    /// accepted: a token signed with the public key as an HS256 secret is
    /// refused.
    pub fn from_public_key_pem(pem: &[u8]) -> Result<JwtVerifier, KeyError> {
        match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => Ok(JwtVerifier::new(Keys::One((key, Algorithm::RS256)))),
            Err(rsa) => match DecodingKey::from_ec_pem(pem) {
                Ok(key) => Ok(JwtVerifier::new(Keys::One((key, Algorithm::ES256)))),
                Err(ec) => {
                    Err(KeyError(format!("not an RSA or P-256 public key in PEM form: as RSA: {rsa}; as EC: {ec}")))
                }
            },
        }
    }

    fn new(keys: Keys) -> JwtVerifier {
        JwtVerifier {
            keys,
            issuer: None,
            audience: None,
            partitions_claim: DEFAULT_PARTITIONS_CLAIM.to_owned(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }

    /// Tokens must carry this `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> JwtVerifier {
        self.issuer = Some(issuer.into());
        self
    }

    /// Tokens must carry this `aud` (without it, `aud` is not checked).
    pub fn audience(mut self, audience: impl Into<String>) -> JwtVerifier {
        self.audience = Some(audience.into());
        self
    }

    /// The claim that lists the partitions: a top-level claim of that
    /// name (`https://example.com/partitions` included), else a path
    /// through nested objects (`app_metadata.partitions`).
    pub fn partitions_claim(mut self, claim: impl Into<String>) -> JwtVerifier {
        self.partitions_claim = claim.into();
        self
    }

    /// The clock skew allowed on `exp` and `nbf`.
    pub fn leeway_secs(mut self, secs: u64) -> JwtVerifier {
        self.leeway_secs = secs;
        self
    }

    fn authorize(&self, token: &str, partition: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        let (key, algorithm) = self.key_for(token)?;
        let claims = decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &self.validation(algorithm))
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                kind => AuthError::Invalid(format!("{kind:?}")),
            })?
            .claims;
        let sub = claims.get("sub").and_then(|s| s.as_str()).unwrap_or_default().to_owned();
        let listed = self.partitions(&claims).is_some_and(|ps| ps.iter().any(|p| p.as_str() == Some(partition)));
        if !listed {
            return Err(AuthError::PartitionDenied { user: sub, partition: partition.to_owned() });
        }
        let time = |claim: &str| claims.get(claim).and_then(serde_json::Value::as_u64);
        Ok(Identity { user: sub, expires_at: time("exp"), issued_at: time("iat") })
    }

    /// A token naming a key the set lacks: read the set again, then check.
    async fn authorize_after_refetch(&self, token: &str, partition: &str) -> Result<Identity, AuthError> {
        let Keys::Set(set) = &self.keys else { return Err(AuthError::UnknownKey) };
        let kid = decode_header(token).ok().and_then(|header| header.kid);
        match set.refetch_for(kid.as_deref()).await {
            true => self.authorize(token, partition),
            false => Err(AuthError::UnknownKey),
        }
    }

    /// The key to check `token` with: the one key, or the set's key its
    /// header names.
    fn key_for(&self, token: &str) -> Result<VerifyingKey, AuthError> {
        match &self.keys {
            Keys::One(key) => Ok(key.clone()),
            Keys::Set(set) => {
                let header = decode_header(token).map_err(|e| AuthError::Invalid(format!("{:?}", e.kind())))?;
                set.key(header.kid.as_deref()).ok_or(AuthError::UnknownKey)
            }
        }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        // A claim that is checked must be there, not merely right if present.
        let mut required = vec!["exp", "sub"];
        required.extend(self.issuer.as_ref().map(|_| "iss"));
        required.extend(self.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation
    }

    /// The partitions the token lists, if its partitions claim is a list.
    fn partitions<'c>(
        &self,
        claims: &'c serde_json::Map<String, serde_json::Value>,
    ) -> Option<&'c Vec<serde_json::Value>> {
        let name = self.partitions_claim.as_str();
        let value = match claims.get(name) {
            Some(value) => value,
            None => {
                let mut parts = name.split('.');
                let first = claims.get(parts.next()?)?;
                parts.try_fold(first, |v, part| v.get(part))?
            }
        };
        value.as_array()
    }
}
