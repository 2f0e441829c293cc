//! What Haven's tests share, kept out of the product's crates:
//!
//! - the server storage a suite runs on: [`test_storage`] (the backend
//!   `HAVEN_TEST_BACKEND` names), [`test_postgres`];
//! - [`Proxy`], a TCP proxy on loopback that cuts, delays, refuses and
//!   stalls connections on command, and fails over between several
//!   servers the way a load balancer does;
//! - [`fold_history`], what the merge rule makes of a partition's whole
//!   server history, to compare devices and the server's state against;
//! - devices: [`TestPartition`] (a server and the devices on it),
//!   [`synced`], [`dogs`], [`write_counted`] (the crash
//!   harnesses' transaction), [`forget_base_salt`] (a file as a build
//!   from before version salts left it);
//! - [`ServerData`], a server's data backed up and restored as an
//!   operator would (a file copy, or `pg_dump` and `psql`);
//! - [`tls::TestCa`], certificates made in the test, and
//!   [`ServedDocument`], a document (a key set) served over HTTP;
//! - [`proptest_cases`], so that property tests run longer by hand.

mod backend;
mod devices;
mod history;
pub mod keys;
mod proxy;
mod served_document;
mod server_data;
pub mod tls;

pub use backend::{test_postgres, test_postgres_url, test_storage, testing_postgres};
pub use devices::{dogs, forget_base_salt, objects_of, synced, write_counted, TestPartition};
pub use history::{fold_history, Fields};
pub use proxy::{Faults, Proxy};
pub use served_document::ServedDocument;
pub use server_data::ServerData;

/// Cases a property test runs: `PROPTEST_CASES` if set (long runs by
/// hand), else `default` (what CI runs).
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}
