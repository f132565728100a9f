//! The room's SQLite: schema migrations, the session row, participants and the lifecycle
//! record here; the event log and artifacts in [`log`], the prompt queue in [`queue`], and
//! sandboxes and acknowledged bridge frames in [`sandboxes`], prompts from Slack in [`slack`],
//! what a new sandbox's transcript is read from in [`transcript`].
//!
//! Every call is synchronous; writes made without an `.await` between them commit together,
//! which is what keeps "stored, then acknowledged" true.

mod log;
mod queue;

pub use log::PAGE_BYTES;
pub mod rows;
mod sandboxes;
mod slack;
mod transcript;

pub use rows::{
    ArtifactRow, EventRow, MessageRow, NewMessage, Participant, SandboxRow, StoredEvent,
};
pub use slack::{SlackPost, SlackPromptRow};

use super::lifecycle::RoomMeta;
use super::schema::{pending, MIGRATIONS_TABLE};
use crate::error::{Error, Result};
use crate::time::rfc3339;
use protocol::api::Session;
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use worker::{SqlStorage, SqlStorageValue as V};

/// The key of the lifecycle record in `room_meta`.
const LIFECYCLE_KEY: &str = "lifecycle";
/// The key of the log's epoch in `room_meta`.
const EPOCH_KEY: &str = "epoch";

/// The single value of a one-column query, named `n`.
#[derive(Deserialize)]
struct Scalar {
    n: Option<u64>,
}

/// The text of a one-column query, named `value`.
#[derive(Deserialize)]
struct Text {
    value: Option<String>,
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
    /// Participants by id, as read: every frame of a socket names its participant.
    participants: RefCell<HashMap<String, Participant>>,
    /// The log's epoch, once read.
    epoch: RefCell<Option<String>>,
}

fn s(value: &str) -> V {
    V::String(value.to_owned())
}

fn int(value: u64) -> V {
    V::Integer(value as i64)
}

fn opt(value: Option<&str>) -> V {
    value.map(s).unwrap_or(V::Null)
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
            participants: RefCell::new(HashMap::new()),
            epoch: RefCell::new(None),
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

    /// The session, or `not_found` for a room that was never initialised.
    pub fn existing_session(&self) -> Result<Session> {
        found(self.session()?, "session")
    }

    /// Whether the session is archived, without copying the session row.
    pub fn is_archived(&self) -> Result<bool> {
        if let Some(session) = self.session.borrow().as_ref() {
            return Ok(session.is_archived());
        }
        Ok(self.existing_session()?.is_archived())
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

    // --- participants ------------------------------------------------------------------------

    pub fn participant_by_user(&self, user_id: &str) -> Result<Option<Participant>> {
        self.first(
            "SELECT id, user_id, name, email FROM participants WHERE user_id = ?",
            vec![s(user_id)],
        )
    }

    pub fn insert_participant(&self, participant: &Participant, now_ms: u64) -> Result<()> {
        self.remember(participant);
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
        self.remember(participant);
        self.run(
            "UPDATE participants SET name = ?, email = ? WHERE id = ?",
            vec![
                s(&participant.name),
                s(&participant.email),
                s(&participant.id),
            ],
        )
    }

    /// A participant by id, from memory once read.
    pub fn participant(&self, id: &str) -> Result<Option<Participant>> {
        if let Some(participant) = self.participants.borrow().get(id) {
            return Ok(Some(participant.clone()));
        }
        let participant: Option<Participant> = self.first(
            "SELECT id, user_id, name, email FROM participants WHERE id = ?",
            vec![s(id)],
        )?;
        if let Some(participant) = &participant {
            self.remember(participant);
        }
        Ok(participant)
    }

    fn remember(&self, participant: &Participant) {
        self.participants
            .borrow_mut()
            .insert(participant.id.clone(), participant.clone());
    }

    pub fn participants(&self) -> Result<Vec<Participant>> {
        self.rows(
            "SELECT id, user_id, name, email FROM participants ORDER BY joined_at, id",
            vec![],
        )
    }

    // --- the lifecycle record ----------------------------------------------------------------

    /// The room's lifecycle bookkeeping (snapshots, retries, pending provider work).
    pub fn lifecycle(&self) -> Result<RoomMeta> {
        let row: Option<Text> = self.first(
            "SELECT value FROM room_meta WHERE key = ?",
            vec![s(LIFECYCLE_KEY)],
        )?;
        Ok(row
            .and_then(|row| serde_json::from_str(&row.value?).ok())
            .unwrap_or_default())
    }

    /// The log's epoch: random, written with the first need of it and never changed, so a
    /// client can tell this log from another that reuses its seqs (storage reset).
    pub fn epoch(&self) -> Result<String> {
        if let Some(epoch) = self.epoch.borrow().as_ref() {
            return Ok(epoch.clone());
        }
        let read = |store: &Self| -> Result<Option<String>> {
            let row: Option<Text> = store.first(
                "SELECT value FROM room_meta WHERE key = ?",
                vec![s(EPOCH_KEY)],
            )?;
            Ok(row.and_then(|row| row.value))
        };
        let epoch = match read(self)? {
            Some(epoch) => epoch,
            None => {
                let epoch = crate::ids::new_id("ep")?;
                self.run(
                    "INSERT OR IGNORE INTO room_meta (key, value) VALUES (?, ?)",
                    vec![s(EPOCH_KEY), s(&epoch)],
                )?;
                read(self)?.unwrap_or(epoch)
            }
        };
        *self.epoch.borrow_mut() = Some(epoch.clone());
        Ok(epoch)
    }

    /// The texts of a one-column query whose column is named `value`.
    fn texts(&self, query: &str) -> Result<Vec<String>> {
        let rows: Vec<Text> = self.rows(query, vec![])?;
        Ok(rows.into_iter().filter_map(|r| r.value).collect())
    }

    /// Changes the lifecycle record, writing it only when the change changed something.
    pub fn update_lifecycle(&self, change: impl FnOnce(&mut RoomMeta)) -> Result<RoomMeta> {
        let before = self.lifecycle()?;
        let mut meta = before.clone();
        change(&mut meta);
        if meta != before {
            self.run(
                "INSERT INTO room_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![s(LIFECYCLE_KEY), s(&serde_json::to_string(&meta)?)],
            )?;
        }
        Ok(meta)
    }

    /// Records a connect ticket's nonce until `expires_ms`; false when it was used before, so
    /// a ticket opens one socket or stream. Nonces of expired tickets are forgotten here.
    pub fn use_ticket(&self, nonce: &str, expires_ms: u64, now_ms: u64) -> Result<bool> {
        self.sql.exec(
            "DELETE FROM room_meta WHERE key LIKE 'ticket:%' AND CAST(value AS INTEGER) <= ?",
            vec![int(now_ms)],
        )?;
        let key = format!("ticket:{nonce}");
        let seen = self
            .first::<Text>("SELECT value FROM room_meta WHERE key = ?", vec![s(&key)])?
            .is_some();
        if seen {
            return Ok(false);
        }
        self.sql.exec(
            "INSERT INTO room_meta (key, value) VALUES (?, ?)",
            vec![s(&key), s(&expires_ms.to_string())],
        )?;
        Ok(true)
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
