//! The Rust half of the binding's benchmark (`npm run bench`): the local
//! workloads through the Rust API, timed here, so that the JavaScript
//! workloads can be compared with them in the same process and run.

use crate::haven_error;
use haven_bench::dogs;
use napi::Result;
use napi_derive::napi;
use std::path::Path;
use std::time::Instant;

/// One workload of the benchmark, as JavaScript asks for it.
#[napi(object)]
pub struct RustWorkload {
    /// `prepare` (untimed: creates Dogs `0..count`), `bulk_insert`,
    /// `single_commits`, `pk_lookup`, `range_query` or `scan_query`.
    pub name: String,
    /// The database file (of the Dog schema).
    pub path: String,
    /// Objects to create, or lookups to make.
    pub count: u32,
    /// `pk_lookup`: the keys are drawn from `0..of`; `range_query`: the
    /// threshold (Dogs with `lastUpdated > of`).
    pub of: Option<u32>,
    /// `scan_query`: the name prefix.
    pub prefix: Option<String>,
}

/// What a workload did: its time and the objects it found or wrote.
#[napi(object)]
pub struct RustRun {
    /// Elapsed milliseconds.
    pub ms: f64,
    /// Objects written, found or iterated.
    pub objects: u32,
}

/// Runs one workload through the Rust API and times it.
#[napi]
pub fn rust_bench(workload: RustWorkload) -> Result<RustRun> {
    let db = dogs::open(Path::new(&workload.path)).map_err(haven_error)?;
    let count = workload.count as usize;
    let of = workload.of.unwrap_or(0);
    let start = Instant::now();
    let objects = match workload.name.as_str() {
        "prepare" | "bulk_insert" => dogs::insert(&db, 0, count).map(|()| count),
        "single_commits" => dogs::insert_one_by_one(&db, 0, count).map(|()| count),
        "pk_lookup" => dogs::lookup(&db, count, of as usize, 1),
        "range_query" => dogs::range_query(&db, i64::from(of)),
        "scan_query" => dogs::scan_query(&db, workload.prefix.as_deref().unwrap_or("")),
        other => return Err(crate::named("TypeError", format!("unknown workload '{other}'"))),
    }
    .map_err(haven_error)?;
    Ok(RustRun { ms: start.elapsed().as_secs_f64() * 1000.0, objects: objects as u32 })
}
