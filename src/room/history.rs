//! Reading the log back: replay to a socket that joins, pages over HTTP, `history` frames,
//! the SSE stream, and the message and artifact lists.

use super::artifacts;
use super::context::Ctx;
use super::hub::{self, Backlog, Stream, MAX_CONNECTIONS_PER_USER};
use super::store::{EventRow, PAGE_BYTES};
use crate::error::Result;
use crate::respond;
use futures_util::StreamExt;
use protocol::frames::ServerFrame;
use protocol::{ApiError, ErrorCode};
use serde_json::json;
use serde_json::value::RawValue;
use worker::{Response, WebSocket};

/// The stored JSON of each event, as it is (no re-encoding of what was stored).
fn raw(events: Vec<EventRow>) -> Result<Vec<Box<RawValue>>> {
    events
        .into_iter()
        .map(|event| Ok(RawValue::from_string(event.json)?))
        .collect()
}

/// Where a join's replay after `since` starts: the newest events up to about
/// [`PAGE_BYTES`] come at once, the client pages below with `history` frames.
pub fn replay_start(cx: &Ctx, since: u64) -> Result<u64> {
    cx.store.replay_start(since, PAGE_BYTES)
}

/// Sends every event from `from` on to a socket that just joined. Synchronous, so nothing can
/// be appended between the replay and the live events that follow it.
pub fn replay(cx: &Ctx, socket: &WebSocket, from: u64) -> Result<()> {
    cx.store.each_event_after(from.saturating_sub(1), |event| {
        hub::send(socket, &event.json)
    })
}

/// `GET …/events?since=&limit=`: at most `limit` events and about [`PAGE_BYTES`].
pub fn page(cx: &Ctx, since: u64, limit: u32) -> Result<Response> {
    let (events, has_more) = cx.store.events_after_within(since, limit, PAGE_BYTES)?;
    respond::json(
        200,
        &json!({ "events": raw(events)?, "has_more": has_more }),
    )
}

/// A `history` frame: the events just before `before_seq`, for a client scrolling back.
pub fn history_frame(cx: &Ctx, before_seq: Option<u64>, limit: u32) -> Result<String> {
    let (events, has_more) = cx.store.events_before(before_seq, limit, PAGE_BYTES)?;
    Ok(ServerFrame::History {
        events: raw(events)?,
        has_more,
    }
    .to_json())
}

/// An SSE stream for `user_id`: stored events after `since` (from the beginning when `since`
/// is beyond the log, which was reset), then live ones as they are appended, until `user_id` loses access. A replay larger
/// than a page sends one page and ends: the reader comes back with `Last-Event-ID` for the
/// next. A user holds at most [`MAX_CONNECTIONS_PER_USER`] streams on a session. A stream
/// opened with a token or ticket ends at `expires_ms`, as its socket would close with 4001.
pub fn stream(cx: &Ctx, user_id: &str, since: u64, expires_ms: Option<u64>) -> Result<Response> {
    if cx.hub.connections_of(cx.state, user_id).1 >= MAX_CONNECTIONS_PER_USER {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            format!("at most {MAX_CONNECTIONS_PER_USER} event streams per user on a session; close one first"),
        )
        .into());
    }
    let since = if since > cx.store.last_seq()? {
        0
    } else {
        since
    };
    let (sender, receiver) = futures_channel::mpsc::unbounded::<Vec<u8>>();
    let stream = Stream {
        user_id: user_id.to_owned(),
        sender,
        backlog: Backlog::default(),
        expires_ms,
    };
    stream.send(b"retry: 2000\n\n".to_vec());
    let (events, has_more) = cx.store.events_after_within(since, 1000, PAGE_BYTES)?;
    for event in &events {
        stream.send(hub::sse_chunk(event.seq, &event.kind, &event.json).into_bytes());
    }
    let backlog = stream.backlog.clone();
    if !has_more {
        cx.hub.add_stream(stream);
    }
    let body = receiver.map(move |chunk| {
        backlog.taken(chunk.len());
        Ok::<Vec<u8>, worker::Error>(chunk)
    });
    let response = Response::from_stream(body)?;
    Ok(respond::event_stream(response))
}

/// `GET …/messages?after_seq=&limit=`.
pub fn messages(cx: &Ctx, after_seq: u64, limit: u32) -> Result<Response> {
    let (messages, has_more) = cx.store.messages(after_seq, limit)?;
    let messages: Vec<_> = messages.iter().map(|m| m.to_json()).collect();
    respond::json(200, &json!({ "messages": messages, "has_more": has_more }))
}

/// `GET …/artifacts?after_seq=&limit=`.
pub fn artifacts(cx: &Ctx, after_seq: u64, limit: u32) -> Result<Response> {
    let (rows, has_more) = cx.store.artifacts(after_seq, limit, PAGE_BYTES)?;
    let artifacts: Vec<_> = rows.iter().map(artifacts::to_json).collect();
    respond::json(
        200,
        &json!({ "artifacts": artifacts, "has_more": has_more }),
    )
}

/// `GET …/artifacts/:id`: one artifact, whole.
pub fn artifact(cx: &Ctx, id: &str) -> Result<Response> {
    let row = super::store::found(cx.store.artifact(id)?, "artifact")?;
    respond::json(200, &json!({ "artifact": artifacts::to_json(&row) }))
}
