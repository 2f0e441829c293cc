//! The file layout: which redb tables hold what. See `docs/storage.md`.

use redb::TableDefinition;

/// The newest file format this build reads and the one it writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Metadata: `format` (u32 LE), `schema` (JSON).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("haven/meta");
pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_SCHEMA: &str = "schema";

/// The change log: client version → changeset (postcard), for files that sync.
pub(crate) const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("sync/pending");

/// The server-confirmed state of synced objects: (type, encoded pk) →
/// (pk, state with field stamps), postcard.
pub(crate) const CONFIRMED: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("sync/confirmed");

/// The table of objects of one type: encoded primary key → record.
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
