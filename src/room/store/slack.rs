//! Prompts that came from Slack: where their thread is, what was posted there (the status
//! message and the final reply, each with Slack's `ts` once it answered, and whether a post
//! was tried, so one whose answer was lost is looked for before it is sent again), and when
//! the alarm should look at them next.

use super::{int, s, Store, Text};
use crate::error::Result;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct SlackPromptRow {
    pub message_id: String,
    pub team_id: String,
    pub channel_id: String,
    pub thread_ts: String,
    pub session_url: String,
    pub offer_pr: i64,
    pub status_ts: Option<String>,
    pub status_text: Option<String>,
    pub status_at: Option<u64>,
    pub status_tried: i64,
    pub final_ts: Option<String>,
    pub final_tried: i64,
    pub attempts: u64,
    pub next_at: u64,
}

/// Which of a prompt's two posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlackPost {
    Status,
    Final,
}

impl SlackPost {
    /// The post's key (`metadata.event_payload.key`), unique in the thread.
    pub fn key(self, message_id: &str) -> String {
        match self {
            SlackPost::Status => format!("{message_id}:status"),
            SlackPost::Final => format!("{message_id}:final"),
        }
    }

    fn columns(self) -> (&'static str, &'static str) {
        match self {
            SlackPost::Status => ("status_ts", "status_tried"),
            SlackPost::Final => ("final_ts", "final_tried"),
        }
    }
}

/// When a Slack prompt is due: at once when its prompt has ended and the reply was not yet
/// tried, else at its `next_at`.
const DUE_AT: &str = "CASE WHEN m.status IN ('completed', 'failed', 'cancelled', 'timed_out')
    AND p.final_ts IS NULL AND p.attempts = 0 THEN 0 ELSE p.next_at END";

impl Store {
    pub fn insert_slack_prompt(&self, row: &SlackPromptRow) -> Result<()> {
        self.run(
            "INSERT OR IGNORE INTO slack_prompts (message_id, team_id, channel_id, thread_ts, session_url, offer_pr,
               status_tried, final_tried, attempts, next_at, done) VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, ?, 0)",
            vec![
                s(&row.message_id),
                s(&row.team_id),
                s(&row.channel_id),
                s(&row.thread_ts),
                s(&row.session_url),
                int(row.offer_pr as u64),
                int(row.next_at),
            ],
        )
    }

    /// The prompts with something still to post, whose time has come.
    pub fn slack_due(&self, now_ms: u64) -> Result<Vec<SlackPromptRow>> {
        self.rows(
            &format!(
                "SELECT p.* FROM slack_prompts p LEFT JOIN messages m ON m.id = p.message_id
             WHERE p.done = 0 AND {DUE_AT} <= ? ORDER BY p.next_at LIMIT 20"
            ),
            vec![int(now_ms)],
        )
    }

    /// When the alarm must next look at a Slack prompt: now for one whose prompt has ended
    /// (its reply goes out at once), else the earliest `next_at`.
    pub fn slack_next_at(&self) -> Result<Option<u64>> {
        #[derive(Deserialize)]
        struct At {
            n: Option<u64>,
        }
        let row: Option<At> = self.first(
            &format!(
                "SELECT MIN({DUE_AT}) AS n
             FROM slack_prompts p LEFT JOIN messages m ON m.id = p.message_id WHERE p.done = 0"
            ),
            vec![],
        )?;
        Ok(row.and_then(|r| r.n))
    }

    /// Marks a post as tried (before it is sent), or not (Slack refused it with a 429).
    pub fn slack_tried(&self, message_id: &str, post: SlackPost, tried: bool) -> Result<()> {
        let (_, column) = post.columns();
        self.run(
            &format!("UPDATE slack_prompts SET {column} = ? WHERE message_id = ?"),
            vec![int(u64::from(tried)), s(message_id)],
        )
    }

    pub fn slack_posted(&self, message_id: &str, post: SlackPost, ts: &str) -> Result<()> {
        let (column, _) = post.columns();
        self.run(
            &format!("UPDATE slack_prompts SET {column} = ? WHERE message_id = ?"),
            vec![s(ts), s(message_id)],
        )
    }

    /// The status text Slack now shows, and when it was set.
    pub fn slack_status_shown(&self, message_id: &str, text: &str, at: u64) -> Result<()> {
        self.run(
            "UPDATE slack_prompts SET status_text = ?, status_at = ? WHERE message_id = ?",
            vec![s(text), int(at), s(message_id)],
        )
    }

    /// The next look, the failed attempts so far, and whether nothing is left to post.
    pub fn slack_next(
        &self,
        message_id: &str,
        next_at: u64,
        attempts: u64,
        done: bool,
    ) -> Result<()> {
        self.run(
            "UPDATE slack_prompts SET next_at = ?, attempts = ?, done = ? WHERE message_id = ?",
            vec![
                int(next_at),
                int(attempts),
                int(u64::from(done)),
                s(message_id),
            ],
        )
    }

    /// The text the agent streamed for a prompt, in order.
    pub fn answer_text(&self, message_id: &str) -> Result<String> {
        let deltas: Vec<Text> = self.rows(
            "SELECT json_extract(json, '$.delta') AS value FROM events
             WHERE type = 'token' AND json_extract(json, '$.message_id') = ? ORDER BY seq",
            vec![s(message_id)],
        )?;
        Ok(deltas.into_iter().filter_map(|t| t.value).collect())
    }

    /// The tool a prompt is running now, if any (its latest tool call, still running).
    pub fn running_tool(&self, message_id: &str) -> Result<Option<String>> {
        let row: Option<Text> = self.first(
            "SELECT CASE WHEN json_extract(json, '$.status') = 'running' THEN json_extract(json, '$.tool') END AS value
             FROM events WHERE type = 'tool_call' AND json_extract(json, '$.message_id') = ?
             ORDER BY seq DESC LIMIT 1",
            vec![s(message_id)],
        )?;
        Ok(row.and_then(|r| r.value))
    }

    /// The paths a prompt edited, each once.
    pub fn edited_paths_of(&self, message_id: &str) -> Result<Vec<String>> {
        let rows: Vec<Text> = self.rows(
            "SELECT DISTINCT json_extract(json, '$.path') AS value FROM events
             WHERE type = 'file_edit' AND json_extract(json, '$.message_id') = ? LIMIT 100",
            vec![s(message_id)],
        )?;
        Ok(rows.into_iter().filter_map(|r| r.value).collect())
    }
}
