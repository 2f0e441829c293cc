//! The replica: everything a file that syncs keeps for it, below the
//! object model and apart from the network.
//!
//! - [`change_log`]: the local changesets the server has not acknowledged,
//!   and where the file stands (ident, base version and salt, clock).
//! - [`confirmed`]: where an object's server-confirmed state lives: in its
//!   record when nothing local is pending on it, in an overlay otherwise.
//! - [`settle`]: making an object show its confirmed state with its
//!   pending changes on top, keeping that state where it belongs.
//! - `download` (with the `sync` feature): applying what the server
//!   sends (changesets, a bootstrap, the end of a client reset).
//! - [`reset_tracker`]: a client reset in progress, as the file records it.
//!
//! The table and meta-key names are in [`crate::layout`]. `crate::sync`
//! (the network) calls into this module, never the reverse.

pub(crate) mod change_log;
pub(crate) mod confirmed;
#[cfg(feature = "sync")]
pub(crate) mod download;
pub(crate) mod reset_tracker;
pub(crate) mod settle;
