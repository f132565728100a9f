//! The event log (every event with its `seq`, as the exact JSON clients receive), the
//! artifacts table beside it, and what a pull request is written from.

use super::{int, opt, s, ArtifactRow, EventRow, Store, StoredEvent};
use crate::error::Result;
use crate::time::rfc3339;
use protocol::event::{Event, EventBody};

impl Store {
    pub fn last_seq(&self) -> Result<u64> {
        if let Some(seq) = self.last_seq.get() {
            return Ok(seq);
        }
        let seq = self.number("SELECT MAX(seq) AS n FROM events", vec![])?;
        self.last_seq.set(Some(seq));
        Ok(seq)
    }

    /// Appends an event with the next `seq`. The returned JSON is what every client receives.
    pub fn append(&self, body: EventBody, now_ms: u64) -> Result<StoredEvent> {
        let seq = self.last_seq()? + 1;
        let type_name = body.type_name();
        let json = Event {
            seq,
            ts: rfc3339(now_ms),
            body,
        }
        .to_json();
        self.run(
            "INSERT INTO events (seq, type, json) VALUES (?, ?, ?)",
            vec![int(seq), s(type_name), s(&json)],
        )?;
        self.last_seq.set(Some(seq));
        Ok(StoredEvent {
            seq,
            type_name,
            json,
        })
    }

    /// Events with `seq > since`, oldest first, at most `limit`; and whether more follow.
    pub fn events_after(&self, since: u64, limit: u32) -> Result<(Vec<EventRow>, bool)> {
        self.page(
            "SELECT seq, type, json FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![int(since)],
            limit,
        )
    }

    /// Calls `each` with every event after `since`, oldest first, reading a page at a time.
    /// Synchronous, so nothing can be appended while it runs.
    pub fn each_event_after(&self, mut since: u64, mut each: impl FnMut(&EventRow)) -> Result<()> {
        loop {
            let (events, has_more) = self.events_after(since, 1000)?;
            for event in &events {
                each(event);
                since = event.seq;
            }
            if !has_more {
                return Ok(());
            }
        }
    }

    /// The `limit` events just before `before` (all the latest when `None`), oldest first.
    pub fn events_before(&self, before: Option<u64>, limit: u32) -> Result<(Vec<EventRow>, bool)> {
        let before = before.unwrap_or(u64::MAX >> 12);
        let (mut rows, has_more): (Vec<EventRow>, bool) = self.page(
            "SELECT seq, type, json FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?",
            vec![int(before)],
            limit,
        )?;
        rows.reverse();
        Ok((rows, has_more))
    }

    // --- artifacts ---------------------------------------------------------------------------

    pub fn insert_artifact(&self, row: &ArtifactRow) -> Result<()> {
        self.run(
            "INSERT INTO artifacts (id, seq, type, message_id, author_id, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                s(&row.id),
                int(row.seq),
                s(&row.kind),
                opt(row.message_id.as_deref()),
                opt(row.author_id.as_deref()),
                s(&row.data),
                s(&row.created_at),
            ],
        )
    }

    pub fn artifacts(&self, after_seq: u64, limit: u32) -> Result<(Vec<ArtifactRow>, bool)> {
        self.page(
            "SELECT * FROM artifacts WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![int(after_seq)],
            limit,
        )
    }

    pub fn artifact(&self, id: &str) -> Result<Option<ArtifactRow>> {
        self.first("SELECT * FROM artifacts WHERE id = ?", vec![s(id)])
    }

    /// The newest artifact of a type (the session's one `branch`, its latest `pr`).
    pub fn latest_artifact(&self, kind: &str) -> Result<Option<ArtifactRow>> {
        self.first(
            "SELECT * FROM artifacts WHERE type = ? ORDER BY seq DESC LIMIT 1",
            vec![s(kind)],
        )
    }

    /// The `pr` artifact of pull request `number`.
    pub fn pull_request_artifact(&self, number: u64) -> Result<Option<ArtifactRow>> {
        self.first(
            "SELECT * FROM artifacts WHERE type = 'pr' AND json_extract(data, '$.number') = ? ORDER BY seq DESC LIMIT 1",
            vec![int(number)],
        )
    }

    /// New data for an artifact; its `seq` becomes that of the `artifact_updated` event, so
    /// `GET …/artifacts?after_seq=` finds what changed.
    pub fn update_artifact(&self, id: &str, seq: u64, data: &str) -> Result<()> {
        self.run(
            "UPDATE artifacts SET seq = ?, data = ? WHERE id = ?",
            vec![int(seq), s(data), s(id)],
        )
    }

    /// Who prompted, in the order they first did.
    pub fn prompt_authors(&self) -> Result<Vec<String>> {
        self.texts("SELECT author_name AS value FROM messages GROUP BY author_user_id ORDER BY MIN(seq) LIMIT 20")
    }

    /// The paths the agent edited (its `file_edit` events), each once.
    pub fn edited_paths(&self) -> Result<Vec<String>> {
        self.texts("SELECT DISTINCT json_extract(json, '$.path') AS value FROM events WHERE type = 'file_edit' LIMIT 100")
    }

    /// When the first `token` event of a prompt was stored (its `ts`), looking from the
    /// prompt's own `seq` on: one prompt runs at a time, so the walk is short.
    pub fn first_token_ts(&self, message_id: &str, after_seq: u64) -> Result<Option<String>> {
        let row: Option<super::Text> = self.first(
            "SELECT json_extract(json, '$.ts') AS value FROM events
             WHERE seq > ? AND type = 'token' AND json_extract(json, '$.message_id') = ? ORDER BY seq LIMIT 1",
            vec![int(after_seq), s(message_id)],
        )?;
        Ok(row.and_then(|row| row.value))
    }
}
