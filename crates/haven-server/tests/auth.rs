//! Tokens: valid, expired, forged, missing, for another partition.

use haven_server::{AuthError, Authenticator};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"a test secret of reasonable length";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token(secret: &[u8], claims: serde_json::Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
}

#[test]
fn tokens_are_checked() {
    let auth = Authenticator::jwt(SECRET);
    let good = token(SECRET, json!({"sub": "ann", "exp": now() + 600, "partitions": ["p", "q"]}));
    assert_eq!(auth.authorize(&good, "q"), Ok("ann".to_string()));
    assert_eq!(
        auth.authorize(&good, "r"),
        Err(AuthError::PartitionDenied { user: "ann".into(), partition: "r".into() })
    );
    let expired = token(SECRET, json!({"sub": "ann", "exp": now() - 3600, "partitions": ["p"]}));
    assert_eq!(auth.authorize(&expired, "p"), Err(AuthError::Expired));
    let forged = token(b"another secret", json!({"sub": "ann", "exp": now() + 600, "partitions": ["p"]}));
    assert!(matches!(auth.authorize(&forged, "p"), Err(AuthError::Invalid(_))));
    let no_exp = token(SECRET, json!({"sub": "ann", "partitions": ["p"]}));
    assert!(matches!(auth.authorize(&no_exp, "p"), Err(AuthError::Invalid(_))));
    assert_eq!(auth.authorize("", "p"), Err(AuthError::MissingToken));
    assert!(matches!(auth.authorize("not.a.jwt", "p"), Err(AuthError::Invalid(_))));
    // An unsigned token ("alg": "none") is refused.
    let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let body = good.split('.').nth(1).unwrap();
    assert!(matches!(auth.authorize(&format!("{header}.{body}."), "p"), Err(AuthError::Invalid(_))));
    // Errors never echo the token.
    let err = auth.authorize(&forged, "p").unwrap_err().to_string();
    assert!(!err.contains(&forged) && !err.contains(forged.split('.').nth(2).unwrap()), "{err}");
}

#[test]
fn dev_mode_accepts_anyone() {
    assert_eq!(Authenticator::Dev.authorize("", "p"), Ok("dev".to_string()));
    assert_eq!(Authenticator::Dev.authorize("whatever", "any"), Ok("dev".to_string()));
}
