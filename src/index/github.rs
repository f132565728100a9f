//! What GitHub needs kept in D1: users linked by their GitHub id; their tokens, which arrive
//! here already encrypted (this module sees nonces and ciphertexts, never a token), with the
//! version and lease that make a refresh happen once; webhook deliveries already handled; and
//! pull requests with their outcome, for metrics.

use super::{number, opt_number, opt_text, text, Index, UserRow};
use crate::error::Result;
use protocol::api::User;
use serde::Deserialize;

/// Webhook deliveries are remembered this long (GitHub redelivers within days, not weeks).
const DELIVERY_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// A user's GitHub tokens as stored: base64url nonces and ciphertexts, times in ms.
#[derive(Deserialize)]
pub struct StoredToken {
    pub key_id: String,
    pub access_nonce: String,
    pub access_ciphertext: String,
    pub access_expires_at: Option<u64>,
    pub refresh_nonce: Option<String>,
    pub refresh_ciphertext: Option<String>,
    pub refresh_expires_at: Option<u64>,
    pub version: u64,
    pub refreshing_until: Option<u64>,
}

/// A token pair to store, encrypted.
pub struct TokenWrite {
    pub key_id: String,
    pub access: (String, String),
    pub access_expires_at: Option<u64>,
    pub refresh: Option<(String, String)>,
    pub refresh_expires_at: Option<u64>,
}

impl Index {
    /// The user with this GitHub id; else one with this login or email not yet linked.
    pub async fn user_for_github(
        &self,
        github_id: u64,
        login: &str,
        email: Option<&str>,
    ) -> Result<Option<User>> {
        let row: Option<UserRow> = self
            .first(
                "SELECT * FROM users WHERE github_id = ?1
                 OR (github_id IS NULL AND (lower(github_login) = lower(?2) OR lower(email) = lower(?3)))
                 ORDER BY github_id IS NULL, created_at LIMIT 1",
                &[number(github_id), text(login), opt_text(email)],
            )
            .await?;
        Ok(row.map(UserRow::into_user))
    }

    /// Links a user to their GitHub account (id and current login).
    pub async fn link_github(&self, user_id: &str, github_id: u64, login: &str) -> Result<()> {
        self.run(
            "UPDATE users SET github_id = ?, github_login = ? WHERE id = ?",
            &[number(github_id), text(login), text(user_id)],
        )
        .await
    }

    /// A user created by signing in with GitHub: no API key.
    pub async fn insert_github_user(&self, user: &User, github_id: u64) -> Result<()> {
        self.run(
            "INSERT INTO users (id, name, email, github_login, github_id, scopes, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            &[
                text(&user.id),
                text(&user.name),
                text(&user.email),
                opt_text(user.github_login.as_deref()),
                number(github_id),
                text(&serde_json::to_string(&user.scopes)?),
                text(&user.created_at),
            ],
        )
        .await
    }

    // --- tokens ------------------------------------------------------------------------------

    pub async fn github_token(&self, user_id: &str) -> Result<Option<StoredToken>> {
        self.first(
            "SELECT * FROM github_tokens WHERE user_id = ?",
            &[text(user_id)],
        )
        .await
    }

    fn token_values(user_id: &str, write: &TokenWrite, now_ms: u64) -> Vec<wasm_bindgen::JsValue> {
        let refresh = write.refresh.as_ref();
        vec![
            text(user_id),
            text(&write.key_id),
            text(&write.access.0),
            text(&write.access.1),
            opt_number(write.access_expires_at),
            opt_text(refresh.map(|r| r.0.as_str())),
            opt_text(refresh.map(|r| r.1.as_str())),
            opt_number(write.refresh_expires_at),
            number(now_ms),
        ]
    }

    /// Stores a pair from a sign-in, replacing any earlier one (and its lease).
    pub async fn put_github_token(
        &self,
        user_id: &str,
        write: &TokenWrite,
        now_ms: u64,
    ) -> Result<()> {
        self.run(
            "INSERT INTO github_tokens (user_id, key_id, access_nonce, access_ciphertext, access_expires_at,
                refresh_nonce, refresh_ciphertext, refresh_expires_at, version, refreshing_until, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, NULL, ?9)
             ON CONFLICT(user_id) DO UPDATE SET key_id = ?2, access_nonce = ?3, access_ciphertext = ?4,
                access_expires_at = ?5, refresh_nonce = ?6, refresh_ciphertext = ?7, refresh_expires_at = ?8,
                version = version + 1, refreshing_until = NULL, updated_at = ?9",
            &Self::token_values(user_id, write, now_ms),
        )
        .await
    }

    /// Compare-and-swap: the lease to refresh goes to whoever still sees `version` with no live
    /// lease; `true` for the one caller that got it.
    pub async fn take_refresh_lease(
        &self,
        user_id: &str,
        version: u64,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool> {
        let changed = self
            .changes(
                "UPDATE github_tokens SET refreshing_until = ? WHERE user_id = ? AND version = ?
                 AND (refreshing_until IS NULL OR refreshing_until < ?) RETURNING version",
                &[
                    number(until_ms),
                    text(user_id),
                    number(version),
                    number(now_ms),
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    /// The refreshed pair, written only over the `version` the lease was taken on.
    pub async fn put_refreshed_token(
        &self,
        user_id: &str,
        version: u64,
        write: &TokenWrite,
        now_ms: u64,
    ) -> Result<bool> {
        let mut values = Self::token_values(user_id, write, now_ms);
        values.push(number(version));
        let changed = self
            .changes(
                "UPDATE github_tokens SET key_id = ?2, access_nonce = ?3, access_ciphertext = ?4,
                    access_expires_at = ?5, refresh_nonce = ?6, refresh_ciphertext = ?7,
                    refresh_expires_at = ?8, version = version + 1, refreshing_until = NULL, updated_at = ?9
                 WHERE user_id = ?1 AND version = ?10 RETURNING version",
                &values,
            )
            .await?;
        Ok(changed == 1)
    }

    pub async fn release_refresh_lease(&self, user_id: &str, version: u64) -> Result<()> {
        self.run(
            "UPDATE github_tokens SET refreshing_until = NULL WHERE user_id = ? AND version = ?",
            &[text(user_id), number(version)],
        )
        .await
    }

    /// Forgets a user's tokens (GitHub refused them): they sign in with GitHub again.
    pub async fn delete_github_token(&self, user_id: &str) -> Result<()> {
        self.run(
            "DELETE FROM github_tokens WHERE user_id = ?",
            &[text(user_id)],
        )
        .await
    }

    // --- webhooks and pull requests ----------------------------------------------------------

    /// Records a delivery; `false` when it was recorded before (a replay). Old ones are pruned.
    pub async fn record_delivery(
        &self,
        delivery_id: &str,
        event: &str,
        now_ms: u64,
    ) -> Result<bool> {
        self.run(
            "DELETE FROM webhook_deliveries WHERE received_at < ?",
            &[number(now_ms.saturating_sub(DELIVERY_TTL_MS))],
        )
        .await?;
        let changed = self
            .changes(
                "INSERT OR IGNORE INTO webhook_deliveries (delivery_id, event, received_at) VALUES (?, ?, ?) RETURNING delivery_id",
                &[text(delivery_id), text(event), number(now_ms)],
            )
            .await?;
        Ok(changed == 1)
    }

    /// Forgets a delivery whose handling failed, so GitHub's redelivery is handled.
    pub async fn forget_delivery(&self, delivery_id: &str) -> Result<()> {
        self.run(
            "DELETE FROM webhook_deliveries WHERE delivery_id = ?",
            &[text(delivery_id)],
        )
        .await
    }

    /// A pull request opened (or found open) for a session; `pr` is a `pr` artifact's data.
    pub async fn record_pull_request(
        &self,
        session_id: &str,
        repo: &str,
        pr: &serde_json::Value,
        now: &str,
    ) -> Result<()> {
        let field = |name: &str| text(pr[name].as_str().unwrap_or_default());
        self.run(
            "INSERT INTO pull_requests (repo, number, session_id, url, state, head, base, opened_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(repo, number) DO UPDATE SET state = ?5",
            &[
                text(&repo.to_ascii_lowercase()),
                number(pr["number"].as_u64().unwrap_or(0)),
                text(session_id),
                field("url"),
                field("state"),
                field("head"),
                field("base"),
                text(pr["opened_by"]["user_id"].as_str().unwrap_or_default()),
                text(now),
            ],
        )
        .await
    }

    /// What became of a pull request (merged, closed, reopened), from a webhook.
    pub async fn pull_request_outcome(
        &self,
        repo: &str,
        number_: u64,
        state: &str,
        merged_at: Option<&str>,
        closed_at: Option<&str>,
    ) -> Result<()> {
        self.run(
            "UPDATE pull_requests SET state = ?, merged_at = ?, closed_at = ? WHERE repo = ? AND number = ?",
            &[
                text(state),
                opt_text(merged_at),
                opt_text(closed_at),
                text(&repo.to_ascii_lowercase()),
                number(number_),
            ],
        )
        .await
    }
}
