//! Scenario 3: a fake bridge streams `token` frames for a running prompt while watchers
//! read the `token` events. The room may coalesce many frames into one event, so progress is
//! counted in delta bytes, not events: a frame counts as delivered once every watcher has
//! read its bytes. The bridge keeps at most `window` frames' worth of bytes in flight beyond
//! the slowest watcher, so it sends as fast as the room takes frames, and never floods it.
//!
//! With the coordinator, the bridge is reached the way a real one is: a participant prompts,
//! the room asks the provider (here, [`crate::provider`]) for a sandbox, and the benchmark
//! dials the room's sandbox socket with the token it was given. If any step of that fails,
//! the scenario reports `skipped` with the reason.

use crate::conn::{self, Sink};
use crate::frames;
use crate::procfs::{self, CpuWindow, RssSampler};
use crate::provider;
use crate::stats::round2;
use crate::{checkpoint, say};
use futures_util::StreamExt;
use protocol::bridge::{FromBridge, ToBridge};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Message;

/// What the watchers have read.
struct Watch {
    delta_bytes: Vec<AtomicU64>,
    token_events: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
    /// The last `session_error` or `sandbox_status` a watcher saw, for a skip message.
    last_status: Mutex<Option<String>>,
    progress: Notify,
}

impl Watch {
    fn slowest(&self) -> u64 {
        self.delta_bytes
            .iter()
            .map(|b| b.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    fn on_frame(&self, watcher: usize, bytes: &[u8]) {
        match frames::kind(bytes) {
            Some(b"token") => {
                let delta = frames::str_field(bytes, b"delta").map_or(0, <[u8]>::len) as u64;
                self.delta_bytes[watcher].fetch_add(delta, Ordering::AcqRel);
                if watcher == 0 {
                    self.token_events.fetch_add(1, Ordering::Relaxed);
                }
                self.progress.notify_one();
            }
            Some(b"prompt_started") if watcher == 0 => {
                self.started.fetch_add(1, Ordering::Relaxed);
            }
            Some(b"prompt_finished") if watcher == 0 => {
                self.finished.fetch_add(1, Ordering::Relaxed);
            }
            Some(b"session_error" | b"sandbox_status" | b"error") if watcher == 0 => {
                *self.last_status.lock().unwrap() =
                    Some(String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into());
            }
            _ => {}
        }
    }
}

/// The bridge's socket: a sink, and the frames the room sent it.
struct Bridge {
    sink: Sink,
    inbox: mpsc::UnboundedReceiver<ToBridge>,
    reader: tokio::task::JoinHandle<()>,
}

impl Bridge {
    async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Self, String> {
        let ws = conn::open(url, headers).await?;
        let (sink, mut stream) = ws.split();
        let (tx, inbox) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    if let Ok(frame) = serde_json::from_str::<ToBridge>(text.as_str()) {
                        let _ = tx.send(frame);
                    }
                }
            }
        });
        Ok(Bridge {
            sink,
            inbox,
            reader,
        })
    }

    async fn send(&mut self, frame: &FromBridge) -> Result<(), String> {
        conn::feed(
            &mut self.sink,
            serde_json::to_string(frame).map_err(|e| e.to_string())?,
        )
        .await?;
        conn::flush(&mut self.sink).await
    }

    /// The next frame the room sent that `pick` accepts, within `timeout`.
    async fn expect<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(ToBridge) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.inbox.recv()).await {
                Ok(Some(frame)) => {
                    if let Some(found) = pick(frame) {
                        return Some(found);
                    }
                }
                _ => return None,
            }
        }
    }
}

fn skipped(reason: impl Into<String>) -> Value {
    json!({ "skipped": format!("sandbox path not available: {}", reason.into()) })
}

/// Streams token frames for `secs`; returns the run's figures.
async fn stream_tokens(
    bridge: &mut Bridge,
    watch: &Watch,
    message_id: &str,
    cfg: &Value,
    server_pid: u32,
) -> Result<Value, String> {
    let secs = cfg["secs"].as_f64().unwrap_or(3.0);
    let delta_len = cfg["delta_bytes"].as_u64().unwrap_or(16) as usize;
    let window = cfg["window"].as_u64().unwrap_or(256) * delta_len as u64;
    let base = watch.slowest();
    let token_events_before = watch.token_events.load(Ordering::Relaxed);
    let alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    let rss = RssSampler::start(server_pid);
    let rss_before = procfs::rss_bytes(server_pid).unwrap_or(0);
    let cpu = CpuWindow::start(server_pid);
    let started = Instant::now();
    let (mut frames_sent, mut bytes_sent) = (0u64, 0u64);
    while started.elapsed().as_secs_f64() < secs {
        let delivered = watch.slowest() - base;
        if bytes_sent - delivered + delta_len as u64 > window {
            conn::flush(&mut bridge.sink).await?;
            let _ = tokio::time::timeout(Duration::from_millis(2), watch.progress.notified()).await;
            continue;
        }
        let offset = (frames_sent as usize) % alphabet.len();
        let delta: String = alphabet
            .chars()
            .cycle()
            .skip(offset)
            .take(delta_len)
            .collect();
        // No offset: the room appends each delta to what it holds.
        let frame = FromBridge::Token {
            message_id: message_id.to_string(),
            delta,
            offset: None,
        };
        conn::feed(
            &mut bridge.sink,
            serde_json::to_string(&frame).map_err(|e| e.to_string())?,
        )
        .await?;
        frames_sent += 1;
        bytes_sent += delta_len as u64;
        if frames_sent % 32 == 0 {
            conn::flush(&mut bridge.sink).await?;
        }
    }
    conn::flush(&mut bridge.sink).await?;
    let send_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while watch.slowest() - base < bytes_sent && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(5), watch.progress.notified()).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = watch.slowest() - base;
    let cpu = cpu.finish();
    Ok(json!({
        "frames": frames_sent,
        "delta_bytes": delta_len,
        "delivered_bytes": delivered,
        "all_delivered": delivered >= bytes_sent,
        "send_secs": round2(send_secs),
        "frames_per_s": round2(frames_sent as f64 / elapsed),
        "token_events": watch.token_events.load(Ordering::Relaxed) - token_events_before,
        "rss_before": rss_before,
        "rss_peak": rss.peak(),
        "cpu": cpu,
    }))
}

pub async fn run(job: &Value) -> Result<Value, String> {
    let server_pid = job["server_pid"].as_u64().unwrap_or(0) as u32;
    let runs = job["runs"].as_u64().unwrap_or(3);
    let floor = job["subject"] == "floor";
    let urls: Vec<String> =
        serde_json::from_value(job["watchers"].clone()).map_err(|e| e.to_string())?;
    let sockets = conn::join_all(&urls, 16).await?;
    let watch = Arc::new(Watch {
        delta_bytes: (0..sockets.len()).map(|_| AtomicU64::new(0)).collect(),
        token_events: AtomicU64::new(0),
        started: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        last_status: Mutex::new(None),
        progress: Notify::new(),
    });
    let mut sinks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let (sink, mut stream) = ws.split();
        sinks.push(sink);
        let watch = watch.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    watch.on_frame(i, text.as_bytes());
                }
            }
        });
    }
    procfs::wait_idle(server_pid, 5.0, Duration::from_secs(30)).await;

    let mut bridge: Option<Bridge> = None;
    let mut provider = None;
    if floor {
        bridge = Some(Bridge::open(job["bridge_url"].as_str().ok_or("bridge_url")?, &[]).await?);
    } else {
        let port = job["provider_port"].as_u64().ok_or("provider_port")? as u16;
        provider = Some(provider::start(port).await?);
    }
    let mut out = Vec::new();
    for run in 0..runs {
        let message_id = if floor {
            "msg_floor".to_string()
        } else {
            let prompt = format!(
                r#"{{"type":"prompt","content":"stream a long answer","client_request_id":"ingest{run}"}}"#
            );
            conn::feed(&mut sinks[0], prompt).await?;
            conn::flush(&mut sinks[0]).await?;
            if bridge.is_none() {
                let provider = provider.as_mut().expect("started above");
                let created =
                    match tokio::time::timeout(Duration::from_secs(15), provider.created.recv())
                        .await
                    {
                        Ok(Some(created)) => created,
                        _ => {
                            let status = watch.last_status.lock().unwrap().clone();
                            let seen = status
                                .map(|s| format!(" (the room last said {s})"))
                                .unwrap_or_default();
                            return Ok(skipped(format!(
                                "no POST /sandboxes reached the provider within 15 s{seen}"
                            )));
                        }
                    };
                let url = format!(
                    "{}/v1/sessions/{}/sandbox",
                    job["ws_base"].as_str().ok_or("ws_base")?,
                    created.session_id
                );
                let authorization = format!("Bearer {}", created.sandbox_token);
                let opened = Bridge::open(
                    &url,
                    &[
                        ("Authorization", authorization.as_str()),
                        ("X-Sandbox-Id", created.sandbox_id.as_str()),
                    ],
                )
                .await;
                let mut dialed = match opened {
                    Ok(dialed) => dialed,
                    Err(error) => {
                        return Ok(skipped(format!("dialing the sandbox socket: {error}")))
                    }
                };
                dialed
                    .send(&FromBridge::Ready {
                        sandbox_id: created.sandbox_id.clone(),
                        agent: "bench".into(),
                        agent_version: "0".into(),
                        message_id: None,
                    })
                    .await?;
                bridge = Some(dialed);
            }
            let dialed = bridge.as_mut().expect("dialed above");
            let job_id = dialed
                .expect(Duration::from_secs(15), |frame| match frame {
                    ToBridge::Prompt(job) => Some(job.message_id),
                    _ => None,
                })
                .await;
            match job_id {
                Some(id) => id,
                None => return Ok(skipped("the room sent no prompt to the bridge within 15 s")),
            }
        };
        let dialed = bridge.as_mut().expect("bridge open");
        let mut result = stream_tokens(dialed, &watch, &message_id, job, server_pid).await?;
        if !floor {
            let ack_id = format!("d{run}");
            let finished_before = watch.finished.load(Ordering::Relaxed);
            dialed
                .send(&FromBridge::Done {
                    message_id: message_id.clone(),
                    ok: true,
                    error: None,
                    text_bytes: None,
                    ack_id: ack_id.clone(),
                })
                .await?;
            let acked = dialed
                .expect(Duration::from_secs(10), |frame| match frame {
                    ToBridge::Ack { ack_id: id } if id == ack_id => Some(()),
                    _ => None,
                })
                .await
                .is_some();
            let deadline = Instant::now() + Duration::from_secs(10);
            while watch.finished.load(Ordering::Relaxed) == finished_before
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            result["done_acked"] = json!(acked);
            result["prompt_finished_seen"] =
                json!(watch.finished.load(Ordering::Relaxed) > finished_before);
        }
        procfs::wait_idle(server_pid, 5.0, Duration::from_secs(30)).await;
        say(format!(
            "ingest run {}: {} frames/s",
            run + 1,
            result["frames_per_s"]
        ));
        result["checkpoint"] =
            checkpoint(json!({ "run": run, "frames": result["frames"] })).await?;
        out.push(result);
    }
    if let Some(bridge) = bridge {
        bridge.reader.abort();
        conn::close_all(vec![bridge.sink]).await;
    }
    conn::close_all(sinks).await;
    Ok(json!({ "runs": out }))
}
