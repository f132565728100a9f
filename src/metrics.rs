//! `GET /v1/metrics`, the pure parts: the window a query asks for (`from`, `to`, `repo`), the
//! rows D1 answers with (see `index::metrics`), and the answer assembled from them: the same
//! figures for all of the window, per repository and per day.

use crate::http::query;
use protocol::ApiError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// "Humans prompting now": people who sent a prompt in the last five minutes.
pub const PROMPTING_NOW_MS: u64 = 5 * 60_000;
const DAY_MS: u64 = 86_400_000;
/// The default window, and the longest one (a year of daily buckets).
const DEFAULT_DAYS: u64 = 30;
const MAX_DAYS: u64 = 366;

/// What a metrics query covers: `[from_ms, to_ms)`, optionally one repository.
#[derive(Debug, PartialEq, Eq)]
pub struct Window {
    pub from_ms: u64,
    pub to_ms: u64,
    pub repo: Option<String>,
}

/// A day (`2026-12-01`, the whole day) or a time as the coordinator writes them.
fn instant(name: &str, value: &str, end_of_day: bool) -> Result<u64, ApiError> {
    let parsed = if value.len() == 10 {
        crate::time::parse_rfc3339(&format!("{value}T00:00:00Z")).map(|start| {
            if end_of_day {
                start + DAY_MS
            } else {
                start
            }
        })
    } else {
        crate::time::parse_rfc3339(value)
    };
    parsed.ok_or_else(|| {
        ApiError::invalid_field(format!(
            "{name} must be a day (2026-12-01) or a UTC time (2026-12-01T09:30:00Z)"
        ))
    })
}

impl Window {
    /// From the query string; `to` defaults to now and `from` to 30 days before `to`. A day
    /// given as `to` is included.
    pub fn parse(query_string: &str, now_ms: u64) -> Result<Window, ApiError> {
        let to_ms = match query::param(query_string, "to") {
            Some(to) => instant("to", &to, true)?,
            None => now_ms,
        };
        let from_ms = match query::param(query_string, "from") {
            Some(from) => instant("from", &from, false)?,
            None => to_ms.saturating_sub(DEFAULT_DAYS * DAY_MS),
        };
        if from_ms >= to_ms {
            return Err(ApiError::invalid_field("from must be before to"));
        }
        if to_ms - from_ms > MAX_DAYS * DAY_MS {
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
            from_ms,
            to_ms,
            repo,
        })
    }

    /// Every day the window touches, oldest first.
    fn days(&self) -> Vec<String> {
        let first = self.from_ms / DAY_MS;
        let last = (self.to_ms - 1) / DAY_MS;
        (first..=last)
            .map(|day| crate::time::rfc3339(day * DAY_MS)[..10].to_owned())
            .collect()
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
    pub users: Option<u64>,
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

fn no_latency() -> Value {
    json!({"n": 0, "p50": null, "p95": null})
}

/// The figures of one group, zero until rows say otherwise.
fn empty_figures() -> Map<String, Value> {
    let latency = || json!({"all": no_latency(), "cold": no_latency(), "warm": no_latency()});
    let figures = json!({
        "sessions": 0,
        "multiplayer_sessions": 0,
        "multiplayer_share": null,
        "prompts": 0,
        "unique_users": 0,
        "time_to_first_token_ms": latency(),
        "time_to_prompt_started_ms": latency(),
        "prs_created": 0,
        "prs_merged": 0,
        "merge_rate": null,
        "time_to_merge_ms": no_latency(),
    });
    match figures {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn apply(figures: &mut Map<String, Value>, row: &Row) {
    let n = row.n.unwrap_or(0);
    let latency = || json!({"n": n, "p50": row.p50, "p95": row.p95});
    let class = row.class.as_deref().unwrap_or("all");
    match row.metric.as_str() {
        "prompts" => {
            figures.insert("prompts".into(), json!(n));
            figures.insert("unique_users".into(), json!(row.users.unwrap_or(0)));
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
        "to_first_token_ms" | "to_started_ms" => {
            let name = match row.metric.as_str() {
                "to_first_token_ms" => "time_to_first_token_ms",
                _ => "time_to_prompt_started_ms",
            };
            if let Some(by_class) = figures.get_mut(name) {
                by_class[class] = latency();
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
        "from": crate::time::rfc3339(window.from_ms),
        "to": crate::time::rfc3339(window.to_ms),
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

    fn check(query: &str, expected: Result<(u64, u64, Option<&str>), &str>) {
        let got = Window::parse(query, NOW)
            .map(|w| (w.from_ms, w.to_ms, w.repo))
            .map_err(|e| e.message);
        let expected = expected
            .map(|(f, t, r)| (f, t, r.map(str::to_owned)))
            .map_err(str::to_owned);
        assert_eq!(got, expected, "{query}");
    }

    #[test]
    fn windows() {
        check("", Ok((NOW - 30 * DAY_MS, NOW, None)));
        check(
            "from=2025-12-01&to=2025-12-01&repo=Acme/Web",
            Ok((NOW - DAY_MS, NOW, Some("acme/web"))),
        );
        check(
            "from=2025-12-01T12:00:00Z&to=2025-12-01T13:00:00.500Z",
            Ok((NOW - DAY_MS / 2, NOW - DAY_MS / 2 + 3_600_500, None)),
        );
        check("from=2025-12-02", Err("from must be before to"));
        check(
            "from=yesterday",
            Err("from must be a day (2026-12-01) or a UTC time (2026-12-01T09:30:00Z)"),
        );
        check("from=2020-01-01", Err("the window is at most 366 days"));
        check("repo=acme", Err("repo must be owner/name"));
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
                users: Some(2),
                ..row("prompts", "all", "")
            },
            Row {
                n: Some(3),
                users: Some(2),
                ..row("prompts", "repo", "acme/web")
            },
            Row {
                n: Some(1),
                users: Some(1),
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
                p50: Some(100),
                p95: Some(900),
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
            json!({"n": 4, "p50": 100, "p95": 900})
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
        assert_eq!(answer["to"], "2025-12-02T00:00:00.000Z");
    }
}
