//! A write transaction as a query sees it: its tables, with the
//! transaction's own writes, for [`WriteTransaction::query`](crate::WriteTransaction::query).

use crate::error::Result;
use crate::layout;
use crate::snapshot::{visit_table, QuerySource};
use haven_core::query::{Access, LinkResolver};
use haven_core::{key, Schema, ValueRef};
use redb::{ReadableTable, Table};
use std::cell::RefCell;
use std::rc::Rc;

type Objects<'t> = Table<'t, &'static [u8], &'static [u8]>;

pub(crate) struct TransactionView<'t> {
    txn: &'t redb::WriteTransaction,
    schema: &'t Schema,
    /// Object tables opened so far, by type: a link followed during a
    /// visit opens another type's table while the visit holds its own.
    objects: RefCell<Vec<(String, Rc<Objects<'t>>)>>,
}

impl<'t> TransactionView<'t> {
    /// A view of `txn`, which must have none of the object or index tables
    /// open (redb opens each once at a time).
    pub(crate) fn new(txn: &'t redb::WriteTransaction, schema: &'t Schema) -> Self {
        TransactionView { txn, schema, objects: RefCell::new(Vec::new()) }
    }

    fn objects(&self, ty: &str) -> Result<Rc<Objects<'t>>> {
        if let Some((_, table)) = self.objects.borrow().iter().find(|(name, _)| name == ty) {
            return Ok(table.clone());
        }
        let table = Rc::new(self.txn.open_table(layout::objects_def(&layout::objects_table(ty)))?);
        self.objects.borrow_mut().push((ty.to_owned(), table.clone()));
        Ok(table)
    }
}

impl QuerySource for TransactionView<'_> {
    fn schema(&self) -> &Schema {
        self.schema
    }

    fn visit(&self, ty: &str, access: &Access, f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let objects = self.objects(ty)?;
        let index = |name: &str| Ok(Some(self.txn.open_table(layout::index_def(name))?));
        visit_table(self.schema, ty, &*objects, access, index, f)
    }
}

impl LinkResolver for TransactionView<'_> {
    fn resolve(&self, ty: &str, pk: ValueRef<'_>) -> Option<Vec<u8>> {
        let objects = self.objects(ty).ok()?;
        let record = objects.get(key::to_key(pk).as_slice()).ok()??;
        Some(record.value().to_vec())
    }

    fn linking(&self, ty: &str, property: usize, pk: ValueRef<'_>) -> Vec<Vec<u8>> {
        crate::snapshot::linking_records(self, ty, property, pk)
    }
}
