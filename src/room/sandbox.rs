//! The room's side of the sandbox: asking the provider for one, accepting its bridge,
//! sending it one prompt at a time, turning its frames into events, and the deadlines
//! of [`lifecycle`](super::lifecycle) on the room's one alarm.
//!
//! Provider calls (create, snapshot, delete) happen only in the alarm handler: a prompt
//! that needs a sandbox sets the alarm to now, so no client waits on the provider.

use super::hub::{self, BridgeLink};
use super::lifecycle::{
    after_provider_failure, AfterFailure, Due, LiveSandbox, RoomMeta, Running, Situation,
    TokenBatch,
};
use super::object::SessionRoom;
use super::store::{ArtifactRow, MessageRow, SandboxRow};
use crate::config::ProviderKind;
use crate::error::Result;
use crate::ids::{new_id, new_secret_token};
use crate::provider::ProviderClient;
use crate::time::{now_ms, rfc3339};
use protocol::bridge::{FromBridge, GitAuthor, PromptContext, PromptJob, ToBridge};
use protocol::crypto::sha256_hex;
use protocol::event::{Artifact, EventBody, PromptStatus, SandboxState};
use protocol::provider::{CreateSandbox, Network, RepoRef, Resources};
use protocol::{ApiError, ErrorCode};
use serde_json::Value;
use worker::{Request, Response, WebSocket, WebSocketPair};

const META_KEY: &str = "lifecycle";
/// A bridge frame larger than this is refused (tool output is cut by the bridge long before).
const BRIDGE_FRAME_BYTES: usize = 1024 * 1024;

fn to_bridge(frame: &ToBridge) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

impl SessionRoom {
    // --- bookkeeping -------------------------------------------------------------------------

    pub(super) fn room_meta(&self) -> Result<RoomMeta> {
        Ok(match self.store.meta(META_KEY)? {
            Some(json) => serde_json::from_str(&json).unwrap_or_default(),
            None => RoomMeta::default(),
        })
    }

    pub(super) fn update_meta(&self, change: impl FnOnce(&mut RoomMeta)) -> Result<RoomMeta> {
        let before = self.room_meta()?;
        let mut meta = before.clone();
        change(&mut meta);
        // Most changes (clearing a stop that was never asked for) change nothing: no write.
        if meta != before {
            self.store
                .set_meta(META_KEY, Some(&serde_json::to_string(&meta)?))?;
        }
        Ok(meta)
    }

    fn situation(&self) -> Result<Situation> {
        let meta = self.room_meta()?;
        let sandbox = self.store.live_sandbox()?;
        let running = self.store.running()?;
        let waiting = self.store.count_waiting()?;
        Ok(Situation {
            spawn_wanted: waiting > 0
                && sandbox.is_none()
                && self.config.provider.kind != ProviderKind::None,
            sandbox: sandbox.map(|s| LiveSandbox {
                status: s.state(),
                created_at: s.created_at,
                heartbeat_at: s.heartbeat_at,
                idle_since: s.idle_since,
            }),
            running: running.map(|m| Running {
                started_at: m.started_ms(),
                stop_requested_at: meta
                    .stop_requested
                    .as_ref()
                    .filter(|(id, _)| *id == m.id)
                    .map(|(_, at)| *at),
            }),
            waiting,
            retry_at: meta.retry_at,
            snapshot_pending: meta.snapshot_pending.is_some(),
            cleanup_pending: !meta.to_delete.is_empty(),
            token_flush_at: self.tokens.borrow().flush_at(),
        })
    }

    /// Sets the alarm to the nearest deadline, if it is not set there already.
    pub(super) async fn schedule(&self) -> Result<()> {
        match self.situation()?.next_alarm(&self.config.lifecycle) {
            Some(at) => self.alarm_no_later_than(at).await,
            None => Ok(()),
        }
    }

    async fn alarm_no_later_than(&self, at: u64) -> Result<()> {
        if self.alarm_at.get().is_some_and(|set| set <= at) {
            return Ok(());
        }
        self.alarm_at.set(Some(at));
        // A plain number would be an offset from now; the deadline is a point in time.
        // A deadline already passed (0 means "now") fires as soon as possible.
        let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.max(now_ms()) as f64));
        self.state
            .storage()
            .set_alarm(worker::ScheduledTime::new(when))
            .await?;
        Ok(())
    }

    /// The alarm: everything that is due, then the next alarm.
    pub(super) async fn on_alarm(&self) -> Result<()> {
        self.alarm_at.set(None);
        let now = now_ms();
        for due in self.situation()?.due(&self.config.lifecycle, now) {
            let outcome = match due {
                Due::FlushTokens => self.flush_tokens(now),
                Due::SpawnTimedOut => {
                    self.sandbox_failed(
                        &format!(
                            "the sandbox did not connect within {} s",
                            self.config.lifecycle.spawn_timeout_ms / 1000
                        ),
                        true,
                        now,
                    )
                    .await
                }
                Due::HeartbeatStale => {
                    self.sandbox_failed(
                        &format!(
                            "no heartbeat from the sandbox for {} s",
                            self.config.lifecycle.heartbeat_timeout_ms / 1000
                        ),
                        false,
                        now,
                    )
                    .await
                }
                Due::PromptTimedOut => self.prompt_timed_out(now),
                Due::StopUnanswered => self.finish_running(
                    PromptStatus::Cancelled,
                    Some("the agent did not confirm the stop in time"),
                    now,
                ),
                Due::IdleShutdown => self.idle_shutdown(now),
                Due::Snapshot => self.snapshot(now).await,
                Due::Spawn => self.spawn(now).await,
                Due::Cleanup => self.cleanup().await,
            };
            if let Err(error) = outcome {
                crate::log::error(&format!("room alarm {due:?}: {error:?}"));
            }
        }
        self.schedule().await
    }

    // --- spawning ----------------------------------------------------------------------------

    async fn spawn(&self, now: u64) -> Result<()> {
        let session = self.session()?;
        let client = match ProviderClient::new(&self.config.provider, &self.config.env) {
            Ok(client) => client,
            Err(refusal) => {
                // A configuration that cannot work will not start working by retrying.
                self.emit(session_error("provider_error", &refusal.0), now)?;
                return self.fail_waiting(&refusal.0, now);
            }
        };
        let meta = self.update_meta(|meta| meta.retry_at = None)?;
        let sandbox_id = new_id("sbx");
        let token = new_secret_token();
        let restored_from = meta.latest_snapshot.clone();
        self.store.insert_sandbox(
            &sandbox_id,
            &sha256_hex(token.as_bytes()),
            restored_from.as_deref(),
            now,
        )?;
        self.emit(
            sandbox_status(
                SandboxState::Spawning,
                restored_from
                    .as_ref()
                    .map(|_| "restoring the workspace from its snapshot".to_owned()),
            ),
            now,
        )?;
        let (owner, name) = session.repo.split_once('/').unwrap_or((&session.repo, ""));
        let request = CreateSandbox {
            session_id: session.id.clone(),
            sandbox_id: sandbox_id.clone(),
            coordinator_url: self.coordinator_url(&meta),
            sandbox_token: token,
            repo: RepoRef {
                owner: owner.to_owned(),
                name: name.to_owned(),
                branch: session.branch.clone(),
                clone_url: self
                    .config
                    .repo(&session.repo)
                    .and_then(|repo| repo.clone_url.clone()),
            },
            image_id: None,
            snapshot_id: restored_from.clone(),
            resources: Resources {
                timeout_s: (self.config.lifecycle.prompt_timeout_ms / 1000 * 4).clamp(600, 86_400)
                    as u32,
                ..Resources::default()
            },
            network: Network {
                block_network: false,
                allowed_hosts: self.config.provider.allowed_hosts.clone(),
            },
            env: Default::default(),
        };
        let outcome = client.create(&request).await;
        let now = now_ms();
        match outcome {
            Ok(created) => {
                self.store
                    .set_sandbox_provider_id(&sandbox_id, &created.provider_id)?;
                Ok(())
            }
            Err(error) => {
                let connected = self
                    .store
                    .live_sandbox()?
                    .is_some_and(|s| s.id == sandbox_id && s.heartbeat_at.is_some());
                if connected {
                    // The bridge is up even though the answer got lost; keep it.
                    crate::log::error(&format!(
                        "sandbox create answered badly, but the bridge connected: {}",
                        error.0
                    ));
                    return Ok(());
                }
                self.store
                    .end_sandbox(&sandbox_id, SandboxState::Failed, Some(&error.0), now)?;
                if restored_from.is_some() {
                    // A snapshot that cannot be restored would fail every retry the same way.
                    self.update_meta(|meta| meta.latest_snapshot = None)?;
                }
                self.emit(
                    sandbox_status(SandboxState::Failed, Some(error.0.clone())),
                    now,
                )?;
                self.provider_failed(&error.0, now)
            }
        }
    }

    fn coordinator_url(&self, meta: &RoomMeta) -> String {
        self.config
            .provider
            .coordinator_url
            .clone()
            .or_else(|| meta.origin.clone())
            .unwrap_or_else(|| "http://127.0.0.1:8787".into())
    }

    /// Counts a failure to get a sandbox: retry later, or give up on the waiting prompts.
    fn provider_failed(&self, reason: &str, now: u64) -> Result<()> {
        let mut decision = AfterFailure::GiveUp;
        self.update_meta(|meta| {
            decision = after_provider_failure(&mut meta.failures, now);
            if let AfterFailure::RetryAt(at) = decision {
                meta.retry_at = Some(at);
            }
        })?;
        match decision {
            AfterFailure::RetryAt(at) => {
                let message = format!(
                    "could not start a sandbox: {reason}; trying again in {} s",
                    at.saturating_sub(now).div_ceil(1000)
                );
                self.emit(session_error("provider_error", &message), now)?;
                Ok(())
            }
            AfterFailure::GiveUp => {
                let message = format!(
                    "could not start a sandbox {} times in {} minutes; the waiting prompts have failed. Last error: {reason}",
                    super::lifecycle::MAX_FAILURES,
                    super::lifecycle::FAILURE_WINDOW_MS / 60_000
                );
                self.emit(session_error("provider_error", &message), now)?;
                self.fail_waiting(&message, now)
            }
        }
    }

    fn fail_waiting(&self, reason: &str, now: u64) -> Result<()> {
        while let Some(message) = self.store.next_waiting()? {
            self.finish_prompt(&message.id, PromptStatus::Failed, Some(reason), now)?;
        }
        Ok(())
    }

    // --- the bridge's socket -----------------------------------------------------------------

    fn bridge_socket(&self, sandbox_id: &str) -> Option<WebSocket> {
        self.state
            .get_websockets_with_tag(&hub::sandbox_tag(sandbox_id))
            .into_iter()
            // The newest: a replaced connection may still be closing.
            .next_back()
    }

    /// `GET /v1/sessions/:id/sandbox`: 401 for a token no sandbox of this room holds, 403 for
    /// another sandbox's token, 410 once that sandbox has ended. A newer connection of the
    /// same sandbox replaces the older one.
    pub(super) fn accept_bridge(&self, req: &Request, now: u64) -> Result<Response> {
        let session = self.session()?;
        let token = req
            .headers()
            .get("authorization")?
            .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_owned()))
            .filter(|t| !t.is_empty());
        let claimed_id = req.headers().get(protocol::bridge::SANDBOX_ID_HEADER)?;
        let Some(token) = token else {
            return Err(
                ApiError::new(ErrorCode::Unauthorized, "a sandbox token is required").into(),
            );
        };
        let Some(sandbox) = self
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
        for older in self
            .state
            .get_websockets_with_tag(&hub::sandbox_tag(&sandbox.id))
        {
            hub::close(
                &older,
                4000,
                "replaced by a newer connection of the same sandbox",
            );
        }
        let pair = WebSocketPair::new()?;
        self.hub
            .accept_bridge(&self.state, &pair.server, &sandbox.id)?;
        // Any frame proves life; the connection itself is the first.
        self.store.sandbox_heartbeat(&sandbox.id, now)?;
        Ok(Response::from_websocket(pair.client)?)
    }

    /// A frame from the bridge. Frames with an `ack_id` are stored, then acknowledged; one
    /// seen before is only acknowledged again.
    pub(super) async fn on_bridge_frame(&self, socket: &WebSocket, link: BridgeLink, text: &str) {
        if let Err(error) = self.handle_bridge_frame(socket, &link, text).await {
            let error = error.into_api();
            crate::log::error(&format!("bridge frame refused: {}", error.message));
            hub::send(
                socket,
                &protocol::frames::FrameError {
                    error,
                    client_request_id: None,
                }
                .to_frame(),
            );
        }
    }

    async fn handle_bridge_frame(
        &self,
        socket: &WebSocket,
        link: &BridgeLink,
        text: &str,
    ) -> Result<()> {
        let now = now_ms();
        if text.len() > BRIDGE_FRAME_BYTES {
            return Err(
                ApiError::new(ErrorCode::TooLarge, "bridge frames are limited to 1 MiB").into(),
            );
        }
        let frame: FromBridge = protocol::frames::parse_json(text.as_bytes())?;
        if self.store.live_sandbox_id()?.as_deref() != Some(link.sandbox_id.as_str()) {
            hub::close(socket, 4010, "this sandbox has ended");
            return Ok(());
        }
        if let FromBridge::Token { message_id, delta } = &frame {
            // The hot path: no SQL unless a batch is due.
            if self.store.running_id()?.as_deref() == Some(message_id.as_str()) {
                let batches = self.tokens.borrow_mut().push(message_id, delta, now);
                self.store_tokens(batches, now)?;
                // Read before the await: no borrow of the batch may be held across it.
                let flush_at = self.tokens.borrow().flush_at();
                if let Some(flush_at) = flush_at {
                    // Only the flush deadline can have moved: no need to re-read the lifecycle.
                    self.alarm_no_later_than(flush_at).await?;
                }
            }
            return Ok(());
        }
        let ack_id = frame.ack_id().map(str::to_owned);
        if let Some(ack_id) = &ack_id {
            if self.store.ack_seen(&link.sandbox_id, ack_id)? {
                hub::send(
                    socket,
                    &to_bridge(&ToBridge::Ack {
                        ack_id: ack_id.clone(),
                    }),
                );
                return Ok(());
            }
        }
        self.apply_bridge_frame(socket, &link.sandbox_id, frame, now)?;
        if let Some(ack_id) = ack_id {
            self.store.record_ack(&link.sandbox_id, &ack_id, now)?;
            hub::send(socket, &to_bridge(&ToBridge::Ack { ack_id }));
        }
        self.schedule().await
    }

    fn apply_bridge_frame(
        &self,
        socket: &WebSocket,
        sandbox_id: &str,
        frame: FromBridge,
        now: u64,
    ) -> Result<()> {
        let running = self.store.running_id()?;
        let is_running = |id: &str| running.as_deref() == Some(id);
        match frame {
            FromBridge::Ready {
                agent,
                agent_version,
                message_id,
                ..
            } => {
                self.store.sandbox_connected(sandbox_id, &agent, now)?;
                let sandbox = self.store.live_sandbox()?;
                if sandbox
                    .as_ref()
                    .is_some_and(|s| s.state() == SandboxState::Spawning)
                {
                    self.store
                        .set_sandbox_status(sandbox_id, SandboxState::Ready, None)?;
                    self.store.sandbox_idle_since(sandbox_id, now)?;
                    self.update_meta(|meta| meta.failures.clear())?;
                    let detail = format!("{agent} {agent_version}").trim().to_owned();
                    self.emit(sandbox_status(SandboxState::Ready, Some(detail)), now)?;
                }
                if let Some(running) = self.store.running()? {
                    if message_id.as_deref() != Some(running.id.as_str()) {
                        // The prompt was sent while the bridge was away: send it again.
                        hub::send(
                            socket,
                            &to_bridge(&ToBridge::Prompt(self.prompt_job(&running)?)),
                        );
                    }
                }
                self.dispatch_next(now)
            }
            FromBridge::Heartbeat {} => self.store.sandbox_heartbeat(sandbox_id, now),
            FromBridge::Token { .. } => Ok(()),
            FromBridge::ToolCall { call, .. } if is_running(&call.message_id) => {
                self.flush_tokens(now)?;
                self.emit(EventBody::ToolCall(call), now).map(drop)
            }
            FromBridge::FileEdit { edit, .. } if is_running(&edit.message_id) => {
                self.flush_tokens(now)?;
                self.emit(EventBody::FileEdit(edit), now).map(drop)
            }
            FromBridge::Artifact {
                message_id,
                artifact,
                ..
            } if is_running(&message_id) => {
                self.flush_tokens(now)?;
                self.add_artifact(&message_id, &artifact.kind, artifact.data, now)
            }
            FromBridge::Done {
                message_id,
                ok,
                error,
                ..
            } if is_running(&message_id) => {
                let stopped = self
                    .room_meta()?
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
                self.finish_running(status, error.as_deref(), now)
            }
            FromBridge::Error { message, .. } => self
                .emit(session_error("agent_error", &message), now)
                .map(drop),
            FromBridge::SnapshotTaken { snapshot_id, .. } => self
                .update_meta(|meta| meta.latest_snapshot = Some(snapshot_id))
                .map(drop),
            // Work for a prompt that is no longer running (stopped, timed out): dropped.
            FromBridge::ToolCall { .. }
            | FromBridge::FileEdit { .. }
            | FromBridge::Artifact { .. }
            | FromBridge::Done { .. } => Ok(()),
        }
    }

    fn add_artifact(&self, message_id: &str, kind: &str, data: Value, now: u64) -> Result<()> {
        let artifact = Artifact {
            id: new_id("art"),
            kind: kind.to_owned(),
            created_at: rfc3339(now),
            author: None,
            message_id: Some(message_id.to_owned()),
            data,
        };
        let row = ArtifactRow {
            id: artifact.id.clone(),
            seq: 0,
            kind: artifact.kind.clone(),
            message_id: artifact.message_id.clone(),
            author_id: None,
            data: serde_json::to_string(&artifact.data)?,
            created_at: artifact.created_at.clone(),
        };
        self.emit_with_rows(EventBody::ArtifactCreated { artifact }, now, |seq| {
            self.store.insert_artifact(&ArtifactRow { seq, ..row })
        })
        .map(drop)
    }

    // --- tokens ------------------------------------------------------------------------------

    fn store_tokens(&self, batches: Vec<TokenBatch>, now: u64) -> Result<()> {
        for batch in batches {
            self.emit(
                EventBody::Token {
                    message_id: batch.message_id,
                    delta: batch.text,
                },
                now,
            )?;
        }
        Ok(())
    }

    /// Stores the token batch in memory; done before any other event of its prompt.
    pub(super) fn flush_tokens(&self, now: u64) -> Result<()> {
        let batch = self.tokens.borrow_mut().take(now);
        self.store_tokens(batch.into_iter().collect(), now)
    }

    // --- prompts -----------------------------------------------------------------------------

    fn prompt_job(&self, message: &MessageRow) -> Result<PromptJob> {
        let author = self.store.participant(&message.author_id)?;
        let selection_ids: Vec<String> =
            serde_json::from_str(&message.selection_ids).unwrap_or_default();
        let mut selections = Vec::new();
        for id in selection_ids {
            if let Some(artifact) = self.store.artifact(&id)? {
                let mut data = artifact.data();
                data["artifact_id"] = Value::String(id);
                selections.push(data);
            }
        }
        Ok(PromptJob {
            message_id: message.id.clone(),
            content: message.content.clone(),
            author: GitAuthor {
                name: author
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or_else(|| message.author_name.clone()),
                email: author.map(|a| a.email).unwrap_or_default(),
            },
            attachments: serde_json::from_str(&message.attachments).unwrap_or_default(),
            context: PromptContext { selections },
        })
    }

    /// After the queue changed: run the next prompt if a sandbox is free, and set the alarm
    /// (which asks the provider for a sandbox when none is up). What the caller did is
    /// already stored and answered, so a failure here is logged, not returned.
    pub(super) async fn kick(&self, now: u64) {
        // Without a provider and a sandbox there is nothing to move: keep the prompt path lean.
        if self.config.provider.kind == ProviderKind::None
            && matches!(self.store.live_sandbox_id(), Ok(None))
        {
            return;
        }
        let outcome = match self.dispatch_next(now) {
            Ok(()) => self.schedule().await,
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            crate::log::error(&format!("room could not move the queue on: {error:?}"));
        }
    }

    /// Sends the next waiting prompt when a connected sandbox is free for it.
    pub(super) fn dispatch_next(&self, now: u64) -> Result<()> {
        if self.store.running_id()?.is_some() || self.store.live_sandbox_id()?.is_none() {
            return Ok(());
        }
        let Some(sandbox) = self.store.live_sandbox()? else {
            return Ok(());
        };
        // Busy with nothing running means the last prompt just finished.
        if !matches!(
            sandbox.state(),
            SandboxState::Ready | SandboxState::Idle | SandboxState::Busy
        ) {
            return Ok(());
        }
        let Some(socket) = self.bridge_socket(&sandbox.id) else {
            return Ok(());
        };
        let Some(message) = self.store.next_waiting()? else {
            return Ok(());
        };
        let job = self.prompt_job(&message)?;
        self.store.start_message(&message.id, now)?;
        self.store
            .set_sandbox_status(&sandbox.id, SandboxState::Busy, None)?;
        if sandbox.state() != SandboxState::Busy {
            self.emit(sandbox_status(SandboxState::Busy, None), now)?;
        }
        self.emit(
            EventBody::PromptStarted {
                message_id: message.id.clone(),
            },
            now,
        )?;
        hub::send(&socket, &to_bridge(&ToBridge::Prompt(job)));
        Ok(())
    }

    /// Finishes the running prompt; then the next one runs, or the sandbox is snapshotted.
    pub(super) fn finish_running(
        &self,
        status: PromptStatus,
        error: Option<&str>,
        now: u64,
    ) -> Result<()> {
        let Some(message_id) = self.store.running_id()? else {
            return Ok(());
        };
        self.finish_prompt(&message_id, status, error, now)?;
        self.update_meta(|meta| meta.stop_requested = None)?;
        let Some(sandbox) = self.store.live_sandbox()? else {
            return Ok(());
        };
        if self.store.count_waiting()? > 0 {
            // Still busy: the next prompt goes straight on.
            return self.dispatch_next(now);
        }
        self.store.sandbox_idle_since(&sandbox.id, now)?;
        self.store
            .set_sandbox_status(&sandbox.id, SandboxState::Snapshotting, None)?;
        self.update_meta(|meta| meta.snapshot_pending = Some(sandbox.id.clone()))?;
        self.emit(sandbox_status(SandboxState::Snapshotting, None), now)
            .map(drop)
    }

    /// `stop`: asks the bridge to abort; the prompt finishes as cancelled when it answers
    /// (or after a grace period).
    pub(super) fn stop(&self, now: u64) -> Result<()> {
        let Some(message_id) = self.store.running_id()? else {
            return Err(ApiError::new(ErrorCode::NotFound, "no prompt is running").into());
        };
        let meta = self.room_meta()?;
        if meta
            .stop_requested
            .as_ref()
            .is_some_and(|(id, _)| *id == message_id)
        {
            return Ok(());
        }
        let socket = self
            .store
            .live_sandbox()?
            .and_then(|sandbox| self.bridge_socket(&sandbox.id));
        let Some(socket) = socket else {
            return self.finish_running(PromptStatus::Cancelled, None, now);
        };
        self.update_meta(|meta| meta.stop_requested = Some((message_id.clone(), now)))?;
        hub::send(&socket, &to_bridge(&ToBridge::Stop { message_id }));
        Ok(())
    }

    fn prompt_timed_out(&self, now: u64) -> Result<()> {
        let Some(message_id) = self.store.running_id()? else {
            return Ok(());
        };
        if let Some(socket) = self
            .store
            .live_sandbox()?
            .and_then(|s| self.bridge_socket(&s.id))
        {
            hub::send(&socket, &to_bridge(&ToBridge::Stop { message_id }));
        }
        let error = format!(
            "the prompt ran longer than {} s",
            self.config.lifecycle.prompt_timeout_ms / 1000
        );
        self.finish_running(PromptStatus::TimedOut, Some(&error), now)
    }

    // --- ending sandboxes --------------------------------------------------------------------

    /// Ends the live sandbox: the bridge is told (when connected) and shut out, and the
    /// provider is asked to delete it on the next alarm.
    fn end_sandbox(
        &self,
        status: SandboxState,
        reason: &str,
        now: u64,
    ) -> Result<Option<SandboxRow>> {
        let Some(sandbox) = self.store.live_sandbox()? else {
            return Ok(None);
        };
        self.store
            .end_sandbox(&sandbox.id, status, Some(reason), now)?;
        for socket in self
            .state
            .get_websockets_with_tag(&hub::sandbox_tag(&sandbox.id))
        {
            hub::send(&socket, &to_bridge(&ToBridge::Shutdown {}));
            hub::close(&socket, 4010, reason);
        }
        let id = sandbox.id.clone();
        self.update_meta(|meta| {
            meta.to_delete.push(id.clone());
            if meta.snapshot_pending.as_deref() == Some(&id) {
                meta.snapshot_pending = None;
            }
        })?;
        self.emit(sandbox_status(status, Some(reason.to_owned())), now)?;
        Ok(Some(sandbox))
    }

    /// The sandbox stopped answering: its prompt fails, and the next prompt gets a new one.
    async fn sandbox_failed(
        &self,
        reason: &str,
        counts_as_provider_failure: bool,
        now: u64,
    ) -> Result<()> {
        self.end_sandbox(SandboxState::Failed, reason, now)?;
        self.finish_running(PromptStatus::Failed, Some(reason), now)?;
        if counts_as_provider_failure {
            self.provider_failed(reason, now)?;
        }
        Ok(())
    }

    fn idle_shutdown(&self, now: u64) -> Result<()> {
        let reason = format!(
            "idle for {} s; the next prompt starts a new sandbox from the snapshot",
            self.config.lifecycle.idle_shutdown_ms / 1000
        );
        self.end_sandbox(SandboxState::Stopped, &reason, now)
            .map(drop)
    }

    /// Ends the sandbox because the session was archived.
    pub(super) fn end_for_archive(&self, now: u64) -> Result<()> {
        self.end_sandbox(SandboxState::Stopped, "the session was archived", now)
            .map(drop)
    }

    async fn snapshot(&self, now: u64) -> Result<()> {
        let Some(sandbox_id) = self.room_meta()?.snapshot_pending else {
            return Ok(());
        };
        let outcome = match ProviderClient::new(&self.config.provider, &self.config.env) {
            Ok(client) => client.snapshot(&sandbox_id).await.map_err(|e| e.0),
            Err(refusal) => Err(refusal.0),
        };
        let now = now_ms().max(now);
        let detail = match &outcome {
            Ok(taken) => format!("workspace snapshot {} saved", taken.snapshot_id),
            Err(error) => format!("the workspace snapshot failed: {error}"),
        };
        self.update_meta(|meta| {
            meta.snapshot_pending = None;
            if let Ok(taken) = outcome {
                meta.latest_snapshot = Some(taken.snapshot_id);
            }
        })?;
        // The sandbox may have ended, or a prompt started, while the provider worked.
        let live = self.store.live_sandbox()?.filter(|s| s.id == sandbox_id);
        if let Some(sandbox) = live.filter(|s| s.state() == SandboxState::Snapshotting) {
            self.store
                .set_sandbox_status(&sandbox.id, SandboxState::Idle, None)?;
            self.store.sandbox_idle_since(&sandbox.id, now)?;
            self.emit(sandbox_status(SandboxState::Idle, Some(detail)), now)?;
            self.dispatch_next(now)?;
        }
        Ok(())
    }

    async fn cleanup(&self) -> Result<()> {
        let to_delete = self.room_meta()?.to_delete;
        if let Ok(client) = ProviderClient::new(&self.config.provider, &self.config.env) {
            for sandbox_id in &to_delete {
                if let Err(error) = client.delete(sandbox_id).await {
                    // The provider's own timeout ends it eventually; nothing waits on this.
                    crate::log::error(&format!("deleting sandbox {sandbox_id}: {}", error.0));
                }
            }
        }
        self.update_meta(|meta| meta.to_delete.retain(|id| !to_delete.contains(id)))
            .map(drop)
    }

    /// What `GET /v1/sessions/:id` shows of the sandbox.
    pub(super) fn sandbox_json(&self) -> Result<Value> {
        Ok(match self.store.latest_sandbox()? {
            Some(sandbox) => {
                let mut json = sandbox.to_json();
                json["connected"] = Value::Bool(self.bridge_socket(&sandbox.id).is_some());
                json
            }
            None => Value::Null,
        })
    }
}

fn sandbox_status(status: SandboxState, detail: Option<String>) -> EventBody {
    EventBody::SandboxStatus { status, detail }
}

fn session_error(code: &str, message: &str) -> EventBody {
    EventBody::SessionError {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}
