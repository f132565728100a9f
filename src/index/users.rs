//! Users and the hashes of their API keys; users created by GitHub sign-in are linked by
//! their GitHub id.

use super::{opt_text, text, Index, UserRow};
use crate::error::Result;
use protocol::api::User;
use protocol::scope::Scopes;
use wasm_bindgen::JsValue;

impl Index {
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
}
