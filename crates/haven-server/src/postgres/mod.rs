//! PostgreSQL storage (`docs/postgres.md`): several `haven
//! serve` processes share one database. Each partition's order is decided
//! under a row lock on the partition; new versions are announced with
//! `NOTIFY` (a hint: listeners re-read by version); every object's current
//! state is a row with a JSONB document that other services can query.
//!
//! The [`Storage`] trait is synchronous (the server calls it on tokio's
//! blocking pool); this backend runs tokio-postgres on a small runtime of
//! its own and waits for each call.

use crate::storage::{
    new_salt, ClientRecord, Integration, PartitionSettings, ResetTarget, SnapshotEnd, Storage, StorageError,
    StorageHint, StoredChangeset, TrimPoint,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use haven_core::merge::{Changeset, ObjectState};
use haven_sync::protocol::{FileIdent, ResetReason, SnapshotObject};
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::NoTls;

mod hints;
mod integrate;
mod migrations;
mod scratch;
mod snapshot;

use scratch::ScratchSchema;

/// How long a call waits for a pooled connection, or to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Partitions in a PostgreSQL database, shared by any number of servers.
pub struct PostgresStorage {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    hints: broadcast::Sender<StorageHint>,
    /// A test's own schema, dropped with the storage.
    scratch: Option<ScratchSchema>,
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user@host:port/db`), creating or
    /// migrating Haven's tables (safe from several processes at once), and
    /// starts listening for versions other servers integrate.
    pub fn connect(url: &str) -> Result<PostgresStorage, StorageError> {
        PostgresStorage::connect_in_schema(url, None)
    }

    /// [`PostgresStorage::connect`], with Haven's tables in the PostgreSQL
    /// schema `schema` (created if needed): several servers, or tests,
    /// can keep apart in one database.
    pub fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<PostgresStorage, StorageError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StorageError::Misuse(format!("bad PostgreSQL URL: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            // So that an operator (or a test) can tell in pg_stat_activity
            // which server process holds a connection or a lock.
            config.application_name(format!("haven-server pid {}", std::process::id()));
        }
        if let Some(schema) = schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
                return Err(StorageError::Misuse(format!("bad schema name '{schema}': use letters, digits, _")));
            }
            config.options(format!("-c search_path={schema}"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("haven-postgres")
            .enable_all()
            .build()
            .map_err(StorageError::Io)?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(failed)?;
        let (hints, _) = broadcast::channel(1024);
        let storage = PostgresStorage { pool, runtime: Some(runtime), hints, scratch: None };
        let schema = schema.map(str::to_owned);
        let pool = storage.pool.clone();
        storage.run(async move { migrations::migrate(&pool, schema.as_deref()).await })?;
        storage.runtime().spawn(hints::listen(config, storage.hints.clone()));
        Ok(storage)
    }

    /// [`PostgresStorage::connect`], in a new schema of its own that is
    /// dropped with the storage: for tests and benchmarks.
    pub fn connect_scratch(url: &str) -> Result<PostgresStorage, StorageError> {
        let scratch = ScratchSchema::new(url)?;
        let mut storage = PostgresStorage::connect_in_schema(url, Some(scratch.name()))?;
        storage.scratch = Some(scratch);
        Ok(storage)
    }

    /// The scratch schema of [`PostgresStorage::connect_scratch`], if this is one.
    pub fn scratch_schema(&self) -> Option<&str> {
        self.scratch.as_ref().map(ScratchSchema::name)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("set until dropped")
    }

    /// Runs `f` on this storage's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| StorageError::Backend("the PostgreSQL task stopped".into()))?
    }

    /// A pooled connection, in a call.
    fn with_client<T: Send + 'static, F>(&self, f: F) -> Result<T, StorageError>
    where
        F: for<'c> FnOnce(&'c mut deadpool_postgres::Object) -> BoxFuture<'c, Result<T, StorageError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        self.run(async move {
            let mut client = pool.get().await.map_err(unavailable)?;
            f(&mut client).await
        })
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // May be dropped inside another runtime: do not block on it.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        // Then `scratch`, if any, drops its schema.
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A statement's error, by what the caller must do about it: a lost
/// connection, a server shutting down or failing over, a conflict with
/// another transaction, a timeout or a lack of resources is worth a retry;
/// a wrong password or database is the operator's to fix.
pub(super) fn backend(e: tokio_postgres::Error) -> StorageError {
    let code = e.as_db_error().map(|db| db.code().code().to_owned());
    let class = |prefixes: &[&str]| code.as_deref().is_some_and(|c| prefixes.iter().any(|p| c.starts_with(p)));
    if class(&["28", "3D000"]) {
        return StorageError::Misuse(format!("PostgreSQL: {e}"));
    }
    let retry = e.is_closed()
        || class(&["08", "57P", "40", "53", "57014", "25006"])
        || std::error::Error::source(&e).is_some_and(|source| source.is::<std::io::Error>());
    match retry {
        true => StorageError::Unavailable(format!("PostgreSQL: {e}")),
        false => StorageError::Backend(format!("PostgreSQL: {e}")),
    }
}

/// A failure of this backend's own making (encoding, a task that stopped).
pub(super) fn failed(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

/// No pooled connection: PostgreSQL is unreachable (retry), or refused
/// the connection for a reason `backend` tells.
pub(super) fn unavailable(e: deadpool_postgres::PoolError) -> StorageError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => backend(e),
        e => StorageError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(failed)
}

/// The readable form of an object: its fields as a JSON object (`None`
/// for a deleted one, whose tombstone stays for the merge rule).
pub(super) fn document(state: &ObjectState) -> Option<serde_json::Value> {
    match state {
        ObjectState::Live { fields, .. } => {
            Some(fields.iter().map(|(name, f)| (name.clone(), f.value.to_json())).collect())
        }
        ObjectState::Deleted { .. } => None,
    }
}

fn reason_text(reason: ResetReason) -> Result<String, StorageError> {
    serde_json::to_string(&reason).map_err(failed)
}

pub(super) fn client_record(row: &tokio_postgres::Row) -> ClientRecord {
    ClientRecord {
        ident: FileIdent { ident: row.get::<_, i64>("ident") as u64, salt: row.get::<_, i64>("salt") as u64 },
        partition: row.get("partition"),
        uploaded_through: row.get::<_, i64>("uploaded_through") as u64,
    }
}

impl Storage for PostgresStorage {
    fn register_client(&self, partition: &str) -> Result<FileIdent, StorageError> {
        let partition = partition.to_owned();
        let salt = new_salt();
        self.with_client(move |c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "INSERT INTO haven_clients (ident, salt, partition) VALUES (nextval('haven_client_idents'), $1, $2) RETURNING ident",
                        &[&(salt as i64), &partition],
                    )
                    .await
                    .map_err(backend)?;
                Ok(FileIdent { ident: row.get::<_, i64>(0) as u64, salt })
            })
        })
    }

    fn client(&self, ident: FileIdent) -> Result<ClientRecord, StorageError> {
        self.with_client(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT * FROM haven_clients WHERE ident = $1", &[&(ident.ident as i64)])
                    .await
                    .map_err(backend)?
                    .ok_or(StorageError::UnknownClient(ident.ident))?;
                client_record(&row).matching(ident)
            })
        })
    }

    fn integrate(
        &self,
        client: FileIdent,
        changesets: &[Changeset],
        seen: u64,
        now_millis: u64,
    ) -> Result<Integration, StorageError> {
        let changesets = changesets.to_vec();
        self.with_client(move |c| Box::pin(integrate::integrate(c, client, changesets, seen, now_millis)))
    }

    fn schema(&self) -> Result<Option<String>, StorageError> {
        self.with_client(|c| {
            Box::pin(async move {
                let row = c.query_opt("SELECT value FROM haven_settings WHERE key = 'schema'", &[]).await;
                Ok(row.map_err(backend)?.map(|r| r.get(0)))
            })
        })
    }

    fn set_schema(&self, json: &str) -> Result<(), StorageError> {
        let json = json.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO haven_settings (key, value) VALUES ('schema', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&json],
                )
                .await
                .map_err(backend)?;
                Ok(())
            })
        })
    }

    fn mark_reset(&self, target: &ResetTarget, reason: ResetReason) -> Result<Vec<u64>, StorageError> {
        let (target, reason) = (target.clone(), reason_text(reason)?);
        self.with_client(move |c| {
            Box::pin(async move {
                let upsert = "ON CONFLICT (ident) DO UPDATE SET reason = EXCLUDED.reason RETURNING ident";
                let rows = match &target {
                    ResetTarget::Client(ident) => {
                        let sql = format!(
                            "INSERT INTO haven_resets SELECT ident, $2 FROM haven_clients WHERE ident = $1 FOR UPDATE {upsert}"
                        );
                        let rows = c.query(&sql, &[&(*ident as i64), &reason]).await.map_err(backend)?;
                        if rows.is_empty() {
                            return Err(StorageError::UnknownClient(*ident));
                        }
                        rows
                    }
                    ResetTarget::Partition(partition) => {
                        let sql = format!(
                            "INSERT INTO haven_resets SELECT ident, $2 FROM haven_clients WHERE partition = $1 FOR UPDATE {upsert}"
                        );
                        c.query(&sql, &[partition, &reason]).await.map_err(backend)?
                    }
                    ResetTarget::All => {
                        let sql =
                            format!("INSERT INTO haven_resets SELECT ident, $1 FROM haven_clients FOR UPDATE {upsert}");
                        c.query(&sql, &[&reason]).await.map_err(backend)?
                    }
                };
                let mut idents: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect();
                idents.sort_unstable();
                // Other servers kick these clients' sessions (payloads stay
                // well under PostgreSQL's 8,000 bytes).
                for chunk in idents.chunks(500) {
                    let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
                    c.execute("SELECT pg_notify($1, $2)", &[&hints::CHANNEL, &format!("reset {}", list.join(","))])
                        .await
                        .map_err(backend)?;
                }
                Ok(idents)
            })
        })
    }

    fn pending_reset(&self, ident: u64) -> Result<Option<ResetReason>, StorageError> {
        self.with_client(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT reason FROM haven_resets WHERE ident = $1", &[&(ident as i64)])
                    .await
                    .map_err(backend)?;
                row.map(|r| serde_json::from_str(r.get(0)).map_err(|e| StorageError::Corrupt(format!("a reset: {e}"))))
                    .transpose()
            })
        })
    }

    fn partitions(&self) -> Result<Vec<(String, u64)>, StorageError> {
        self.with_client(|c| {
            Box::pin(async move {
                let rows = c
                    .query("SELECT partition, version FROM haven_partitions WHERE version > 0 ORDER BY partition", &[])
                    .await
                    .map_err(backend)?;
                Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
            })
        })
    }

    fn partition_settings(&self, partition: &str) -> Result<PartitionSettings, StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT trimmed_through, recovery_allowed FROM haven_partitions WHERE partition = $1",
                        &[&partition],
                    )
                    .await
                    .map_err(backend)?;
                Ok(row.map_or_else(PartitionSettings::default, |r| PartitionSettings {
                    trimmed_through: r.get::<_, i64>(0) as u64,
                    recovery_allowed: r.get(1),
                }))
            })
        })
    }

    fn trim(&self, partition: &str, to: TrimPoint) -> Result<u64, StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                let txn = c.transaction().await.map_err(backend)?;
                txn.execute(
                    "INSERT INTO haven_partitions (partition) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&partition],
                )
                .await
                .map_err(backend)?;
                let row = txn
                    .query_one(
                        "SELECT version, trimmed_through FROM haven_partitions WHERE partition = $1 FOR UPDATE",
                        &[&partition],
                    )
                    .await
                    .map_err(backend)?;
                let (latest, trimmed) = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
                let through = to.through(latest, trimmed);
                txn.execute(
                    "DELETE FROM haven_history WHERE partition = $1 AND version <= $2",
                    &[&partition, &(through as i64)],
                )
                .await
                .map_err(backend)?;
                // The salt of `through` stays: a client there continues.
                txn.execute(
                    "DELETE FROM haven_version_salts WHERE partition = $1 AND version < $2",
                    &[&partition, &(through as i64)],
                )
                .await
                .map_err(backend)?;
                txn.execute(
                    "UPDATE haven_partitions SET trimmed_through = $2 WHERE partition = $1",
                    &[&partition, &(through as i64)],
                )
                .await
                .map_err(backend)?;
                txn.commit().await.map_err(backend)?;
                Ok(through)
            })
        })
    }

    fn set_recovery_allowed(&self, partition: &str, allowed: bool) -> Result<(), StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO haven_partitions (partition, recovery_allowed) VALUES ($1, $2) ON CONFLICT (partition) DO UPDATE SET recovery_allowed = EXCLUDED.recovery_allowed",
                    &[&partition, &allowed],
                )
                .await
                .map_err(backend)?;
                Ok(())
            })
        })
    }

    fn client_seen(
        &self,
        partition: &str,
        ident: u64,
        server_version: u64,
        now_millis: u64,
    ) -> Result<(), StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO haven_seen VALUES ($1, $2, $3, $4) ON CONFLICT (partition, ident) DO UPDATE SET seen_millis = EXCLUDED.seen_millis, version = EXCLUDED.version",
                    &[&partition, &(ident as i64), &(now_millis as i64), &(server_version as i64)],
                )
                .await
                .map_err(backend)?;
                Ok(())
            })
        })
    }

    fn last_seen(&self, partition: &str, ident: u64) -> Result<Option<u64>, StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT seen_millis FROM haven_seen WHERE partition = $1 AND ident = $2",
                        &[&partition, &(ident as i64)],
                    )
                    .await
                    .map_err(backend)?;
                Ok(row.map(|r| r.get::<_, i64>(0) as u64))
            })
        })
    }

    fn oldest_needed(&self, partition: &str, since_millis: u64) -> Result<Option<u64>, StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "SELECT min(version) FROM haven_seen WHERE partition = $1 AND seen_millis >= $2",
                        &[&partition, &(since_millis as i64)],
                    )
                    .await
                    .map_err(backend)?;
                Ok(row.get::<_, Option<i64>>(0).map(|v| v as u64))
            })
        })
    }

    fn version(&self, partition: &str) -> Result<u64, StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT version FROM haven_partitions WHERE partition = $1", &[&partition])
                    .await
                    .map_err(backend)?;
                Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
            })
        })
    }

    fn history_encoded(&self, partition: &str, after: u64, limit: usize) -> Result<Vec<StoredChangeset>, StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT h.version, coalesce(s.salt, 0), h.changeset FROM haven_history h \
                         LEFT JOIN haven_version_salts s USING (partition, version) \
                         WHERE h.partition = $1 AND h.version > $2 ORDER BY h.version LIMIT $3",
                        &[&partition, &(after.min(i64::MAX as u64) as i64), &(limit.min(i64::MAX as usize) as i64)],
                    )
                    .await
                    .map_err(backend)?;
                Ok(rows
                    .iter()
                    .map(|r| StoredChangeset {
                        version: r.get::<_, i64>(0) as u64,
                        salt: r.get::<_, i64>(1) as u64,
                        changeset: r.get(2),
                    })
                    .collect())
            })
        })
    }

    fn version_salt(&self, partition: &str, version: u64) -> Result<Option<u64>, StorageError> {
        let partition = partition.to_owned();
        self.with_client(move |c| {
            Box::pin(async move {
                // A version stored before salts reads as 0 while its history is kept.
                let row = c
                    .query_opt(
                        "SELECT coalesce((SELECT salt FROM haven_version_salts WHERE partition = $1 AND version = $2), \
                         (SELECT 0 FROM haven_history WHERE partition = $1 AND version = $2))",
                        &[&partition, &(version.min(i64::MAX as u64) as i64)],
                    )
                    .await
                    .map_err(backend)?;
                Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).map(|salt| salt as u64))
            })
        })
    }

    fn snapshot(
        &self,
        partition: &str,
        client: u64,
        batch_bytes: usize,
        visit: &mut dyn FnMut(Vec<SnapshotObject>) -> Result<(), StorageError>,
    ) -> Result<SnapshotEnd, StorageError> {
        // The reading runs on this storage's runtime; batches come back
        // here for `visit` (which may block), two at most in flight.
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<SnapshotObject>>(2);
        let (partition, pool) = (partition.to_owned(), self.pool.clone());
        let end = self.runtime().spawn(async move {
            let mut client_conn = pool.get().await.map_err(unavailable)?;
            snapshot::snapshot(&mut client_conn, &partition, client, batch_bytes, batches).await
        });
        for batch in received {
            visit(batch)?; // an error drops the receiver: the reading stops
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(end.await);
        });
        rx.recv().map_err(failed)?.map_err(failed)?
    }

    fn hints(&self) -> Option<broadcast::Receiver<StorageHint>> {
        Some(self.hints.subscribe())
    }
}
