//! The soak (`npm run soak`): N participants join one room, participant 0 sends prompts at a
//! steady rate for a long time, and every participant reads every `message` event. Every
//! `sample_secs` the job stops at a checkpoint with what was sent and delivered so far, and the
//! orchestrator samples the server's memory beside it; the sender then catches up with its
//! schedule, so the rate over a minute stays the one asked for.

use crate::checkpoint;
use crate::fanout::{FrameShape, Room};
use crate::procfs::CpuWindow;
use crate::say;
use crate::stats::round2;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the room has done so far, for a checkpoint.
fn progress(room: &Room, elapsed: Duration, sent: usize, cpu: &CpuWindow) -> Value {
    let tracker = &room.tracker;
    json!({
        "elapsed_s": round2(elapsed.as_secs_f64()),
        "sent": sent,
        "delivered_to_all": tracker.completed.load(Ordering::Acquire),
        "deliveries": tracker.deliveries.load(Ordering::Relaxed),
        "errors": tracker.errors.load(Ordering::Relaxed),
        "cpu": cpu.finish(),
    })
}

pub async fn run(job: &Value) -> Result<Value, String> {
    let server_pid = job["server_pid"].as_u64().unwrap_or(0) as u32;
    let rate = job["rate"].as_f64().unwrap_or(50.0);
    let secs = job["secs"].as_f64().unwrap_or(60.0);
    let sample = Duration::from_secs_f64(job["sample_secs"].as_f64().unwrap_or(10.0));
    let urls: Vec<String> =
        serde_json::from_value(job["urls"].clone()).map_err(|e| format!("urls: {e}"))?;
    let shape = Arc::new(FrameShape::from_job(job));
    let (mut room, join_ms) = Room::join(&urls, server_pid, shape).await?;
    room.settle().await;
    say(format!(
        "{} participants joined in {join_ms:.0} ms",
        urls.len()
    ));
    let count = ((rate * secs).round() as usize).max(1);
    let range = room.take(count)?;
    let mut cpu = CpuWindow::start(server_pid);
    checkpoint(progress(&room, Duration::ZERO, 0, &cpu)).await?;
    let start = Instant::now();
    let mut next_sample = sample;
    let mut max_lag = Duration::ZERO;
    for (i, k) in range.clone().enumerate() {
        let target = start + Duration::from_secs_f64(i as f64 / rate);
        if start.elapsed() >= next_sample {
            checkpoint(progress(&room, start.elapsed(), i, &cpu)).await?;
            cpu = CpuWindow::start(server_pid);
            // One checkpoint per period, even after a send that took longer than a period.
            while next_sample <= start.elapsed() {
                next_sample += sample;
            }
        }
        let now = Instant::now();
        if target > now {
            tokio::time::sleep_until(target.into()).await;
        } else {
            max_lag = max_lag.max(now - target);
        }
        room.send(k, true).await?;
    }
    let drained = room.drain(range, Duration::from_secs(30)).await;
    checkpoint(progress(&room, start.elapsed(), count, &cpu)).await?;
    let tracker = room.tracker.clone();
    let first_error = tracker.first_error.lock().unwrap().clone();
    room.leave().await;
    Ok(json!({
        "participants": urls.len(),
        "join_ms": round2(join_ms),
        "sent": count,
        "delivered_to_all": tracker.completed.load(Ordering::Acquire),
        "drained": drained,
        "errors": tracker.errors.load(Ordering::Relaxed),
        "first_error": first_error,
        // Checkpoints pause the sender for the orchestrator's sample; it catches up after.
        "sender_max_lag_ms": round2(max_lag.as_secs_f64() * 1000.0),
    }))
}
