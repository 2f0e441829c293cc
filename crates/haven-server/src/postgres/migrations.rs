//! Haven's tables in PostgreSQL, created and migrated by the server
//! itself: numbered migrations (`haven_migrations`), each in one
//! transaction, under an advisory lock so that servers starting together
//! migrate once.

use super::{backend, unavailable};
use crate::storage::StorageError;
use deadpool_postgres::Pool;

/// Serialises migrations across processes (`pg_advisory_xact_lock`).
const MIGRATION_LOCK: i64 = 0x4841_5645_4e00_0001;
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
    // 3: history and object states may hold list element instructions and
    // element identities, which servers from before cannot read. The
    // tables do not change: the number keeps older servers out.
    r#"
COMMENT ON COLUMN haven_objects.state IS
    'postcard (pk, ObjectState); from migration 3 it may hold list element identities';
"#,
    // 4: history and object states may hold set and dictionary values,
    // instructions and entries; `doc` shows sets as arrays and
    // dictionaries as objects. Again only the number keeps older servers
    // out.
    r#"
COMMENT ON COLUMN haven_objects.state IS
    'postcard (pk, ObjectState); from migration 3 it may hold list element identities, from 4 set and dictionary entries';
"#,
    // 5: history may hold field edits of embedded objects in lists, and
    // object states their fields' stamps. Only the number keeps older
    // servers out.
    r#"
COMMENT ON COLUMN haven_objects.state IS
    'postcard (pk, ObjectState); from migration 3 it may hold list element identities, from 4 set and dictionary entries, from 5 the fields of embedded objects in lists';
"#,
];

/// Creates or migrates the tables, one process at a time.
pub(super) async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<(), StorageError> {
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
    if done as usize > MIGRATIONS.len() {
        // A newer build migrated these tables: nothing here may touch them.
        return Err(StorageError::FormatTooNew { found: done as u64, supported: MIGRATIONS.len() as u64 });
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        txn.batch_execute(sql).await.map_err(backend)?;
        txn.execute("INSERT INTO haven_migrations (version) VALUES ($1)", &[&(n as i32 + 1)]).await.map_err(backend)?;
        tracing::info!(version = n + 1, "PostgreSQL tables migrated");
    }
    txn.commit().await.map_err(backend)
}
