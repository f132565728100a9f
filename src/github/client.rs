//! One request to GitHub (its REST API or its OAuth endpoints) with a timeout, answered as a
//! status and JSON. Credentials travel only in the `Authorization` header, never in a URL, and
//! no error made here names one.

use crate::error::{Error, Result};
use futures_util::future::{select, Either};
use protocol::{ApiError, ErrorCode};
use serde_json::Value;
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

const TIMEOUT_MS: u64 = 10_000;

/// GitHub's answer: the status and the body as JSON (`Null` when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub json: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// GitHub's own words for a refusal (its `message`, or an OAuth `error_description`).
    pub fn message(&self) -> String {
        let text = self.json["message"]
            .as_str()
            .or_else(|| self.json["error_description"].as_str())
            .or_else(|| self.json["error"].as_str())
            .unwrap_or("no message");
        text.chars().take(200).collect()
    }

    /// A refusal as the caller sees it: `forbidden` for 401/403/404 (no access), `conflict`
    /// for 422 (GitHub will not do it), `unavailable` for anything else.
    pub fn refusal(&self, what: &str) -> Error {
        let code = match self.status {
            401 | 403 | 404 => ErrorCode::Forbidden,
            409 | 422 => ErrorCode::Conflict,
            _ => ErrorCode::Unavailable,
        };
        let message = format!(
            "GitHub refused to {what} ({}): {}",
            self.status,
            self.message()
        );
        Error::Api(ApiError::new(code, message))
    }
}

/// Sends one request. `bearer` is a user, installation or App token; `body` goes as JSON.
pub async fn call(
    method: Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer> {
    let headers = Headers::new();
    // GitHub refuses requests without a User-Agent.
    headers.set("user-agent", "session-coordinator")?;
    headers.set("accept", "application/vnd.github+json, application/json")?;
    headers.set("x-github-api-version", "2022-11-28")?;
    if let Some(token) = bearer {
        headers.set("authorization", &format!("Bearer {token}"))?;
    }
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(body) = body {
        headers.set("content-type", "application/json")?;
        init.with_body(Some(serde_json::to_string(body)?.into()));
    }
    init.with_headers(headers);
    let request = Request::new_with_init(url, &init)?;
    let fetch = Box::pin(async move {
        let mut response = Fetch::Request(request).send().await?;
        let status = response.status_code();
        let bytes = response.bytes().await?;
        Ok::<_, worker::Error>((status, bytes))
    });
    let timeout = Box::pin(Delay::from(Duration::from_millis(TIMEOUT_MS)));
    let unreachable = |detail: String| {
        // The path says what was asked; the query is left out of the log.
        let path = url.split('?').next().unwrap_or_default();
        crate::log::error(&format!("github: {path}: {detail}"));
        Error::Api(ApiError::new(
            ErrorCode::Unavailable,
            "GitHub could not be reached; try again in a moment",
        ))
    };
    match select(fetch, timeout).await {
        Either::Left((Ok((status, bytes)), _)) => Ok(Answer {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }),
        Either::Left((Err(error), _)) => Err(unreachable(error.to_string())),
        Either::Right(_) => Err(unreachable(format!("no answer in {} s", TIMEOUT_MS / 1000))),
    }
}
