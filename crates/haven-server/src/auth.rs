//! Who may sync which partition: HS256 JSON Web Tokens whose `sub` is the
//! user and whose `partitions` claim lists the partitions it may read and
//! write, or, in development mode, anyone.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Checks tokens.
pub enum Authenticator {
    /// Accepts any token (the server allows this on loopback only).
    Dev,
    /// Accepts HS256 tokens signed with the server's secret.
    Jwt(DecodingKey),
}

/// A token refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was sent.
    #[error("no token: send a JWT signed with the server's secret")]
    MissingToken,
    /// The token's `exp` has passed.
    #[error("the token has expired: get a new one")]
    Expired,
    /// Forged, malformed, or signed with another algorithm or key.
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

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    partitions: Vec<String>,
}

impl Authenticator {
    /// Checks HS256 tokens against `secret`.
    pub fn jwt(secret: &[u8]) -> Authenticator {
        Authenticator::Jwt(DecodingKey::from_secret(secret))
    }

    /// Returns the user a token stands for, if it may sync `partition`.
    /// The token itself is never logged or echoed.
    pub fn authorize(&self, token: &str, partition: &str) -> Result<String, AuthError> {
        let key = match self {
            Authenticator::Dev => return Ok("dev".to_owned()),
            Authenticator::Jwt(key) => key,
        };
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            kind => AuthError::Invalid(format!("{kind:?}")),
        })?;
        let Claims { sub, partitions } = claims.claims;
        if partitions.iter().any(|p| p == partition) {
            Ok(sub)
        } else {
            Err(AuthError::PartitionDenied { user: sub, partition: partition.to_owned() })
        }
    }
}
