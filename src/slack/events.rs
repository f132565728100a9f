//! `POST /v1/slack/events`: Slack's Events API. A signed `url_verification` is answered with
//! its challenge; an `event_callback` is recorded by `event_id` (a retry or a replay of one
//! already recorded is answered and ignored) and answered at once, and the work is done after
//! the response (`wait_until`): who is asking (`users.info` → the coordinator user with that
//! email), then the thread's session (a follow-up becomes a prompt with the messages posted
//! since the last one) or a new session on the repository [`classify`](super::classify)
//! chooses, or the picker. Messages from bots, the app's own included, are ignored.
//! What an event means is pure and tested natively.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message to act on: a mention of the bot, or a message in a direct conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    pub team_id: String,
    pub channel_id: String,
    /// The Slack user who wrote it.
    pub user_id: String,
    /// The text without the mention of the bot.
    pub text: String,
    pub ts: String,
    /// The thread it belongs to: its parent's `ts`, or its own when it starts one.
    pub thread_ts: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Act(Incoming),
    Ignored(&'static str),
}

/// What an `event_callback` payload means. `bot_user_id` is the app's own user (from the
/// payload's `authorizations`, or `auth.test`).
pub fn parse_event(payload: &Value, bot_user_id: Option<&str>) -> Parsed {
    let event = &payload["event"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match event["type"].as_str() {
        Some("app_mention") => {}
        Some("message") if event["channel_type"] == "im" => {}
        Some("message") => return Parsed::Ignored("a channel message without a mention"),
        _ => return Parsed::Ignored("an event this app does not act on"),
    }
    if !event["bot_id"].is_null()
        || event["subtype"] == "bot_message"
        || !event["bot_profile"].is_null()
    {
        return Parsed::Ignored("a message from a bot");
    }
    if !event["subtype"].is_null() {
        return Parsed::Ignored("not a new message (edited, deleted, joined …)");
    }
    let (Some(user_id), Some(channel_id), Some(ts)) = (
        text(&event["user"]),
        text(&event["channel"]),
        text(&event["ts"]),
    ) else {
        return Parsed::Ignored("a message without its user, channel or ts");
    };
    if bot_user_id == Some(user_id.as_str()) {
        return Parsed::Ignored("the app's own message");
    }
    let team_id = text(&payload["team_id"])
        .or_else(|| text(&event["team"]))
        .unwrap_or_default();
    let body = strip_mention(event["text"].as_str().unwrap_or_default(), bot_user_id);
    if body.is_empty() {
        return Parsed::Ignored("a mention with nothing asked");
    }
    let thread_ts = text(&event["thread_ts"]).unwrap_or_else(|| ts.clone());
    Parsed::Act(Incoming {
        team_id,
        channel_id,
        user_id,
        text: body,
        ts,
        thread_ts,
    })
}

/// The app's user id as the payload's `authorizations` name it.
pub fn bot_user_of(payload: &Value) -> Option<&str> {
    payload["authorizations"]
        .as_array()?
        .iter()
        .find(|a| a["is_bot"] == true)
        .and_then(|a| a["user_id"].as_str())
}

/// The text without mentions of the bot (`<@U123>`), line breaks kept; the leading mention
/// when the bot's id is not known.
pub fn strip_mention(text: &str, bot_user_id: Option<&str>) -> String {
    let mut rest = text.trim();
    let mut out = String::new();
    let mut first = true;
    while let Some(start) = rest.find("<@") {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let mention = &rest[start + 2..start + len];
        let id = mention.split('|').next().unwrap_or_default();
        let is_bot = match bot_user_id {
            Some(bot) => id == bot,
            None => first && rest[..start].trim().is_empty(),
        };
        first = false;
        out.push_str(&rest[..start]);
        if is_bot {
            rest = &rest[start + len + 1..];
            if out.trim().is_empty() || out.ends_with(' ') {
                rest = rest.trim_start_matches(' ');
            }
        } else {
            out.push_str(&rest[start..start + len + 1]);
            rest = &rest[start + len + 1..];
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// Slack's `ts` as a sortable pair (seconds, micro part): `"1700000000.000100"`.
pub fn ts_key(ts: &str) -> (u64, u64) {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    (secs.parse().unwrap_or(0), frac.parse().unwrap_or(0))
}

/// A message of the thread written by a person (not a bot, not a join or an edit).
pub fn is_human(message: &Value, bot_user_id: Option<&str>) -> bool {
    message["bot_id"].is_null()
        && message["subtype"].is_null()
        && message["user"]
            .as_str()
            .is_some_and(|u| Some(u) != bot_user_id)
}

/// The human messages of a thread after `after_ts` and before `before_ts` (exclusive).
pub fn messages_between<'a>(
    messages: &'a [Value],
    bot_user_id: Option<&str>,
    after_ts: &str,
    before_ts: &str,
) -> Vec<&'a Value> {
    let (after, before) = (ts_key(after_ts), ts_key(before_ts));
    messages
        .iter()
        .filter(|m| is_human(m, bot_user_id))
        .filter(|m| {
            let at = ts_key(m["ts"].as_str().unwrap_or_default());
            at > after && at < before
        })
        .collect()
}

/// A session's title from the request: its first line, at most 80 characters.
pub fn title_of(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

#[cfg(target_arch = "wasm32")]
pub use worker_side::{
    candidates, enabled, ensure_member, receive, run_request, signed_body, who, Found,
};

#[cfg(target_arch = "wasm32")]
mod worker_side {
    use super::{bot_user_of, messages_between, parse_event, title_of, Incoming, Parsed};
    use crate::config::{Config, SlackConfig};
    use crate::error::Result;
    use crate::http::auth::caller;
    use crate::http::sessions::{start, NewSession};
    use crate::index::slack::{SlackThread, ThreadKey};
    use crate::index::Index;
    use crate::respond;
    use crate::room::api::{Member, RoomClient, RoomRoute, SlackPrompt};
    use crate::slack::blocks::{escape, notice};
    use crate::slack::classify::{self, stage, Staged, ThreadMessage};
    use crate::slack::client::{self, bot_user_id, notify};
    use crate::slack::verify;
    use crate::time::{now_ms, rfc3339};
    use protocol::api::{Repo, Session, User};
    use protocol::{ApiError, ErrorCode};
    use serde_json::{json, Value};
    use std::collections::HashMap;
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
            Parsed::Ignored(why) => {
                return respond::json(200, &json!({ "ok": true, "ignored": why }))
            }
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
            notify(
                slack,
                &incoming.channel_id,
                &incoming.thread_ts,
                notice(&text),
            )
            .await;
        }
    }

    fn key(incoming: &Incoming) -> ThreadKey<'_> {
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
                notify(
                    slack,
                    &incoming.channel_id,
                    &incoming.thread_ts,
                    notice(&text),
                )
                .await;
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
                notify(
                    slack,
                    &incoming.channel_id,
                    &incoming.thread_ts,
                    notice(&text),
                )
                .await;
                return Ok(());
            }
            Staged::NoCandidates => {
                let text = "Your account has no repositories to work on yet: ask an admin to add some to your scopes.";
                notify(
                    slack,
                    &incoming.channel_id,
                    &incoming.thread_ts,
                    notice(text),
                )
                .await;
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
            Some(repo) => {
                run_request(env, &index, config, slack, origin, &user, &repo, incoming).await
            }
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
    async fn thread_for_model(
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
            .filter(|m| super::is_human(m, bot))
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
        if let Some(link) =
            client::permalink(slack, &incoming.channel_id, &incoming.thread_ts).await
        {
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
    async fn follow_up(
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
            notify(
                slack,
                &incoming.channel_id,
                &incoming.thread_ts,
                notice(&text),
            )
            .await;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(fields: Value) -> Value {
        let mut event = json!({"type": "app_mention", "user": "U1", "channel": "C1", "ts": "100.000200", "text": "<@UBOT> fix the login"});
        for (k, v) in fields.as_object().unwrap() {
            event[k] = v.clone();
        }
        json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event,
               "authorizations": [{"user_id": "UBOT", "is_bot": true}]})
    }

    fn check(fields: Value, expected: Result<(&str, &str), &str>) {
        let payload = event(fields);
        let parsed = parse_event(&payload, bot_user_of(&payload));
        match (parsed, expected) {
            (Parsed::Act(incoming), Ok((text, thread_ts))) => {
                assert_eq!(
                    (incoming.text.as_str(), incoming.thread_ts.as_str()),
                    (text, thread_ts)
                );
                assert_eq!(incoming.team_id, "T1");
            }
            (Parsed::Ignored(why), Err(expected)) => assert_eq!(why, expected),
            (parsed, expected) => panic!("{parsed:?} is not {expected:?}"),
        }
    }

    #[test]
    fn events() {
        check(json!({}), Ok(("fix the login", "100.000200")));
        check(json!({"thread_ts": "99.1"}), Ok(("fix the login", "99.1")));
        check(
            json!({"type": "message", "channel_type": "im", "text": "hello there"}),
            Ok(("hello there", "100.000200")),
        );
        check(
            json!({"type": "message", "channel_type": "channel"}),
            Err("a channel message without a mention"),
        );
        check(json!({"bot_id": "B1"}), Err("a message from a bot"));
        check(
            json!({"subtype": "bot_message"}),
            Err("a message from a bot"),
        );
        check(
            json!({"subtype": "message_changed"}),
            Err("not a new message (edited, deleted, joined …)"),
        );
        check(json!({"user": "UBOT"}), Err("the app's own message"));
        check(
            json!({"text": "<@UBOT>"}),
            Err("a mention with nothing asked"),
        );
        check(
            json!({"type": "reaction_added"}),
            Err("an event this app does not act on"),
        );
        check(
            json!({"user": null}),
            Err("a message without its user, channel or ts"),
        );
    }

    #[test]
    fn mentions() {
        assert_eq!(
            strip_mention("<@UBOT> ask <@U2> about it", Some("UBOT")),
            "ask <@U2> about it"
        );
        assert_eq!(
            strip_mention("hey <@UBOT|bot>, fix it", Some("UBOT")),
            "hey , fix it"
        );
        assert_eq!(strip_mention("<@UX> <@U2> fix", None), "<@U2> fix");
        assert_eq!(
            strip_mention("<@UBOT> fix it\nwrite a: b", Some("UBOT")),
            "fix it\nwrite a: b"
        );
    }

    #[test]
    fn thread_messages() {
        let messages = vec![
            json!({"user": "U1", "ts": "100.000100", "text": "first"}),
            json!({"user": "U2", "ts": "100.000300", "text": "second"}),
            json!({"bot_id": "B1", "user": "UBOT", "ts": "100.000400", "text": "status"}),
            json!({"user": "U2", "ts": "100.000500", "subtype": "channel_join"}),
            json!({"user": "U3", "ts": "100.000900", "text": "third"}),
            json!({"user": "U1", "ts": "101.000000", "text": "the mention"}),
        ];
        let texts = |after: &str| -> Vec<String> {
            messages_between(&messages, Some("UBOT"), after, "101.000000")
                .iter()
                .map(|m| m["text"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(texts("0"), ["first", "second", "third"]);
        assert_eq!(texts("100.000100"), ["second", "third"]);
        assert!(ts_key("100.000900") < ts_key("101.000000"));
        assert!(ts_key("100.000900") > ts_key("100.000300"));
    }

    #[test]
    fn titles() {
        assert_eq!(title_of("fix the login\nand more"), "fix the login");
        assert_eq!(title_of(&"x".repeat(100)).chars().count(), 81);
    }
}
