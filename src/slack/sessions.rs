//! Sessions from Slack: who is asking (`users.info` → the coordinator user with that email),
//! the candidate repositories, a new session for a request, and a follow-up in a thread as a
//! prompt of its session, carrying the messages posted since the last one.

use super::events::{messages_between, title_of, Incoming};
use super::receive::{key, reply};
use crate::config::{Config, SlackConfig};
use crate::error::Result;
use crate::http::auth::caller;
use crate::http::sessions::{start, NewSession};
use crate::index::slack::SlackThread;
use crate::index::Index;
use crate::room::api::{Member, RoomClient, RoomRoute, SlackPrompt};
use crate::slack::blocks::escape;
use crate::slack::classify::{self, ThreadMessage};
use crate::slack::client::{self, bot_user_id};
use crate::time::{now_ms, rfc3339};
use protocol::api::{Repo, Session, User};
use serde_json::{json, Value};
use std::collections::HashMap;
use worker::Env;

/// The repositories `user` may open sessions on.
pub async fn candidates(config: &Config, user: &User) -> Vec<Repo> {
    crate::github::app::repos(config)
        .await
        .into_iter()
        .filter(|r| user.scopes.allows_repo(&r.name))
        .collect()
}

/// Who a Slack user is here, or what to tell them.
pub enum Found {
    User(User),
    Refused(String),
}

/// The coordinator user with the Slack user's email (`users.info`).
pub async fn who(slack: &SlackConfig, index: &Index, slack_user: &str) -> Result<Found> {
    let profile = match client::users_info(slack, slack_user).await {
        Ok(profile) => profile,
        Err(error) => {
            crate::log::error(&format!(
                "slack: users.info {slack_user}: {}",
                error.describe()
            ));
            return Ok(Found::Refused(
                "I could not look you up in Slack just now; try again in a moment.".into(),
            ));
        }
    };
    let email = profile["profile"]["email"]
        .as_str()
        .filter(|e| e.contains('@'))
        .filter(|_| profile["is_email_confirmed"] != false);
    let Some(email) = email else {
        return Ok(Found::Refused(
            "I can't see a confirmed email address on your Slack profile, so I don't know who you are here.".into(),
        ));
    };
    Ok(match index.user_by_email(email).await? {
        Some(user) if !user.disabled => Found::User(user),
        Some(_) => Found::Refused(
            "Your account on the coordinator is disabled: ask an admin to enable it.".into(),
        ),
        None => Found::Refused(format!(
            "I don't know you yet: ask an admin to add {} to the coordinator, then ask me again.",
            escape(email)
        )),
    })
}

/// The last messages of the thread, for the model.
pub(super) async fn thread_for_model(
    slack: &SlackConfig,
    incoming: &Incoming,
    bot: Option<&str>,
) -> Vec<ThreadMessage> {
    let messages = client::replies(slack, &incoming.channel_id, &incoming.thread_ts)
        .await
        .unwrap_or_default();
    let mut names = HashMap::new();
    let mut thread = Vec::new();
    let humans: Vec<&Value> = messages
        .iter()
        .filter(|m| super::events::is_human(m, bot))
        .collect();
    let start = humans.len().saturating_sub(classify::THREAD_MESSAGES);
    for message in &humans[start..] {
        thread.push(ThreadMessage {
            author: author_name(
                slack,
                &mut names,
                message["user"].as_str().unwrap_or_default(),
            )
            .await,
            text: message["text"].as_str().unwrap_or_default().to_owned(),
        });
    }
    if thread.is_empty() {
        thread.push(ThreadMessage {
            author: incoming.user_id.clone(),
            text: incoming.text.clone(),
        });
    }
    thread
}

async fn author_name(
    slack: &SlackConfig,
    names: &mut HashMap<String, String>,
    user: &str,
) -> String {
    if let Some(name) = names.get(user) {
        return name.clone();
    }
    let name = match client::users_info(slack, user).await {
        Ok(info) => ["real_name", "display_name"]
            .iter()
            .find_map(|f| info["profile"][f].as_str().filter(|n| !n.is_empty()))
            .or_else(|| info["real_name"].as_str())
            .or_else(|| info["name"].as_str())
            .unwrap_or(user)
            .to_owned(),
        Err(_) => user.to_owned(),
    };
    names.insert(user.to_owned(), name.clone());
    name
}

/// The prompt's attachments: the human messages of the thread since the last prompt (with
/// their authors), and the thread's permalink.
async fn context(slack: &SlackConfig, incoming: &Incoming, since_ts: &str) -> Vec<Value> {
    let bot = bot_user_id(slack).await.ok();
    let mut attachments = Vec::new();
    match client::replies(slack, &incoming.channel_id, &incoming.thread_ts).await {
        Ok(messages) => {
            let between = messages_between(&messages, bot.as_deref(), since_ts, &incoming.ts);
            let mut names = HashMap::new();
            let mut shown = Vec::new();
            for message in between.iter().rev().take(50).rev() {
                let user = message["user"].as_str().unwrap_or_default();
                shown.push(json!({
                    "author": author_name(slack, &mut names, user).await,
                    "text": message["text"],
                    "ts": message["ts"],
                }));
            }
            if !shown.is_empty() {
                attachments.push(json!({"type": "slack_messages", "messages": shown}));
            }
        }
        Err(error) => crate::log::error(&format!(
            "slack: the thread's messages were not read: {}",
            error.describe()
        )),
    }
    let mut thread = json!({
        "type": "slack_thread",
        "channel": incoming.channel_id,
        "thread_ts": incoming.thread_ts,
    });
    if let Some(link) = client::permalink(slack, &incoming.channel_id, &incoming.thread_ts).await {
        thread["permalink"] = json!(link);
    }
    attachments.push(thread);
    attachments
}

/// Puts a request from the thread into the session as its author's prompt.
#[allow(clippy::too_many_arguments)]
async fn prompt(
    env: &Env,
    config: &Config,
    slack: &SlackConfig,
    origin: &str,
    session_id: &str,
    user: &User,
    incoming: &Incoming,
    since_ts: &str,
) -> Result<()> {
    let base = slack.public_url.as_deref().unwrap_or(origin);
    let body = SlackPrompt {
        content: incoming.text.clone(),
        attachments: context(slack, incoming, since_ts).await,
        team_id: incoming.team_id.clone(),
        channel_id: incoming.channel_id.clone(),
        thread_ts: incoming.thread_ts.clone(),
        session_url: format!("{base}/#/s/{session_id}"),
        offer_pull_request: crate::http::pulls::github_for_pulls(config).is_ok(),
    };
    RoomClient::open(env, session_id)?
        .call_json(
            RoomRoute::SlackPrompt,
            &caller(user),
            Some(serde_json::to_vec(&body)?),
        )
        .await?;
    Ok(())
}

/// A new session on `repo` for the request, and the thread remembered as it.
#[allow(clippy::too_many_arguments)]
pub async fn run_request(
    env: &Env,
    index: &Index,
    config: &Config,
    slack: &SlackConfig,
    origin: &str,
    user: &User,
    repo: &Repo,
    incoming: &Incoming,
) -> Result<()> {
    let new = NewSession {
        branch: None,
        title: Some(title_of(&incoming.text)).filter(|t| !t.is_empty()),
        prompt: None,
        origin,
        idempotency_key: None,
    };
    let (session, _) = start(env, index, config, user, repo, new).await?;
    prompt(env, config, slack, origin, &session.id, user, incoming, "0").await?;
    let row = SlackThread {
        session_id: Some(session.id.clone()),
        user_id: user.id.clone(),
        last_seen_ts: incoming.ts.clone(),
        pending: None,
    };
    index
        .save_slack_thread(&key(incoming), &row, now_ms())
        .await
}

/// A follow-up in a thread that is a session: a prompt in it, by whoever wrote it (made a
/// member if their scopes allow the repository).
#[allow(clippy::too_many_arguments)]
pub(super) async fn follow_up(
    env: &Env,
    index: &Index,
    config: &Config,
    slack: &SlackConfig,
    origin: &str,
    user: &User,
    session: &Session,
    thread: &SlackThread,
    incoming: &Incoming,
) -> Result<()> {
    if !ensure_member(env, index, user, session).await? {
        let text = format!(
            "This thread works on `{}`, which your scopes do not include.",
            escape(&session.repo)
        );
        reply(slack, incoming, &text).await;
        return Ok(());
    }
    prompt(
        env,
        config,
        slack,
        origin,
        &session.id,
        user,
        incoming,
        &thread.last_seen_ts,
    )
    .await?;
    let row = SlackThread {
        session_id: Some(session.id.clone()),
        user_id: thread.user_id.clone(),
        last_seen_ts: incoming.ts.clone(),
        pending: None,
    };
    index
        .save_slack_thread(&key(incoming), &row, now_ms())
        .await
}

/// Makes `user` a member of the session when they are not and their scopes allow its
/// repository; false when they may not be one.
pub async fn ensure_member(
    env: &Env,
    index: &Index,
    user: &User,
    session: &Session,
) -> Result<bool> {
    if index.membership(&session.id, &user.id).await?.is_some() {
        return Ok(true);
    }
    if !user.scopes.allows_repo(&session.repo) {
        return Ok(false);
    }
    index
        .add_member(&session.id, &user.id, &rfc3339(now_ms()))
        .await?;
    let body = serde_json::to_vec(&Member { user: caller(user) })?;
    RoomClient::open(env, &session.id)?
        .call_json(RoomRoute::AddMember, &caller(user), Some(body))
        .await?;
    Ok(true)
}
