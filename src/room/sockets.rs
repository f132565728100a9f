//! A participant's socket: joining (welcome, replay, presence), the frames it sends, and
//! what each frame does. Refusals are `error` frames; the socket stays open.

use super::api::Caller;
use super::context::Ctx;
use super::history;
use super::hub::{self, MAX_CONNECTIONS_PER_USER};
use super::members::ensure_participant;
use super::prompts;
use super::ratelimit::RateLimits;
use super::tokens::Coalescer;
use crate::error::Result;
use crate::respond;
use protocol::event::Source;
use protocol::frames::{parse_client_frame, ClientFrame, FrameError, ServerFrame};
use protocol::{ApiError, CloseCode, ErrorCode};
use std::cell::RefCell;
use worker::{Response, WebSocket, WebSocketIncomingMessage, WebSocketPair};

/// Accepts a participant socket: `welcome` (with the full presence), then the events after
/// `since` (the newest ~1 MiB of them; `welcome.replay_from` says where they start), then live
/// events. Nothing awaits in between, so no event can slip between replay and live. A `since`
/// beyond the log, or an `epoch` of another log, replays from the beginning
/// (`recovered: false`): the client must reset its view. The socket is closed with 4001 at
/// `expires_ms`, when its token runs out.
pub fn join(
    cx: &Ctx,
    caller: &Caller,
    since: Option<u64>,
    client_epoch: Option<&str>,
    expires_ms: u64,
) -> Result<Response> {
    let session = cx.store.existing_session()?;
    if session.is_archived() {
        let archived = CloseCode::Archived;
        return respond::refuse_socket(archived, archived.default_reason());
    }
    let participant = ensure_participant(cx, caller)?;
    if cx.hub.connections_of(cx.state, &participant.user_id).0 >= MAX_CONNECTIONS_PER_USER {
        let too_many = CloseCode::TooMany;
        let reason = format!(
            "at most {MAX_CONNECTIONS_PER_USER} connections per user on a session; close one first"
        );
        return respond::refuse_socket(too_many, &reason);
    }
    let pair = WebSocketPair::new()?;
    let socket = pair.server;
    cx.hub
        .accept(cx.state, cx.store, &socket, &participant, expires_ms)?;
    let mut online = cx.hub.online(cx.state, cx.store)?;
    if !online.iter().any(|p| p.id == participant.id) {
        online.push(participant.info());
    }
    let last_seq = cx.store.last_seq()?;
    let epoch = cx.store.epoch()?;
    let recovered = since
        .is_none_or(|since| since <= last_seq && client_epoch.is_none_or(|client| client == epoch));
    let since = since.map(|since| if recovered { since } else { 0 });
    let replay_from = match since {
        Some(since) => history::replay_start(cx, since)?,
        None => last_seq + 1,
    };
    let welcome = ServerFrame::Welcome {
        participant: participant.info(),
        session: serde_json::to_value(&session)?,
        online,
        typing: cx.hub.typing_now(cx.now),
        last_seq,
        epoch,
        recovered,
        replay_from,
    };
    hub::send(&socket, &welcome.to_json());
    if since.is_some() {
        history::replay(cx, &socket, replay_from)?;
    }
    cx.hub.joined(cx.state, &participant, cx.now);
    Ok(Response::from_websocket(pair.client)?)
}

/// A participant's frame; true when it may have changed what the sandbox should do.
pub fn on_frame(
    cx: &Ctx,
    rates: &RefCell<RateLimits>,
    tokens: &RefCell<Coalescer>,
    socket: &WebSocket,
    participant_id: &str,
    message: WebSocketIncomingMessage,
) -> bool {
    let refuse = |error: ApiError, client_request_id: Option<String>| {
        let frame = FrameError {
            error,
            client_request_id,
        };
        hub::send(socket, &frame.to_frame());
    };
    let WebSocketIncomingMessage::String(text) = message else {
        refuse(
            ApiError::new(
                ErrorCode::InvalidJson,
                "binary frames are not supported; send JSON text",
            ),
            None,
        );
        return false;
    };
    let participant = match cx.store.participant(participant_id) {
        Ok(Some(participant)) => participant,
        Ok(None) => {
            let internal = CloseCode::Internal;
            hub::close(socket, internal, internal.default_reason());
            return false;
        }
        Err(error) => {
            refuse(error.into_api(), None);
            return false;
        }
    };
    if let Err(error) = rates.borrow_mut().frames.take(&participant.user_id, cx.now) {
        refuse(error, None);
        return false;
    }
    let frame = match parse_client_frame(&text, cx.limits()) {
        Ok(frame) => frame,
        Err(error) => {
            hub::send(socket, &error.to_frame());
            return false;
        }
    };
    let mut changes_queue = matches!(
        frame,
        ClientFrame::Prompt(_) | ClientFrame::Cancel { .. } | ClientFrame::Stop
    );
    let mut client_request_id = None;
    let outcome = match frame {
        ClientFrame::Ping => {
            hub::send(socket, &ServerFrame::Pong.to_json());
            Ok(())
        }
        ClientFrame::Prompt(input) => {
            client_request_id = input.client_request_id.clone();
            prompts::submit(cx, rates, &participant, input, Source::Web).map(
                |(message_id, position)| {
                    let ack = ServerFrame::PromptAck {
                        client_request_id: client_request_id.clone(),
                        message_id,
                        position,
                    };
                    hub::send(socket, &ack.to_json());
                },
            )
        }
        ClientFrame::Typing => cx
            .hub
            .typing(cx.state, cx.store, &participant, cx.now)
            // Typing warms: the sandbox starts while the prompt is being written.
            .and_then(|()| super::sandbox::start_on_typing(cx))
            .map(|start| changes_queue |= start),
        ClientFrame::Cancel { message_id } => prompts::cancel(cx, &message_id),
        ClientFrame::Stop => prompts::stop(cx, tokens),
        ClientFrame::History { before_seq, limit } => {
            history::history_frame(cx, before_seq, limit).map(|frame| hub::send(socket, &frame))
        }
    };
    match outcome {
        Ok(()) => changes_queue,
        Err(error) => {
            refuse(error.into_api(), client_request_id);
            false
        }
    }
}
