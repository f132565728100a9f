//! Repository images in D1: every build the cron asked for (`image_builds`), and when each
//! repository's head was last looked up (`image_checks`). Repositories are kept lower case.

use super::{number, opt_text, text, Index};
use crate::error::Result;
use crate::images::{LastBuild, Status};
use serde::Deserialize;
use wasm_bindgen::JsValue;

/// A build as `GET /v1/repos` shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct ImageRow {
    pub id: String,
    pub repo: String,
    pub branch: String,
    pub commit_sha: String,
    pub runtime_version: String,
    pub status: String,
    pub build_id: Option<String>,
    pub image_id: Option<String>,
    pub error: Option<String>,
    pub started_at: f64,
    pub finished_at: Option<f64>,
}

impl ImageRow {
    pub fn last_build(&self) -> Option<LastBuild> {
        Some(LastBuild {
            status: Status::parse(&self.status)?,
            branch: self.branch.clone(),
            commit: self.commit_sha.clone(),
            runtime_version: self.runtime_version.clone(),
            finished_ms: self.finished_at.map(|at| at as u64),
        })
    }
}

/// A build being started.
pub struct NewBuild<'a> {
    pub id: &'a str,
    pub repo: &'a str,
    pub branch: &'a str,
    pub commit: &'a str,
    pub runtime_version: &'a str,
    /// The provider's build id, or why the provider would not start one.
    pub started: std::result::Result<&'a str, &'a str>,
    pub now_ms: u64,
}

const COLUMNS: &str = "id, repo, branch, commit_sha, runtime_version, status, build_id, image_id, error, started_at, finished_at";

#[derive(Deserialize)]
struct CheckRow {
    repo: String,
    checked_at: f64,
}

impl Index {
    /// When each of `repos` was last looked up (`None`: never).
    pub async fn image_checks(&self, repos: &[String]) -> Result<Vec<(String, Option<u64>)>> {
        let rows: Vec<CheckRow> = self
            .all("SELECT repo, checked_at FROM image_checks", &[])
            .await?;
        Ok(repos
            .iter()
            .map(|repo| {
                let key = repo.to_ascii_lowercase();
                let at = rows
                    .iter()
                    .find(|r| r.repo == key)
                    .map(|r| r.checked_at as u64);
                (repo.clone(), at)
            })
            .collect())
    }

    pub async fn record_image_check(
        &self,
        repo: &str,
        now_ms: u64,
        error: Option<&str>,
    ) -> Result<()> {
        self.run(
            "INSERT INTO image_checks (repo, checked_at, error) VALUES (?, ?, ?)
             ON CONFLICT (repo) DO UPDATE SET checked_at = excluded.checked_at, error = excluded.error",
            &[text(&repo.to_ascii_lowercase()), number(now_ms), opt_text(error)],
        )
        .await
    }

    /// The newest build of a repository.
    pub async fn latest_image_build(&self, repo: &str) -> Result<Option<ImageRow>> {
        self.first(
            &format!("SELECT {COLUMNS} FROM image_builds WHERE repo = ? ORDER BY started_at DESC, rowid DESC LIMIT 1"),
            &[text(&repo.to_ascii_lowercase())],
        )
        .await
    }

    /// The newest build of each repository that has one.
    pub async fn latest_image_builds(&self) -> Result<Vec<ImageRow>> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM image_builds b WHERE rowid = (SELECT rowid FROM image_builds
                 WHERE repo = b.repo ORDER BY started_at DESC, rowid DESC LIMIT 1)"
            ),
            &[],
        )
        .await
    }

    /// The image new sandboxes of `repo` on `branch` start from: its newest ready build's.
    pub async fn latest_image(&self, repo: &str, branch: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            image_id: String,
        }
        let row: Option<Row> = self
            .first(
                "SELECT image_id FROM image_builds WHERE repo = ? AND branch = ? AND status = 'ready'
                 AND image_id IS NOT NULL ORDER BY started_at DESC, rowid DESC LIMIT 1",
                &[text(&repo.to_ascii_lowercase()), text(branch)],
            )
            .await?;
        Ok(row.map(|r| r.image_id))
    }

    /// Builds still running, oldest first.
    pub async fn running_image_builds(&self) -> Result<Vec<ImageRow>> {
        self.all(
            &format!("SELECT {COLUMNS} FROM image_builds WHERE status = 'building' ORDER BY started_at LIMIT 50"),
            &[],
        )
        .await
    }

    /// Records a build the provider was asked for: `building`, or `failed` at once when it refused.
    pub async fn insert_image_build(&self, build: &NewBuild<'_>) -> Result<()> {
        let (status, build_id, error, finished) = match build.started {
            Ok(build_id) => ("building", Some(build_id), None, JsValue::NULL),
            Err(error) => ("failed", None, Some(error), number(build.now_ms)),
        };
        self.run(
            "INSERT INTO image_builds (id, repo, branch, commit_sha, runtime_version, status, build_id, error, started_at, finished_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                text(build.id),
                text(&build.repo.to_ascii_lowercase()),
                text(build.branch),
                text(build.commit),
                text(build.runtime_version),
                text(status),
                opt_text(build_id),
                opt_text(error),
                number(build.now_ms),
                finished,
            ],
        )
        .await
    }

    /// A running build finished: ready with its image, or failed with why. Only a row still
    /// `building` changes.
    pub async fn finish_image_build(
        &self,
        id: &str,
        image_id: Option<&str>,
        error: Option<&str>,
        now_ms: u64,
    ) -> Result<()> {
        let status = if image_id.is_some() {
            "ready"
        } else {
            "failed"
        };
        self.run(
            "UPDATE image_builds SET status = ?, image_id = ?, error = ?, finished_at = ?
             WHERE id = ? AND status = 'building'",
            &[
                text(status),
                opt_text(image_id),
                opt_text(error),
                number(now_ms),
                text(id),
            ],
        )
        .await
    }
}
