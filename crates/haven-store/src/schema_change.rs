//! An app whose schema breaks its synced file's (after an operator's
//! breaking change, the updated app): the file starts again from the
//! server's state under the new schema, by a client reset the device
//! asks for, instead of being refused. A local-only file has no server
//! state to start from: it keeps the error.
//!
//! The steps, each crash-safe:
//! 1. [`breaking_change`] reads the file, changing nothing.
//! 2. The server is asked for a reset (`sync::request_reset`); it checks
//!    the new schema as for any bind, so a schema it does not have is
//!    refused before the file changes.
//! 3. [`prepare`], in one commit: the file takes the new schema, its
//!    objects are rebuilt under it from the confirmed state and the
//!    pending changes (a value that does not fit shows as the property's
//!    fallback, an object that cannot be completed is left out, until the
//!    reset), and a reset tracker is stored with the server's reason. The change log and the
//!    confirmed state stay as they are: the reset recovers from them.
//! 4. The file opens as usual; its session finds the tracker and carries
//!    out the reset in the app's mode, reporting what no longer fits as
//!    `SchemaIncompatible`.

use crate::config::Config;
use crate::database::{open_error, read_meta, Database};
use crate::error::{Error, Result};
use crate::layout::{self, FORMAT_VERSION, META, META_FORMAT, META_SCHEMA};
use crate::replica::change_log::{self, SyncPosition};
use crate::replica::reset_tracker::{read_tracker, write_tracker, ResetRequest, ResetTracker};
use crate::replica::settle::Rebuild;
use crate::sync::{request_reset, SyncConfig};
use crate::transaction::WriteTransaction;
use haven_core::{Schema, SchemaError};
use redb::ReadableDatabase;
use std::path::Path;

/// A synced file the app's schema breaks.
pub(crate) struct BreakingChange {
    /// Why `evolve` refused the app's schema.
    pub error: SchemaError,
    /// The file's schema now.
    pub stored: Schema,
    /// The schema the file takes.
    pub schema: Schema,
    /// Where the file stands with its server.
    pub position: SyncPosition,
}

/// Steps 1 to 3 for a synced file opened by an app whose schema breaks
/// the file's: afterwards the file opens with that schema and resets. A
/// file open in this process is left to `Database::open` (it refuses
/// another schema), as is a file that opens as usual.
pub(crate) async fn start_again_if_breaking(config: &Config, sync: &SyncConfig) -> Result<()> {
    let Some(requested) = config.schema.clone() else { return Ok(()) };
    let path = crate::database::absolute(&config.path)?;
    if Database::is_open(&path) {
        return Ok(());
    }
    let change = blocking({
        let path = path.clone();
        move || breaking_change(&path, &requested)
    })
    .await?;
    let Some(change) = change else { return Ok(()) };
    tracing::info!(path = %path.display(), change = %change.error, "the app's schema breaks its synced file's: asking the server for a client reset");
    let grant =
        request_reset(sync, &change.position, change.schema.to_json()).await.map_err(|why| refused(&change, why))?;
    blocking(move || prepare(&path, &change, grant)).await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Storage(format!("a blocking task failed: {e}")))?
}

/// The breaking change `requested` makes to the synced file at `path`,
/// if any. A file that never synced gets the schema error, with what to
/// do, and so does a change that only removes properties (the server
/// keeps every property a client omits: it cannot be what the server
/// asks for). A file that opens as usual, or whose trouble
/// `Database::open` reports, gets `None`. Reads only, but repairs a file
/// whose process was killed, as opening it for writing would.
pub(crate) fn breaking_change(path: &Path, requested: &Schema) -> Result<Option<BreakingChange>> {
    let Some(db) = open_read_only(path)? else { return Ok(None) };
    let rtx = db.begin_read()?;
    let Some(stored) = read_meta(path, &rtx)? else { return Ok(None) };
    let Err(error) = stored.evolve(requested) else { return Ok(None) };
    if stored.union(requested).is_ok() {
        return Err(error.into());
    }
    let position = change_log::position(&rtx)?;
    if position.file_ident.is_none() {
        let why = match change_log::is_kept(&rtx)? {
            true => "this file has not reached its server yet",
            false => "this file does not sync",
        };
        let message = format!(
            "{}; {why}, so there is no server state to start again from: keep the old definition, or move the file aside and start a new one",
            error.message
        );
        return Err(SchemaError { message, ..error }.into());
    }
    Ok(Some(BreakingChange { schema: stored.superseded_by(requested)?, stored, error, position }))
}

/// The file at `path`, read-only: `None` when there is none or it cannot
/// be read (`Database::open` then says why). Waits while the last handle
/// in this process closes it, and repairs it if its process was killed.
fn open_read_only(path: &Path) -> Result<Option<redb::ReadOnlyDatabase>> {
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(None);
    }
    loop {
        match redb::Builder::new().open_read_only(path) {
            Ok(db) => return Ok(Some(db)),
            Err(redb::DatabaseError::RepairAborted) => {
                drop(redb::Builder::new().open(path).map_err(|e| open_error(path, e))?);
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if Database::closing(path) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(_) => return Ok(None),
        }
    }
}

/// The error for a breaking change the server did not grant a reset for.
pub(crate) fn refused(change: &BreakingChange, why: String) -> Error {
    let message = format!(
        "{}; this file syncs and would start again from the server's state under the new schema, but {why}",
        change.error.message
    );
    SchemaError { message, ..change.error.clone() }.into()
}

/// Gives the file at `path` its new schema and a pending reset, in one
/// commit (see the module's steps).
pub(crate) fn prepare(path: &Path, change: &BreakingChange, grant: ResetRequest) -> Result<()> {
    // Held open for writing from here: no other process can change it.
    let db = redb::Builder::new().open(path).map_err(|e| open_error(path, e))?;
    let current = {
        let rtx = db.begin_read()?;
        if read_meta(path, &rtx)?.as_ref() != Some(&change.stored) || change_log::position(&rtx)? != change.position {
            let message = format!("{} changed while the server was asked for a reset: open it again", path.display());
            return Err(Error::Storage(message));
        }
        read_tracker(&rtx)?
    };
    let now = change_log::wall_millis();
    let tracker = ResetTracker::after_request(current, path, grant, now);
    let txn = db.begin_write()?;
    crate::replica::download::unfold_records(&txn, &change.stored)?;
    for ty in change.stored.types() {
        txn.delete_table(layout::objects_def(&layout::objects_table(ty.name())))?;
        for p in ty.properties().iter().filter(|p| p.indexed) {
            txn.delete_table(layout::index_def(&layout::index_table(ty.name(), &p.name)))?;
        }
    }
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_SCHEMA, change.schema.to_json().as_bytes())?;
        // Every object is settled below, as the migration to this format
        // would: a file of an earlier format comes out in this one.
        meta.insert(META_FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())?;
    }
    write_tracker(&txn, Some(&tracker))?;
    let ident = change.position.file_ident.map_or(0, |(ident, _)| ident);
    let mut tx = WriteTransaction::new(&txn, &change.schema, false, None);
    crate::replica::settle::settle_all(&mut tx, change.position.base_version, ident, Rebuild::NewSchema)?;
    let _ = tx.finish();
    txn.commit()?;
    tracing::info!(path = %path.display(), "breaking schema change: the file takes the new schema and starts again from the server's state");
    Ok(())
}
