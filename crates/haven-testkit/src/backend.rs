//! Which server storage the tests run on: `HAVEN_TEST_BACKEND` is
//! `embedded` (the default) or `postgres`, on the server
//! `HAVEN_TEST_POSTGRES_URL` names. One suite, both backends.

use haven_server::{EmbeddedStorage, PostgresStorage, Storage};
use std::sync::Arc;

/// The storage of the backend `HAVEN_TEST_BACKEND` names: the embedded
/// store in `dir`, or a PostgreSQL schema of its own (see
/// [`test_postgres`]; then it must be reachable).
pub fn test_storage(dir: &std::path::Path) -> Arc<dyn Storage> {
    match std::env::var("HAVEN_TEST_BACKEND").as_deref() {
        Ok("postgres") => Arc::new(test_postgres().expect("HAVEN_TEST_BACKEND=postgres needs HAVEN_TEST_POSTGRES_URL")),
        Ok("embedded") | Err(_) => Arc::new(EmbeddedStorage::open(dir).expect("embedded storage")),
        Ok(other) => panic!("HAVEN_TEST_BACKEND={other}: use embedded or postgres"),
    }
}

/// Whether the tests run on PostgreSQL (`HAVEN_TEST_BACKEND=postgres`).
pub fn testing_postgres() -> bool {
    std::env::var("HAVEN_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// The URL of the tests' PostgreSQL, or `None` (with a note on stderr)
/// when `HAVEN_TEST_POSTGRES_URL` is not set. With `CI=true` it must be
/// set: a test fails rather than skip.
pub fn test_postgres_url() -> Option<String> {
    let Ok(url) = std::env::var("HAVEN_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "HAVEN_TEST_POSTGRES_URL must be set when CI=true (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        eprintln!("skipping the PostgreSQL backend: HAVEN_TEST_POSTGRES_URL is not set");
        return None;
    };
    Some(url)
}

/// A storage in a PostgreSQL schema of its own, dropped with it, on the
/// tests' PostgreSQL ([`test_postgres_url`]); `None` when there is none.
pub fn test_postgres() -> Option<PostgresStorage> {
    let url = test_postgres_url()?;
    Some(PostgresStorage::connect_scratch(&url).unwrap_or_else(|e| panic!("HAVEN_TEST_POSTGRES_URL={url}: {e}")))
}
