//! The sync client: a background session per synced database that
//! uploads the change log and applies what the server sends through the
//! same commit path as local writes (so listeners hear of it). The
//! protocol is `haven_sync::protocol`; the design is `docs/sync.md`.

mod config;
mod connection;
mod liveness;
mod open;
mod session;
mod state;
mod token;
mod transport;

pub use config::SyncConfig;
pub(crate) use connection::request_reset;
pub use haven_sync::protocol::{Action, ErrorCode};
pub use session::SyncSession;
pub use state::{ConnectionState, SyncProgress, SyncStatus};

pub use crate::error::SyncError;
