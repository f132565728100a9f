//! The Durable Object shell: it owns the room's parts, turns each platform callback (a
//! request from the Worker, a socket frame or close, the alarm) into a call on the part that
//! handles it, and after anything that may move the queue, sets the alarm.

use super::alarm::Alarm;
use super::api::{
    Caller, Init, Member, RemovedMember, Revocation, RoomRoute, TicketUse, CALLER_HEADER,
};
use super::bridge::BridgeLink;
use super::bridge::{self, Handled};
use super::context::Ctx;
use super::hub::{self, Hub, SocketOwner};
use super::ratelimit::RateLimits;
use super::store::Store;
use super::tokens::Coalescer;
use super::{artifacts, git, history, members, prompts, pulls, sandbox, slack, sockets};
use crate::config::{Config, ProviderKind};
use crate::error::{Error, Result};
use crate::respond;
use crate::time::now_ms;
use protocol::event::Source;
use protocol::frames::{parse_json, PromptInput};
use protocol::selection::DomSelection;
use protocol::{ApiError, CloseCode, ErrorCode};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::cell::RefCell;
use worker::{
    durable_object, DurableObject, Env, Request, Response, State, WebSocket,
    WebSocketIncomingMessage,
};

#[durable_object]
pub struct SessionRoom {
    state: State,
    env: Env,
    store: Store,
    hub: Hub,
    config: Config,
    rates: RefCell<RateLimits>,
    /// Token deltas not yet stored (at most one batch, see [`Coalescer`]).
    tokens: RefCell<Coalescer>,
    alarm: Alarm,
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
        SessionRoom {
            rates: RefCell::new(RateLimits::new(&config.limits)),
            tokens: RefCell::new(Coalescer::default()),
            alarm: Alarm::default(),
            config,
            store,
            hub: Hub::default(),
            state,
            env,
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let started = now_ms();
        let response = match self.serve(&mut req).await {
            Ok(response) => Ok(response),
            Err(error) => respond::error(&error.into_api()),
        };
        self.log_action(&req, started, &response);
        response
    }

    async fn websocket_message(
        &self,
        socket: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        let cx = self.cx(now_ms());
        match Hub::owner_of(&socket) {
            Some(SocketOwner::Participant(participant_id)) => {
                let moved = sockets::on_frame(
                    &cx,
                    &self.rates,
                    &self.tokens,
                    &socket,
                    &participant_id,
                    message,
                );
                if moved {
                    self.kick(&cx).await;
                } else {
                    self.presence_alarm(&cx).await;
                }
            }
            Some(SocketOwner::Bridge(sandbox_id)) => {
                let link = BridgeLink { sandbox_id };
                let WebSocketIncomingMessage::String(text) = message else {
                    crate::log::error("binary frame from a bridge ignored");
                    return Ok(());
                };
                let outcome = match bridge::on_frame(&cx, &self.tokens, &socket, &link, &text) {
                    Handled::Done => Ok(()),
                    // Only the flush deadline can have moved: no need to read the lifecycle.
                    Handled::FlushBy(at) => self.alarm.no_later_than(&cx, at).await,
                    Handled::Reschedule => self.alarm.schedule(&cx, &self.tokens).await,
                };
                if let Err(error) = outcome {
                    crate::log::error(&format!("room could not set its alarm: {error:?}"));
                }
            }
            None => {
                let internal = CloseCode::Internal;
                hub::close(&socket, internal, internal.default_reason());
            }
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
        let cx = self.cx(now_ms());
        self.hub
            .socket_gone(&self.state, &self.store, &socket, cx.now);
        self.presence_alarm(&cx).await;
        Ok(())
    }

    async fn websocket_error(
        &self,
        socket: WebSocket,
        _error: worker::Error,
    ) -> worker::Result<()> {
        let cx = self.cx(now_ms());
        self.hub
            .socket_gone(&self.state, &self.store, &socket, cx.now);
        self.presence_alarm(&cx).await;
        Ok(())
    }

    /// A failed alarm is an error to the platform, which runs it again (with its own back-off).
    async fn alarm(&self) -> worker::Result<Response> {
        let started = now_ms();
        let fired = self.alarm.fire(&self.cx(started), &self.tokens).await;
        if let Err(error) = &fired {
            crate::log::error(&format!("room alarm: {error:?}"));
            return Err(worker::Error::RustError(format!(
                "the room's alarm failed: {error:?}"
            )));
        }
        let session_id = self.store.session().ok().flatten().map(|s| s.id);
        crate::log::room(
            "alarm",
            session_id.as_deref(),
            None,
            json!({"ok": fired.is_ok(), "duration_ms": now_ms().saturating_sub(started)}),
        );
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

const TICKET_USED: &str = "this connect ticket was used already; ask for a new one";

/// Uses up a connect ticket; false when it was used before. No ticket (a `?token=` URL) is fine.
fn ticket_unused(cx: &Ctx, ticket: Option<&TicketUse>) -> Result<bool> {
    match ticket {
        Some(ticket) => cx.store.use_ticket(&ticket.nonce, ticket.exp, cx.now),
        None => Ok(true),
    }
}

async fn body<T: DeserializeOwned>(req: &mut Request) -> Result<T> {
    Ok(parse_json(&req.bytes().await?)?)
}

impl SessionRoom {
    /// One log line per request from the Worker: the room's route (its path, without the
    /// query), the status and the time taken, under the Worker request's id.
    fn log_action(&self, req: &Request, started: u64, response: &worker::Result<Response>) {
        let url = crate::url::of(req);
        let request_id = req
            .headers()
            .get(crate::log::REQUEST_ID_HEADER)
            .ok()
            .flatten();
        let session_id = self.store.session().ok().flatten().map(|s| s.id);
        crate::log::room(
            "request",
            session_id.as_deref(),
            request_id.as_deref(),
            json!({
                "route": url.path(),
                "status": response.as_ref().map_or(500, |r| r.status_code()),
                "duration_ms": now_ms().saturating_sub(started),
            }),
        );
    }

    fn cx(&self, now: u64) -> Ctx<'_> {
        Ctx {
            state: &self.state,
            env: &self.env,
            store: &self.store,
            hub: &self.hub,
            config: &self.config,
            now,
        }
    }

    async fn serve(&self, req: &mut Request) -> Result<Response> {
        let url = crate::url::of(req);
        let route = RoomRoute::parse(req.method().as_ref(), url.path(), url.query())
            .ok_or_else(|| ApiError::not_found("room endpoint"))?;
        let cx = self.cx(now_ms());
        match route {
            RoomRoute::Init => {
                let init: Init = body(req).await?;
                let answer = self.init(&cx, caller(req)?, init)?;
                self.kick(&cx).await;
                respond::json(201, &answer)
            }
            RoomRoute::Connect {
                since,
                epoch,
                expires_ms,
                ticket,
            } => {
                if !ticket_unused(&cx, ticket.as_ref())? {
                    return respond::refuse_socket(CloseCode::TokenExpired, TICKET_USED);
                }
                let caller = caller(req)?;
                let response = sockets::join(&cx, &caller, since, epoch.as_deref(), expires_ms)?;
                self.presence_alarm(&cx).await;
                // The socket's expiry is one more deadline; the earliest of all is set.
                if let Err(error) = self.alarm.schedule(&cx, &self.tokens).await {
                    crate::log::error(&format!("room could not set its alarm: {error:?}"));
                }
                Ok(response)
            }
            RoomRoute::Describe => respond::json(200, &members::describe(&cx)?),
            RoomRoute::Prompt => {
                let participant = members::ensure_participant(&cx, &caller(req)?)?;
                let input = PromptInput::from_http_body(&req.bytes().await?, cx.limits())?;
                let (message_id, position) =
                    prompts::submit(&cx, &self.rates, &participant, input, Source::Api)?;
                self.kick(&cx).await;
                respond::json(
                    202,
                    &json!({ "message_id": message_id, "position": position }),
                )
            }
            RoomRoute::Selection => {
                let participant = members::ensure_participant(&cx, &caller(req)?)?;
                self.rates
                    .borrow_mut()
                    .selections
                    .take(&participant.user_id, cx.now)?;
                let selection = DomSelection::from_body(&req.bytes().await?, cx.limits())?;
                let artifact_id = artifacts::add_selection(&cx, &participant, selection)?;
                respond::json(201, &json!({ "artifact_id": artifact_id }))
            }
            RoomRoute::Events { since, limit } => history::page(&cx, since, limit),
            RoomRoute::EventStream {
                since,
                expires_ms,
                ticket,
            } => {
                if !ticket_unused(&cx, ticket.as_ref())? {
                    return Err(ApiError::new(ErrorCode::Unauthorized, TICKET_USED).into());
                }
                let response = history::stream(&cx, &caller(req)?.user_id, since, expires_ms)?;
                // The stream's expiry is one more deadline, as a socket's is.
                if expires_ms.is_some() {
                    if let Err(error) = self.alarm.schedule(&cx, &self.tokens).await {
                        crate::log::error(&format!("room could not set its alarm: {error:?}"));
                    }
                }
                Ok(response)
            }
            RoomRoute::Messages { after_seq, limit } => history::messages(&cx, after_seq, limit),
            RoomRoute::Artifacts { after_seq, limit } => history::artifacts(&cx, after_seq, limit),
            RoomRoute::Artifact { id } => history::artifact(&cx, &id),
            RoomRoute::Bridge => bridge::accept(&cx, req),
            RoomRoute::Stop => {
                prompts::stop(&cx, &self.tokens)?;
                self.kick(&cx).await;
                respond::json(202, &json!({ "stopping": true }))
            }
            RoomRoute::Cancel => {
                let cancel: protocol::api::CancelPrompt = body(req).await?;
                prompts::cancel(&cx, &cancel.message_id)?;
                self.kick(&cx).await;
                respond::json(
                    200,
                    &json!({ "message_id": cancel.message_id, "status": "cancelled" }),
                )
            }
            RoomRoute::AddMember => {
                let member: Member = body(req).await?;
                let participant = members::ensure_participant(&cx, &member.user)?;
                respond::json(201, &json!({ "participant": participant.info() }))
            }
            RoomRoute::RemoveMember => {
                let removed: RemovedMember = body(req).await?;
                members::remove(&cx, &removed.user_id)?;
                respond::json(200, &json!({ "removed": removed.user_id }))
            }
            RoomRoute::Revoke => {
                let revocation: Revocation = body(req).await?;
                members::revoke(&cx, &revocation)?;
                respond::json(200, &json!({ "revoked": revocation.user_id }))
            }
            RoomRoute::Archive => {
                members::archive(&cx, &self.tokens)?;
                self.kick(&cx).await;
                respond::json(200, &json!({ "archived": true }))
            }
            RoomRoute::GitCredentials => git::credentials(&cx, req).await,
            RoomRoute::PullRequest => {
                let caller = caller(req)?;
                let opened = pulls::open(&cx, &caller, &body(req).await?).await?;
                respond::json(200, &opened)
            }
            RoomRoute::PullRequestChanged => {
                let updated = pulls::changed(&cx, &body(req).await?)?;
                respond::json(200, &json!({ "updated": updated }))
            }
            RoomRoute::SlackPrompt => {
                let caller = caller(req)?;
                let message_id = slack::submit(&cx, &self.rates, &caller, body(req).await?)?;
                self.kick(&cx).await;
                // The status message goes out at once, from the alarm.
                if let Err(error) = self.alarm.no_later_than(&cx, cx.now).await {
                    crate::log::error(&format!("room could not set its alarm: {error:?}"));
                }
                respond::json(202, &json!({ "message_id": message_id }))
            }
        }
    }

    /// The room learns its session, its owner and perhaps a first prompt.
    fn init(&self, cx: &Ctx, owner: Caller, init: Init) -> Result<serde_json::Value> {
        let mut prompt = init
            .prompt
            .map(|content| PromptInput::from_content(content, cx.limits()))
            .transpose()?;
        if let Some(input) = prompt.as_mut() {
            input.client_request_id = init.client_request_id.clone();
        }
        cx.store.insert_session(&init.session)?;
        if !init.origin.is_empty() {
            cx.store
                .update_lifecycle(|meta| meta.origin = Some(init.origin.clone()))?;
        }
        let participant = members::ensure_participant(cx, &owner)?;
        if prompt.is_none() && self.config.provider.kind != ProviderKind::None {
            sandbox::start_on_creation(cx)?;
        }
        let message_id = match prompt {
            Some(input) => {
                Some(prompts::submit(cx, &self.rates, &participant, input, Source::Api)?.0)
            }
            None => None,
        };
        Ok(json!({ "participant": participant.info(), "message_id": message_id }))
    }

    /// Presence changes held back go out at the alarm, if no later change sends them first.
    async fn presence_alarm(&self, cx: &Ctx<'_>) {
        if let Some(at) = self.hub.presence_due() {
            if let Err(error) = self.alarm.no_later_than(cx, at).await {
                crate::log::error(&format!("room could not set its alarm: {error:?}"));
            }
        }
    }

    /// After the queue changed: run the next prompt if a sandbox is free, and set the alarm
    /// (which asks the provider for a sandbox when none is up). What the caller did is
    /// already stored and answered, so a failure here is logged, not returned.
    async fn kick(&self, cx: &Ctx<'_>) {
        // Without a provider and a sandbox there is nothing to move: keep the prompt path lean.
        if self.config.provider.kind == ProviderKind::None
            && matches!(self.store.live_sandbox_id(), Ok(None))
        {
            return;
        }
        let outcome = match prompts::dispatch_next(cx) {
            Ok(()) => self.alarm.schedule(cx, &self.tokens).await,
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            crate::log::error(&format!("room could not move the queue on: {error:?}"));
        }
    }
}
