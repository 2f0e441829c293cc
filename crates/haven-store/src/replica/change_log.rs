//! The change log: each committed write transaction of a file that syncs,
//! as a changeset, kept until the server acknowledges it (the pending log
//! of `docs/sync.md`). The sync client uploads it; a client reset replays it.

use crate::error::{Error, Result};
use crate::layout::{
    META, META_BASE_SALT, META_BASE_VERSION, META_CHANGE_LOG, META_CLOCK, META_ELEMENT_ORIGIN, META_FILE_IDENT,
    META_NEXT_VERSION, PENDING,
};
use haven_core::merge::{Changeset, Hlc, HlcClock, Instruction};
use redb::ReadableTable;

/// Appends one changeset (the next client version, stamped `hlc` if the
/// transaction took its clock already, else now) inside the transaction
/// that made it; returns its client version.
pub(crate) fn append(txn: &redb::WriteTransaction, instructions: Vec<Instruction>, hlc: Option<Hlc>) -> Result<u64> {
    let last = clock(txn)?;
    let client_version = next_client_version(txn)?;
    let mut meta = txn.open_table(META)?;
    let base_version = read_u64(meta.get(META_BASE_VERSION)?).unwrap_or(0);
    let hlc = hlc.unwrap_or_else(|| HlcClock::starting_after(last).now(wall_millis()));
    let changeset = Changeset { replica: 0, client_version, base_version, hlc, instructions };
    let bytes =
        postcard::to_allocvec(&changeset).map_err(|e| Error::Storage(format!("cannot encode a changeset: {e}")))?;
    // It must fit in an upload frame with the frame's header (a few bytes).
    let max = haven_sync::protocol::MAX_UPLOAD_BYTES - 64;
    if bytes.len() > max {
        return Err(Error::TooLargeToSync { bytes: bytes.len(), max });
    }
    txn.open_table(PENDING)?.insert(client_version, bytes.as_slice())?;
    meta.insert(META_NEXT_VERSION, (client_version + 1).to_le_bytes().as_slice())?;
    let clock = postcard::to_allocvec(&hlc).map_err(|e| Error::Storage(e.to_string()))?;
    meta.insert(META_CLOCK, clock.as_slice())?;
    Ok(client_version)
}

/// The client version the next changeset gets.
pub(crate) fn next_client_version(txn: &redb::WriteTransaction) -> Result<u64> {
    Ok(read_u64(txn.open_table(META)?.get(META_NEXT_VERSION)?).unwrap_or(1))
}

/// The last server version integrated, and the file's ident (0: none).
pub(crate) fn base_and_ident(txn: &redb::WriteTransaction) -> Result<(u64, u64)> {
    let meta = txn.open_table(META)?;
    let base = read_u64(meta.get(META_BASE_VERSION)?).unwrap_or(0);
    let ident = read_u64(meta.get(META_FILE_IDENT)?).unwrap_or(0);
    Ok((base, ident))
}

/// The origin that names the list elements this file adds, drawn and
/// kept the first time it is asked for.
pub(crate) fn element_origin(txn: &redb::WriteTransaction) -> Result<u64> {
    let mut meta = txn.open_table(META)?;
    if let Some(origin) = read_u64(meta.get(META_ELEMENT_ORIGIN)?) {
        return Ok(origin);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(wall_millis());
    let origin = hasher.finish().max(1);
    meta.insert(META_ELEMENT_ORIGIN, origin.to_le_bytes().as_slice())?;
    Ok(origin)
}

fn read_u64(v: Option<redb::AccessGuard<'_, &[u8]>>) -> Option<u64> {
    v.and_then(|g| g.value().get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok())).map(u64::from_le_bytes)
}

/// Replaces the whole log with `changesets` (numbered from 1, as a client
/// reset's recovery numbers them for the file's new ident) and moves the
/// clock to `clock`.
#[cfg(feature = "sync")]
pub(crate) fn replace(txn: &redb::WriteTransaction, changesets: &[Changeset], clock: Hlc) -> Result<()> {
    txn.delete_table(PENDING)?;
    let mut pending = txn.open_table(PENDING)?;
    for cs in changesets {
        let bytes = postcard::to_allocvec(cs).map_err(|e| Error::Storage(format!("cannot encode a changeset: {e}")))?;
        pending.insert(cs.client_version, bytes.as_slice())?;
    }
    let mut meta = txn.open_table(META)?;
    meta.insert(META_NEXT_VERSION, (changesets.len() as u64 + 1).to_le_bytes().as_slice())?;
    let clock = postcard::to_allocvec(&clock).map_err(|e| Error::Storage(e.to_string()))?;
    meta.insert(META_CLOCK, clock.as_slice())?;
    Ok(())
}

/// The file's clock: the last stamp it gave a changeset.
pub(crate) fn clock(txn: &redb::WriteTransaction) -> Result<Hlc> {
    match txn.open_table(META)?.get(META_CLOCK)? {
        Some(g) => {
            postcard::from_bytes(g.value()).map_err(|e| Error::Storage(format!("the sync clock is damaged: {e}")))
        }
        None => Ok(Hlc::default()),
    }
}

/// Whether the file keeps a change log.
pub(crate) fn is_kept(rtx: &redb::ReadTransaction) -> Result<bool> {
    match rtx.open_table(META) {
        Ok(meta) => Ok(meta.get(META_CHANGE_LOG)?.is_some()),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Makes the file keep a change log from now on.
pub(crate) fn keep(db: &redb::Database) -> Result<()> {
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert(META_CHANGE_LOG, [1u8].as_slice())?;
    txn.commit()?;
    Ok(())
}

/// The changesets not yet acknowledged with a client version above
/// `after`, oldest first.
pub(crate) fn pending(rtx: &redb::ReadTransaction, after: u64) -> Result<Vec<Changeset>> {
    pending_encoded(rtx, after, usize::MAX)?
        .iter()
        .map(|(_, bytes)| {
            postcard::from_bytes(bytes).map_err(|e| Error::Storage(format!("a pending changeset is damaged: {e}")))
        })
        .collect()
}

/// Like [`pending`], as stored: `(client version, postcard bytes)`, which
/// is also how an upload carries them; at least one, and no more once
/// `max_bytes` are read.
pub(crate) fn pending_encoded(
    rtx: &redb::ReadTransaction,
    after: u64,
    max_bytes: usize,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let table = match rtx.open_table(PENDING) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let (mut out, mut bytes) = (Vec::new(), 0);
    for row in table.range(after.saturating_add(1)..)? {
        if bytes >= max_bytes {
            break;
        }
        let (k, v) = row?;
        bytes += v.value().len();
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// Where a file stands with its server ([`Database::sync_position`](crate::Database::sync_position)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncPosition {
    /// `(ident, salt)` the server gave this file, once bound.
    pub file_ident: Option<(u64, u64)>,
    /// The last server version integrated.
    pub base_version: u64,
    /// The salt the server gave that version (0: none): it tells the
    /// server's version from a restored server's version of that number.
    pub base_salt: u64,
    /// The last client version written to the log (0: none).
    pub last_client_version: u64,
    /// The last client version the server acknowledged (what left the log).
    pub acknowledged: u64,
}

pub(crate) fn position(rtx: &redb::ReadTransaction) -> Result<SyncPosition> {
    let meta = match rtx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(SyncPosition::default()),
        Err(e) => return Err(e.into()),
    };
    let bytes = |key: &str| -> Result<Option<Vec<u8>>> { Ok(meta.get(key)?.map(|g| g.value().to_vec())) };
    let u64_at = |b: &[u8], at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
    let file_ident = bytes(META_FILE_IDENT)?.map(|b| match (u64_at(&b, 0), u64_at(&b, 8)) {
        (Some(ident), Some(salt)) => Ok((ident, salt)),
        _ => Err(Error::Storage("the file's sync ident is damaged".into())),
    });
    let last_client_version = bytes(META_NEXT_VERSION)?.and_then(|b| u64_at(&b, 0)).map_or(0, |next| next - 1);
    // Changesets leave the log only when acknowledged, oldest first.
    let oldest_pending = match rtx.open_table(PENDING) {
        Ok(t) => t.first()?.map(|(k, _)| k.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(SyncPosition {
        file_ident: file_ident.transpose()?,
        base_version: bytes(META_BASE_VERSION)?.and_then(|b| u64_at(&b, 0)).unwrap_or(0),
        base_salt: bytes(META_BASE_SALT)?.and_then(|b| u64_at(&b, 0)).unwrap_or(0),
        last_client_version,
        acknowledged: oldest_pending.map_or(last_client_version, |v| v - 1),
    })
}

/// Records the last server version integrated, and its salt.
#[cfg(feature = "sync")]
pub(crate) fn set_base(txn: &redb::WriteTransaction, version: u64, salt: u64) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    meta.insert(META_BASE_VERSION, version.to_le_bytes().as_slice())?;
    meta.insert(META_BASE_SALT, salt.to_le_bytes().as_slice())?;
    Ok(())
}

/// Records the ident the server gave this file.
#[cfg(feature = "sync")]
pub(crate) fn set_file_ident(txn: &redb::WriteTransaction, ident: u64, salt: u64) -> Result<()> {
    let mut bytes = ident.to_le_bytes().to_vec();
    bytes.extend_from_slice(&salt.to_le_bytes());
    txn.open_table(META)?.insert(META_FILE_IDENT, bytes.as_slice())?;
    Ok(())
}

pub(crate) fn wall_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
