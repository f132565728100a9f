//! The sandbox's side of the room: who a sandbox's request comes from, the bridge's socket,
//! and its frames turned into events. Frames with an `ack_id` are stored with the ack id, then acknowledged;
//! one seen before is only acknowledged again, and one the room must refuse is acknowledged
//! with an `agent_error` saying why, so it is not sent again forever. Token deltas are placed
//! by their offset and batched in memory ([`Coalescer`]), stored before any other event of
//! their prompt, and acknowledged by offset (`tokens_ack`); a bridge that comes back is told
//! where the stored text ends (`resume`).

use super::context::Ctx;
use super::hub;
use super::prompts;
use super::store::SandboxRow;
use super::tokens::{Coalescer, Held, TokenBatch};
use crate::error::Result;
use protocol::bridge::{FromBridge, ToBridge};
use protocol::crypto::sha256_hex;
use protocol::event::{EventBody, PromptStatus, SandboxState, SessionErrorCode};
use protocol::frames::{parse_json, FrameError};
use protocol::{ApiError, CloseCode, ErrorCode};
use std::cell::RefCell;
use worker::{Request, Response, WebSocket, WebSocketPair};

use protocol::cut::BRIDGE_FRAME_BYTES;

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
            // Refused for what it is (not for a failure of the room, which a resend may cure).
            let about_the_frame = matches!(
                error.code,
                ErrorCode::TooLarge
                    | ErrorCode::InvalidJson
                    | ErrorCode::InvalidField
                    | ErrorCode::UnknownType
            );
            let refused = FrameError {
                error: error.clone(),
                client_request_id: None,
            };
            hub::send(socket, &refused.to_frame());
            if let Some(ack_id) = critical_ack_id(text).filter(|_| about_the_frame) {
                return match refused_critical(cx, socket, link, &ack_id, &error.message) {
                    Ok(()) => Handled::Reschedule,
                    Err(failure) => {
                        crate::log::error(&format!("refused frame not recorded: {failure:?}"));
                        Handled::Done
                    }
                };
            }
            Handled::Done
        }
    }
}

/// The `ack_id` of a frame the room could not take, read without the rest.
fn critical_ack_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Critical {
        ack_id: Option<String>,
    }
    serde_json::from_str::<Critical>(text)
        .ok()?
        .ack_id
        .filter(|id| !id.is_empty() && id.len() <= 128)
}

/// A critical frame the room refuses would come back after every reconnect: it is
/// acknowledged once, with an `agent_error` event saying what was refused.
fn refused_critical(
    cx: &Ctx,
    socket: &WebSocket,
    link: &BridgeLink,
    ack_id: &str,
    why: &str,
) -> Result<()> {
    if !cx.store.ack_seen(&link.sandbox_id, ack_id)? {
        cx.emit(EventBody::SessionError {
            code: SessionErrorCode::AgentError,
            message: format!("the room refused a frame from the sandbox: {why}"),
        })?;
        cx.store.record_ack(&link.sandbox_id, ack_id, cx.now)?;
    }
    acknowledge(socket, ack_id.to_owned());
    Ok(())
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
    if let FromBridge::Token {
        message_id,
        delta,
        offset,
    } = &frame
    {
        // The hot path: no SQL unless a batch is due (or, once per prompt after a wake, the
        // stored text is counted).
        if cx.store.running_id()?.as_deref() != Some(message_id.as_str()) {
            return Ok(Handled::Done);
        }
        know_text(cx, tokens, message_id)?;
        let batches = tokens
            .borrow_mut()
            .push(message_id, delta, *offset, cx.now)
            .map_err(|_| ApiError::invalid_field("offset falls inside a character of delta"))?;
        store_tokens(cx, Some(socket), batches)?;
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
        } => ready(
            cx,
            tokens,
            socket,
            sandbox_id,
            &agent,
            &agent_version,
            message_id,
        ),
        FromBridge::Heartbeat {} => cx.store.sandbox_heartbeat(sandbox_id, cx.now),
        FromBridge::Token { .. } => Ok(()),
        FromBridge::ToolCall { call, .. } if is_running(&call.message_id) => {
            flush_tokens(cx, tokens)?;
            super::artifacts::tool_call(cx, call)
        }
        FromBridge::FileEdit { edit, .. } if is_running(&edit.message_id) => {
            flush_tokens(cx, tokens)?;
            super::artifacts::file_edit(cx, edit)
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
            text_bytes,
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
            know_text(cx, tokens, &message_id)?;
            flush_tokens(cx, tokens)?;
            let stored = tokens.borrow().held(&message_id).map_or(0, |h| h.bytes);
            let lost = text_bytes.map_or(0, |produced| produced.saturating_sub(stored));
            if lost == 0 {
                return prompts::finish_running(cx, tokens, status, error.as_deref());
            }
            let sentence = format!(
                "{lost} bytes of the answer were lost on the way; the text shown is incomplete"
            );
            let error = match error {
                Some(error) => format!("{error}; {sentence}"),
                None => sentence,
            };
            prompts::finish_running_with(cx, tokens, status, Some(&error), true)
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
    tokens: &RefCell<Coalescer>,
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
        cx.emit(EventBody::SandboxStatus {
            status: SandboxState::Ready,
            detail: Some(detail),
            warm: cx.store.is_warm(sandbox_id)?,
        })?;
    }
    if let Some(running) = cx.store.running()? {
        if working_on.as_deref() != Some(running.id.as_str()) {
            hub::send(
                socket,
                &to_bridge(&ToBridge::Prompt(prompts::job(cx, &running, sandbox_id)?)),
            );
        } else {
            // The bridge goes on with it: it sends again what the room does not hold.
            know_text(cx, tokens, &running.id)?;
            flush_tokens(cx, tokens)?;
            let offset = tokens.borrow().held(&running.id).map_or(0, |h| h.end);
            hub::send(
                socket,
                &to_bridge(&ToBridge::Resume {
                    message_id: running.id,
                    offset,
                }),
            );
        }
    }
    prompts::dispatch_next(cx)
}

/// Makes sure the batcher knows how much of the prompt's text is stored: after the room woke
/// (or a crash), it is counted from the log once.
fn know_text(cx: &Ctx, tokens: &RefCell<Coalescer>, message_id: &str) -> Result<()> {
    if tokens.borrow().knows(message_id) {
        return Ok(());
    }
    let after_seq = cx.store.message(message_id)?.map_or(0, |m| m.seq);
    let (end, bytes) = cx.store.stored_text(message_id, after_seq)?;
    tokens.borrow_mut().load(Held {
        message_id: message_id.to_owned(),
        end,
        bytes,
    });
    Ok(())
}

/// Stores batches as `token` events, then tells the bridge how far its text is stored (once,
/// for the last batch); `socket` is the bridge's, when the caller has it at hand.
fn store_tokens(
    cx: &Ctx,
    socket: Option<&WebSocket>,
    batches: impl IntoIterator<Item = TokenBatch>,
) -> Result<()> {
    let mut stored = None;
    for batch in batches {
        let end = batch.end();
        cx.emit(EventBody::Token {
            message_id: batch.message_id.clone(),
            delta: batch.text,
            offset: batch.offset,
        })?;
        stored = Some((batch.message_id, end));
    }
    let Some((message_id, offset)) = stored else {
        return Ok(());
    };
    let ack = to_bridge(&ToBridge::TokensAck { message_id, offset });
    match socket {
        Some(socket) => hub::send(socket, &ack),
        None => {
            if let Some(socket) = cx
                .store
                .live_sandbox_id()?
                .and_then(|id| cx.hub.bridge(cx.state, &id))
            {
                hub::send(&socket, &ack);
            }
        }
    }
    Ok(())
}

/// Stores the token batch in memory; done before any other event of its prompt.
pub fn flush_tokens(cx: &Ctx, tokens: &RefCell<Coalescer>) -> Result<()> {
    let batch = tokens.borrow_mut().take();
    store_tokens(cx, None, batch)
}
