//! CPU time and memory of this process and of the server (workerd), read from `/proc`.
//! CPU is utime + stime of every thread of the process, in clock ticks (100 per second).

use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a process in seconds, or None when it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let path = if pid == 0 {
        "/proc/self/stat".to_string()
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // pid (comm) state … : comm may hold spaces, so split after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Resident memory of a process in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU used by the load generator and by the server over a window.
#[derive(Clone, Copy)]
pub struct CpuWindow {
    server_pid: u32,
    started: Instant,
    client: f64,
    server: f64,
}

impl CpuWindow {
    pub fn start(server_pid: u32) -> Self {
        CpuWindow {
            server_pid,
            started: Instant::now(),
            client: cpu_seconds(0).unwrap_or(0.0),
            server: cpu_seconds(server_pid).unwrap_or(0.0),
        }
    }

    /// `{loadgen_pct, server_pct, seconds, loadgen_cpu_s, server_cpu_s}`: 100 % is one core
    /// busy for the whole window; the CPU seconds let callers compute a cost per unit of work.
    pub fn finish(&self) -> Value {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let client = cpu_seconds(0).unwrap_or(0.0) - self.client;
        let server = cpu_seconds(self.server_pid).unwrap_or(0.0) - self.server;
        json!({
            "loadgen_pct": round1(client / seconds * 100.0),
            "server_pct": round1(server / seconds * 100.0),
            "seconds": round3(seconds),
            "loadgen_cpu_s": round3(client),
            "server_cpu_s": round3(server),
        })
    }
}

/// Waits until the server uses less than `pct` of a core over 250 ms (its backlog, e.g.
/// closing sockets of the previous step, is done), at most `timeout`.
pub async fn wait_idle(pid: u32, pct: f64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let window = Duration::from_millis(250);
    while Instant::now() < deadline {
        let before = cpu_seconds(pid).unwrap_or(0.0);
        tokio::time::sleep(window).await;
        let used = cpu_seconds(pid).unwrap_or(0.0) - before;
        if used / window.as_secs_f64() * 100.0 < pct {
            return true;
        }
    }
    false
}

/// Samples the server's RSS every 50 ms until dropped; `peak()` is the largest seen.
pub struct RssSampler {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        use std::sync::atomic::Ordering;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
            rss_bytes(pid).unwrap_or(0),
        ));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_bytes(pid) {
                    seen.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { peak, task }
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
