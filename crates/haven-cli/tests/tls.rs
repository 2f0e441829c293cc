//! `haven serve --tls-cert --tls-key --jwks` as an operator deploys it: a
//! device with an RS256 token from the provider's key set syncs over
//! `wss://`; the provider rotates its key and SIGHUP swaps in a renewed
//! certificate while that device keeps syncing, and a device signed in
//! with the new key joins; `haven admin --ca-cert` talks to it over HTTPS and
//! signs a user out; nothing secret reaches the log at any level; bad
//! certificate files stop the server at start, naming the file.

use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use haven_testkit::keys::{EC_PRIVATE, RSA_PRIVATE};
use haven_testkit::tls::{TestCa, Validity};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#;
const ADMIN_TOKEN: &str = "admin-TOKEN-3b8e51";
const LOOPBACK: [&str; 2] = ["localhost", "127.0.0.1"];

/// A signing key of the provider: the RSA test key as `kid` "k1" before
/// the rotation, the P-256 one as "k2" after.
fn provider_key(rotated: bool) -> (EncodingKey, Algorithm, &'static str) {
    match rotated {
        false => (EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(), Algorithm::RS256, "k1"),
        true => (EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(), Algorithm::ES256, "k2"),
    }
}

/// The provider's key set: its one current key.
fn key_set(rotated: bool) -> String {
    let (key, algorithm, kid) = provider_key(rotated);
    let mut jwk = Jwk::from_encoding_key(&key, algorithm).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap()
}

fn token(user: &str, rotated: bool) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (key, algorithm, kid) = provider_key(rotated);
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.into());
    let claims = serde_json::json!({"sub": user, "iat": now, "exp": now + 3600, "partitions": ["p"]});
    encode(&header, &claims, &key).unwrap()
}

fn device(dir: &Path, name: &str, addr: &str, ca: &TestCa, token: &str) -> Config {
    let sync = SyncConfig::new(format!("wss://{addr}"), token, "p")
        .tls_root_certificates(ca.pem())
        .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200));
    Config::new(dir.join(name)).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
}

async fn synced(db: &Database) {
    let session = db.sync_session().unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        session.upload_all_local_changes().await.unwrap();
        session.download_all_server_changes().await.unwrap();
    })
    .await
    .expect("synced within 30 s");
}

/// `haven admin --ca-cert CA --server https://ADDR ARGS`: its exit status and output.
fn admin(addr: &str, ca: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["admin", "--ca-cert", ca.to_str().unwrap(), "--server", &format!("https://localhost:{}", port(addr))])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

#[test]
fn a_device_syncs_over_tls_with_a_key_set_token_across_a_certificate_renewal_and_no_secret_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Haven test CA");
    let files = ca.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Current);
    let (ca_file, jwks_file) = (dir.path().join("ca.pem"), dir.path().join("jwks.json"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&jwks_file, key_set(false)).unwrap();
    let log_path = dir.path().join("serve.log");
    let data_dir = dir.path().join("data");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--tls-cert",
        files.cert.to_str().unwrap(),
        "--tls-key",
        files.key.to_str().unwrap(),
        "--jwks",
        jwks_file.to_str().unwrap(),
    ];
    let env = [("HAVEN_ADMIN_TOKEN", ADMIN_TOKEN), ("RUST_LOG", "trace")];
    let (mut server, addr) = common::serve(&args, &env, Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let addr = format!("localhost:{}", port(&addr));
    let first_key = std::fs::read_to_string(&files.key).unwrap();

    // Ann signs in before the provider rotates its key, Bob after.
    let (ann_token, bob_token) = (token("ann", false), token("bob", true));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ann = Database::open_synced(device(dir.path(), "ann.haven", &addr, &ca, &ann_token)).await.unwrap();
        ann.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
        synced(&ann).await;

        // The provider rotates its signing key; the operator renews the
        // certificate and sends SIGHUP.
        std::fs::write(&jwks_file, key_set(true)).unwrap();
        let renewed = TestCa::new("renewed CA");
        renewed.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Current);
        assert!(Command::new("kill").args(["-HUP", &server.id().to_string()]).status().unwrap().success());
        let reloaded = || std::fs::read_to_string(&log_path).unwrap().contains("TLS certificate files read again");
        tokio::time::timeout(Duration::from_secs(30), async {
            while !reloaded() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the server read the renewed files");
        let bob = Database::open_synced(device(dir.path(), "bob.haven", &addr, &renewed, &bob_token)).await.unwrap();
        ann.write(|tx| tx.create("Dog", serde_json::json!({"_id": 2, "name": "Ace"}), UpdateMode::Never)).unwrap();
        synced(&ann).await;
        synced(&bob).await;
        assert!(bob.object_for_primary_key("Dog", 2).unwrap().is_some(), "ann's session synced on across the renewal");

        let renewed_ca = dir.path().join("renewed.pem");
        std::fs::write(&renewed_ca, renewed.pem()).unwrap();
        let (listed, text) = admin(&addr, &renewed_ca, &["partitions"]);
        assert!(listed && text.contains("\"p\""), "{text}");
        let (untrusted, text) = admin(&addr, &ca_file, &["partitions"]);
        assert!(!untrusted && text.contains("certificate") && text.contains("unknown issuer"), "{text}");
        let (revoked, text) = admin(&addr, &renewed_ca, &["revoke-user", "ann"]);
        assert!(revoked && text.contains("\"sessions_closed\": 1"), "{text}");
        let session = ann.sync_session().unwrap();
        tokio::time::timeout(Duration::from_secs(30), async {
            while session.watch().borrow().stopped.is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("ann's session is closed");
    });
    server.kill().unwrap();
    server.wait().unwrap();

    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("TRACE") && logged.contains("SIGHUP"), "every level was logged, the reload too:\n{logged}");
    let key_lines = |pem: &str| pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_owned).collect::<Vec<_>>();
    let mut secrets = vec![ADMIN_TOKEN.to_owned()];
    for token in [&ann_token, &bob_token] {
        secrets.extend([token.clone(), token.rsplit('.').next().unwrap().to_owned()]);
    }
    secrets.extend(key_lines(&first_key));
    secrets.extend(key_lines(&std::fs::read_to_string(&files.key).unwrap()));
    secrets.extend(key_lines(RSA_PRIVATE));
    secrets.extend(key_lines(EC_PRIVATE));
    for secret in secrets {
        assert!(!logged.contains(&secret), "the log holds a secret ({secret}):\n{logged}");
    }
}

#[test]
fn certificate_files_that_cannot_be_used_stop_the_server_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Haven test CA");
    let files = ca.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Current);
    let other = ca.write_server_files(dir.path(), "other", &LOOPBACK, Validity::Current);
    let missing = dir.path().join("missing.pem");
    let cases = [
        (files.cert.as_path(), missing.as_path(), "missing.pem"),
        (files.key.as_path(), files.key.as_path(), "server.key"),
        (files.cert.as_path(), other.key.as_path(), "does not belong to the certificate"),
    ];
    for (cert, key, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path().join("data").to_str().unwrap()])
            .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{expected}: {stderr}");
    }
}
