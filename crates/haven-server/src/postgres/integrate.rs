//! An upload integrated in one transaction, under the partition's row
//! lock: the one order every server shares.

use super::hints::CHANNEL;
use super::{backend, client_record, document, encode, failed};
use crate::storage::{new_salt, Integration, StorageError};
use crate::upload;
use haven_core::merge::{Changeset, ObjectState};
use haven_sync::protocol::{FileIdent, SnapshotObject};

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
pub(super) async fn integrate(
    c: &mut deadpool_postgres::Object,
    client: FileIdent,
    changesets: Vec<Changeset>,
    seen: u64,
    now_millis: u64,
) -> Result<Integration, StorageError> {
    let txn = c.transaction().await.map_err(backend)?;
    let row = txn
        .query_opt("SELECT * FROM haven_clients WHERE ident = $1 FOR UPDATE", &[&(client.ident as i64)])
        .await
        .map_err(backend)?
        .ok_or(StorageError::UnknownClient(client.ident))?;
    let record = client_record(&row).matching(client)?;
    // Under the client's row lock, which a reset's mark also takes.
    let marked = txn
        .query_opt("SELECT 1 FROM haven_resets WHERE ident = $1", &[&(client.ident as i64)])
        .await
        .map_err(backend)?;
    if marked.is_some() {
        return Err(StorageError::ResetPending(client.ident));
    }
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
        let (_, state) = SnapshotObject::decode_state(&state).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        objects.current.insert((row.get::<_, String>(0), row.get::<_, Vec<u8>>(1)), state);
    }
    let merged =
        upload::merge(client, record.uploaded_through, version as u64, &changesets, seen, now_millis, &mut objects)?;
    // Written with one statement each, whatever the upload's size.
    let (mut live, mut gone) = (LiveRows::default(), (Vec::new(), Vec::new()));
    for ((object_type, key), (pk, state, version)) in objects.written {
        match state {
            Some(state) => {
                live.types.push(object_type);
                live.keys.push(key);
                live.pks.push(pk.to_json());
                live.docs.push(document(&state));
                live.states.push(SnapshotObject::encode_state(&pk, &state).map_err(failed)?);
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
