//! `haven serve` checks tokens an identity provider signs: a device with
//! an ES256 token from the provider's key syncs; a token that names
//! another issuer, or forges the provider's signature with its public key
//! as an HS256 secret, is refused; a key file that is not a key stops the
//! server at start, naming the file.

use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use haven_testkit::keys::{EC_PRIVATE, EC_PUBLIC};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#;
const ISSUER: &str = "https://auth.example.com/";

fn claims(issuer: &str) -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    serde_json::json!({"sub": "ann", "iss": issuer, "exp": now + 3600, "app_metadata": {"partitions": ["p"]}})
}

fn device(dir: &std::path::Path, name: &str, addr: &str, token: &str) -> Config {
    let sync = SyncConfig::new(format!("ws://{addr}"), token, "p")
        .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200));
    Config::new(dir.join(name)).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
}

#[test]
fn a_providers_es256_token_syncs_and_forgeries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("provider.pem");
    std::fs::write(&key_file, EC_PUBLIC).unwrap();
    let data_dir = dir.path().join("data");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--jwt-public-key",
        key_file.to_str().unwrap(),
        "--jwt-issuer",
        ISSUER,
        "--partitions-claim",
        "app_metadata.partitions",
    ];
    let (mut server, addr) = common::serve(&args, &[], Stdio::null());
    let provider = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let good = encode(&Header::new(Algorithm::ES256), &claims(ISSUER), &provider).unwrap();
    let other_issuer = encode(&Header::new(Algorithm::ES256), &claims("https://evil.example/"), &provider).unwrap();
    let confused =
        encode(&Header::new(Algorithm::HS256), &claims(ISSUER), &EncodingKey::from_secret(EC_PUBLIC.as_bytes()))
            .unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = Database::open_synced(device(dir.path(), "a.haven", &addr, &good)).await.unwrap();
        db.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
        let session = db.sync_session().unwrap();
        tokio::time::timeout(Duration::from_secs(30), session.upload_all_local_changes()).await.unwrap().unwrap();
        for (name, token) in [("b.haven", &other_issuer), ("c.haven", &confused)] {
            let refused = Database::open_synced(device(dir.path(), name, &addr, token)).await;
            let error = refused.expect_err("refused").to_string();
            assert!(error.contains("not valid") && !error.contains(token.as_str()), "{name}: {error}");
        }
    });
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_key_file_that_is_not_a_key_stops_the_server_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("not-a-key.pem");
    std::fs::write(&key_file, "hello").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--jwt-public-key")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--jwt-public-key") && stderr.contains("not-a-key.pem"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
