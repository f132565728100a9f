//! What the room reports to D1 when a prompt finishes: how long it waited to start and for its
//! first token, how long it ran, how it ended, who sent it from where, and the session's
//! participants. One small batch per prompt, sent after the room's own writes and never
//! waited on: the prompt's end is stored and broadcast whether or not D1 answers.

use super::context::Ctx;
use crate::index::{Index, PromptRecord};
use crate::time::parse_rfc3339;
use protocol::event::PromptStatus;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// Records waiting for D1 at most; past it a record is dropped (and logged) rather than held.
const MAX_PENDING: usize = 10_000;

thread_local! {
    /// Records not yet written, in order. One writer at a time empties it, so a burst of
    /// finished prompts is a queue of small writes, never a pile of D1 calls in flight that
    /// holds up the isolate.
    static PENDING: RefCell<VecDeque<PromptRecord>> = const { RefCell::new(VecDeque::new()) };
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the writer as gone when its future ends or is dropped, so a cancelled writer never
/// stops the next one from starting.
struct Writing;

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.set(false);
    }
}

/// Reports a prompt that has just finished (its row in `messages` already says so).
/// A failure here is logged; it never changes what the room did.
pub fn prompt_finished(cx: &Ctx, message_id: &str, status: PromptStatus) {
    let record = match record(cx, message_id, status) {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(error) => {
            crate::log::error(&format!("metrics for {message_id}: {error:?}"));
            return;
        }
    };
    crate::log::room(
        "prompt_finished",
        Some(&record.session_id),
        None,
        serde_json::json!({
            "message_id": record.message_id,
            "status": record.status,
            "source": record.source,
            "to_started_ms": record.to_started_ms,
            "to_first_token_ms": record.to_first_token_ms,
            "duration_ms": record.duration_ms,
        }),
    );
    let kept = PENDING.with_borrow_mut(|pending| {
        let room = pending.len() < MAX_PENDING;
        if room {
            pending.push_back(record);
        }
        room
    });
    if !kept {
        crate::log::error(&format!(
            "metrics for {message_id} dropped: {MAX_PENDING} records already wait for D1"
        ));
    }
    if WRITING.replace(true) {
        return;
    }
    let env = cx.env.clone();
    cx.state.wait_until(async move {
        let _writing = Writing;
        while let Some(record) = PENDING.with_borrow_mut(VecDeque::pop_front) {
            let written = match env.d1("DB") {
                Ok(db) => Index::new(db).record_prompt(&record).await,
                Err(error) => Err(error.into()),
            };
            if let Err(error) = written {
                crate::log::error(&format!(
                    "metrics for {} not recorded: {error:?}",
                    record.message_id
                ));
            }
        }
    });
}

fn record(
    cx: &Ctx,
    message_id: &str,
    status: PromptStatus,
) -> crate::error::Result<Option<PromptRecord>> {
    let (Some(session), Some(message)) = (cx.store.session()?, cx.store.message(message_id)?)
    else {
        return Ok(None);
    };
    let ms = |text: Option<&str>| text.and_then(parse_rfc3339);
    let Some(queued_at) = ms(Some(message.created_at.as_str())) else {
        return Ok(None);
    };
    let started_at = ms(message.started_at.as_deref());
    let first_token_at = match started_at {
        Some(_) => ms(cx.store.first_token_ts(message_id, message.seq)?.as_deref()),
        None => None,
    };
    let since_queued = |at: Option<u64>| at.map(|at| at.saturating_sub(queued_at));
    Ok(Some(PromptRecord {
        message_id: message.id.clone(),
        session_id: session.id,
        repo: session.repo,
        author_id: message.author_user_id,
        source: message.source,
        status: super::queue::MessageStatus::from(status)
            .as_str()
            .to_owned(),
        queued_at,
        to_started_ms: since_queued(started_at),
        to_first_token_ms: since_queued(first_token_at),
        duration_ms: started_at.map(|started| {
            ms(message.finished_at.as_deref())
                .unwrap_or(cx.now)
                .saturating_sub(started)
        }),
        // The sandbox that ran it (the newest, live or ended): claimed from the pool or not.
        warm: match (started_at, cx.store.latest_sandbox()?) {
            (Some(_), Some(sandbox)) => Some(cx.store.is_warm(&sandbox.id)?),
            _ => None,
        },
        participants: cx.store.participants()?.len() as u64,
    }))
}
