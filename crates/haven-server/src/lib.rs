//! Haven's sync server (`haven serve`): WebSocket sessions ([`Server`])
//! over the storage of partitions (history, current state, client
//! registry) behind the [`Storage`] trait, with an embedded redb
//! implementation ([`EmbeddedStorage`]) and a PostgreSQL one that several
//! servers share ([`PostgresStorage`]), and token checks ([`Authenticator`]).

#![warn(missing_docs)]

mod admin;
mod admission;
mod auth;
mod embedded;
mod http_client;
mod jwks;
mod listener;
mod metrics;
mod postgres;
mod serve;
mod session;
mod shared;
mod storage;
mod upload;

pub use auth::{
    AuthError, Authenticator, Identity, JwtVerifier, KeyError, DEFAULT_LEEWAY_SECS, DEFAULT_PARTITIONS_CLAIM,
};
pub use embedded::EmbeddedStorage;
pub use http_client::http_request;
pub use hyper::{Method, StatusCode};
pub use jwks::{JWKS_REFRESH, REFETCHES_PER_MINUTE};
pub use listener::TlsFiles;
pub use postgres::PostgresStorage;
pub use serve::{ServeError, Server, ServerOptions, DEFAULT_CLIENT_SILENCE};
pub use storage::{
    ClientRecord, Integration, PartitionSettings, ResetTarget, SnapshotEnd, Storage, StorageError, StorageHint,
    StoredChangeset, TrimPoint,
};
