//! Side-by-side benchmarks: the same workload on Haven and on SQLite, one
//! after the other in one process, repeated; medians and their ratio.
//!
//! SQLite runs as a careful app would use it: bundled SQLite, WAL,
//! `synchronous=FULL`, prepared statements, an index on the same column
//! Haven indexes. `docs/benchmarks.md` says what each workload measures.

#![warn(missing_docs)]

pub mod dogs;
pub mod lists;
mod local;
mod memory;
mod reset;
mod soak;
mod sync;

pub use local::{run_local, LocalOptions};
pub use reset::{reset_client, run_reset, ResetOptions, ResetRun};
pub use soak::{run_soak, SoakOptions, SoakReport};
pub use sync::{download_client, run_sync, DownloadRun, SyncOptions, SYNC_WORKLOADS};

/// One workload's result.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Measurement {
    /// The workload's name.
    pub workload: String,
    /// Median Haven time, milliseconds.
    pub haven_ms: f64,
    /// Median SQLite time, milliseconds.
    pub sqlite_ms: f64,
    /// `haven_ms / sqlite_ms`: below 1 means Haven is faster.
    pub ratio: f64,
    /// Haven's peak resident memory during the workload, MiB (`None` where
    /// the platform does not tell).
    pub haven_peak_mib: Option<f64>,
    /// Objects moved per second (sync workloads that move objects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects_per_s: Option<f64>,
    /// Median latency, milliseconds (`fan_out`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 99th-percentile latency, milliseconds (`fan_out`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Memory per connection, KiB (`idle_connections`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kib_per_connection: Option<f64>,
    /// Over TLS: this row's Haven time over the same workload's plain
    /// WebSocket time, in the same run (`bench sync --tls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_over_plain: Option<f64>,
    /// What else to know about the row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Prints measurements as a table.
pub fn format_table(rows: &[Measurement]) -> String {
    let mut out = format!(
        "{:<22} {:>12} {:>12} {:>14} {:>14}\n",
        "workload", "haven ms", "sqlite ms", "haven/sqlite", "haven peak MiB"
    );
    for m in rows {
        let peak = m.haven_peak_mib.map_or("-".to_owned(), |p| format!("{p:.0}"));
        out += &format!("{:<22} {:>12.1} {:>12.1} {:>14.2} {:>14}", m.workload, m.haven_ms, m.sqlite_ms, m.ratio, peak);
        let extras = [
            m.objects_per_s.map(|v| format!("{v:.0} objects/s")),
            m.p50_ms.map(|v| format!("p50 {v:.1} ms")),
            m.p99_ms.map(|v| format!("p99 {v:.1} ms")),
            m.kib_per_connection.map(|v| format!("{v:.1} KiB/connection")),
            m.tls_over_plain.map(|v| format!("TLS/plain {v:.2}")),
            m.note.clone(),
        ];
        let extras: Vec<String> = extras.into_iter().flatten().collect();
        if !extras.is_empty() {
            out += &format!("  {}", extras.join(", "));
        }
        out += "\n";
    }
    out
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// A small deterministic generator (splitmix64) so both engines get the
/// same keys in the same order.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
