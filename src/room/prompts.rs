//! Prompts: admission to the queue, cancel, dispatch to the sandbox one at a time, and every
//! way a prompt ends (done, failed, stopped, timed out, cancelled, given up on).

use super::bridge::{flush_tokens, to_bridge};
use super::context::Ctx;
use super::hub;
use super::queue::{self, MessageStatus};
use super::ratelimit::RateLimits;
use super::store::{MessageRow, NewMessage, Participant};
use super::tokens::Coalescer;
use super::transcript::Builder;
use crate::error::Result;
use crate::ids::new_sortable_id;
use protocol::bridge::{GitAuthor, MemoryScope, PromptContext, PromptJob, ToBridge, Transcript};
use protocol::event::{EventBody, MessageEvent, PromptStatus, SandboxState, Source};
use protocol::frames::PromptInput;
use protocol::{ApiError, ErrorCode};
use serde_json::Value;
use std::cell::RefCell;

pub fn refuse_if_archived(cx: &Ctx) -> Result<()> {
    if cx.store.is_archived()? {
        return Err(ApiError::new(ErrorCode::Conflict, "the session is archived").into());
    }
    Ok(())
}

/// Queues a prompt; returns its message id and 1-based place among waiting prompts.
/// A `client_request_id` seen before from the same user returns the first message when the
/// prompt is the same (content, attachments, selections), and `conflict` when it is not.
///
/// The hot path costs two INSERTs (message, event) and no lookup: the unique index on
/// `(author, client_request_id)` tells a repeat, and only the refusals look the repeat up.
pub fn submit(
    cx: &Ctx,
    rates: &RefCell<RateLimits>,
    author: &Participant,
    input: PromptInput,
    default_source: Source,
) -> Result<(String, u32)> {
    refuse_if_archived(cx)?;
    let earlier = || -> Result<Option<(String, u32)>> {
        let Some(request_id) = &input.client_request_id else {
            return Ok(None);
        };
        match cx.store.message_by_request(&author.user_id, request_id)? {
            Some(existing) if same_prompt(&existing, &input) => {
                Ok(Some((existing.id.clone(), cx.store.position(&existing)?)))
            }
            Some(existing) => Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "client_request_id {request_id:?} was already used for another prompt ({}); use a new id for a new prompt",
                    existing.id
                ),
            )
            .into()),
            None => Ok(None),
        }
    };
    if let Err(refusal) = rates.borrow_mut().prompts.take(&author.user_id, cx.now) {
        return earlier()?.ok_or_else(|| refusal.into());
    }
    for id in &input.selection_ids {
        match cx.store.artifact(id)? {
            Some(artifact) if artifact.kind == "dom_selection" => {}
            _ => {
                return Err(ApiError::invalid_field(format!(
                    "selection {id} does not exist in this session"
                ))
                .into())
            }
        }
    }
    let position = match queue::admit(cx.store.count_waiting()?, cx.limits().queue_len) {
        Ok(position) => position,
        Err(refusal) => return earlier()?.ok_or_else(|| refusal.into()),
    };
    let message_id = new_sortable_id("msg", cx.now)?;
    let source = input.source.unwrap_or(default_source);
    let seq = cx.store.last_seq()? + 1;
    let message = NewMessage {
        id: &message_id,
        author,
        content: &input.content,
        source: source.as_str(),
        client_request_id: input.client_request_id.as_deref(),
        attachments: &input.attachments,
        selection_ids: &input.selection_ids,
    };
    if !cx.store.insert_message(&message, seq, cx.now)? {
        rates.borrow_mut().prompts.give_back(&author.user_id);
        return earlier()?.ok_or_else(|| {
            crate::error::Error::Runtime("a repeated prompt could not be found".into())
        });
    }
    let event = cx.emit(EventBody::Message(MessageEvent {
        message_id: message_id.clone(),
        content: input.content,
        author: author.author(),
        source,
        client_request_id: input.client_request_id,
        attachments: input.attachments,
        selection_ids: input.selection_ids,
    }))?;
    debug_assert_eq!(event.seq, seq, "the message row and its event share a seq");
    cx.hub.idle(cx.state, author, cx.now);
    super::metrics::prompt_sent(cx, &author.user_id);
    Ok((message_id, position))
}

/// Whether a repeated `client_request_id` carries the prompt it was first used for.
fn same_prompt(existing: &MessageRow, input: &PromptInput) -> bool {
    let attachments: Vec<Value> = serde_json::from_str(&existing.attachments).unwrap_or_default();
    let selection_ids: Vec<String> =
        serde_json::from_str(&existing.selection_ids).unwrap_or_default();
    existing.content == input.content
        && attachments == input.attachments
        && selection_ids == input.selection_ids
}

pub fn cancel(cx: &Ctx, message_id: &str) -> Result<()> {
    refuse_if_archived(cx)?;
    let message = cx.store.message(message_id)?;
    queue::check_cancel(message.as_ref().map(|m| m.status()))?;
    finish(cx, message_id, PromptStatus::Cancelled, None)
}

/// Ends a prompt that is not running: its status in `messages` and a `prompt_finished` event.
pub fn finish(cx: &Ctx, message_id: &str, status: PromptStatus, error: Option<&str>) -> Result<()> {
    finish_with(cx, message_id, status, error, false)
}

/// [`finish`], saying whether the stored answer text is shorter than what the agent produced.
fn finish_with(
    cx: &Ctx,
    message_id: &str,
    status: PromptStatus,
    error: Option<&str>,
    incomplete_text: bool,
) -> Result<()> {
    cx.store
        .finish_message(message_id, MessageStatus::from(status), error, cx.now)?;
    cx.emit(EventBody::PromptFinished {
        message_id: message_id.to_owned(),
        status,
        error: error.map(str::to_owned),
        incomplete_text,
    })?;
    super::metrics::prompt_finished(cx, message_id, status);
    Ok(())
}

/// Every waiting prompt finishes as failed, with `reason`.
pub fn fail_waiting(cx: &Ctx, reason: &str) -> Result<()> {
    while let Some(message) = cx.store.next_waiting()? {
        finish(cx, &message.id, PromptStatus::Failed, Some(reason))?;
    }
    Ok(())
}

/// What the bridge of `sandbox_id` receives for a prompt: its text, its author's git
/// identity, attachments, the DOM selections it names, the branch to push its work to, whose
/// memory the agent keeps, and, with the sandbox's first prompt, the session's transcript.
pub fn job(cx: &Ctx, message: &MessageRow, sandbox_id: &str) -> Result<PromptJob> {
    let author = cx.store.participant(&message.author_id)?;
    let session = cx.store.existing_session()?;
    let selection_ids: Vec<String> =
        serde_json::from_str(&message.selection_ids).unwrap_or_default();
    let mut selections = Vec::new();
    for id in selection_ids {
        if let Some(artifact) = cx.store.artifact(&id)? {
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
        context: PromptContext {
            selections,
            transcript: transcript_for(cx, message, sandbox_id)?,
            memory: Some(MemoryScope {
                repo: session.repo,
                owner: session.owner_id,
            }),
        },
        push_branch: super::git::push_branch(cx)?,
    })
}

/// The session so far, when `message` is the first prompt of `sandbox_id` and prompts ran
/// before it; read newest first until the transcript is full.
fn transcript_for(cx: &Ctx, message: &MessageRow, sandbox_id: &str) -> Result<Option<Transcript>> {
    let first = cx.store.lifecycle()?.first_prompt;
    if first.as_ref().map(|(s, m)| (s.as_str(), m.as_str())) != Some((sandbox_id, &message.id)) {
        return Ok(None);
    }
    let total = cx.store.count_ran_before(message.seq)?;
    let mut builder = Builder::new(total);
    let mut offset = 0;
    'read: while offset < total {
        let page = cx.store.ran_before(message.seq, offset, 10)?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as u32;
        for earlier in &page {
            if !builder.push(cx.store.earlier_prompt(earlier)?) {
                break 'read;
            }
        }
    }
    Ok(builder.finish())
}

/// Sends the next waiting prompt when a connected sandbox is free for it.
pub fn dispatch_next(cx: &Ctx) -> Result<()> {
    if cx.store.running_id()?.is_some() || cx.store.live_sandbox_id()?.is_none() {
        return Ok(());
    }
    let Some(sandbox) = cx.store.live_sandbox()? else {
        return Ok(());
    };
    // Busy with nothing running means the last prompt just finished.
    if !matches!(
        sandbox.state(),
        SandboxState::Ready | SandboxState::Idle | SandboxState::Busy
    ) {
        return Ok(());
    }
    let Some(socket) = cx.hub.bridge(cx.state, &sandbox.id) else {
        return Ok(());
    };
    let Some(message) = cx.store.next_waiting()? else {
        return Ok(());
    };
    // The sandbox's first prompt is recorded before its job is made: it carries the transcript.
    cx.store.update_lifecycle(|meta| {
        if meta.first_prompt.as_ref().map(|(s, _)| s) != Some(&sandbox.id) {
            meta.first_prompt = Some((sandbox.id.clone(), message.id.clone()));
        }
    })?;
    let job = job(cx, &message, &sandbox.id)?;
    cx.store.start_message(&message.id, cx.now)?;
    cx.store
        .set_sandbox_status(&sandbox.id, SandboxState::Busy, None)?;
    if sandbox.state() != SandboxState::Busy {
        cx.emit(super::sandbox::status_event(SandboxState::Busy, None))?;
    }
    cx.emit(EventBody::PromptStarted {
        message_id: message.id.clone(),
    })?;
    hub::send(&socket, &to_bridge(&ToBridge::Prompt(job)));
    Ok(())
}

/// Finishes the running prompt, after any token text still batched in memory; then the
/// next one runs, or the sandbox is snapshotted.
pub fn finish_running(
    cx: &Ctx,
    tokens: &RefCell<Coalescer>,
    status: PromptStatus,
    error: Option<&str>,
) -> Result<()> {
    finish_running_with(cx, tokens, status, error, false)
}

/// [`finish_running`], saying whether answer text was lost (`done` named more than is stored).
pub fn finish_running_with(
    cx: &Ctx,
    tokens: &RefCell<Coalescer>,
    status: PromptStatus,
    error: Option<&str>,
    incomplete_text: bool,
) -> Result<()> {
    let Some(message_id) = cx.store.running_id()? else {
        return Ok(());
    };
    flush_tokens(cx, tokens)?;
    finish_with(cx, &message_id, status, error, incomplete_text)?;
    cx.store
        .update_lifecycle(|meta| meta.stop_requested = None)?;
    let Some(sandbox) = cx.store.live_sandbox()? else {
        return Ok(());
    };
    if cx.store.count_waiting()? > 0 {
        // Still busy: the next prompt goes straight on.
        return dispatch_next(cx);
    }
    cx.store.sandbox_idle_since(&sandbox.id, cx.now)?;
    cx.store
        .set_sandbox_status(&sandbox.id, SandboxState::Snapshotting, None)?;
    cx.store
        .update_lifecycle(|meta| meta.snapshot_pending = Some(sandbox.id.clone()))?;
    cx.emit(super::sandbox::status_event(
        SandboxState::Snapshotting,
        None,
    ))
    .map(drop)
}

/// `stop`: asks the bridge to abort; the prompt finishes as cancelled when it answers (or
/// after a grace period, see the alarm).
pub fn stop(cx: &Ctx, tokens: &RefCell<Coalescer>) -> Result<()> {
    let Some(message_id) = cx.store.running_id()? else {
        return Err(ApiError::new(ErrorCode::NotFound, "no prompt is running").into());
    };
    let meta = cx.store.lifecycle()?;
    if meta
        .stop_requested
        .as_ref()
        .is_some_and(|(id, _)| *id == message_id)
    {
        return Ok(());
    }
    let socket = cx
        .store
        .live_sandbox()?
        .and_then(|sandbox| cx.hub.bridge(cx.state, &sandbox.id));
    let Some(socket) = socket else {
        return finish_running(cx, tokens, PromptStatus::Cancelled, None);
    };
    cx.store
        .update_lifecycle(|meta| meta.stop_requested = Some((message_id.clone(), cx.now)))?;
    hub::send(&socket, &to_bridge(&ToBridge::Stop { message_id }));
    Ok(())
}

/// The running prompt ran past `PROMPT_TIMEOUT_SECONDS`: the bridge is told to stop, and the
/// prompt finishes as `timed_out` at once.
pub fn timed_out(cx: &Ctx, tokens: &RefCell<Coalescer>) -> Result<()> {
    let Some(message_id) = cx.store.running_id()? else {
        return Ok(());
    };
    if let Some(socket) = cx
        .store
        .live_sandbox()?
        .and_then(|s| cx.hub.bridge(cx.state, &s.id))
    {
        hub::send(&socket, &to_bridge(&ToBridge::Stop { message_id }));
    }
    let error = format!(
        "the prompt ran longer than {} s",
        cx.config.lifecycle.prompt_timeout_ms / 1000
    );
    finish_running(cx, tokens, PromptStatus::TimedOut, Some(&error))
}
