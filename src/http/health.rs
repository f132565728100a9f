//! `GET /health`: whether this configuration can work, for anyone; and `?deep=1`, which asks
//! from here what the coordinator depends on (the sandbox provider, which checks its own
//! credentials; the GitHub App, by its JWT and `GET /app`; Slack's `auth.test`; the
//! classifier's model list), each with a status and a latency. Deep checks cost calls to
//! others, so they need the admin key, and their result is kept for 30 s in the isolate; without
//! the key only a result that fresh is shown.

use crate::config::{Config, ProviderKind};
use crate::error::{Error, Result};
use crate::github::client::Answer;
use crate::respond;
use crate::time::{now_ms, rfc3339};
use futures_util::future::{select, Either};
use protocol::crypto::{constant_time_eq, sha256_hex};
use protocol::{ApiError, ErrorCode};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, Response};

/// How long a deep result is kept, and shown to callers without the admin key.
const CACHE_MS: u64 = 30_000;
/// Each check's deadline.
const CHECK_TIMEOUT_MS: u64 = 5_000;

thread_local! {
    static DEEP: RefCell<Option<(u64, Value)>> = const { RefCell::new(None) };
}

pub async fn health(req: &Request, config: &Config, query_string: &str) -> Result<Response> {
    let provider = &config.provider;
    let mut health = json!({"status": "healthy", "env": config.env, "version": env!("CARGO_PKG_VERSION"), "provider": provider.kind.as_str()});
    if let Some(reason) = provider.unusable(&config.env) {
        health["provider_detail"] = json!(reason);
    }
    if let Some(gh) = &config.github {
        health["github"] = json!({"app": gh.app.is_some(), "sign_in": gh.sign_in.is_some(), "webhooks": gh.webhook_secret.is_some(), "git_host": gh.git.base_url()});
    }
    if let Some(slack) = &config.slack {
        health["slack"] = json!({"classifier": slack.classifier.is_some(), "channels": slack.channel_repos.len()});
    }
    if crate::http::query::param(query_string, "deep").is_some_and(|v| v != "0") {
        health["deep"] = deep(req, config).await?;
    }
    respond::json(200, &health)
}

fn is_admin(req: &Request, config: &Config) -> Result<bool> {
    let (Some(admin_key), Some(header)) = (&config.admin_key, req.headers().get("authorization")?)
    else {
        return Ok(false);
    };
    let key = header.strip_prefix("Bearer ").unwrap_or_default().trim();
    Ok(constant_time_eq(
        sha256_hex(key.as_bytes()).as_bytes(),
        sha256_hex(admin_key.as_bytes()).as_bytes(),
    ))
}

/// The kept result while it is fresh; else new checks for the admin key, a refusal for others.
async fn deep(req: &Request, config: &Config) -> Result<Value> {
    let now = now_ms();
    let kept = DEEP.with_borrow(|kept| kept.clone());
    if let Some((at, mut result)) = kept.filter(|(at, _)| now.saturating_sub(*at) < CACHE_MS) {
        result["cached"] = json!(true);
        result["age_ms"] = json!(now.saturating_sub(at));
        return Ok(result);
    }
    if !is_admin(req, config)? {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "deep health needs the admin key (a result is shown to anyone for 30 s once checked)",
        )
        .into());
    }
    // One after another: each has its own deadline, and a deep check is rare (kept 30 s).
    let provider = timed(check_provider(config)).await;
    let github = timed(check_github(config)).await;
    let slack = timed(check_slack(config)).await;
    let classifier = timed(check_classifier(config)).await;
    let checks =
        json!({"provider": provider, "github": github, "slack": slack, "classifier": classifier});
    let failing = [&provider, &github, &slack, &classifier]
        .iter()
        .any(|check| check["status"] == "failing");
    let result = json!({
        "status": if failing { "degraded" } else { "ok" },
        "checked_at": rfc3339(now),
        "cached": false,
        "age_ms": 0,
        "checks": checks,
    });
    DEEP.with_borrow_mut(|kept| *kept = Some((now, result.clone())));
    Ok(result)
}

/// What one check found.
enum Check {
    Ok(Option<String>),
    Failing(String),
    NotConfigured,
}

async fn timed(check: impl std::future::Future<Output = Check>) -> Value {
    let started = now_ms();
    let outcome = check.await;
    let latency_ms = now_ms().saturating_sub(started);
    match outcome {
        Check::Ok(detail) => json!({"status": "ok", "latency_ms": latency_ms, "detail": detail}),
        Check::Failing(detail) => {
            json!({"status": "failing", "latency_ms": latency_ms, "detail": detail})
        }
        Check::NotConfigured => json!({"status": "not_configured", "latency_ms": null}),
    }
}

async fn check_provider(config: &Config) -> Check {
    if config.provider.kind == ProviderKind::None {
        return Check::NotConfigured;
    }
    let client = match crate::provider::ProviderClient::new(&config.provider, &config.env) {
        Ok(client) => client,
        Err(refusal) => return Check::Failing(refusal.0),
    };
    match client.health().await {
        Ok(h) if h.ok => Check::Ok(Some(format!("{} {}", h.provider, h.app).trim().to_owned())),
        Ok(h) if h.problems.is_empty() => {
            Check::Failing(format!("{} says it is not ok", h.provider))
        }
        Ok(h) => Check::Failing(h.problems.join("; ")),
        Err(error) => Check::Failing(error.0),
    }
}

async fn check_github(config: &Config) -> Check {
    let Some(gh) = config.github.as_ref().filter(|gh| gh.app.is_some()) else {
        return Check::NotConfigured;
    };
    match crate::github::app::identify(gh).await {
        Ok(answer) if answer.ok() => Check::Ok(answer.json["slug"].as_str().map(str::to_owned)),
        Ok(answer) => Check::Failing(format!(
            "GitHub refused the App's JWT ({}): {}",
            answer.status,
            answer.message()
        )),
        Err(error) => Check::Failing(message_of(error)),
    }
}

async fn check_slack(config: &Config) -> Check {
    let Some(slack) = &config.slack else {
        return Check::NotConfigured;
    };
    match crate::slack::client::auth_test(slack).await {
        Ok(answer) => Check::Ok(answer["team"].as_str().map(str::to_owned)),
        Err(error) => Check::Failing(format!("Slack's auth.test: {}", error.describe())),
    }
}

async fn check_classifier(config: &Config) -> Check {
    let Some(classifier) = config.slack.as_ref().and_then(|s| s.classifier.as_ref()) else {
        return Check::NotConfigured;
    };
    let key = classifier.api_key.as_ref().map_or("", |k| k.0.as_str());
    // An OpenAI-compatible API lists its models without spending a completion.
    let url = format!("{}/models", classifier.url.trim_end_matches('/'));
    match probe(Method::Get, &url, key).await {
        Ok(answer) if (200..300).contains(&answer.status) => Check::Ok(None),
        Ok(answer) => Check::Failing(format!("the classifier answered {}", answer.status)),
        Err(detail) => Check::Failing(detail),
    }
}

fn message_of(error: Error) -> String {
    match error {
        Error::Api(error) => error.message,
        // Logged where it happened; the page says no more than that.
        _ => "the check failed; see the coordinator's logs".into(),
    }
}

/// One request with a deadline; the credential goes only in `Authorization`, and what comes
/// back is read as JSON (`Null` if it is not). Errors name the host, never the URL's query.
async fn probe(method: Method, url: &str, bearer: &str) -> std::result::Result<Answer, String> {
    let host = url.split('/').nth(2).unwrap_or_default().to_owned();
    let request = || -> Result<Request> {
        let headers = Headers::new();
        headers.set("user-agent", "session-coordinator")?;
        headers.set("accept", "application/json")?;
        if !bearer.is_empty() {
            headers.set("authorization", &format!("Bearer {bearer}"))?;
        }
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        Ok(Request::new_with_init(url, &init)?)
    };
    let request = request().map_err(|_| format!("{host}: not a usable URL"))?;
    let fetch = Box::pin(async move {
        let mut response = Fetch::Request(request).send().await?;
        let status = response.status_code();
        let bytes = response.bytes().await?;
        Ok::<_, worker::Error>((status, bytes))
    });
    let timeout = Box::pin(Delay::from(Duration::from_millis(CHECK_TIMEOUT_MS)));
    match select(fetch, timeout).await {
        Either::Left((Ok((status, bytes)), _)) => Ok(Answer {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }),
        Either::Left((Err(_), _)) => Err(format!("{host} could not be reached")),
        Either::Right(_) => Err(format!(
            "{host} did not answer in {} s",
            CHECK_TIMEOUT_MS / 1000
        )),
    }
}
