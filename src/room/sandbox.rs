//! The room's sandbox through the provider: asking for one, ending it, snapshotting its
//! workspace after a prompt, deleting ended ones, and backing off when the provider fails.
//!
//! Every provider call happens in the alarm handler (see [`alarm`](super::alarm)): a prompt
//! that needs a sandbox sets the alarm to now, so no client request waits on the provider.

use super::bridge::to_bridge;
use super::context::Ctx;
use super::lifecycle::{
    after_provider_failure, cleanup_retry, typing_starts, AfterFailure, StartWanted,
    FAILURE_WINDOW_MS, MAX_CLEANUP_FAILURES, MAX_FAILURES,
};
use super::prompts;
use super::store::SandboxRow;
use super::tokens::Coalescer;
use crate::config::Config;
use crate::error::Result;
use crate::ids::{new_id, new_secret_token};
use crate::provider::ProviderClient;
use crate::time::now_ms;
use protocol::bridge::ToBridge;
use protocol::crypto::sha256_hex;
use protocol::event::{EventBody, PromptStatus, SandboxState, SessionErrorCode};
use protocol::provider::{ClaimSandbox, CreateSandbox, Network, RepoRef, Resources};
use serde_json::Value;
use std::cell::RefCell;

pub fn status_event(status: SandboxState, detail: Option<String>) -> EventBody {
    EventBody::SandboxStatus {
        status,
        detail,
        warm: false,
    }
}

fn provider_error(message: String) -> EventBody {
    EventBody::SessionError {
        code: SessionErrorCode::ProviderError,
        message,
    }
}

/// The latest ready image of the session's repository and branch, if D1 has one.
async fn latest_image(cx: &Ctx<'_>, repo: &str, branch: &str) -> Option<String> {
    match cx.env.d1("DB") {
        Ok(db) => crate::warm::latest_image(&crate::index::Index::new(db), repo, branch).await,
        Err(error) => {
            crate::log::error(&format!("no image for {repo}: {error:?}"));
            None
        }
    }
}

/// Asks the provider for a sandbox for the waiting prompts (or because the session was just
/// created, or someone typed: [`StartWanted`]): a warm one claimed from the pool first, else a
/// cold one. The bridge reports readiness by dialling in; until then the sandbox is `spawning`.
pub async fn spawn(cx: &Ctx<'_>) -> Result<()> {
    let session = cx.store.existing_session()?;
    let mut wanted = None;
    let meta = cx.store.update_lifecycle(|meta| {
        meta.retry_at = None;
        wanted = meta.start_wanted.take();
    })?;
    if session.is_archived() {
        return Ok(());
    }
    let cold_allowed = cx.store.count_waiting()? > 0 || wanted == Some(StartWanted::Any);
    let client = match ProviderClient::new(&cx.config.provider, &cx.config.env) {
        Ok(client) => client,
        Err(refusal) => {
            // A configuration that cannot work will not start working by retrying.
            cx.emit(provider_error(refusal.0.clone()))?;
            return prompts::fail_waiting(cx, &refusal.0);
        }
    };
    let Some(token_secret) = cx.config.token_secret.as_deref() else {
        let refusal =
            "sandboxes need TOKEN_SECRET: their tokens are signed with a key derived from it";
        cx.emit(provider_error(refusal.into()))?;
        return prompts::fail_waiting(cx, refusal);
    };
    let coordinator_url = cx
        .config
        .provider
        .coordinator_url
        .clone()
        .or_else(|| meta.origin.clone())
        .unwrap_or_else(|| "http://127.0.0.1:8787".into());
    let restored_from = meta.latest_snapshot.clone();
    // A workspace to restore needs a sandbox of its own; otherwise a warm one will do.
    if restored_from.is_none() {
        let claimed = crate::warm::claim(cx.env, cx.config, &session, cx.now).await;
        let cx = &cx.at(now_ms().max(cx.now));
        if let Some(claimed) = claimed {
            if claim(
                cx,
                &client,
                token_secret,
                &session,
                &coordinator_url,
                &claimed,
            )
            .await?
            {
                return Ok(());
            }
        }
    }
    if !cold_allowed {
        return Ok(());
    }
    let image_id = match restored_from {
        Some(_) => None,
        None => latest_image(cx, &session.repo, &session.branch).await,
    };
    let cx = &cx.at(now_ms().max(cx.now));
    let sandbox_id = new_id("sbx")?;
    let token = mint_token(token_secret, &session.id, &sandbox_id)?;
    cx.store.insert_sandbox(
        &sandbox_id,
        &sha256_hex(token.as_bytes()),
        restored_from.as_deref(),
        cx.now,
    )?;
    cx.emit(status_event(
        SandboxState::Spawning,
        restored_from
            .as_ref()
            .map(|_| "restoring the workspace from its snapshot".to_owned()),
    ))?;
    let (owner, name) = session.repo.split_once('/').unwrap_or((&session.repo, ""));
    let request = CreateSandbox {
        session_id: session.id.clone(),
        sandbox_id: sandbox_id.clone(),
        coordinator_url,
        sandbox_token: token,
        repo: RepoRef {
            owner: owner.to_owned(),
            name: name.to_owned(),
            branch: session.branch.clone(),
            clone_url: cx.config.clone_url(&session.repo),
        },
        image_id,
        snapshot_id: restored_from.clone(),
        resources: resources(cx.config, 0),
        network: network(cx.config),
        env: Default::default(),
    };
    let outcome = client.create(&request).await;
    let cx = &cx.at(now_ms());
    match outcome {
        Ok(created) => cx
            .store
            .set_sandbox_provider_id(&sandbox_id, &created.provider_id),
        Err(error) => {
            let connected = cx
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
            cx.store
                .end_sandbox(&sandbox_id, SandboxState::Failed, Some(&error.0), cx.now)?;
            // A create that timed out may still have made the sandbox: it is deleted too (a
            // sandbox the provider does not know counts as deleted).
            cx.store
                .update_lifecycle(|meta| meta.to_delete.push(sandbox_id.clone()))?;
            if restored_from.is_some() {
                // A snapshot that cannot be restored would fail every retry the same way.
                cx.store
                    .update_lifecycle(|meta| meta.latest_snapshot = None)?;
            }
            cx.emit(status_event(SandboxState::Failed, Some(error.0.clone())))?;
            provider_failed(cx, &error.0)
        }
    }
}

/// Hands a warm sandbox claimed in D1 its session: a token minted for its id, then the
/// provider's claim call. `false` when the provider refused or failed: the warm row is
/// retired, the sandbox deleted, and the caller goes on cold (this is not a provider failure
/// that backs off: the cold path has not been tried).
async fn claim(
    cx: &Ctx<'_>,
    client: &ProviderClient<'_>,
    token_secret: &str,
    session: &protocol::api::Session,
    coordinator_url: &str,
    claimed: &crate::warm::Claimed,
) -> Result<bool> {
    let sandbox_id = &claimed.sandbox_id;
    let token = mint_token(token_secret, &session.id, sandbox_id)?;
    cx.store
        .insert_sandbox(sandbox_id, &sha256_hex(token.as_bytes()), None, cx.now)?;
    cx.store.mark_warm(sandbox_id, cx.now)?;
    cx.emit(status_event(
        SandboxState::Spawning,
        Some("claimed a warm sandbox".to_owned()),
    ))?;
    let request = ClaimSandbox {
        session_id: session.id.clone(),
        coordinator_url: coordinator_url.to_owned(),
        sandbox_token: token,
    };
    let outcome = client.claim(sandbox_id, &request).await;
    let cx = &cx.at(now_ms().max(cx.now));
    match outcome {
        Ok(created) => {
            cx.store
                .set_sandbox_provider_id(sandbox_id, &created.provider_id)?;
            // The pool has one fewer: refill it now rather than at the next cron.
            crate::warm::top_up_later(cx.state, cx.env, cx.config, &session.repo);
            Ok(true)
        }
        Err(error) => {
            crate::log::error(&format!(
                "claiming warm sandbox {sandbox_id} failed, starting a cold one: {}",
                error.0
            ));
            crate::warm::retire_later(cx.state, cx.env, sandbox_id);
            let reason = format!("the warm sandbox could not be claimed: {}", error.0);
            cx.store
                .end_sandbox(sandbox_id, SandboxState::Failed, Some(&reason), cx.now)?;
            cx.store
                .update_lifecycle(|meta| meta.to_delete.push(sandbox_id.clone()))?;
            cx.emit(status_event(SandboxState::Failed, Some(reason)))?;
            Ok(false)
        }
    }
}

/// A sandbox token bound to this session and sandbox, so the Worker can refuse a foreign
/// token unaided.
fn mint_token(token_secret: &str, session_id: &str, sandbox_id: &str) -> Result<String> {
    protocol::sandbox_token::mint(
        &protocol::sandbox_token::key(token_secret.as_bytes()),
        session_id,
        sandbox_id,
        &new_secret_token()?,
    )
    .ok_or_else(|| {
        crate::error::Error::Runtime("a sandbox token cannot carry this session id".into())
    })
}

/// What a sandbox may use; a warm one lives `extra_ms` longer, its time in the pool.
pub fn resources(config: &Config, extra_ms: u64) -> Resources {
    let timeout_s = (config.lifecycle.prompt_timeout_ms / 1000 * 4).clamp(600, 86_400);
    Resources {
        timeout_s: (timeout_s + extra_ms / 1000).min(86_400) as u32,
        ..Resources::default()
    }
}

pub fn network(config: &Config) -> Network {
    Network {
        block_network: false,
        allowed_hosts: config.provider.allowed_hosts.clone(),
    }
}

/// A `typing` frame: starts the session's sandbox (warm, else cold) if none is up or starting
/// and typing has not asked within the last minute. Whether the alarm must be set.
pub fn start_on_typing(cx: &Ctx) -> Result<bool> {
    if cx.config.provider.kind == crate::config::ProviderKind::None {
        return Ok(false);
    }
    let live = cx.store.live_sandbox_id()?.is_some();
    if !typing_starts(&cx.store.lifecycle()?, live, cx.now) {
        return Ok(false);
    }
    cx.store.update_lifecycle(|meta| {
        meta.start_wanted = Some(StartWanted::Any);
        meta.typing_start_at = Some(cx.now);
    })?;
    Ok(true)
}

/// The session was just created: a warm sandbox is claimed for it if the pool has one (a
/// cold one waits for a prompt or for typing).
pub fn start_on_creation(cx: &Ctx) -> Result<()> {
    if cx.config.warm.size(&cx.store.existing_session()?.repo) == 0 {
        return Ok(());
    }
    cx.store
        .update_lifecycle(|meta| {
            meta.start_wanted.get_or_insert(StartWanted::WarmOnly);
        })
        .map(drop)
}

/// Counts a failure to get a sandbox: retry later, or give up on the waiting prompts.
fn provider_failed(cx: &Ctx, reason: &str) -> Result<()> {
    let mut decision = AfterFailure::GiveUp;
    cx.store.update_lifecycle(|meta| {
        decision = after_provider_failure(&mut meta.failures, cx.now);
        if let AfterFailure::RetryAt(at) = decision {
            meta.retry_at = Some(at);
        }
    })?;
    match decision {
        AfterFailure::RetryAt(at) => {
            let message = format!(
                "could not start a sandbox: {reason}; trying again in {} s",
                at.saturating_sub(cx.now).div_ceil(1000)
            );
            cx.emit(provider_error(message)).map(drop)
        }
        AfterFailure::GiveUp => {
            let message = format!(
                "could not start a sandbox {MAX_FAILURES} times in {} minutes; the waiting prompts have failed. Last error: {reason}",
                FAILURE_WINDOW_MS / 60_000
            );
            cx.emit(provider_error(message.clone()))?;
            prompts::fail_waiting(cx, &message)
        }
    }
}

/// Ends the live sandbox: the bridge is told (when connected) and shut out, and the provider
/// is asked to delete it on the next alarm.
fn end(cx: &Ctx, status: SandboxState, reason: &str) -> Result<Option<SandboxRow>> {
    let Some(sandbox) = cx.store.live_sandbox()? else {
        return Ok(None);
    };
    cx.store
        .end_sandbox(&sandbox.id, status, Some(reason), cx.now)?;
    cx.store.forget_acks(&sandbox.id)?;
    cx.hub.end_bridge(
        cx.state,
        &sandbox.id,
        &to_bridge(&ToBridge::Shutdown {}),
        reason,
    );
    let id = sandbox.id.clone();
    cx.store.update_lifecycle(|meta| {
        meta.to_delete.push(id.clone());
        if meta.snapshot_pending.as_deref() == Some(&id) {
            meta.snapshot_pending = None;
        }
    })?;
    cx.emit(status_event(status, Some(reason.to_owned())))?;
    Ok(Some(sandbox))
}

/// The sandbox stopped answering (or never connected): its prompt fails, and the next
/// prompt gets a new one.
pub fn failed(
    cx: &Ctx,
    tokens: &RefCell<Coalescer>,
    reason: &str,
    counts_as_provider_failure: bool,
) -> Result<()> {
    end(cx, SandboxState::Failed, reason)?;
    prompts::finish_running(cx, tokens, PromptStatus::Failed, Some(reason))?;
    if counts_as_provider_failure {
        provider_failed(cx, reason)?;
    }
    Ok(())
}

pub fn idle_shutdown(cx: &Ctx) -> Result<()> {
    let reason = format!(
        "idle for {} s; the next prompt starts a new sandbox from the snapshot",
        cx.config.lifecycle.idle_shutdown_ms / 1000
    );
    end(cx, SandboxState::Stopped, &reason).map(drop)
}

/// Ends the sandbox because the session was archived.
pub fn end_for_archive(cx: &Ctx) -> Result<()> {
    end(cx, SandboxState::Stopped, "the session was archived").map(drop)
}

/// Snapshots the workspace of the sandbox that just finished a prompt; the next sandbox
/// starts from it.
pub async fn snapshot(cx: &Ctx<'_>) -> Result<()> {
    let Some(sandbox_id) = cx.store.lifecycle()?.snapshot_pending else {
        return Ok(());
    };
    let outcome = match ProviderClient::new(&cx.config.provider, &cx.config.env) {
        Ok(client) => client.snapshot(&sandbox_id).await.map_err(|e| e.0),
        Err(refusal) => Err(refusal.0),
    };
    let cx = &cx.at(now_ms().max(cx.now));
    let detail = match &outcome {
        Ok(taken) => format!("workspace snapshot {} saved", taken.snapshot_id),
        Err(error) => format!("the workspace snapshot failed: {error}"),
    };
    cx.store.update_lifecycle(|meta| {
        meta.snapshot_pending = None;
        if let Ok(taken) = outcome {
            meta.latest_snapshot = Some(taken.snapshot_id);
        }
    })?;
    // The sandbox may have ended, or a prompt started, while the provider worked.
    let live = cx.store.live_sandbox()?.filter(|s| s.id == sandbox_id);
    if let Some(sandbox) = live.filter(|s| s.state() == SandboxState::Snapshotting) {
        cx.store
            .set_sandbox_status(&sandbox.id, SandboxState::Idle, None)?;
        cx.store.sandbox_idle_since(&sandbox.id, cx.now)?;
        cx.emit(status_event(SandboxState::Idle, Some(detail)))?;
        prompts::dispatch_next(cx)?;
    }
    Ok(())
}

/// Tells the provider to delete the sandboxes that ended. Those it could not delete are asked
/// again later, backing off ([`cleanup_retry`]), and given up on after a few tries (the
/// provider's own timeout ends them).
pub async fn cleanup(cx: &Ctx<'_>) -> Result<()> {
    let to_delete = cx.store.lifecycle()?.to_delete;
    let mut failed = Vec::new();
    if let Ok(client) = ProviderClient::new(&cx.config.provider, &cx.config.env) {
        for sandbox_id in &to_delete {
            if let Err(error) = client.delete(sandbox_id).await {
                crate::log::error(&format!("deleting sandbox {sandbox_id}: {}", error.0));
                failed.push(sandbox_id.clone());
            }
        }
    }
    let now = now_ms().max(cx.now);
    cx.store
        .update_lifecycle(|meta| {
            // Sandboxes that ended while the provider was asked stay for the next round.
            meta.to_delete
                .retain(|id| !to_delete.contains(id) || failed.contains(id));
            if failed.is_empty() {
                meta.cleanup_failures = 0;
                meta.cleanup_retry_at = None;
                return;
            }
            meta.cleanup_failures += 1;
            meta.cleanup_retry_at = cleanup_retry(meta.cleanup_failures, now);
            if meta.cleanup_retry_at.is_none() {
                crate::log::error(&format!(
                    "giving up on deleting {} sandboxes after {MAX_CLEANUP_FAILURES} tries",
                    failed.len()
                ));
                meta.to_delete.retain(|id| !failed.contains(id));
                meta.cleanup_failures = 0;
            }
        })
        .map(drop)
}

/// What `GET /v1/sessions/:id` shows of the sandbox.
pub fn describe(cx: &Ctx) -> Result<Value> {
    Ok(match cx.store.latest_sandbox()? {
        Some(sandbox) => {
            let mut json = sandbox.to_json();
            json["connected"] = Value::Bool(cx.hub.bridge(cx.state, &sandbox.id).is_some());
            json["warm"] = Value::Bool(cx.store.is_warm(&sandbox.id)?);
            json
        }
        None => Value::Null,
    })
}
