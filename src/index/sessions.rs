//! Sessions and their members.

use super::{text, Index, Membership, SessionRow};
use crate::error::Result;
use protocol::api::Session;
use wasm_bindgen::JsValue;

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
