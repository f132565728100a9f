//! The warm pool in D1 (`warm_sandboxes`, migration 0006): rows the cron step starts and
//! retires, and the claim a room makes, one `UPDATE … RETURNING` over the oldest fresh warm
//! row of a repository, branch and image, so no two rooms get the same sandbox.

use super::{number, opt_text, text, Index};
use crate::error::Result;
use crate::warm::{PoolRow, WarmStatus};
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    id: String,
    repo: String,
    branch: String,
    image_id: Option<String>,
    status: String,
    created_at: u64,
    deleted: u64,
}

impl Row {
    fn into_pool_row(self) -> Option<PoolRow> {
        Some(PoolRow {
            status: WarmStatus::parse(&self.status)?,
            id: self.id,
            repo: self.repo,
            branch: self.branch,
            image_id: self.image_id,
            created_at: self.created_at,
            deleted: self.deleted != 0,
        })
    }
}

#[derive(Deserialize)]
struct ClaimedRow {
    id: String,
}

/// Claimed and deleted rows are kept this long for `GET` and debugging, then purged.
const KEPT_MS: u64 = 24 * 3600 * 1000;

impl Index {
    /// The rows the cron step looks at: starting and warm ones, and retired ones whose
    /// sandbox the provider has not yet been told to delete; of `repo` only, when given.
    pub async fn warm_pool(&self, repo: Option<&str>) -> Result<Vec<PoolRow>> {
        let rows: Vec<Row> = self
            .all(
                "SELECT id, repo, branch, image_id, status, created_at, deleted FROM warm_sandboxes
                 WHERE (status IN ('starting', 'warm') OR (status = 'retired' AND deleted = 0))
                   AND (?1 IS NULL OR repo = ?1)",
                &[opt_text(repo.map(str::to_ascii_lowercase).as_deref())],
            )
            .await?;
        Ok(rows.into_iter().filter_map(Row::into_pool_row).collect())
    }

    pub async fn insert_warm(
        &self,
        id: &str,
        repo: &str,
        branch: &str,
        image_id: Option<&str>,
        now_ms: u64,
    ) -> Result<()> {
        self.run(
            "INSERT INTO warm_sandboxes (id, repo, branch, image_id, status, created_at)
             VALUES (?, ?, ?, ?, 'starting', ?)",
            &[
                text(id),
                text(&repo.to_ascii_lowercase()),
                text(branch),
                opt_text(image_id),
                number(now_ms),
            ],
        )
        .await
    }

    /// The provider started it: it may be claimed from now on.
    pub async fn warm_started(&self, id: &str, provider_id: &str) -> Result<()> {
        self.run(
            "UPDATE warm_sandboxes SET status = 'warm', provider_id = ? WHERE id = ? AND status = 'starting'",
            &[text(provider_id), text(id)],
        )
        .await
    }

    /// Retires a sandbox whatever its state (a failed start or claim, too old, a new image):
    /// it is never claimed again, and the next cron step deletes it.
    pub async fn retire_warm(&self, id: &str, now_ms: u64) -> Result<()> {
        self.run(
            "UPDATE warm_sandboxes SET status = 'retired', retired_at = ? WHERE id = ? AND status != 'retired'",
            &[number(now_ms), text(id)],
        )
        .await
    }

    pub async fn warm_deleted(&self, id: &str) -> Result<()> {
        self.run(
            "UPDATE warm_sandboxes SET deleted = 1 WHERE id = ?",
            &[text(id)],
        )
        .await
    }

    /// Takes the oldest warm sandbox of `repo` on `branch` started from `image_id` (none:
    /// from no image) and younger than `fresh_after`, for `session_id`; `None` when there is
    /// none. One statement, so two rooms claiming at once get different rows or none.
    pub async fn claim_warm(
        &self,
        repo: &str,
        branch: &str,
        image_id: Option<&str>,
        fresh_after: u64,
        session_id: &str,
        now_ms: u64,
    ) -> Result<Option<String>> {
        let claimed: Option<ClaimedRow> = self
            .first(
                "UPDATE warm_sandboxes SET status = 'claimed', claimed_at = ?1, session_id = ?2
                 WHERE id = (SELECT id FROM warm_sandboxes
                             WHERE repo = ?3 AND status = 'warm' AND branch = ?4 AND image_id IS ?5
                               AND created_at > ?6
                             ORDER BY created_at LIMIT 1)
                   AND status = 'warm'
                 RETURNING id",
                &[
                    number(now_ms),
                    text(session_id),
                    text(&repo.to_ascii_lowercase()),
                    text(branch),
                    opt_text(image_id),
                    number(fresh_after),
                ],
            )
            .await?;
        Ok(claimed.map(|row| row.id))
    }

    /// Forgets rows whose story is over (claimed, or retired and deleted) after a day.
    pub async fn purge_warm(&self, now_ms: u64) -> Result<()> {
        self.run(
            "DELETE FROM warm_sandboxes WHERE created_at < ?
               AND (status = 'claimed' OR (status = 'retired' AND deleted = 1))",
            &[number(now_ms.saturating_sub(KEPT_MS))],
        )
        .await
    }
}
