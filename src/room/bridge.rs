//! The sandbox's side of the room: who a sandbox's request comes from, the bridge's socket,
//! and its frames turned into events. Frames with an `ack_id` are stored with the ack id, then acknowledged;
//! one seen before is only acknowledged again. Token deltas are batched in memory
//! ([`Coalescer`]) and stored before any other event of their prompt.

use super::context::Ctx;
use super::hub;
use super::lifecycle::{Coalescer, TokenBatch};
use super::prompts;
use super::sandbox::status_event;
use super::store::SandboxRow;
use crate::error::Result;
use protocol::bridge::{FromBridge, ToBridge};
use protocol::crypto::sha256_hex;
use protocol::event::{EventBody, PromptStatus, SandboxState, SessionErrorCode};
use protocol::frames::{parse_json, FrameError};
use protocol::{ApiError, CloseCode, ErrorCode};
use std::cell::RefCell;
use worker::{Request, Response, WebSocket, WebSocketPair};

/// A bridge frame larger than this is refused (tool output is cut by the bridge long before).
const BRIDGE_FRAME_BYTES: usize = 1024 * 1024;

pub fn to_bridge(frame: &ToBridge) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// The sandbox a request comes from, by its token (`Authorization: Bearer`) and its claimed
/// id (`X-Sandbox-Id`): 401 for a token no sandbox of this room holds, 403 for another
/// sandbox's token, 410 once that sandbox (or the session) has ended.
pub fn authenticate(cx: &Ctx, req: &Request) -> Result<SandboxRow> {
    let session = cx.store.existing_session()?;
    let token = req
        .headers()
        .get("authorization")?
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_owned()))
        .filter(|t| !t.is_empty());
    let claimed_id = req.headers().get(protocol::bridge::SANDBOX_ID_HEADER)?;
    let Some(token) = token else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "a sandbox token is required").into());
    };
    let Some(sandbox) = cx
        .store
        .sandbox_by_token_hash(&sha256_hex(token.as_bytes()))?
    else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "this sandbox token is not valid for this session",
        )
        .into());
    };
    if claimed_id.is_some_and(|id| id != sandbox.id) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this token belongs to another sandbox",
        )
        .into());
    }
    if sandbox.ended_at.is_some() || session.is_archived() {
        return Err(
            ApiError::new(ErrorCode::Gone, "this sandbox has ended; do not reconnect").into(),
        );
    }
    Ok(sandbox)
}

/// `GET /v1/sessions/:id/sandbox`: the sandbox's socket, once [`authenticate`]d. A newer
/// connection of the same sandbox replaces the older one.
pub fn accept(cx: &Ctx, req: &Request) -> Result<Response> {
    let sandbox = authenticate(cx, req)?;
    let pair = WebSocketPair::new()?;
    cx.hub.accept_bridge(cx.state, &pair.server, &sandbox.id)?;
    // Any frame proves life; the connection itself is the first.
    cx.store.sandbox_heartbeat(&sandbox.id, cx.now)?;
    Ok(Response::from_websocket(pair.client)?)
}

/// The sandbox on a bridge socket, as its attachment says.
pub struct BridgeLink {
    pub sandbox_id: String,
}

/// What a bridge frame did, for the shell to follow up on.
pub enum Handled {
    /// Nothing more to do.
    Done,
    /// Token text is batched until this time: the alarm must fire by then.
    FlushBy(u64),
    /// The queue or the sandbox changed: the alarm must be set anew.
    Reschedule,
}

/// A frame from the bridge. Refusals go back to the bridge as an error frame.
pub fn on_frame(
    cx: &Ctx,
    tokens: &RefCell<Coalescer>,
    socket: &WebSocket,
    link: &BridgeLink,
    text: &str,
) -> Handled {
    match handle(cx, tokens, socket, link, text) {
        Ok(handled) => handled,
        Err(error) => {
            let error = error.into_api();
            crate::log::error(&format!("bridge frame refused: {}", error.message));
            let frame = FrameError {
                error,
                client_request_id: None,
            };
            hub::send(socket, &frame.to_frame());
            Handled::Done
        }
    }
}

fn handle(
    cx: &Ctx,
    tokens: &RefCell<Coalescer>,
    socket: &WebSocket,
    link: &BridgeLink,
    text: &str,
) -> Result<Handled> {
    if text.len() > BRIDGE_FRAME_BYTES {
        return Err(
            ApiError::new(ErrorCode::TooLarge, "bridge frames are limited to 1 MiB").into(),
        );
    }
    // One pass: serde's error category tells malformed JSON from a wrong field.
    let frame: FromBridge = parse_json(text.as_bytes())?;
    if cx.store.live_sandbox_id()?.as_deref() != Some(link.sandbox_id.as_str()) {
        hub::close(
            socket,
            CloseCode::SandboxEnded,
            CloseCode::SandboxEnded.default_reason(),
        );
        return Ok(Handled::Done);
    }
    if let FromBridge::Token { message_id, delta } = &frame {
        // The hot path: no SQL unless a batch is due.
        if cx.store.running_id()?.as_deref() != Some(message_id.as_str()) {
            return Ok(Handled::Done);
        }
        let batches = tokens.borrow_mut().push(message_id, delta, cx.now);
        store_tokens(cx, batches)?;
        let flush_at = tokens.borrow().flush_at();
        return Ok(flush_at.map_or(Handled::Done, Handled::FlushBy));
    }
    let ack_id = frame.ack_id().map(str::to_owned);
    if let Some(ack_id) = &ack_id {
        if cx.store.ack_seen(&link.sandbox_id, ack_id)? {
            acknowledge(socket, ack_id.clone());
            return Ok(Handled::Done);
        }
    }
    apply(cx, tokens, socket, &link.sandbox_id, frame)?;
    if let Some(ack_id) = ack_id {
        cx.store.record_ack(&link.sandbox_id, &ack_id, cx.now)?;
        acknowledge(socket, ack_id);
    }
    Ok(Handled::Reschedule)
}

fn acknowledge(socket: &WebSocket, ack_id: String) {
    hub::send(socket, &to_bridge(&ToBridge::Ack { ack_id }));
}

fn apply(
    cx: &Ctx,
    tokens: &RefCell<Coalescer>,
    socket: &WebSocket,
    sandbox_id: &str,
    frame: FromBridge,
) -> Result<()> {
    let running = cx.store.running_id()?;
    let is_running = |id: &str| running.as_deref() == Some(id);
    match frame {
        FromBridge::Ready {
            agent,
            agent_version,
            message_id,
            ..
        } => ready(cx, socket, sandbox_id, &agent, &agent_version, message_id),
        FromBridge::Heartbeat {} => cx.store.sandbox_heartbeat(sandbox_id, cx.now),
        FromBridge::Token { .. } => Ok(()),
        FromBridge::ToolCall { call, .. } if is_running(&call.message_id) => {
            flush_tokens(cx, tokens)?;
            cx.emit(EventBody::ToolCall(call)).map(drop)
        }
        FromBridge::FileEdit { edit, .. } if is_running(&edit.message_id) => {
            flush_tokens(cx, tokens)?;
            cx.emit(EventBody::FileEdit(edit)).map(drop)
        }
        FromBridge::Artifact {
            message_id,
            artifact,
            ..
        } if is_running(&message_id) => {
            flush_tokens(cx, tokens)?;
            super::artifacts::add(cx, &artifact.kind, None, Some(&message_id), artifact.data)
                .map(drop)
        }
        FromBridge::Done {
            message_id,
            ok,
            error,
            ..
        } if is_running(&message_id) => {
            let stopped = cx
                .store
                .lifecycle()?
                .stop_requested
                .is_some_and(|(id, _)| id == message_id);
            let (status, error) = match (stopped, ok) {
                (true, _) => (PromptStatus::Cancelled, None),
                (false, true) => (PromptStatus::Completed, None),
                (false, false) => (
                    PromptStatus::Failed,
                    Some(error.unwrap_or_else(|| "the agent failed".into())),
                ),
            };
            prompts::finish_running(cx, tokens, status, error.as_deref())
        }
        FromBridge::Error { message, .. } => cx
            .emit(EventBody::SessionError {
                code: SessionErrorCode::AgentError,
                message,
            })
            .map(drop),
        // Snapshots are taken through the provider, which records whose they are; a bridge
        // naming one could make the session restore another session's workspace. Acknowledged
        // (so it is not sent again) and otherwise ignored.
        FromBridge::SnapshotTaken { .. } => Ok(()),
        // A push moved the branch on the git host, whether or not its prompt still runs.
        FromBridge::Pushed {
            message_id,
            branch,
            commit,
            files_changed,
            additions,
            deletions,
            ..
        } => {
            flush_tokens(cx, tokens)?;
            let pushed = super::git::Pushed {
                branch,
                commit,
                files_changed,
                additions,
                deletions,
            };
            super::git::pushed(cx, &message_id, pushed)
        }
        // Work for a prompt that is no longer running (stopped, timed out): dropped.
        FromBridge::ToolCall { .. }
        | FromBridge::FileEdit { .. }
        | FromBridge::Artifact { .. }
        | FromBridge::Done { .. } => Ok(()),
    }
}

/// `ready`: the sandbox is up. A prompt sent while the bridge was away goes again.
fn ready(
    cx: &Ctx,
    socket: &WebSocket,
    sandbox_id: &str,
    agent: &str,
    agent_version: &str,
    working_on: Option<String>,
) -> Result<()> {
    cx.store.sandbox_connected(sandbox_id, agent, cx.now)?;
    let sandbox = cx.store.live_sandbox()?;
    if sandbox
        .as_ref()
        .is_some_and(|s| s.state() == SandboxState::Spawning)
    {
        cx.store
            .set_sandbox_status(sandbox_id, SandboxState::Ready, None)?;
        cx.store.sandbox_idle_since(sandbox_id, cx.now)?;
        cx.store.update_lifecycle(|meta| meta.failures.clear())?;
        let detail = format!("{agent} {agent_version}").trim().to_owned();
        cx.emit(status_event(SandboxState::Ready, Some(detail)))?;
    }
    if let Some(running) = cx.store.running()? {
        if working_on.as_deref() != Some(running.id.as_str()) {
            hub::send(
                socket,
                &to_bridge(&ToBridge::Prompt(prompts::job(cx, &running)?)),
            );
        }
    }
    prompts::dispatch_next(cx)
}

fn store_tokens(cx: &Ctx, batches: impl IntoIterator<Item = TokenBatch>) -> Result<()> {
    for batch in batches {
        cx.emit(EventBody::Token {
            message_id: batch.message_id,
            delta: batch.text,
        })?;
    }
    Ok(())
}

/// Stores the token batch in memory; done before any other event of its prompt.
pub fn flush_tokens(cx: &Ctx, tokens: &RefCell<Coalescer>) -> Result<()> {
    let batch = tokens.borrow_mut().take(cx.now);
    store_tokens(cx, batch)
}
