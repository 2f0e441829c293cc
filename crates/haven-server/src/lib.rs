//! Haven's sync server. Today: the storage of partitions (history,
//! current state, client registry) behind the [`Storage`] trait, with an
//! embedded redb implementation, and token checks ([`Authenticator`]).
//! Next (issue 3): `haven serve` on axum.

#![warn(missing_docs)]

mod auth;
mod embedded;
mod storage;

pub use auth::{AuthError, Authenticator};
pub use embedded::EmbeddedStorage;
pub use storage::{ClientRecord, Integration, Storage, StorageError};
