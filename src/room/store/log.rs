//! The event log (every event with its `seq`, as the exact JSON clients receive), the
//! artifacts table beside it, and what a pull request is written from.

use super::{int, opt, s, ArtifactRow, EventRow, Store, StoredEvent};
use crate::error::Result;
use crate::time::rfc3339;
use protocol::event::{Event, EventBody};

/// What one page of events (a replay, a `history` frame, `GET …/events`) holds at most,
/// about: a few large events must not fill a room's memory on every connect.
pub const PAGE_BYTES: usize = 1024 * 1024;

/// An event's seq and the length of its JSON.
#[derive(serde::Deserialize)]
struct Size {
    seq: u64,
    n: u64,
}

/// How many of `sizes` (in page order) fit in `budget` bytes; at least one, so a single large
/// event still goes.
fn fitting<'a>(sizes: impl Iterator<Item = &'a Size>, budget: usize) -> usize {
    let mut total = 0usize;
    let mut n = 0;
    for size in sizes {
        total += size.n as usize;
        if n > 0 && total > budget {
            break;
        }
        n += 1;
    }
    n
}

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

    /// The answer text of a prompt as stored in its `token` events after `after_seq` (the
    /// prompt's own): where it ends and how many bytes it holds. Read once per prompt after
    /// the room wakes; from then on the room keeps count in memory. Events stored before
    /// offsets existed count as following each other.
    pub fn stored_text(&self, message_id: &str, after_seq: u64) -> Result<(u64, u64)> {
        #[derive(serde::Deserialize)]
        struct Text {
            bytes: Option<u64>,
            end: Option<u64>,
        }
        let text: Option<Text> = self.first(
            "SELECT SUM(length(CAST(json_extract(json, '$.delta') AS BLOB))) AS bytes,
                    MAX(COALESCE(json_extract(json, '$.offset'), 0)
                        + length(CAST(json_extract(json, '$.delta') AS BLOB))) AS end
             FROM events WHERE seq > ? AND type = 'token' AND json_extract(json, '$.message_id') = ?",
            vec![int(after_seq), s(message_id)],
        )?;
        let bytes = text.as_ref().and_then(|t| t.bytes).unwrap_or(0);
        let end = text.and_then(|t| t.end).unwrap_or(0).max(bytes);
        Ok((end, bytes))
    }

    /// Events with `seq > since`, oldest first, at most `limit` and about `budget` bytes (at
    /// least one); and whether more follow. The sizes are read first, so a page of large
    /// events is never held in memory whole.
    pub fn events_after_within(
        &self,
        since: u64,
        limit: u32,
        budget: usize,
    ) -> Result<(Vec<EventRow>, bool)> {
        let sizes: Vec<Size> = self.rows(
            "SELECT seq, length(json) AS n FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![int(since), int(u64::from(limit) + 1)],
        )?;
        let limit = limit as usize;
        let fit = fitting(sizes.iter().take(limit), budget);
        let has_more = sizes.len() > fit;
        let Some(last) = fit.checked_sub(1).map(|i| sizes[i].seq) else {
            return Ok((Vec::new(), has_more));
        };
        let rows = self.rows(
            "SELECT seq, type, json FROM events WHERE seq > ? AND seq <= ? ORDER BY seq",
            vec![int(since), int(last)],
        )?;
        Ok((rows, has_more))
    }

    /// The first seq after `since` from which the newest events take about `budget` bytes (at
    /// least the newest one): where a join's replay starts.
    pub fn replay_start(&self, since: u64, budget: usize) -> Result<u64> {
        let mut before = u64::MAX >> 12;
        let mut total = 0usize;
        loop {
            let sizes: Vec<Size> = self.rows(
                "SELECT seq, length(json) AS n FROM events WHERE seq > ? AND seq < ? ORDER BY seq DESC LIMIT 500",
                vec![int(since), int(before)],
            )?;
            for size in &sizes {
                total += size.n as usize;
                if total > budget && before != u64::MAX >> 12 {
                    return Ok(before);
                }
                before = size.seq;
            }
            if sizes.len() < 500 {
                return Ok(since + 1);
            }
        }
    }

    /// Calls `each` with every event after `since`, oldest first, reading a page at a time.
    /// Synchronous, so nothing can be appended while it runs.
    pub fn each_event_after(&self, mut since: u64, mut each: impl FnMut(&EventRow)) -> Result<()> {
        loop {
            let (events, has_more) = self.events_after_within(since, 1000, PAGE_BYTES)?;
            for event in &events {
                each(event);
                since = event.seq;
            }
            if !has_more {
                return Ok(());
            }
        }
    }

    /// The `limit` events just before `before` (all the latest when `None`), oldest first, at
    /// most about `budget` bytes (at least one); and whether more lie below.
    pub fn events_before(
        &self,
        before: Option<u64>,
        limit: u32,
        budget: usize,
    ) -> Result<(Vec<EventRow>, bool)> {
        let before = before.unwrap_or(u64::MAX >> 12);
        let sizes: Vec<Size> = self.rows(
            "SELECT seq, length(json) AS n FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?",
            vec![int(before), int(u64::from(limit) + 1)],
        )?;
        let fit = fitting(sizes.iter().take(limit as usize), budget);
        let has_more = sizes.len() > fit;
        let Some(first) = fit.checked_sub(1).map(|i| sizes[i].seq) else {
            return Ok((Vec::new(), has_more));
        };
        self.rows(
            "SELECT seq, type, json FROM events WHERE seq >= ? AND seq < ? ORDER BY seq",
            vec![int(first), int(before)],
        )
        .map(|rows| (rows, has_more))
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

    /// Artifacts after `after_seq`, at most `limit` and about `budget` bytes of data (at least
    /// one: a selection is up to 1 MiB, a kept tool output more).
    pub fn artifacts(
        &self,
        after_seq: u64,
        limit: u32,
        budget: usize,
    ) -> Result<(Vec<ArtifactRow>, bool)> {
        let sizes: Vec<Size> = self.rows(
            "SELECT seq, length(data) AS n FROM artifacts WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![int(after_seq), int(u64::from(limit) + 1)],
        )?;
        let fit = fitting(sizes.iter().take(limit as usize), budget);
        let has_more = sizes.len() > fit;
        let Some(last) = fit.checked_sub(1).map(|i| sizes[i].seq) else {
            return Ok((Vec::new(), has_more));
        };
        let rows = self.rows(
            "SELECT * FROM artifacts WHERE seq > ? AND seq <= ? ORDER BY seq",
            vec![int(after_seq), int(last)],
        )?;
        Ok((rows, has_more))
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
