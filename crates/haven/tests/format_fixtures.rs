//! Files written by an earlier build keep working: each set of fixtures
//! under `tests/fixtures/format-N/` (a device file with every property
//! type, an acknowledged prefix, unsynced changes and a client reset under
//! way; the backup a manual reset left; the embedded server's data
//! directory) is opened, checked value by value, and synced with this
//! build's server, which finishes the reset. Each set was made once, by
//! the build of its format (`make_current_format_fixtures`), and is never
//! made again: when a format changes, a new set joins them and the older
//! ones must keep passing.

use haven::{ClientResetMode, Config, Database, RecoveryPolicy, ResetReason, Schema, SyncConfig, SyncError, Value};
use haven_core::merge::ObjectState;
use haven_server::{Authenticator, EmbeddedStorage, Server, Storage};
use haven_testkit::{objects_of, synced, Proxy};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCHEMA: &str = r#"[
  {"name":"Every","primaryKey":"_id","properties":{
    "_id":"int","flag":"bool","count":"int","ratio":"double",
    "name":{"type":"string","indexed":true},"blob":"data","when":"date",
    "oid":"objectId","uid":"uuid","maybe":"int?","note":"string?",
    "owner":"Person?","tags":"string[]","ranks":"int[]","friends":"Every[]"}},
  {"name":"Person","primaryKey":"_id","properties":{"_id":"string","name":"string"}}
]"#;
const ADMIN: &str = "fixture-admin";

/// The file format this build writes (`docs/formats.md`).
const CURRENT_FORMAT: u32 = 5;

fn fixtures(format: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format-{format}"))
}

/// The schema of format `format`'s set: from format 4 on, `Every` has a
/// set, a dictionary and a decimal too; from format 5 on, a list of
/// embedded objects.
fn schema(format: u32) -> Schema {
    let every = r#""friends":"Every[]"}"#;
    let mut text = SCHEMA.to_owned();
    if format >= 4 {
        text =
            text.replace(every, r#""friends":"Every[]","colors":"string<>","scores":"int{}","price":"decimal128?"}"#);
    }
    if format >= 5 {
        text = text
            .replace(r#""price":"decimal128?"}"#, r#""price":"decimal128?","homes":"Home[]"}"#)
            .replace("\n]", r#",{"name":"Home","embedded":true,"properties":{"city":"string","street":"string?"}}]"#);
    }
    Schema::from_json(&text).unwrap()
}

/// Every 1 as first written and synced.
fn every_1() -> Vec<(&'static str, Value)> {
    vec![
        ("_id", 1.into()),
        ("flag", true.into()),
        ("count", 41.into()),
        ("ratio", Value::Double(0.25)),
        ("name", "first".into()),
        ("blob", Value::Data(vec![0, 1, 2, 255])),
        ("when", Value::Date(1_700_000_000_123)),
        ("oid", Value::ObjectId(*b"haven-fixtur")),
        ("uid", Value::Uuid(*b"0123456789abcdef")),
        ("maybe", Value::Null),
        ("note", "a note".into()),
        ("owner", "ann".into()),
        ("tags", Value::List(vec!["a".into(), "b".into()])),
        ("ranks", Value::List(vec![3.into(), 1.into(), 2.into()])),
        ("friends", Value::List(vec![])),
    ]
}

fn write(db: &Database, f: impl FnOnce(&mut haven::WriteTransaction<'_>) -> haven::Result<()>) {
    db.write(f).unwrap();
}

fn config(path: &Path, url: &str, mode: ClientResetMode, format: u32) -> Config {
    let sync = SyncConfig::new(url, "dev", "p")
        .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
        .client_reset(mode)
        .on_error(|e| eprintln!("sync: {e}"));
    Config::new(path).schema(schema(format)).sync(sync)
}

async fn admin_reset(server: &Server, db: &Database) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ident, _) = db.sync_position().unwrap().file_ident.unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let request = format!(
        "POST /admin/v1/clients/{ident}/reset HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

async fn closed(path: &Path) {
    while Database::is_open(path) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Makes the fixtures of the format this build writes (run by hand, once
/// per format: `cargo test -p haven --test format_fixtures -- --ignored
/// make_current_format_fixtures`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "makes the committed fixtures; run by hand only when a new format gets its own"]
async fn make_current_format_fixtures() {
    let out = fixtures(CURRENT_FORMAT);
    assert!(!out.exists(), "{} exists: fixtures are made once, never again", out.display());
    std::fs::create_dir_all(&out).unwrap();
    let storage = Arc::new(EmbeddedStorage::open(&out.join("server")).unwrap());
    let server =
        Server::start_with_admin(storage, Authenticator::Dev, "127.0.0.1:0".parse().unwrap(), Some(ADMIN.into()))
            .await
            .unwrap();
    let proxy = Proxy::start(server.local_addr()).await;
    let device_path = out.join("device.haven");
    let device = Database::open_synced(config(&device_path, &proxy.url(), ClientResetMode::default(), CURRENT_FORMAT))
        .await
        .unwrap();
    write(&device, |tx| {
        tx.create_values("Person", [("_id", "ann".into()), ("name", "Ann".into())], haven::UpdateMode::Never)?;
        tx.create_values("Every", every_1(), haven::UpdateMode::Never)
    });
    write(&device, |tx| {
        tx.set("Every", 1, "friends", Value::List(vec![1.into()]))?;
        tx.list_push("Every", 1, "ranks", 4)?;
        tx.set_add("Every", 1, "colors", "brown")?;
        tx.dict_put("Every", 1, "scores", "agility", 5)?;
        tx.set("Every", 1, "price", "12.50")?;
        tx.list_push("Every", 1, "homes", Value::Dictionary([("city".into(), "Oslo".into())].into()))?;
        tx.set_path("Every", 1, "homes.0.street", "Main 1")
    });
    synced(&device).await;

    // A manual reset leaves a backup beside the phone's file.
    let phone_path = out.join("phone.haven");
    let told = Arc::new(Mutex::new(None));
    let on_manual = told.clone();
    let manual = ClientResetMode::Manual {
        on_manual: Some(Box::new(move |info| *on_manual.lock().unwrap() = Some(info.clone()))),
    };
    let phone = Database::open_synced(config(&phone_path, &server.url(), manual, CURRENT_FORMAT)).await.unwrap();
    write(&phone, |tx| tx.set("Every", 1, "note", Value::from("the phone's unsynced note")));
    phone.sync_session().unwrap().pause();
    admin_reset(&server, &phone).await;
    phone.sync_session().unwrap().resume();
    while told.lock().unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(phone);
    closed(&phone_path).await;
    haven::initiate_client_reset(&phone_path).unwrap();

    // The device: unsynced changes, then a reset it has recorded but not
    // carried out (every connection after the one that brings it is cut).
    device.sync_session().unwrap().pause();
    write(&device, |tx| {
        tx.set("Every", 1, "name", Value::from("renamed offline"))?;
        tx.increment("Every", 1, "count", 1)?;
        tx.list_insert("Every", 1, "tags", 0, "z")?;
        tx.set_add("Every", 1, "colors", "white")?;
        tx.dict_put("Every", 1, "scores", "speed", 3)?;
        tx.set("Every", 1, "price", "0.10")?;
        tx.set_path("Every", 1, "homes.0.city", "Bergen")
    });
    write(&device, |tx| {
        let mut two = every_1();
        two[0].1 = 2.into();
        two[4].1 = "second".into();
        tx.create_values("Every", two, haven::UpdateMode::Never)
    });
    admin_reset(&server, &device).await;
    proxy.set(|f| (f.cut_schedule, f.cut_after) = ([i64::MAX].into(), Some(0)));
    device.sync_session().unwrap().resume();
    while device.pending_client_reset().unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(device);
    closed(&device_path).await;
    server.shutdown().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn every(db: &Database, id: i64) -> serde_json::Value {
    db.object_for_primary_key("Every", id).unwrap().unwrap_or_else(|| panic!("Every {id}")).to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_1_files_open_with_every_value_and_finish_their_reset_with_this_build() {
    open_every_value_and_finish_the_reset(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_2_files_open_with_every_value_and_finish_their_reset_with_this_build() {
    open_every_value_and_finish_the_reset(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_3_files_open_with_every_value_and_finish_their_reset_with_this_build() {
    open_every_value_and_finish_the_reset(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_4_files_open_with_every_value_and_finish_their_reset_with_this_build() {
    open_every_value_and_finish_the_reset(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_5_files_open_with_every_value_and_finish_their_reset_with_this_build() {
    open_every_value_and_finish_the_reset(5).await;
}

/// The checks of one format's set.
async fn open_every_value_and_finish_the_reset(format: u32) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures(format), dir.path());
    let device_path = dir.path().join("device.haven");
    assert_eq!(raw::format(&device_path), format, "the set is of its format");

    // The device, read-only: every value, the sync position, the reset.
    let mut expected_1 = json!({
        "_id": 1, "flag": true, "count": 42, "ratio": 0.25, "name": "renamed offline",
        "blob": Value::Data(vec![0, 1, 2, 255]).to_json(), "when": Value::Date(1_700_000_000_123).to_json(),
        "oid": Value::ObjectId(*b"haven-fixtur").to_json(), "uid": Value::Uuid(*b"0123456789abcdef").to_json(),
        "maybe": null, "note": "a note", "owner": "ann", "tags": ["a", "b"], "ranks": [3, 1, 2], "friends": [1]
    });
    if format >= 3 {
        // Format 3's set also holds list element edits: a synced append, an
        // unsynced insertion.
        expected_1["ranks"] = json!([3, 1, 2, 4]);
        expected_1["tags"] = json!(["z", "a", "b"]);
    }
    if format >= 4 {
        // Format 4's set also holds set and dictionary entries: synced ones
        // and unsynced ones.
        expected_1["colors"] = json!(["brown", "white"]);
        expected_1["scores"] = json!({"agility": 5, "speed": 3});
        expected_1["price"] = json!("0.10");
    }
    if format >= 5 {
        // Format 5's set also holds field edits of an embedded object in a
        // list: a synced one and an unsynced one.
        expected_1["homes"] = json!([{"city": "Bergen", "street": "Main 1"}]);
    }
    {
        let device = Database::open(Config::new(&device_path).read_only()).unwrap();
        assert_eq!(device.schema(), &schema(format));
        assert_eq!(every(&device, 1), expected_1);
        assert_eq!(every(&device, 2)["name"], "second");
        let ann = device.object_for_primary_key("Person", "ann").unwrap().unwrap();
        assert_eq!(ann.get("name"), Some("Ann".into()));
        let position = device.sync_position().unwrap();
        assert!(position.file_ident.is_some() && position.base_version >= 2, "{position:?}");
        assert_eq!(
            (position.acknowledged, position.last_client_version),
            (2, 4),
            "an acknowledged prefix, two unsynced"
        );
        assert_eq!(device.pending_changes().unwrap().len(), 2);
        let reset = device.pending_client_reset().unwrap().expect("a reset under way");
        assert_eq!((reset.reason, reset.committed), (ResetReason::OperatorReset, false));
    }

    // The manual reset's backup.
    let backups = haven::client_reset_backups(dir.path().join("phone.haven")).unwrap();
    assert_eq!(backups.len(), 1, "{backups:?}");
    {
        let backup = Database::open(Config::new(&backups[0]).read_only()).unwrap();
        assert_eq!(every(&backup, 1)["note"], "the phone's unsynced note");
        assert_eq!(backup.pending_client_reset().unwrap().map(|r| r.reason), Some(ResetReason::OperatorReset));
        assert_eq!(backup.pending_changes().unwrap().len(), 1);
    }

    // The server's data, then both with this build's server: the reset finishes.
    let storage = Arc::new(EmbeddedStorage::open(&dir.path().join("server")).unwrap());
    let history = storage.history("p", 0, usize::MAX).unwrap();
    assert_eq!(history.len(), 2, "every stored changeset reads");
    for h in &history {
        assert_ne!(storage.version_salt("p", h.server_version).unwrap(), Some(0), "version {}", h.server_version);
    }
    let mut objects = Vec::new();
    storage
        .snapshot("p", 0, 1 << 20, &mut |batch| {
            objects.extend(batch.iter().map(|o| o.decode().unwrap().1));
            Ok(())
        })
        .unwrap();
    assert_eq!(objects.len(), 2, "Every 1 and Ann, as stored");
    let with_identities = objects.iter().filter(|s| matches!(s, ObjectState::Live { lists, .. } if !lists.is_empty()));
    assert_eq!(
        with_identities.count(),
        usize::from(format >= 3),
        "Every 1's ranks, appended to, has element identities"
    );
    let with_entries = objects.iter().filter(|s| matches!(s, ObjectState::Live { keyed, .. } if !keyed.is_empty()));
    assert_eq!(with_entries.count(), usize::from(format >= 4), "Every 1's colors and scores have entries");
    let with_element_fields = objects.iter().filter(
        |s| matches!(s, ObjectState::Live { lists, .. } if lists.values().any(|l| !l.element_fields.is_empty())),
    );
    assert_eq!(with_element_fields.count(), usize::from(format >= 5), "Every 1's home has its fields' stamps");
    let server = Server::start(storage, Authenticator::Dev, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let errors = Arc::new(Mutex::new(Vec::<SyncError>::new()));
    let seen = errors.clone();
    let mode = ClientResetMode::RecoverUnsynced { policy: RecoveryPolicy::LatestWins, before: None, after: None };
    let sync = SyncConfig::new(server.url(), "dev", "p")
        .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
        .client_reset(mode)
        .on_error(move |e| seen.lock().unwrap().push(e.clone()));
    let device = Database::open_synced(Config::new(&device_path).schema(schema(format)).sync(sync)).await.unwrap();
    synced(&device).await;
    synced(&device).await;
    assert_eq!(device.pending_client_reset().unwrap(), None, "the reset finished");
    assert_eq!(every(&device, 1), expected_1, "the unsynced changes recovered");
    let fresh = Database::open_synced(config(
        &dir.path().join("fresh.haven"),
        &server.url(),
        ClientResetMode::default(),
        format,
    ))
    .await
    .unwrap();
    for ty in ["Every", "Person"] {
        assert_eq!(objects_of(&device, ty), objects_of(&fresh, ty), "{ty}: the device equals the server");
    }
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock().unwrap());
}

/// The raw bytes a format-2 build keeps, read past the object model.
mod raw {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    use std::path::Path;

    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("haven/meta");
    const OVERLAY: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("sync/confirmed");

    pub fn format(path: &Path) -> u32 {
        let db = redb::Database::open(path).unwrap();
        let meta = db.begin_read().unwrap().open_table(META).unwrap();
        u32::from_le_bytes(meta.get("format").unwrap().unwrap().value().try_into().unwrap())
    }

    /// The types and encoded keys of the overlay's entries.
    pub fn overlay(path: &Path) -> Vec<(String, Vec<u8>)> {
        let db = redb::Database::open(path).unwrap();
        let table = db.begin_read().unwrap().open_table(OVERLAY).unwrap();
        let mut entries = Vec::new();
        for row in table.iter().unwrap() {
            let (guard, _) = row.unwrap();
            let (ty, key) = guard.value();
            entries.push((ty.to_owned(), key.to_vec()));
        }
        entries
    }

    /// The first byte after an object's values (its sync suffix's tag), if any.
    pub fn suffix_tag(path: &Path, ty: &str, pk: haven_core::ValueRef<'_>) -> Option<u8> {
        let db = redb::Database::open(path).unwrap();
        let name = format!("objects/{ty}");
        let table: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&name);
        let table = db.begin_read().unwrap().open_table(table).unwrap();
        let record = table.get(haven_core::key::to_key(pk).as_slice()).unwrap().expect("the object");
        haven_core::record::after(record.value()).unwrap().first().copied()
    }
}

#[test]
fn a_format_1_file_migrates_to_the_current_format_in_one_commit() {
    use haven_core::ValueRef;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures(1), dir.path());
    let path = dir.path().join("device.haven");
    assert_eq!(raw::format(&path), 1);
    assert_eq!(raw::overlay(&path).len(), 2, "format 1: Every 1 and Ann, confirmed, beside their records");
    drop(Database::open(Config::new(&path).read_only()).unwrap());
    assert_eq!(raw::format(&path), 1, "a read-only open migrates nothing");

    let db = Database::open(Config::new(&path).schema(schema(1))).unwrap();
    let before = (every(&db, 1), every(&db, 2), db.pending_changes().unwrap(), db.sync_position().unwrap());
    drop(db);
    assert_eq!(raw::format(&path), CURRENT_FORMAT);
    let overlay = raw::overlay(&path);
    assert_eq!(overlay.len(), 1, "only Every 1, which unsynced changes touch, keeps an overlay entry");
    assert_eq!(overlay[0].0, "Every");
    assert_eq!(
        raw::suffix_tag(&path, "Person", ValueRef::String("ann")),
        Some(1),
        "Ann's record is her confirmed state"
    );
    assert_eq!(raw::suffix_tag(&path, "Every", ValueRef::Int(1)), Some(2), "Every 1 is marked pending");
    assert_eq!(raw::suffix_tag(&path, "Every", ValueRef::Int(2)), Some(2), "Every 2, created offline, too");

    let db = Database::open(Config::new(&path).schema(schema(1))).unwrap();
    let after = (every(&db, 1), every(&db, 2), db.pending_changes().unwrap(), db.sync_position().unwrap());
    assert_eq!(after, before, "the migration changed no value, change or position");
}
