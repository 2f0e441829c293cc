//! The storage backends, each test on each: the embedded store, and
//! PostgreSQL when `HAVEN_TEST_POSTGRES_URL` names one (required with
//! `CI=true`). Registry, ordered and idempotent integration with the merge
//! rule, history, snapshots, resets, settings; the embedded store's
//! durability across reopen.

use haven_core::merge::{Changeset, Hlc, Instruction, ObjectState, Overruled};
use haven_core::Value;
use haven_server::{EmbeddedStorage, ResetTarget, Storage, StorageError};
use haven_sync::protocol::FileIdent;
use haven_sync::protocol::ResetReason;
use haven_testkit::test_postgres;

fn changeset(client_version: u64, base_version: u64, millis: u64, instructions: Vec<Instruction>) -> Changeset {
    Changeset { replica: 0, client_version, base_version, hlc: Hlc { millis, counter: 0 }, instructions }
}

fn create(id: i64, age: i64) -> Instruction {
    Instruction::Create {
        object_type: "Dog".into(),
        pk: id.into(),
        fields: vec![("_id".into(), id.into()), ("age".into(), age.into())],
    }
}

fn set_age(id: i64, age: i64) -> Instruction {
    Instruction::Set { object_type: "Dog".into(), pk: id.into(), field: "age".into(), value: age.into() }
}

/// Each backend, named, with what keeps it alive.
fn backends() -> Vec<(&'static str, Box<dyn Storage>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(&str, Box<dyn Storage>, _)> =
        vec![("embedded", Box::new(EmbeddedStorage::open(dir.path()).unwrap()), dir)];
    if let Some(pg) = test_postgres() {
        all.push(("postgres", Box::new(pg), tempfile::tempdir().unwrap()));
    }
    all
}

fn age(storage: &dyn Storage, partition: &str, id: i64) -> Option<Value> {
    let mut found = None;
    storage
        .snapshot(partition, 0, 10, &mut |batch| {
            for o in batch {
                let (pk, state) = o.decode().unwrap();
                if let (true, ObjectState::Live { fields, .. }) = (pk == Value::Int(id), &state) {
                    found = fields.get("age").map(|f| f.value.clone());
                }
            }
            Ok(())
        })
        .unwrap();
    found
}

const NOW: u64 = 1_000_000;

#[test]
fn integration_is_ordered_idempotent_and_merges() {
    for (backend, storage, _dir) in backends() {
        let storage = storage.as_ref();
        eprintln!("backend: {backend}");
        let l = storage.register_client("p").unwrap();
        let r = storage.register_client("p").unwrap();
        assert_ne!(l.ident, r.ident);

        let first = storage.integrate(l, &[changeset(1, 0, 10, vec![create(1, 1)])], u64::MAX, NOW).unwrap();
        assert_eq!((first.versions, first.uploaded_through), (vec![1], 1));
        // L's offline write (clock 20), R's later write (clock 30) integrated first.
        storage.integrate(r, &[changeset(1, 1, 30, vec![set_age(1, 6)])], u64::MAX, NOW).unwrap();
        let late = storage.integrate(l, &[changeset(2, 1, 20, vec![set_age(1, 4)])], u64::MAX, NOW).unwrap();
        assert_eq!(late.versions, vec![3]);
        assert_eq!(late.dropped, vec![vec![Overruled::OlderThanServer]]);
        assert_eq!(age(storage, "p", 1), Some(6.into()));

        // The same upload again (a lost acknowledgement): nothing new.
        let again = storage.integrate(l, &[changeset(2, 1, 20, vec![set_age(1, 4)])], u64::MAX, NOW).unwrap();
        assert_eq!((again.versions, again.uploaded_through), (vec![], 2));
        assert_eq!(storage.version("p").unwrap(), 3);

        let history = storage.history("p", 1, 10).unwrap();
        assert_eq!(history.iter().map(|c| c.server_version).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(history[0].changeset.replica, r.ident, "history names the writer");
        assert_eq!(storage.history("p", 0, 1).unwrap().len(), 1);
        assert!(storage.history("other", 0, 10).unwrap().is_empty());
    }
}

#[test]
fn clocks_from_the_future_are_bounded() {
    for (backend, storage, _dir) in backends() {
        let storage = storage.as_ref();
        eprintln!("backend: {backend}");
        let (l, r) = (storage.register_client("p").unwrap(), storage.register_client("p").unwrap());
        storage.integrate(l, &[changeset(1, 0, 10, vec![create(1, 1)])], u64::MAX, NOW).unwrap();
        // R's clock is a year ahead; L writes later (after the bound) and must win.
        storage.integrate(r, &[changeset(1, 1, NOW + 365 * 86_400_000, vec![set_age(1, 6)])], u64::MAX, NOW).unwrap();
        storage.integrate(l, &[changeset(2, 1, NOW + 120_000, vec![set_age(1, 4)])], u64::MAX, NOW + 120_000).unwrap();
        assert_eq!(age(storage, "p", 1), Some(4.into()));
    }
}

#[test]
fn partitions_and_clients_are_kept_apart() {
    for (backend, storage, _dir) in backends() {
        let storage = storage.as_ref();
        eprintln!("backend: {backend}");
        let a = storage.register_client("a").unwrap();
        let b = storage.register_client("b").unwrap();
        storage.integrate(a, &[changeset(1, 0, 10, vec![create(1, 1)])], u64::MAX, NOW).unwrap();
        storage.integrate(b, &[changeset(1, 0, 10, vec![create(1, 2)])], u64::MAX, NOW).unwrap();
        assert_eq!((age(storage, "a", 1), age(storage, "b", 1)), (Some(1.into()), Some(2.into())));
        assert_eq!((storage.version("a").unwrap(), storage.version("b").unwrap()), (1, 1));
        assert!(matches!(storage.client(FileIdent { ident: 99, salt: 0 }), Err(StorageError::UnknownClient(99))));
        assert!(matches!(
            storage.client(FileIdent { ident: a.ident, salt: a.salt ^ 1 }),
            Err(StorageError::SaltMismatch(_))
        ));
        assert_eq!(storage.client(a).unwrap().partition, "a");
    }
}

#[test]
fn snapshots_come_in_batches_from_one_version_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = EmbeddedStorage::open(dir.path()).unwrap();
        let c = storage.register_client("p").unwrap();
        let creates = (0..25).map(|i| create(i, i)).collect();
        storage.integrate(c, &[changeset(1, 0, 10, creates)], u64::MAX, NOW).unwrap();
        let delete = Instruction::Delete { object_type: "Dog".into(), pk: 3.into() };
        storage.integrate(c, &[changeset(2, 1, 11, vec![delete])], u64::MAX, NOW).unwrap();
    }
    let storage = EmbeddedStorage::open(dir.path()).unwrap();
    let mut batches = vec![];
    // One object's encoded state is some tens of bytes: 300 bytes make several batches.
    let end = storage
        .snapshot("p", 1, 300, &mut |b| {
            batches.push(b);
            Ok(())
        })
        .unwrap();
    assert_eq!((end.version, end.uploaded_through), (2, 2));
    assert_eq!(Some(end.salt), storage.version_salt("p", 2).unwrap(), "the salt survives reopen");
    assert!(batches.len() > 2, "{} batches", batches.len());
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 25);
    assert!(
        batches.iter().all(|b| b.iter().map(|o| o.state.len()).sum::<usize>() < 300 + 100),
        "batches stay near the budget"
    );
    let deleted =
        batches.iter().flatten().filter(|o| matches!(o.decode().unwrap().1, ObjectState::Deleted { .. })).count();
    assert_eq!(deleted, 1, "tombstones are part of the state: delete wins needs them");
    let empty = storage.snapshot("none", 0, 10, &mut |_| panic!("no batch for an empty partition")).unwrap();
    assert_eq!(empty.version, 0);
}

#[test]
fn a_base_version_from_the_future_is_clamped() {
    for (backend, storage, _dir) in backends() {
        let storage = storage.as_ref();
        eprintln!("backend: {backend}");
        let a = storage.register_client("p").unwrap();
        storage.integrate(a, &[changeset(1, 0, 10, vec![create(1, 1)])], u64::MAX, NOW).unwrap();
        // No writer can have seen a version that did not exist when it wrote.
        storage.integrate(a, &[changeset(2, 1_000, 30, vec![set_age(1, 5)])], u64::MAX, NOW).unwrap();
        let history = storage.history("p", 1, 10).unwrap();
        assert_eq!(history[0].changeset.base_version, 1, "stored clamped, so clients replay the same");
    }
}

#[test]
fn each_version_has_a_salt_of_its_own_kept_while_a_client_may_hold_it() {
    for (backend, storage, _dir) in backends() {
        let storage = storage.as_ref();
        eprintln!("backend: {backend}");
        let c = storage.register_client("p").unwrap();
        for v in 1..=3 {
            storage.integrate(c, &[changeset(v, v - 1, 10 + v, vec![create(v as i64, 1)])], u64::MAX, NOW).unwrap();
        }
        let history = storage.history_encoded("p", 0, 10).unwrap();
        let salts: Vec<u64> = history.iter().map(|h| h.salt).collect();
        assert!(salts.iter().all(|&s| s != 0), "{salts:?}");
        assert!(salts[0] != salts[1] && salts[1] != salts[2], "drawn at random: {salts:?}");
        for h in &history {
            assert_eq!(storage.version_salt("p", h.version).unwrap(), Some(h.salt));
        }
        assert_eq!(storage.version_salt("p", 4).unwrap(), None, "no such version");
        assert_eq!(storage.version_salt("q", 1).unwrap(), None, "another partition's");
        // Trimmed through 2: a client at 2 continues, so its salt stays.
        assert_eq!(storage.trim_history("p", 2).unwrap(), 2);
        assert_eq!(storage.version_salt("p", 1).unwrap(), None);
        assert_eq!(storage.version_salt("p", 2).unwrap(), Some(salts[1]));
        assert_eq!(storage.history_encoded("p", 0, 10).unwrap()[0].salt, salts[2]);
        let end = storage.snapshot("p", c.ident, 1 << 20, &mut |_| Ok(())).unwrap();
        assert_eq!((end.version, end.salt), (3, salts[2]));
    }
}

#[test]
fn a_base_version_is_bounded_by_what_the_client_was_sent() {
    for (backend, storage, _dir) in backends() {
        let storage = storage.as_ref();
        eprintln!("backend: {backend}");
        let (a, b) = (storage.register_client("p").unwrap(), storage.register_client("p").unwrap());
        storage.integrate(a, &[changeset(1, 0, 10, vec![create(1, 1)])], u64::MAX, NOW).unwrap();
        storage.integrate(a, &[changeset(2, 1, 11, vec![set_age(1, 2)])], u64::MAX, NOW).unwrap();
        // B was sent version 1 only: its claim to have seen 2 is cut to 1.
        storage.integrate(b, &[changeset(1, 2, 12, vec![set_age(1, 3)])], 1, NOW).unwrap();
        let history = storage.history("p", 2, 10).unwrap();
        assert_eq!(history[0].changeset.base_version, 1);
    }
}

#[test]
fn a_client_marked_for_a_reset_has_nothing_more_integrated() {
    for (backend, storage, _dir) in backends() {
        let storage = storage.as_ref();
        eprintln!("backend: {backend}");
        let a = storage.register_client("p").unwrap();
        storage.integrate(a, &[changeset(1, 0, 10, vec![create(1, 1)])], u64::MAX, NOW).unwrap();
        storage.mark_reset(&ResetTarget::Client(a.ident), ResetReason::HistoryTrimmed).unwrap();
        let late = storage.integrate(a, &[changeset(2, 1, 11, vec![set_age(1, 2)])], u64::MAX, NOW);
        assert!(matches!(late, Err(StorageError::ResetPending(ident)) if ident == a.ident), "{late:?}");
        assert_eq!(storage.client(a).unwrap().uploaded_through, 1, "what the server said it holds stays true");
        assert_eq!(storage.version("p").unwrap(), 1);
    }
}

#[test]
fn the_oldest_version_needed_counts_only_clients_in_touch() {
    for (backend, storage, _dir) in backends() {
        let storage = storage.as_ref();
        eprintln!("backend: {backend}");
        assert_eq!(storage.oldest_needed("p", 0).unwrap(), None);
        storage.client_seen("p", 1, 5, 1_000).unwrap();
        storage.client_seen("p", 2, 9, 5_000).unwrap();
        storage.client_seen("q", 3, 1, 9_000).unwrap();
        assert_eq!(storage.oldest_needed("p", 0).unwrap(), Some(5));
        assert_eq!(storage.oldest_needed("p", 2_000).unwrap(), Some(9), "client 1 is out of touch");
        assert_eq!(storage.oldest_needed("p", 6_000).unwrap(), None);
        assert_eq!(storage.last_seen("p", 2).unwrap(), Some(5_000));
        assert_eq!(storage.last_seen("q", 2).unwrap(), None);
        storage.client_seen("p", 1, 12, 7_000).unwrap();
        assert_eq!(storage.oldest_needed("p", 2_000).unwrap(), Some(9));
    }
}

#[test]
fn snapshots_batches_resets_settings_and_schema() {
    for (backend, storage, _dir) in backends() {
        eprintln!("backend: {backend}");
        let storage = storage.as_ref();
        let c = storage.register_client("p").unwrap();
        let other = storage.register_client("q").unwrap();
        let creates = (0..25).map(|i| create(i, i)).collect();
        storage.integrate(c, &[changeset(1, 0, 10, creates)], u64::MAX, NOW).unwrap();
        let delete = Instruction::Delete { object_type: "Dog".into(), pk: 3.into() };
        storage.integrate(c, &[changeset(2, 1, 11, vec![delete])], u64::MAX, NOW).unwrap();
        let mut batches = vec![];
        let end = storage
            .snapshot("p", c.ident, 300, &mut |b| {
                batches.push(b);
                Ok(())
            })
            .unwrap();
        assert_eq!((end.version, end.uploaded_through), (2, 2));
        assert_eq!(Some(end.salt), storage.version_salt("p", 2).unwrap(), "the snapshot's version's salt");
        assert!(batches.len() > 2, "{} batches", batches.len());
        let keys: Vec<_> = batches.iter().flatten().map(|o| o.key.clone()).collect();
        assert_eq!(keys.len(), 25);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "in key order");
        assert_eq!(storage.partitions().unwrap(), vec![("p".to_owned(), 2)]);

        // Resets: one client, a partition, everyone.
        assert_eq!(storage.pending_reset(c.ident).unwrap(), None);
        assert_eq!(
            storage.mark_reset(&ResetTarget::Client(c.ident), ResetReason::OperatorReset).unwrap(),
            vec![c.ident]
        );
        assert_eq!(storage.pending_reset(c.ident).unwrap(), Some(ResetReason::OperatorReset));
        assert!(matches!(
            storage.mark_reset(&ResetTarget::Client(999), ResetReason::OperatorReset),
            Err(StorageError::UnknownClient(999))
        ));
        assert_eq!(
            storage.mark_reset(&ResetTarget::Partition("q".into()), ResetReason::Terminated).unwrap(),
            vec![other.ident]
        );
        let mut all = storage.mark_reset(&ResetTarget::All, ResetReason::SchemaBreaking).unwrap();
        all.sort_unstable();
        assert_eq!(all, vec![c.ident, other.ident]);
        assert_eq!(storage.pending_reset(other.ident).unwrap(), Some(ResetReason::SchemaBreaking));

        // Settings and history trimming.
        assert!(storage.partition_settings("p").unwrap().recovery_allowed);
        storage.set_recovery_allowed("p", false).unwrap();
        assert!(!storage.partition_settings("p").unwrap().recovery_allowed);
        assert_eq!(storage.compact("p", 1).unwrap(), 1);
        assert_eq!(storage.partition_settings("p").unwrap().trimmed_through, 1);
        assert_eq!(storage.history("p", 0, 10).unwrap().iter().map(|c| c.server_version).collect::<Vec<_>>(), vec![2]);
        assert_eq!(storage.trim_history("p", 99).unwrap(), 2, "never past the latest version");
        assert_eq!(storage.trim_history("p", 0).unwrap(), 2, "never back");

        assert_eq!(storage.schema().unwrap(), None);
        storage.set_schema("[1]").unwrap();
        storage.set_schema("[2]").unwrap();
        assert_eq!(storage.schema().unwrap().as_deref(), Some("[2]"));
    }
}

#[test]
fn an_embedded_store_from_a_newer_build_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStorage::open(dir.path()).unwrap());
    let path = dir.path().join("haven-server.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta).unwrap().insert("format", 99).unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = EmbeddedStorage::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StorageError::FormatTooNew { found: 99, supported: 4 }), "{err}");
    assert!(err.to_string().contains("99") && err.to_string().contains("reads up to 4"), "{err}");
    assert!(std::fs::read(&path).unwrap() == before, "untouched");
}

#[test]
fn an_embedded_store_from_a_newer_build_that_was_not_closed_cleanly_is_refused_after_its_repair() {
    let dir = tempfile::tempdir().unwrap();
    let killed = tempfile::tempdir().unwrap();
    {
        drop(EmbeddedStorage::open(dir.path()).unwrap());
        let db = redb::Database::create(dir.path().join("haven-server.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta).unwrap().insert("format", 99).unwrap();
        txn.commit().unwrap();
        // Copied while open for writing: what a killed process leaves.
        std::fs::copy(dir.path().join("haven-server.redb"), killed.path().join("haven-server.redb")).unwrap();
    }
    let err = EmbeddedStorage::open(killed.path()).err().expect("refused");
    assert!(matches!(err, StorageError::FormatTooNew { found: 99, supported: 4 }), "{err}");
    let err = EmbeddedStorage::open(killed.path()).err().expect("still refused: the format was not rewritten");
    assert!(matches!(err, StorageError::FormatTooNew { found: 99, .. }), "{err}");
}
