//! The Durable Object shell: construction (migrations, keep-alive auto-response), the
//! internal HTTP API the Worker calls, and the WebSocket callbacks.

use super::api::{Caller, Init, Member, RemovedMember, CALLER_HEADER};
use super::hub::{self, Hub, SocketOwner};
use super::lifecycle::Coalescer;
use super::ratelimit::RateLimits;
use super::store::{found, Participant, Store};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::query;
use crate::respond;
use crate::time::now_ms;
use futures_util::StreamExt;
use protocol::api::Session;
use protocol::event::Source;
use protocol::frames::{parse_client_frame, ClientFrame, FrameError, PromptInput, ServerFrame};
use protocol::selection::DomSelection;
use protocol::{ApiError, ErrorCode, Limits};
use serde::de::DeserializeOwned;
use std::cell::{Cell, RefCell};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

#[durable_object]
pub struct SessionRoom {
    pub(super) state: State,
    pub(super) store: Store,
    pub(super) hub: Hub,
    pub(super) limits: Limits,
    pub(super) config: Config,
    pub(super) rates: RefCell<RateLimits>,
    /// Token deltas not yet stored (at most one batch, see [`Coalescer`]).
    pub(super) tokens: RefCell<Coalescer>,
    /// The alarm time last set, so unchanged deadlines cost no storage write.
    pub(super) alarm_at: Cell<Option<u64>>,
}

impl DurableObject for SessionRoom {
    fn new(state: State, env: Env) -> Self {
        let store = Store::new(state.storage().sql());
        if let Err(error) = store.migrate(now_ms()) {
            crate::log::error(&format!("room schema migration failed: {error:?}"));
        }
        // Keep-alives are answered by the runtime and never wake the room.
        if let Ok(pair) = worker::worker_sys::WebSocketRequestResponsePair::new(
            r#"{"type":"ping"}"#,
            r#"{"type":"pong"}"#,
        ) {
            state.set_websocket_auto_response(&pair);
        }
        // The Worker refuses requests when the configuration is broken, so a room only
        // falls back to the defaults for a request that never reached it through the Worker.
        let config = Config::from_env(&env).unwrap_or_else(|message| {
            crate::log::error(&format!("configuration: {message}"));
            Config::from_lookup(|_| None).unwrap_or_else(|_| unreachable!("defaults parse"))
        });
        let limits = config.limits.clone();
        SessionRoom {
            config,
            rates: RefCell::new(RateLimits::new(&limits)),
            tokens: RefCell::new(Coalescer::default()),
            alarm_at: Cell::new(None),
            limits,
            store,
            hub: Hub::default(),
            state,
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        match self.serve(&mut req).await {
            Ok(response) => Ok(response),
            Err(error) => respond::error(&error.into_api()),
        }
    }

    async fn websocket_message(
        &self,
        socket: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        match Hub::owner_of(&socket) {
            Some(SocketOwner::Participant(participant)) => {
                if self.on_frame(&socket, participant, message) {
                    self.kick(now_ms()).await;
                }
            }
            Some(SocketOwner::Bridge(link)) => match message {
                WebSocketIncomingMessage::String(text) => {
                    self.on_bridge_frame(&socket, link, &text).await
                }
                WebSocketIncomingMessage::Binary(_) => {
                    crate::log::error("binary frame from a bridge ignored")
                }
            },
            None => hub::close(&socket, 1011, "unknown socket"),
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        socket: WebSocket,
        _code: usize,
        _reason: String,
        _clean: bool,
    ) -> worker::Result<()> {
        self.on_socket_gone(&socket);
        Ok(())
    }

    async fn websocket_error(
        &self,
        socket: WebSocket,
        _error: worker::Error,
    ) -> worker::Result<()> {
        self.on_socket_gone(&socket);
        Ok(())
    }

    async fn alarm(&self) -> worker::Result<Response> {
        if let Err(error) = self.on_alarm().await {
            crate::log::error(&format!("room alarm: {error:?}"));
        }
        Response::ok("")
    }
}

fn caller(req: &Request) -> Result<Caller> {
    let header = req
        .headers()
        .get(CALLER_HEADER)?
        .ok_or_else(|| Error::Runtime("room request without caller".into()))?;
    Ok(serde_json::from_str(&header)?)
}

async fn body<T: DeserializeOwned>(req: &mut Request) -> Result<T> {
    Ok(serde_json::from_slice(&req.bytes().await?)?)
}

impl SessionRoom {
    pub(super) fn session(&self) -> Result<Session> {
        found(self.store.session()?, "session")
    }

    async fn serve(&self, req: &mut Request) -> Result<Response> {
        let url = req.url()?;
        let query = url.query().unwrap_or("");
        let now = now_ms();
        match (req.method(), url.path()) {
            (Method::Post, "/init") => {
                let init: Init = body(req).await?;
                let response = self.init(caller(req)?, init, now)?;
                self.kick(now).await;
                Ok(response)
            }
            (Method::Get, "/connect") => {
                self.join_socket(caller(req)?, query::u64_param(query, "since")?, now)
            }
            (Method::Get, "/state") => self.describe(),
            (Method::Post, "/prompts") => {
                let participant = self.ensure_participant(&caller(req)?, now)?;
                let input = PromptInput::from_http_body(&req.bytes().await?, &self.limits)?;
                let (message_id, position) = self.prompt(&participant, input, Source::Api, now)?;
                self.kick(now).await;
                respond::json(
                    202,
                    &serde_json::json!({ "message_id": message_id, "position": position }),
                )
            }
            (Method::Post, "/selections") => {
                let participant = self.ensure_participant(&caller(req)?, now)?;
                let selection = DomSelection::from_body(&req.bytes().await?, &self.limits)?;
                let artifact_id = self.add_selection(&participant, selection, now)?;
                respond::json(201, &serde_json::json!({ "artifact_id": artifact_id }))
            }
            (Method::Get, "/events") => {
                let since = query::u64_param(query, "since")?.unwrap_or(0);
                if query::param(query, "stream").is_some() {
                    self.event_stream(since)
                } else {
                    self.events_page(since, query::limit_param(query, 100, 1000)?)
                }
            }
            (Method::Get, "/messages") => {
                let after = query::u64_param(query, "after_seq")?.unwrap_or(0);
                let (messages, has_more) = self
                    .store
                    .messages(after, query::limit_param(query, 100, 500)?)?;
                let messages: Vec<_> = messages.iter().map(|m| m.to_json()).collect();
                respond::json(
                    200,
                    &serde_json::json!({ "messages": messages, "has_more": has_more }),
                )
            }
            (Method::Get, "/artifacts") => {
                let after = query::u64_param(query, "after_seq")?.unwrap_or(0);
                let (artifacts, has_more) = self
                    .store
                    .artifacts(after, query::limit_param(query, 100, 500)?)?;
                let artifacts: Vec<_> = artifacts.iter().map(|a| self.artifact_json(a)).collect();
                respond::json(
                    200,
                    &serde_json::json!({ "artifacts": artifacts, "has_more": has_more }),
                )
            }
            (Method::Get, "/sandbox") => self.accept_bridge(req, now),
            (Method::Post, "/stop") => {
                self.stop(now)?;
                self.kick(now).await;
                respond::json(202, &serde_json::json!({ "stopping": true }))
            }
            (Method::Post, "/cancel") => {
                let cancel: protocol::api::CancelPrompt =
                    protocol::frames::parse_json(&req.bytes().await?)?;
                self.cancel(&cancel.message_id, now)?;
                self.kick(now).await;
                respond::json(
                    200,
                    &serde_json::json!({ "message_id": cancel.message_id, "status": "cancelled" }),
                )
            }
            (Method::Post, "/members") => {
                let member: Member = body(req).await?;
                let participant = self.ensure_participant(&member.user, now)?;
                respond::json(
                    201,
                    &serde_json::json!({ "participant": participant.info() }),
                )
            }
            (Method::Post, "/members/remove") => {
                let removed: RemovedMember = body(req).await?;
                self.remove_member(&removed.user_id, now)?;
                respond::json(200, &serde_json::json!({ "removed": removed.user_id }))
            }
            (Method::Post, "/archive") => {
                self.archive(now)?;
                self.kick(now).await;
                respond::json(200, &serde_json::json!({ "archived": true }))
            }
            _ => Err(ApiError::not_found("room endpoint").into()),
        }
    }

    fn init(&self, owner: Caller, init: Init, now: u64) -> Result<Response> {
        let prompt = init
            .prompt
            .map(|content| PromptInput::from_content(content, &self.limits))
            .transpose()?;
        self.store.insert_session(&init.session)?;
        if !init.origin.is_empty() {
            self.update_meta(|meta| meta.origin = Some(init.origin.clone()))?;
        }
        let participant = self.ensure_participant(&owner, now)?;
        let message_id = match prompt {
            Some(input) => Some(self.prompt(&participant, input, Source::Api, now)?.0),
            None => None,
        };
        respond::json(
            201,
            &serde_json::json!({ "participant": participant.info(), "message_id": message_id }),
        )
    }

    /// Accepts a participant socket: `welcome`, then every event after `since`, then live
    /// events. Nothing awaits in between, so no event can slip between replay and live.
    fn join_socket(&self, caller: Caller, since: Option<u64>, now: u64) -> Result<Response> {
        let session = self.session()?;
        if session.is_archived() {
            return respond::refuse_socket(4009, "the session is archived");
        }
        let participant = self.ensure_participant(&caller, now)?;
        let pair = WebSocketPair::new()?;
        let socket = pair.server;
        self.hub.accept(&self.state, &socket, &participant)?;
        let welcome = ServerFrame::Welcome {
            participant: participant.info(),
            session: serde_json::to_value(&session)?,
            online: self.hub.online(&self.state, None),
            last_seq: self.store.last_seq()?,
        };
        hub::send(&socket, &welcome.to_json());
        if let Some(since) = since {
            self.store
                .each_event_after(since, |event| hub::send(&socket, &event.json))?;
        }
        self.hub.broadcast_presence(&self.state, None, now);
        Ok(Response::from_websocket(pair.client)?)
    }

    /// Handles a participant's frame; true when it may have changed what the sandbox should do.
    fn on_frame(
        &self,
        socket: &WebSocket,
        participant: Participant,
        message: WebSocketIncomingMessage,
    ) -> bool {
        let now = now_ms();
        let refuse = |error: ApiError, client_request_id: Option<String>| {
            hub::send(
                socket,
                &FrameError {
                    error,
                    client_request_id,
                }
                .to_frame(),
            );
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
        if let Err(error) = self
            .rates
            .borrow_mut()
            .frames
            .take(&participant.user_id, now)
        {
            refuse(error, None);
            return false;
        }
        let frame = match parse_client_frame(&text, &self.limits) {
            Ok(frame) => frame,
            Err(error) => {
                hub::send(socket, &error.to_frame());
                return false;
            }
        };
        let changes_queue = matches!(
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
                self.prompt(&participant, input, Source::Web, now)
                    .map(|(message_id, position)| {
                        let ack = ServerFrame::PromptAck {
                            client_request_id: client_request_id.clone(),
                            message_id,
                            position,
                        };
                        hub::send(socket, &ack.to_json());
                    })
            }
            ClientFrame::Typing => {
                self.hub.set_typing(&participant, now);
                self.hub.broadcast_presence(&self.state, None, now);
                Ok(())
            }
            ClientFrame::Cancel { message_id } => self.cancel(&message_id, now),
            ClientFrame::Stop => self.stop(now),
            ClientFrame::History { before_seq, limit } => self
                .store
                .events_before(before_seq, limit)
                .map(|(events, has_more)| {
                    hub::send(
                        socket,
                        &format!(
                            r#"{{"type":"history","events":[{}],"has_more":{has_more}}}"#,
                            events.join(",")
                        ),
                    );
                }),
        };
        match outcome {
            Ok(()) => changes_queue,
            Err(error) => {
                refuse(error.into_api(), client_request_id);
                false
            }
        }
    }

    fn on_socket_gone(&self, socket: &WebSocket) {
        hub::close(socket, 1000, "closed");
        if matches!(Hub::owner_of(socket), Some(SocketOwner::Bridge(_))) {
            // A bridge that went away reconnects; only a missed heartbeat ends its sandbox.
            return;
        }
        self.hub
            .broadcast_presence(&self.state, Some(socket), now_ms());
    }

    fn events_page(&self, since: u64, limit: u32) -> Result<Response> {
        let (events, has_more) = self.store.events_after(since, limit)?;
        let events: Vec<&str> = events.iter().map(|event| event.json.as_str()).collect();
        respond::raw_json(
            200,
            format!(
                r#"{{"events":[{}],"has_more":{has_more}}}"#,
                events.join(",")
            ),
        )
    }

    /// An SSE stream: stored events after `since`, then live ones as they are appended.
    fn event_stream(&self, since: u64) -> Result<Response> {
        let (sender, receiver) = futures_channel::mpsc::unbounded::<Vec<u8>>();
        let _ = sender.unbounded_send(b"retry: 2000\n\n".to_vec());
        self.store.each_event_after(since, |event| {
            let _ = sender
                .unbounded_send(hub::sse_chunk(event.seq, &event.kind, &event.json).into_bytes());
        })?;
        self.hub.add_stream(sender);
        let response = Response::from_stream(receiver.map(Ok::<Vec<u8>, worker::Error>))?;
        Ok(respond::event_stream(response))
    }
}
