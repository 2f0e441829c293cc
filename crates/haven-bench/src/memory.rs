//! Peak resident memory of this process, reset between workloads (Linux).

/// Resets the peak-RSS counter (`VmHWM`) to the current RSS.
pub(crate) fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak RSS since the last reset, in MiB.
pub(crate) fn peak_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// The current RSS, in MiB.
pub(crate) fn current_mib() -> Option<f64> {
    status_mib("VmRSS:")
}

/// Another process's current RSS, in MiB.
pub(crate) fn process_mib(pid: u32) -> Option<f64> {
    read_mib(&format!("/proc/{pid}/status"), "VmRSS:")
}

fn status_mib(field: &str) -> Option<f64> {
    read_mib("/proc/self/status", field)
}

fn read_mib(path: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
