//! The D1 index: users, API key hashes, sessions and who may enter them.
//! **API Boundary**: only this module writes SQL against D1.

use crate::error::{Error, Result};
use protocol::api::{Session, User};
use protocol::scope::Scopes;
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

#[derive(Deserialize)]
struct UserRow {
    id: String,
    name: String,
    email: String,
    github_login: Option<String>,
    scopes: String,
    disabled: i64,
    created_at: String,
}

impl UserRow {
    fn into_user(self) -> User {
        User {
            id: self.id,
            name: self.name,
            email: self.email,
            github_login: self.github_login,
            scopes: serde_json::from_str(&self.scopes).unwrap_or_default(),
            disabled: self.disabled != 0,
            created_at: self.created_at,
        }
    }
}

#[derive(Deserialize)]
struct SessionRow {
    id: String,
    repo: String,
    branch: String,
    title: String,
    owner_id: String,
    status: String,
    created_at: String,
    #[serde(default)]
    role: Option<String>,
}

impl SessionRow {
    fn into_session(self) -> (Session, Option<String>) {
        let session = Session {
            id: self.id,
            repo: self.repo,
            branch: self.branch,
            title: self.title,
            owner_id: self.owner_id,
            status: self.status,
            created_at: self.created_at,
        };
        (session, self.role)
    }
}

/// A session as seen by one member.
pub struct Membership {
    pub session: Session,
    pub role: String,
}

impl Membership {
    pub fn is_owner(&self) -> bool {
        self.role == "owner"
    }
}

fn text(value: &str) -> JsValue {
    JsValue::from_str(value)
}

fn opt_text(value: Option<&str>) -> JsValue {
    value.map(JsValue::from_str).unwrap_or(JsValue::NULL)
}

pub struct Index {
    db: D1Database,
}

impl Index {
    pub fn new(db: D1Database) -> Self {
        Index { db }
    }

    fn statement(&self, sql: &str, values: &[JsValue]) -> Result<D1PreparedStatement> {
        Ok(self.db.prepare(sql).bind(values)?)
    }

    async fn first<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: &[JsValue],
    ) -> Result<Option<T>> {
        Ok(self.statement(sql, values)?.first::<T>(None).await?)
    }

    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: &[JsValue],
    ) -> Result<Vec<T>> {
        Ok(self.statement(sql, values)?.all().await?.results::<T>()?)
    }

    async fn run(&self, sql: &str, values: &[JsValue]) -> Result<()> {
        let result = self.statement(sql, values)?.run().await?;
        match result.error() {
            Some(error) => Err(Error::Runtime(format!("d1: {error}"))),
            None => Ok(()),
        }
    }

    // --- users -------------------------------------------------------------------------------

    pub async fn insert_user(&self, user: &User, key_hash: &str) -> Result<()> {
        let scopes = serde_json::to_string(&user.scopes)?;
        let statements = vec![
            self.statement(
                "INSERT INTO users (id, name, email, github_login, scopes, disabled, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
                &[text(&user.id), text(&user.name), text(&user.email), opt_text(user.github_login.as_deref()), text(&scopes), text(&user.created_at)],
            )?,
            self.statement(
                "INSERT INTO api_keys (key_hash, user_id, created_at) VALUES (?, ?, ?)",
                &[text(key_hash), text(&user.id), text(&user.created_at)],
            )?,
        ];
        self.db.batch(statements).await?;
        Ok(())
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = self
            .all("SELECT * FROM users ORDER BY created_at, id", &[])
            .await?;
        Ok(rows.into_iter().map(UserRow::into_user).collect())
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        Ok(self
            .first::<UserRow>("SELECT * FROM users WHERE id = ?", &[text(id)])
            .await?
            .map(UserRow::into_user))
    }

    pub async fn user_by_key_hash(&self, key_hash: &str) -> Result<Option<User>> {
        let row = self
            .first::<UserRow>(
                "SELECT u.* FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
                &[text(key_hash)],
            )
            .await?;
        Ok(row.map(UserRow::into_user))
    }

    pub async fn update_user(
        &self,
        id: &str,
        scopes: Option<&Scopes>,
        disabled: Option<bool>,
    ) -> Result<()> {
        if let Some(scopes) = scopes {
            self.run(
                "UPDATE users SET scopes = ? WHERE id = ?",
                &[text(&serde_json::to_string(scopes)?), text(id)],
            )
            .await?;
        }
        if let Some(disabled) = disabled {
            self.run(
                "UPDATE users SET disabled = ? WHERE id = ?",
                &[JsValue::from(i32::from(disabled)), text(id)],
            )
            .await?;
        }
        Ok(())
    }

    // --- sessions ----------------------------------------------------------------------------

    pub async fn insert_session(&self, session: &Session) -> Result<()> {
        let statements = vec![
            self.statement(
                "INSERT INTO sessions (id, repo, branch, title, owner_id, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    text(&session.id),
                    text(&session.repo),
                    text(&session.branch),
                    text(&session.title),
                    text(&session.owner_id),
                    text(&session.status),
                    text(&session.created_at),
                    text(&session.created_at),
                ],
            )?,
            self.statement(
                "INSERT INTO session_members (session_id, user_id, role, added_at) VALUES (?, ?, 'owner', ?)",
                &[text(&session.id), text(&session.owner_id), text(&session.created_at)],
            )?,
        ];
        self.db.batch(statements).await?;
        Ok(())
    }

    /// The session if `user_id` is a member of it; `None` hides whether it exists.
    pub async fn membership(&self, session_id: &str, user_id: &str) -> Result<Option<Membership>> {
        let row = self
            .first::<SessionRow>(
                "SELECT s.*, m.role AS role FROM sessions s JOIN session_members m ON m.session_id = s.id
                 WHERE s.id = ? AND m.user_id = ?",
                &[text(session_id), text(user_id)],
            )
            .await?;
        Ok(row.map(|row| {
            let (session, role) = row.into_session();
            Membership {
                session,
                role: role.unwrap_or_else(|| "member".into()),
            }
        }))
    }

    /// Sessions the user owns or joined, newest first, after the `(created_at, id)` cursor.
    pub async fn sessions_of(
        &self,
        user_id: &str,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<Session>> {
        let (created_at, id) = after.unwrap_or_else(|| ("~".into(), String::new()));
        let rows: Vec<SessionRow> = self
            .all(
                "SELECT s.* FROM sessions s JOIN session_members m ON m.session_id = s.id
                 WHERE m.user_id = ? AND (s.created_at < ? OR (s.created_at = ? AND s.id < ?))
                 ORDER BY s.created_at DESC, s.id DESC LIMIT ?",
                &[
                    text(user_id),
                    text(&created_at),
                    text(&created_at),
                    text(&id),
                    JsValue::from(limit),
                ],
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.into_session().0).collect())
    }

    pub async fn add_member(&self, session_id: &str, user_id: &str, now: &str) -> Result<()> {
        self.run(
            "INSERT OR IGNORE INTO session_members (session_id, user_id, role, added_at) VALUES (?, ?, 'member', ?)",
            &[text(session_id), text(user_id), text(now)],
        )
        .await
    }

    pub async fn remove_member(&self, session_id: &str, user_id: &str) -> Result<()> {
        self.run(
            "DELETE FROM session_members WHERE session_id = ? AND user_id = ? AND role <> 'owner'",
            &[text(session_id), text(user_id)],
        )
        .await
    }

    pub async fn set_session_status(
        &self,
        session_id: &str,
        status: &str,
        now: &str,
    ) -> Result<()> {
        self.run(
            "UPDATE sessions SET status = ?, updated_at = ? WHERE id = ?",
            &[text(status), text(now), text(session_id)],
        )
        .await
    }
}
