//! Tokens: valid, expired, forged, missing, for another partition; signed
//! by an identity provider's RSA or P-256 key; issuer, audience, not-before
//! and where the partitions are listed.

use haven_server::{AuthError, Authenticator, JwtVerifier};
use haven_testkit::keys::{EC_PRIVATE, EC_PUBLIC, RSA_PRIVATE, RSA_PUBLIC};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"a test secret of reasonable length";

/// Who `token` stands for, as a user name, or why it is refused.
async fn user(auth: &Authenticator, token: &str, partition: &str) -> Result<String, AuthError> {
    auth.authorize(token, partition).await.map(|identity| identity.user)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token(secret: &[u8], claims: serde_json::Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
}

#[tokio::test]
async fn tokens_are_checked() {
    let auth = Authenticator::jwt(SECRET);
    let good = token(SECRET, json!({"sub": "ann", "exp": now() + 600, "partitions": ["p", "q"]}));
    assert_eq!(user(&auth, &good, "q").await, Ok("ann".to_string()));
    assert_eq!(
        user(&auth, &good, "r").await,
        Err(AuthError::PartitionDenied { user: "ann".into(), partition: "r".into() })
    );
    let expired = token(SECRET, json!({"sub": "ann", "exp": now() - 3600, "partitions": ["p"]}));
    assert_eq!(user(&auth, &expired, "p").await, Err(AuthError::Expired));
    let forged = token(b"another secret", json!({"sub": "ann", "exp": now() + 600, "partitions": ["p"]}));
    assert!(matches!(user(&auth, &forged, "p").await, Err(AuthError::Invalid(_))));
    let no_exp = token(SECRET, json!({"sub": "ann", "partitions": ["p"]}));
    assert!(matches!(user(&auth, &no_exp, "p").await, Err(AuthError::Invalid(_))));
    assert_eq!(user(&auth, "", "p").await, Err(AuthError::MissingToken));
    assert!(matches!(user(&auth, "not.a.jwt", "p").await, Err(AuthError::Invalid(_))));
    // An unsigned token ("alg": "none") is refused.
    let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let body = good.split('.').nth(1).unwrap();
    assert!(matches!(user(&auth, &format!("{header}.{body}."), "p").await, Err(AuthError::Invalid(_))));
    // Errors never echo the token.
    let err = user(&auth, &forged, "p").await.unwrap_err().to_string();
    assert!(!err.contains(&forged) && !err.contains(forged.split('.').nth(2).unwrap()), "{err}");
}

#[tokio::test]
async fn dev_mode_accepts_anyone() {
    assert_eq!(user(&Authenticator::Dev, "", "p").await, Ok("dev".to_string()));
    assert_eq!(user(&Authenticator::Dev, "whatever", "any").await, Ok("dev".to_string()));
}

fn signed(algorithm: Algorithm, private_pem: &str, claims: serde_json::Value) -> String {
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
    };
    encode(&Header::new(algorithm), &claims, &key).unwrap()
}

fn valid_claims() -> serde_json::Value {
    json!({"sub": "ann", "exp": now() + 600, "partitions": ["p"]})
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_checked_with_the_providers_public_key() {
    for (algorithm, private, public) in
        [(Algorithm::RS256, RSA_PRIVATE, RSA_PUBLIC), (Algorithm::ES256, EC_PRIVATE, EC_PUBLIC)]
    {
        let auth = Authenticator::Jwt(JwtVerifier::from_public_key_pem(public.as_bytes()).unwrap());
        assert_eq!(
            user(&auth, &signed(algorithm, private, valid_claims()), "p").await,
            Ok("ann".into()),
            "{algorithm:?}"
        );
        let expired = signed(algorithm, private, json!({"sub": "ann", "exp": now() - 3600, "partitions": ["p"]}));
        assert_eq!(user(&auth, &expired, "p").await, Err(AuthError::Expired));
    }
    // The other provider's key does not verify it.
    let auth = Authenticator::Jwt(JwtVerifier::from_public_key_pem(EC_PUBLIC.as_bytes()).unwrap());
    assert!(matches!(
        user(&auth, &signed(Algorithm::RS256, RSA_PRIVATE, valid_claims()), "p").await,
        Err(AuthError::Invalid(_))
    ));
}

/// The classic confusion: an HS256 token whose secret is the public key
/// (which anyone has) must not pass for one the provider signed.
#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    let auth = Authenticator::Jwt(JwtVerifier::from_public_key_pem(RSA_PUBLIC.as_bytes()).unwrap());
    let forged = token(RSA_PUBLIC.as_bytes(), valid_claims());
    assert!(matches!(user(&auth, &forged, "p").await, Err(AuthError::Invalid(_))));
    let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let body = forged.split('.').nth(1).unwrap();
    assert!(matches!(user(&auth, &format!("{header}.{body}."), "p").await, Err(AuthError::Invalid(_))));
}

#[tokio::test]
async fn issuer_audience_and_not_before_are_checked() {
    let auth = Authenticator::Jwt(JwtVerifier::from_secret(SECRET).issuer("https://auth.example/").audience("haven"));
    let claims = |extra: serde_json::Value| {
        let mut c = valid_claims();
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let good = token(SECRET, claims(json!({"iss": "https://auth.example/", "aud": "haven"})));
    assert_eq!(user(&auth, &good, "p").await, Ok("ann".into()));
    for bad in [
        json!({"iss": "https://evil.example/", "aud": "haven"}),
        json!({"iss": "https://auth.example/", "aud": "another app"}),
        json!({"aud": "haven"}),
        json!({"iss": "https://auth.example/", "aud": "haven", "nbf": now() + 3600}),
    ] {
        assert!(
            matches!(user(&auth, &token(SECRET, claims(bad.clone())), "p").await, Err(AuthError::Invalid(_))),
            "{bad}"
        );
    }
    // Without an audience to check, a token's `aud` is not held against it.
    let auth = Authenticator::jwt(SECRET);
    assert_eq!(user(&auth, &token(SECRET, claims(json!({"aud": "any"}))), "p").await, Ok("ann".into()));
}

#[tokio::test]
async fn the_partitions_claim_can_be_named_or_nested() {
    let namespaced = JwtVerifier::from_secret(SECRET).partitions_claim("https://haven.example/partitions");
    let auth = Authenticator::Jwt(namespaced);
    let t = token(SECRET, json!({"sub": "ann", "exp": now() + 600, "https://haven.example/partitions": ["p"]}));
    assert_eq!(user(&auth, &t, "p").await, Ok("ann".into()));
    let auth = Authenticator::Jwt(JwtVerifier::from_secret(SECRET).partitions_claim("app_metadata.partitions"));
    let t = token(SECRET, json!({"sub": "ann", "exp": now() + 600, "app_metadata": {"partitions": ["p"]}}));
    assert_eq!(user(&auth, &t, "p").await, Ok("ann".into()));
    assert!(matches!(user(&auth, &t, "q").await, Err(AuthError::PartitionDenied { .. })));
    let flat = token(SECRET, valid_claims());
    assert!(
        matches!(user(&auth, &flat, "p").await, Err(AuthError::PartitionDenied { .. })),
        "the default claim is not read"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_public_key_is_refused() {
    for pem in ["", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", SECRET_TEXT] {
        assert!(JwtVerifier::from_public_key_pem(pem.as_bytes()).is_err(), "{pem}");
    }
}

const SECRET_TEXT: &str = "a test secret of reasonable length";
