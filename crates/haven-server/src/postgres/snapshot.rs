//! A partition's state streamed in batches from one consistent view.

use super::backend;
use crate::storage::{SnapshotBatches, SnapshotEnd, StorageError};
use haven_sync::protocol::SnapshotObject;

/// Rows a snapshot reads from its portal at a time.
const SNAPSHOT_PAGE: i32 = 5_000;

/// Streams a partition's objects in batches, from one consistent view.
pub(super) async fn snapshot(
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
    let mut gathered = SnapshotBatches::new(batch_bytes);
    let mut hand_on = |batch| send(&batches, batch);
    loop {
        let rows = txn.query_portal(&portal, SNAPSHOT_PAGE).await.map_err(backend)?;
        let done = rows.len() < SNAPSHOT_PAGE as usize;
        for row in rows {
            let object = SnapshotObject { object_type: row.get(0), key: row.get(1), state: row.get(2) };
            gathered.push(object, &mut hand_on)?;
        }
        if done {
            break;
        }
    }
    gathered.finish(&mut hand_on)?;
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
