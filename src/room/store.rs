//! The room's SQLite: schema migrations, the event log, messages (the prompt queue),
//! participants and artifacts. Every call is synchronous; writes made without an `.await`
//! between them commit together, which is what keeps "stored, then acknowledged" true.

use super::queue::MessageStatus;
use super::schema::{pending, MIGRATIONS_TABLE};
use crate::error::{Error, Result};
use crate::time::rfc3339;
use protocol::api::Session;
use protocol::event::{Author, Event, EventBody, ParticipantInfo, SandboxState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use worker::{SqlStorage, SqlStorageValue as V};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Participant {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub email: String,
}

impl Participant {
    pub fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            name: self.name.clone(),
        }
    }

    pub fn author(&self) -> Author {
        Author {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }
}

/// A stored message (prompt) as the API lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: String,
    pub seq: u64,
    pub author_id: String,
    pub author_user_id: String,
    pub author_name: String,
    pub content: String,
    pub source: String,
    pub client_request_id: Option<String>,
    pub attachments: String,
    pub selection_ids: String,
    pub status: String,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl MessageRow {
    pub fn status(&self) -> MessageStatus {
        MessageStatus::parse(&self.status).unwrap_or(MessageStatus::Failed)
    }

    /// When it started running, in ms (0 if it has not).
    pub fn started_ms(&self) -> u64 {
        self.started_at
            .as_deref()
            .and_then(crate::time::parse_rfc3339)
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "seq": self.seq,
            "content": self.content,
            "author": {"id": self.author_id, "user_id": self.author_user_id, "name": self.author_name},
            "source": self.source,
            "client_request_id": self.client_request_id,
            "attachments": serde_json::from_str::<Value>(&self.attachments).unwrap_or(Value::Array(vec![])),
            "selection_ids": serde_json::from_str::<Value>(&self.selection_ids).unwrap_or(Value::Array(vec![])),
            "status": self.status,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct ArtifactRow {
    pub id: String,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub message_id: Option<String>,
    pub author_id: Option<String>,
    pub data: String,
    pub created_at: String,
}

impl ArtifactRow {
    pub fn data(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// A sandbox the room asked for; the live one is the newest without `ended_at`.
#[derive(Clone, Debug, Deserialize)]
pub struct SandboxRow {
    pub id: String,
    pub token_hash: String,
    pub status: String,
    pub provider_id: Option<String>,
    pub agent: Option<String>,
    pub detail: Option<String>,
    pub restored_from: Option<String>,
    pub created_at: u64,
    pub heartbeat_at: Option<u64>,
    pub idle_since: u64,
    pub ended_at: Option<u64>,
}

impl SandboxRow {
    pub fn state(&self) -> SandboxState {
        SandboxState::parse(&self.status).unwrap_or(SandboxState::Failed)
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "status": self.status,
            "agent": self.agent,
            "provider_id": self.provider_id,
            "detail": self.detail,
            "restored_from": self.restored_from,
            "created_at": rfc3339(self.created_at),
            "last_heartbeat_at": self.heartbeat_at.map(rfc3339),
        })
    }
}

/// A new prompt, validated, ready to store.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub author: &'a Participant,
    pub content: &'a str,
    pub source: &'a str,
    pub client_request_id: Option<&'a str>,
    pub attachments: &'a [Value],
    pub selection_ids: &'a [String],
}

/// An event as appended: its number and the exact JSON every client receives.
pub struct StoredEvent {
    pub seq: u64,
    pub type_name: &'static str,
    pub json: String,
}

/// An event as read back: what replay and SSE send.
#[derive(Deserialize)]
pub struct EventRow {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub json: String,
}

/// The single value of a one-column query, named `n`.
#[derive(Deserialize)]
struct Scalar {
    n: Option<u64>,
}

pub struct Store {
    sql: SqlStorage,
    /// The last appended `seq`, cached so an append costs one INSERT.
    last_seq: Cell<Option<u64>>,
    /// The running prompt's id and the live sandbox's id, cached because every token frame
    /// asks; `None` until read, and reset by every write that changes them.
    running_id: RefCell<Option<Option<String>>>,
    live_sandbox_id: RefCell<Option<Option<String>>>,
    /// The session row and the number of waiting prompts, cached the same way.
    session: RefCell<Option<Session>>,
    waiting: Cell<Option<usize>>,
}

fn s(value: &str) -> V {
    V::String(value.to_owned())
}

fn int(value: u64) -> V {
    V::Integer(value as i64)
}

impl Store {
    pub fn new(sql: SqlStorage) -> Self {
        Store {
            sql,
            last_seq: Cell::new(None),
            running_id: RefCell::new(None),
            live_sandbox_id: RefCell::new(None),
            session: RefCell::new(None),
            waiting: Cell::new(None),
        }
    }

    fn rows<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<V>,
    ) -> Result<Vec<T>> {
        Ok(self.sql.exec(query, bindings)?.to_array::<T>()?)
    }

    fn first<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<V>,
    ) -> Result<Option<T>> {
        Ok(self.rows(query, bindings)?.into_iter().next())
    }

    /// At most `limit` rows and whether more follow; the query's last `?` is its LIMIT,
    /// bound here to `limit + 1`.
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        mut bindings: Vec<V>,
        limit: u32,
    ) -> Result<(Vec<T>, bool)> {
        bindings.push(int(u64::from(limit) + 1));
        let mut rows: Vec<T> = self.rows(query, bindings)?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok((rows, has_more))
    }

    /// A number from a query of the form `SELECT <expression> AS n …`; 0 when it is NULL.
    fn number(&self, query: &str, bindings: Vec<V>) -> Result<u64> {
        Ok(self
            .first::<Scalar>(query, bindings)?
            .and_then(|row| row.n)
            .unwrap_or(0))
    }

    fn run(&self, query: &str, bindings: Vec<V>) -> Result<()> {
        self.sql.exec(query, bindings)?;
        Ok(())
    }

    /// Applies the pending schema steps, each recorded with the time it ran.
    pub fn migrate(&self, now_ms: u64) -> Result<()> {
        self.run(MIGRATIONS_TABLE, vec![])?;
        let applied =
            self.number("SELECT MAX(version) AS n FROM _schema_migrations", vec![])? as u32;
        for migration in pending(applied) {
            self.sql.exec(migration.sql, None)?;
            self.run(
                "INSERT INTO _schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                vec![int(migration.version.into()), s(migration.description), s(&rfc3339(now_ms))],
            )?;
        }
        Ok(())
    }

    // --- session -----------------------------------------------------------------------------

    /// Read on every prompt (is it archived?), so kept in memory once read.
    pub fn session(&self) -> Result<Option<Session>> {
        if let Some(session) = self.session.borrow().as_ref() {
            return Ok(Some(session.clone()));
        }
        let session: Option<Session> = self.first("SELECT * FROM session LIMIT 1", vec![])?;
        *self.session.borrow_mut() = session.clone();
        Ok(session)
    }

    pub fn insert_session(&self, meta: &Session) -> Result<()> {
        *self.session.borrow_mut() = None;
        self.run(
            "INSERT OR IGNORE INTO session (id, repo, branch, title, owner_id, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![s(&meta.id), s(&meta.repo), s(&meta.branch), s(&meta.title), s(&meta.owner_id), s(&meta.status), s(&meta.created_at)],
        )
    }

    pub fn set_session_status(&self, status: &str) -> Result<()> {
        *self.session.borrow_mut() = None;
        self.run("UPDATE session SET status = ?", vec![s(status)])
    }

    // --- events ------------------------------------------------------------------------------

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
    pub fn events_before(&self, before: Option<u64>, limit: u32) -> Result<(Vec<String>, bool)> {
        let before = before.unwrap_or(u64::MAX >> 12);
        let (mut rows, has_more): (Vec<EventRow>, bool) = self.page(
            "SELECT seq, type, json FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?",
            vec![int(before)],
            limit,
        )?;
        rows.reverse();
        Ok((rows.into_iter().map(|r| r.json).collect(), has_more))
    }

    // --- participants ------------------------------------------------------------------------

    pub fn participant_by_user(&self, user_id: &str) -> Result<Option<Participant>> {
        self.first(
            "SELECT id, user_id, name, email FROM participants WHERE user_id = ?",
            vec![s(user_id)],
        )
    }

    pub fn insert_participant(&self, participant: &Participant, now_ms: u64) -> Result<()> {
        self.run(
            "INSERT INTO participants (id, user_id, name, email, joined_at) VALUES (?, ?, ?, ?, ?)",
            vec![
                s(&participant.id),
                s(&participant.user_id),
                s(&participant.name),
                s(&participant.email),
                s(&rfc3339(now_ms)),
            ],
        )
    }

    pub fn update_participant_name(&self, participant: &Participant) -> Result<()> {
        self.run(
            "UPDATE participants SET name = ?, email = ? WHERE id = ?",
            vec![
                s(&participant.name),
                s(&participant.email),
                s(&participant.id),
            ],
        )
    }

    pub fn participant(&self, id: &str) -> Result<Option<Participant>> {
        self.first(
            "SELECT id, user_id, name, email FROM participants WHERE id = ?",
            vec![s(id)],
        )
    }

    pub fn participants(&self) -> Result<Vec<Participant>> {
        self.rows(
            "SELECT id, user_id, name, email FROM participants ORDER BY joined_at, id",
            vec![],
        )
    }

    // --- messages and the queue --------------------------------------------------------------

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

    pub fn insert_message(&self, message: &NewMessage<'_>, seq: u64, now_ms: u64) -> Result<()> {
        self.run(
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
                message.client_request_id.map(s).unwrap_or(V::Null),
                s(&serde_json::to_string(message.attachments)?),
                s(&serde_json::to_string(message.selection_ids)?),
                s(&rfc3339(now_ms)),
            ],
        )?;
        if let Some(n) = self.waiting.get() {
            self.waiting.set(Some(n + 1));
        }
        Ok(())
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
            vec![
                s(status.as_str()),
                error.map(s).unwrap_or(V::Null),
                s(&rfc3339(now_ms)),
                s(id),
            ],
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

    // --- artifacts ---------------------------------------------------------------------------

    pub fn insert_artifact(&self, row: &ArtifactRow) -> Result<()> {
        self.run(
            "INSERT INTO artifacts (id, seq, type, message_id, author_id, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                s(&row.id),
                int(row.seq),
                s(&row.kind),
                row.message_id.as_deref().map(s).unwrap_or(V::Null),
                row.author_id.as_deref().map(s).unwrap_or(V::Null),
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
}

impl Store {
    // --- sandboxes ---------------------------------------------------------------------------

    pub fn live_sandbox(&self) -> Result<Option<SandboxRow>> {
        self.first(
            "SELECT * FROM sandboxes WHERE ended_at IS NULL ORDER BY created_at DESC LIMIT 1",
            vec![],
        )
    }

    pub fn live_sandbox_id(&self) -> Result<Option<String>> {
        cached(&self.live_sandbox_id, || {
            Ok(self.live_sandbox()?.map(|s| s.id))
        })
    }

    /// The newest sandbox, live or ended.
    pub fn latest_sandbox(&self) -> Result<Option<SandboxRow>> {
        self.first(
            "SELECT * FROM sandboxes ORDER BY created_at DESC LIMIT 1",
            vec![],
        )
    }

    pub fn sandbox_by_token_hash(&self, token_hash: &str) -> Result<Option<SandboxRow>> {
        self.first(
            "SELECT * FROM sandboxes WHERE token_hash = ?",
            vec![s(token_hash)],
        )
    }

    pub fn insert_sandbox(
        &self,
        id: &str,
        token_hash: &str,
        restored_from: Option<&str>,
        now_ms: u64,
    ) -> Result<()> {
        *self.live_sandbox_id.borrow_mut() = None;
        self.run(
            "INSERT INTO sandboxes (id, token_hash, status, restored_from, created_at, idle_since)
             VALUES (?, ?, 'spawning', ?, ?, ?)",
            vec![
                s(id),
                s(token_hash),
                restored_from.map(s).unwrap_or(V::Null),
                int(now_ms),
                int(now_ms),
            ],
        )
    }

    pub fn set_sandbox_status(
        &self,
        id: &str,
        status: SandboxState,
        detail: Option<&str>,
    ) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET status = ?, detail = ? WHERE id = ?",
            vec![s(status.as_str()), detail.map(s).unwrap_or(V::Null), s(id)],
        )
    }

    pub fn set_sandbox_provider_id(&self, id: &str, provider_id: &str) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET provider_id = ? WHERE id = ?",
            vec![s(provider_id), s(id)],
        )
    }

    /// The bridge said `ready`: it is alive now, and runs this agent.
    pub fn sandbox_connected(&self, id: &str, agent: &str, now_ms: u64) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET agent = ?, heartbeat_at = ? WHERE id = ?",
            vec![s(agent), int(now_ms), s(id)],
        )
    }

    pub fn sandbox_heartbeat(&self, id: &str, now_ms: u64) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET heartbeat_at = ? WHERE id = ?",
            vec![int(now_ms), s(id)],
        )
    }

    pub fn sandbox_idle_since(&self, id: &str, now_ms: u64) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET idle_since = ? WHERE id = ?",
            vec![int(now_ms), s(id)],
        )
    }

    pub fn end_sandbox(
        &self,
        id: &str,
        status: SandboxState,
        detail: Option<&str>,
        now_ms: u64,
    ) -> Result<()> {
        *self.live_sandbox_id.borrow_mut() = None;
        self.run(
            "UPDATE sandboxes SET status = ?, detail = ?, ended_at = ? WHERE id = ? AND ended_at IS NULL",
            vec![s(status.as_str()), detail.map(s).unwrap_or(V::Null), int(now_ms), s(id)],
        )
    }

    pub fn ack_seen(&self, sandbox_id: &str, ack_id: &str) -> Result<bool> {
        Ok(self.number(
            "SELECT COUNT(*) AS n FROM acks WHERE sandbox_id = ? AND ack_id = ?",
            vec![s(sandbox_id), s(ack_id)],
        )? > 0)
    }

    pub fn record_ack(&self, sandbox_id: &str, ack_id: &str, now_ms: u64) -> Result<()> {
        self.run(
            "INSERT OR IGNORE INTO acks (sandbox_id, ack_id, at) VALUES (?, ?, ?)",
            vec![s(sandbox_id), s(ack_id), int(now_ms)],
        )
    }

    // --- room settings -----------------------------------------------------------------------

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            value: String,
        }
        Ok(self
            .first::<Row>("SELECT value FROM room_meta WHERE key = ?", vec![s(key)])?
            .map(|row| row.value))
    }

    pub fn set_meta(&self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(value) => self.run(
                "INSERT INTO room_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![s(key), s(value)],
            ),
            None => self.run("DELETE FROM room_meta WHERE key = ?", vec![s(key)]),
        }
    }
}

/// The cached value, or `load`'s, which is then cached until a write resets the cell.
fn cached(
    cell: &RefCell<Option<Option<String>>>,
    load: impl FnOnce() -> Result<Option<String>>,
) -> Result<Option<String>> {
    if let Some(value) = cell.borrow().as_ref() {
        return Ok(value.clone());
    }
    let value = load()?;
    *cell.borrow_mut() = Some(value.clone());
    Ok(value)
}

/// Turns a missing row into the protocol's `not_found`.
pub fn found<T>(row: Option<T>, what: &str) -> Result<T> {
    row.ok_or_else(|| Error::Api(protocol::ApiError::not_found(what)))
}
