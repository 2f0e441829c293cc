//! How to open a database.

use haven_core::Schema;
use std::path::{Path, PathBuf};

/// Where a database lives and how to open it.
///
/// ```
/// use haven_store::{Config, Schema};
/// let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int"}}]"#).unwrap();
/// let config = Config::new("data/app.haven").schema(schema);
/// assert_eq!(config.path(), std::path::Path::new("data/app.haven"));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) path: PathBuf,
    pub(crate) schema: Option<Schema>,
    pub(crate) read_only: bool,
    pub(crate) cache_size: Option<usize>,
    pub(crate) record_changes: bool,
    #[cfg(feature = "sync")]
    pub(crate) sync: Option<crate::SyncConfig>,
}

impl Config {
    /// A database at `path`, created if missing.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Config {
            path: path.as_ref().to_path_buf(),
            schema: None,
            read_only: false,
            cache_size: None,
            record_changes: false,
            #[cfg(feature = "sync")]
            sync: None,
        }
    }

    /// The schema the app uses. New types and new optional properties are
    /// added to an existing file; other changes are refused with an error.
    /// Without a schema, the file's own schema is used.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Opens an existing file for reading only; it is never changed.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The page cache size in bytes (default: the storage engine's).
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = Some(bytes);
        self
    }

    /// Keeps a change log: every committed write transaction is also
    /// recorded as a changeset until the server acknowledges it
    /// ([`Database::pending_changes`](crate::Database::pending_changes)).
    /// The sync client turns this on; once on, a file always keeps its log,
    /// so that no write made while it is opened some other way escapes sync.
    pub fn record_changes(mut self) -> Self {
        self.record_changes = true;
        self
    }

    /// Syncs the database with a server; open it with
    /// [`Database::open_synced`](crate::Database::open_synced).
    #[cfg(feature = "sync")]
    pub fn sync(mut self, sync: crate::SyncConfig) -> Self {
        self.sync = Some(sync);
        self
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What `create` does when an object with the same primary key exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Fail with [`Error::DuplicatePrimaryKey`](crate::Error::DuplicatePrimaryKey).
    Never,
    /// Write only the given properties whose value differs.
    Modified,
    /// Write every given property, even when unchanged (listeners see them as modified).
    All,
}
