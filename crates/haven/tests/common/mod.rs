//! What the device-level test files share.

use haven::Database;
use std::time::Duration;

/// Waits until `db` has uploaded everything and has what the server has.
pub async fn synced(db: &Database) {
    let session = db.sync_session().unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        session.upload_all_local_changes().await.unwrap();
        session.download_all_server_changes().await.unwrap();
    })
    .await
    .expect("synced within 60 s");
}

/// Every Dog, as JSON, by primary key.
#[allow(dead_code)] // not every test file reads dogs this way
pub fn dogs(db: &Database) -> Vec<serde_json::Value> {
    db.objects("Dog").unwrap().sorted("_id", true).unwrap().iter().unwrap().map(|o| o.to_json()).collect()
}

/// Cases a property test runs: `PROPTEST_CASES` if set (long runs by
/// hand), else `default` (what CI runs).
#[allow(dead_code)] // only the property tests use it
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}
