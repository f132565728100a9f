//! `POST /v1/slack/events` in the Worker: the signature checked, `url_verification`
//! answered, an `event_callback` recorded by `event_id` and answered at once, and the work done
//! after the response (`wait_until`): who is asking, then the thread's session or a new one
//! (`slack::sessions`), or the picker.

use super::events::{bot_user_of, parse_event, Incoming, Parsed};
use super::sessions::{candidates, follow_up, run_request, thread_for_model, who, Found};
use crate::config::{Config, SlackConfig};
use crate::error::Result;
use crate::index::slack::{SlackThread, ThreadKey};
use crate::index::Index;
use crate::respond;
use crate::slack::blocks::{escape, notice};
use crate::slack::classify::{self, stage, Staged};
use crate::slack::client::{self, bot_user_id, notify};
use crate::slack::verify;
use crate::time::now_ms;
use protocol::api::Repo;
use protocol::{ApiError, ErrorCode};
use serde_json::{json, Value};
use std::rc::Rc;
use worker::{Context, Env, Request, Response};

/// Slack's settings, or 404 as if the endpoint did not exist.
pub fn enabled(config: &Config) -> Result<&SlackConfig> {
    Ok(config
        .slack
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Slack endpoint (Slack is not configured)"))?)
}

/// The raw body, once its signature checked out.
pub async fn signed_body(req: &mut Request, slack: &SlackConfig) -> Result<Vec<u8>> {
    let body = respond::read_body(req, 1024 * 1024).await?;
    let timestamp = req.headers().get("x-slack-request-timestamp")?;
    let signature = req.headers().get("x-slack-signature")?;
    let now_secs = now_ms() / 1000;
    verify::check(
        &slack.signing_secret.0,
        timestamp.as_deref(),
        signature.as_deref(),
        &body,
        now_secs,
    )
    .map_err(|refusal| ApiError::new(ErrorCode::Unauthorized, refusal.message()))?;
    Ok(body)
}

pub async fn receive(
    env: &Env,
    index: &Index,
    config: &Rc<Config>,
    req: &mut Request,
    ctx: &Context,
) -> Result<Response> {
    let slack = enabled(config)?;
    let body = signed_body(req, slack).await?;
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(ErrorCode::InvalidJson, "the payload is not JSON"))?;
    match payload["type"].as_str() {
        Some("url_verification") => {
            return respond::json(200, &json!({ "challenge": payload["challenge"] }))
        }
        Some("event_callback") => {}
        _ => return respond::json(200, &json!({ "ok": true, "ignored": "not an event" })),
    }
    let event_id = payload["event_id"]
        .as_str()
        .filter(|id| !id.is_empty() && id.len() <= 100)
        .ok_or_else(|| ApiError::invalid_field("event_id is missing"))?;
    let incoming = match parse_event(&payload, bot_user_of(&payload)) {
        Parsed::Act(incoming) => incoming,
        Parsed::Ignored(why) => return respond::json(200, &json!({ "ok": true, "ignored": why })),
    };
    if !index.record_slack_event(event_id, now_ms()).await? {
        let retry = req.headers().get("x-slack-retry-num")?.unwrap_or_default();
        crate::log::info(&format!(
            "slack: event {event_id} seen before (retry {retry:?})"
        ));
        return respond::json(200, &json!({ "ok": true, "duplicate": true }));
    }
    let origin = crate::url::of(req).origin().to_owned();
    let (env, config) = (env.clone(), config.clone());
    ctx.wait_until(async move {
        handle(&env, &config, &origin, &incoming).await;
    });
    respond::json(200, &json!({ "ok": true }))
}

/// The work after the response; whatever fails is said in the thread.
async fn handle(env: &Env, config: &Config, origin: &str, incoming: &Incoming) {
    let Some(slack) = &config.slack else { return };
    if let Err(error) = act(env, config, slack, origin, incoming).await {
        let error = error.into_api();
        crate::log::error(&format!(
            "slack: event in {}: {}",
            incoming.channel_id, error.message
        ));
        let text = format!("Sorry, that did not work: {}", escape(&error.message));
        reply(slack, incoming, &text).await;
    }
}

/// A notice in the thread of the message being answered.
pub(super) async fn reply(slack: &SlackConfig, incoming: &Incoming, text: &str) {
    notify(
        slack,
        &incoming.channel_id,
        &incoming.thread_ts,
        notice(text),
    )
    .await;
}

pub(super) fn key(incoming: &Incoming) -> ThreadKey<'_> {
    ThreadKey {
        team_id: &incoming.team_id,
        channel_id: &incoming.channel_id,
        thread_ts: &incoming.thread_ts,
    }
}

async fn act(
    env: &Env,
    config: &Config,
    slack: &SlackConfig,
    origin: &str,
    incoming: &Incoming,
) -> Result<()> {
    let bot = bot_user_id(slack).await.ok();
    if bot.as_deref() == Some(incoming.user_id.as_str()) {
        return Ok(());
    }
    let index = Index::new(env.d1("DB")?);
    let user = match who(slack, &index, &incoming.user_id).await? {
        Found::User(user) => user,
        Found::Refused(text) => {
            reply(slack, incoming, &text).await;
            return Ok(());
        }
    };
    let now = now_ms();
    let thread = index.slack_thread(&key(incoming), now).await?;
    if let Some(thread) = &thread {
        if let Some(session_id) = &thread.session_id {
            let session = index
                .session(session_id)
                .await?
                .filter(|s| !s.is_archived());
            if let Some(session) = session {
                return follow_up(
                    env, &index, config, slack, origin, &user, &session, thread, incoming,
                )
                .await;
            }
        }
    }
    // A new session: none yet, or the thread's is archived or gone.
    let candidates = candidates(config, &user).await;
    let decided = match stage(
        &incoming.text,
        slack.channel_repo(&incoming.channel_id),
        &candidates,
    ) {
        Staged::Chosen(repo, _) => Some(repo),
        Staged::NotAllowed(name) => {
            let text = format!(
                "I can't open a session on `{}` for you. {}",
                escape(&name),
                yours(&candidates)
            );
            reply(slack, incoming, &text).await;
            return Ok(());
        }
        Staged::NoCandidates => {
            let text = "Your account has no repositories to work on yet: ask an admin to add some to your scopes.";
            reply(slack, incoming, text).await;
            return Ok(());
        }
        Staged::AskModel => match &slack.classifier {
            Some(classifier) => {
                let thread_messages = thread_for_model(slack, incoming, bot.as_deref()).await;
                let channel = client::channel_name(slack, &incoming.channel_id)
                    .await
                    .unwrap_or_else(|| incoming.channel_id.clone());
                classify::ask_model(classifier, &candidates, &channel, &thread_messages)
                    .await
                    .map(|d| d.repo)
            }
            None => None,
        },
    };
    match decided.and_then(|name| candidates.iter().find(|r| r.name == name).cloned()) {
        Some(repo) => run_request(env, &index, config, slack, origin, &user, &repo, incoming).await,
        None => {
            // The picker; the request waits in the thread's row for the choice.
            let pending = serde_json::to_string(incoming)?;
            let row = SlackThread {
                session_id: None,
                user_id: user.id.clone(),
                last_seen_ts: "0".into(),
                pending: Some(pending),
            };
            index.save_slack_thread(&key(incoming), &row, now).await?;
            let names: Vec<String> = candidates.iter().map(|r| r.name.clone()).collect();
            let message = crate::slack::blocks::picker(&names, "");
            notify(slack, &incoming.channel_id, &incoming.thread_ts, message).await;
            Ok(())
        }
    }
}

fn yours(candidates: &[Repo]) -> String {
    let names: Vec<String> = candidates
        .iter()
        .take(10)
        .map(|r| format!("`{}`", r.name))
        .collect();
    format!("You can use: {}.", names.join(", "))
}
