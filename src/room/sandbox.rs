//! The room's sandbox through the provider: asking for one, ending it, snapshotting its
//! workspace after a prompt, deleting ended ones, and backing off when the provider fails.
//!
//! Every provider call happens in the alarm handler (see [`alarm`](super::alarm)): a prompt
//! that needs a sandbox sets the alarm to now, so no client request waits on the provider.

use super::bridge::to_bridge;
use super::context::Ctx;
use super::lifecycle::{
    after_provider_failure, cleanup_retry, AfterFailure, FAILURE_WINDOW_MS, MAX_CLEANUP_FAILURES,
    MAX_FAILURES,
};
use super::prompts;
use super::store::SandboxRow;
use super::tokens::Coalescer;
use crate::error::Result;
use crate::ids::{new_id, new_secret_token};
use crate::provider::ProviderClient;
use crate::time::now_ms;
use protocol::bridge::ToBridge;
use protocol::crypto::sha256_hex;
use protocol::event::{EventBody, PromptStatus, SandboxState, SessionErrorCode};
use protocol::provider::{CreateSandbox, Network, RepoRef, Resources};
use serde_json::Value;
use std::cell::RefCell;

pub fn status_event(status: SandboxState, detail: Option<String>) -> EventBody {
    EventBody::SandboxStatus { status, detail }
}

fn provider_error(message: String) -> EventBody {
    EventBody::SessionError {
        code: SessionErrorCode::ProviderError,
        message,
    }
}

/// The latest ready image of the session's repository and branch (`crate::images`), if D1 has
/// one; a D1 failure only means a sandbox that clones.
async fn latest_image(cx: &Ctx<'_>, repo: &str, branch: &str) -> Option<String> {
    let found = match cx.env.d1("DB") {
        Ok(db) => {
            crate::index::Index::new(db)
                .latest_image(repo, branch)
                .await
        }
        Err(error) => Err(error.into()),
    };
    found.unwrap_or_else(|error| {
        crate::log::error(&format!("no image for {repo}: {error:?}"));
        None
    })
}

/// Asks the provider for a sandbox for the waiting prompts. The bridge reports readiness by
/// dialling in; until then the sandbox is `spawning`.
pub async fn spawn(cx: &Ctx<'_>) -> Result<()> {
    let session = cx.store.existing_session()?;
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
    let meta = cx.store.update_lifecycle(|meta| meta.retry_at = None)?;
    let sandbox_id = new_id("sbx")?;
    // Bound to this session and sandbox, so the Worker can refuse a foreign token unaided.
    let token = protocol::sandbox_token::mint(
        &protocol::sandbox_token::key(token_secret.as_bytes()),
        &session.id,
        &sandbox_id,
        &new_secret_token()?,
    )
    .ok_or_else(|| {
        crate::error::Error::Runtime("a sandbox token cannot carry this session id".into())
    })?;
    let restored_from = meta.latest_snapshot.clone();
    let image_id = match restored_from {
        Some(_) => None,
        None => latest_image(cx, &session.repo, &session.branch).await,
    };
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
        coordinator_url: cx
            .config
            .provider
            .coordinator_url
            .clone()
            .or_else(|| meta.origin.clone())
            .unwrap_or_else(|| "http://127.0.0.1:8787".into()),
        sandbox_token: token,
        repo: RepoRef {
            owner: owner.to_owned(),
            name: name.to_owned(),
            branch: session.branch.clone(),
            clone_url: cx.config.clone_url(&session.repo),
        },
        image_id,
        snapshot_id: restored_from.clone(),
        resources: Resources {
            timeout_s: (cx.config.lifecycle.prompt_timeout_ms / 1000 * 4).clamp(600, 86_400) as u32,
            ..Resources::default()
        },
        network: Network {
            block_network: false,
            allowed_hosts: cx.config.provider.allowed_hosts.clone(),
        },
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
            json
        }
        None => Value::Null,
    })
}
