//! The D1 index: users and API key hashes ([`users`]), sessions and who may enter them
//! ([`sessions`]), and what GitHub needs kept ([`github`]: users' encrypted tokens, webhook
//! deliveries, pull requests), what Slack needs kept ([`slack`]: handled event ids, each
//! thread's session), metrics ([`metrics`]: finished prompts, and the queries of
//! `GET /v1/metrics`), repository images ([`images`]: builds and head checks), and the warm pool
//! ([`warm`]).
//! **API Boundary**: only this module writes SQL against D1.

mod github;
mod images;
mod metrics;
mod sessions;
pub mod slack;
mod users;
mod warm;

pub use github::{StoredToken, TokenWrite};
pub use images::{ImageRow, NewBuild};
pub use metrics::PromptRecord;
pub use sessions::ListedSession;

use crate::error::{Error, Result};
use protocol::api::{Session, User};
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

/// A whole number as D1 binds it: a JavaScript number (a `u64` would become a BigInt).
fn number(value: u64) -> JsValue {
    JsValue::from_f64(value as f64)
}

fn opt_number(value: Option<u64>) -> JsValue {
    value.map(number).unwrap_or(JsValue::NULL)
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

    /// Runs a write ending in `RETURNING …` and says how many rows it changed (one row comes
    /// back for each), without decoding them.
    async fn changes(&self, sql: &str, values: &[JsValue]) -> Result<usize> {
        Ok(self.statement(sql, values)?.raw_js_value().await?.len())
    }
}
