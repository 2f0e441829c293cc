//! The file format's numbered migrations. Each runs on open, inside the
//! transaction that records the new format version, so a kill leaves the
//! file in its old format, still openable. `docs/formats.md` keeps the
//! history.

use crate::error::Result;
use crate::replica::change_log;
use crate::replica::settle::{settle_all, Rebuild};
use crate::transaction::WriteTransaction;
use haven_core::Schema;

/// Brings a file of format `from` to the current format.
///
/// Format 2 → 3, 3 → 4 and 4 → 5 move nothing: each only adds what the
/// format before cannot read (format 3 list element instructions in the
/// change log and element identities in confirmed states, format 4 set
/// and dictionary values, instructions and entries, format 5 field edits
/// of embedded objects in lists and their stamps), and the new number,
/// which the caller writes, keeps older builds from meeting them.
pub(crate) fn run(txn: &redb::WriteTransaction, schema: &Schema, from: u32) -> Result<()> {
    if from < 2 {
        confirmed_state_into_records(txn, schema)?;
    }
    Ok(())
}

/// Format 1 → 2. Format 1 kept every synced object's confirmed state in the
/// overlay table, which format 2 still reads correctly; this moves each
/// one the record can hold into the record, and gives objects with
/// pending changes their pending mark.
fn confirmed_state_into_records(txn: &redb::WriteTransaction, schema: &Schema) -> Result<()> {
    let (base_version, ident) = change_log::base_and_ident(txn)?;
    let mut tx = WriteTransaction::new(txn, schema, false, None);
    settle_all(&mut tx, base_version, ident, Rebuild::InPlace)?;
    let _ = tx.finish();
    Ok(())
}
