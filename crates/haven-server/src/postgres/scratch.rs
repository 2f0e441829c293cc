//! A PostgreSQL schema of its own for a run that must leave nothing
//! behind (`haven bench sync --postgres`, tests): dropped when done.

use super::backend;
use crate::storage::StorageError;
use tokio_postgres::NoTls;

/// A schema with a name no other run uses, dropped (with everything in
/// it) when this is dropped. The first connection in it creates it.
pub(crate) struct ScratchSchema {
    config: tokio_postgres::Config,
    name: String,
}

impl ScratchSchema {
    /// A new schema name on the server `url` names.
    pub(crate) fn new(url: &str) -> Result<ScratchSchema, StorageError> {
        static SCHEMAS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SCHEMAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("haven_scratch_{}_{n}_{nanos}", std::process::id());
        Ok(ScratchSchema { config: url.parse().map_err(backend)?, name })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let (config, name) = (self.config.clone(), self.name.clone());
        // On a thread of its own: this may be a runtime's thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let (client, connection) = config.connect(NoTls).await.ok()?;
                tokio::spawn(connection);
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await.ok()
            })
        });
        let _ = dropped.join();
    }
}
