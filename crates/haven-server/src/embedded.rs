//! The embedded storage: one redb file in the server's data directory.

use crate::storage::{
    new_salt, ClientRecord, Integration, PartitionSettings, ResetTarget, SnapshotBatches, SnapshotEnd, Storage,
    StorageError, StoredChangeset, TrimPoint,
};
use crate::upload;
use haven_core::merge::{Changeset, ObjectState};
use haven_core::Value;
use haven_sync::protocol::{FileIdent, ResetReason, SnapshotObject};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

/// `next_ident` → u64; `format` → the store's format version.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The newest store format this build reads, and the one it writes
/// (history: `docs/formats.md`). A store from before the `format` key is
/// format 1. Format 2 may hold list element instructions and object
/// states with element identities; its bytes are format 1's otherwise,
/// so a format-1 store becomes format 2 by taking the number. Format 3
/// may hold set and dictionary values, instructions and entries, and
/// format 4 field edits of embedded objects in lists and their stamps;
/// each likewise takes the number from the format before.
const STORE_FORMAT: u64 = 4;
/// partition → latest version.
const PARTITIONS: TableDefinition<&str, u64> = TableDefinition::new("partitions");
/// (partition, version) → changeset (postcard; `replica` is the client's ident).
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("history");
/// (partition, version) → the version's salt (none for versions stored
/// before salts, which read as 0).
const VERSION_SALTS: TableDefinition<(&str, u64), u64> = TableDefinition::new("version_salts");
/// (partition, type, encoded pk) → (pk, state) (postcard).
const OBJECTS: TableDefinition<(&str, &str, &[u8]), &[u8]> = TableDefinition::new("objects");
/// ident → client record (postcard).
const CLIENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("clients");
/// ident → the reset it must go through (postcard `ResetReason`).
const RESETS: TableDefinition<u64, &[u8]> = TableDefinition::new("resets");
/// partition → `PartitionSettings` (postcard).
const PARTITION_SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("partition_settings");
/// (partition, ident) → (last in touch, ms since the epoch; last server version sent).
const SEEN: TableDefinition<(&str, u64), (u64, u64)> = TableDefinition::new("seen");
/// "schema" → the server's schema (JSON).
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");

/// Partitions in one redb file (`<data dir>/haven-server.redb`).
pub struct EmbeddedStorage {
    db: redb::Database,
}

impl EmbeddedStorage {
    /// Opens (creating if needed) the storage in `dir`, with redb's
    /// default page cache (1 GiB at most).
    pub fn open(dir: &Path) -> Result<EmbeddedStorage, StorageError> {
        EmbeddedStorage::open_with_cache(dir, None)
    }

    /// [`EmbeddedStorage::open`] with a page cache of at most
    /// `cache_bytes` (`None`: redb's default). The server's memory grows
    /// with its data until the cache is full (`haven serve --cache-mib`).
    pub fn open_with_cache(dir: &Path, cache_bytes: Option<usize>) -> Result<EmbeddedStorage, StorageError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let mut builder = redb::Builder::new();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        let path = dir.join("haven-server.redb");
        if path.exists() {
            check_format(&path)?;
        }
        let db = builder.create(&path).map_err(backend)?;
        // Checked again: a store not closed cleanly is readable only now,
        // repaired. A new store, or an older one, gets this build's format.
        let txn = db.begin_write().map_err(backend)?;
        let found = txn.open_table(META).map_err(backend)?.get("format").map_err(backend)?.map(|g| g.value());
        match found {
            Some(found) if found > STORE_FORMAT => {
                return Err(StorageError::FormatTooNew { found, supported: STORE_FORMAT })
            }
            Some(STORE_FORMAT) => txn.abort().map_err(backend)?,
            _ => {
                txn.open_table(META).map_err(backend)?.insert("format", STORE_FORMAT).map_err(backend)?;
                txn.commit().map_err(backend)?;
            }
        }
        Ok(EmbeddedStorage { db })
    }
}

/// Refuses, without writing it, a store a newer build wrote. (A store not
/// closed cleanly cannot be read before its repair: the open repairs it
/// and checks again.)
fn check_format(path: &Path) -> Result<(), StorageError> {
    let db = match redb::Builder::new().open_read_only(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::RepairAborted) => return Ok(()),
        Err(e) => return Err(backend(e)),
    };
    let txn = db.begin_read().map_err(backend)?;
    let found = match txn.open_table(META) {
        Ok(t) => t.get("format").map_err(backend)?.map_or(1, |g| g.value()),
        Err(TableError::TableDoesNotExist(_)) => 1,
        Err(e) => return Err(backend(e)),
    };
    match found <= STORE_FORMAT {
        true => Ok(()),
        false => Err(StorageError::FormatTooNew { found, supported: STORE_FORMAT }),
    }
}

impl EmbeddedStorage {
    /// Changes a partition's settings, and whatever else `f` writes, in
    /// one transaction.
    fn update_settings<R>(
        &self,
        partition: &str,
        f: impl FnOnce(&redb::WriteTransaction, &mut PartitionSettings) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let result = {
            let mut table = txn.open_table(PARTITION_SETTINGS).map_err(backend)?;
            let mut settings = settings_in(&table, partition)?;
            let result = f(&txn, &mut settings)?;
            table.insert(partition, encode(&settings)?.as_slice()).map_err(backend)?;
            result
        };
        txn.commit().map_err(backend)?;
        Ok(result)
    }
}

/// A partition's settings in `table`, the defaults if it has none.
fn settings_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    partition: &str,
) -> Result<PartitionSettings, StorageError> {
    Ok(table.get(partition).map_err(backend)?.map(|g| decode(g.value())).transpose()?.unwrap_or_default())
}

/// A version's salt, if stored.
fn salt_in(txn: &redb::ReadTransaction, partition: &str, version: u64) -> Result<Option<u64>, StorageError> {
    match txn.open_table(VERSION_SALTS) {
        Ok(t) => Ok(t.get((partition, version)).map_err(backend)?.map(|g| g.value())),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(backend(e)),
    }
}

/// A redb error, by what the caller must do about it.
fn backend(e: impl Into<redb::Error>) -> StorageError {
    match e.into() {
        redb::Error::Io(e) => StorageError::Io(e),
        redb::Error::Corrupted(what) => StorageError::Corrupt(what),
        e => StorageError::Backend(e.to_string()),
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|e| StorageError::Backend(format!("cannot encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageError::Corrupt(format!("a record: {e}")))
}

fn encode_state(pk: &Value, state: &ObjectState) -> Result<Vec<u8>, StorageError> {
    SnapshotObject::encode_state(pk, state).map_err(|e| StorageError::Backend(e.to_string()))
}

/// A partition's objects in the embedded store, for [`upload::merge`].
struct ObjectsTable<'t, 'txn> {
    table: &'t mut redb::Table<'txn, (&'static str, &'static str, &'static [u8]), &'static [u8]>,
    partition: &'t str,
}

impl upload::Objects for ObjectsTable<'_, '_> {
    fn get(&mut self, object_type: &str, key: &[u8]) -> Result<Option<ObjectState>, StorageError> {
        match self.table.get((self.partition, object_type, key)).map_err(backend)? {
            Some(g) => {
                Ok(Some(SnapshotObject::decode_state(g.value()).map_err(|e| StorageError::Corrupt(e.to_string()))?.1))
            }
            None => Ok(None),
        }
    }

    fn put(
        &mut self,
        object_type: &str,
        key: &[u8],
        pk: &Value,
        state: Option<&ObjectState>,
        _version: u64,
    ) -> Result<(), StorageError> {
        let object_key = (self.partition, object_type, key);
        match state {
            Some(state) => self.table.insert(object_key, encode_state(pk, state)?.as_slice()).map_err(backend)?,
            None => self.table.remove(object_key).map_err(backend)?,
        };
        Ok(())
    }
}

impl Storage for EmbeddedStorage {
    fn register_client(&self, partition: &str) -> Result<FileIdent, StorageError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let ident = {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let ident = meta.get("next_ident").map_err(backend)?.map_or(1, |g| g.value());
            meta.insert("next_ident", ident + 1).map_err(backend)?;
            let ident = FileIdent { ident, salt: new_salt() };
            let record = ClientRecord { ident, partition: partition.to_owned(), uploaded_through: 0 };
            txn.open_table(CLIENTS)
                .map_err(backend)?
                .insert(ident.ident, encode(&record)?.as_slice())
                .map_err(backend)?;
            ident
        };
        txn.commit().map_err(backend)?;
        Ok(ident)
    }

    fn client(&self, ident: FileIdent) -> Result<ClientRecord, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let record: ClientRecord = match txn.open_table(CLIENTS) {
            Ok(t) => match t.get(ident.ident).map_err(backend)? {
                Some(g) => decode(g.value())?,
                None => return Err(StorageError::UnknownClient(ident.ident)),
            },
            Err(TableError::TableDoesNotExist(_)) => return Err(StorageError::UnknownClient(ident.ident)),
            Err(e) => return Err(backend(e)),
        };
        record.matching(ident)
    }

    fn integrate(
        &self,
        client: FileIdent,
        changesets: &[Changeset],
        seen: u64,
        now_millis: u64,
    ) -> Result<Integration, StorageError> {
        let txn = self.db.begin_write().map_err(backend)?;
        // Read inside the write transaction: two connections of one client
        // cannot both integrate the same changeset.
        let mut record = match txn.open_table(CLIENTS).map_err(backend)?.get(client.ident).map_err(backend)? {
            Some(g) => decode::<ClientRecord>(g.value())?.matching(client)?,
            None => return Err(StorageError::UnknownClient(client.ident)),
        };
        if txn.open_table(RESETS).map_err(backend)?.get(client.ident).map_err(backend)?.is_some() {
            return Err(StorageError::ResetPending(client.ident));
        }
        let result = {
            let partition = record.partition.as_str();
            let mut partitions = txn.open_table(PARTITIONS).map_err(backend)?;
            let mut history = txn.open_table(HISTORY).map_err(backend)?;
            let mut objects = txn.open_table(OBJECTS).map_err(backend)?;
            let version = partitions.get(partition).map_err(backend)?.map_or(0, |g| g.value());
            let mut table = ObjectsTable { table: &mut objects, partition };
            let merged =
                upload::merge(client, record.uploaded_through, version, changesets, seen, now_millis, &mut table)?;
            let mut salts = txn.open_table(VERSION_SALTS).map_err(backend)?;
            for (version, stored) in &merged.history {
                history.insert((partition, *version), encode(stored)?.as_slice()).map_err(backend)?;
                salts.insert((partition, *version), new_salt()).map_err(backend)?;
            }
            if let Some((latest, _)) = merged.history.last() {
                partitions.insert(partition, *latest).map_err(backend)?;
            }
            record.uploaded_through = merged.integration.uploaded_through;
            txn.open_table(CLIENTS)
                .map_err(backend)?
                .insert(client.ident, encode(&record)?.as_slice())
                .map_err(backend)?;
            merged.integration
        };
        txn.commit().map_err(backend)?;
        Ok(result)
    }

    fn schema(&self) -> Result<Option<String>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        match txn.open_table(SETTINGS) {
            Ok(t) => Ok(t.get("schema").map_err(backend)?.map(|g| g.value().to_owned())),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    fn set_schema(&self, json: &str) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(backend)?;
        txn.open_table(SETTINGS).map_err(backend)?.insert("schema", json).map_err(backend)?;
        txn.commit().map_err(backend)
    }

    fn mark_reset(&self, target: &ResetTarget, reason: ResetReason) -> Result<Vec<u64>, StorageError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let marked = {
            let clients = txn.open_table(CLIENTS).map_err(backend)?;
            let idents: Vec<u64> = match target {
                ResetTarget::Client(ident) => match clients.get(*ident).map_err(backend)? {
                    Some(_) => vec![*ident],
                    None => return Err(StorageError::UnknownClient(*ident)),
                },
                ResetTarget::Partition(partition) => {
                    let mut idents = vec![];
                    for row in clients.iter().map_err(backend)? {
                        let (k, v) = row.map_err(backend)?;
                        if decode::<ClientRecord>(v.value())?.partition == *partition {
                            idents.push(k.value());
                        }
                    }
                    idents
                }
                ResetTarget::All => clients
                    .iter()
                    .map_err(backend)?
                    .map(|row| row.map(|(k, _)| k.value()).map_err(backend))
                    .collect::<Result<_, _>>()?,
            };
            let mut resets = txn.open_table(RESETS).map_err(backend)?;
            for ident in &idents {
                resets.insert(*ident, encode(&reason)?.as_slice()).map_err(backend)?;
            }
            idents
        };
        txn.commit().map_err(backend)?;
        Ok(marked)
    }

    fn pending_reset(&self, ident: u64) -> Result<Option<ResetReason>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        match txn.open_table(RESETS) {
            Ok(t) => t.get(ident).map_err(backend)?.map(|g| decode(g.value())).transpose(),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    fn partitions(&self) -> Result<Vec<(String, u64)>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = match txn.open_table(PARTITIONS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(backend(e)),
        };
        let rows = table.iter().map_err(backend)?;
        rows.map(|row| row.map(|(k, v)| (k.value().to_owned(), v.value())).map_err(backend)).collect()
    }

    fn partition_settings(&self, partition: &str) -> Result<PartitionSettings, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        match txn.open_table(PARTITION_SETTINGS) {
            Ok(t) => settings_in(&t, partition),
            Err(TableError::TableDoesNotExist(_)) => Ok(PartitionSettings::default()),
            Err(e) => Err(backend(e)),
        }
    }

    fn trim(&self, partition: &str, to: TrimPoint) -> Result<u64, StorageError> {
        self.update_settings(partition, |txn, settings| {
            let latest =
                txn.open_table(PARTITIONS).map_err(backend)?.get(partition).map_err(backend)?.map_or(0, |g| g.value());
            let through = to.through(latest, settings.trimmed_through);
            let mut history = txn.open_table(HISTORY).map_err(backend)?;
            let doomed: Vec<u64> = history
                .range((partition, 0)..=(partition, through))
                .map_err(backend)?
                .map(|row| row.map(|(k, _)| k.value().1).map_err(backend))
                .collect::<Result<_, _>>()?;
            for version in doomed {
                history.remove((partition, version)).map_err(backend)?;
            }
            // The salt of `through` stays: a client there continues.
            let mut salts = txn.open_table(VERSION_SALTS).map_err(backend)?;
            salts.retain_in((partition, 0)..(partition, through), |_, _| false).map_err(backend)?;
            settings.trimmed_through = through;
            Ok(through)
        })
    }

    fn set_recovery_allowed(&self, partition: &str, allowed: bool) -> Result<(), StorageError> {
        self.update_settings(partition, |_, settings| {
            settings.recovery_allowed = allowed;
            Ok(())
        })
    }

    fn client_seen(
        &self,
        partition: &str,
        ident: u64,
        server_version: u64,
        now_millis: u64,
    ) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(backend)?;
        txn.open_table(SEEN)
            .map_err(backend)?
            .insert((partition, ident), (now_millis, server_version))
            .map_err(backend)?;
        txn.commit().map_err(backend)
    }

    fn last_seen(&self, partition: &str, ident: u64) -> Result<Option<u64>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        match txn.open_table(SEEN) {
            Ok(t) => Ok(t.get((partition, ident)).map_err(backend)?.map(|g| g.value().0)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    fn oldest_needed(&self, partition: &str, since_millis: u64) -> Result<Option<u64>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = match txn.open_table(SEEN) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let mut oldest = None;
        for row in table.range((partition, 0)..=(partition, u64::MAX)).map_err(backend)? {
            let (seen, version) = row.map_err(backend)?.1.value();
            if seen >= since_millis {
                oldest = Some(oldest.map_or(version, |o: u64| o.min(version)));
            }
        }
        Ok(oldest)
    }

    fn version(&self, partition: &str) -> Result<u64, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        match txn.open_table(PARTITIONS) {
            Ok(t) => Ok(t.get(partition).map_err(backend)?.map_or(0, |g| g.value())),
            Err(TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(backend(e)),
        }
    }

    fn history_encoded(&self, partition: &str, after: u64, limit: usize) -> Result<Vec<StoredChangeset>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = match txn.open_table(HISTORY) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(backend(e)),
        };
        let salts = match txn.open_table(VERSION_SALTS) {
            Ok(t) => Some(t),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(backend(e)),
        };
        let mut out = vec![];
        for row in
            table.range((partition, after.saturating_add(1))..=(partition, u64::MAX)).map_err(backend)?.take(limit)
        {
            let (k, v) = row.map_err(backend)?;
            let version = k.value().1;
            let salt = match &salts {
                Some(t) => t.get((partition, version)).map_err(backend)?.map_or(0, |g| g.value()),
                None => 0,
            };
            out.push(StoredChangeset { version, salt, changeset: v.value().to_vec() });
        }
        Ok(out)
    }

    fn version_salt(&self, partition: &str, version: u64) -> Result<Option<u64>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let salt = salt_in(&txn, partition, version)?;
        if salt.is_some() {
            return Ok(salt);
        }
        // A version stored before salts: known while its history is.
        let history = match txn.open_table(HISTORY) {
            Ok(t) => t.get((partition, version)).map_err(backend)?.is_some(),
            Err(TableError::TableDoesNotExist(_)) => false,
            Err(e) => return Err(backend(e)),
        };
        Ok(history.then_some(0))
    }

    fn snapshot(
        &self,
        partition: &str,
        client: u64,
        batch_bytes: usize,
        visit: &mut dyn FnMut(Vec<SnapshotObject>) -> Result<(), StorageError>,
    ) -> Result<SnapshotEnd, StorageError> {
        // One read transaction: the version, the acknowledgement and the objects agree.
        let txn = self.db.begin_read().map_err(backend)?;
        let version = match txn.open_table(PARTITIONS) {
            Ok(t) => t.get(partition).map_err(backend)?.map_or(0, |g| g.value()),
            Err(TableError::TableDoesNotExist(_)) => return Ok(SnapshotEnd::default()),
            Err(e) => return Err(backend(e)),
        };
        let uploaded_through = match txn.open_table(CLIENTS) {
            Ok(t) => match t.get(client).map_err(backend)? {
                Some(g) => decode::<ClientRecord>(g.value())?.uploaded_through,
                None => 0,
            },
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(backend(e)),
        };
        let table = txn.open_table(OBJECTS).map_err(backend)?;
        let mut batches = SnapshotBatches::new(batch_bytes);
        for row in table.range((partition, "", &[][..])..).map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            let (part, ty, pk_key) = k.value();
            if part != partition {
                break;
            }
            // Stored in the snapshot's encoding: sent as is.
            let object = SnapshotObject { object_type: ty.to_owned(), key: pk_key.to_vec(), state: v.value().to_vec() };
            batches.push(object, visit)?;
        }
        batches.finish(visit)?;
        let salt = salt_in(&txn, partition, version)?.unwrap_or(0);
        Ok(SnapshotEnd { version, salt, uploaded_through })
    }
}
