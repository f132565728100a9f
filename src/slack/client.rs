//! Slack's Web API, one function per method. Writes go as JSON, reads as a form; the bot
//! token travels only in the `Authorization` header and no error made here names it. A 429
//! comes back as [`SlackError::RateLimited`] with Slack's `Retry-After`, so the caller can
//! wait that long: the Worker waits in place a bounded number of times ([`with_retries`]), the
//! room through its alarm.

use crate::config::SlackConfig;
use futures_util::future::{select, Either};
use serde_json::{json, Value};
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

const TIMEOUT_MS: u64 = 10_000;

/// The Worker waits for a 429 in place at most this many times, and at most this long each.
const WORKER_RETRIES: u32 = 3;
const WORKER_LONGEST_WAIT_SECS: u64 = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlackError {
    /// 429: wait this many seconds before the next call.
    RateLimited(u64),
    /// Slack answered `ok: false` with this error.
    Refused(String),
    /// No answer, an answer that is not Slack's JSON, or a 5xx.
    Unreachable(String),
}

impl SlackError {
    pub fn describe(&self) -> String {
        match self {
            SlackError::RateLimited(secs) => format!("rate limited for {secs} s"),
            SlackError::Refused(error) => format!("refused: {error}"),
            SlackError::Unreachable(detail) => format!("unreachable: {detail}"),
        }
    }
}

pub type SlackResult<T> = Result<T, SlackError>;

enum Body {
    Json(Value),
    Form(Vec<(&'static str, String)>),
}

async fn call(slack: &SlackConfig, method: &str, body: Body) -> SlackResult<Value> {
    let unreachable = |detail: String| {
        crate::log::error(&format!("slack: {method}: {detail}"));
        SlackError::Unreachable(detail)
    };
    let request = (|| -> worker::Result<Request> {
        let headers = Headers::new();
        headers.set("authorization", &format!("Bearer {}", slack.bot_token.0))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post);
        match body {
            Body::Json(value) => {
                headers.set("content-type", "application/json; charset=utf-8")?;
                init.with_body(Some(value.to_string().into()));
            }
            Body::Form(fields) => {
                headers.set("content-type", "application/x-www-form-urlencoded")?;
                let form = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish();
                init.with_body(Some(form.into()));
            }
        }
        init.with_headers(headers);
        Request::new_with_init(&format!("{}{method}", slack.api_url), &init)
    })()
    .map_err(|e| unreachable(e.to_string()))?;
    let fetch = Box::pin(async move {
        let mut response = Fetch::Request(request).send().await?;
        let status = response.status_code();
        let retry_after = response.headers().get("retry-after")?;
        let bytes = response.bytes().await?;
        Ok::<_, worker::Error>((status, retry_after, bytes))
    });
    let timeout = Box::pin(Delay::from(Duration::from_millis(TIMEOUT_MS)));
    let (status, retry_after, bytes) = match select(fetch, timeout).await {
        Either::Left((Ok(answer), _)) => answer,
        Either::Left((Err(error), _)) => return Err(unreachable(error.to_string())),
        Either::Right(_) => {
            return Err(unreachable(format!("no answer in {} s", TIMEOUT_MS / 1000)))
        }
    };
    if status == 429 {
        let secs = retry_after
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 3600);
        crate::log::info(&format!("slack: {method}: rate limited for {secs} s"));
        return Err(SlackError::RateLimited(secs));
    }
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status >= 500 || !answer.is_object() {
        return Err(unreachable(format!("status {status}")));
    }
    if answer["ok"] != true {
        let error = answer["error"]
            .as_str()
            .unwrap_or("unknown_error")
            .to_owned();
        crate::log::error(&format!("slack: {method}: {error}"));
        return Err(SlackError::Refused(error));
    }
    Ok(answer)
}

/// Runs `attempt` again after each 429, waiting `Retry-After`, a bounded number of times.
/// Only a 429 is retried: Slack did nothing with such a request, so nothing is posted twice.
pub async fn with_retries<T, F, Fut>(mut attempt: F) -> SlackResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = SlackResult<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(SlackError::RateLimited(secs))
                if tries < WORKER_RETRIES && secs <= WORKER_LONGEST_WAIT_SECS =>
            {
                tries += 1;
                Delay::from(Duration::from_secs(secs)).await;
            }
            other => return other,
        }
    }
}

/// `auth.test`: the bot's own user id (and team), checked once per isolate.
pub async fn auth_test(slack: &SlackConfig) -> SlackResult<Value> {
    call(slack, "auth.test", Body::Form(vec![])).await
}

/// The bot's own user id, from `auth.test`, cached for the isolate's life.
pub async fn bot_user_id(slack: &SlackConfig) -> SlackResult<String> {
    thread_local! {
        static BOT_USER: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    }
    if let Some(id) = BOT_USER.with_borrow(|id| id.clone()) {
        return Ok(id);
    }
    let answer = with_retries(|| auth_test(slack)).await?;
    let id = answer["user_id"].as_str().unwrap_or_default().to_owned();
    BOT_USER.with_borrow_mut(|cached| *cached = Some(id.clone()));
    Ok(id)
}

/// `users.info`: the user's `user` object.
pub async fn users_info(slack: &SlackConfig, user: &str) -> SlackResult<Value> {
    let fields = vec![("user", user.to_owned())];
    let answer = with_retries(|| call(slack, "users.info", Body::Form(fields.clone()))).await?;
    Ok(answer["user"].clone())
}

/// `conversations.info`: the channel's name, when Slack tells it.
pub async fn channel_name(slack: &SlackConfig, channel: &str) -> Option<String> {
    let fields = vec![("channel", channel.to_owned())];
    let answer = call(slack, "conversations.info", Body::Form(fields))
        .await
        .ok()?;
    answer["channel"]["name"].as_str().map(str::to_owned)
}

/// `conversations.replies`: the thread's messages, oldest first (with their metadata).
pub async fn replies(
    slack: &SlackConfig,
    channel: &str,
    thread_ts: &str,
) -> SlackResult<Vec<Value>> {
    let fields = vec![
        ("channel", channel.to_owned()),
        ("ts", thread_ts.to_owned()),
        ("limit", "200".to_owned()),
        ("include_all_metadata", "true".to_owned()),
    ];
    let answer = call(slack, "conversations.replies", Body::Form(fields)).await?;
    Ok(answer["messages"].as_array().cloned().unwrap_or_default())
}

/// `chat.getPermalink`: a link to a message.
pub async fn permalink(slack: &SlackConfig, channel: &str, ts: &str) -> Option<String> {
    let fields = vec![
        ("channel", channel.to_owned()),
        ("message_ts", ts.to_owned()),
    ];
    let answer = call(slack, "chat.getPermalink", Body::Form(fields))
        .await
        .ok()?;
    answer["permalink"].as_str().map(str::to_owned)
}

/// A message for the thread: fallback text, blocks, and the key that lets a lost answer be
/// found again (`metadata.event_payload.key`).
pub struct Post<'a> {
    pub channel: &'a str,
    pub thread_ts: &'a str,
    pub text: &'a str,
    pub blocks: &'a Value,
    pub key: Option<&'a str>,
}

/// The event type of the metadata the bot's posts carry.
pub const POST_EVENT_TYPE: &str = "coordinator_post";

/// `chat.postMessage` in a thread, once (no retry): its `ts`.
pub async fn post_message(slack: &SlackConfig, post: &Post<'_>) -> SlackResult<String> {
    let mut body = json!({
        "channel": post.channel,
        "thread_ts": post.thread_ts,
        "text": post.text,
        "blocks": post.blocks,
        "unfurl_links": false,
    });
    if let Some(key) = post.key {
        body["metadata"] = json!({"event_type": POST_EVENT_TYPE, "event_payload": {"key": key}});
    }
    let answer = call(slack, "chat.postMessage", Body::Json(body)).await?;
    Ok(answer["ts"].as_str().unwrap_or_default().to_owned())
}

/// A notice in a thread from the Worker: retried after 429s, never otherwise.
pub async fn notify(slack: &SlackConfig, channel: &str, thread_ts: &str, message: (String, Value)) {
    let (text, blocks) = message;
    let post = Post {
        channel,
        thread_ts,
        text: &text,
        blocks: &blocks,
        key: None,
    };
    if let Err(error) = with_retries(|| post_message(slack, &post)).await {
        crate::log::error(&format!(
            "slack: a notice was not posted: {}",
            error.describe()
        ));
    }
}

/// `chat.update` of one of the bot's messages.
pub async fn update(
    slack: &SlackConfig,
    channel: &str,
    ts: &str,
    text: &str,
    blocks: &Value,
) -> SlackResult<()> {
    let body = json!({"channel": channel, "ts": ts, "text": text, "blocks": blocks});
    call(slack, "chat.update", Body::Json(body)).await.map(drop)
}

/// The `ts` of the bot's post with this key in the thread, if Slack has it (a post whose
/// answer was lost).
pub async fn find_post(
    slack: &SlackConfig,
    channel: &str,
    thread_ts: &str,
    key: &str,
) -> SlackResult<Option<String>> {
    let messages = replies(slack, channel, thread_ts).await?;
    Ok(messages
        .iter()
        .find(|m| m["metadata"]["event_payload"]["key"] == key)
        .and_then(|m| m["ts"].as_str().map(str::to_owned)))
}

/// `/health?deep=1`: whether `auth.test` answers, and how fast.
pub async fn health(slack: &SlackConfig) -> Value {
    let started = crate::time::now_ms();
    let answer = auth_test(slack).await;
    let latency_ms = crate::time::now_ms().saturating_sub(started);
    match answer {
        Ok(_) => json!({"ok": true, "latency_ms": latency_ms}),
        Err(error) => json!({"ok": false, "latency_ms": latency_ms, "detail": error.describe()}),
    }
}
