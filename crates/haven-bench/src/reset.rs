//! `haven bench reset`: a client with many unsynced changes is reset by
//! the server and recovers them (`RecoverUnsynced`), against a plain
//! initial download of the same partition in the same run. The clients
//! run in child processes when the `haven` binary is at hand, so that
//! their peak memory is their own.

use crate::dogs::DOG_SCHEMA as DOG;
use crate::memory;
use crate::sync::{create_dogs, download_client, download_in_child, in_child, measurement, BenchResult};
use crate::{local::check, Measurement};
use haven::{ClientResetMode, Config, Database, RecoveryPolicy, Schema, SyncConfig};
use haven_server::{Authenticator, EmbeddedStorage, Server};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct ResetOptions {
    /// Smaller sizes (for a quick look or CI).
    pub quick: bool,
    /// Runs; the median is reported.
    pub repeats: usize,
    /// The `haven` binary, to run the clients in child processes.
    pub haven_exe: Option<PathBuf>,
}

/// The partition the workload uses.
const PARTITION: &str = "reset";
/// Unsynced changes per write transaction.
const CHANGES_PER_TRANSACTION: usize = 1_000;

/// One reset, as the client saw it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ResetRun {
    /// Milliseconds from opening the file (the server's reset error comes
    /// at the first bind, a few milliseconds in) to the committed recovery.
    pub ms: f64,
    /// The process's peak resident memory, MiB.
    pub peak_mib: f64,
    /// Changes recovered.
    pub recovered: usize,
    /// Changes dropped.
    pub dropped: usize,
}

/// Runs the workload: `reset` (ratio: reset time / plain download time)
/// and `initial_download` (ratio: against a SQLite bulk insert, as in
/// `bench sync`).
pub fn run_reset(opts: &ResetOptions, progress: &dyn Fn(&str)) -> BenchResult<Vec<Measurement>> {
    let (objects, unsynced) = if opts.quick { (20_000, 2_000) } else { (100_000, 10_000) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let storage = Arc::new(EmbeddedStorage::open(&dir.path().join("server"))?);
        let server = Server::start(storage, Authenticator::Dev, "127.0.0.1:0".parse()?).await?;
        let rows = bench(opts, &server, dir.path(), objects, unsynced, progress).await;
        server.shutdown().await;
        rows
    })
}

async fn bench(
    opts: &ResetOptions,
    server: &Server,
    dir: &Path,
    objects: usize,
    unsynced: usize,
    progress: &dyn Fn(&str),
) -> BenchResult<Vec<Measurement>> {
    progress(&format!("reset: seeding a partition with {objects} objects"));
    let seed = open(server, &dir.join("seed.haven"), true).await?;
    create_dogs(&seed, objects)?;
    seed.sync_session().ok_or("not synced")?.upload_all_local_changes().await?;
    drop(seed);
    let (mut downloads, mut resets, mut sqlite, mut peak) = (vec![], vec![], vec![], (0f64, 0f64));
    for rep in 0..opts.repeats.max(1) {
        progress(&format!("reset: a plain download of {objects} objects (run {})", rep + 1));
        let path = dir.join(format!("download-{rep}.haven"));
        let download = match &opts.haven_exe {
            Some(exe) => download_in_child(exe, &server.url(), PARTITION, &path, None)?,
            None => download_client(&server.url(), PARTITION, &path, None).await?,
        };
        check(download.objects == objects, "reset: the plain download has every object")?;
        progress(&format!("reset: a client with {unsynced} unsynced changes is reset (run {})", rep + 1));
        let path = dir.join(format!("reset-{rep}.haven"));
        prepare(server, &path, unsynced).await?;
        let reset = match &opts.haven_exe {
            Some(exe) => in_child(exe, &["reset-client", &server.url()], &path)?,
            None => reset_client(&server.url(), &path).await?,
        };
        check(reset.recovered == unsynced && reset.dropped == 0, "reset: every unsynced change recovered")?;
        downloads.push(download.ms);
        resets.push(reset.ms);
        peak = (peak.0.max(download.peak_mib), peak.1.max(reset.peak_mib));
        let conn = crate::local::sqlite_db(&dir.join(format!("sqlite-{rep}.sqlite")))?;
        let t = Instant::now();
        crate::local::sqlite_insert(&conn, 0, objects)?;
        sqlite.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut download = measurement("initial_download", downloads.clone(), sqlite);
    download.haven_peak_mib = Some(peak.0);
    download.objects_per_s = Some(objects as f64 / (download.haven_ms / 1000.0));
    let mut reset = measurement("reset", resets, downloads);
    reset.haven_peak_mib = Some(peak.1);
    reset.note = Some(format!(
        "{objects} objects, {unsynced} unsynced changes recovered; ratio = reset / plain download of the same partition{}",
        if opts.haven_exe.is_some() { "" } else { "; peak memory: this process, server included" }
    ));
    Ok(vec![download, reset])
}

async fn open(server: &Server, path: &Path, wait: bool) -> BenchResult<Database> {
    let sync = SyncConfig::new(server.url(), "bench", PARTITION).wait_for_download(wait);
    Ok(Database::open_synced(Config::new(path).schema(Schema::from_json(DOG)?).sync(sync)).await?)
}

/// A client that has the partition, `unsynced` changes made offline, and
/// that the server has reset; closed.
async fn prepare(server: &Server, path: &Path, unsynced: usize) -> BenchResult<()> {
    let db = open(server, path, true).await?;
    db.sync_session().ok_or("not synced")?.pause();
    for start in (0..unsynced).step_by(CHANGES_PER_TRANSACTION) {
        db.write(|tx| {
            (start..(start + CHANGES_PER_TRANSACTION).min(unsynced))
                .try_for_each(|id| tx.set("Dog", id as i64, "age", -(id as i64)))
        })?;
    }
    let (ident, _) = db.sync_position()?.file_ident.ok_or("never bound")?;
    server.reset_client(ident).await?;
    drop(db);
    while Database::is_open(path) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Opens the reset client at `path` and waits for its recovery to commit;
/// in this process.
pub async fn reset_client(url: &str, path: &Path) -> BenchResult<ResetRun> {
    let (done, finished) = tokio::sync::oneshot::channel();
    let done = std::sync::Mutex::new(Some(done));
    let mode = ClientResetMode::RecoverUnsynced {
        policy: RecoveryPolicy::LatestWins,
        before: None,
        after: Some(Box::new(move |_, _, report| {
            if let Some(done) = done.lock().expect("once").take() {
                let _ = done.send((report.recovered().len(), report.dropped().len()));
            }
            Ok(())
        })),
    };
    let t = Instant::now();
    let sync = SyncConfig::new(url, "bench", PARTITION).wait_for_download(false).client_reset(mode);
    let db = Database::open_synced(Config::new(path).schema(Schema::from_json(DOG)?).sync(sync)).await?;
    let (recovered, dropped) = tokio::time::timeout(Duration::from_secs(600), finished).await??;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(db);
    Ok(ResetRun { ms, peak_mib: memory::peak_mib().unwrap_or(0.0), recovered, dropped })
}
