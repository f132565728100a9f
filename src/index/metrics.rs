//! Metrics in D1: a room's record of each finished prompt (the prompt's row, its day's counts,
//! its author and its latency buckets, and the session's participants and distinct prompt
//! authors: one batch), and the queries behind `GET /v1/metrics`, which read the per-day
//! tables (at most days × repositories × buckets rows, however many prompts there were) and
//! the sessions and pull requests in the window, each grouped three ways at once (all, per
//! repository, per day) so that one batch answers the whole page.

use super::{number, opt_number, text, Index};
use crate::error::Result;
use crate::metrics::{bucket, Row, Window, DAY_MS};
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

/// Aggregates `columns` of `source` three ways (all, per repository, per day) as the `dim`
/// and `key` columns, grouped also by `by` (a column list ending in a comma, or empty); `day`
/// is the expression of a row's day as `2026-12-01`. Only constant SQL is put together here;
/// every value is bound.
fn grouped(source: &str, by: &str, columns: &str, day: &str) -> String {
    let group = |extra: &str| {
        let list = format!("{extra}{by}");
        let list = list.trim_end_matches([',', ' ']);
        if list.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {list}")
        }
    };
    format!(
        "SELECT 'all' AS dim, '' AS key, {columns} FROM {source}{}
         UNION ALL SELECT 'repo', repo, {columns} FROM {source}{}
         UNION ALL SELECT 'day', {day}, {columns} FROM {source}{}",
        group(""),
        group("repo, "),
        group("day, "),
    )
}

/// The day number of a row of the per-day tables, as `2026-12-01`.
const DAY_NAME: &str = "strftime('%Y-%m-%d', day * 86400, 'unixepoch')";

impl Index {
    /// The room's one write when a prompt finishes: the prompt's row, and its session's
    /// participants and distinct prompt authors (counted here, over the indexed rows).
    pub async fn record_prompt(&self, record: &PromptRecord) -> Result<()> {
        let repo = record.repo.to_ascii_lowercase();
        let day = number(record.queued_at / DAY_MS);
        let mut statements = vec![
            self.statement(
                "INSERT INTO prompt_metrics (message_id, session_id, repo, author_id, source, status,
                    queued_at, to_started_ms, to_first_token_ms, duration_ms, warm)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                &[
                    text(&record.message_id),
                    text(&record.session_id),
                    text(&repo),
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
                "INSERT INTO metrics_daily (day, repo, prompts) VALUES (?, ?, 1)
                 ON CONFLICT (day, repo) DO UPDATE SET prompts = prompts + 1",
                &[day.clone(), text(&repo)],
            )?,
            self.statement(
                "INSERT OR IGNORE INTO metrics_authors (day, repo, author_id) VALUES (?, ?, ?)",
                &[day.clone(), text(&repo), text(&record.author_id)],
            )?,
            self.statement(
                "UPDATE sessions SET participants = ?1,
                    prompt_authors = (SELECT COUNT(DISTINCT author_id) FROM prompt_metrics WHERE session_id = ?2)
                 WHERE id = ?2",
                &[number(record.participants), text(&record.session_id)],
            )?,
        ];
        let warm = match record.warm {
            Some(true) => JsValue::from_f64(1.0),
            Some(false) => JsValue::from_f64(0.0),
            None => JsValue::from_f64(-1.0),
        };
        for (metric, value) in [
            ("to_first_token_ms", record.to_first_token_ms),
            ("to_started_ms", record.to_started_ms),
        ] {
            let Some(value) = value else { continue };
            statements.push(self.statement(
                "INSERT INTO metrics_latency (day, repo, metric, warm, bucket, n) VALUES (?, ?, ?, ?, ?, 1)
                 ON CONFLICT (metric, day, repo, warm, bucket) DO UPDATE SET n = n + 1",
                &[
                    day.clone(),
                    text(&repo),
                    text(metric),
                    warm.clone(),
                    number(u64::from(bucket(value))),
                ],
            )?);
        }
        self.db.batch(statements).await?;
        Ok(())
    }

    /// `user_id` sent a prompt on `repo` at `at` (ms): "humans prompting now" counts them
    /// while their prompt is still queued or running, not only once it ended.
    pub async fn record_prompting(&self, user_id: &str, repo: &str, at: u64) -> Result<()> {
        self.run(
            "INSERT INTO metrics_prompting (author_id, repo, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (author_id, repo) DO UPDATE SET at = MAX(at, excluded.at)",
            &[text(user_id), text(&repo.to_ascii_lowercase()), number(at)],
        )
        .await
    }

    /// Every row `GET /v1/metrics` is assembled from, in one batch.
    pub async fn metrics_rows(&self, window: &Window, now_ms: u64) -> Result<Vec<Row>> {
        let repo = window.repo.as_deref();
        // Two shapes of each filter rather than `(? IS NULL OR repo = ?)`, so that SQLite
        // keeps to the indexes either way.
        let (daily, authors, latency) = match repo {
            Some(_) => (
                "metrics_daily WHERE day >= ?1 AND day <= ?2 AND repo = ?3",
                "metrics_authors WHERE day >= ?1 AND day <= ?2 AND repo = ?3",
                "metrics_latency WHERE metric = ?4 AND day >= ?1 AND day <= ?2 AND repo = ?3",
            ),
            None => (
                "metrics_daily WHERE day >= ?1 AND day <= ?2",
                "metrics_authors WHERE day >= ?1 AND day <= ?2",
                "metrics_latency WHERE metric = ?4 AND day >= ?1 AND day <= ?2",
            ),
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
        let with_repo = |mut values: Vec<JsValue>| {
            values.push(text(repo.unwrap_or_default()));
            values
        };
        let days = || with_repo(vec![number(window.from_day), number(window.to_day)]);
        let times = || {
            with_repo(vec![
                text(&crate::time::rfc3339(window.from_ms())),
                text(&crate::time::rfc3339(window.to_ms())),
            ])
        };
        let prompts = format!(
            "WITH d AS (SELECT day, repo, prompts FROM {daily})
             SELECT 'prompts' AS metric, dim, key, n FROM ({})",
            grouped("d", "", "SUM(prompts) AS n", DAY_NAME)
        );
        let users = format!(
            "WITH a AS (SELECT day, repo, author_id FROM {authors})
             SELECT 'users' AS metric, dim, key, n FROM ({})",
            grouped("a", "", "COUNT(DISTINCT author_id) AS n", DAY_NAME)
        );
        // Nearest rank over a histogram: the first bucket with at least p% of the prompts at
        // or below it. Cold and warm count only prompts whose start is known to be one or the
        // other (`warm` 0 or 1). D1 refuses long compound SELECTs, so the classes are spread
        // in a CTE of their own before the three groupings.
        let latency_sql = format!(
            "WITH h AS (SELECT day, repo, CASE warm WHEN 1 THEN 'warm' WHEN 0 THEN 'cold' END AS known, bucket, n FROM {latency}),
             k AS (SELECT day, repo, 'all' AS class, bucket, n FROM h
                   UNION ALL SELECT day, repo, known, bucket, n FROM h WHERE known IS NOT NULL),
             g AS ({}),
             c AS (SELECT dim, key, class, bucket,
                 SUM(n) OVER (PARTITION BY dim, key, class ORDER BY bucket) AS below,
                 SUM(n) OVER (PARTITION BY dim, key, class) AS total FROM g)
             SELECT ?4 AS metric, dim, key, class, MAX(total) AS n,
                 MIN(CASE WHEN below * 100 >= total * 50 THEN bucket END) AS p50,
                 MIN(CASE WHEN below * 100 >= total * 95 THEN bucket END) AS p95
             FROM c GROUP BY dim, key, class",
            grouped("k", "class, bucket", "class, bucket, SUM(n) AS n", DAY_NAME),
        );
        // ?3 (the repository) stays bound, unused, when there is none: ?4 is the metric.
        let latency_values = |metric: &str| {
            let mut values = days();
            values.push(text(metric));
            values
        };
        let session_counts = format!(
            "WITH s AS (SELECT lower(repo) AS repo, substr(created_at, 1, 10) AS day, prompt_authors FROM {sessions})
             SELECT 'sessions' AS metric, dim, key, n, multiplayer FROM ({})",
            grouped(
                "s",
                "",
                "COUNT(*) AS n, COALESCE(SUM(prompt_authors >= 2), 0) AS multiplayer",
                "day"
            )
        );
        let created = format!(
            "WITH r AS (SELECT repo, substr(created_at, 1, 10) AS day, merged_at FROM {pulls_created})
             SELECT 'prs_created' AS metric, dim, key, n, merged FROM ({})",
            grouped(
                "r",
                "",
                "COUNT(*) AS n, COALESCE(SUM(merged_at IS NOT NULL), 0) AS merged",
                "day"
            )
        );
        // Pull requests are few: their time to merge is exact, ranked with window functions.
        let merged = format!(
            "WITH r AS (SELECT repo, substr(merged_at, 1, 10) AS day,
                 CAST(ROUND((julianday(merged_at) - julianday(created_at)) * 86400000) AS INTEGER) AS value
                 FROM {pulls_merged}),
             g AS (SELECT 'all' AS dim, '' AS key, value FROM r
                   UNION ALL SELECT 'repo', repo, value FROM r
                   UNION ALL SELECT 'day', day, value FROM r),
             ranked AS (SELECT dim, key, value,
                 ROW_NUMBER() OVER (PARTITION BY dim, key ORDER BY value) AS rn,
                 COUNT(*) OVER (PARTITION BY dim, key) AS n FROM g)
             SELECT 'prs_merged' AS metric, dim, key, MAX(n) AS n,
                 MAX(CASE WHEN rn = (n * 50 + 99) / 100 THEN value END) AS p50,
                 MAX(CASE WHEN rn = (n * 95 + 99) / 100 THEN value END) AS p95
             FROM ranked GROUP BY dim, key"
        );
        let now_prompting = match repo {
            Some(_) => {
                "SELECT 'prompting_now' AS metric, 'all' AS dim, '' AS key,
                 COUNT(DISTINCT author_id) AS n
                 FROM metrics_prompting WHERE at >= ?1 AND at < ?2 AND repo = ?3"
            }
            None => {
                "SELECT 'prompting_now' AS metric, 'all' AS dim, '' AS key,
                 COUNT(DISTINCT author_id) AS n
                 FROM metrics_prompting WHERE at >= ?1 AND at < ?2"
            }
        };
        let recent = with_repo(vec![
            number(now_ms.saturating_sub(crate::metrics::PROMPTING_NOW_MS)),
            number(now_ms + 1),
        ]);
        let trim = |mut values: Vec<JsValue>| {
            if repo.is_none() {
                values.truncate(2);
            }
            values
        };
        let statements = vec![
            self.statement(&prompts, &trim(days()))?,
            self.statement(&users, &trim(days()))?,
            self.statement(&latency_sql, &latency_values("to_first_token_ms"))?,
            self.statement(&latency_sql, &latency_values("to_started_ms"))?,
            self.statement(&session_counts, &trim(times()))?,
            self.statement(&created, &trim(times()))?,
            self.statement(&merged, &trim(times()))?,
            self.statement(now_prompting, &trim(recent))?,
        ];
        let mut rows = Vec::new();
        for result in self.db.batch(statements).await? {
            rows.extend(result.results::<Row>()?);
        }
        Ok(rows)
    }
}
