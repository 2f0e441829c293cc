//! Opening a database that syncs, and reaching its session.

use super::{SyncError, SyncSession};
use crate::config::Config;
use crate::database::Database;
use crate::error::{Error, Result};

impl Database {
    /// Opens the database and starts syncing it as `config`'s
    /// [`SyncConfig`](crate::SyncConfig) says; needs a tokio runtime. By default it waits until
    /// everything the server has is here (a new file starts from the
    /// server's snapshot); with [`SyncConfig::wait_for_download`](crate::SyncConfig::wait_for_download)`(false)`
    /// it returns at once. Opening a path that is already syncing in this
    /// process returns the same database and session.
    ///
    /// A schema that breaks the file's (a property's type changed, a new
    /// required property) is not refused, as [`Database::open`] refuses
    /// it, when the file syncs and the server has that schema: the file
    /// starts again from the server's state under it, recovering its
    /// unsynced writes as the [`ClientResetMode`](crate::ClientResetMode)
    /// says (`docs/client-reset.md`). That asks the server first, even
    /// with `wait_for_download(false)`; offline, or with a server that does
    /// not have the schema, the open fails and the file is left as it was.
    ///
    /// ```no_run
    /// # async fn run(schema: haven_store::Schema) -> haven_store::Result<()> {
    /// use haven_store::{Config, Database, SyncConfig};
    /// let sync = SyncConfig::new("ws://127.0.0.1:7878", "dev-token", "my-partition");
    /// let db = Database::open_synced(Config::new("app.haven").schema(schema).sync(sync)).await?;
    /// db.sync_session().unwrap().upload_all_local_changes().await?;
    /// # Ok(()) }
    /// ```
    pub async fn open_synced(config: Config) -> Result<Database> {
        let Some(sync) = config.sync.clone() else {
            return Err(SyncError::Config("the Config has no SyncConfig: add .sync(SyncConfig::new(…))".into()).into());
        };
        let endpoint = super::transport::Endpoint::of(&sync)?;
        if config.read_only {
            return Err(SyncError::Config("a synced database cannot be opened read-only".into()).into());
        }
        if !sync.client_reset.has_manual_handler(sync.on_error.is_some()) {
            let message = "ClientResetMode::Manual needs a handler to report a client reset to: give it on_manual, or give the SyncConfig an on_error";
            return Err(SyncError::Config(message.into()).into());
        }
        let wait = sync.wait_for_download;
        let open = |config: Config| async move {
            tokio::task::spawn_blocking(move || Database::open(config.record_changes()))
                .await
                .map_err(|e| Error::Storage(format!("opening failed: {e}")))?
        };
        let db = match open(config.clone()).await {
            // A schema that breaks a synced file's: the file may start again
            // under it (found only on this path: opening costs no extra read).
            Err(Error::Schema(_)) => {
                crate::schema_change::start_again_if_breaking(&config, &sync).await?;
                open(config).await?
            }
            opened => opened?,
        };
        if !db.inner.change_log {
            let message = format!(
                "{} is already open in this process without sync; close every handle, then open it with open_synced",
                db.path().display()
            );
            return Err(SyncError::Config(message).into());
        }
        db.inner.session.get_or_init(|| Box::new(SyncSession::start(&db, sync, endpoint)));
        let session = db.sync_session().expect("just attached");
        if wait {
            session.download_all_server_changes().await?;
        }
        Ok(db)
    }

    /// The sync session of a database opened with
    /// [`Database::open_synced`]; `None` for a local-only database.
    pub fn sync_session(&self) -> Option<SyncSession> {
        let attached = self.inner.session.get()?;
        attached.as_any().downcast_ref::<SyncSession>().cloned()
    }
}
