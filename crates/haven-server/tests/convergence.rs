//! Clients and server in one process, without a network: local writes
//! recorded in each client's change log, uploads integrated by the
//! server's storage, downloads applied by the clients. Every replica must
//! converge to the same data.

use haven_server::{EmbeddedStorage, Storage};
use haven_store::{Config, Database, Schema, UpdateMode, Value};
use haven_sync::protocol::FileIdent;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?","lastUpdated":"int","tags":"int[]","colors":"string<>","scores":"int{}","address":"Address?","homes":"Address[]"}},
    {"name":"Address","embedded":true,"properties":{"city":"string?","zip":"int?"}}]"#;

struct Client {
    db: Database,
    ident: FileIdent,
    seen: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn client(dir: &std::path::Path, name: &str, storage: &EmbeddedStorage) -> Client {
    let config =
        Config::new(dir.join(format!("{name}.haven"))).schema(Schema::from_json(SCHEMA).unwrap()).record_changes();
    Client { db: Database::open(config).unwrap(), ident: storage.register_client("p").unwrap(), seen: 0 }
}

fn upload(storage: &EmbeddedStorage, c: &Client) {
    storage.integrate(c.ident, &c.db.pending_changes().unwrap(), u64::MAX, now()).unwrap();
}

fn download(storage: &EmbeddedStorage, c: &mut Client) {
    let history = storage.history("p", c.seen, usize::MAX).unwrap();
    let through = storage.client(c.ident).unwrap().uploaded_through;
    let changesets: Vec<_> = history.into_iter().map(|h| (h.server_version, h.changeset)).collect();
    haven_store::testing::integrate_download(&c.db, &changesets, 0, through, c.ident.ident).unwrap();
    c.seen = changesets.last().map_or(c.seen, |(v, _)| *v);
}

fn sync(storage: &EmbeddedStorage, c: &mut Client) {
    upload(storage, c);
    download(storage, c);
}

fn dogs(db: &Database) -> BTreeMap<i64, serde_json::Value> {
    db.objects("Dog").unwrap().iter().unwrap().map(|o| (o.primary_key().as_int().unwrap(), o.to_json())).collect()
}

fn age(db: &Database, id: i64) -> Option<Value> {
    db.object_for_primary_key("Dog", id).unwrap().and_then(|o| o.get("age"))
}

/// The starting point: L created Rex (age 1), and both devices have it.
fn baseline() -> (tempfile::TempDir, EmbeddedStorage, Client, Client) {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(&dir.path().join("server")).unwrap();
    let (mut l, mut r) = (client(dir.path(), "l", &storage), client(dir.path(), "r", &storage));
    l.db.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 1, "lastUpdated": 0}), UpdateMode::Never))
        .unwrap();
    sync(&storage, &mut l);
    download(&storage, &mut r);
    (dir, storage, l, r)
}

#[test]
fn two_devices_converge_later_write_wins() {
    let (_dir, storage, mut l, mut r) = baseline();
    assert_eq!(age(&r.db, 1), Some(1.into()));
    assert!(l.db.pending_changes().unwrap().is_empty(), "acknowledged changes leave the log");

    // L offline sets age 4; later R sets 6 and syncs; L comes back.
    l.db.write(|tx| tx.set("Dog", 1, "age", 4)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    r.db.write(|tx| tx.set("Dog", 1, "age", 6)).unwrap();
    r.db.write(|tx| tx.set("Dog", 1, "name", "Max")).unwrap();
    sync(&storage, &mut r);
    download(&storage, &mut l);
    // L's pending write is replayed on the new server state with the same
    // rule the server will use: R's later write wins already on L.
    assert_eq!(age(&l.db, 1), Some(6.into()));
    assert_eq!(l.db.pending_changes().unwrap().len(), 1, "still to upload");
    assert_eq!(l.db.object_for_primary_key("Dog", 1).unwrap().unwrap().get("name"), Some("Max".into()));
    sync(&storage, &mut l);
    download(&storage, &mut r);
    assert_eq!((age(&l.db, 1), age(&r.db, 1)), (Some(6.into()), Some(6.into())), "the later write wins everywhere");
    assert_eq!(dogs(&l.db), dogs(&r.db));
}

#[test]
fn increments_and_deletes_converge() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(&dir.path().join("server")).unwrap();
    let (mut l, mut r) = (client(dir.path(), "l", &storage), client(dir.path(), "r", &storage));
    l.db.write(|tx| {
        tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 1, "lastUpdated": 0}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "age": 1, "lastUpdated": 0}), UpdateMode::Never)
    })
    .unwrap();
    sync(&storage, &mut l);
    download(&storage, &mut r);
    l.db.write(|tx| tx.increment("Dog", 1, "age", 10)).unwrap();
    r.db.write(|tx| tx.increment("Dog", 1, "age", 5)).unwrap();
    r.db.write(|tx| tx.delete("Dog", 2)).unwrap();
    l.db.write(|tx| tx.set("Dog", 2, "age", 9)).unwrap();
    for _ in 0..2 {
        sync(&storage, &mut r);
        sync(&storage, &mut l);
    }
    assert_eq!(age(&l.db, 1), Some(16.into()), "both increments count");
    assert!(l.db.object_for_primary_key("Dog", 2).unwrap().is_none(), "delete wins");
    assert_eq!(dogs(&l.db), dogs(&r.db));
}

#[derive(Debug, Clone)]
enum Step {
    Write(usize, Vec<(u8, i64, i64)>),
    Upload(usize),
    Download(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let op = (0u8..24, 0i64..4, -3i64..4);
    prop_oneof![
        3 => (0usize..3, proptest::collection::vec(op, 1..4)).prop_map(|(c, ops)| Step::Write(c, ops)),
        1 => (0usize..3).prop_map(Step::Upload),
        1 => (0usize..3).prop_map(Step::Download),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: haven_testkit::proptest_cases(24), ..ProptestConfig::default() })]

    /// Three devices write at random to overlapping objects, upload and
    /// download at random; after everyone syncs, every device and the
    /// server hold the same data.
    #[test]
    fn random_edits_converge(steps in proptest::collection::vec(step(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let storage = EmbeddedStorage::open(&dir.path().join("server")).unwrap();
        let mut clients: Vec<Client> = (0..3).map(|i| client(dir.path(), &format!("c{i}"), &storage)).collect();
        for step in &steps {
            match step {
                Step::Write(c, ops) => {
                    let _ = clients[*c].db.write(|tx| {
                        for &(kind, id, v) in ops {
                            // Operations that fail (no such object, say) change
                            // nothing; none may find the file out of step.
                            let result = match kind {
                                0 => tx.create("Dog", json!({"_id": id, "name": format!("n{v}"), "age": v, "lastUpdated": v}), UpdateMode::Modified),
                                1 => tx.set("Dog", id, "age", v),
                                2 => tx.increment("Dog", id, "age", v),
                                3 => tx.delete("Dog", id).map(|_| ()),
                                4 => tx.list_push("Dog", id, "tags", v),
                                5 => tx.set("Dog", id, "tags", Value::List(vec![v.into(), (v + 10).into()])),
                                10 => tx.set_add("Dog", id, "colors", format!("c{v}")).map(drop),
                                11 => tx.set_remove("Dog", id, "colors", format!("c{v}")).map(drop),
                                12 => tx.dict_put("Dog", id, "scores", &format!("k{}", v.rem_euclid(3)), v),
                                13 => tx.dict_remove("Dog", id, "scores", &format!("k{}", v.rem_euclid(3))).map(drop),
                                14 => tx.set("Dog", id, "colors", Value::Set(vec![format!("c{v}").into(), "w".into()])),
                                15 => tx.set_path("Dog", id, "address.city", format!("t{v}")),
                                16 => tx.set_path("Dog", id, "address.zip", v),
                                17 if v < 0 => tx.set("Dog", id, "address", Value::Null),
                                17 => tx.set("Dog", id, "address", Value::Dictionary([("city".to_owned(), Value::from(format!("w{v}")))].into())),
                                18 => tx.list_push("Dog", id, "homes", Value::Dictionary([("zip".to_owned(), Value::from(v))].into())),
                                home_op @ 19..=23 => {
                                    // An element of `homes`, from `v`.
                                    let len = tx.get("Dog", id)?.map_or(0, |d| d["homes"].as_array().map_or(0, Vec::len));
                                    let at = v.unsigned_abs() as usize % len.max(1);
                                    match (home_op, len) {
                                        (_, 0) => Ok(()),
                                        (19, _) => tx.set_path("Dog", id, &format!("homes.{at}.city"), format!("h{v}")),
                                        (20, _) => tx.set_path("Dog", id, &format!("homes.{at}.zip"), v),
                                        (21, _) => tx.list_set("Dog", id, "homes", at, Value::Dictionary([("city".to_owned(), Value::from(format!("e{v}")))].into())),
                                        (22, _) => tx.list_move("Dog", id, "homes", at, (at + 1) % len),
                                        _ => tx.list_remove("Dog", id, "homes", at).map(drop),
                                    }
                                }
                                list_op => {
                                    // An index within the list, from `v`.
                                    let len = tx.get("Dog", id)?.map_or(0, |d| d["tags"].as_array().map_or(0, Vec::len));
                                    let at = |extra: usize| v.unsigned_abs() as usize % (len + extra).max(1);
                                    match (list_op, len) {
                                        (6, _) => tx.list_insert("Dog", id, "tags", at(1), v + 100),
                                        (_, 0) => Ok(()),
                                        (7, _) => tx.list_remove("Dog", id, "tags", at(0)).map(drop),
                                        (8, _) => tx.list_move("Dog", id, "tags", at(0), (at(0) + 1) % len),
                                        _ => tx.list_set("Dog", id, "tags", at(0), v + 200),
                                    }
                                }
                            };
                            assert!(!matches!(result, Err(haven_store::Error::Storage(_))), "{result:?}");
                        }
                        Ok(())
                    });
                }
                Step::Upload(c) => upload(&storage, &clients[*c]),
                Step::Download(c) => download(&storage, &mut clients[*c]),
            }
        }
        for c in clients.iter() {
            upload(&storage, c);
        }
        for c in clients.iter_mut() {
            download(&storage, c);
            prop_assert!(c.db.pending_changes().unwrap().is_empty());
        }
        let first = dogs(&clients[0].db);
        for c in &clients[1..] {
            prop_assert_eq!(&dogs(&c.db), &first);
        }
        let mut server = BTreeMap::new();
        storage.snapshot("p", 0, 100, &mut |batch| {
            for o in batch {
                let (pk, state) = o.decode().unwrap();
                if let haven_core::merge::ObjectState::Live { fields, .. } = state {
                    let mut json = serde_json::Value::Object(fields.into_iter().map(|(k, f)| (k, f.value.to_json())).collect());
                    // The server keeps an embedded object's fields as written;
                    // a device's read fills the fields never written.
                    let fill = |address: &mut serde_json::Map<String, serde_json::Value>| {
                        for field in ["city", "zip"] {
                            address.entry(field).or_insert(serde_json::Value::Null);
                        }
                    };
                    if let Some(address) = json.get_mut("address").and_then(|a| a.as_object_mut()) {
                        fill(address);
                    }
                    if let Some(homes) = json.get_mut("homes").and_then(|h| h.as_array_mut()) {
                        homes.iter_mut().filter_map(|h| h.as_object_mut()).for_each(fill);
                    }
                    server.insert(pk.as_int().unwrap(), json);
                }
            }
            Ok(())
        }).unwrap();
        prop_assert_eq!(server, first);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: haven_testkit::proptest_cases(24), ..ProptestConfig::default() })]

    /// Three devices append distinct values to one list, upload and
    /// download at random: no value anyone added is lost, and every
    /// device ends with the same order.
    #[test]
    fn concurrent_appends_to_one_list_are_never_lost(steps in proptest::collection::vec(step(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let storage = EmbeddedStorage::open(&dir.path().join("server")).unwrap();
        let mut clients: Vec<Client> = (0..3).map(|i| client(dir.path(), &format!("c{i}"), &storage)).collect();
        clients[0].db.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "list", "lastUpdated": 0}), UpdateMode::Never)).unwrap();
        sync(&storage, &mut clients[0]);
        clients.iter_mut().for_each(|c| download(&storage, c));
        let mut added = Vec::new();
        for (n, step) in steps.iter().enumerate() {
            match step {
                Step::Write(c, ops) => {
                    clients[*c].db.write(|tx| {
                        for (i, &(_, _, v)) in ops.iter().enumerate() {
                            let value = (n * 10 + i) as i64;
                            // At the end, or anywhere: both keep their identity.
                            match v {
                                0.. => tx.list_push("Dog", 1, "tags", value)?,
                                _ => tx.list_insert("Dog", 1, "tags", 0, value)?,
                            }
                            added.push(value);
                        }
                        Ok(())
                    }).unwrap();
                }
                Step::Upload(c) => upload(&storage, &clients[*c]),
                Step::Download(c) => download(&storage, &mut clients[*c]),
            }
        }
        clients.iter().for_each(|c| upload(&storage, c));
        clients.iter_mut().for_each(|c| download(&storage, c));
        let tags = |c: &Client| c.db.object_for_primary_key("Dog", 1).unwrap().unwrap().get("tags").unwrap();
        let first = tags(&clients[0]);
        for c in &clients[1..] {
            prop_assert_eq!(&tags(c), &first);
        }
        let mut have: Vec<i64> = first.as_list().unwrap().iter().map(|v| v.as_int().unwrap()).collect();
        have.sort_unstable();
        added.sort_unstable();
        prop_assert_eq!(have, added);
    }
}

#[test]
fn a_pending_write_that_will_win_stays_visible() {
    let (_dir, storage, mut l, mut r) = baseline();
    // R writes first; L's offline write is later: it must stay on L and win everywhere.
    r.db.write(|tx| tx.set("Dog", 1, "age", 6)).unwrap();
    sync(&storage, &mut r);
    std::thread::sleep(std::time::Duration::from_millis(5));
    l.db.write(|tx| tx.set("Dog", 1, "age", 4)).unwrap();
    download(&storage, &mut l);
    assert_eq!(age(&l.db, 1), Some(4.into()));
    sync(&storage, &mut l);
    download(&storage, &mut r);
    assert_eq!((age(&l.db, 1), age(&r.db, 1)), (Some(4.into()), Some(4.into())));
}

/// A new client starts from the server's state snapshot (in batches)
/// instead of replaying the history, keeping the write it made offline
/// before its first sync.
#[test]
fn a_new_client_bootstraps_from_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(&dir.path().join("server")).unwrap();
    let mut old = client(dir.path(), "old", &storage);
    old.db
        .write(|tx| {
            for i in 0..25 {
                tx.create(
                    "Dog",
                    json!({"_id": i, "name": format!("dog {i}"), "age": i, "lastUpdated": 0}),
                    UpdateMode::Never,
                )?;
            }
            Ok(())
        })
        .unwrap();
    sync(&storage, &mut old);
    old.db.write(|tx| tx.delete("Dog", 3)).unwrap();
    sync(&storage, &mut old);

    let mut new = client(dir.path(), "new", &storage);
    new.db
        .write(|tx| tx.create("Dog", json!({"_id": 100, "name": "mine", "lastUpdated": 1}), UpdateMode::Never))
        .unwrap();
    new.db.write(|tx| tx.set("Dog", 100, "age", 7)).unwrap();
    haven_store::testing::start_bootstrap(&new.db).unwrap();
    let mut batches = 0;
    let end = storage
        .snapshot("p", new.ident.ident, 300, &mut |batch| {
            batches += 1;
            haven_store::testing::bootstrap_batch(&new.db, &batch).unwrap();
            Ok(())
        })
        .unwrap();
    assert!(batches > 2);
    assert_eq!(dogs(&new.db).len(), 1, "nothing visible changes before the finish");
    haven_store::testing::finish_bootstrap(&new.db, end.version, end.salt, end.uploaded_through, new.ident.ident)
        .unwrap();
    new.seen = end.version;
    assert_eq!(dogs(&new.db).len(), 25, "24 from the server (one was deleted) and its own");
    assert_eq!(age(&new.db, 100), Some(7.into()));
    sync(&storage, &mut new);
    download(&storage, &mut old);
    assert_eq!(dogs(&old.db), dogs(&new.db));
}

/// A client's upload was integrated but the acknowledgement was lost
/// before it had ever downloaded: it binds again as a new client and gets
/// the snapshot, which already holds those changes. They must not count
/// twice (increments) when its log is replayed on top.
#[test]
fn a_bootstrap_after_a_lost_acknowledgement_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(&dir.path().join("server")).unwrap();
    let c = client(dir.path(), "c", &storage);
    c.db.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 0, "lastUpdated": 0}), UpdateMode::Never))
        .unwrap();
    c.db.write(|tx| tx.increment("Dog", 1, "age", 1)).unwrap();
    c.db.write(|tx| tx.increment("Dog", 1, "age", 1)).unwrap();
    upload(&storage, &c); // integrated; the acknowledgement never arrives
    c.db.write(|tx| tx.increment("Dog", 1, "age", 10)).unwrap(); // not uploaded yet

    haven_store::testing::start_bootstrap(&c.db).unwrap();
    let end = storage
        .snapshot("p", c.ident.ident, 1 << 20, &mut |batch| {
            haven_store::testing::bootstrap_batch(&c.db, &batch).unwrap();
            Ok(())
        })
        .unwrap();
    assert_eq!(end.uploaded_through, 3);
    haven_store::testing::finish_bootstrap(&c.db, end.version, end.salt, end.uploaded_through, c.ident.ident).unwrap();
    assert_eq!(age(&c.db, 1), Some(12.into()), "2 from the snapshot, 10 still pending");
    assert_eq!(c.db.pending_changes().unwrap().len(), 1);
}

/// A download may bring this file's own changesets before the message
/// that acknowledges them (history comes in batches). They are
/// acknowledged by being there: replaying them again would count the
/// increments twice.
#[test]
fn own_changesets_in_history_count_once_before_their_acknowledgement() {
    let (_dir, storage, l, r) = baseline();
    for _ in 0..5 {
        l.db.write(|tx| tx.increment("Dog", 1, "age", 1)).unwrap();
    }
    let pending = l.db.pending_changes().unwrap();
    storage.integrate(l.ident, &pending[..3], u64::MAX, now()).unwrap();
    r.db.write(|tx| tx.set("Dog", 1, "name", "Max")).unwrap();
    upload(&storage, &r);
    storage.integrate(l.ident, &pending[3..], u64::MAX, now()).unwrap();
    let history: Vec<_> = storage
        .history("p", l.seen, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|h| (h.server_version, h.changeset))
        .collect();
    // L's three increments and R's write come first, without an acknowledgement.
    let (first, rest) = history.split_at(4);
    haven_store::testing::integrate_download(&l.db, first, 0, 0, l.ident.ident).unwrap();
    assert_eq!(age(&l.db, 1), Some(6.into()), "1, three increments confirmed, two pending");
    assert_eq!(l.db.pending_changes().unwrap().len(), 2);
    haven_store::testing::integrate_download(&l.db, rest, 0, 5, l.ident.ident).unwrap();
    assert_eq!(age(&l.db, 1), Some(6.into()));
    assert_eq!(l.db.object_for_primary_key("Dog", 1).unwrap().unwrap().get("name"), Some("Max".into()));
    assert!(l.db.pending_changes().unwrap().is_empty());
}

/// A device's own create and its later changes to the same object come
/// back together in one download: each counts once, and the object's
/// confirmed state (what a later concurrent write is merged against) has
/// the stamps of the last one.
#[test]
fn an_own_create_and_its_increments_coming_back_together_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(&dir.path().join("server")).unwrap();
    let (mut l, mut r) = (client(dir.path(), "l", &storage), client(dir.path(), "r", &storage));
    l.db.write(|tx| tx.create("Dog", json!({"_id": 2, "name": "Kit", "age": 1, "lastUpdated": 0}), UpdateMode::Never))
        .unwrap();
    l.db.write(|tx| tx.increment("Dog", 2, "age", 1)).unwrap();
    l.db.write(|tx| tx.increment("Dog", 2, "age", 1)).unwrap();
    sync(&storage, &mut l);
    assert_eq!(age(&l.db, 2), Some(3.into()), "1 and two increments, each once");
    assert!(l.db.pending_changes().unwrap().is_empty());
    // R renames it, then L (having seen only its own writes) increments again.
    download(&storage, &mut r);
    r.db.write(|tx| tx.set("Dog", 2, "name", "Kat")).unwrap();
    upload(&storage, &r);
    l.db.write(|tx| tx.increment("Dog", 2, "age", 1)).unwrap();
    sync(&storage, &mut l);
    download(&storage, &mut r);
    assert_eq!(dogs(&l.db), dogs(&r.db), "both devices converge");
    assert_eq!(age(&l.db, 2), Some(4.into()));
    assert_eq!(l.db.object_for_primary_key("Dog", 2).unwrap().unwrap().get("name"), Some("Kat".into()));
}
