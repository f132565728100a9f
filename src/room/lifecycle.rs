//! The sandbox lifecycle's rules: which deadline the room's one alarm must wake for, what
//! is due when it fires, how token deltas are batched, and how provider failures back off.
//! Pure, so `cargo test` covers every rule; the room feeds it what SQLite and memory hold.

use crate::config::Lifecycle;
use protocol::event::SandboxState;
use serde::{Deserialize, Serialize};

/// How long a bridge may take to answer `stop` before the prompt is finished anyway.
pub const STOP_GRACE_MS: u64 = 10_000;
/// Provider failures counted together, and how many of them end the waiting prompts.
pub const FAILURE_WINDOW_MS: u64 = 5 * 60_000;
pub const MAX_FAILURES: usize = 3;
/// The first retry after a provider failure; each later one waits four times longer.
pub const FIRST_RETRY_MS: u64 = 2_000;

/// The sandbox that has not ended, as far as deadlines care.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSandbox {
    pub status: SandboxState,
    pub created_at: u64,
    /// The last heartbeat (or `ready`); `None` until the bridge has connected.
    pub heartbeat_at: Option<u64>,
    /// Since when nothing has run on it.
    pub idle_since: u64,
}

/// The prompt the sandbox is working on.
#[derive(Clone, Debug, PartialEq)]
pub struct Running {
    pub started_at: u64,
    pub stop_requested_at: Option<u64>,
}

/// The room's lifecycle bookkeeping, kept in SQLite as one JSON value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomMeta {
    /// Where sandboxes dial back to: the origin the session was created through.
    pub origin: Option<String>,
    /// The newest snapshot of the workspace; the next sandbox starts from it.
    pub latest_snapshot: Option<String>,
    /// Recent provider failures (ms), for the back-off and the give-up rule.
    pub failures: Vec<u64>,
    /// When the next spawn may be tried after a failure.
    pub retry_at: Option<u64>,
    /// The running prompt someone asked to stop, and when.
    pub stop_requested: Option<(String, u64)>,
    /// A sandbox whose workspace is to be snapshotted now.
    pub snapshot_pending: Option<String>,
    /// Ended sandboxes the provider has not yet been told to delete.
    pub to_delete: Vec<String>,
}

/// Everything the deadlines depend on, read fresh each time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Situation {
    pub sandbox: Option<LiveSandbox>,
    pub running: Option<Running>,
    /// Prompts waiting to run.
    pub waiting: usize,
    /// Prompts wait, no sandbox is up, and a provider is configured.
    pub spawn_wanted: bool,
    /// When the next spawn may be tried after a provider failure.
    pub retry_at: Option<u64>,
    pub snapshot_pending: bool,
    pub cleanup_pending: bool,
    /// When the token batch in memory must be stored.
    pub token_flush_at: Option<u64>,
    /// When presence changes held back must be sent.
    pub presence_flush_at: Option<u64>,
    /// When the first participant socket's token runs out.
    pub token_expiry_at: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    FlushTokens,
    FlushPresence,
    /// A participant socket outlived its token: it closes with 4001.
    TokenExpired,
    /// The provider said yes, but the bridge never connected.
    SpawnTimedOut,
    HeartbeatStale,
    PromptTimedOut,
    StopUnanswered,
    IdleShutdown,
    Snapshot,
    Spawn,
    Cleanup,
}

impl Situation {
    fn deadlines(&self, rules: &Lifecycle) -> Vec<(u64, Due)> {
        let mut deadlines = Vec::new();
        if let Some(at) = self.token_flush_at {
            deadlines.push((at, Due::FlushTokens));
        }
        if let Some(at) = self.presence_flush_at {
            deadlines.push((at, Due::FlushPresence));
        }
        if let Some(at) = self.token_expiry_at {
            deadlines.push((at, Due::TokenExpired));
        }
        if let Some(sandbox) = &self.sandbox {
            match sandbox.heartbeat_at {
                None => deadlines.push((
                    sandbox.created_at + rules.spawn_timeout_ms,
                    Due::SpawnTimedOut,
                )),
                Some(beat) => {
                    deadlines.push((beat + rules.heartbeat_timeout_ms, Due::HeartbeatStale))
                }
            }
            let idle = self.running.is_none()
                && self.waiting == 0
                && matches!(sandbox.status, SandboxState::Ready | SandboxState::Idle);
            if idle {
                deadlines.push((
                    sandbox.idle_since + rules.idle_shutdown_ms,
                    Due::IdleShutdown,
                ));
            }
        } else if self.spawn_wanted {
            deadlines.push((self.retry_at.unwrap_or(0), Due::Spawn));
        }
        if self.snapshot_pending {
            deadlines.push((0, Due::Snapshot));
        }
        if self.cleanup_pending {
            deadlines.push((0, Due::Cleanup));
        }
        if let Some(running) = &self.running {
            deadlines.push((
                running.started_at + rules.prompt_timeout_ms,
                Due::PromptTimedOut,
            ));
            if let Some(at) = running.stop_requested_at {
                deadlines.push((at + STOP_GRACE_MS, Due::StopUnanswered));
            }
        }
        deadlines
    }

    /// What is due at `now`, in the order the room should handle it.
    pub fn due(&self, rules: &Lifecycle, now: u64) -> Vec<Due> {
        let mut due: Vec<Due> = self
            .deadlines(rules)
            .into_iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, due)| due)
            .collect();
        due.sort_by_key(|d| *d as u8);
        due
    }

    /// When the alarm must next fire, if anything is pending.
    pub fn next_alarm(&self, rules: &Lifecycle) -> Option<u64> {
        self.deadlines(rules).into_iter().map(|(at, _)| at).min()
    }
}

/// What to do after the provider failed to create a sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(u64),
    /// Too many failures in the window: finish the waiting prompts as failed.
    GiveUp,
}

/// Records a failure at `now` in `failures` (times in ms, pruned to the window) and decides.
pub fn after_provider_failure(failures: &mut Vec<u64>, now: u64) -> AfterFailure {
    failures.retain(|at| now.saturating_sub(*at) < FAILURE_WINDOW_MS);
    failures.push(now);
    if failures.len() >= MAX_FAILURES {
        failures.clear();
        return AfterFailure::GiveUp;
    }
    let exponent = (failures.len() - 1) as u32;
    AfterFailure::RetryAt(now + FIRST_RETRY_MS * 4u64.pow(exponent))
}

/// Token deltas waiting to be stored as one `token` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    pub message_id: String,
    pub text: String,
    pub started_at: u64,
}

/// Batches token deltas: a delta after a quiet spell is stored at once (the first words
/// show without delay); under a stream, deltas gather for up to [`Coalescer::MAX_AGE_MS`]
/// or [`Coalescer::MAX_BYTES`], so one event and one broadcast carry many frames.
/// Each batch holds only new text; nothing already stored is rewritten.
#[derive(Debug, Default)]
pub struct Coalescer {
    batch: Option<TokenBatch>,
    last_flush_at: u64,
}

impl Coalescer {
    pub const MAX_AGE_MS: u64 = 40;
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Adds a delta; returns the batches to store now, oldest first.
    pub fn push(&mut self, message_id: &str, delta: &str, now: u64) -> Vec<TokenBatch> {
        let mut ready = Vec::new();
        if self
            .batch
            .as_ref()
            .is_some_and(|b| b.message_id != message_id)
        {
            ready.extend(self.take(now));
        }
        let quiet = now.saturating_sub(self.last_flush_at) >= Self::MAX_AGE_MS;
        let batch = self.batch.get_or_insert_with(|| TokenBatch {
            message_id: message_id.to_owned(),
            text: String::new(),
            started_at: now,
        });
        batch.text.push_str(delta);
        let full = batch.text.len() >= Self::MAX_BYTES;
        let old = now.saturating_sub(batch.started_at) >= Self::MAX_AGE_MS;
        if quiet || full || old {
            ready.extend(self.take(now));
        }
        ready
    }

    /// The batch in memory, to store before anything else about its prompt.
    pub fn take(&mut self, now: u64) -> Option<TokenBatch> {
        let batch = self.batch.take()?;
        self.last_flush_at = now;
        Some(batch)
    }

    /// When the batch in memory must be stored even if no other delta comes.
    pub fn flush_at(&self) -> Option<u64> {
        self.batch.as_ref().map(|b| b.started_at + Self::MAX_AGE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Lifecycle {
        Lifecycle {
            heartbeat_timeout_ms: 60_000,
            prompt_timeout_ms: 1_000_000,
            idle_shutdown_ms: 600_000,
            spawn_timeout_ms: 300_000,
        }
    }

    fn sandbox(status: SandboxState, heartbeat_at: Option<u64>) -> LiveSandbox {
        LiveSandbox {
            status,
            created_at: 0,
            heartbeat_at,
            idle_since: 100,
        }
    }

    #[test]
    fn deadlines_of_each_phase() {
        let rules = rules();
        let check = |situation: Situation, next: Option<u64>, due_at: u64, due: &[Due]| {
            assert_eq!(situation.next_alarm(&rules), next, "{situation:?}");
            assert_eq!(situation.due(&rules, due_at), due, "{situation:?}");
        };
        check(Situation::default(), None, u64::MAX, &[]);
        // Spawning: only the connect deadline.
        check(
            Situation {
                sandbox: Some(sandbox(SandboxState::Spawning, None)),
                waiting: 1,
                ..Default::default()
            },
            Some(300_000),
            300_000,
            &[Due::SpawnTimedOut],
        );
        // Idle: heartbeat and idle shutdown; the heartbeat comes first.
        check(
            Situation {
                sandbox: Some(sandbox(SandboxState::Idle, Some(50))),
                ..Default::default()
            },
            Some(60_050),
            600_100,
            &[Due::HeartbeatStale, Due::IdleShutdown],
        );
        // Busy with a stop requested: the grace period is the nearest deadline.
        check(
            Situation {
                sandbox: Some(sandbox(SandboxState::Busy, Some(5_000))),
                running: Some(Running {
                    started_at: 1_000,
                    stop_requested_at: Some(2_000),
                }),
                waiting: 3,
                token_flush_at: Some(40_000),
                ..Default::default()
            },
            Some(2_000 + STOP_GRACE_MS),
            1_001_000,
            &[
                Due::FlushTokens,
                Due::HeartbeatStale,
                Due::PromptTimedOut,
                Due::StopUnanswered,
            ],
        );
        // No sandbox and prompts waiting: a spawn now, or at the retry time.
        let spawn = Situation {
            waiting: 1,
            spawn_wanted: true,
            ..Default::default()
        };
        check(spawn.clone(), Some(0), 0, &[Due::Spawn]);
        let retry = Situation {
            retry_at: Some(9_000),
            ..spawn
        };
        check(retry.clone(), Some(9_000), 8_999, &[]);
        check(retry, Some(9_000), 9_000, &[Due::Spawn]);
        // A socket's token runs out: the alarm wakes for it, with nothing else going on.
        check(
            Situation {
                token_expiry_at: Some(900_000),
                ..Default::default()
            },
            Some(900_000),
            900_000,
            &[Due::TokenExpired],
        );
        // Provider work left over is due at once, after the deadlines.
        check(
            Situation {
                sandbox: Some(sandbox(SandboxState::Snapshotting, Some(0))),
                snapshot_pending: true,
                cleanup_pending: true,
                ..Default::default()
            },
            Some(0),
            1,
            &[Due::Snapshot, Due::Cleanup],
        );
    }

    #[test]
    fn provider_failures_back_off_then_give_up() {
        let mut failures = Vec::new();
        assert_eq!(
            after_provider_failure(&mut failures, 1_000),
            AfterFailure::RetryAt(3_000)
        );
        assert_eq!(
            after_provider_failure(&mut failures, 3_000),
            AfterFailure::RetryAt(11_000)
        );
        assert_eq!(
            after_provider_failure(&mut failures, 11_000),
            AfterFailure::GiveUp
        );
        assert!(failures.is_empty());
        // Failures older than the window do not count.
        let mut failures = vec![0, 10];
        assert_eq!(
            after_provider_failure(&mut failures, FAILURE_WINDOW_MS + 10),
            AfterFailure::RetryAt(FAILURE_WINDOW_MS + 10 + FIRST_RETRY_MS)
        );
    }

    #[test]
    fn coalescing_batches_a_stream_and_flushes_a_lone_delta() {
        let mut tokens = Coalescer::default();
        // After a quiet spell the first delta is stored at once.
        let first = tokens.push("m1", "Hel", 1_000);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].text, "Hel");
        // A stream gathers until the batch is old enough.
        assert!(tokens.push("m1", "lo ", 1_010).is_empty());
        assert!(tokens.push("m1", "wor", 1_020).is_empty());
        assert_eq!(tokens.flush_at(), Some(1_010 + Coalescer::MAX_AGE_MS));
        let batch = tokens.push("m1", "ld", 1_050);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].text, "lo world");
        assert_eq!(tokens.flush_at(), None);
        // Another prompt's delta stores the pending batch first.
        assert!(tokens.push("m1", "a", 1_060).is_empty());
        let batches = tokens.push("m2", "b", 1_070);
        assert_eq!(
            batches
                .iter()
                .map(|b| b.message_id.as_str())
                .collect::<Vec<_>>(),
            ["m1"]
        );
        assert_eq!(tokens.take(1_080).map(|b| b.text), Some("b".into()));
        // A huge delta is stored at once even mid-stream.
        assert!(tokens.push("m2", "x", 1_081).is_empty());
        let big = "y".repeat(Coalescer::MAX_BYTES);
        assert_eq!(
            tokens.push("m2", &big, 1_082)[0].text.len(),
            Coalescer::MAX_BYTES + 1
        );
    }
}
