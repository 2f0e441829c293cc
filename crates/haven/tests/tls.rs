//! Devices syncing over `wss://` with a server that serves TLS, and every
//! way the TLS can be wrong: an unknown certificate authority, an expired
//! certificate, another host's, a plain client at a TLS port and the
//! reverse, and a certificate replaced while devices are connected.

use haven::{Config, Database, Schema, SyncConfig, SyncError, UpdateMode};
use haven_server::{Authenticator, Server, ServerOptions, TlsFiles};
use haven_testkit::tls::{TestCa, Validity};
use haven_testkit::{synced, Proxy};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#;

/// The names a certificate must cover for a device connecting to loopback.
const LOOPBACK: [&str; 2] = ["localhost", "127.0.0.1"];

async fn tls_server(dir: &Path, files: Option<TlsFiles>) -> Server {
    let storage = haven_testkit::test_storage(&dir.join("server"));
    let options = ServerOptions { tls: files, ..ServerOptions::default() };
    Server::start_with_options(storage, Authenticator::Dev, "127.0.0.1:0".parse().unwrap(), options).await.unwrap()
}

fn sync_config(url: &str) -> SyncConfig {
    SyncConfig::new(url, "dev", "p").reconnect_delays(Duration::from_millis(20), Duration::from_millis(40))
}

fn config(dir: &Path, name: &str, sync: SyncConfig) -> Config {
    Config::new(dir.join(format!("{name}.haven"))).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
}

/// A device that reports its errors into the returned list and does not
/// wait for the server when it opens.
async fn reporting_device(dir: &Path, name: &str, sync: SyncConfig) -> (Database, Arc<Mutex<Vec<SyncError>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let sync = sync.wait_for_download(false).on_error(move |e| seen.lock().unwrap().push(e.clone()));
    (Database::open_synced(config(dir, name, sync)).await.unwrap(), errors)
}

fn wss(server: &Server, host: &str) -> String {
    format!("wss://{host}:{}", server.local_addr().port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sync_over_wss_with_a_private_certificate_authority() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Haven test CA");
    let server =
        tls_server(dir.path(), Some(ca.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Current))).await;
    assert!(server.url().starts_with("wss://"), "{}", server.url());
    let a = sync_config(&wss(&server, "localhost")).tls_root_certificates(ca.pem());
    let b = sync_config(&server.url()).tls_root_certificates(ca.pem());
    let a = Database::open_synced(config(dir.path(), "a", a)).await.unwrap();
    let b = Database::open_synced(config(dir.path(), "b", b)).await.unwrap();
    a.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
    synced(&a).await;
    synced(&b).await;
    assert_eq!(b.object_for_primary_key("Dog", 1).unwrap().unwrap().to_json()["name"], "Rex");
    server.shutdown().await;
}

/// Connects through a proxy that counts connections, and checks that the
/// device retried several times but reported the refusal once, naming
/// the host and the reason.
async fn refused_once(dir: &Path, server: &Server, host: &str, sync: impl Fn(&str) -> SyncConfig, reason: &str) {
    let proxy = Proxy::start(server.local_addr()).await;
    let url = format!("wss://{host}:{}", proxy.addr().port());
    let (device, errors) = reporting_device(dir, "device", sync(&url)).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while proxy.accepted() < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the device keeps retrying");
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "reported once, not at every attempt: {errors:?}");
    match &errors[0] {
        SyncError::Tls { host: named, reason: said } => {
            assert_eq!(named, host);
            assert!(said.contains("certificate") && said.contains(reason), "{said}");
        }
        other => panic!("{other:?}"),
    }
    assert!(errors[0].to_string().contains(host), "{}", errors[0]);
    assert!(!device.sync_session().unwrap().is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_authority_is_refused_once_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Haven test CA");
    let server =
        tls_server(dir.path(), Some(ca.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Current))).await;
    refused_once(dir.path(), &server, "localhost", sync_config, "unknown issuer").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_once_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Haven test CA");
    let server =
        tls_server(dir.path(), Some(ca.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Expired))).await;
    let trusting = |url: &str| sync_config(url).tls_root_certificates(ca.pem());
    refused_once(dir.path(), &server, "localhost", trusting, "expired").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hosts_certificate_is_refused_once_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Haven test CA");
    let files = ca.write_server_files(dir.path(), "server", &["sync.example.com"], Validity::Current);
    let server = tls_server(dir.path(), Some(files)).await;
    let trusting = |url: &str| sync_config(url).tls_root_certificates(ca.pem());
    refused_once(dir.path(), &server, "localhost", trusting, "not valid for this host name").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_websocket_at_a_tls_port_and_tls_at_a_plain_port_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Haven test CA");
    let tls =
        tls_server(dir.path(), Some(ca.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Current))).await;
    let plain = tls_server(&dir.path().join("plain"), None).await;

    let plain_url = format!("ws://127.0.0.1:{}", tls.local_addr().port());
    let (_plain_at_tls, errors) = reporting_device(dir.path(), "plain-at-tls", sync_config(&plain_url)).await;
    let error = first_error(&errors).await;
    assert!(matches!(&error, SyncError::Tls { reason, .. } if reason.contains("use a wss:// URL")), "{error:?}");

    let (_tls_at_plain, errors) =
        reporting_device(dir.path(), "tls-at-plain", sync_config(&wss(&plain, "localhost"))).await;
    let error = first_error(&errors).await;
    assert!(matches!(&error, SyncError::Tls { reason, .. } if reason.contains("use a ws:// URL")), "{error:?}");
    tls.shutdown().await;
    plain.shutdown().await;
}

async fn first_error(errors: &Mutex<Vec<SyncError>>) -> SyncError {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(error) = errors.lock().unwrap().first() {
                return error.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("an error within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_to_new_connections_and_connected_devices_sync_on() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let files = old_ca.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Current);
    let server = tls_server(dir.path(), Some(files.clone())).await;
    let connected = sync_config(&server.url()).tls_root_certificates(old_ca.pem());
    let connected = Database::open_synced(config(dir.path(), "connected", connected)).await.unwrap();

    // The operator renews the certificate (from another CA, to tell them apart).
    new_ca.write_server_files(dir.path(), "server", &LOOPBACK, Validity::Current);
    server.reload_tls().unwrap();

    let newcomer = sync_config(&server.url()).tls_root_certificates(new_ca.pem());
    let newcomer = Database::open_synced(config(dir.path(), "newcomer", newcomer)).await.unwrap();
    connected.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
    synced(&connected).await;
    synced(&newcomer).await;
    assert!(newcomer.object_for_primary_key("Dog", 1).unwrap().is_some(), "the connected device synced on");

    // A broken file is refused by name, and the certificate served stays.
    std::fs::write(&files.key, "not a key").unwrap();
    let error = server.reload_tls().unwrap_err().to_string();
    assert!(error.contains("server.key") && error.contains("no private key"), "{error}");
    let late = sync_config(&server.url()).tls_root_certificates(new_ca.pem());
    Database::open_synced(config(dir.path(), "late", late)).await.expect("the renewed certificate is still served");
    server.shutdown().await;
}

#[tokio::test]
async fn certificate_and_key_files_that_cannot_be_used_are_refused_at_start_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Haven test CA");
    let good = ca.write_server_files(dir.path(), "good", &LOOPBACK, Validity::Current);
    let other = ca.write_server_files(dir.path(), "other", &LOOPBACK, Validity::Current);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let cases = [
        (TlsFiles { cert: dir.path().join("missing.crt"), key: good.key.clone() }, "missing.crt"),
        (TlsFiles { cert: garbage.clone(), key: good.key.clone() }, "no PEM certificate"),
        (TlsFiles { cert: good.cert.clone(), key: garbage.clone() }, "no private key"),
        (TlsFiles { cert: good.cert.clone(), key: other.key.clone() }, "does not belong to the certificate"),
    ];
    for (files, expected) in cases {
        let storage = haven_testkit::test_storage(&dir.path().join("server"));
        let options = ServerOptions { tls: Some(files), ..ServerOptions::default() };
        let started =
            Server::start_with_options(storage, Authenticator::Dev, "127.0.0.1:0".parse().unwrap(), options).await;
        let error = started.err().expect("refused").to_string();
        assert!(error.contains(expected), "{error}");
    }
}

#[tokio::test]
async fn a_file_that_holds_no_certificate_makes_open_synced_fail_and_a_bad_scheme_too() {
    let dir = tempfile::tempdir().unwrap();
    let bad_roots = sync_config("wss://localhost:1").tls_root_certificates("not PEM");
    let error = Database::open_synced(config(dir.path(), "a", bad_roots)).await.expect_err("refused").to_string();
    assert!(error.contains("tls_root_certificates") && error.contains("no PEM certificate"), "{error}");
    let http = sync_config("http://localhost:1");
    let error = Database::open_synced(config(dir.path(), "b", http)).await.expect_err("refused").to_string();
    assert!(error.contains("wss://"), "{error}");
}
