//! `haven serve` never writes a secret to its logs: not the JWT secret,
//! not the admin token, not a device's token, not a wrong token someone
//! tried, not a PostgreSQL password; even with every log turned on.

use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#;
const JWT_SECRET: &str = "jwt-SECRET-4f9a0c";
const ADMIN_TOKEN: &str = "admin-TOKEN-77c1e2";
const WRONG_ADMIN_TOKEN: &str = "admin-WRONG-90b3d4";

fn jwt(secret: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({"sub": "ann", "partitions": ["p"], "exp": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

fn device(dir: &std::path::Path, name: &str, addr: &str, token: &str) -> Config {
    let sync = SyncConfig::new(format!("ws://{addr}"), token, "p")
        .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200));
    Config::new(dir.join(name)).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
}

fn admin(addr: &str, token: &str) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["admin", "--server", &format!("http://{addr}"), "--admin-token", token, "partitions"])
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn no_secret_or_token_is_ever_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let data_dir = dir.path().join("data");
    let env = [("HAVEN_JWT_SECRET", JWT_SECRET), ("HAVEN_ADMIN_TOKEN", ADMIN_TOKEN), ("RUST_LOG", "trace")];
    let args = ["--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap()];
    let (mut server, addr) = common::serve(&args, &env, Stdio::from(log));

    let (good, forged) = (jwt(JWT_SECRET), jwt("not-the-SECRET-e5f6"));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = Database::open_synced(device(dir.path(), "a.haven", &addr, &good)).await.unwrap();
        db.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
        let session = db.sync_session().unwrap();
        tokio::time::timeout(Duration::from_secs(30), session.upload_all_local_changes()).await.unwrap().unwrap();
        let refused = Database::open_synced(device(dir.path(), "b.haven", &addr, &forged)).await;
        assert!(refused.is_err(), "a forged token is refused");
    });
    assert!(admin(&addr, ADMIN_TOKEN));
    assert!(!admin(&addr, WRONG_ADMIN_TOKEN));
    server.kill().unwrap();
    server.wait().unwrap();

    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("TRACE") && logged.contains("DEBUG"), "every level was logged:\n{logged}");
    let signature = |token: &str| token.rsplit('.').next().unwrap().to_owned();
    for secret in [JWT_SECRET, ADMIN_TOKEN, WRONG_ADMIN_TOKEN, &good, &signature(&good), &forged, &signature(&forged)] {
        assert!(!logged.contains(secret), "the log holds a secret ({secret}):\n{logged}");
    }
}

#[test]
fn a_postgres_password_is_not_logged() {
    // Only to know whether to run; the server makes its own tables.
    let Some(scratch) = haven_testkit::test_postgres() else { return };
    let schema = scratch.scratch_schema().unwrap().to_owned();
    let url = std::env::var("HAVEN_TEST_POSTGRES_URL").unwrap();
    // Trust authentication ignores the password: it only has to stay out of the log.
    let password = "pg-PASSWORD-1a2b3c";
    let with_password = url.replacen("postgres://postgres@", &format!("postgres://postgres:{password}@"), 1);
    assert_ne!(with_password, url, "HAVEN_TEST_POSTGRES_URL is postgres://postgres@HOST...");
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let env = [("HAVEN_POSTGRES_URL", with_password.as_str()), ("RUST_LOG", "trace")];
    let (mut server, addr) =
        common::serve(&["--listen", "127.0.0.1:0", "--postgres-schema", &schema], &env, Stdio::from(log));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = Database::open_synced(device(dir.path(), "a.haven", &addr, "dev")).await.unwrap();
        db.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
        let session = db.sync_session().unwrap();
        tokio::time::timeout(Duration::from_secs(30), session.upload_all_local_changes()).await.unwrap().unwrap();
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("TRACE"), "every level was logged:\n{logged}");
    assert!(!logged.contains(password), "the log holds the PostgreSQL password:\n{logged}");
    drop(scratch);
}
