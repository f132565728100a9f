//! Messages: the prompts of the session and their place in the queue (`messages.status`).

use super::{cached, int, opt, s, MessageRow, NewMessage, Store};
use crate::error::Result;
use crate::room::queue::MessageStatus;
use crate::time::rfc3339;

impl Store {
    pub fn message(&self, id: &str) -> Result<Option<MessageRow>> {
        self.first("SELECT * FROM messages WHERE id = ?", vec![s(id)])
    }

    pub fn message_by_request(
        &self,
        user_id: &str,
        client_request_id: &str,
    ) -> Result<Option<MessageRow>> {
        self.first(
            "SELECT * FROM messages WHERE author_user_id = ? AND client_request_id = ?",
            vec![s(user_id), s(client_request_id)],
        )
    }

    /// Stores a new prompt under `seq`; false, and nothing stored, when its author already
    /// sent a prompt with the same `client_request_id`. The unique index decides, so a new
    /// prompt costs one plain INSERT and no lookup; only a repeat pays for the refusal.
    pub fn insert_message(&self, message: &NewMessage<'_>, seq: u64, now_ms: u64) -> Result<bool> {
        let inserted = self.sql.exec(
            "INSERT INTO messages (id, seq, author_id, author_user_id, author_name, content, source, client_request_id,
                                   attachments, selection_ids, status, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
            vec![
                s(message.id),
                int(seq),
                s(&message.author.id),
                s(&message.author.user_id),
                s(&message.author.name),
                s(message.content),
                s(message.source),
                opt(message.client_request_id),
                s(&serde_json::to_string(message.attachments)?),
                s(&serde_json::to_string(message.selection_ids)?),
                s(&rfc3339(now_ms)),
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(error)
                if error
                    .to_string()
                    .contains("UNIQUE constraint failed: messages.author_user_id") =>
            {
                return Ok(false)
            }
            Err(error) => return Err(error.into()),
        }
        if let Some(n) = self.waiting.get() {
            self.waiting.set(Some(n + 1));
        }
        Ok(true)
    }

    /// Prompts waiting; counted once, then kept up to date by the writes that change it
    /// (a COUNT over a long queue on every prompt would grow with the queue).
    pub fn count_waiting(&self) -> Result<usize> {
        if let Some(n) = self.waiting.get() {
            return Ok(n);
        }
        let n = self.number(
            "SELECT COUNT(*) AS n FROM messages WHERE status = 'queued'",
            vec![],
        )? as usize;
        self.waiting.set(Some(n));
        Ok(n)
    }

    /// 1-based place among waiting prompts; 0 once it has started or finished.
    pub fn position(&self, message: &MessageRow) -> Result<u32> {
        if message.status() != MessageStatus::Queued {
            return Ok(0);
        }
        let ahead = self.number(
            "SELECT COUNT(*) AS n FROM messages WHERE status = 'queued' AND seq < ?",
            vec![int(message.seq)],
        )?;
        Ok(ahead as u32 + 1)
    }

    /// The running prompt first, then the waiting ones in order.
    pub fn queue(&self) -> Result<Vec<MessageRow>> {
        self.rows(
            "SELECT * FROM messages WHERE status IN ('running', 'queued') ORDER BY status = 'queued', seq",
            vec![],
        )
    }

    pub fn finish_message(
        &self,
        id: &str,
        status: MessageStatus,
        error: Option<&str>,
        now_ms: u64,
    ) -> Result<()> {
        *self.running_id.borrow_mut() = None;
        self.waiting.set(None);
        self.run(
            "UPDATE messages SET status = ?, error = ?, finished_at = ? WHERE id = ?",
            vec![s(status.as_str()), opt(error), s(&rfc3339(now_ms)), s(id)],
        )
    }

    pub fn running(&self) -> Result<Option<MessageRow>> {
        self.first(
            "SELECT * FROM messages WHERE status = 'running' LIMIT 1",
            vec![],
        )
    }

    pub fn next_waiting(&self) -> Result<Option<MessageRow>> {
        self.first(
            "SELECT * FROM messages WHERE status = 'queued' ORDER BY seq LIMIT 1",
            vec![],
        )
    }

    pub fn running_id(&self) -> Result<Option<String>> {
        cached(&self.running_id, || Ok(self.running()?.map(|m| m.id)))
    }

    pub fn start_message(&self, id: &str, now_ms: u64) -> Result<()> {
        *self.running_id.borrow_mut() = None;
        self.waiting.set(None);
        self.run(
            "UPDATE messages SET status = 'running', started_at = ? WHERE id = ?",
            vec![s(&rfc3339(now_ms)), s(id)],
        )
    }

    /// Messages oldest first, `limit` after `after_seq`.
    pub fn messages(&self, after_seq: u64, limit: u32) -> Result<(Vec<MessageRow>, bool)> {
        self.page(
            "SELECT * FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![int(after_seq)],
            limit,
        )
    }
}
