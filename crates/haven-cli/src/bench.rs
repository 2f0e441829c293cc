//! `haven bench`.

use clap::Subcommand;
use haven_bench::{
    download_client, format_table, reset_client, run_local, run_reset, run_sync, LocalOptions, ResetOptions,
    SyncOptions,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

#[derive(Subcommand)]
pub enum Suite {
    /// The local database against SQLite: bulk_insert, single_commits,
    /// pk_lookup, range_query, scan_query.
    Local(Options),
    /// Sync over loopback WebSocket (server and clients in this process):
    /// initial_download, upload, fan_out, idle_connections; each against a
    /// SQLite bulk insert of the same objects.
    Sync(Options),
    /// Client reset: a client with many unsynced changes is reset and
    /// recovers them; against a plain initial download of the same partition.
    Reset(Options),
    /// (Used by `bench sync` and `bench reset`: one fresh client's initial
    /// download, in its own process so that its memory is measured alone.)
    #[command(hide = true)]
    DownloadClient { url: String, partition: String, path: std::path::PathBuf },
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
}

pub fn run(suite: Suite) -> Result<(), Box<dyn std::error::Error>> {
    let opts = match &suite {
        Suite::Local(opts) | Suite::Sync(opts) | Suite::Reset(opts) => opts,
        Suite::DownloadClient { url, partition, path } => {
            let run = tokio::runtime::Runtime::new()?.block_on(download_client(url, partition, path))?;
            println!("{}", serde_json::to_string(&run)?);
            return Ok(());
        }
        Suite::ResetClient { url, path } => {
            let run = tokio::runtime::Runtime::new()?.block_on(reset_client(url, path))?;
            println!("{}", serde_json::to_string(&run)?);
            return Ok(());
        }
    };
    let Options { quick, json, repeats, ref only, ref postgres } = *opts;
    if postgres.is_some() && !matches!(suite, Suite::Sync(_)) {
        return Err("--postgres is for bench sync".into());
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
            run_sync(&SyncOptions { quick, repeats, only, haven_exe, postgres }, &progress)?
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
