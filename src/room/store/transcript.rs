//! What a new sandbox's transcript is read from: the prompts that ran before a message,
//! newest first, and each one's answer, tool calls and edited files as the log holds them.
//! The reads are bounded per prompt (its own stretch of the log; token events at the start
//! and the end of the answer, at most 200 tool call events, 100 edits) and in number
//! ([`crate::room::transcript::MAX_PROMPTS`]); [`crate::room::transcript`] cuts them to size.

use super::{int, s, MessageRow, Store};
use crate::error::Result;
use crate::room::transcript::{EarlierPrompt, ToolEvent};

/// Token events read at each end of an answer.
const ANSWER_EVENTS: u64 = 32;

/// What "ran" means: started, and finished since.
const RAN: &str = "started_at IS NOT NULL AND status NOT IN ('queued', 'running')";

#[derive(serde::Deserialize)]
struct Seq {
    seq: u64,
}

#[derive(serde::Deserialize)]
struct Delta {
    seq: u64,
    delta: Option<String>,
}

#[derive(serde::Deserialize)]
struct Tool {
    call_id: Option<String>,
    tool: Option<String>,
    status: Option<String>,
    input: Option<String>,
}

#[derive(serde::Deserialize)]
struct Path {
    path: Option<String>,
}

impl Store {
    /// How many prompts ran before the message stored at `before_seq`.
    pub fn count_ran_before(&self, before_seq: u64) -> Result<u32> {
        Ok(self.number(
            &format!("SELECT COUNT(*) AS n FROM messages WHERE seq < ? AND {RAN}"),
            vec![int(before_seq)],
        )? as u32)
    }

    /// The prompts that ran before `before_seq`, newest first: `limit` of them after skipping
    /// `offset`.
    pub fn ran_before(&self, before_seq: u64, offset: u32, limit: u32) -> Result<Vec<MessageRow>> {
        self.rows(
            &format!(
                "SELECT * FROM messages WHERE seq < ? AND {RAN} ORDER BY seq DESC LIMIT ? OFFSET ?"
            ),
            vec![
                int(before_seq),
                int(u64::from(limit)),
                int(u64::from(offset)),
            ],
        )
    }

    /// One earlier prompt's work, from the events between its own and its `prompt_finished`
    /// (found first, scanning forward from the prompt and stopping there), so each prompt costs
    /// reads over its own stretch of the log, not the log after it.
    pub fn earlier_prompt(&self, message: &MessageRow) -> Result<EarlierPrompt> {
        let end = self
            .first::<Seq>(
                "SELECT seq FROM events WHERE seq > ? AND type = 'prompt_finished'
                 AND json_extract(json, '$.message_id') = ? ORDER BY seq LIMIT 1",
                vec![int(message.seq), s(&message.id)],
            )?
            .map_or(i64::MAX as u64, |row| row.seq);
        let of_prompt = "seq > ? AND seq < ? AND json_extract(json, '$.message_id') = ?";
        let at = || vec![int(message.seq), int(end), s(&message.id)];
        let head: Vec<Delta> = self.rows(
            &format!(
                "SELECT seq, json_extract(json, '$.delta') AS delta FROM events
                 WHERE type = 'token' AND {of_prompt} ORDER BY seq LIMIT {ANSWER_EVENTS}"
            ),
            at(),
        )?;
        let mut tail: Vec<Delta> = match head.last() {
            Some(last) if head.len() as u64 == ANSWER_EVENTS => self.rows(
                &format!(
                    "SELECT seq, json_extract(json, '$.delta') AS delta FROM events
                     WHERE type = 'token' AND seq > ? AND {of_prompt} ORDER BY seq DESC LIMIT {}",
                    ANSWER_EVENTS + 1
                ),
                vec![int(last.seq), int(message.seq), int(end), s(&message.id)],
            )?,
            _ => Vec::new(),
        };
        let answer_gap = tail.len() as u64 > ANSWER_EVENTS;
        tail.truncate(ANSWER_EVENTS as usize);
        tail.reverse();
        let join =
            |deltas: Vec<Delta>| -> String { deltas.into_iter().filter_map(|d| d.delta).collect() };
        let tools: Vec<Tool> = self.rows(
            &format!(
                "SELECT json_extract(json, '$.call_id') AS call_id, json_extract(json, '$.tool') AS tool,
                        json_extract(json, '$.status') AS status,
                        substr(CAST(json_extract(json, '$.input') AS TEXT), 1, 400) AS input
                 FROM events WHERE type = 'tool_call' AND {of_prompt} ORDER BY seq LIMIT 200"
            ),
            at(),
        )?;
        let paths: Vec<Path> = self.rows(
            &format!(
                "SELECT json_extract(json, '$.path') AS path FROM events
                 WHERE type = 'file_edit' AND {of_prompt} ORDER BY seq LIMIT 100"
            ),
            at(),
        )?;
        Ok(EarlierPrompt {
            message_id: message.id.clone(),
            author: message.author_name.clone(),
            content: message.content.clone(),
            status: message.status.clone(),
            answer_head: join(head),
            answer_tail: join(tail),
            answer_gap,
            tool_events: tools
                .into_iter()
                .map(|t| ToolEvent {
                    call_id: t.call_id.unwrap_or_default(),
                    tool: t.tool.unwrap_or_default(),
                    status: t.status.unwrap_or_default(),
                    input: t.input.unwrap_or_default(),
                })
                .collect(),
            files: paths.into_iter().filter_map(|p| p.path).collect(),
        })
    }
}
