//! PostgreSQL storage (DESIGN §7, `docs/postgres.md`): several `haven
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
    StorageHint, StoredChangeset,
};
use crate::upload;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use haven_core::merge::{Changeset, ObjectState};
use haven_sync::protocol::{FileIdent, ResetReason, SnapshotObject};
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::NoTls;

/// The channel `NOTIFY` announces what servers did on: payload
/// `VERSION PARTITION` for a new version, `reset IDENT…` for resets.
const CHANNEL: &str = "haven_versions";
/// Serialises migrations across processes (`pg_advisory_xact_lock`).
const MIGRATION_LOCK: i64 = 0x4841_5645_4e00_0001;
/// How long a call waits for a pooled connection, or to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, in order; each runs once, in one transaction. Never
/// edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE haven_settings (key text PRIMARY KEY, value text NOT NULL);
CREATE SEQUENCE haven_client_idents;
CREATE TABLE haven_clients (
    ident bigint PRIMARY KEY,
    salt bigint NOT NULL,
    partition text NOT NULL,
    uploaded_through bigint NOT NULL DEFAULT 0
);
CREATE INDEX haven_clients_partition ON haven_clients (partition);
CREATE TABLE haven_partitions (
    partition text PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0,
    trimmed_through bigint NOT NULL DEFAULT 0,
    recovery_allowed boolean NOT NULL DEFAULT true
);
CREATE TABLE haven_history (
    partition text NOT NULL,
    version bigint NOT NULL,
    changeset bytea NOT NULL,
    PRIMARY KEY (partition, version)
);
CREATE TABLE haven_objects (
    partition text NOT NULL,
    type text NOT NULL,
    key bytea NOT NULL,
    pk jsonb NOT NULL,
    doc jsonb,
    state bytea NOT NULL,
    server_version bigint NOT NULL,
    PRIMARY KEY (partition, type, key)
);
CREATE TABLE haven_resets (ident bigint PRIMARY KEY, reason text NOT NULL);
CREATE TABLE haven_seen (
    partition text NOT NULL,
    ident bigint NOT NULL,
    seen_millis bigint NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (partition, ident)
);
"#,
    // 2: a random salt per version, so that a restored database's version
    // N is told apart from the N a device got before the restore. Versions
    // from before have none (they read as 0, as the devices hold them).
    r#"
CREATE TABLE haven_version_salts (
    partition text NOT NULL,
    version bigint NOT NULL,
    salt bigint NOT NULL,
    PRIMARY KEY (partition, version)
);
"#,
];

/// Partitions in a PostgreSQL database, shared by any number of servers.
pub struct PostgresStorage {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    hints: broadcast::Sender<StorageHint>,
    /// A test's own schema, dropped with the storage.
    scratch: Option<(tokio_postgres::Config, String)>,
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
            url.parse().map_err(|e| StorageError::Backend(format!("bad PostgreSQL URL: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            // So that an operator (or a test) can tell in pg_stat_activity
            // which server process holds a connection or a lock.
            config.application_name(format!("haven-server pid {}", std::process::id()));
        }
        if let Some(schema) = schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
                return Err(StorageError::Backend(format!("bad schema name '{schema}': use letters, digits, _")));
            }
            config.options(format!("-c search_path={schema}"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("haven-postgres")
            .enable_all()
            .build()
            .map_err(backend)?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(backend)?;
        let (hints, _) = broadcast::channel(1024);
        let storage = PostgresStorage { pool, runtime: Some(runtime), hints, scratch: None };
        let schema = schema.map(str::to_owned);
        let pool = storage.pool.clone();
        storage.run(async move { migrate(&pool, schema.as_deref()).await })?;
        storage.runtime().spawn(listen(config, storage.hints.clone()));
        Ok(storage)
    }

    /// [`PostgresStorage::connect`], in a new schema of its own that is
    /// dropped with the storage: for tests and benchmarks.
    pub fn connect_scratch(url: &str) -> Result<PostgresStorage, StorageError> {
        static SCHEMAS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SCHEMAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let schema = format!("haven_scratch_{}_{n}_{nanos}", std::process::id());
        let mut storage = PostgresStorage::connect_in_schema(url, Some(&schema))?;
        let config: tokio_postgres::Config = url.parse().map_err(backend)?;
        storage.scratch = Some((config, schema));
        Ok(storage)
    }

    /// The scratch schema of [`PostgresStorage::connect_scratch`], if this is one.
    pub fn scratch_schema(&self) -> Option<&str> {
        self.scratch.as_ref().map(|(_, schema)| schema.as_str())
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
        if let Some((config, schema)) = self.scratch.take() {
            // On a thread of its own: this may be a runtime's thread.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    let (client, connection) = config.connect(NoTls).await.ok()?;
                    tokio::spawn(connection);
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.ok()
                })
            });
            let _ = dropped.join();
        }
    }
}

/// For tests: the backend `HAVEN_TEST_BACKEND` names, `embedded` (the
/// default, in `dir`) or `postgres` (see [`test_postgres`]; then it must be
/// reachable). Lets one suite run on both.
#[doc(hidden)]
pub fn test_storage(dir: &std::path::Path) -> std::sync::Arc<dyn Storage> {
    match std::env::var("HAVEN_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            std::sync::Arc::new(test_postgres().expect("HAVEN_TEST_BACKEND=postgres needs HAVEN_TEST_POSTGRES_URL"))
        }
        Ok("embedded") | Err(_) => std::sync::Arc::new(crate::EmbeddedStorage::open(dir).expect("embedded storage")),
        Ok(other) => panic!("HAVEN_TEST_BACKEND={other}: use embedded or postgres"),
    }
}

/// Whether the tests run on PostgreSQL (`HAVEN_TEST_BACKEND=postgres`).
#[doc(hidden)]
pub fn testing_postgres() -> bool {
    std::env::var("HAVEN_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// For tests: a storage in a PostgreSQL schema of its own (dropped with
/// it) on the server `HAVEN_TEST_POSTGRES_URL` names, or `None` (with a
/// note on stderr) when it is not set. With `CI=true` it must be set and
/// reachable: a test fails rather than skip.
#[doc(hidden)]
pub fn test_postgres() -> Option<PostgresStorage> {
    let Ok(url) = std::env::var("HAVEN_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "HAVEN_TEST_POSTGRES_URL must be set when CI=true (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        eprintln!("skipping the PostgreSQL backend: HAVEN_TEST_POSTGRES_URL is not set");
        return None;
    };
    Some(PostgresStorage::connect_scratch(&url).unwrap_or_else(|e| panic!("HAVEN_TEST_POSTGRES_URL={url}: {e}")))
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Creates or migrates the tables, one process at a time.
async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<(), StorageError> {
    let mut client = pool.get().await.map_err(unavailable)?;
    let txn = client.transaction().await.map_err(backend)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(backend)?;
    if let Some(schema) = schema {
        txn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await.map_err(backend)?;
    }
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS haven_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(backend)?;
    let done: i32 =
        txn.query_one("SELECT coalesce(max(version), 0) FROM haven_migrations", &[]).await.map_err(backend)?.get(0);
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        txn.batch_execute(sql).await.map_err(backend)?;
        txn.execute("INSERT INTO haven_migrations (version) VALUES ($1)", &[&(n as i32 + 1)]).await.map_err(backend)?;
        tracing::info!(version = n + 1, "PostgreSQL tables migrated");
    }
    txn.commit().await.map_err(backend)
}

/// Listens on a connection of its own for versions other servers
/// integrate, reconnecting when it is lost (a missed notification only
/// delays a client: the server also polls).
async fn listen(config: tokio_postgres::Config, hints: broadcast::Sender<StorageHint>) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listening = async {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                for hint in parse_hint(n.payload()) {
                                    let _ = hints.send(hint);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => return e.to_string(),
                        }
                    }
                    "the connection closed".to_owned()
                };
                let listen = format!("LISTEN {CHANNEL}");
                let subscribe = client.batch_execute(&listen);
                let (lost, _) = tokio::join!(listening, async {
                    if let Err(e) = subscribe.await {
                        tracing::warn!(error = %e, "cannot LISTEN for new versions");
                    }
                });
                tracing::warn!(%lost, "the PostgreSQL notification connection was lost; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect for notifications; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The hints a notification's payload carries.
fn parse_hint(payload: &str) -> Vec<StorageHint> {
    match payload.split_once(' ') {
        Some(("reset", idents)) => {
            idents.split(',').filter_map(|i| i.parse().ok()).map(|ident| StorageHint::Reset { ident }).collect()
        }
        Some((version, partition)) => version
            .parse()
            .map(|version| vec![StorageHint::Version { partition: partition.to_owned(), version }])
            .unwrap_or_default(),
        None => vec![],
    }
}

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

/// PostgreSQL cannot be reached: the server answers `Unavailable`, and
/// clients retry.
fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("PostgreSQL is unavailable: {e}"))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(backend)
}

/// The readable form of an object: its fields as a JSON object (`None`
/// for a deleted one, whose tombstone stays for the merge rule).
fn document(state: &ObjectState) -> Option<serde_json::Value> {
    match state {
        ObjectState::Live { fields, .. } => {
            Some(fields.iter().map(|(name, f)| (name.clone(), f.value.to_json())).collect())
        }
        ObjectState::Deleted { .. } => None,
    }
}

fn reason_text(reason: ResetReason) -> Result<String, StorageError> {
    serde_json::to_string(&reason).map_err(backend)
}

fn client_record(row: &tokio_postgres::Row) -> ClientRecord {
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
        now_millis: u64,
    ) -> Result<Integration, StorageError> {
        let changesets = changesets.to_vec();
        self.with_client(move |c| Box::pin(integrate(c, client, changesets, now_millis)))
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
                            "INSERT INTO haven_resets SELECT ident, $2 FROM haven_clients WHERE ident = $1 {upsert}"
                        );
                        let rows = c.query(&sql, &[&(*ident as i64), &reason]).await.map_err(backend)?;
                        if rows.is_empty() {
                            return Err(StorageError::UnknownClient(*ident));
                        }
                        rows
                    }
                    ResetTarget::Partition(partition) => {
                        let sql = format!(
                            "INSERT INTO haven_resets SELECT ident, $2 FROM haven_clients WHERE partition = $1 {upsert}"
                        );
                        c.query(&sql, &[partition, &reason]).await.map_err(backend)?
                    }
                    ResetTarget::All => {
                        let sql = format!("INSERT INTO haven_resets SELECT ident, $1 FROM haven_clients {upsert}");
                        c.query(&sql, &[&reason]).await.map_err(backend)?
                    }
                };
                let mut idents: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect();
                idents.sort_unstable();
                // Other servers kick these clients' sessions (payloads stay
                // well under PostgreSQL's 8,000 bytes).
                for chunk in idents.chunks(500) {
                    let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
                    c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("reset {}", list.join(","))])
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
                row.map(|r| serde_json::from_str(r.get(0)).map_err(backend)).transpose()
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

    fn compact(&self, partition: &str, keep_versions: u64) -> Result<u64, StorageError> {
        self.trim(partition, move |latest| latest.saturating_sub(keep_versions))
    }

    fn trim_history(&self, partition: &str, through: u64) -> Result<u64, StorageError> {
        self.trim(partition, move |latest| through.min(latest))
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
            snapshot(&mut client_conn, &partition, client, batch_bytes, batches).await
        });
        for batch in received {
            visit(batch)?; // an error drops the receiver: the reading stops
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(end.await);
        });
        rx.recv().map_err(backend)?.map_err(backend)?
    }

    fn hints(&self) -> Option<broadcast::Receiver<StorageHint>> {
        Some(self.hints.subscribe())
    }
}

impl PostgresStorage {
    /// Drops history up to `through_of(latest version)`, read under the
    /// partition's lock (an integration meanwhile cannot move the point).
    fn trim(&self, partition: &str, through_of: impl FnOnce(u64) -> u64 + Send + 'static) -> Result<u64, StorageError> {
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
                let through = through_of(latest).max(trimmed);
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
}

/// The objects an upload touches, read in one query, and what it makes of them.
#[derive(Default)]
struct Prefetched {
    current: std::collections::HashMap<(String, Vec<u8>), ObjectState>,
    /// (type, key) → what the upload left.
    written: std::collections::BTreeMap<(String, Vec<u8>), Written>,
}

/// An object as an upload left it: its primary key, its state (`None`:
/// it does not exist) and the version that changed it.
type Written = (haven_core::Value, Option<ObjectState>, u64);

impl upload::Objects for Prefetched {
    fn get(&mut self, object_type: &str, key: &[u8]) -> Result<Option<ObjectState>, StorageError> {
        let id = (object_type.to_owned(), key.to_vec());
        Ok(match self.written.get(&id) {
            Some((_, state, _)) => state.clone(),
            None => self.current.get(&id).cloned(),
        })
    }

    fn put(
        &mut self,
        object_type: &str,
        key: &[u8],
        pk: &haven_core::Value,
        state: Option<&ObjectState>,
        version: u64,
    ) -> Result<(), StorageError> {
        self.written.insert((object_type.to_owned(), key.to_vec()), (pk.clone(), state.cloned(), version));
        Ok(())
    }
}

/// The rows of objects an upload leaves live, column by column (for `unnest`).
#[derive(Default)]
struct LiveRows {
    types: Vec<String>,
    keys: Vec<Vec<u8>>,
    pks: Vec<serde_json::Value>,
    docs: Vec<Option<serde_json::Value>>,
    states: Vec<Vec<u8>>,
    versions: Vec<i64>,
}

/// Integrates an upload in one transaction: the partition's row lock
/// orders it with every other server's.
async fn integrate(
    c: &mut deadpool_postgres::Object,
    client: FileIdent,
    changesets: Vec<Changeset>,
    now_millis: u64,
) -> Result<Integration, StorageError> {
    let txn = c.transaction().await.map_err(backend)?;
    let row = txn
        .query_opt("SELECT * FROM haven_clients WHERE ident = $1 FOR UPDATE", &[&(client.ident as i64)])
        .await
        .map_err(backend)?
        .ok_or(StorageError::UnknownClient(client.ident))?;
    let record = client_record(&row).matching(client)?;
    let partition = record.partition;
    txn.execute("INSERT INTO haven_partitions (partition) VALUES ($1) ON CONFLICT DO NOTHING", &[&partition])
        .await
        .map_err(backend)?;
    let version: i64 = txn
        .query_one("SELECT version FROM haven_partitions WHERE partition = $1 FOR UPDATE", &[&partition])
        .await
        .map_err(backend)?
        .get(0);
    // The objects the new changesets touch, read (and locked) in one query.
    let (mut types, mut keys) = (Vec::new(), Vec::new());
    for cs in changesets.iter().filter(|cs| cs.client_version > record.uploaded_through) {
        for instruction in &cs.instructions {
            let (ty, pk) = instruction.object();
            types.push(ty.to_owned());
            keys.push(upload::pk_key(pk)?);
        }
    }
    let rows = txn
        .query(
            "SELECT o.type, o.key, o.state FROM haven_objects o JOIN unnest($2::text[], $3::bytea[]) AS t(type, key) \
             ON o.type = t.type AND o.key = t.key WHERE o.partition = $1 FOR UPDATE OF o",
            &[&partition, &types, &keys],
        )
        .await
        .map_err(backend)?;
    let mut objects = Prefetched::default();
    for row in &rows {
        let state: Vec<u8> = row.get(2);
        let (_, state) = SnapshotObject::decode_state(&state).map_err(backend)?;
        objects.current.insert((row.get::<_, String>(0), row.get::<_, Vec<u8>>(1)), state);
    }
    let merged = upload::merge(client, record.uploaded_through, version as u64, &changesets, now_millis, &mut objects)?;
    // Written with one statement each, whatever the upload's size.
    let (mut live, mut gone) = (LiveRows::default(), (Vec::new(), Vec::new()));
    for ((object_type, key), (pk, state, version)) in objects.written {
        match state {
            Some(state) => {
                live.types.push(object_type);
                live.keys.push(key);
                live.pks.push(pk.to_json());
                live.docs.push(document(&state));
                live.states.push(SnapshotObject::encode_state(&pk, &state).map_err(backend)?);
                live.versions.push(version as i64);
            }
            None => {
                gone.0.push(object_type);
                gone.1.push(key);
            }
        }
    }
    if !live.types.is_empty() {
        txn.execute(
            "INSERT INTO haven_objects (partition, type, key, pk, doc, state, server_version) \
             SELECT $1, t.type, t.key, t.pk, t.doc, t.state, t.version \
             FROM unnest($2::text[], $3::bytea[], $4::jsonb[], $5::jsonb[], $6::bytea[], $7::int8[]) \
             AS t(type, key, pk, doc, state, version) \
             ON CONFLICT (partition, type, key) DO UPDATE \
             SET doc = EXCLUDED.doc, state = EXCLUDED.state, server_version = EXCLUDED.server_version",
            &[&partition, &live.types, &live.keys, &live.pks, &live.docs, &live.states, &live.versions],
        )
        .await
        .map_err(backend)?;
    }
    if !gone.0.is_empty() {
        txn.execute(
            "DELETE FROM haven_objects WHERE partition = $1 AND (type, key) IN (SELECT * FROM unnest($2::text[], $3::bytea[]))",
            &[&partition, &gone.0, &gone.1],
        )
        .await
        .map_err(backend)?;
    }
    let versions: Vec<i64> = merged.history.iter().map(|(v, _)| *v as i64).collect();
    let stored: Vec<Vec<u8>> = merged.history.iter().map(|(_, cs)| encode(cs)).collect::<Result<_, _>>()?;
    if !versions.is_empty() {
        txn.execute(
            "INSERT INTO haven_history (partition, version, changeset) SELECT $1, t.v, t.c FROM unnest($2::int8[], $3::bytea[]) AS t(v, c)",
            &[&partition, &versions, &stored],
        )
        .await
        .map_err(backend)?;
        let salts: Vec<i64> = versions.iter().map(|_| new_salt() as i64).collect();
        txn.execute(
            "INSERT INTO haven_version_salts (partition, version, salt) SELECT $1, t.v, t.s FROM unnest($2::int8[], $3::int8[]) AS t(v, s)",
            &[&partition, &versions, &salts],
        )
        .await
        .map_err(backend)?;
    }
    if let Some((latest, _)) = merged.history.last() {
        txn.execute("UPDATE haven_partitions SET version = $2 WHERE partition = $1", &[&partition, &(*latest as i64)])
            .await
            .map_err(backend)?;
        txn.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("{latest} {partition}")])
            .await
            .map_err(backend)?;
    }
    txn.execute(
        "UPDATE haven_clients SET uploaded_through = $2 WHERE ident = $1",
        &[&(client.ident as i64), &(merged.integration.uploaded_through as i64)],
    )
    .await
    .map_err(backend)?;
    txn.commit().await.map_err(backend)?;
    Ok(merged.integration)
}

/// Rows a snapshot reads from its portal at a time.
const SNAPSHOT_PAGE: i32 = 5_000;

/// Streams a partition's objects in batches, from one consistent view.
async fn snapshot(
    c: &mut deadpool_postgres::Object,
    partition: &str,
    client: u64,
    batch_bytes: usize,
    batches: std::sync::mpsc::SyncSender<Vec<SnapshotObject>>,
) -> Result<SnapshotEnd, StorageError> {
    let txn = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(backend)?;
    let version = txn
        .query_opt("SELECT version FROM haven_partitions WHERE partition = $1", &[&partition])
        .await
        .map_err(backend)?
        .map_or(0, |r| r.get::<_, i64>(0) as u64);
    let salt = txn
        .query_opt(
            "SELECT salt FROM haven_version_salts WHERE partition = $1 AND version = $2",
            &[&partition, &(version as i64)],
        )
        .await
        .map_err(backend)?
        .map_or(0, |r| r.get::<_, i64>(0) as u64);
    let uploaded_through = txn
        .query_opt("SELECT uploaded_through FROM haven_clients WHERE ident = $1", &[&(client as i64)])
        .await
        .map_err(backend)?
        .map_or(0, |r| r.get::<_, i64>(0) as u64);
    // One query, read through a portal (a cursor) in pages: memory stays
    // bounded and the whole snapshot is one view of the partition. In key
    // order, as the device's file stores them: unordered inserts leave its
    // B-tree pages half full (a file about twice the size).
    let statement = txn
        .prepare("SELECT type, key, state FROM haven_objects WHERE partition = $1 ORDER BY type, key")
        .await
        .map_err(backend)?;
    let portal = txn.bind(&statement, &[&partition]).await.map_err(backend)?;
    let (mut pending, mut bytes) = (Vec::new(), 0);
    loop {
        let rows = txn.query_portal(&portal, SNAPSHOT_PAGE).await.map_err(backend)?;
        let done = rows.len() < SNAPSHOT_PAGE as usize;
        for row in rows {
            let (object_type, key, state): (String, Vec<u8>, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
            let size = state.len() + key.len() + object_type.len();
            if bytes + size > batch_bytes && !pending.is_empty() {
                send(&batches, std::mem::take(&mut pending))?;
                bytes = 0;
            }
            bytes += size;
            pending.push(SnapshotObject { object_type, key, state });
            if bytes >= batch_bytes {
                send(&batches, std::mem::take(&mut pending))?;
                bytes = 0;
            }
        }
        if done {
            break;
        }
    }
    if !pending.is_empty() {
        send(&batches, pending)?;
    }
    txn.commit().await.map_err(backend)?;
    Ok(SnapshotEnd { version, salt, uploaded_through })
}

/// Hands a batch to the caller (blocking this task's thread while the
/// caller is busy: the runtime has a second worker).
fn send(
    batches: &std::sync::mpsc::SyncSender<Vec<SnapshotObject>>,
    batch: Vec<SnapshotObject>,
) -> Result<(), StorageError> {
    tokio::task::block_in_place(|| batches.send(batch))
        .map_err(|_| StorageError::Backend("the snapshot's reader went away".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads() {
        let version = |partition: &str, version| StorageHint::Version { partition: partition.into(), version };
        assert_eq!(parse_hint("12 my partition"), vec![version("my partition", 12)]);
        assert_eq!(parse_hint("reset 3,4"), vec![StorageHint::Reset { ident: 3 }, StorageHint::Reset { ident: 4 }]);
        assert!(parse_hint("garbage").is_empty() && parse_hint("x p").is_empty());
    }
}
