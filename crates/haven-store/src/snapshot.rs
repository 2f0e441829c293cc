//! A consistent read view of the database, used by every reader: the
//! public read calls, `Results` and the listener thread.

use crate::error::{Error, Result};
use crate::layout;
use haven_core::query::{Access, KeyRange, LinkResolver};
use haven_core::{key, query, Schema, Value, ValueRef};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, TableError};
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

pub(crate) struct Snapshot {
    rtx: ReadTransaction,
    pub schema: Arc<Schema>,
    /// Each type's object table (by type position), opened on first use
    /// and kept for the snapshot's life: opening a table costs more than a
    /// lookup in it. `None` inside: the type has no objects yet.
    tables: Vec<OnceLock<Option<ReadableObjects>>>,
}

type ReadableObjects = ReadOnlyTable<&'static [u8], &'static [u8]>;

impl Snapshot {
    pub fn new(rtx: ReadTransaction, schema: Arc<Schema>) -> Snapshot {
        let tables = schema.types().iter().map(|_| OnceLock::new()).collect();
        Snapshot { rtx, schema, tables }
    }

    fn objects(&self, ty: &str) -> Result<Option<&ReadableObjects>> {
        let Some(at) = self.schema.types().iter().position(|t| t.name() == ty) else {
            return Ok(None);
        };
        if let Some(table) = self.tables[at].get() {
            return Ok(table.as_ref());
        }
        let name = layout::objects_table(ty);
        let table = match self.rtx.open_table(layout::objects_def(&name)) {
            Ok(t) => Some(t),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        // Two readers may race to open it; either table is the same view.
        Ok(self.tables[at].get_or_init(|| table).as_ref())
    }

    /// The record of one object.
    pub fn get(&self, ty: &str, pk_key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(t) = self.objects(ty)? else {
            return Ok(None);
        };
        Ok(t.get(pk_key)?.map(|g| g.value().to_vec()))
    }

    /// The change log's changesets after client version `after`, oldest first.
    pub fn pending_changes(&self, after: u64) -> Result<Vec<haven_core::merge::Changeset>> {
        crate::replica::change_log::pending(&self.rtx, after)
    }

    /// The change log after client version `after`, as stored:
    /// `(client version, encoded changeset)`, up to about `max_bytes`.
    #[cfg(feature = "sync")]
    pub fn pending_encoded(&self, after: u64, max_bytes: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        crate::replica::change_log::pending_encoded(&self.rtx, after, max_bytes)
    }

    /// The server-confirmed state of one object, with its field stamps.
    #[cfg(feature = "sync")]
    pub fn confirmed(&self, ty: &str, pk: &haven_core::Value) -> Result<Option<haven_core::merge::ObjectState>> {
        let Some(pk) = pk.as_ref() else { return Ok(None) };
        let pk_key = key::to_key(pk);
        let record = self.get(ty, &pk_key)?;
        crate::replica::confirmed::read(&self.rtx, self.schema.object_type(ty), ty, &pk_key, record.as_deref())
    }

    /// The client reset under way in the file, if any.
    pub fn reset_tracker(&self) -> Result<Option<crate::replica::reset_tracker::ResetTracker>> {
        crate::replica::reset_tracker::read_tracker(&self.rtx)
    }

    /// Where the file stands with its server.
    pub fn sync_position(&self) -> Result<crate::replica::change_log::SyncPosition> {
        crate::replica::change_log::position(&self.rtx)
    }

    /// Whether an object exists.
    pub fn contains(&self, ty: &str, pk_key: &[u8]) -> Result<bool> {
        let Some(t) = self.objects(ty)? else {
            return Ok(false);
        };
        Ok(t.get(pk_key)?.is_some())
    }

    /// Number of objects of a type.
    pub fn count(&self, ty: &str) -> Result<u64> {
        use redb::ReadableTableMetadata;
        Ok(self.objects(ty)?.map(|t| t.len()).transpose()?.unwrap_or(0))
    }
}

/// What a query runs on: a snapshot, or a write transaction as it stands
/// (its own writes included).
pub(crate) trait QuerySource: LinkResolver {
    fn schema(&self) -> &Schema;
    /// Calls `f` with every row that `access` selects, in key order, until
    /// it returns `false`.
    fn visit(&self, ty: &str, access: &Access, f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
}

impl QuerySource for Snapshot {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn visit(&self, ty: &str, access: &Access, f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let Some(objects) = self.objects(ty)? else {
            return Ok(());
        };
        let index = |name: &str| match self.rtx.open_table(layout::index_def(name)) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        };
        visit_table(&self.schema, ty, objects, access, index, f)
    }
}

/// Calls `f` with every row of `objects` (a table of type `ty`) that
/// `access` selects, in key order, until it returns `false`; `index` opens
/// a property's index table by name (`None`: it does not exist yet).
pub(crate) fn visit_table<O, I>(
    schema: &Schema,
    ty: &str,
    objects: &O,
    access: &Access,
    index: impl FnOnce(&str) -> Result<Option<I>>,
    mut f: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<()>
where
    O: ReadableTable<&'static [u8], &'static [u8]>,
    I: ReadableTable<&'static [u8], ()>,
{
    match access {
        Access::Scan => {
            for row in objects.iter()? {
                let (k, v) = row?;
                if !f(k.value(), v.value()) {
                    break;
                }
            }
        }
        Access::PrimaryKey(ranges) => {
            for r in ranges {
                for row in objects.range::<&[u8]>(borrowed(r))? {
                    let (k, v) = row?;
                    if !f(k.value(), v.value()) {
                        return Ok(());
                    }
                }
            }
        }
        Access::Index(prop, ranges) => {
            let object_type = schema.object_type(ty).expect("type checked by the caller");
            let Some(index) = index(&layout::index_table(ty, &object_type.properties()[*prop].name))? else {
                return Ok(());
            };
            let mut pks = KeyList::default();
            for r in ranges {
                for entry in index.range::<&[u8]>(borrowed(r))? {
                    let k = entry?.0;
                    let k = k.value();
                    pks.push(&k[key::first_len(k)..]);
                }
            }
            visit_keys(objects, &pks.sorted(), f)?;
        }
    }
    Ok(())
}

/// Reads the objects with these primary keys (sorted), in key order.
///
/// Rows whose keys are close together are reached by stepping a cursor
/// rather than by one lookup each: an index on a property that grows with
/// the key (timestamps, counters) then reads the objects table almost
/// sequentially, like a bitmap heap scan. A gap of more than a few rows
/// starts a new cursor at the next key, which costs what a lookup costs.
fn visit_keys(
    objects: &impl ReadableTable<&'static [u8], &'static [u8]>,
    pks: &[&[u8]],
    mut f: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    const MAX_STEPS: usize = 8;
    let mut i = 0;
    while i < pks.len() {
        let mut rows = objects.range::<&[u8]>(pks[i]..)?;
        let mut steps = 0;
        while i < pks.len() && steps <= MAX_STEPS {
            let Some(row) = rows.next() else {
                return Ok(());
            };
            let (k, v) = row?;
            match k.value().cmp(pks[i]) {
                std::cmp::Ordering::Less => steps += 1,
                std::cmp::Ordering::Equal => {
                    if !f(k.value(), v.value()) {
                        return Ok(());
                    }
                    i += 1;
                    steps = 0;
                }
                // No object for this index entry: skip it.
                std::cmp::Ordering::Greater => {
                    i += 1;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Encoded keys in one buffer (one allocation, not one per key).
#[derive(Default)]
struct KeyList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyList {
    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    fn sorted(&self) -> Vec<&[u8]> {
        let mut keys: Vec<&[u8]> = self
            .ends
            .iter()
            .scan(0, |start, &end| {
                let k = &self.bytes[*start..end];
                *start = end;
                Some(k)
            })
            .collect();
        // Index order often is key order already (a timestamp that grows
        // with the key): then there is nothing to sort.
        if !keys.is_sorted() {
            keys.sort_unstable();
            keys.dedup();
        }
        keys
    }
}

fn borrowed(r: &KeyRange) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (r.0.as_ref().map(Vec::as_slice), r.1.as_ref().map(Vec::as_slice))
}

impl LinkResolver for Snapshot {
    fn resolve(&self, ty: &str, pk: ValueRef<'_>) -> Option<Vec<u8>> {
        self.get(ty, &key::to_key(pk)).ok().flatten()
    }

    fn linking(&self, ty: &str, property: usize, pk: ValueRef<'_>) -> Vec<Vec<u8>> {
        linking_records(self, ty, property, pk)
    }
}

/// The records of type `ty` whose link property at `property` holds `pk`
/// (a `linkingObjects` read): a scan of the type, since links have no
/// reverse index. A damaged record links nowhere.
pub(crate) fn linking_records(source: &impl QuerySource, ty: &str, property: usize, pk: ValueRef<'_>) -> Vec<Vec<u8>> {
    let holds = |v: ValueRef<'_>| match v {
        ValueRef::List(items) | ValueRef::Set(items) => items.iter().any(|item| item == pk),
        one => one == pk,
    };
    let mut out = Vec::new();
    let visited = source.visit(ty, &Access::Scan, |_, rec| {
        if haven_core::record::field(rec, property).ok().flatten().is_some_and(holds) {
            out.push(rec.to_vec());
        }
        true
    });
    if let Err(e) = visited {
        tracing::warn!(object_type = ty, error = %e, "cannot read the objects that link here");
    }
    out
}

/// The value a one-valued path (a sort or DISTINCT key) has for a record.
fn first_value(path: &query::BoundPath, rec: &[u8], snap: &impl QuerySource) -> Value {
    query::path_values(path, rec, snap).into_iter().next().unwrap_or(Value::Null)
}

/// Plans and runs a query on a snapshot or a write transaction, mapping
/// each matching row (encoded primary key, record) with `map`, in the
/// query's order.
pub(crate) fn run_query<T>(
    snap: &impl QuerySource,
    ty: &str,
    q: &query::BoundQuery,
    mut map: impl FnMut(&[u8], &[u8]) -> Result<T>,
) -> Result<Vec<T>> {
    let object_type = snap.schema().object_type(ty).ok_or_else(|| Error::UnknownType(ty.to_owned()))?;
    let plan = query::plan(object_type, q);
    let sorted = !q.sort.is_empty();
    let unsorted_limit = if sorted { None } else { q.limit };
    let mut out = Vec::new();
    let mut sort_keys: Vec<Vec<Value>> = Vec::new();
    // DISTINCT: the values that make a row a duplicate, encoded; sorted
    // rows are deduplicated once in order.
    let distinct_key = |rec: &[u8]| {
        let values: Vec<Value> = q.distinct.iter().map(|p| first_value(p, rec, snap)).collect();
        let mut key = Vec::new();
        haven_core::record::encode(&values, &mut key);
        key
    };
    let mut seen = std::collections::HashSet::new();
    let mut distinct_keys = Vec::new();
    let mut failure = None;
    if unsorted_limit != Some(0) {
        snap.visit(ty, &plan.access, |k, rec| {
            if plan.residual.as_ref().is_some_and(|f| !f.matches(rec, snap)) {
                return true;
            }
            if !q.distinct.is_empty() {
                match sorted {
                    true => distinct_keys.push(distinct_key(rec)),
                    false if !seen.insert(distinct_key(rec)) => return true,
                    false => {}
                }
            }
            match map(k, rec) {
                Ok(item) => out.push(item),
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
            if sorted {
                sort_keys.push(q.sort.iter().map(|(p, _)| first_value(p, rec, snap)).collect());
            }
            unsorted_limit.is_none_or(|n| out.len() < n)
        })?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if sorted {
        let mut order: Vec<usize> = (0..out.len()).collect();
        order.sort_by(|&a, &b| {
            for ((x, y), (_, asc)) in sort_keys[a].iter().zip(&sort_keys[b]).zip(&q.sort) {
                let o = haven_core::sort_order(x, y);
                if o != std::cmp::Ordering::Equal {
                    return if *asc { o } else { o.reverse() };
                }
            }
            std::cmp::Ordering::Equal
        });
        if !q.distinct.is_empty() {
            order.retain(|&i| seen.insert(std::mem::take(&mut distinct_keys[i])));
        }
        let mut slots: Vec<Option<T>> = out.into_iter().map(Some).collect();
        out = order.into_iter().map(|i| slots[i].take().expect("each index once")).collect();
        if let Some(n) = q.limit {
            out.truncate(n);
        }
    }
    Ok(out)
}
