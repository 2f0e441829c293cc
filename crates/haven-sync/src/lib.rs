//! Haven sync: the wire protocol that the client session and `haven serve`
//! share (`docs/protocol.md`). The client session and the server build on
//! it (issue 3, in progress).

#![warn(missing_docs)]

pub mod protocol;
