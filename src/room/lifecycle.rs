//! The sandbox lifecycle's rules: which deadline the room's one alarm must wake for, what
//! is due when it fires, and how provider failures back off (token batching is in
//! [`tokens`](super::tokens)).
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
    /// After a failed delete: when to ask again, and how many times it failed in a row.
    pub cleanup_retry_at: Option<u64>,
    pub cleanup_failures: u32,
    /// A sandbox is wanted before any prompt waits: at the session's creation (a warm one
    /// only) or on its first `typing` (warm, else cold). Cleared when the spawn is tried.
    pub start_wanted: Option<StartWanted>,
    /// When `typing` last asked for a sandbox, so typing asks at most once a minute.
    pub typing_start_at: Option<u64>,
    /// The live sandbox's first prompt: (sandbox id, message id). That prompt carries the
    /// session's transcript (again, should the bridge reconnect and be sent it once more);
    /// no later prompt of the same sandbox does.
    pub first_prompt: Option<(String, String)>,
}

/// Why a sandbox is wanted with no prompt waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartWanted {
    /// The session was created: claim a warm sandbox if there is one, else wait for a prompt.
    WarmOnly,
    /// Someone typed: a warm sandbox, else a cold one.
    Any,
}

/// How often `typing` may ask for a sandbox (one that failed is not asked for again sooner).
pub const TYPING_START_EVERY_MS: u64 = 60_000;

/// Whether a `typing` frame should start the session's sandbox: none is up or starting, the
/// provider is not backing off, and typing has not asked within the last minute.
pub fn typing_starts(meta: &RoomMeta, sandbox_live: bool, now_ms: u64) -> bool {
    !sandbox_live
        && meta.start_wanted != Some(StartWanted::Any)
        && meta.retry_at.is_none_or(|at| at <= now_ms)
        && meta
            .typing_start_at
            .is_none_or(|at| now_ms.saturating_sub(at) >= TYPING_START_EVERY_MS)
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
    /// When a failed delete may be tried again (`None`: at once).
    pub cleanup_retry_at: Option<u64>,
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
            deadlines.push((self.cleanup_retry_at.unwrap_or(0), Due::Cleanup));
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

/// Deletes that failed this many times in a row are given up on: the provider's own timeout
/// ends the sandbox.
pub const MAX_CLEANUP_FAILURES: u32 = 6;

/// When to ask the provider again after `failures` failed deletes in a row (from 1): 2 s,
/// four times longer each time, at most 10 minutes; `None` once it is time to give up.
pub fn cleanup_retry(failures: u32, now: u64) -> Option<u64> {
    if failures >= MAX_CLEANUP_FAILURES {
        return None;
    }
    let wait = FIRST_RETRY_MS.saturating_mul(4u64.saturating_pow(failures.saturating_sub(1)));
    Some(now + wait.min(10 * 60_000))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_starts_a_sandbox_at_most_once_a_minute() {
        let fresh = RoomMeta::default();
        assert!(typing_starts(&fresh, false, 1_000));
        assert!(!typing_starts(&fresh, true, 1_000), "one is up already");
        let asked = RoomMeta {
            typing_start_at: Some(1_000),
            ..RoomMeta::default()
        };
        assert!(!typing_starts(
            &asked,
            false,
            1_000 + TYPING_START_EVERY_MS - 1
        ));
        assert!(typing_starts(&asked, false, 1_000 + TYPING_START_EVERY_MS));
        let backing_off = RoomMeta {
            retry_at: Some(5_000),
            ..RoomMeta::default()
        };
        assert!(!typing_starts(&backing_off, false, 4_999));
        assert!(typing_starts(&backing_off, false, 5_000));
        let wanted = RoomMeta {
            start_wanted: Some(StartWanted::Any),
            ..RoomMeta::default()
        };
        assert!(!typing_starts(&wanted, false, 1_000), "asked for already");
        let creation = RoomMeta {
            start_wanted: Some(StartWanted::WarmOnly),
            ..RoomMeta::default()
        };
        assert!(
            typing_starts(&creation, false, 1_000),
            "typing may also start a cold one"
        );
    }

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
        // A delete that failed waits for its retry.
        check(
            Situation {
                cleanup_pending: true,
                cleanup_retry_at: Some(8_000),
                ..Default::default()
            },
            Some(8_000),
            7_999,
            &[],
        );
    }

    #[test]
    fn failed_deletes_back_off_then_give_up() {
        assert_eq!(cleanup_retry(1, 100), Some(2_100));
        assert_eq!(cleanup_retry(2, 100), Some(8_100));
        assert_eq!(cleanup_retry(5, 0), Some(512_000));
        assert_eq!(cleanup_retry(MAX_CLEANUP_FAILURES, 0), None);
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
}
