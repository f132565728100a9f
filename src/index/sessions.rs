//! Sessions and their members.

use super::{text, Index, Membership, SessionRow};
use crate::error::Result;
use protocol::api::Session;
use serde::Deserialize;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;

/// A session in the caller's list: the session, and its latest pull request as
/// `{number, url, state, opened_by{user_id, name, github_login}}`, if it has one.
pub struct ListedSession {
    pub session: Session,
    pub pull_request: Option<Value>,
}

#[derive(Deserialize)]
struct ListedRow {
    id: String,
    repo: String,
    branch: String,
    title: String,
    owner_id: String,
    status: String,
    created_at: String,
    pr_number: Option<u64>,
    pr_url: Option<String>,
    pr_state: Option<String>,
    pr_opened_by: Option<String>,
    pr_opened_by_name: Option<String>,
    pr_opened_by_login: Option<String>,
}

impl ListedRow {
    fn into_listed(self) -> ListedSession {
        let pull_request = match (self.pr_number, self.pr_url, self.pr_state) {
            (Some(number), Some(url), Some(state)) => Some(json!({
                "number": number,
                "url": url,
                "state": state,
                "opened_by": {
                    "user_id": self.pr_opened_by,
                    "name": self.pr_opened_by_name,
                    "github_login": self.pr_opened_by_login,
                },
            })),
            _ => None,
        };
        let session = Session {
            id: self.id,
            repo: self.repo,
            branch: self.branch,
            title: self.title,
            owner_id: self.owner_id,
            status: self.status,
            created_at: self.created_at,
        };
        ListedSession {
            session,
            pull_request,
        }
    }
}

impl Index {
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

    /// Sessions the user owns or joined, newest first, after the `(created_at, id)` cursor,
    /// each with its latest pull request (`ListedSession`).
    pub async fn sessions_of(
        &self,
        user_id: &str,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<ListedSession>> {
        let (created_at, id) = after.unwrap_or_else(|| ("~".into(), String::new()));
        // The pull request a session opened last, with the name of the member who opened it.
        let rows: Vec<ListedRow> = self
            .all(
                "SELECT s.id, s.repo, s.branch, s.title, s.owner_id, s.status, s.created_at,
                        p.number AS pr_number, p.url AS pr_url, p.state AS pr_state,
                        p.opened_by AS pr_opened_by, u.name AS pr_opened_by_name,
                        u.github_login AS pr_opened_by_login
                 FROM sessions s JOIN session_members m ON m.session_id = s.id
                 LEFT JOIN pull_requests p ON p.rowid = (
                   SELECT p2.rowid FROM pull_requests p2 WHERE p2.session_id = s.id
                   ORDER BY p2.created_at DESC, p2.number DESC LIMIT 1)
                 LEFT JOIN users u ON u.id = p.opened_by
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
        Ok(rows.into_iter().map(ListedRow::into_listed).collect())
    }

    /// Every active session the user belongs to, owned or joined: the rooms to tell when the
    /// user's access changes.
    pub async fn active_sessions_of(&self, user_id: &str) -> Result<Vec<Session>> {
        let rows: Vec<SessionRow> = self
            .all(
                "SELECT s.* FROM sessions s JOIN session_members m ON m.session_id = s.id
                 WHERE m.user_id = ? AND s.status = 'active'",
                &[text(user_id)],
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
