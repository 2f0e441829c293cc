//! What one commit changed, object by object: the input of listeners.

use haven_core::Value;
use std::collections::{BTreeSet, HashMap};

/// How one object changed in a commit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    Inserted,
    /// Positions of the properties that were written.
    Modified(BTreeSet<usize>),
    Deleted,
    /// Deleted and created again in the same commit: every property may differ.
    Replaced,
}

/// The changes of one commit: type → encoded primary key → (primary key, change).
#[derive(Debug, Default, Clone)]
pub(crate) struct CommitChanges {
    pub types: HashMap<String, HashMap<Vec<u8>, (Value, Change)>>,
}

impl CommitChanges {
    pub fn is_empty(&self) -> bool {
        self.types.values().all(HashMap::is_empty)
    }

    /// Records a change, folding it into what the commit did to the object before.
    pub fn record(&mut self, ty: &str, key: &[u8], pk: &Value, change: Change) {
        let objects = self.types.entry(ty.to_owned()).or_default();
        let Some((_, prev)) = objects.get_mut(key) else {
            objects.insert(key.to_vec(), (pk.clone(), change));
            return;
        };
        let folded = match (std::mem::replace(prev, Change::Deleted), change) {
            (Change::Inserted, Change::Deleted) => {
                objects.remove(key);
                return;
            }
            (Change::Inserted, _) => Change::Inserted,
            (Change::Modified(mut a), Change::Modified(b)) => {
                a.extend(b);
                Change::Modified(a)
            }
            // Deleted, then created again: the object was replaced.
            (Change::Deleted, Change::Inserted) => Change::Replaced,
            (Change::Replaced, Change::Modified(_)) => Change::Replaced,
            (_, next) => next,
        };
        *prev = folded;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        let mut c = CommitChanges::default();
        let pk = Value::Int(1);
        c.record("Dog", b"k", &pk, Change::Inserted);
        c.record("Dog", b"k", &pk, Change::Modified([1].into()));
        assert_eq!(c.types["Dog"][&b"k"[..]].1, Change::Inserted);
        c.record("Dog", b"k", &pk, Change::Deleted);
        assert!(c.is_empty());
        c.record("Dog", b"j", &pk, Change::Modified([1].into()));
        c.record("Dog", b"j", &pk, Change::Modified([2].into()));
        assert_eq!(c.types["Dog"][&b"j"[..]].1, Change::Modified([1, 2].into()));
        c.record("Dog", b"j", &pk, Change::Deleted);
        assert_eq!(c.types["Dog"][&b"j"[..]].1, Change::Deleted);
    }
}
