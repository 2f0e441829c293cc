//! Haven sync: the wire protocol that the client session (in
//! `haven-store`) and `haven serve` (in `haven-server`) share
//! (`docs/protocol.md`).

#![warn(missing_docs)]

pub mod protocol;
pub mod tls;
