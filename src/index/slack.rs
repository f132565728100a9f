//! What Slack needs kept in D1: the event ids already handled (a day), and which session each
//! thread is (7 days after its last activity, pruned as new threads are written), and the
//! users Slack's people are by their email.

use super::{number, opt_text, text, Index, SessionRow, UserRow};
use crate::error::Result;
use protocol::api::{Session, User};
use serde::Deserialize;

/// Slack retries a delivery for minutes; a day is ample.
const EVENT_TTL_MS: u64 = 24 * 3600 * 1000;
/// A thread stays a session this long after its last activity.
pub const THREAD_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// A thread's row: its session (none while the repository is being picked), who started it,
/// the newest message already given to the session, and a pending request as JSON.
#[derive(Clone, Debug, Deserialize)]
pub struct SlackThread {
    pub session_id: Option<String>,
    pub user_id: String,
    pub last_seen_ts: String,
    pub pending: Option<String>,
}

/// Where a thread is: team, channel and the thread's first message.
pub struct ThreadKey<'a> {
    pub team_id: &'a str,
    pub channel_id: &'a str,
    pub thread_ts: &'a str,
}

impl Index {
    /// Records an event id; false when it was already recorded (a retry or a replay).
    pub async fn record_slack_event(&self, event_id: &str, now_ms: u64) -> Result<bool> {
        self.run(
            "DELETE FROM slack_events WHERE received_at < ?",
            &[number(now_ms.saturating_sub(EVENT_TTL_MS))],
        )
        .await?;
        let changed = self
            .changes(
                "INSERT OR IGNORE INTO slack_events (event_id, received_at) VALUES (?, ?) RETURNING event_id",
                &[text(event_id), number(now_ms)],
            )
            .await?;
        Ok(changed == 1)
    }

    /// The thread's row, unless it expired.
    pub async fn slack_thread(
        &self,
        key: &ThreadKey<'_>,
        now_ms: u64,
    ) -> Result<Option<SlackThread>> {
        self.first(
            "SELECT session_id, user_id, last_seen_ts, pending FROM slack_threads
             WHERE team_id = ? AND channel_id = ? AND thread_ts = ? AND updated_at >= ?",
            &[
                text(key.team_id),
                text(key.channel_id),
                text(key.thread_ts),
                number(now_ms.saturating_sub(THREAD_TTL_MS)),
            ],
        )
        .await
    }

    /// Writes the thread's row (a new session, a prompt, a pending pick) and prunes expired ones.
    pub async fn save_slack_thread(
        &self,
        key: &ThreadKey<'_>,
        thread: &SlackThread,
        now_ms: u64,
    ) -> Result<()> {
        self.run(
            "DELETE FROM slack_threads WHERE updated_at < ?",
            &[number(now_ms.saturating_sub(THREAD_TTL_MS))],
        )
        .await?;
        self.run(
            "INSERT INTO slack_threads (team_id, channel_id, thread_ts, session_id, user_id, last_seen_ts, pending, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (team_id, channel_id, thread_ts) DO UPDATE SET session_id = excluded.session_id,
               user_id = excluded.user_id, last_seen_ts = excluded.last_seen_ts, pending = excluded.pending,
               updated_at = excluded.updated_at",
            &[
                text(key.team_id),
                text(key.channel_id),
                text(key.thread_ts),
                opt_text(thread.session_id.as_deref()),
                text(&thread.user_id),
                text(&thread.last_seen_ts),
                opt_text(thread.pending.as_deref()),
                number(now_ms),
            ],
        )
        .await
    }

    /// The user with this email, compared without case; the oldest if several share it.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        Ok(self
            .first::<UserRow>(
                "SELECT * FROM users WHERE lower(email) = lower(?) ORDER BY created_at LIMIT 1",
                &[text(email)],
            )
            .await?
            .map(UserRow::into_user))
    }

    pub async fn session(&self, session_id: &str) -> Result<Option<Session>> {
        Ok(self
            .first::<SessionRow>("SELECT * FROM sessions WHERE id = ?", &[text(session_id)])
            .await?
            .map(|row| row.into_session().0))
    }
}
