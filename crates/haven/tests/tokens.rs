//! Tokens over a session's life: a token that expires mid-session is
//! refreshed through the app's provider with every write delivered once;
//! without a provider the expiry is reported; a refreshed token that lost
//! the partition is denied; an operator's revocation
//! closes a live session at once; RS256 and ES256 tokens checked against
//! an identity provider's key set, from a file and from a URL, across a
//! key rotation.

use haven::{Config, Database, ErrorCode, Schema, SyncConfig, SyncError};
use haven_server::{Authenticator, JwtVerifier, Server};
use haven_testkit::keys::{EC_PRIVATE, RSA_PRIVATE};
use haven_testkit::{synced, write_counted, Proxy, ServedDocument};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#;
const SECRET: &[u8] = b"a test secret of reasonable length";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// An HS256 token for `user` on partition `p`, valid for `lifetime` seconds.
fn hs256(user: &str, lifetime: u64) -> String {
    hs256_for(user, lifetime, "p")
}

fn hs256_for(user: &str, lifetime: u64, partition: &str) -> String {
    let claims = json!({"sub": user, "iat": now(), "exp": now() + lifetime, "partitions": [partition]});
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

async fn server(dir: &Path, auth: Authenticator) -> Server {
    let storage = haven_testkit::test_storage(&dir.join("server"));
    Server::start(storage, auth, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// Checks HS256 tokens with no leeway, so that an expiry shows at once.
fn strict_hs256() -> Authenticator {
    Authenticator::Jwt(JwtVerifier::from_secret(SECRET).leeway_secs(0))
}

fn config(dir: &Path, name: &str, sync: SyncConfig) -> Config {
    let sync = sync.reconnect_delays(Duration::from_millis(20), Duration::from_millis(200));
    Config::new(dir.join(format!("{name}.haven"))).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
}

/// A provider that mints a token from `mint` and counts its calls.
fn counting_provider(
    sync: SyncConfig,
    mint: impl Fn() -> String + Send + Sync + 'static,
) -> (SyncConfig, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let mint = Arc::new(mint);
    let sync = sync.token_provider(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let token = mint();
        async move { Ok::<_, String>(token) }
    });
    (sync, calls)
}

fn errors_of(sync: SyncConfig) -> (SyncConfig, Arc<Mutex<Vec<SyncError>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    (sync.on_error(move |e| seen.lock().unwrap().push(e.clone())), errors)
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within 30 s"));
}

fn counter(db: &Database) -> Option<haven::Value> {
    db.object_for_primary_key("Dog", 0).unwrap().and_then(|o| o.get("age"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_mid_session_is_refreshed_and_every_write_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), strict_hs256()).await;
    // Tokens that live 2 s: a session outlives several of them.
    let (writer, calls) = counting_provider(SyncConfig::new(server.url(), "", "p"), || hs256("ann", 2));
    let (writer, errors) = errors_of(writer);
    let writer = Database::open_synced(config(dir.path(), "writer", writer)).await.unwrap();
    let reader = SyncConfig::new(server.url(), hs256("bob", 3600), "p");
    let reader = Database::open_synced(config(dir.path(), "reader", reader)).await.unwrap();
    let started = Instant::now();
    let mut written = 0;
    while started.elapsed() < Duration::from_secs(6) {
        written += 1;
        write_counted(&writer, written).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    synced(&writer).await;
    synced(&reader).await;
    assert!(calls.load(Ordering::SeqCst) >= 3, "the provider was asked again at each expiry");
    assert_eq!(*errors.lock().unwrap(), vec![], "an expiry is handled, not reported");
    assert_eq!(counter(&reader), Some(written.into()), "each write counted once: none lost, none applied twice");
    assert_eq!(reader.objects("Dog").unwrap().len().unwrap(), written as usize + 1);
    assert_eq!(writer.sync_session().unwrap().watch().borrow().stopped, None);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_token_expiring_mid_session_is_reported_and_sync_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), strict_hs256()).await;
    let (sync, errors) = errors_of(SyncConfig::new(server.url(), hs256("ann", 2), "p"));
    let db = Database::open_synced(config(dir.path(), "device", sync)).await.unwrap();
    let session = db.sync_session().unwrap();
    eventually("the session stops", || session.watch().borrow().stopped.is_some()).await;
    let errors = errors.lock().unwrap().clone();
    assert!(
        matches!(&errors[..], [SyncError::Server { code: ErrorCode::TokenExpired, .. }]),
        "reported once as an expired token: {errors:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_token_that_no_longer_lists_the_partition_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), strict_hs256()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let sync = SyncConfig::new(server.url(), "", "p").token_provider(move || {
        // The user loses partition p after the first token.
        let partition = if counted.fetch_add(1, Ordering::SeqCst) == 0 { "p" } else { "q" };
        let token = hs256_for("ann", 2, partition);
        async move { Ok::<_, String>(token) }
    });
    let (sync, errors) = errors_of(sync);
    let db = Database::open_synced(config(dir.path(), "device", sync)).await.unwrap();
    let session = db.sync_session().unwrap();
    eventually("the session stops", || session.watch().borrow().stopped.is_some()).await;
    let errors = errors.lock().unwrap().clone();
    assert!(matches!(&errors[..], [SyncError::Server { code: ErrorCode::PartitionDenied, .. }]), "{errors:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_fails_is_reported_once_and_asked_again_after_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), strict_hs256()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let sync = SyncConfig::new(server.url(), "", "p").wait_for_download(false).token_provider(move || {
        let call = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            match call {
                0..=2 => Err("the identity provider is unreachable".to_owned()),
                _ => Ok(hs256("ann", 3600)),
            }
        }
    });
    let (sync, errors) = errors_of(sync);
    let db = Database::open_synced(config(dir.path(), "device", sync)).await.unwrap();
    let session = db.sync_session().unwrap();
    eventually("connected once the provider answers", || session.is_connected()).await;
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors, vec![SyncError::Token("the identity provider is unreachable".into())]);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_user_is_closed_at_once_and_their_older_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), strict_hs256()).await;
    // Silent clients: only the server's push can close the session soon.
    let quiet = |sync: SyncConfig| sync.ping_interval(Duration::from_secs(50));
    let (ann, errors) = errors_of(quiet(SyncConfig::new(server.url(), hs256("ann", 3600), "p")));
    let ann = Database::open_synced(config(dir.path(), "ann", ann)).await.unwrap();
    let (provided, calls) = counting_provider(quiet(SyncConfig::new(server.url(), "", "p")), || hs256("ann", 3600));
    let provided = Database::open_synced(config(dir.path(), "ann-with-provider", provided)).await.unwrap();
    let bob = quiet(SyncConfig::new(server.url(), hs256("bob", 3600), "p"));
    let bob = Database::open_synced(config(dir.path(), "bob", bob)).await.unwrap();

    let revoked_at = Instant::now();
    assert_eq!(server.revoke_user("ann"), 2, "both of ann's sessions");
    let session = ann.sync_session().unwrap();
    eventually("ann's fixed-token session stops", || session.watch().borrow().stopped.is_some()).await;
    println!("revocation to closed session: {:?}", revoked_at.elapsed());
    let errors = errors.lock().unwrap().clone();
    assert!(
        matches!(&errors[..], [SyncError::Server { code: ErrorCode::BadToken, message, .. }] if message.contains("signed out")),
        "{errors:?}"
    );
    assert!(bob.sync_session().unwrap().is_connected(), "another user is not touched");
    // A token issued after the revocation is accepted: the provider's next one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_counted(&provided, 1).unwrap();
    synced(&provided).await;
    synced(&bob).await;
    assert_eq!(counter(&bob), Some(1.into()));
    assert!(calls.load(Ordering::SeqCst) >= 2, "the provider gave a fresh token");
    server.shutdown().await;
}

/// A signing key of the identity provider: its private key, algorithm and
/// `kid`, and its public half as a JWK.
#[derive(Clone)]
struct ProviderKey {
    private: EncodingKey,
    algorithm: Algorithm,
    kid: &'static str,
}

impl ProviderKey {
    fn rsa(kid: &'static str) -> ProviderKey {
        ProviderKey {
            private: EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
            algorithm: Algorithm::RS256,
            kid,
        }
    }

    fn ec(kid: &'static str) -> ProviderKey {
        ProviderKey {
            private: EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            algorithm: Algorithm::ES256,
            kid,
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.private, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk
    }

    fn token(&self, user: &str, lifetime: u64) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_owned());
        let claims = json!({"sub": user, "iat": now(), "exp": now() + lifetime, "partitions": ["p"]});
        encode(&header, &claims, &self.private).unwrap()
    }
}

fn key_set(keys: &[&ProviderKey]) -> String {
    serde_json::to_string(&JwkSet { keys: keys.iter().map(|k| k.jwk()).collect() }).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sync_with_tokens_from_a_key_set_url_across_a_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (ProviderKey::rsa("2026-11"), ProviderKey::ec("2026-12"));
    let jwks = ServedDocument::start(key_set(&[&old])).await;
    let verifier = JwtVerifier::from_jwks(&jwks.url()).await.unwrap().leeway_secs(0);
    let server = server(dir.path(), Authenticator::Jwt(verifier)).await;
    // The provider signs with whichever key is current; its tokens live 2 s.
    let rotated = Arc::new(AtomicBool::new(false));
    let (signing, keys) = (rotated.clone(), (old.clone(), new.clone()));
    let (device, _) = counting_provider(SyncConfig::new(server.url(), "", "p"), move || {
        let key = if signing.load(Ordering::SeqCst) { &keys.1 } else { &keys.0 };
        key.token("ann", 2)
    });
    let device = Database::open_synced(config(dir.path(), "device", device)).await.unwrap();
    let reader = SyncConfig::new(server.url(), old.token("bob", 3600), "p");
    let reader = Database::open_synced(config(dir.path(), "reader", reader)).await.unwrap();
    write_counted(&device, 1).unwrap();
    synced(&device).await;

    // The provider rotates: a new key, the old one retired.
    jwks.replace(key_set(&[&new]));
    rotated.store(true, Ordering::SeqCst);
    let fetched_before = jwks.requests();
    // The device's old token expires; its next token names the new key.
    tokio::time::sleep(Duration::from_secs(3)).await;
    write_counted(&device, 2).unwrap();
    synced(&device).await;
    synced(&reader).await;
    assert_eq!(counter(&reader), Some(2.into()), "both writes arrived once");
    assert_eq!(jwks.requests(), fetched_before + 1, "the unknown key made the set be fetched once");
    server.shutdown().await;
}

#[tokio::test]
async fn a_key_set_file_checks_rs256_and_es256_tokens_by_kid_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, ec) = (ProviderKey::rsa("r1"), ProviderKey::ec("e1"));
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, key_set(&[&rsa, &ec])).unwrap();
    let auth = Authenticator::Jwt(JwtVerifier::from_jwks(file.to_str().unwrap()).await.unwrap());
    for key in [&rsa, &ec] {
        assert_eq!(auth.authorize(&key.token("ann", 600), "p").await.unwrap().user, "ann", "{:?}", key.algorithm);
    }
    let stranger = ProviderKey { kid: "unknown", ..ProviderKey::rsa("") };
    assert_eq!(auth.authorize(&stranger.token("ann", 600), "p").await, Err(haven_server::AuthError::UnknownKey));
    // A key listed under another kid does not check a token naming this one.
    let swapped = ProviderKey { kid: "e1", ..ProviderKey::rsa("") };
    assert!(auth.authorize(&swapped.token("ann", 600), "p").await.is_err());
}

#[tokio::test]
async fn tokens_naming_unknown_keys_refetch_the_set_a_bounded_number_of_times() {
    let jwks = ServedDocument::start(key_set(&[&ProviderKey::rsa("r1")])).await;
    let auth = Authenticator::Jwt(JwtVerifier::from_jwks(&jwks.url()).await.unwrap());
    assert_eq!(jwks.requests(), 1, "fetched at start");
    for i in 0..20 {
        let forged = ProviderKey { kid: if i % 2 == 0 { "x" } else { "y" }, ..ProviderKey::rsa("") };
        assert_eq!(auth.authorize(&forged.token("ann", 600), "p").await, Err(haven_server::AuthError::UnknownKey));
    }
    assert_eq!(jwks.requests(), 1 + haven_server::REFETCHES_PER_MINUTE, "refetches are bounded");
}

#[tokio::test]
async fn a_key_set_that_is_unreachable_or_malformed_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let unreachable = JwtVerifier::from_jwks("http://127.0.0.1:1/jwks.json").await.err().expect("refused");
    assert!(unreachable.to_string().contains("cannot fetch the JWKS http://127.0.0.1:1/jwks.json"), "{unreachable}");
    let malformed = ServedDocument::start("<html>").await;
    let error = JwtVerifier::from_jwks(&malformed.url()).await.err().expect("refused").to_string();
    assert!(error.contains("not a JSON Web Key Set"), "{error}");
    let missing = dir.path().join("missing.json");
    let error = JwtVerifier::from_jwks(missing.to_str().unwrap()).await.err().expect("refused").to_string();
    assert!(error.contains("missing.json"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failing_again_after_a_connection_is_reported_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), strict_hs256()).await;
    let proxy = Proxy::start(server.local_addr()).await;
    let failing = Arc::new(AtomicBool::new(true));
    let fails = failing.clone();
    let sync = SyncConfig::new(proxy.url(), "", "p").wait_for_download(false).token_provider(move || {
        let fail = fails.load(Ordering::SeqCst);
        async move {
            match fail {
                true => Err("the identity provider is unreachable".to_owned()),
                false => Ok(hs256("ann", 2)),
            }
        }
    });
    let (sync, errors) = errors_of(sync);
    let db = Database::open_synced(config(dir.path(), "device", sync)).await.unwrap();
    let session = db.sync_session().unwrap();
    eventually("the failure is reported", || errors.lock().unwrap().len() == 1).await;
    failing.store(false, Ordering::SeqCst);
    eventually("connected once the provider answers", || session.is_connected()).await;
    failing.store(true, Ordering::SeqCst);
    proxy.cut_all();
    eventually("the same failure, after a connection, is reported again", || errors.lock().unwrap().len() == 2).await;
    let errors = errors.lock().unwrap().clone();
    assert!(errors.iter().all(|e| *e == SyncError::Token("the identity provider is unreachable".into())), "{errors:?}");
    server.shutdown().await;
}
