//! What the room reports to D1 when a prompt finishes: how long it waited to start and for its
//! first token, how long it ran, how it ended, who sent it from where, and the session's
//! participants. One small batch per prompt, sent after the room's own writes and never
//! waited on: the prompt's end is stored and broadcast whether or not D1 answers.
//! And when a prompt is sent, who sent it (for "humans prompting now", which must count a
//! prompt still running): at most one such write per person and repository a minute.

use super::context::Ctx;
use crate::index::{Index, PromptRecord};
use crate::time::parse_rfc3339;
use protocol::event::PromptStatus;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

/// Records waiting for D1 at most; past it a record is dropped (and logged) rather than held.
const MAX_PENDING: usize = 10_000;

/// A person's latest prompt in a repository is written at most this often (the 5-minute
/// window of "humans prompting now" is then off by under a minute).
const PROMPTING_EVERY_MS: u64 = 60_000;
/// People and repositories remembered for that; past it the memory starts over.
const MAX_PROMPTING_KEPT: usize = 4_096;

/// What goes to D1, in the order it happened.
enum Report {
    Finished(PromptRecord),
    /// `user_id` sent a prompt on `repo` at `at`.
    Sent {
        user_id: String,
        repo: String,
        at: u64,
    },
}

thread_local! {
    /// Reports not yet written, in order. One writer at a time empties it, so a burst of
    /// finished prompts is a queue of small writes, never a pile of D1 calls in flight that
    /// holds up the isolate.
    static PENDING: RefCell<VecDeque<Report>> = const { RefCell::new(VecDeque::new()) };
    static WRITING: Cell<bool> = const { Cell::new(false) };
    /// (user id, repository) → when their last `Sent` was queued.
    static LAST_SENT: RefCell<HashMap<(String, String), u64>> = RefCell::new(HashMap::new());
}

/// Reports that `user_id` has just sent a prompt in this session (stored already).
pub fn prompt_sent(cx: &Ctx, user_id: &str) {
    let repo = match cx.store.session() {
        Ok(Some(session)) => session.repo,
        Ok(None) => return,
        Err(error) => {
            crate::log::error(&format!("metrics for a prompt sent: {error:?}"));
            return;
        }
    };
    let due = LAST_SENT.with_borrow_mut(|last| {
        let key = (user_id.to_owned(), repo.clone());
        if last
            .get(&key)
            .is_some_and(|&at| cx.now < at + PROMPTING_EVERY_MS)
        {
            return false;
        }
        if last.len() >= MAX_PROMPTING_KEPT {
            last.clear();
        }
        last.insert(key, cx.now);
        true
    });
    if due {
        queue(
            cx,
            Report::Sent {
                user_id: user_id.to_owned(),
                repo,
                at: cx.now,
            },
            "a prompt sent",
        );
    }
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
    queue(cx, Report::Finished(record), message_id);
}

/// Queues a report for the one writer of this isolate, and starts it if none runs.
fn queue(cx: &Ctx, report: Report, what: &str) {
    let kept = PENDING.with_borrow_mut(|pending| {
        let room = pending.len() < MAX_PENDING;
        if room {
            pending.push_back(report);
        }
        room
    });
    if !kept {
        crate::log::error(&format!(
            "metrics for {what} dropped: {MAX_PENDING} records already wait for D1"
        ));
    }
    if WRITING.replace(true) {
        return;
    }
    let env = cx.env.clone();
    cx.state.wait_until(async move {
        let _writing = Writing;
        while let Some(report) = PENDING.with_borrow_mut(VecDeque::pop_front) {
            let index = match env.d1("DB") {
                Ok(db) => Index::new(db),
                Err(error) => {
                    crate::log::error(&format!("metrics not recorded: {error:?}"));
                    continue;
                }
            };
            let (written, what) = match &report {
                Report::Finished(record) => (
                    index.record_prompt(record).await,
                    record.message_id.as_str(),
                ),
                Report::Sent { user_id, repo, at } => (
                    index.record_prompting(user_id, repo, *at).await,
                    "a prompt sent",
                ),
            };
            if let Err(error) = written {
                crate::log::error(&format!("metrics for {what} not recorded: {error:?}"));
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
