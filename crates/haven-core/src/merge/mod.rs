//! The merge rule shared by the sync client and server (`docs/conflicts.md`):
//! server-ordered, client-rebased; delete wins; same primary key, same
//! object; fields merge one by one, causality first and then the hybrid
//! logical clock; increments add up; list elements keep their identity; set
//! and dictionary entries merge like fields. Pure: no I/O.

mod changeset;
mod hlc;
mod keyed;
mod list;
mod rule;
pub(crate) mod validate;

pub use changeset::{Changeset, Instruction};
pub use hlc::{Hlc, HlcClock};
pub use keyed::{KeyedEntry, KeyedState};
pub use list::{ElementId, ListElement, ListState};
pub use rule::{apply, apply_in_place, Applied, Dropped, Field, ObjectState, Overruled, Stamp, Writer};
pub use validate::{validate, InvalidChangeset};
