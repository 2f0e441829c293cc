//! The server's counters, served as Prometheus text on `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the integration latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];

#[derive(Default)]
pub(crate) struct Metrics {
    pub connections: AtomicU64,
    pub changesets_integrated: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub refused: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl Metrics {
    pub fn observe_integration(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, partitions: usize) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric("haven_connections", "gauge", "Open sync connections.", self.connections.load(Relaxed).to_string());
        metric("haven_partitions", "gauge", "Partitions with a connected client.", partitions.to_string());
        let integrated = self.changesets_integrated.load(Relaxed).to_string();
        metric("haven_changesets_integrated_total", "counter", "Changesets integrated.", integrated);
        metric("haven_bytes_in_total", "counter", "Frame bytes received.", self.bytes_in.load(Relaxed).to_string());
        metric("haven_bytes_out_total", "counter", "Frame bytes sent.", self.bytes_out.load(Relaxed).to_string());
        let refused = self.refused.load(Relaxed).to_string();
        metric("haven_connections_refused_total", "counter", "Connections closed with an error.", refused);
        let name = "haven_integration_seconds";
        let _ = writeln!(out, "# HELP {name} Time to integrate one upload.\n# TYPE {name} histogram");
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Relaxed));
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.latency_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}
