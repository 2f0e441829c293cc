//! A property test of client reset: random offline edits on several
//! devices, random resets of random devices in random modes at random
//! times. At the end every replica converges, and every change a device
//! had not synced when it was reset is accounted for: recovered, or
//! listed as dropped with a reason.

use haven::recovery::{ChangeKind, RecoveryReport};
use haven::{
    Changeset, ClientResetMode, Config, Database, Instruction, RecoveryPolicy, Schema, SyncConfig, UpdateMode,
};
use haven_server::{Authenticator, Server};
use haven_sync::protocol::FileIdent;
use proptest::prelude::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haven_testkit::{dogs, synced};

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?","tags":"int[]",
    "colors":"string<>","scores":"int{}","homes":"Home[]"}},
    {"name":"Home","embedded":true,"properties":{"city":"string?","zip":"int?"}}]"#;
const DEVICES: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Mode {
    LatestWins,
    ClientWins,
    Discard,
    RecoverOrDiscard,
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        device: usize,
        id: i64,
        age: i64,
    },
    SetAge {
        device: usize,
        id: i64,
        age: i64,
    },
    Rename {
        device: usize,
        id: i64,
        name: u8,
    },
    Increment {
        device: usize,
        id: i64,
        by: i64,
    },
    Delete {
        device: usize,
        id: i64,
    },
    /// A list edit: 0 push, 1 insert, 2 remove, 3 move, 4 set; `at` picks
    /// the index within the list.
    ListEdit {
        device: usize,
        id: i64,
        kind: u8,
        at: usize,
        value: i64,
    },
    /// A set or dictionary edit: 0 add, 1 remove (of `colors`), 2 put, 3
    /// remove (of `scores`); `key` picks the element or key.
    EntryEdit {
        device: usize,
        id: i64,
        kind: u8,
        key: u8,
        value: i64,
    },
    /// An edit of the list of embedded objects `homes`: 0 push, 1 and 2
    /// a field of one element (city, zip), 3 one element written whole,
    /// 4 a removal; `at` picks the element.
    HomeEdit {
        device: usize,
        id: i64,
        kind: u8,
        at: usize,
        value: i64,
    },
    GoOffline {
        device: usize,
    },
    GoOnline {
        device: usize,
    },
    Sync {
        device: usize,
    },
    Reset {
        device: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let device = 0..DEVICES;
    let id = 1i64..=4;
    prop_oneof![
        (device.clone(), id.clone(), 0i64..100).prop_map(|(device, id, age)| Op::Create { device, id, age }),
        (device.clone(), id.clone(), 0i64..100).prop_map(|(device, id, age)| Op::SetAge { device, id, age }),
        (device.clone(), id.clone(), 0u8..4).prop_map(|(device, id, name)| Op::Rename { device, id, name }),
        (device.clone(), id.clone(), 1i64..10).prop_map(|(device, id, by)| Op::Increment { device, id, by }),
        (device.clone(), id.clone()).prop_map(|(device, id)| Op::Delete { device, id }),
        (device.clone(), id, 0u8..5, 0usize..8, 0i64..1000).prop_map(|(device, id, kind, at, value)| Op::ListEdit {
            device,
            id,
            kind,
            at,
            value
        }),
        (device.clone(), 1i64..=4, 0u8..4, 0u8..3, 0i64..1000)
            .prop_map(|(device, id, kind, key, value)| Op::EntryEdit { device, id, kind, key, value }),
        (device.clone(), 1i64..=4, 0u8..5, 0usize..8, 0i64..1000)
            .prop_map(|(device, id, kind, at, value)| Op::HomeEdit { device, id, kind, at, value }),
        device.clone().prop_map(|device| Op::GoOffline { device }),
        device.clone().prop_map(|device| Op::GoOnline { device }),
        device.clone().prop_map(|device| Op::Sync { device }),
        device.prop_map(|device| Op::Reset { device }),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::LatestWins), Just(Mode::ClientWins), Just(Mode::Discard), Just(Mode::RecoverOrDiscard)]
}

/// One device: its database, its reports, and the change log it had
/// when it was last reset while offline, with its ident then.
struct Device {
    db: Database,
    online: bool,
    reports: Arc<Mutex<Vec<RecoveryReport>>>,
    log_at_reset: Option<(FileIdent, Vec<Changeset>)>,
}

fn reset_mode(mode: Mode, reports: &Arc<Mutex<Vec<RecoveryReport>>>) -> ClientResetMode {
    let reports = reports.clone();
    let after = Some(Box::new(move |_: &Database, _: &Database, report: &RecoveryReport| {
        reports.lock().unwrap().push(report.clone());
        Ok(())
    }) as haven::AfterReset);
    match mode {
        Mode::LatestWins => {
            ClientResetMode::RecoverUnsynced { policy: RecoveryPolicy::LatestWins, before: None, after }
        }
        Mode::ClientWins => {
            ClientResetMode::RecoverUnsynced { policy: RecoveryPolicy::ClientWins, before: None, after }
        }
        Mode::Discard => ClientResetMode::DiscardUnsynced { before: None, after },
        Mode::RecoverOrDiscard => {
            let policy = RecoveryPolicy::LatestWins;
            ClientResetMode::RecoverOrDiscard { policy, before: None, after, fallback: None }
        }
    }
}

async fn open(dir: &std::path::Path, server: &Server, name: &str, mode: ClientResetMode) -> Database {
    let sync = SyncConfig::new(server.url(), "dev", "p")
        .reconnect_delays(Duration::from_millis(10), Duration::from_millis(100))
        .client_reset(mode);
    let config = Config::new(dir.join(format!("{name}.haven"))).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync);
    Database::open_synced(config).await.unwrap()
}

/// Whether a report of the device lists `instruction` (its object, kind
/// and, for a set or an increment, its field): recovered, or dropped with
/// a reason.
fn accounted_for(reports: &[RecoveryReport], instruction: &Instruction) -> bool {
    let (ty, pk) = instruction.object();
    let kind = ChangeKind::of(instruction);
    let field = instruction.field();
    reports.iter().any(|r| {
        let recovered = r.recovered().iter().any(|c| {
            c.object_type == ty
                && c.pk == *pk
                && c.kind == kind
                && field.is_none_or(|f| c.fields.iter().any(|n| n == f))
        });
        let dropped = r.dropped().iter().any(|d| {
            d.object_type == ty && d.pk == *pk && d.kind == kind && (d.field.is_none() || d.field.as_deref() == field)
        });
        recovered || dropped
    })
}

async fn run(modes: Vec<Mode>, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = haven_testkit::test_storage(&dir.path().join("server"));
    let server = Server::start(storage.clone(), Authenticator::Dev, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut devices = Vec::new();
    for (n, mode) in modes.iter().enumerate() {
        let reports = Arc::default();
        let db = open(dir.path(), &server, &format!("d{n}"), reset_mode(*mode, &reports)).await;
        devices.push(Device { db, online: true, reports, log_at_reset: None });
    }
    for op in ops {
        // Writes that do not apply here (no such dog) fail locally and are not in the log.
        let write = |d: &Device, f: &dyn Fn(&mut haven::WriteTransaction<'_>) -> haven::Result<()>| {
            let result = d.db.write(|tx| f(tx));
            assert!(!matches!(result, Err(haven::Error::Storage(_))), "{result:?}");
        };
        match op {
            Op::Create { device, id, age } => write(&devices[device], &|tx| {
                tx.create("Dog", json!({"_id": id, "name": format!("d{device}"), "age": age}), UpdateMode::Modified)
            }),
            Op::SetAge { device, id, age } => write(&devices[device], &|tx| tx.set("Dog", id, "age", age)),
            Op::Rename { device, id, name } => {
                write(&devices[device], &|tx| tx.set("Dog", id, "name", format!("n{name}")))
            }
            Op::Increment { device, id, by } => write(&devices[device], &|tx| tx.increment("Dog", id, "age", by)),
            Op::Delete { device, id } => write(&devices[device], &|tx| tx.delete("Dog", id).map(|_| ())),
            Op::ListEdit { device, id, kind, at, value } => write(&devices[device], &|tx| {
                let len = tx.get("Dog", id)?.map_or(0, |d| d["tags"].as_array().map_or(0, Vec::len));
                match (kind, len) {
                    (0, _) => tx.list_push("Dog", id, "tags", value),
                    (1, _) => tx.list_insert("Dog", id, "tags", at % (len + 1), value),
                    (_, 0) => Ok(()),
                    (2, _) => tx.list_remove("Dog", id, "tags", at % len).map(drop),
                    (3, _) => tx.list_move("Dog", id, "tags", at % len, (at + 1) % len),
                    _ => tx.list_set("Dog", id, "tags", at % len, value),
                }
            }),
            Op::EntryEdit { device, id, kind, key, value } => write(&devices[device], &|tx| match kind {
                0 => tx.set_add("Dog", id, "colors", format!("c{key}")).map(drop),
                1 => tx.set_remove("Dog", id, "colors", format!("c{key}")).map(drop),
                2 => tx.dict_put("Dog", id, "scores", &format!("k{key}"), value),
                _ => tx.dict_remove("Dog", id, "scores", &format!("k{key}")).map(drop),
            }),
            Op::HomeEdit { device, id, kind, at, value } => write(&devices[device], &|tx| {
                let len = tx.get("Dog", id)?.map_or(0, |d| d["homes"].as_array().map_or(0, Vec::len));
                let home =
                    |field: &str| haven::Value::Dictionary([(field.to_owned(), haven::Value::from(value))].into());
                match (kind, len) {
                    (0, _) => tx.list_push("Dog", id, "homes", home("zip")),
                    (_, 0) => Ok(()),
                    (1, _) => tx.set_path("Dog", id, &format!("homes.{}.city", at % len), format!("c{value}")),
                    (2, _) => tx.set_path("Dog", id, &format!("homes.{}.zip", at % len), value),
                    (3, _) => tx.list_set("Dog", id, "homes", at % len, home("zip")),
                    _ => tx.list_remove("Dog", id, "homes", at % len).map(drop),
                }
            }),
            Op::GoOffline { device } => {
                devices[device].db.sync_session().unwrap().pause();
                devices[device].online = false;
            }
            Op::GoOnline { device } => {
                devices[device].db.sync_session().unwrap().resume();
                devices[device].online = true;
            }
            Op::Sync { device } if devices[device].online => synced(&devices[device].db).await,
            Op::Sync { .. } => {}
            Op::Reset { device } => {
                let d = &mut devices[device];
                let (ident, salt) = d.db.sync_position().unwrap().file_ident.expect("bound");
                if !d.online {
                    // Offline, nothing more uploads before the reset.
                    d.log_at_reset = Some((FileIdent { ident, salt }, d.db.pending_changes().unwrap()));
                }
                server.reset_client(ident).await.unwrap();
            }
        }
    }
    for d in &mut devices {
        d.db.sync_session().unwrap().resume();
        d.online = true;
    }
    for _ in 0..2 {
        for d in &devices {
            synced(&d.db).await;
        }
    }
    let check = open(dir.path(), &server, "check", ClientResetMode::default()).await;
    let expected = dogs(&check);
    for (n, d) in devices.iter().enumerate() {
        assert_eq!(dogs(&d.db), expected, "device {n} ({:?}) and the server", modes[n]);
        let Some((ident, log)) = &d.log_at_reset else { continue };
        // What the server integrated under the old ident (an upload whose
        // acknowledgement the pause cut off) was synced, not unsynced.
        let integrated = storage.client(*ident).unwrap().uploaded_through;
        let reports = d.reports.lock().unwrap().clone();
        for instruction in log.iter().filter(|cs| cs.client_version > integrated).flat_map(|cs| &cs.instructions) {
            assert!(accounted_for(&reports, instruction), "device {n}: {instruction:?} is not in {reports:?}");
        }
    }
    server.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: haven_testkit::proptest_cases(32), ..ProptestConfig::default() })]

    #[test]
    fn resets_at_random_converge_and_account_for_every_unsynced_change(
        modes in proptest::collection::vec(mode(), DEVICES),
        ops in proptest::collection::vec(op(), 1..30),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(modes, ops));
    }
}
