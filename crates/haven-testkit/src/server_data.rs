//! A sync server's data that a test stops, backs up, restores and starts
//! again, as an operator would: on the embedded store a copy of its file,
//! on PostgreSQL a `pg_dump` of the server's schema, restored with `psql`.

use haven_server::{EmbeddedStorage, PostgresStorage, Storage};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The data of one server, on the backend `HAVEN_TEST_BACKEND` names.
pub struct ServerData {
    dir: PathBuf,
    /// `(url, schema)` on PostgreSQL; `None` on the embedded store.
    postgres: Option<(String, String)>,
}

static SCHEMAS: AtomicU32 = AtomicU32::new(0);

impl ServerData {
    /// Data kept under `dir` (the embedded store's file, the backups), or
    /// in a PostgreSQL schema of its own, dropped with this value.
    pub fn new(dir: &Path) -> ServerData {
        let postgres = crate::testing_postgres().then(|| {
            let url = crate::test_postgres_url().expect("HAVEN_TEST_BACKEND=postgres needs HAVEN_TEST_POSTGRES_URL");
            let n = SCHEMAS.fetch_add(1, Ordering::SeqCst);
            (url, format!("haven_restore_{}_{n}", std::process::id()))
        });
        std::fs::create_dir_all(dir).expect("the data directory");
        ServerData { dir: dir.to_owned(), postgres }
    }

    /// Opens the storage (the server must not be running on it).
    pub fn storage(&self) -> Arc<dyn Storage> {
        match &self.postgres {
            Some((url, schema)) => {
                Arc::new(PostgresStorage::connect_in_schema(url, Some(schema)).expect("PostgreSQL storage"))
            }
            None => Arc::new(EmbeddedStorage::open(&self.dir).expect("embedded storage")),
        }
    }

    /// Backs the data up as `name` (the server must be stopped).
    pub fn backup(&self, name: &str) {
        match &self.postgres {
            Some((url, schema)) => {
                run(Command::new("pg_dump").arg(url).args(["-n", schema, "-f"]).arg(self.dump(name)))
            }
            None => {
                std::fs::copy(self.dir.join("haven-server.redb"), self.dir.join(format!("{name}.backup"))).unwrap();
            }
        }
    }

    /// Replaces the data with the backup `name` (the server must be stopped).
    pub fn restore(&self, name: &str) {
        match &self.postgres {
            Some((url, schema)) => {
                run(Command::new("psql").arg(url).args(["-q", "-c", &format!("DROP SCHEMA {schema} CASCADE")]));
                run(Command::new("psql").arg(url).args(["-q", "-v", "ON_ERROR_STOP=1", "-f"]).arg(self.dump(name)));
            }
            None => {
                std::fs::copy(self.dir.join(format!("{name}.backup")), self.dir.join("haven-server.redb")).unwrap();
            }
        }
    }

    /// Makes the data what a server from before version salts left (the
    /// server must be stopped): no salts, and on PostgreSQL the migration
    /// that adds them, and every later one, not yet run.
    pub fn forget_version_salts(&self) {
        match &self.postgres {
            Some((url, schema)) => {
                let sql = format!(
                    "DROP TABLE {schema}.haven_version_salts; DELETE FROM {schema}.haven_migrations WHERE version >= 2"
                );
                run(Command::new("psql").arg(url).args(["-q", "-v", "ON_ERROR_STOP=1", "-c", &sql]));
            }
            None => {
                let db = redb::Database::create(self.dir.join("haven-server.redb")).expect("the server's file");
                let txn = db.begin_write().unwrap();
                let salts: redb::TableDefinition<(&str, u64), u64> = redb::TableDefinition::new("version_salts");
                assert!(txn.delete_table(salts).unwrap(), "the server stored salts");
                txn.commit().unwrap();
            }
        }
    }

    fn dump(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sql"))
    }
}

impl Drop for ServerData {
    fn drop(&mut self) {
        if let Some((url, schema)) = &self.postgres {
            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            let _ = Command::new("psql").arg(url).args(["-q", "-c", &drop]).output();
        }
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}
