//! Who may sync which partition: JSON Web Tokens whose `sub` is the user
//! and whose partitions claim lists the partitions it may read and write,
//! or, in development mode, anyone. Tokens are HS256 with the server's
//! secret, or RS256/ES256 with an identity provider's public key.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

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
    key: DecodingKey,
    algorithm: Algorithm,
    issuer: Option<String>,
    audience: Option<String>,
    partitions_claim: String,
    leeway_secs: u64,
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
    /// A valid token that does not list the partition.
    #[error("user '{user}' may not sync partition '{partition}'")]
    PartitionDenied {
        /// The token's `sub`.
        user: String,
        /// The partition asked for.
        partition: String,
    },
}

/// A public key that cannot be used to check tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RSA or P-256 public key in PEM form: {0}")]
pub struct KeyError(String);

/// The partitions claim by default.
pub const DEFAULT_PARTITIONS_CLAIM: &str = "partitions";

/// The clock skew allowed on `exp` and `nbf` by default, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

impl Authenticator {
    /// Checks HS256 tokens against `secret` ([`JwtVerifier::from_secret`]).
    pub fn jwt(secret: &[u8]) -> Authenticator {
        Authenticator::Jwt(JwtVerifier::from_secret(secret))
    }

    /// Returns the user a token stands for, if it may sync `partition`.
    /// The token itself is never logged or echoed.
    pub fn authorize(&self, token: &str, partition: &str) -> Result<String, AuthError> {
        match self {
            Authenticator::Dev => Ok("dev".to_owned()),
            Authenticator::Jwt(verifier) => verifier.authorize(token, partition),
        }
    }
}

impl JwtVerifier {
    /// HS256 tokens signed with `secret`.
    pub fn from_secret(secret: &[u8]) -> JwtVerifier {
        JwtVerifier::new(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// Tokens an identity provider signs: RS256 for an RSA public key,
    /// ES256 for a P-256 one, given as PEM. Only that algorithm is
    /// accepted: a token signed with the public key as an HS256 secret is
    /// refused.
    pub fn from_public_key_pem(pem: &[u8]) -> Result<JwtVerifier, KeyError> {
        match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => Ok(JwtVerifier::new(key, Algorithm::RS256)),
            Err(rsa) => match DecodingKey::from_ec_pem(pem) {
                Ok(key) => Ok(JwtVerifier::new(key, Algorithm::ES256)),
                Err(ec) => Err(KeyError(format!("as RSA: {rsa}; as EC: {ec}"))),
            },
        }
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> JwtVerifier {
        JwtVerifier {
            key,
            algorithm,
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

    fn authorize(&self, token: &str, partition: &str) -> Result<String, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        let claims = decode::<serde_json::Map<String, serde_json::Value>>(token, &self.key, &self.validation())
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                kind => AuthError::Invalid(format!("{kind:?}")),
            })?
            .claims;
        let sub = claims.get("sub").and_then(|s| s.as_str()).unwrap_or_default().to_owned();
        let listed = self.partitions(&claims).is_some_and(|ps| ps.iter().any(|p| p.as_str() == Some(partition)));
        match listed {
            true => Ok(sub),
            false => Err(AuthError::PartitionDenied { user: sub, partition: partition.to_owned() }),
        }
    }

    fn validation(&self) -> Validation {
        let mut validation = Validation::new(self.algorithm);
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
