//! Metrics in D1: a room's record of each finished prompt (with its session's participants
//! and distinct prompt authors), and the queries behind `GET /v1/metrics`, each over an indexed
//! time column and grouped three ways at once (all, per repository, per day) so one batch
//! answers the whole page. Percentiles are nearest-rank, computed in SQL with window functions.

use super::{number, opt_number, text, Index};
use crate::error::Result;
use crate::metrics::{Row, Window};
use wasm_bindgen::JsValue;

/// One finished prompt, as its room reports it.
pub struct PromptRecord {
    pub message_id: String,
    pub session_id: String,
    pub repo: String,
    pub author_id: String,
    pub source: String,
    pub status: String,
    pub queued_at: u64,
    pub to_started_ms: Option<u64>,
    pub to_first_token_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub warm: Option<bool>,
    /// The session's participants when the prompt finished.
    pub participants: u64,
}

/// Aggregates `columns` of `source` three ways (all, per repository, per day), as the
/// `dim` and `key` columns; `day` is the expression of a row's day. Only constant SQL is
/// put together here; every value is bound.
fn grouped(source: &str, columns: &str, day: &str) -> String {
    format!(
        "SELECT 'all' AS dim, '' AS key, {columns} FROM {source}
         UNION ALL SELECT 'repo', repo, {columns} FROM {source} GROUP BY repo
         UNION ALL SELECT 'day', {day}, {columns} FROM {source} GROUP BY {day}"
    )
}

/// Each row of `source` three times, once per grouping, for the percentiles.
fn spread(source: &str, columns: &str, day: &str) -> String {
    format!(
        "SELECT 'all' AS dim, '' AS key, {columns} FROM {source}
         UNION ALL SELECT 'repo', repo, {columns} FROM {source}
         UNION ALL SELECT 'day', {day}, {columns} FROM {source}"
    )
}

/// Nearest-rank p50 and p95 of `value` over `rows` (a CTE with `dim`, `key`, `class` and
/// `value`) per group, as rows of `metric`.
fn percentiles(metric: &str, rows: &str) -> String {
    format!(
        "ranked AS (SELECT dim, key, class, value,
             ROW_NUMBER() OVER (PARTITION BY dim, key, class ORDER BY value) AS rn,
             COUNT(*) OVER (PARTITION BY dim, key, class) AS n FROM {rows})
         SELECT '{metric}' AS metric, dim, key, class, MAX(n) AS n,
             MAX(CASE WHEN rn = (n * 50 + 99) / 100 THEN value END) AS p50,
             MAX(CASE WHEN rn = (n * 95 + 99) / 100 THEN value END) AS p95
         FROM ranked GROUP BY dim, key, class"
    )
}

const PROMPT_DAY: &str = "strftime('%Y-%m-%d', queued_at / 1000, 'unixepoch')";

impl Index {
    /// The room's one write when a prompt finishes: the prompt's row, and its session's
    /// participants and distinct prompt authors (counted here, over the indexed rows).
    pub async fn record_prompt(&self, record: &PromptRecord) -> Result<()> {
        let statements = vec![
            self.statement(
                "INSERT OR REPLACE INTO prompt_metrics (message_id, session_id, repo, author_id, source, status,
                    queued_at, to_started_ms, to_first_token_ms, duration_ms, warm)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    text(&record.message_id),
                    text(&record.session_id),
                    text(&record.repo.to_ascii_lowercase()),
                    text(&record.author_id),
                    text(&record.source),
                    text(&record.status),
                    number(record.queued_at),
                    opt_number(record.to_started_ms),
                    opt_number(record.to_first_token_ms),
                    opt_number(record.duration_ms),
                    record.warm.map(|w| number(u64::from(w))).unwrap_or(JsValue::NULL),
                ],
            )?,
            self.statement(
                "UPDATE sessions SET participants = ?1,
                    prompt_authors = (SELECT COUNT(DISTINCT author_id) FROM prompt_metrics WHERE session_id = ?2)
                 WHERE id = ?2",
                &[number(record.participants), text(&record.session_id)],
            )?,
        ];
        self.db.batch(statements).await?;
        Ok(())
    }

    /// Every row `GET /v1/metrics` is assembled from, in one batch.
    pub async fn metrics_rows(&self, window: &Window, now_ms: u64) -> Result<Vec<Row>> {
        let repo = window.repo.as_deref();
        // Two shapes of each filter rather than `(? IS NULL OR repo = ?)`, so that SQLite
        // picks the (repo, time) index when a repository is asked for.
        let prompts = match repo {
            Some(_) => "prompt_metrics WHERE repo = ?3 AND queued_at >= ?1 AND queued_at < ?2",
            None => "prompt_metrics WHERE queued_at >= ?1 AND queued_at < ?2",
        };
        let sessions = match repo {
            Some(_) => {
                "sessions WHERE repo = ?3 COLLATE NOCASE AND created_at >= ?1 AND created_at < ?2"
            }
            None => "sessions WHERE created_at >= ?1 AND created_at < ?2",
        };
        let pulls_created = match repo {
            Some(_) => "pull_requests WHERE repo = ?3 AND created_at >= ?1 AND created_at < ?2",
            None => "pull_requests WHERE created_at >= ?1 AND created_at < ?2",
        };
        let pulls_merged = match repo {
            Some(_) => "pull_requests WHERE merged_at IS NOT NULL AND repo = ?3 AND merged_at >= ?1 AND merged_at < ?2",
            None => "pull_requests WHERE merged_at IS NOT NULL AND merged_at >= ?1 AND merged_at < ?2",
        };
        let ms = |from: u64, to: u64| {
            let mut values = vec![number(from), number(to)];
            if let Some(repo) = repo {
                values.push(text(&repo.to_ascii_lowercase()));
            }
            values
        };
        let times = |from: u64, to: u64| {
            let mut values = vec![
                text(&crate::time::rfc3339(from)),
                text(&crate::time::rfc3339(to)),
            ];
            if let Some(repo) = repo {
                values.push(text(&repo.to_ascii_lowercase()));
            }
            values
        };
        let (from, to) = (window.from_ms, window.to_ms);
        let counts = format!(
            "WITH p AS (SELECT repo, author_id, queued_at FROM {prompts})
             SELECT 'prompts' AS metric, dim, key, n, users FROM ({})",
            grouped(
                "p",
                "COUNT(*) AS n, COUNT(DISTINCT author_id) AS users",
                PROMPT_DAY
            )
        );
        // Cold and warm count only prompts whose start is known to be one or the other.
        let latency = |column: &str| {
            format!(
                "WITH p AS (SELECT repo, queued_at, warm, {column} AS value FROM {prompts} AND {column} IS NOT NULL),
                 g AS ({}),
                 c AS (SELECT dim, key, 'all' AS class, value FROM g
                       UNION ALL SELECT dim, key, CASE warm WHEN 1 THEN 'warm' ELSE 'cold' END, value FROM g WHERE warm IS NOT NULL),
                 {}",
                spread("p", "warm, value", PROMPT_DAY),
                percentiles(column, "c"),
            )
        };
        let session_counts = format!(
            "WITH s AS (SELECT lower(repo) AS repo, created_at, prompt_authors FROM {sessions})
             SELECT 'sessions' AS metric, dim, key, n, multiplayer FROM ({})",
            grouped(
                "s",
                "COUNT(*) AS n, COALESCE(SUM(prompt_authors >= 2), 0) AS multiplayer",
                "substr(created_at, 1, 10)"
            )
        );
        let created = format!(
            "WITH r AS (SELECT repo, created_at, merged_at FROM {pulls_created})
             SELECT 'prs_created' AS metric, dim, key, n, merged FROM ({})",
            grouped(
                "r",
                "COUNT(*) AS n, COALESCE(SUM(merged_at IS NOT NULL), 0) AS merged",
                "substr(created_at, 1, 10)"
            )
        );
        let merged = format!(
            "WITH r AS (SELECT repo, merged_at,
                 CAST(ROUND((julianday(merged_at) - julianday(created_at)) * 86400000) AS INTEGER) AS value
                 FROM {pulls_merged}),
             g AS ({}),
             c AS (SELECT dim, key, 'all' AS class, value FROM g),
             {}",
            spread("r", "value", "substr(merged_at, 1, 10)"),
            percentiles("prs_merged", "c")
        );
        let now_prompting = match repo {
            Some(_) => {
                "SELECT 'prompting_now' AS metric, 'all' AS dim, '' AS key,
                 COUNT(DISTINCT author_id) AS n
                 FROM prompt_metrics WHERE repo = ?3 AND queued_at >= ?1 AND queued_at < ?2"
            }
            None => {
                "SELECT 'prompting_now' AS metric, 'all' AS dim, '' AS key,
                 COUNT(DISTINCT author_id) AS n
                 FROM prompt_metrics WHERE queued_at >= ?1 AND queued_at < ?2"
            }
        };
        let statements = vec![
            self.statement(&counts, &ms(from, to))?,
            self.statement(&latency("to_first_token_ms"), &ms(from, to))?,
            self.statement(&latency("to_started_ms"), &ms(from, to))?,
            self.statement(&session_counts, &times(from, to))?,
            self.statement(&created, &times(from, to))?,
            self.statement(&merged, &times(from, to))?,
            self.statement(
                now_prompting,
                &ms(
                    now_ms.saturating_sub(crate::metrics::PROMPTING_NOW_MS),
                    now_ms + 1,
                ),
            )?,
        ];
        let mut rows = Vec::new();
        for result in self.db.batch(statements).await? {
            rows.extend(result.results::<Row>()?);
        }
        Ok(rows)
    }
}
