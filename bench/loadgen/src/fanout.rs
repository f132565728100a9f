//! Scenarios 1 and 2: one participant sends prompts, every participant receives the
//! `message` event. A prompt's latency runs from just before its frame is written to the
//! moment the last of the N participants has read its event.
//!
//! Scenario 1 sends at a fixed rate well below saturation. Scenario 2 first floods with a
//! window of prompts in flight to estimate the capacity, then sends at paced rates around that
//! estimate and reports the highest one that every prompt reached everyone at, with p99 under
//! the bound and the sender keeping to its schedule.

use crate::conn::{self, Sink};
use crate::frames;
use crate::procfs::{self, CpuWindow};
use crate::say;
use crate::stats::{self, round2};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// How many prompts one joined room can number; far more than any run sends.
const CAPACITY: usize = 1 << 20;

/// Per prompt: when it was sent, how many participants have not seen it, the last receipt.
pub(crate) struct Tracker {
    base: Instant,
    participants: u32,
    sent_ns: Vec<AtomicU64>,
    remaining: Vec<AtomicU32>,
    last_ns: Vec<AtomicU64>,
    pub(crate) completed: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    /// Every frame read, of any type: the client is quiet when this stops moving.
    frames: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) first_error: std::sync::Mutex<Option<String>>,
    event_bytes: AtomicUsize,
    progress: Notify,
}

impl Tracker {
    fn new(participants: u32) -> Self {
        Tracker {
            base: Instant::now(),
            participants,
            sent_ns: (0..CAPACITY).map(|_| AtomicU64::new(0)).collect(),
            remaining: (0..CAPACITY)
                .map(|_| AtomicU32::new(participants))
                .collect(),
            last_ns: (0..CAPACITY).map(|_| AtomicU64::new(0)).collect(),
            completed: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: std::sync::Mutex::new(None),
            event_bytes: AtomicUsize::new(0),
            progress: Notify::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn on_frame(&self, bytes: &[u8]) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        if let Some(k) = frames::message_index(bytes) {
            if k >= CAPACITY {
                return;
            }
            let now = self.now_ns();
            self.last_ns[k].fetch_max(now, Ordering::AcqRel);
            self.deliveries.fetch_add(1, Ordering::Relaxed);
            if self.remaining[k].fetch_sub(1, Ordering::AcqRel) == 1 {
                self.completed.fetch_add(1, Ordering::AcqRel);
                self.progress.notify_one();
            }
            if self.event_bytes.load(Ordering::Relaxed) == 0 {
                self.event_bytes.store(bytes.len(), Ordering::Relaxed);
            }
        } else if frames::kind(bytes) == Some(b"error") {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap();
            if first.is_none() {
                *first = Some(String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into());
            }
        }
    }

    fn done(&self, k: usize) -> bool {
        self.remaining[k].load(Ordering::Acquire) == 0
    }

    fn latency_ms(&self, k: usize) -> Option<f64> {
        self.done(k).then(|| {
            let last = self.last_ns[k].load(Ordering::Acquire);
            let sent = self.sent_ns[k].load(Ordering::Acquire);
            last.saturating_sub(sent) as f64 / 1e6
        })
    }
}

/// What the sender writes for prompt `k`.
pub(crate) struct FrameShape {
    floor: bool,
    content: String,
    pad_to: usize,
}

impl FrameShape {
    pub(crate) fn from_job(job: &Value) -> Self {
        let content_bytes = job["content_bytes"].as_u64().unwrap_or(100) as usize;
        let words = "the agent should refactor the session room so that replay stays fast ";
        let content: String = words.chars().cycle().take(content_bytes).collect();
        FrameShape {
            floor: job["subject"] == "floor",
            content,
            pad_to: job["pad_to"].as_u64().unwrap_or(0) as usize,
        }
    }

    fn frame(&self, k: usize) -> String {
        if !self.floor {
            return format!(
                r#"{{"type":"prompt","content":"{}","client_request_id":"b{k}"}}"#,
                self.content
            );
        }
        // The floor sends what it receives: shape it like the coordinator's event, padded
        // to the same size, so both move the same bytes.
        let base = format!(
            r#"{{"type":"message","content":"{}","client_request_id":"b{k}","pad":""}}"#,
            self.content
        );
        let pad = self.pad_to.saturating_sub(base.len());
        format!(
            r#"{{"type":"message","content":"{}","client_request_id":"b{k}","pad":"{}"}}"#,
            self.content,
            "x".repeat(pad)
        )
    }
}

pub(crate) struct Room {
    pub(crate) tracker: Arc<Tracker>,
    sender: Sink,
    others: Vec<Sink>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    next: usize,
    server_pid: u32,
    shape: Arc<FrameShape>,
}

impl Room {
    pub(crate) async fn join(
        urls: &[String],
        server_pid: u32,
        shape: Arc<FrameShape>,
    ) -> Result<(Self, f64), String> {
        let started = Instant::now();
        let sockets = conn::join_all(urls, 32).await?;
        let join_ms = started.elapsed().as_secs_f64() * 1000.0;
        let tracker = Arc::new(Tracker::new(sockets.len() as u32));
        let mut sinks = Vec::new();
        let mut readers = Vec::new();
        for ws in sockets {
            let (sink, mut stream) = ws.split();
            sinks.push(sink);
            let tracker = tracker.clone();
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(text) = message {
                        tracker.on_frame(text.as_bytes());
                    }
                }
            }));
        }
        let sender = sinks.remove(0);
        let room = Room {
            tracker,
            sender,
            others: sinks,
            readers,
            next: 0,
            server_pid,
            shape,
        };
        Ok((room, join_ms))
    }

    pub(crate) async fn leave(self) {
        let mut sinks = self.others;
        sinks.push(self.sender);
        conn::close_all(sinks).await;
        for reader in self.readers {
            reader.abort();
        }
    }

    /// Waits until the server is idle and no frame arrived for 200 ms (joining 256
    /// participants leaves the clients hundreds of MB of presence frames to read).
    pub(crate) async fn settle(&self) {
        procfs::wait_idle(self.server_pid, 5.0, Duration::from_secs(60)).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = self.tracker.frames.load(Ordering::Relaxed);
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.tracker.frames.load(Ordering::Relaxed);
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    pub(crate) fn take(&mut self, count: usize) -> Result<std::ops::Range<usize>, String> {
        if self.next + count > CAPACITY {
            return Err("too many prompts for one room".into());
        }
        let range = self.next..self.next + count;
        self.next += count;
        Ok(range)
    }

    pub(crate) async fn send(&mut self, k: usize, flush: bool) -> Result<(), String> {
        let frame = self.shape.frame(k);
        self.tracker.sent_ns[k].store(self.tracker.now_ns(), Ordering::Release);
        conn::feed(&mut self.sender, frame).await?;
        if flush {
            conn::flush(&mut self.sender).await?;
        }
        Ok(())
    }

    /// Waits until every prompt of `range` reached everyone, or `timeout`.
    pub(crate) async fn drain(&self, range: std::ops::Range<usize>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if range.clone().all(|k| self.tracker.done(k)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Sends `rate` prompts a second for `secs`, then waits for them.
    async fn paced(&mut self, rate: f64, secs: f64, drain: Duration) -> Result<Value, String> {
        let count = ((rate * secs).round() as usize).max(1);
        let range = self.take(count)?;
        let errors_before = self.tracker.errors.load(Ordering::Relaxed);
        let deliveries_before = self.tracker.deliveries.load(Ordering::Relaxed);
        let cpu = CpuWindow::start(self.server_pid);
        let start = Instant::now();
        let mut max_lag = Duration::ZERO;
        for (i, k) in range.clone().enumerate() {
            let target = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if target > now {
                tokio::time::sleep_until(target.into()).await;
            } else {
                max_lag = max_lag.max(now - target);
            }
            let next_due = start + Duration::from_secs_f64((i + 1) as f64 / rate);
            self.send(k, next_due > Instant::now() || i + 1 == count)
                .await?;
        }
        let send_secs = start.elapsed().as_secs_f64();
        let drained = self.drain(range.clone(), drain).await;
        let cpu = cpu.finish();
        let mut latencies = Vec::with_capacity(count);
        let mut slowest = Vec::with_capacity(count);
        let mut lost = 0;
        let first_sent = self.tracker.sent_ns[range.start].load(Ordering::Acquire);
        for k in range {
            match self.tracker.latency_ms(k) {
                Some(ms) => {
                    latencies.push(ms);
                    let at = self.tracker.sent_ns[k].load(Ordering::Acquire) - first_sent;
                    slowest.push((round2(at as f64 / 1e6), round2(ms)));
                }
                None => lost += 1,
            }
        }
        // The five slowest prompts as [ms after the step began, latency ms]: one stall shows
        // as neighbours, a slow path as spread-out ones.
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        slowest.truncate(5);
        let achieved = count as f64 / send_secs.max(1e-3);
        Ok(json!({
            "offered_per_s": round2(rate),
            "achieved_per_s": round2(achieved),
            "sent": count,
            "not_delivered": lost,
            "drained": drained,
            "sender_max_lag_ms": round2(max_lag.as_secs_f64() * 1000.0),
            "errors": self.tracker.errors.load(Ordering::Relaxed) - errors_before,
            "deliveries": self.tracker.deliveries.load(Ordering::Relaxed) - deliveries_before,
            "latency": stats::summary(latencies),
            "slowest": slowest,
            "cpu": cpu,
        }))
    }

    /// Keeps `window` prompts in flight for `secs`: the rate the room completes them at.
    async fn flood(&mut self, secs: f64, window: u64) -> Result<Value, String> {
        let tracker = self.tracker.clone();
        let completed_before = tracker.completed.load(Ordering::Acquire);
        let deliveries_before = tracker.deliveries.load(Ordering::Relaxed);
        let cpu = CpuWindow::start(self.server_pid);
        let start = Instant::now();
        let mut sent = 0u64;
        let mut first = None;
        while start.elapsed().as_secs_f64() < secs {
            let done = tracker.completed.load(Ordering::Acquire) - completed_before;
            if sent - done < window {
                let range = self.take(1)?;
                first.get_or_insert(range.start);
                self.send(range.start, true).await?;
                sent += 1;
            } else {
                let _ = tokio::time::timeout(Duration::from_millis(5), tracker.progress.notified())
                    .await;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let completed = tracker.completed.load(Ordering::Acquire) - completed_before;
        if let Some(first) = first {
            self.drain(first..self.next, Duration::from_secs(10)).await;
        }
        // CPU over the flood and its drain, against every delivery made in that time.
        let cpu = cpu.finish();
        let deliveries = tracker.deliveries.load(Ordering::Relaxed) - deliveries_before;
        let rate = completed as f64 / elapsed;
        Ok(json!({
            "window": window,
            "completed_per_s": round2(rate),
            "deliveries_per_s": round2(rate * f64::from(tracker.participants)),
            "deliveries": deliveries,
            "cpu": cpu,
        }))
    }
}

fn passes(step: &Value, p99_bound: f64) -> bool {
    step["not_delivered"] == 0
        && step["errors"] == 0
        && step["achieved_per_s"].as_f64().unwrap_or(0.0)
            >= 0.95 * step["offered_per_s"].as_f64().unwrap_or(f64::MAX)
        && step["latency"]["p99_ms"].as_f64().unwrap_or(f64::MAX) <= p99_bound
}

/// One paced step of scenario 2, long enough for ~150 samples, then a quiet server.
async fn step(room: &mut Room, rate: f64, step_secs: f64) -> Result<Value, String> {
    let secs = step_secs.max(150.0 / rate).min(4.0);
    let result = room.paced(rate, secs, Duration::from_secs(3)).await;
    room.settle().await;
    result
}

/// Scenario 2 on a joined room: flood to estimate, then paced steps around the estimate.
async fn saturation(room: &mut Room, cfg: &Value) -> Result<Value, String> {
    let p99_bound = cfg["p99_ms"].as_f64().unwrap_or(100.0);
    let step_secs = cfg["step_secs"].as_f64().unwrap_or(1.5);
    let window = cfg["window"].as_u64().unwrap_or(32);
    let probe = room
        .flood(cfg["probe_secs"].as_f64().unwrap_or(1.0), window)
        .await?;
    room.settle().await;
    let estimate = probe["completed_per_s"].as_f64().unwrap_or(50.0).max(5.0);
    let mut steps = Vec::new();
    let mut best: Option<Value> = None;
    let mut lowest_fail = f64::INFINITY;
    let mut rate = estimate;
    let participants = f64::from(room.tracker.participants);
    // Upwards from the estimate while it passes, else downwards until it does.
    for _ in 0..8 {
        let result = step(room, rate, step_secs).await?;
        let ok = passes(&result, p99_bound);
        steps.push(result.clone());
        if ok {
            best = Some(result);
            if rate * 1.25 >= lowest_fail || steps.len() >= 4 {
                break;
            }
            rate *= 1.25;
        } else {
            lowest_fail = lowest_fail.min(rate);
            if best.is_some() {
                break;
            }
            rate *= 0.8;
        }
    }
    // One bisection between the best pass and the lowest failure.
    if let Some(pass) = best.as_ref().and_then(|b| b["offered_per_s"].as_f64()) {
        if lowest_fail.is_finite() && lowest_fail / pass > 1.1 {
            let mid = (pass + lowest_fail) / 2.0;
            let result = step(room, mid, step_secs).await?;
            if passes(&result, p99_bound) {
                best = Some(result.clone());
            }
            steps.push(result);
        }
    }
    let best = best.map(|b| {
        let achieved = b["achieved_per_s"].as_f64().unwrap_or(0.0);
        json!({
            "prompts_per_s": round2(achieved),
            "deliveries_per_s": round2(achieved * participants),
            "latency": b["latency"],
            "cpu": b["cpu"],
        })
    });
    // Server CPU per delivery over the flood and every step: a cost that does not depend on
    // how much of the machine the server got, unlike the rates.
    let (cpu_s, deliveries) =
        std::iter::once(&probe)
            .chain(steps.iter())
            .fold((0.0, 0u64), |(c, d), x| {
                (
                    c + x["cpu"]["server_cpu_s"].as_f64().unwrap_or(0.0),
                    d + x["deliveries"].as_u64().unwrap_or(0),
                )
            });
    let cpu_us_per_delivery = if deliveries > 0 {
        round2(cpu_s * 1e6 / deliveries as f64)
    } else {
        f64::NAN
    };
    Ok(json!({
        "probe": probe,
        "steps": steps,
        "best": best,
        "server_cpu_s": cpu_s,
        "deliveries": deliveries,
        "server_cpu_us_per_delivery": cpu_us_per_delivery,
    }))
}

pub async fn run(job: &Value) -> Result<Value, String> {
    let server_pid = job["server_pid"].as_u64().unwrap_or(0) as u32;
    let runs = job["runs"].as_u64().unwrap_or(3) as usize;
    let shape = Arc::new(FrameShape::from_job(job));
    let rooms: Vec<Vec<String>> =
        serde_json::from_value(job["rooms"].clone()).map_err(|e| format!("rooms: {e}"))?;
    if rooms.is_empty() {
        return Err("no rooms".into());
    }
    let mut out = Vec::new();
    let mut event_bytes = 0;
    let mut joined: Option<(Room, f64)> = None;
    for run in 0..runs {
        let urls = &rooms[run % rooms.len()];
        if rooms.len() > 1 || joined.is_none() {
            if let Some((room, _)) = joined.take() {
                room.leave().await;
            }
            procfs::wait_idle(server_pid, 5.0, Duration::from_secs(60)).await;
            let (room, join_ms) = Room::join(urls, server_pid, shape.clone()).await?;
            room.settle().await;
            say(format!(
                "run {}: {} participants joined in {:.0} ms",
                run + 1,
                urls.len(),
                join_ms
            ));
            joined = Some((room, join_ms));
        }
        let (room, join_ms) = joined.as_mut().expect("joined above");
        let mut result = json!({ "join_ms": round2(*join_ms), "participants": urls.len() });
        if let Some(fixed) = job.get("fixed") {
            let rate = fixed["rate"].as_f64().unwrap_or(50.0);
            let secs = fixed["secs"].as_f64().unwrap_or(3.0);
            let step = room.paced(rate, secs, Duration::from_secs(10)).await?;
            room.settle().await;
            say(format!(
                "run {}: fixed {rate}/s p99 {} ms",
                run + 1,
                step["latency"]["p99_ms"]
            ));
            result["fixed"] = step;
        }
        if let Some(flood) = job.get("flood") {
            let secs = flood["secs"].as_f64().unwrap_or(5.0);
            result["flood"] = room
                .flood(secs, flood["window"].as_u64().unwrap_or(32))
                .await?;
            room.settle().await;
        }
        if let Some(cfg) = job.get("saturation") {
            let sat = saturation(room, cfg).await?;
            say(format!(
                "run {}: saturation {}",
                run + 1,
                sat["best"]["prompts_per_s"]
            ));
            result["saturation"] = sat;
        }
        event_bytes = room.tracker.event_bytes.load(Ordering::Relaxed);
        if let Some(error) = room.tracker.first_error.lock().unwrap().clone() {
            result["first_error"] = json!(error);
        }
        out.push(result);
    }
    if let Some((room, _)) = joined.take() {
        room.leave().await;
    }
    Ok(json!({ "runs": out, "event_bytes": event_bytes }))
}
