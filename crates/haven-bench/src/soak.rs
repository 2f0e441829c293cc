//! `haven bench soak`: many devices writing through one `haven serve` for
//! a while. Not a race against SQLite: it reports what a server under a
//! steady load does — writes acknowledged per second, how long each write
//! waits for its acknowledgement, the server's memory over time — and
//! checks at the end, in the files of the server it killed, that every
//! write is there.

use crate::dogs::DOG_SCHEMA as DOG;
use crate::memory;
use crate::sync::{percentile, BenchResult, ChildServer};
use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use haven_server::{EmbeddedStorage, Storage};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Devices, each with its own file and connection.
    pub clients: usize,
    /// How long they write.
    pub duration: Duration,
    /// Each device's pause between writes.
    pub interval: Duration,
    /// Devices that share a partition (1: each its own, as per-user data
    /// is; more: each write also goes to the partition's other devices).
    pub devices_per_partition: usize,
    /// `haven serve --cache-mib` (`None`: its default).
    pub server_cache_mib: Option<u64>,
    /// The `haven` binary, to run `haven serve` in a process of its own.
    pub haven_exe: std::path::PathBuf,
}

/// What a soak run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    /// Devices.
    pub clients: usize,
    /// Seconds of writing.
    pub seconds: f64,
    /// Write transactions committed (each creates one object).
    pub writes: usize,
    /// Writes acknowledged by the server per second.
    pub acknowledged_per_s: f64,
    /// From a commit to its acknowledgement (the device's
    /// `upload_all_local_changes` returning): median, ms.
    pub ack_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub ack_p99_ms: f64,
    /// The same, the slowest, ms.
    pub ack_max_ms: f64,
    /// The server process's resident memory, `(seconds, MiB)`, sampled
    /// through the run.
    pub server_rss_mib: Vec<(f64, f64)>,
    /// Server memory at the end minus at a third of the run (once
    /// connections have settled), MiB. The page cache grows with the data
    /// until it is full: compare with `server_data_mib`.
    pub server_growth_mib: f64,
    /// The server's data file at the end, MiB.
    pub server_data_mib: f64,
    /// Partitions the devices wrote to.
    pub partitions: usize,
    /// Distinct objects in the server's stored history at the end, read
    /// from its files after it was killed (SIGKILL): what it acknowledged
    /// is durable.
    pub on_server: usize,
    /// Writes committed but not on the server at the end (must be 0).
    pub lost: usize,
}

impl SoakReport {
    /// For people.
    pub fn summary(&self) -> String {
        let rss: Vec<String> = self.server_rss_mib.iter().map(|(s, m)| format!("{s:.0}s {m:.0}")).collect();
        format!(
            "{} clients in {} partition(s) for {:.0} s: {} writes, {:.0} acknowledged/s\n\
             upload to acknowledgement: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             server memory (MiB): {}\n\
             server memory growth after the first third: {:+.1} MiB (data file: {:.1} MiB)\n\
             on the server (read from its files after a SIGKILL): {} of {} writes ({} lost)\n",
            self.clients,
            self.partitions,
            self.seconds,
            self.writes,
            self.acknowledged_per_s,
            self.ack_p50_ms,
            self.ack_p99_ms,
            self.ack_max_ms,
            rss.join(", "),
            self.server_growth_mib,
            self.server_data_mib,
            self.on_server,
            self.writes,
            self.lost
        )
    }
}

/// Runs the soak; `progress` hears what is happening.
pub fn run_soak(opts: &SoakOptions, progress: &dyn Fn(&str)) -> BenchResult<SoakReport> {
    if opts.clients == 0 || opts.duration.is_zero() || opts.devices_per_partition == 0 {
        return Err("a soak needs at least one client, one per partition, and a duration above zero".into());
    }
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("server");
    let mut server_args = vec!["--data-dir".to_owned(), data_dir.to_str().ok_or("a non-UTF-8 path")?.to_owned()];
    if let Some(mib) = opts.server_cache_mib {
        server_args.extend(["--cache-mib".to_owned(), mib.to_string()]);
    }
    let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let mut server = ChildServer::start(&opts.haven_exe, &server_args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (writes, seconds, rss, latencies) = runtime.block_on(async {
        progress(&format!("opening {} devices", opts.clients));
        let mut devices = Vec::with_capacity(opts.clients);
        for i in 0..opts.clients {
            let path = dir.path().join(format!("device-{i}.haven"));
            let db = Database::open_synced(config(&path, &server.url, &partition_name(i / opts.devices_per_partition)))
                .await
                .map_err(|e| format!("device {i}: {e} (with many clients, raise the open-file limit: ulimit -n)"))?;
            devices.push(Arc::new(db));
        }
        progress(&format!("{} devices writing for {:?}", opts.clients, opts.duration));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let deadline = started + opts.duration;
        let writers: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(i, db)| tokio::spawn(write_until(db.clone(), i, opts.clone(), deadline, latencies.clone())))
            .collect();
        // The server's memory, about twenty times through the run.
        let mut rss = Vec::new();
        let every = (opts.duration / 20).max(Duration::from_millis(500));
        while Instant::now() < deadline {
            if let Some(mib) = memory::process_mib(server.pid()) {
                rss.push((started.elapsed().as_secs_f64(), mib));
            }
            tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        let mut writes = 0;
        for writer in writers {
            writes += writer.await??;
        }
        let seconds = started.elapsed().as_secs_f64();
        if let Some(mib) = memory::process_mib(server.pid()) {
            rss.push((seconds, mib));
        }
        drop(devices);
        let latencies = std::mem::take(&mut *latencies.lock().unwrap());
        Ok::<_, Box<dyn std::error::Error>>((writes, seconds, rss, latencies))
    })?;
    // What the server acknowledged must be in its files, however it stops.
    progress("killing the server and reading its files");
    server.kill();
    let storage = EmbeddedStorage::open(&data_dir)?;
    let partitions = opts.clients.div_ceil(opts.devices_per_partition);
    let mut on_server = 0;
    for p in 0..partitions {
        let mut objects = std::collections::HashSet::new();
        for h in storage.history(&partition_name(p), 0, usize::MAX)? {
            objects.extend(h.changeset.instructions.iter().filter_map(|i| i.object().1.as_int()));
        }
        on_server += objects.len();
    }
    let settled = rss.iter().find(|(s, _)| *s >= seconds / 3.0).map_or(0.0, |(_, m)| *m);
    Ok(SoakReport {
        clients: opts.clients,
        partitions,
        seconds,
        writes,
        acknowledged_per_s: latencies.len() as f64 / seconds,
        ack_p50_ms: percentile(&latencies, 0.5),
        ack_p99_ms: percentile(&latencies, 0.99),
        ack_max_ms: percentile(&latencies, 1.0),
        server_growth_mib: rss.last().map_or(0.0, |(_, m)| m - settled),
        server_rss_mib: rss,
        server_data_mib: std::fs::metadata(data_dir.join("haven-server.redb"))?.len() as f64 / (1 << 20) as f64,
        on_server,
        lost: writes.saturating_sub(on_server),
    })
}

fn partition_name(p: usize) -> String {
    format!("soak-{p}")
}

fn config(path: &std::path::Path, url: &str, partition: &str) -> Config {
    let sync = SyncConfig::new(url, "soak", partition).wait_for_download(false);
    Config::new(path).schema(Schema::from_json(DOG).expect("the bench schema")).sync(sync)
}

/// One device: writes an object, waits for its acknowledgement, pauses;
/// until `deadline`. Returns how many it wrote.
async fn write_until(
    db: Arc<Database>,
    device: usize,
    opts: SoakOptions,
    deadline: Instant,
    latencies: Arc<Mutex<Vec<f64>>>,
) -> Result<usize, String> {
    let failed = |e: &dyn std::fmt::Display| format!("device {device}: {e}");
    let session = db.sync_session().ok_or_else(|| failed(&"no sync session"))?;
    // Spread the devices over the first interval, so they do not write in step.
    let offset = opts.interval.mul_f64(device as f64 / opts.clients as f64);
    tokio::time::sleep(offset).await;
    let mut n = 0;
    while Instant::now() < deadline {
        let id = (device * 1_000_000 + n) as i64;
        // A commit waits for the disk: off the runtime's threads.
        let writer = db.clone();
        tokio::task::spawn_blocking(move || {
            writer.write(|tx| {
                tx.create("Dog", serde_json::json!({"_id": id, "name": "soak", "lastUpdated": id}), UpdateMode::Never)
            })
        })
        .await
        .map_err(|e| failed(&e))?
        .map_err(|e| failed(&e))?;
        n += 1;
        let committed = Instant::now();
        session.upload_all_local_changes().await.map_err(|e| failed(&e))?;
        latencies.lock().unwrap().push(committed.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(opts.interval).await;
    }
    Ok(n)
}
