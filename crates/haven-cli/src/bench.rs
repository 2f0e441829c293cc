//! `haven bench`.

use clap::Subcommand;
use haven_bench::{
    download_client, format_table, reset_client, run_local, run_reset, run_soak, run_sync, LocalOptions, ResetOptions,
    SoakOptions, SyncOptions,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

#[derive(Subcommand)]
pub enum Suite {
    /// The local database against SQLite: bulk_insert, single_commits,
    /// pk_lookup, range_query, scan_query, list_append.
    Local(Options),
    /// Sync over loopback WebSocket (server and clients in this process):
    /// initial_download, upload, fan_out, list_merge, idle_connections;
    /// each against a SQLite bulk insert of the same objects (list_merge:
    /// of as many rows into a child table).
    Sync(Options),
    /// Client reset: a client with many unsynced changes is reset and
    /// recovers them; against a plain initial download of the same partition.
    Reset(Options),
    /// Load and soak: many devices writing through one `haven serve` for a
    /// while; reports acknowledged writes per second, upload-to-acknowledgement
    /// latency and the server's memory over time, and checks that every
    /// write is on the server at the end.
    Soak(SoakArgs),
    /// (Used by `bench sync` and `bench reset`: one fresh client's initial
    /// download, in its own process so that its memory is measured alone.)
    #[command(hide = true)]
    DownloadClient {
        url: String,
        partition: String,
        /// A PEM certificate to trust for a `wss://` URL.
        #[arg(long)]
        tls_root: Option<std::path::PathBuf>,
        path: std::path::PathBuf,
    },
    /// (Used by `bench reset`: one client's reset and recovery, in its own process.)
    #[command(hide = true)]
    ResetClient { url: String, path: std::path::PathBuf },
}

#[derive(clap::Args)]
pub struct Options {
    /// Smaller sizes: a quick look, or CI.
    #[arg(long)]
    quick: bool,
    /// One JSON object per workload instead of a table.
    #[arg(long)]
    json: bool,
    /// Runs per workload and engine (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Run only this workload (repeatable).
    #[arg(long, value_name = "WORKLOAD")]
    only: Vec<String>,
    /// `bench sync` only: the server on this PostgreSQL (a scratch schema,
    /// dropped afterwards), plus the `cross_process_fan_out` workload.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// `bench sync` only: run initial_download, upload and fan_out over
    /// TLS too (`wss://`), and report TLS/plain per workload.
    #[arg(long)]
    tls: bool,
}

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Devices, each with its own file and connection.
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// How long they write (`5m`, `30s`, `1h`).
    #[arg(long, default_value = "5m", value_parser = crate::serve::parse_duration)]
    duration: Duration,
    /// Each device's pause between writes (`1s`, `250ms`).
    #[arg(long, default_value = "1s", value_parser = crate::serve::parse_duration)]
    interval: Duration,
    /// Devices that share a partition (1: each its own, like per-user
    /// data; more: every write also goes down to the others).
    #[arg(long, default_value_t = 1)]
    devices_per_partition: usize,
    /// `haven serve --cache-mib` for the server (default: its default).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    server_cache_mib: Option<u64>,
    /// One JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

fn soak(args: &SoakArgs) -> Result<(), Box<dyn std::error::Error>> {
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")?);
    bar.enable_steady_tick(Duration::from_millis(120));
    let opts = SoakOptions {
        clients: args.clients,
        duration: args.duration,
        interval: args.interval,
        devices_per_partition: args.devices_per_partition,
        server_cache_mib: args.server_cache_mib,
        haven_exe: std::env::current_exe()?,
    };
    let report = run_soak(&opts, &|step| bar.set_message(step.to_owned()))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.summary());
    }
    if report.lost > 0 {
        return Err(format!("{} writes are not on the server", report.lost).into());
    }
    Ok(())
}

pub fn run(suite: Suite) -> Result<(), Box<dyn std::error::Error>> {
    let opts = match &suite {
        Suite::Soak(args) => return soak(args),
        Suite::Local(opts) | Suite::Sync(opts) | Suite::Reset(opts) => opts,
        Suite::DownloadClient { url, partition, tls_root, path } => {
            let root = tls_root.as_ref().map(std::fs::read_to_string).transpose()?;
            let run =
                tokio::runtime::Runtime::new()?.block_on(download_client(url, partition, path, root.as_deref()))?;
            println!("{}", serde_json::to_string(&run)?);
            return Ok(());
        }
        Suite::ResetClient { url, path } => {
            let run = tokio::runtime::Runtime::new()?.block_on(reset_client(url, path))?;
            println!("{}", serde_json::to_string(&run)?);
            return Ok(());
        }
    };
    let Options { quick, json, repeats, ref only, ref postgres, tls } = *opts;
    if (postgres.is_some() || tls) && !matches!(suite, Suite::Sync(_)) {
        return Err("--postgres and --tls are for bench sync".into());
    }
    let postgres = postgres.clone();
    if repeats == 0 {
        return Err("--repeats must be at least 1".into());
    }
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")?);
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = |step: &str| bar.set_message(step.to_owned());
    let only = only.clone();
    let rows = match suite {
        Suite::Sync(_) => {
            let haven_exe = std::env::current_exe().ok();
            run_sync(&SyncOptions { quick, repeats, only, haven_exe, postgres, tls }, &progress)?
        }
        Suite::Reset(_) => {
            if !only.is_empty() {
                return Err("bench reset has one workload: drop --only".into());
            }
            let haven_exe = std::env::current_exe().ok();
            run_reset(&ResetOptions { quick, repeats, haven_exe }, &progress)?
        }
        _ => run_local(&LocalOptions { quick, repeats, only }, &progress)?,
    };
    bar.finish_and_clear();
    if json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        print!("{}", format_table(&rows));
        println!("(medians of {repeats} runs; ratio < 1 means Haven is faster)");
    }
    Ok(())
}
