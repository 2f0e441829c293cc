//! `haven bench sync`: a server (embedded storage) and clients in this
//! process over loopback WebSocket, every commit durable; with `--tls`,
//! the main workloads again over `wss://`. Each workload
//! also times, in the same run, a SQLite bulk insert of the same objects
//! (the `bench local` setup): `ratio` = Haven / that baseline.

use crate::local::{check, sqlite_db, sqlite_insert};
use crate::{dogs, lists};
use crate::{median, memory, Measurement};
use futures_util::{SinkExt, StreamExt};
use haven::{Config, Database, Schema, SyncConfig, UpdateMode, Value};
use haven_server::{Authenticator, EmbeddedStorage, PostgresStorage, Server, ServerOptions, Storage};
use haven_sync::protocol::{self, ClientMessage, ServerMessage};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// What to run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Smaller sizes (for a quick look or CI).
    pub quick: bool,
    /// Runs per workload; the median is reported.
    pub repeats: usize,
    /// Run only these workloads (all when empty).
    pub only: Vec<String>,
    /// The `haven` binary: `idle_connections` runs `haven serve` as a child
    /// process to measure the server's memory alone. Without it, that
    /// workload measures server and clients together, in this process.
    pub haven_exe: Option<std::path::PathBuf>,
    /// Run the server on this PostgreSQL (in a scratch schema, dropped
    /// afterwards) instead of the embedded store; adds the
    /// `cross_process_fan_out` workload (needs `haven_exe`).
    pub postgres: Option<String>,
    /// Also run `initial_download`, `upload` and `fan_out` over TLS
    /// (`wss://`, a certificate made for the run), after the plain run,
    /// and report each TLS row's time over the plain one.
    pub tls: bool,
}

/// The workloads `tls` repeats over TLS.
const TLS_WORKLOADS: [&str; 3] = ["initial_download", "upload", "fan_out"];

/// The sync workloads, in the order they run (the last only with PostgreSQL).
pub const SYNC_WORKLOADS: [&str; 6] =
    ["initial_download", "upload", "fan_out", "list_merge", "idle_connections", "cross_process_fan_out"];

/// Elements each of the two `list_merge` devices adds offline.
const LIST_MERGE_ELEMENTS: usize = 1_000;

/// Objects per write transaction when a client creates many.
const OBJECTS_PER_TRANSACTION: usize = 1_000;

struct SyncSizes {
    objects: usize,
    receivers: usize,
    rounds: usize,
    idle: usize,
}

pub(crate) type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs the sync workloads; `progress` hears what is running.
pub fn run_sync(opts: &SyncOptions, progress: &dyn Fn(&str)) -> BenchResult<Vec<Measurement>> {
    if let Some(unknown) = opts.only.iter().find(|o| !SYNC_WORKLOADS.contains(&o.as_str())) {
        return Err(format!("unknown workload '{unknown}'; the workloads are {}", SYNC_WORKLOADS.join(", ")).into());
    }
    let sizes = if opts.quick {
        SyncSizes { objects: 20_000, receivers: 20, rounds: 50, idle: 200 }
    } else {
        SyncSizes { objects: 100_000, receivers: 100, rounds: 100, idle: 1_000 }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let mut rows = run_against(opts, &sizes, dir.path(), None, progress).await?;
        if opts.tls {
            let tls = TlsSetup::make(dir.path())?;
            let tls_rows = run_against(opts, &sizes, dir.path(), Some(&tls), progress).await?;
            let compared: Vec<Measurement> = tls_rows
                .into_iter()
                .map(|mut row| {
                    let plain = rows.iter().find(|p| p.workload == row.workload);
                    row.tls_over_plain = plain.map(|p| row.haven_ms / p.haven_ms);
                    row.workload = format!("{} (TLS)", row.workload);
                    row
                })
                .collect();
            rows.extend(compared);
        }
        Ok(rows)
    })
}

/// A certificate made for the run, as files the server reads, and its
/// PEM, which the clients trust.
struct TlsSetup {
    files: haven_server::TlsFiles,
    certificate_pem: String,
}

impl TlsSetup {
    fn make(dir: &std::path::Path) -> BenchResult<TlsSetup> {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        let files = haven_server::TlsFiles { cert: dir.join("bench.crt"), key: dir.join("bench.key") };
        let certificate_pem = made.cert.pem();
        std::fs::write(&files.cert, &certificate_pem)?;
        std::fs::write(&files.key, made.signing_key.serialize_pem())?;
        Ok(TlsSetup { files, certificate_pem })
    }
}

/// The workloads against a server of their own (over TLS with `tls`).
async fn run_against(
    opts: &SyncOptions,
    sizes: &SyncSizes,
    dir: &std::path::Path,
    tls: Option<&TlsSetup>,
    progress: &dyn Fn(&str),
) -> BenchResult<Vec<Measurement>> {
    let run_dir = tempfile::tempdir_in(dir)?;
    let (storage, schema): (Arc<dyn Storage>, _) = match &opts.postgres {
        Some(url) => {
            let url = url.clone();
            let storage = tokio::task::spawn_blocking(move || PostgresStorage::connect_scratch(&url)).await??;
            let schema = storage.scratch_schema().map(str::to_owned);
            (Arc::new(storage), schema)
        }
        None => (Arc::new(EmbeddedStorage::open(&run_dir.path().join("server"))?), None),
    };
    let options = ServerOptions { tls: tls.map(|t| t.files.clone()), ..ServerOptions::default() };
    let server = Server::start_with_options(storage, Authenticator::Dev, "127.0.0.1:0".parse()?, options).await?;
    let bench = Bench {
        opts,
        sizes,
        url: server.url(),
        tls_root: tls.map(|t| t.certificate_pem.clone()),
        dir: run_dir,
        progress,
        schema,
    };
    let rows = bench.run().await;
    server.shutdown().await;
    rows
}

struct Bench<'a> {
    opts: &'a SyncOptions,
    sizes: &'a SyncSizes,
    url: String,
    /// Over TLS: the certificate the clients trust.
    tls_root: Option<String>,
    dir: tempfile::TempDir,
    progress: &'a dyn Fn(&str),
    /// With PostgreSQL: the scratch schema the server uses.
    schema: Option<String>,
}

impl Bench<'_> {
    async fn run(&self) -> BenchResult<Vec<Measurement>> {
        let mut out = vec![];
        let wanted = |name: &str| {
            let over_tls = self.tls_root.is_none() || TLS_WORKLOADS.contains(&name);
            over_tls && (self.opts.only.is_empty() || self.opts.only.iter().any(|o| o == name))
        };
        if wanted("initial_download") {
            out.push(self.initial_download().await?);
        }
        if wanted("upload") {
            out.push(self.upload().await?);
        }
        if wanted("fan_out") {
            out.push(self.fan_out().await?);
        }
        if wanted("list_merge") {
            out.push(self.list_merge().await?);
        }
        if wanted("idle_connections") {
            out.push(self.idle_connections().await?);
        }
        match (&self.opts.postgres, &self.schema, &self.opts.haven_exe) {
            (Some(url), Some(schema), Some(exe)) if wanted("cross_process_fan_out") => {
                out.push(self.cross_process_fan_out(exe, url, schema).await?);
            }
            _ if self.tls_root.is_none() && !self.opts.only.is_empty() && wanted("cross_process_fan_out") => {
                return Err("cross_process_fan_out needs --postgres (and the haven binary)".into());
            }
            _ => {}
        }
        Ok(out)
    }

    fn reps(&self) -> usize {
        self.opts.repeats.max(1)
    }

    /// The baseline: a SQLite bulk insert of the workload's objects.
    fn sqlite_bulk_ms(&self, name: &str) -> BenchResult<f64> {
        let conn = sqlite_db(&self.dir.path().join(format!("{name}.sqlite")))?;
        let t = Instant::now();
        sqlite_insert(&conn, 0, self.sizes.objects)?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }

    async fn open(&self, name: &str, partition: &str, wait: bool) -> BenchResult<Database> {
        self.open_at(&self.url, name, partition, wait).await
    }

    async fn open_at(&self, url: &str, name: &str, partition: &str, wait: bool) -> BenchResult<Database> {
        self.open_with(Schema::from_json(dogs::DOG_SCHEMA)?, url, name, partition, wait).await
    }

    async fn open_with(
        &self,
        schema: Schema,
        url: &str,
        name: &str,
        partition: &str,
        wait: bool,
    ) -> BenchResult<Database> {
        let sync = SyncConfig::new(url, "bench", partition).wait_for_download(wait);
        let sync = match &self.tls_root {
            Some(pem) => sync.tls_root_certificates(pem.as_bytes()),
            None => sync,
        };
        let config = Config::new(self.dir.path().join(format!("{name}.haven"))).schema(schema);
        Ok(Database::open_synced(config.sync(sync)).await?)
    }

    /// Two devices each append `LIST_MERGE_ELEMENTS` elements to one shared
    /// list offline; how long from going online until both hold every
    /// element, in the same order. The baseline: SQLite inserting as many
    /// rows into a child table.
    async fn list_merge(&self) -> BenchResult<Measurement> {
        let n = LIST_MERGE_ELEMENTS;
        let (mut haven, mut sqlite) = (vec![], vec![]);
        for rep in 0..self.reps() {
            (self.progress)(&format!(
                "list_merge: two devices append {n} elements each to one list offline (run {})",
                rep + 1
            ));
            let partition = format!("list-merge-{rep}");
            let a = self.open_with(lists::schema()?, &self.url, &format!("{partition}-a"), &partition, true).await?;
            let b = self.open_with(lists::schema()?, &self.url, &format!("{partition}-b"), &partition, true).await?;
            let (sa, sb) = (a.sync_session().ok_or("not synced")?, b.sync_session().ok_or("not synced")?);
            lists::create_owners(&a, 1)?;
            sa.upload_all_local_changes().await?;
            sb.download_all_server_changes().await?;
            sa.pause();
            sb.pause();
            // One owner: every element goes to Owner 0, A's from 0 and B's from n.
            lists::append(&a, 1, 0, n)?;
            lists::append(&b, 1, n, 2 * n)?;
            let t = Instant::now();
            sa.resume();
            sb.resume();
            sa.upload_all_local_changes().await?;
            sb.upload_all_local_changes().await?;
            sa.download_all_server_changes().await?;
            sb.download_all_server_changes().await?;
            haven.push(t.elapsed().as_secs_f64() * 1000.0);
            let (la, lb) = (lists::values(&a)?, lists::values(&b)?);
            let mut all = la[0].clone();
            all.sort_unstable();
            check(la == lb, "list_merge: both devices hold the same list")?;
            check(all == (0..2 * n as i64).collect::<Vec<_>>(), "list_merge: every element of both devices is there")?;
            sqlite.push(self.sqlite_list_ms(&partition, 2 * n)?);
        }
        let mut m = measurement("list_merge", haven, sqlite);
        m.objects_per_s = Some(2.0 * n as f64 / (m.haven_ms / 1000.0));
        m.note = Some(format!("converged: {} elements, the same order, on both devices", 2 * n));
        Ok(m)
    }

    /// The baseline of `list_merge`: `rows` elements into a child table.
    fn sqlite_list_ms(&self, name: &str, rows: usize) -> BenchResult<f64> {
        let conn = rusqlite::Connection::open(self.dir.path().join(format!("{name}.sqlite")))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE walk (owner INTEGER NOT NULL, value INTEGER NOT NULL);
             CREATE INDEX walk_owner ON walk(owner);",
        )?;
        let t = Instant::now();
        let tx = conn.unchecked_transaction()?;
        for i in 0..rows {
            tx.execute("INSERT INTO walk (owner, value) VALUES (0, ?1)", [i as i64])?;
        }
        tx.commit()?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }

    /// A fresh client opens a partition holding `objects` Dogs. With the
    /// `haven` binary at hand, the client runs in a child process
    /// (`haven bench download-client`), so that its peak memory is its own.
    async fn initial_download(&self) -> BenchResult<Measurement> {
        let n = self.sizes.objects;
        (self.progress)(&format!("initial_download: seeding a partition with {n} objects"));
        let seed = self.open("download-seed", "download", true).await?;
        create_dogs(&seed, n)?;
        seed.sync_session().ok_or("not synced")?.upload_all_local_changes().await?;
        drop(seed);
        let (mut haven, mut sqlite, mut peak, mut per_file, mut file) = (vec![], vec![], 0f64, 0f64, 0f64);
        for rep in 0..self.reps() {
            (self.progress)(&format!("initial_download: a fresh client downloads {n} objects (run {})", rep + 1));
            let path = self.dir.path().join(format!("download-{rep}.haven"));
            let run = match &self.opts.haven_exe {
                Some(exe) => download_in_child(exe, &self.url, "download", &path, self.tls_root.as_deref())?,
                None => download_client(&self.url, "download", &path, self.tls_root.as_deref()).await?,
            };
            check(run.objects == n, "initial_download: the client has every object")?;
            let file_mib = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
            haven.push(run.ms);
            peak = peak.max(run.peak_mib);
            per_file = per_file.max(run.peak_mib / file_mib);
            file = file_mib;
            sqlite.push(self.sqlite_bulk_ms(&format!("download-{rep}"))?);
        }
        let mut m = measurement("initial_download", haven, sqlite);
        m.objects_per_s = Some(n as f64 / (m.haven_ms / 1000.0));
        m.haven_peak_mib = Some(peak);
        m.note = Some(match &self.opts.haven_exe {
            Some(_) => format!("client file {file:.0} MiB, client peak memory / file size: {per_file:.2}"),
            None => "peak memory: this process, server included".to_owned(),
        });
        Ok(m)
    }

    /// A client uploads `objects` Dogs created offline, until acknowledged.
    async fn upload(&self) -> BenchResult<Measurement> {
        let n = self.sizes.objects;
        let (mut haven, mut sqlite, mut peak) = (vec![], vec![], 0f64);
        for rep in 0..self.reps() {
            (self.progress)(&format!("upload: {n} offline-created objects until acknowledged (run {})", rep + 1));
            let db = self.open(&format!("upload-{rep}"), &format!("upload-{rep}"), true).await?;
            let session = db.sync_session().ok_or("not synced")?;
            session.pause();
            create_dogs(&db, n)?;
            memory::reset_peak();
            let t = Instant::now();
            session.resume();
            session.upload_all_local_changes().await?;
            haven.push(t.elapsed().as_secs_f64() * 1000.0);
            peak = peak.max(memory::peak_mib().unwrap_or(0.0));
            check(db.pending_changes()?.is_empty(), "upload: every change acknowledged")?;
            drop(db);
            sqlite.push(self.sqlite_bulk_ms(&format!("upload-{rep}"))?);
        }
        let mut m = measurement("upload", haven, sqlite);
        m.objects_per_s = Some(n as f64 / (m.haven_ms / 1000.0));
        m.haven_peak_mib = Some(peak);
        Ok(m)
    }

    /// One writer commits a change; how long until every connected
    /// receiver has committed it locally.
    async fn fan_out(&self) -> BenchResult<Measurement> {
        self.fan_out_between("fan_out", &self.url, &self.url).await
    }

    /// Two `haven serve --postgres` processes on the bench's database: the
    /// writer on one, the receivers on the other.
    async fn cross_process_fan_out(&self, exe: &std::path::Path, url: &str, schema: &str) -> BenchResult<Measurement> {
        let args = ["--postgres", url, "--postgres-schema", schema];
        let (one, two) = (ChildServer::start(exe, &args)?, ChildServer::start(exe, &args)?);
        let mut m = self.fan_out_between("cross_process_fan_out", &one.url, &two.url).await?;
        m.note = m.note.map(|n| format!("{n}; writer and receivers on two haven serve processes"));
        Ok(m)
    }

    /// A writer (at `writer_url`) commits one-field changes; receivers (at
    /// `reader_url`) each commit them; p50/p99 of the time until all have.
    async fn fan_out_between(&self, workload: &str, writer_url: &str, reader_url: &str) -> BenchResult<Measurement> {
        let (k, rounds) = (self.sizes.receivers, self.sizes.rounds);
        (self.progress)(&format!("{workload}: connecting {k} receivers"));
        let partition = workload;
        let writer = self.open_at(writer_url, &format!("{workload}-writer"), partition, true).await?;
        writer.write(|tx| {
            tx.create("Dog", serde_json::json!({"_id": 0, "name": "Rex", "lastUpdated": 0}), UpdateMode::Never)
        })?;
        writer.sync_session().ok_or("not synced")?.upload_all_local_changes().await?;
        let mut receivers = vec![];
        for i in 0..k {
            receivers.push(self.open_at(reader_url, &format!("{workload}-{i}"), partition, true).await?);
        }
        let mut latencies = vec![];
        for round in 1..=rounds {
            if round % 10 == 1 {
                (self.progress)(&format!("{workload}: {k} receivers, round {round} of {rounds}"));
            }
            let waits: Vec<_> = receivers
                .iter()
                .map(|r| {
                    let mut status = r.sync_session().expect("synced").watch();
                    let target = status.borrow().progress.downloaded + 1;
                    tokio::spawn(async move { status.wait_for(|s| s.progress.downloaded >= target).await.is_ok() })
                })
                .collect();
            let t = Instant::now();
            writer.write(|tx| tx.set("Dog", 0, "age", round as i64))?;
            for wait in waits {
                check(tokio::time::timeout(Duration::from_secs(30), wait).await??, "a fan-out receiver stopped")?;
            }
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        for r in &receivers {
            let age = r.object_for_primary_key("Dog", 0)?.and_then(|o| o.get("age"));
            check(age == Some(Value::Int(rounds as i64)), "fan-out: every receiver has the last change")?;
        }
        let sqlite = (0..self.reps())
            .map(|rep| self.sqlite_bulk_ms(&format!("{workload}-{rep}")))
            .collect::<BenchResult<_>>()?;
        let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
        let mut m = measurement(workload, vec![p50], sqlite);
        m.p50_ms = Some(p50);
        m.p99_ms = Some(p99);
        m.note = Some(format!("{k} receivers, {rounds} changes"));
        Ok(m)
    }

    /// Idle connected clients (bound, then silent): memory per connection.
    async fn idle_connections(&self) -> BenchResult<Measurement> {
        let count = self.sizes.idle;
        let child = match &self.opts.haven_exe {
            Some(exe) => {
                let data_dir = self.dir.path().join("idle-server");
                Some(ChildServer::start(exe, &["--data-dir", data_dir.to_str().ok_or("a non-UTF-8 path")?])?)
            }
            None => None,
        };
        let (url, rss): (String, Box<dyn Fn() -> Option<f64>>) = match &child {
            Some(c) => (c.url.clone(), Box::new(|| memory::process_mib(c.pid()))),
            None => (self.url.clone(), Box::new(memory::current_mib)),
        };
        (self.progress)(&format!("idle_connections: binding {count} idle clients"));
        let schema = Schema::from_json(dogs::DOG_SCHEMA)?.to_json();
        // One client first: the server's one-time allocations are not per connection.
        let first = idle_client(&url, &schema).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss().ok_or("idle_connections needs /proc/<pid>/status")?;
        let t = Instant::now();
        let mut sockets = Vec::with_capacity(count);
        for _ in 0..count {
            sockets.push(idle_client(&url, &schema).await?);
        }
        let haven_ms = t.elapsed().as_secs_f64() * 1000.0;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss().ok_or("idle_connections needs /proc/<pid>/status")?;
        drop((first, sockets));
        let sqlite =
            (0..self.reps()).map(|rep| self.sqlite_bulk_ms(&format!("idle-{rep}"))).collect::<BenchResult<_>>()?;
        let mut m = measurement("idle_connections", vec![haven_ms], sqlite);
        m.kib_per_connection = Some((after - before) * 1024.0 / count as f64);
        m.note = Some(match child {
            Some(_) => format!("{count} connections; memory of the server process (haven serve) alone"),
            None => format!("{count} connections; server and clients together, in this process"),
        });
        Ok(m)
    }
}

/// `haven serve` in a child process, killed when dropped.
pub(crate) struct ChildServer {
    child: std::process::Child,
    pub(crate) url: String,
}

impl ChildServer {
    /// `haven serve --listen 127.0.0.1:0 ARGS`.
    pub(crate) fn start(exe: &std::path::Path, args: &[&str]) -> BenchResult<ChildServer> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let url =
            line.trim().strip_prefix("haven listening on ").ok_or_else(|| format!("haven serve said {line:?}"))?;
        Ok(ChildServer { url: url.to_owned(), child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl ChildServer {
    /// SIGKILL, and waits for it to end.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What one fresh client's initial download took.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DownloadRun {
    /// Milliseconds from open to the finished download.
    pub ms: f64,
    /// The process's peak resident memory, MiB.
    pub peak_mib: f64,
    /// Objects the client then holds.
    pub objects: usize,
}

/// Opens `path` synced with `partition` at `url` (trusting `tls_root`, a
/// PEM certificate, if given) and waits for the download; in this process.
pub async fn download_client(
    url: &str,
    partition: &str,
    path: &std::path::Path,
    tls_root: Option<&str>,
) -> BenchResult<DownloadRun> {
    let t = Instant::now();
    let sync = SyncConfig::new(url, "bench", partition);
    let sync = match tls_root {
        Some(pem) => sync.tls_root_certificates(pem.as_bytes()),
        None => sync,
    };
    let db = Database::open_synced(Config::new(path).schema(Schema::from_json(dogs::DOG_SCHEMA)?).sync(sync)).await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let objects = db.objects("Dog")?.len()?;
    Ok(DownloadRun { ms, peak_mib: memory::peak_mib().unwrap_or(0.0), objects })
}

/// [`download_client`] in a child process: `haven bench download-client
/// URL PARTITION [--tls-root PEM_FILE] PATH`.
pub(crate) fn download_in_child(
    exe: &std::path::Path,
    url: &str,
    partition: &str,
    path: &std::path::Path,
    tls_root: Option<&str>,
) -> BenchResult<DownloadRun> {
    let Some(pem) = tls_root else { return in_child(exe, &["download-client", url, partition], path) };
    let pem_file = path.with_extension("root.pem");
    std::fs::write(&pem_file, pem)?;
    let pem_file = pem_file.to_str().ok_or("a non-UTF-8 path")?;
    in_child(exe, &["download-client", url, partition, "--tls-root", pem_file], path)
}

/// Runs `haven bench ARGS PATH` and reads the JSON it prints.
pub(crate) fn in_child<T: serde::de::DeserializeOwned>(
    exe: &std::path::Path,
    args: &[&str],
    path: &std::path::Path,
) -> BenchResult<T> {
    let out = std::process::Command::new(exe).arg("bench").args(args).arg(path).output()?;
    if !out.status.success() {
        return Err(format!("haven bench {} failed: {}", args[0], String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Creates Dogs `0..n` (as `bench local` does) in transactions of
/// [`OBJECTS_PER_TRANSACTION`].
pub(crate) fn create_dogs(db: &Database, n: usize) -> haven::Result<()> {
    for start in (0..n).step_by(OBJECTS_PER_TRANSACTION) {
        dogs::insert(db, start, (start + OBJECTS_PER_TRANSACTION).min(n))?;
    }
    Ok(())
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client that binds, reads its first download, and stays silent.
async fn idle_client(url: &str, schema: &str) -> BenchResult<Socket> {
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(format!("{url}/sync"), Some(config), true).await?;
    let bind = ClientMessage::Bind {
        token: "bench".into(),
        partition: "idle".into(),
        file_ident: None,
        last_server_version: 0,
        last_server_version_salt: 0,
        uploaded_through: 0,
        last_client_version: 0,
        schema: schema.to_owned(),
        resetting: false,
        request_reset: false,
    };
    ws.send(Message::Binary(protocol::encode(&bind)?.into())).await?;
    for _ in 0..2 {
        match ws.next().await {
            Some(Ok(Message::Binary(frame))) => match protocol::decode::<ServerMessage>(&frame)? {
                ServerMessage::Bound { .. } | ServerMessage::Download { .. } => {}
                other => return Err(format!("idle client: unexpected {other:?}").into()),
            },
            other => return Err(format!("idle client: unexpected {other:?}").into()),
        }
    }
    Ok(ws)
}

pub(crate) fn measurement(workload: &str, haven: Vec<f64>, sqlite: Vec<f64>) -> Measurement {
    let (haven_ms, sqlite_ms) = (median(haven), median(sqlite));
    Measurement {
        workload: workload.to_owned(),
        haven_ms,
        sqlite_ms,
        ratio: haven_ms / sqlite_ms,
        ..Measurement::default()
    }
}

/// The `q` quantile (nearest rank).
pub(crate) fn percentile(xs: &[f64], q: f64) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
