//! `GET /v1/metrics`, the pure parts: the window a query asks for (`from`, `to`, `repo`, whole
//! UTC days), the latency buckets prompts are counted in, the rows D1 answers with (see
//! `index::metrics`), and the answer assembled from them: the same figures for all of the
//! window, per repository and per day.
//!
//! Latencies are kept as histograms per day and repository, not sorted at query time: a bucket
//! is a twentieth of a decade wide (each bound about 12% above the last), so a percentile is
//! given as the upper bound of the bucket it falls in, within 12% of the exact value, and a
//! query over any number of prompts reads at most days × repositories × buckets rows.

use crate::http::query;
use protocol::ApiError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// "Humans prompting now": people who sent a prompt in the last five minutes.
pub const PROMPTING_NOW_MS: u64 = 5 * 60_000;
pub const DAY_MS: u64 = 86_400_000;
/// Buckets per decade of milliseconds, and the last bucket (10^8 ms, a little over a day).
const BUCKETS_PER_DECADE: u32 = 20;
const LAST_BUCKET: u32 = 8 * BUCKETS_PER_DECADE;

/// The upper bound of latency bucket `b`, in ms: 10^(b/20), rounded.
pub fn bucket_bound(b: u32) -> u64 {
    10f64
        .powf(f64::from(b.min(LAST_BUCKET)) / f64::from(BUCKETS_PER_DECADE))
        .round() as u64
}

/// The bucket a latency counts in: the first whose bound is at least `ms`.
pub fn bucket(ms: u64) -> u32 {
    (0..LAST_BUCKET)
        .find(|&b| ms <= bucket_bound(b))
        .unwrap_or(LAST_BUCKET)
}
/// The default window, and the longest one (a year of daily buckets).
const DEFAULT_DAYS: u64 = 30;
const MAX_DAYS: u64 = 366;

/// What a metrics query covers: the UTC days `from_day..=to_day` (days since the epoch),
/// optionally one repository.
#[derive(Debug, PartialEq, Eq)]
pub struct Window {
    pub from_day: u64,
    pub to_day: u64,
    pub repo: Option<String>,
}

/// A day as `2026-12-01`, as days since the epoch.
fn day(name: &str, value: &str) -> Result<u64, ApiError> {
    crate::time::parse_rfc3339(&format!("{value}T00:00:00Z"))
        .filter(|_| value.len() == 10)
        .map(|ms| ms / DAY_MS)
        .ok_or_else(|| ApiError::invalid_field(format!("{name} must be a day, as 2026-12-01")))
}

/// `2026-12-01` for a day since the epoch.
pub fn day_name(day: u64) -> String {
    crate::time::rfc3339(day * DAY_MS)[..10].to_owned()
}

impl Window {
    /// From the query string; `to` (included) defaults to today and `from` to 29 days before it.
    pub fn parse(query_string: &str, now_ms: u64) -> Result<Window, ApiError> {
        let to_day = match query::param(query_string, "to") {
            Some(to) => day("to", &to)?,
            None => now_ms / DAY_MS,
        };
        let from_day = match query::param(query_string, "from") {
            Some(from) => day("from", &from)?,
            None => to_day.saturating_sub(DEFAULT_DAYS - 1),
        };
        if from_day > to_day {
            return Err(ApiError::invalid_field("from must not be after to"));
        }
        if to_day - from_day >= MAX_DAYS {
            return Err(ApiError::invalid_field(format!(
                "the window is at most {MAX_DAYS} days"
            )));
        }
        let repo = match query::param(query_string, "repo") {
            Some(repo) if protocol::scope::is_repo_name(&repo) => Some(repo.to_ascii_lowercase()),
            Some(_) => return Err(ApiError::invalid_field("repo must be owner/name")),
            None => None,
        };
        Ok(Window {
            from_day,
            to_day,
            repo,
        })
    }

    /// The window's start, and the end it does not include, in ms.
    pub fn from_ms(&self) -> u64 {
        self.from_day * DAY_MS
    }

    pub fn to_ms(&self) -> u64 {
        (self.to_day + 1) * DAY_MS
    }

    /// Every day of the window, oldest first.
    fn days(&self) -> Vec<String> {
        (self.from_day..=self.to_day).map(day_name).collect()
    }
}

/// One row of a metrics query: which figure (`metric`), for which group (`dim` is `all`,
/// `repo` or `day`, `key` the repository or the day), and its values; each query fills the
/// columns it has.
#[derive(Debug, Default, Deserialize)]
pub struct Row {
    pub metric: String,
    pub dim: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(default)]
    pub multiplayer: Option<u64>,
    #[serde(default)]
    pub merged: Option<u64>,
    #[serde(default)]
    pub p50: Option<u64>,
    #[serde(default)]
    pub p95: Option<u64>,
}

/// `part / whole`, or null when there is no whole.
fn share(part: u64, whole: u64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!(part as f64 / whole as f64)
    }
}

/// The figures of one group, zero until rows say otherwise. Parsed from text rather than
/// built with `json!`, which costs far more code in the wasm.
const EMPTY_FIGURES: &str = r#"{"sessions":0,"multiplayer_sessions":0,"multiplayer_share":null,
"prompts":0,"unique_users":0,
"time_to_first_token_ms":{"all":{"n":0,"p50":null,"p95":null},"cold":{"n":0,"p50":null,"p95":null},"warm":{"n":0,"p50":null,"p95":null}},
"time_to_prompt_started_ms":{"all":{"n":0,"p50":null,"p95":null},"cold":{"n":0,"p50":null,"p95":null},"warm":{"n":0,"p50":null,"p95":null}},
"prs_created":0,"prs_merged":0,"merge_rate":null,"time_to_merge_ms":{"n":0,"p50":null,"p95":null}}"#;

fn empty_figures() -> Map<String, Value> {
    serde_json::from_str(EMPTY_FIGURES).unwrap_or_default()
}

fn apply(figures: &mut Map<String, Value>, row: &Row) {
    let n = row.n.unwrap_or(0);
    let latency = || json!({"n": n, "p50": row.p50, "p95": row.p95});
    let class = row.class.as_deref().unwrap_or("all");
    match row.metric.as_str() {
        "prompts" => {
            figures.insert("prompts".into(), json!(n));
        }
        "users" => {
            figures.insert("unique_users".into(), json!(n));
        }
        "sessions" => {
            let multiplayer = row.multiplayer.unwrap_or(0);
            figures.insert("sessions".into(), json!(n));
            figures.insert("multiplayer_sessions".into(), json!(multiplayer));
            figures.insert("multiplayer_share".into(), share(multiplayer, n));
        }
        "prs_created" => {
            figures.insert("prs_created".into(), json!(n));
            figures.insert("merge_rate".into(), share(row.merged.unwrap_or(0), n));
        }
        "prs_merged" => {
            figures.insert("prs_merged".into(), json!(n));
            figures.insert("time_to_merge_ms".into(), latency());
        }
        // Prompt latencies come as buckets: each is shown as its bucket's upper bound.
        "to_first_token_ms" | "to_started_ms" => {
            let name = match row.metric.as_str() {
                "to_first_token_ms" => "time_to_first_token_ms",
                _ => "time_to_prompt_started_ms",
            };
            let bound =
                |b: Option<u64>| b.map(|b| bucket_bound(b.min(u64::from(LAST_BUCKET)) as u32));
            if let Some(by_class) = figures.get_mut(name) {
                by_class[class] = json!({"n": n, "p50": bound(row.p50), "p95": bound(row.p95)});
            }
        }
        _ => {}
    }
}

/// The answer of `GET /v1/metrics` from the rows of every query.
pub fn assemble(window: &Window, rows: &[Row], now_ms: u64) -> Value {
    let mut totals = empty_figures();
    let mut repos: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut days: BTreeMap<String, Map<String, Value>> = window
        .days()
        .into_iter()
        .map(|day| (day, empty_figures()))
        .collect();
    let mut prompting_now = 0;
    for row in rows {
        if row.metric == "prompting_now" {
            prompting_now = row.n.unwrap_or(0);
            continue;
        }
        let figures = match row.dim.as_str() {
            "all" => &mut totals,
            "repo" => repos.entry(row.key.clone()).or_insert_with(empty_figures),
            // A day outside the window (a merge time at its very edge) has no bucket.
            "day" => match days.get_mut(&row.key) {
                Some(figures) => figures,
                None => continue,
            },
            _ => continue,
        };
        apply(figures, row);
    }
    let keyed = |name: &str, key: String, mut figures: Map<String, Value>| {
        figures.insert(name.into(), json!(key));
        Value::Object(figures)
    };
    let mut repos: Vec<Value> = repos
        .into_iter()
        .map(|(repo, figures)| keyed("repo", repo, figures))
        .collect();
    // The busiest repositories first, then by name.
    repos.sort_by_key(|r| std::cmp::Reverse(r["prompts"].as_u64().unwrap_or(0)));
    json!({
        "from": day_name(window.from_day),
        "to": day_name(window.to_day),
        "repo": window.repo,
        "generated_at": crate::time::rfc3339(now_ms),
        "humans_prompting_now": prompting_now,
        "totals": Value::Object(totals),
        "repos": repos,
        "days": days.into_iter().map(|(day, figures)| keyed("day", day, figures)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_633_600_000; // 2025-12-02T00:00:00Z

    const TODAY: u64 = NOW / DAY_MS;

    fn check(query: &str, expected: Result<(u64, u64, Option<&str>), &str>) {
        let got = Window::parse(query, NOW + 3_600_000)
            .map(|w| (w.from_day, w.to_day, w.repo))
            .map_err(|e| e.message);
        let expected = expected
            .map(|(f, t, r)| (f, t, r.map(str::to_owned)))
            .map_err(str::to_owned);
        assert_eq!(got, expected, "{query}");
    }

    #[test]
    fn windows() {
        check("", Ok((TODAY - 29, TODAY, None)));
        check(
            "from=2025-12-01&to=2025-12-01&repo=Acme/Web",
            Ok((TODAY - 1, TODAY - 1, Some("acme/web"))),
        );
        check("from=2025-12-03", Err("from must not be after to"));
        check("from=yesterday", Err("from must be a day, as 2026-12-01"));
        check(
            "to=2025-12-01T12:00:00Z",
            Err("to must be a day, as 2026-12-01"),
        );
        check("from=2024-12-01", Err("the window is at most 366 days"));
        check("from=2024-12-02", Ok((TODAY - 365, TODAY, None)));
        check("repo=acme", Err("repo must be owner/name"));
        let window = Window::parse("from=2025-12-01&to=2025-12-02", NOW).unwrap();
        assert_eq!(
            (window.from_ms(), window.to_ms()),
            (NOW - DAY_MS, NOW + DAY_MS)
        );
    }

    #[test]
    fn buckets() {
        // Small latencies to the millisecond, larger ones within 12%.
        let cases = [
            (0, 0, 1),
            (1, 0, 1),
            (2, 4, 2),
            (3, 8, 3),
            (100, 40, 100),
            (101, 41, 112),
            (1_000, 60, 1_000),
            (1_001, 61, 1_122),
            (86_400_000, 159, 89_125_094),
            (u64::MAX, 160, 100_000_000),
        ];
        for (ms, b, bound) in cases {
            assert_eq!(
                (bucket(ms), bucket_bound(bucket(ms))),
                (b, bound),
                "{ms} ms"
            );
        }
        for ms in [7, 250, 4_321, 99_999, 3_600_000] {
            let bound = bucket_bound(bucket(ms));
            assert!(
                bound >= ms && (bound as f64) < ms as f64 * 1.13,
                "{ms} ms → {bound}"
            );
        }
    }

    fn row(metric: &str, dim: &str, key: &str) -> Row {
        Row {
            metric: metric.into(),
            dim: dim.into(),
            key: key.into(),
            ..Row::default()
        }
    }

    #[test]
    fn assembled_from_rows() {
        let window = Window::parse("from=2025-11-30&to=2025-12-01", NOW).unwrap();
        let rows = vec![
            Row {
                n: Some(4),
                ..row("prompts", "all", "")
            },
            Row {
                n: Some(2),
                ..row("users", "all", "")
            },
            Row {
                n: Some(3),
                ..row("prompts", "repo", "acme/web")
            },
            Row {
                n: Some(1),
                ..row("prompts", "repo", "acme/demo")
            },
            Row {
                n: Some(4),
                multiplayer: Some(1),
                ..row("sessions", "day", "2025-12-01")
            },
            Row {
                class: Some("all".into()),
                n: Some(4),
                p50: Some(40),
                p95: Some(59),
                ..row("to_first_token_ms", "all", "")
            },
            Row {
                n: Some(2),
                merged: Some(1),
                ..row("prs_created", "all", "")
            },
            Row {
                n: Some(1),
                p50: Some(60_000),
                p95: Some(60_000),
                ..row("prs_merged", "day", "2025-12-05")
            },
            Row {
                n: Some(3),
                ..row("prompting_now", "all", "")
            },
        ];
        let answer = assemble(&window, &rows, NOW);
        assert_eq!(answer["humans_prompting_now"], 3);
        let totals = &answer["totals"];
        assert_eq!(totals["prompts"], 4);
        assert_eq!(totals["unique_users"], 2);
        assert_eq!(
            totals["time_to_first_token_ms"]["all"],
            json!({"n": 4, "p50": 100, "p95": 891}),
            "buckets become their upper bounds"
        );
        assert_eq!(totals["time_to_first_token_ms"]["warm"]["n"], 0);
        assert_eq!(totals["merge_rate"], 0.5);
        assert_eq!(totals["multiplayer_share"], Value::Null);
        let repos: Vec<&str> = answer["repos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["repo"].as_str().unwrap())
            .collect();
        assert_eq!(repos, ["acme/web", "acme/demo"]);
        let days = answer["days"].as_array().unwrap();
        assert_eq!(days.len(), 2, "both days of the window, the empty one too");
        assert_eq!(days[0]["day"], "2025-11-30");
        assert_eq!(days[0]["sessions"], 0);
        assert_eq!(days[1]["multiplayer_share"], 0.25);
        assert_eq!(
            (answer["from"].as_str(), answer["to"].as_str()),
            (Some("2025-11-30"), Some("2025-12-01"))
        );
    }
}
