//! OpenCode's v1 HTTP API as the bridge uses it, over reqwest: health, sessions, prompts,
//! aborts, permission replies, and the `GET /event` stream of server-sent events (parsed by
//! eventsource-stream). What to do with the answers is [`super::opencode`]'s business.

use crate::error::{Error, Result};
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::header::ACCEPT;
use reqwest::{Method, Url};
use serde_json::{json, Value};
use std::time::Duration;

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A health check is retried, so each try is short.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole answers longer than this are refused.
const MAX_ANSWER: usize = 4 * 1024 * 1024;
/// An event longer than this is dropped rather than handed on.
const MAX_EVENT: usize = 16 * 1024 * 1024;
/// How much of a refusal's body is quoted in the error.
const DETAIL_LIMIT: usize = 500;

/// One OpenCode server.
pub struct Api {
    client: reqwest::Client,
    base: Url,
    auth: Option<BasicAuth>,
}

/// `OPENCODE_SERVER_PASSWORD` protects a server with basic auth; the bridge then uses it too.
/// No `Debug`: it holds a password.
struct BasicAuth {
    username: String,
    password: String,
}

impl BasicAuth {
    fn from_env() -> Option<BasicAuth> {
        let password = std::env::var("OPENCODE_SERVER_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())?;
        let username = std::env::var("OPENCODE_SERVER_USERNAME")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "opencode".into());
        Some(BasicAuth { username, password })
    }
}

/// What `prompt_async` said.
#[derive(Debug, PartialEq, Eq)]
pub enum PromptAnswer {
    Accepted,
    /// The session does not exist (a server started again forgets them).
    SessionGone,
}

impl Api {
    /// A client for the server at `base` (`http://host:port/`).
    pub fn new(base: &str) -> Result<Api> {
        let url = Url::parse(base)
            .map_err(|e| Error::Invalid(format!("bad OpenCode URL {base:?}: {e}")))?;
        if url.scheme() != "http" {
            return Err(Error::Invalid(format!(
                "only http:// URLs are supported: {base:?}"
            )));
        }
        // The server is on this machine: the builder uses no proxy from the environment.
        let client = crate::http::client_builder()?
            .connect_timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(Error::http("cannot set up the HTTP client"))?;
        Ok(Api {
            client,
            base: url,
            auth: BasicAuth::from_env(),
        })
    }

    /// `host:port`, for log lines.
    pub fn address(&self) -> String {
        format!(
            "{}:{}",
            self.base.host_str().unwrap_or("?"),
            self.base.port_or_known_default().unwrap_or(0)
        )
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        url.set_path(path);
        let request = self.client.request(method, url);
        match &self.auth {
            Some(auth) => request.basic_auth(&auth.username, Some(&auth.password)),
            None => request,
        }
    }

    /// Sends a request with a JSON body (or none) and reads the whole answer within `timeout`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
        action: &str,
    ) -> Result<(u16, Vec<u8>)> {
        let mut request = self
            .request(method, path)
            .header(ACCEPT, "application/json")
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(Error::http(action))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Error::http(action))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_ANSWER {
                return Err(Error::Invalid(format!(
                    "{action}: the answer is over {MAX_ANSWER} bytes"
                )));
            }
        }
        Ok((status, bytes))
    }

    /// `GET /global/health`: the server's version once it answers.
    pub async fn version(&self) -> Result<String> {
        let (status, body) = self
            .call(
                Method::GET,
                "/global/health",
                None,
                HEALTH_TIMEOUT,
                "health check",
            )
            .await?;
        if status != 200 {
            return Err(refusal("health check", status, &[]));
        }
        let health: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(health
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string())
    }

    /// `POST /session`: a new session's id.
    pub async fn create_session(&self) -> Result<String> {
        const ACTION: &str = "cannot create an OpenCode session";
        let (status, body) = self
            .call(
                Method::POST,
                "/session",
                Some(&json!({})),
                REQUEST_TIMEOUT,
                ACTION,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(refusal(ACTION, status, &[]));
        }
        let session: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Invalid(format!("OpenCode's session is not JSON: {e}")))?;
        session
            .get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| Error::Invalid("OpenCode's session has no id".into()))
    }

    /// `POST /session/:id/prompt_async`: OpenCode answers at once and works in the background.
    pub async fn prompt_async(&self, session_id: &str, body: &Value) -> Result<PromptAnswer> {
        let (status, answer) = self
            .call(
                Method::POST,
                &format!("/session/{session_id}/prompt_async"),
                Some(body),
                REQUEST_TIMEOUT,
                "cannot send the prompt to OpenCode",
            )
            .await?;
        match status {
            200..=299 => Ok(PromptAnswer::Accepted),
            404 => Ok(PromptAnswer::SessionGone),
            status => Err(refusal("OpenCode refused the prompt", status, &answer)),
        }
    }

    /// `POST /session/:id/message` with `noReply: true` in `body`: OpenCode stores the message
    /// in the session without asking the model, and answers with it; its id, when it says.
    pub async fn add_message(&self, session_id: &str, body: &Value) -> Result<Option<String>> {
        const ACTION: &str = "cannot add a message to the OpenCode session";
        let (status, answer) = self
            .call(
                Method::POST,
                &format!("/session/{session_id}/message"),
                Some(body),
                REQUEST_TIMEOUT,
                ACTION,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(refusal(ACTION, status, &answer));
        }
        let message: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        Ok(message
            .pointer("/info/id")
            .and_then(Value::as_str)
            .map(String::from))
    }

    /// Whether `GET /session/status` lists the session as anything but idle; false when the
    /// server cannot say (an older one without the route).
    pub async fn is_busy(&self, session_id: &str) -> bool {
        match self
            .call(
                Method::GET,
                "/session/status",
                None,
                REQUEST_TIMEOUT,
                "session status",
            )
            .await
        {
            Ok((200, body)) => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|statuses| {
                    statuses
                        .get(session_id)
                        .and_then(|s| s.get("type"))
                        .and_then(Value::as_str)
                        .map(|kind| kind != "idle")
                })
                .unwrap_or(false),
            _ => false,
        }
    }

    /// `POST /session/:id/abort`.
    pub async fn abort(&self, session_id: &str) -> Result<()> {
        let path = format!("/session/{session_id}/abort");
        self.post_expecting_success(&path, None, "cannot abort")
            .await
    }

    /// `POST /permission/:id/reply` with a refusal, and the reason the model is told.
    pub async fn reject_permission(&self, id: &str, message: &str) -> Result<()> {
        let body = json!({ "reply": "reject", "message": message });
        let path = format!("/permission/{id}/reply");
        self.post_expecting_success(&path, Some(&body), "cannot answer the permission request")
            .await
    }

    async fn post_expecting_success(
        &self,
        path: &str,
        body: Option<&Value>,
        action: &'static str,
    ) -> Result<()> {
        let (status, _) = self
            .call(Method::POST, path, body, REQUEST_TIMEOUT, action)
            .await?;
        match status {
            200..=299 => Ok(()),
            status => Err(refusal(action, status, &[])),
        }
    }

    /// `GET /event`: every event the server publishes, as JSON, until the stream ends or
    /// breaks (an `Err` item, then nothing). Events whose data is not JSON are skipped.
    pub async fn events(&self) -> Result<BoxStream<'static, Result<Value>>> {
        const ACTION: &str = "cannot open OpenCode's event stream";
        let sent = self
            .request(Method::GET, "/event")
            .header(ACCEPT, "text/event-stream")
            .send();
        // Only the answer's head is timed: the stream itself stays open as long as it lasts.
        let response = tokio::time::timeout(REQUEST_TIMEOUT, sent)
            .await
            .map_err(|_| Error::TimedOut {
                what: "opening OpenCode's event stream",
                limit: REQUEST_TIMEOUT,
            })?
            .map_err(Error::http(ACTION))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(refusal(ACTION, status, &[]));
        }
        let chunks = futures_util::stream::unfold(Some(response), |response| async move {
            let mut response = response?;
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        });
        let events = chunks.eventsource().filter_map(|event| async move {
            match event {
                Ok(event) if event.data.len() > MAX_EVENT => {
                    crate::log!("opencode", "dropped an event of {} bytes", event.data.len());
                    None
                }
                Ok(event) => serde_json::from_str::<Value>(&event.data).ok().map(Ok),
                Err(EventStreamError::Transport(source)) => Some(Err(Error::Http {
                    action: "OpenCode's event stream broke".into(),
                    source,
                })),
                Err(e) => Some(Err(Error::Invalid(format!(
                    "OpenCode's event stream is not server-sent events: {e}"
                )))),
            }
        });
        Ok(events.boxed())
    }
}

/// An answer with a status that means no, quoting the start of its body.
fn refusal(action: &'static str, status: u16, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    let (detail, _) = crate::process::cut_text(&text, DETAIL_LIMIT);
    Error::Status {
        action,
        status,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls() {
        assert_eq!(
            Api::new("http://127.0.0.1:4096/").unwrap().address(),
            "127.0.0.1:4096"
        );
        assert_eq!(
            Api::new("http://localhost").unwrap().address(),
            "localhost:80"
        );
        for bad in ["https://x", "http://", "http://h:port", "not a url"] {
            assert!(Api::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_quote_the_start_of_the_body() {
        let long = "x".repeat(DETAIL_LIMIT + 10);
        let error = refusal("OpenCode refused the prompt", 400, long.as_bytes());
        assert_eq!(
            error.to_string(),
            format!(
                "OpenCode refused the prompt: HTTP 400 {}",
                "x".repeat(DETAIL_LIMIT)
            )
        );
    }
}
