//! The room's one alarm: which deadline it must wake for next (the rules are pure, in
//! [`lifecycle`](super::lifecycle)), and what it does when it fires. Provider and Slack calls
//! happen only here.

use super::bridge::flush_tokens;
use super::context::Ctx;
use super::lifecycle::{Due, LiveSandbox, Running, Situation};
use super::tokens::Coalescer;
use super::{prompts, sandbox};
use crate::config::ProviderKind;
use crate::error::Result;
use crate::time::now_ms;
use protocol::event::PromptStatus;
use std::cell::{Cell, RefCell};

/// The alarm time last set, so an unchanged deadline costs no storage write.
#[derive(Default)]
pub struct Alarm {
    at: Cell<Option<u64>>,
}

impl Alarm {
    /// Makes the alarm fire no later than `at` (ms since the epoch).
    pub async fn no_later_than(&self, cx: &Ctx<'_>, at: u64) -> Result<()> {
        if self.at.get().is_some_and(|set| set <= at) {
            return Ok(());
        }
        // A plain number would be an offset from now; the deadline is a point in time.
        // A deadline already passed (0 means "now") fires as soon as possible.
        let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.max(cx.now) as f64));
        cx.state
            .storage()
            .set_alarm(worker::ScheduledTime::new(when))
            .await?;
        // Remembered only once set: a failed write must not hide the deadline.
        self.at.set(Some(at));
        Ok(())
    }

    /// Sets the alarm to the nearest deadline, if any.
    pub async fn schedule(&self, cx: &Ctx<'_>, tokens: &RefCell<Coalescer>) -> Result<()> {
        let lifecycle = situation(cx, tokens)?.next_alarm(&cx.config.lifecycle);
        let slack = super::slack::next_at(cx)?;
        match lifecycle.into_iter().chain(slack).min() {
            Some(at) => self.no_later_than(cx, at).await,
            None => Ok(()),
        }
    }

    /// The alarm fired: everything that is due, then the next alarm. A step that failed is
    /// logged and the others still run; the first failure is returned, so the platform runs
    /// the alarm again.
    pub async fn fire(&self, cx: &Ctx<'_>, tokens: &RefCell<Coalescer>) -> Result<()> {
        self.at.set(None);
        // Slack first: a status message is not held up by a sandbox being created or
        // snapshotted (what a prompt's end needs, its tokens, is stored when it ends).
        let mut first_failure = None;
        if let Err(error) = super::slack::work(cx).await {
            crate::log::error(&format!("room alarm slack: {error:?}"));
            first_failure = Some(error);
        }
        let cx = &cx.at(now_ms());
        let rules = &cx.config.lifecycle;
        for due in situation(cx, tokens)?.due(rules, cx.now) {
            let outcome = match due {
                Due::FlushTokens => flush_tokens(cx, tokens),
                Due::FlushPresence => {
                    cx.hub.flush_presence(cx.state, cx.now);
                    Ok(())
                }
                Due::TokenExpired => {
                    cx.hub.close_expired(cx.state, cx.now);
                    Ok(())
                }
                Due::SpawnTimedOut => {
                    let reason = format!(
                        "the sandbox did not connect within {} s",
                        rules.spawn_timeout_ms / 1000
                    );
                    sandbox::failed(cx, tokens, &reason, true)
                }
                Due::HeartbeatStale => {
                    let reason = format!(
                        "no heartbeat from the sandbox for {} s",
                        rules.heartbeat_timeout_ms / 1000
                    );
                    sandbox::failed(cx, tokens, &reason, false)
                }
                Due::PromptTimedOut => prompts::timed_out(cx, tokens),
                Due::StopUnanswered => prompts::finish_running(
                    cx,
                    tokens,
                    PromptStatus::Cancelled,
                    Some("the agent did not confirm the stop in time"),
                ),
                Due::IdleShutdown => sandbox::idle_shutdown(cx),
                Due::Snapshot => sandbox::snapshot(cx).await,
                Due::Spawn => sandbox::spawn(cx).await,
                Due::Cleanup => sandbox::cleanup(cx).await,
            };
            if let Err(error) = outcome {
                crate::log::error(&format!("room alarm {due:?}: {error:?}"));
                first_failure.get_or_insert(error);
            }
        }
        self.schedule(&cx.at(now_ms()), tokens).await?;
        first_failure.map_or(Ok(()), Err)
    }
}

/// Everything the deadlines depend on, read fresh.
fn situation(cx: &Ctx, tokens: &RefCell<Coalescer>) -> Result<Situation> {
    let meta = cx.store.lifecycle()?;
    let sandbox = cx.store.live_sandbox()?;
    let running = cx.store.running()?;
    let waiting = cx.store.count_waiting()?;
    Ok(Situation {
        spawn_wanted: (waiting > 0 || meta.start_wanted.is_some())
            && sandbox.is_none()
            && cx.config.provider.kind != ProviderKind::None,
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
        cleanup_retry_at: meta.cleanup_retry_at,
        token_flush_at: tokens.borrow().flush_at(),
        presence_flush_at: cx.hub.presence_due(),
        token_expiry_at: cx.hub.earliest_expiry(cx.state),
    })
}
