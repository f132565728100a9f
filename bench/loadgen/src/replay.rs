//! Scenario 4: a session with many stored events, and clients that reconnect having missed
//! the last `count` of them. The time runs from opening the socket to reading the last
//! missed event.
//!
//! Filling the coordinator uses its public protocol: prompts, each cancelled as soon as it is
//! acknowledged, so every prompt stores two events (`message`, `prompt_finished`) and the
//! queue stays short. The floor stores whatever it is sent; it gets frames of the
//! coordinator's average event size, so both replay the same bytes.

use crate::conn::{self, Ws};
use crate::frames;
use crate::procfs::{self, CpuWindow};
use crate::say;
use crate::stats::round2;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

async fn next_text(ws: &mut Ws, timeout: Duration) -> Result<Vec<u8>, String> {
    loop {
        match tokio::time::timeout(timeout, ws.next()).await {
            Err(_) => return Err("no frame in time".into()),
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.as_bytes().to_vec()),
            Ok(Some(Ok(Message::Close(frame)))) => return Err(format!("closed: {frame:?}")),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("socket ended".into()),
        }
    }
}

fn content(bytes: usize) -> String {
    "a participant asked the agent to tidy the replay path "
        .chars()
        .cycle()
        .take(bytes)
        .collect()
}

/// Fills the coordinator's session until its last `seq` reaches `target`.
async fn fill_coordinator(
    url: &str,
    target: u64,
    window: usize,
    content_bytes: usize,
) -> Result<u64, String> {
    let mut ws = conn::open(url, &[]).await?;
    let mut last = conn::await_welcome(&mut ws, Duration::from_secs(30)).await?;
    let text = content(content_bytes);
    let prompts = target.saturating_sub(last).div_ceil(2) as usize;
    let (mut sent, mut finished, mut in_flight) = (0usize, 0usize, 0usize);
    while finished < prompts {
        while in_flight < window && sent < prompts {
            ws.feed(Message::text(format!(
                r#"{{"type":"prompt","content":"{text}","client_request_id":"f{sent}"}}"#
            )))
            .await
            .map_err(|e| e.to_string())?;
            sent += 1;
            in_flight += 1;
        }
        ws.flush().await.map_err(|e| e.to_string())?;
        // Each finished prompt also reports to D1 and the log, so a burst of them can hold the
        // room for a while.
        let frame = next_text(&mut ws, Duration::from_secs(120)).await?;
        if let Some(seq) = frames::u64_field(&frame, b"seq") {
            last = last.max(seq);
        }
        match frames::kind(&frame) {
            Some(b"prompt_ack") => {
                let id =
                    frames::str_field(&frame, b"message_id").ok_or("ack without message_id")?;
                let id = String::from_utf8_lossy(id);
                ws.feed(Message::text(format!(
                    r#"{{"type":"cancel","message_id":"{id}"}}"#
                )))
                .await
                .map_err(|e| e.to_string())?;
            }
            Some(b"prompt_finished") => {
                finished += 1;
                in_flight -= 1;
            }
            Some(b"error") => return Err(format!("fill: {}", String::from_utf8_lossy(&frame))),
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    Ok(last)
}

/// Fills the floor's room with `target` frames of `frame_bytes` each.
async fn fill_floor(
    url: &str,
    target: u64,
    window: usize,
    frame_bytes: usize,
) -> Result<u64, String> {
    let mut ws = conn::open(url, &[]).await?;
    let mut last = conn::await_welcome(&mut ws, Duration::from_secs(30)).await?;
    let base = r#"{"type":"message","content":"","client_request_id":"f0000000"}"#.len();
    let text = content(frame_bytes.saturating_sub(base).max(1));
    let frames_to_send = target.saturating_sub(last) as usize;
    let (mut sent, mut echoed) = (0usize, 0usize);
    while echoed < frames_to_send {
        while sent - echoed < window && sent < frames_to_send {
            ws.feed(Message::text(format!(
                r#"{{"type":"message","content":"{text}","client_request_id":"f{sent:07}"}}"#
            )))
            .await
            .map_err(|e| e.to_string())?;
            sent += 1;
        }
        ws.flush().await.map_err(|e| e.to_string())?;
        next_text(&mut ws, Duration::from_secs(30)).await?;
        echoed += 1;
        last += 1;
    }
    let _ = ws.close(None).await;
    Ok(last)
}

/// The `welcome` frame itself (the coordinator's carries `replay_from`).
async fn welcome_frame(ws: &mut Ws, timeout: Duration) -> Result<Vec<u8>, String> {
    loop {
        let frame = next_text(ws, timeout).await?;
        if frames::kind(&frame) == Some(b"welcome".as_slice()) {
            return Ok(frame);
        }
    }
}

/// Opens `url&since=…` and reads until the `count` missed events arrived. The coordinator
/// replays at most about 1 MiB of the newest of them (`welcome.replay_from` says where it
/// starts); the rest comes as a client fills it, with `history` frames of 500 events going
/// down to `since`. The time is all of it: what a reconnecting page waits for.
async fn replay_once(url: &str, since: u64, count: u64, server_pid: u32) -> Result<Value, String> {
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}since={since}");
    let cpu = CpuWindow::start(server_pid);
    let started = Instant::now();
    let mut ws = conn::open(&url, &[]).await?;
    let opened = started.elapsed();
    let welcome = welcome_frame(&mut ws, Duration::from_secs(60)).await?;
    let welcomed = started.elapsed();
    let last = since + count;
    let replay_from = frames::u64_field(&welcome, b"replay_from")
        .unwrap_or(since + 1)
        .clamp(since + 1, last + 1);
    let (mut events, mut bytes) = (0u64, 0u64);
    while events < last + 1 - replay_from {
        let frame = next_text(&mut ws, Duration::from_secs(60)).await?;
        if frames::is_event(&frame) {
            events += 1;
            bytes += frame.len() as u64;
        }
    }
    let mut lowest = replay_from;
    let mut pages = 0u64;
    while lowest > since + 1 {
        let ask = json!({"type": "history", "before_seq": lowest, "limit": 500}).to_string();
        ws.send(Message::text(ask)).await.map_err(|e| e.to_string())?;
        let page = loop {
            let frame = next_text(&mut ws, Duration::from_secs(60)).await?;
            if frames::kind(&frame) == Some(b"history".as_slice()) {
                break frame;
            }
        };
        pages += 1;
        let page: Value = serde_json::from_slice(&page).map_err(|e| e.to_string())?;
        let listed = page["events"].as_array().cloned().unwrap_or_default();
        let Some(first) = listed.first().and_then(|e| e["seq"].as_u64()) else {
            break;
        };
        for event in listed.iter().filter(|e| e["seq"].as_u64() > Some(since)) {
            events += 1;
            bytes += event.to_string().len() as u64;
        }
        lowest = first;
    }
    let done = started.elapsed();
    let cpu = cpu.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    Ok(json!({
        "events": events,
        "bytes": bytes,
        "history_pages": pages,
        "open_ms": round2(opened.as_secs_f64() * 1000.0),
        "welcome_ms": round2(welcomed.as_secs_f64() * 1000.0),
        "total_ms": round2(done.as_secs_f64() * 1000.0),
        "events_per_s": round2(events as f64 / done.as_secs_f64()),
        "cpu": cpu,
    }))
}

pub async fn run(job: &Value) -> Result<Value, String> {
    let server_pid = job["server_pid"].as_u64().unwrap_or(0) as u32;
    let floor = job["subject"] == "floor";
    let url = job["url"].as_str().ok_or("url")?;
    let counts: Vec<u64> =
        serde_json::from_value(job["counts"].clone()).map_err(|e| e.to_string())?;
    let runs = job["runs"].as_u64().unwrap_or(3);
    let target = job["target"]
        .as_u64()
        .unwrap_or_else(|| counts.iter().copied().max().unwrap_or(0) + 10);
    let window = job["window"].as_u64().unwrap_or(64) as usize;

    let (last, fill) = if job["fill"].as_bool().unwrap_or(true) {
        let started = Instant::now();
        let cpu = CpuWindow::start(server_pid);
        let last = if floor {
            fill_floor(
                url,
                target,
                window,
                job["frame_bytes"].as_u64().unwrap_or(300) as usize,
            )
            .await?
        } else {
            fill_coordinator(
                url,
                target,
                window,
                job["content_bytes"].as_u64().unwrap_or(100) as usize,
            )
            .await?
        };
        let seconds = started.elapsed().as_secs_f64();
        say(format!("filled {last} events in {seconds:.1} s"));
        let fill = json!({
            "events": last,
            "seconds": round2(seconds),
            "events_per_s": round2(last as f64 / seconds),
            "cpu": cpu.finish(),
        });
        (last, fill)
    } else {
        let mut ws = conn::open(url, &[]).await?;
        let last = conn::await_welcome(&mut ws, Duration::from_secs(30)).await?;
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        (last, Value::Null)
    };
    procfs::wait_idle(server_pid, 5.0, Duration::from_secs(60)).await;

    let mut results = Vec::new();
    for &count in &counts {
        let mut runs_out = Vec::new();
        for _ in 0..runs {
            let result = replay_once(url, last - count, count, server_pid).await?;
            procfs::wait_idle(server_pid, 5.0, Duration::from_secs(60)).await;
            runs_out.push(result);
        }
        say(format!(
            "replay of {count}: {:?} ms",
            runs_out
                .iter()
                .map(|r| r["total_ms"].as_f64().unwrap_or(0.0))
                .collect::<Vec<_>>()
        ));
        results.push(json!({ "count": count, "runs": runs_out }));
    }
    Ok(json!({ "fill": fill, "replays": results }))
}
