//! Client reset recovery: the report of an automatic reset, and the
//! strategies a manual reset uses to bring a backup's changes into the
//! fresh database (`docs/client-reset.md`). Each strategy writes to
//! `live` in one write transaction, as local changes that then upload,
//! and returns a [`RecoveryReport`].
//!
//! ```no_run
//! # async fn run(info: haven_store::ClientResetInfo, config: haven_store::Config) -> haven_store::Result<()> {
//! use haven_store::{initiate_client_reset, recovery, Database};
//! // The database is closed; the server's state is what it must start from.
//! let backup_path = initiate_client_reset(info.original_path())?;
//! let live = Database::open_synced(config).await?;
//! let backup = Database::open(info.backup_config())?;
//! let report = recovery::by_field(&backup, &live)?;
//! println!("{report}");
//! # Ok(()) }
//! ```

use crate::database::Database;
use crate::error::{Error, Result};
use crate::transaction::WriteTransaction;
use crate::UpdateMode;
use haven_core::merge::{HlcClock, Instruction};
use haven_core::recovery::Recovery;
use haven_core::Value;

pub use haven_core::recovery::{
    ChangeKind, DropReason, DroppedChange, RecoveredChange, RecoveryPolicy, RecoveryReport,
};

/// Realm's documented procedure, *track changes by object*: objects of
/// `object_type` whose `timestamp_property` (an int the app sets on every
/// write, such as `lastUpdated`) is greater than `last_synced` (when the
/// database last finished syncing) are copied whole from `backup`;
/// objects of that type that the backup no longer has and that were not
/// updated since `last_synced` are deleted.
///
/// Copying whole objects overwrites the server's newer edits to other
/// fields of them: [`by_field`] does not.
pub fn by_object_timestamp(
    backup: &Database,
    live: &Database,
    object_type: &str,
    timestamp_property: &str,
    last_synced: i64,
) -> Result<RecoveryReport> {
    let (_, ty) = backup.type_named(object_type)?;
    if ty.property_named(timestamp_property).is_none() {
        return Err(Error::UnknownProperty { object_type: object_type.into(), property: timestamp_property.into() });
    }
    let newer_than_sync = |o: &crate::Object| o.get(timestamp_property).and_then(|v| v.as_int()) > Some(last_synced);
    let mut changes = Vec::new();
    for object in backup.objects(object_type)?.iter()? {
        if newer_than_sync(&object) {
            changes.push(whole(&object, ty));
        }
    }
    for object in live.objects(object_type)?.iter()? {
        let pk = object.get(ty.primary_key_name()).unwrap_or(Value::Null);
        if backup.object_for_primary_key(object_type, pk.clone())?.is_none() && !newer_than_sync(&object) {
            changes.push(Instruction::Delete { object_type: object_type.into(), pk });
        }
    }
    write_recovered(live, changes, RecoveryReport::default())
}

/// Recovers the backup's unsynced changes field by field, with Haven's own
/// field stamps: a field the backup changed after the server last did is
/// recovered, one the server changed later is not (no `lastUpdated` field
/// needed). Creates, increments and deletes are recovered too; edits to
/// objects the server deleted are dropped. The policy of
/// [`RecoveryPolicy::LatestWins`].
pub fn by_field(backup: &Database, live: &Database) -> Result<RecoveryReport> {
    recover(backup, live, RecoveryPolicy::LatestWins)
}

/// Replays the backup's unsynced changes as they were made: creates,
/// updates, increments and deletes, the backup's values winning
/// ([`RecoveryPolicy::ClientWins`]). Edits to objects the server deleted
/// are dropped (and reported).
pub fn from_change_log(backup: &Database, live: &Database) -> Result<RecoveryReport> {
    recover(backup, live, RecoveryPolicy::ClientWins)
}

/// Writes every object of the backup into `live`, whole (creating or
/// overwriting). Objects deleted in the backup are not deleted: the
/// server's newer objects stay.
pub fn overwrite_server(backup: &Database, live: &Database) -> Result<RecoveryReport> {
    let mut changes = Vec::new();
    let mut report = RecoveryReport::default();
    for ty in backup.schema().types().iter().filter(|t| !t.is_embedded()) {
        let fits = live
            .schema()
            .object_type(ty.name())
            .is_some_and(|l| ty.properties().iter().all(|p| l.property_named(&p.name) == Some(p)));
        for object in backup.objects(ty.name())?.iter()? {
            match fits {
                true => changes.push(whole(&object, ty)),
                false => report.add_dropped(&whole(&object, ty), None, DropReason::SchemaIncompatible),
            }
        }
    }
    write_recovered(live, changes, report)
}

/// The backup's unsynced changes recovered onto `live`'s server state.
fn recover(backup: &Database, live: &Database, policy: RecoveryPolicy) -> Result<RecoveryReport> {
    let acknowledged = backup.reset_tracker()?.and_then(|t| t.acknowledged);
    let after = acknowledged.unwrap_or(0);
    let unsynced: Vec<_> = backup.pending_changes()?.into_iter().filter(|cs| cs.client_version > after).collect();
    let snapshot = live.snapshot()?;
    let position = snapshot.sync_position()?;
    let recovery = Recovery {
        schema: live.schema(),
        policy,
        server_version: position.base_version,
        history_continues: false,
        replica: position.file_ident.map_or(0, |(ident, _)| ident),
        clock: HlcClock::default(),
        now_millis: crate::replica::change_log::wall_millis(),
    };
    let mut failed = None;
    let recovered = recovery.run(&unsynced, |ty, pk| {
        snapshot.confirmed(ty, pk).inspect_err(|e| failed = Some(e.to_string())).ok().flatten()
    });
    if let Some(e) = failed {
        return Err(Error::Storage(format!("cannot read the server's state: {e}")));
    }
    // Only what won: applied as new local writes, a field that lost would
    // win with its new stamp.
    live.write(|tx| recovered.survivors.iter().try_for_each(|i| apply(tx, i)))?;
    Ok(recovered.report)
}

/// A create of the whole object, as it is.
fn whole(object: &crate::Object, ty: &haven_core::ObjectSchema) -> Instruction {
    let fields: Vec<(String, Value)> =
        ty.properties().iter().map(|p| (p.name.clone(), object.get(&p.name).unwrap_or(Value::Null))).collect();
    let pk = object.get(ty.primary_key_name()).unwrap_or(Value::Null);
    Instruction::Create { object_type: ty.name().into(), pk, fields }
}

/// Writes `changes` to `live` in one transaction and adds them to the report.
fn write_recovered(live: &Database, changes: Vec<Instruction>, mut report: RecoveryReport) -> Result<RecoveryReport> {
    live.write(|tx| changes.iter().try_for_each(|i| apply(tx, i)))?;
    changes.iter().for_each(|i| report.add_recovered(i));
    Ok(report)
}

/// Makes one recovered instruction a local write.
fn apply(tx: &mut WriteTransaction<'_>, instruction: &Instruction) -> Result<()> {
    match instruction {
        Instruction::Create { object_type, fields, .. } => {
            tx.create_values(object_type, fields.iter().map(|(n, v)| (n.as_str(), v.clone())), UpdateMode::Modified)
        }
        Instruction::Set { object_type, pk, field, value } => tx.set(object_type, pk.clone(), field, value.clone()),
        Instruction::Increment { object_type, pk, field, delta } => {
            tx.increment(object_type, pk.clone(), field, delta.clone())
        }
        Instruction::Delete { object_type, pk } => tx.delete(object_type, pk.clone()).map(|_| ()),
        Instruction::SetAdd { .. }
        | Instruction::SetRemove { .. }
        | Instruction::DictionaryPut { .. }
        | Instruction::DictionaryRemove { .. } => tx.apply_entry(instruction).map(drop),
        list => tx.apply_element(list),
    }
}
