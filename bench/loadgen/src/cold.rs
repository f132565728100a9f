//! Scenario 5: time from opening a socket to its `welcome`, for each URL in turn.
//! The orchestrator restarts the runtime before the job and orders the URLs: the first hits
//! a fresh workerd (cold isolate), the next ones rooms not yet loaded, then warm repeats.

use crate::conn;
use crate::stats::round2;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub async fn run(job: &Value) -> Result<Value, String> {
    let urls: Vec<String> =
        serde_json::from_value(job["urls"].clone()).map_err(|e| format!("urls: {e}"))?;
    let mut out = Vec::new();
    for url in &urls {
        let started = Instant::now();
        let mut ws = conn::open(url, &[]).await?;
        let opened = started.elapsed();
        conn::await_welcome(&mut ws, Duration::from_secs(30)).await?;
        let welcomed = started.elapsed();
        out.push(json!({
            "open_ms": round2(opened.as_secs_f64() * 1000.0),
            "welcome_ms": round2(welcomed.as_secs_f64() * 1000.0),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.flush()).await;
    }
    Ok(json!({ "connects": out }))
}
