//! `haven bench`.

use clap::Subcommand;
use haven_bench::{format_table, run_local, LocalOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

#[derive(Subcommand)]
pub enum Suite {
    /// The local database against SQLite: bulk_insert, single_commits,
    /// pk_lookup, range_query, scan_query.
    Local {
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
    },
}

pub fn run(suite: Suite) -> Result<(), Box<dyn std::error::Error>> {
    let Suite::Local { quick, json, repeats, only } = suite;
    if repeats == 0 {
        return Err("--repeats must be at least 1".into());
    }
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")?);
    bar.enable_steady_tick(Duration::from_millis(120));
    let rows = run_local(&LocalOptions { quick, repeats, only }, &|step| bar.set_message(step.to_owned()))?;
    bar.finish_and_clear();
    if json {
        for row in &rows {
            println!(
                "{}",
                serde_json::json!({
                    "workload": row.workload, "haven_ms": row.haven_ms, "sqlite_ms": row.sqlite_ms,
                    "ratio": row.ratio, "haven_peak_mib": row.haven_peak_mib,
                })
            );
        }
    } else {
        print!("{}", format_table(&rows));
        println!("(medians of {repeats} runs; ratio < 1 means Haven is faster)");
    }
    Ok(())
}
