//! A consistent read view of the database, used by every reader: the
//! public read calls, `Results` and the listener thread.

use crate::error::Result;
use crate::layout;
use haven_core::query::{Access, KeyRange, LinkResolver};
use haven_core::{key, Schema, ValueRef};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, TableError};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

pub(crate) struct Snapshot {
    rtx: ReadTransaction,
    pub schema: Arc<Schema>,
    /// Object tables opened so far, kept for the snapshot's life: opening
    /// a table costs more than a lookup in it.
    tables: Mutex<HashMap<String, Option<Arc<ObjectsTable>>>>,
}

type ObjectsTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

impl Snapshot {
    pub fn new(rtx: ReadTransaction, schema: Arc<Schema>) -> Snapshot {
        Snapshot {
            rtx,
            schema,
            tables: Mutex::default(),
        }
    }

    fn objects(&self, ty: &str) -> Result<Option<Arc<ObjectsTable>>> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = tables.get(ty) {
            return Ok(t.clone());
        }
        let name = layout::objects_table(ty);
        let table = match self.rtx.open_table(layout::objects_def(&name)) {
            Ok(t) => Some(Arc::new(t)),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        tables.insert(ty.to_owned(), table.clone());
        Ok(table)
    }

    /// The record of one object.
    pub fn get(&self, ty: &str, pk_key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(t) = self.objects(ty)? else {
            return Ok(None);
        };
        Ok(t.get(pk_key)?.map(|g| g.value().to_vec()))
    }

    /// Number of objects of a type.
    pub fn count(&self, ty: &str) -> Result<u64> {
        use redb::ReadableTableMetadata;
        Ok(self.objects(ty)?.map(|t| t.len()).transpose()?.unwrap_or(0))
    }

    /// Calls `f` with every row that `access` selects, in key order, until
    /// it returns `false`.
    pub fn visit(
        &self,
        ty: &str,
        access: &Access,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let Some(objects) = self.objects(ty)? else {
            return Ok(());
        };
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
                let object_type = self
                    .schema
                    .object_type(ty)
                    .expect("type checked by the caller");
                let name = layout::index_table(ty, &object_type.properties()[*prop].name);
                let index = match self.rtx.open_table(layout::index_def(&name)) {
                    Ok(t) => t,
                    Err(TableError::TableDoesNotExist(_)) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                for r in ranges {
                    for entry in index.range::<&[u8]>(borrowed(r))? {
                        let (k, ()) = (entry?.0, ());
                        let k = k.value();
                        let pk = &k[key::first_len(k)..];
                        if let Some(rec) = objects.get(pk)? {
                            if !f(pk, rec.value()) {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn borrowed(r: &KeyRange) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (
        r.0.as_ref().map(Vec::as_slice),
        r.1.as_ref().map(Vec::as_slice),
    )
}

impl LinkResolver for Snapshot {
    fn resolve(&self, ty: &str, pk: ValueRef<'_>) -> Option<Vec<u8>> {
        self.get(ty, &key::to_key(pk)).ok().flatten()
    }
}
