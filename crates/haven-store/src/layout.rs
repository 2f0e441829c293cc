//! The file layout: which redb tables hold what, and every key of the
//! meta table. `docs/storage.md` describes the bytes; `docs/formats.md`
//! their history.

use redb::TableDefinition;

/// The newest file format this build reads and the one it writes.
/// Format 1 kept every synced object's confirmed state in
/// [`CONFIRMED`]; format 2 keeps it in the record's sync suffix when it
/// can (see `replica::confirmed`). Format 3 may hold list element
/// instructions in the change log and element identities in confirmed
/// states (bytes format 2 cannot read). Format 4 may hold sets and
/// dictionaries: in records, their instructions in the change log and
/// their entries in confirmed states (bytes format 3 cannot read).
/// Format 5 may hold field edits of embedded objects in lists in the
/// change log, and their fields' stamps in confirmed states.
pub(crate) const FORMAT_VERSION: u32 = 5;

/// Metadata: `format` (u32 LE), `schema` (JSON), and the `sync/…` keys.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("haven/meta");
pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_SCHEMA: &str = "schema";

/// The last stamp the file gave a changeset (postcard `Hlc`).
pub(crate) const META_CLOCK: &str = "sync/clock";
/// The client version the next changeset gets (u64 LE).
pub(crate) const META_NEXT_VERSION: &str = "sync/next_client_version";
/// The last server version integrated (u64 LE).
pub(crate) const META_BASE_VERSION: &str = "sync/base_version";
/// The salt the server gave the base version (u64 LE; absent in files
/// from before salts: read as 0, which is what the server then has too).
pub(crate) const META_BASE_SALT: &str = "sync/base_salt";
/// Present once a file keeps a change log; from then on it always does.
pub(crate) const META_CHANGE_LOG: &str = "sync/change_log";
/// The `(ident, salt)` the server gave the file (two u64 LE).
pub(crate) const META_FILE_IDENT: &str = "sync/file_ident";
/// Present while a bootstrap into a file that held no objects writes its
/// batches straight into the objects tables.
#[cfg(feature = "sync")]
pub(crate) const META_BOOTSTRAP_IN_PLACE: &str = "sync/bootstrap_in_place";
/// A client reset in progress (postcard `ResetTracker`).
pub(crate) const META_RESET: &str = "sync/reset";
/// u64 LE: the random number that names the list elements this file
/// adds (`ElementId::origin`), drawn at its first one.
pub(crate) const META_ELEMENT_ORIGIN: &str = "sync/element_origin";

/// The change log: client version → changeset (postcard), for files that sync.
pub(crate) const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("sync/pending");

/// The overlay of confirmed states: (type, encoded pk) → (pk, state with
/// field stamps), postcard. It holds an object's server-confirmed state
/// whenever its record does not: local changes are pending on it, it is
/// deleted (a tombstone), its type is not in this app's schema, or its
/// values do not fit the schema exactly.
pub(crate) const CONFIRMED: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("sync/confirmed");

/// A bootstrap being received: batch number → the batch's objects
/// (postcard `Vec<SnapshotObject>`), as the server sent them.
#[cfg(feature = "sync")]
pub(crate) const BOOTSTRAP: TableDefinition<u64, &[u8]> = TableDefinition::new("sync/bootstrap");

/// The table of objects of one type: encoded primary key → record (and,
/// in a file that syncs, the record's sync suffix).
pub(crate) fn objects_table(object_type: &str) -> String {
    format!("objects/{object_type}")
}

/// The secondary index of one property: encoded value ++ encoded primary key → ().
pub(crate) fn index_table(object_type: &str, property: &str) -> String {
    format!("index/{object_type}/{property}")
}

pub(crate) fn objects_def(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

pub(crate) fn index_def(name: &str) -> TableDefinition<'_, &'static [u8], ()> {
    TableDefinition::new(name)
}
