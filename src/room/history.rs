//! Reading the log back: replay to a socket that joins, pages over HTTP, `history` frames,
//! the SSE stream, and the message and artifact lists.

use super::artifacts;
use super::context::Ctx;
use super::hub;
use super::store::EventRow;
use crate::error::Result;
use crate::respond;
use futures_util::StreamExt;
use protocol::frames::ServerFrame;
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

/// Sends every event after `since` to a socket that just joined. Synchronous, so nothing can
/// be appended between the replay and the live events that follow it.
pub fn replay(cx: &Ctx, socket: &WebSocket, since: u64) -> Result<()> {
    cx.store
        .each_event_after(since, |event| hub::send(socket, &event.json))
}

/// `GET …/events?since=&limit=`.
pub fn page(cx: &Ctx, since: u64, limit: u32) -> Result<Response> {
    let (events, has_more) = cx.store.events_after(since, limit)?;
    respond::json(
        200,
        &json!({ "events": raw(events)?, "has_more": has_more }),
    )
}

/// A `history` frame: the events just before `before_seq`, for a client scrolling back.
pub fn history_frame(cx: &Ctx, before_seq: Option<u64>, limit: u32) -> Result<String> {
    let (events, has_more) = cx.store.events_before(before_seq, limit)?;
    Ok(ServerFrame::History {
        events: raw(events)?,
        has_more,
    }
    .to_json())
}

/// An SSE stream: stored events after `since`, then live ones as they are appended, until
/// `user_id` loses access.
pub fn stream(cx: &Ctx, since: u64, user_id: &str) -> Result<Response> {
    let (sender, receiver) = futures_channel::mpsc::unbounded::<Vec<u8>>();
    let _ = sender.unbounded_send(b"retry: 2000\n\n".to_vec());
    cx.store.each_event_after(since, |event| {
        let _ =
            sender.unbounded_send(hub::sse_chunk(event.seq, &event.kind, &event.json).into_bytes());
    })?;
    cx.hub.add_stream(user_id, sender);
    let response = Response::from_stream(receiver.map(Ok::<Vec<u8>, worker::Error>))?;
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
    let (rows, has_more) = cx.store.artifacts(after_seq, limit)?;
    let artifacts: Vec<_> = rows.iter().map(artifacts::to_json).collect();
    respond::json(
        200,
        &json!({ "artifacts": artifacts, "has_more": has_more }),
    )
}
