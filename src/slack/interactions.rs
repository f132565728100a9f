//! `POST /v1/slack/interactions`: Slack's interactivity, signed like events, the payload a
//! form field. Two actions do something: the repository picker's choice (the request that
//! waited in the thread starts its session; the picker becomes "Working on it in …") and
//! "Create pull request" (opened as whoever clicked, through the same code as
//! `POST /v1/sessions/:id/pull-request`, and answered in the thread). The response comes at
//! once, the work after it. What an action means is pure and tested natively.

use super::blocks::{CREATE_PR, PICK_REPO};
use serde_json::Value;

/// Where an action happened and who did it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub team_id: String,
    pub channel_id: String,
    /// The message that holds the button or menu.
    pub message_ts: String,
    pub thread_ts: String,
    pub user_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    PickRepo { at: Origin, repo: String },
    CreatePullRequest { at: Origin, session_id: String },
    Ignored(&'static str),
}

/// What a `block_actions` payload asks for.
pub fn parse_action(payload: &Value) -> Action {
    if payload["type"] != "block_actions" {
        return Action::Ignored("not a block action");
    }
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let action = &payload["actions"][0];
    let value = text(&action["value"]).or_else(|| text(&action["selected_option"]["value"]));
    let container = &payload["container"];
    let message = &payload["message"];
    let at = (|| {
        let message_ts = text(&container["message_ts"]).or_else(|| text(&message["ts"]))?;
        Some(Origin {
            team_id: text(&payload["team"]["id"]).or_else(|| text(&payload["user"]["team_id"]))?,
            channel_id: text(&payload["channel"]["id"])
                .or_else(|| text(&container["channel_id"]))?,
            thread_ts: text(&message["thread_ts"])
                .or_else(|| text(&container["thread_ts"]))
                .unwrap_or_else(|| message_ts.clone()),
            message_ts,
            user_id: text(&payload["user"]["id"])?,
        })
    })();
    let (Some(at), Some(value)) = (at, value) else {
        return Action::Ignored("an action without its place, user or value");
    };
    match action["action_id"].as_str() {
        Some(PICK_REPO) if protocol::scope::is_repo_name(&value) => {
            Action::PickRepo { at, repo: value }
        }
        Some(CREATE_PR) if crate::http::route::is_session_id(&value) => Action::CreatePullRequest {
            at,
            session_id: value,
        },
        _ => Action::Ignored("an action with nothing to do here"),
    }
}

#[cfg(target_arch = "wasm32")]
pub use worker_side::receive;

#[cfg(target_arch = "wasm32")]
mod worker_side {
    use super::{parse_action, Action, Origin};
    use crate::config::{Config, SlackConfig};
    use crate::error::Result;
    use crate::index::slack::ThreadKey;
    use crate::index::Index;
    use crate::respond;
    use crate::slack::blocks::{escape, notice, working_in};
    use crate::slack::client::{self, notify, with_retries};
    use crate::slack::events::Incoming;
    use crate::slack::receive::signed_body;
    use crate::slack::sessions::{candidates, ensure_member, run_request, who, Found};
    use crate::time::now_ms;
    use protocol::api::CreatePullRequest;
    use protocol::{ApiError, ErrorCode};
    use serde_json::Value;
    use std::rc::Rc;
    use worker::{Context, Env, Request, Response};

    pub async fn receive(
        env: &Env,
        _index: &Index,
        config: &Rc<Config>,
        req: &mut Request,
        ctx: &Context,
    ) -> Result<Response> {
        let slack = crate::slack::receive::enabled(config)?;
        let body = signed_body(req, slack).await?;
        let payload = form_urlencoded::parse(&body)
            .find(|(name, _)| name == "payload")
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| ApiError::invalid_field("the form has no payload"))?;
        let payload: Value = serde_json::from_str(&payload)
            .map_err(|_| ApiError::new(ErrorCode::InvalidJson, "the payload is not JSON"))?;
        let action = parse_action(&payload);
        if let Action::Ignored(why) = action {
            crate::log::info(&format!("slack: interaction ignored: {why}"));
            return respond::json(200, &serde_json::json!({}));
        }
        let origin = crate::url::of(req).origin().to_owned();
        let (env, config) = (env.clone(), config.clone());
        ctx.wait_until(async move {
            let Some(slack) = &config.slack else { return };
            let at = match &action {
                Action::PickRepo { at, .. } | Action::CreatePullRequest { at, .. } => at.clone(),
                Action::Ignored(_) => return,
            };
            if let Err(error) = act(&env, &config, slack, &origin, action).await {
                let error = error.into_api();
                crate::log::error(&format!("slack: interaction: {}", error.message));
                let text = format!("Sorry, that did not work: {}", escape(&error.message));
                notify(slack, &at.channel_id, &at.thread_ts, notice(&text)).await;
            }
        });
        respond::json(200, &serde_json::json!({}))
    }

    async fn act(
        env: &Env,
        config: &Config,
        slack: &SlackConfig,
        origin: &str,
        action: Action,
    ) -> Result<()> {
        let index = Index::new(env.d1("DB")?);
        match action {
            Action::PickRepo { at, repo } => {
                pick(env, &index, config, slack, origin, &at, &repo).await
            }
            Action::CreatePullRequest { at, session_id } => {
                pull_request(env, &index, config, slack, origin, &at, &session_id).await
            }
            Action::Ignored(_) => Ok(()),
        }
    }

    async fn say(slack: &SlackConfig, at: &Origin, text: &str) {
        notify(slack, &at.channel_id, &at.thread_ts, notice(text)).await;
    }

    /// The picker's choice: the request waiting in the thread starts its session there.
    async fn pick(
        env: &Env,
        index: &Index,
        config: &Config,
        slack: &SlackConfig,
        origin: &str,
        at: &Origin,
        repo: &str,
    ) -> Result<()> {
        let key = ThreadKey {
            team_id: &at.team_id,
            channel_id: &at.channel_id,
            thread_ts: &at.thread_ts,
        };
        let thread = index.slack_thread(&key, now_ms()).await?;
        let pending: Option<Incoming> = thread
            .as_ref()
            .filter(|t| t.session_id.is_none())
            .and_then(|t| t.pending.as_deref())
            .and_then(|p| serde_json::from_str(p).ok());
        let Some(request) = pending else {
            let text = match thread.and_then(|t| t.session_id) {
                Some(_) => "This thread already has its session.",
                None => "That request is no longer waiting: mention me again.",
            };
            say(slack, at, text).await;
            return Ok(());
        };
        if request.user_id != at.user_id {
            say(
                slack,
                at,
                &format!("Only <@{}> can choose for their request.", request.user_id),
            )
            .await;
            return Ok(());
        }
        let user = match who(slack, index, &at.user_id).await? {
            Found::User(user) => user,
            Found::Refused(text) => {
                say(slack, at, &text).await;
                return Ok(());
            }
        };
        let Some(chosen) = candidates(config, &user)
            .await
            .into_iter()
            .find(|r| r.name.eq_ignore_ascii_case(repo))
        else {
            say(
                slack,
                at,
                &format!("You can't open a session on `{}`.", escape(repo)),
            )
            .await;
            return Ok(());
        };
        let (text, blocks) = working_in(&chosen.name);
        if let Err(error) =
            with_retries(|| client::update(slack, &at.channel_id, &at.message_ts, &text, &blocks))
                .await
        {
            crate::log::error(&format!(
                "slack: the picker was not replaced: {}",
                error.describe()
            ));
        }
        run_request(env, index, config, slack, origin, &user, &chosen, &request).await
    }

    /// "Create pull request", as whoever clicked it.
    async fn pull_request(
        env: &Env,
        index: &Index,
        config: &Config,
        slack: &SlackConfig,
        origin: &str,
        at: &Origin,
        session_id: &str,
    ) -> Result<()> {
        let user = match who(slack, index, &at.user_id).await? {
            Found::User(user) => user,
            Found::Refused(text) => {
                say(slack, at, &text).await;
                return Ok(());
            }
        };
        let Some(session) = index.session(session_id).await? else {
            say(slack, at, "That session no longer exists.").await;
            return Ok(());
        };
        if !ensure_member(env, index, &user, &session).await? {
            say(
                slack,
                at,
                &format!("Your scopes do not include `{}`.", escape(&session.repo)),
            )
            .await;
            return Ok(());
        }
        let membership = index
            .membership(&session.id, &user.id)
            .await?
            .ok_or_else(|| ApiError::not_found("session"))?;
        let base = slack.public_url.as_deref().unwrap_or(origin);
        let text = match crate::http::pulls::open_as(
            env,
            index,
            config,
            base,
            &membership,
            &user,
            CreatePullRequest::default(),
        )
        .await
        {
            Ok((created, answer)) => {
                let pr = &answer["pull_request"];
                let link = format!(
                    "<{}|#{}>",
                    pr["url"].as_str().unwrap_or_default(),
                    pr["number"].as_u64().unwrap_or_default()
                );
                if created {
                    format!("Pull request {link} opened by {}.", escape(&user.name))
                } else {
                    format!("The pull request is already open: {link}.")
                }
            }
            Err(error) => format!("No pull request: {}", escape(&error.into_api().message)),
        };
        say(slack, at, &text).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SID: &str = "ses_0123456789abcdef0123456789abcdef";

    fn payload(action: Value) -> Value {
        json!({
            "type": "block_actions",
            "user": {"id": "U1", "team_id": "T1"},
            "team": {"id": "T1"},
            "channel": {"id": "C1"},
            "container": {"type": "message", "message_ts": "200.1", "channel_id": "C1"},
            "message": {"ts": "200.1", "thread_ts": "100.1"},
            "actions": [action],
        })
    }

    #[test]
    fn actions() {
        let at = Origin {
            team_id: "T1".into(),
            channel_id: "C1".into(),
            message_ts: "200.1".into(),
            thread_ts: "100.1".into(),
            user_id: "U1".into(),
        };
        assert_eq!(
            parse_action(&payload(
                json!({"action_id": PICK_REPO, "value": "acme/web"})
            )),
            Action::PickRepo {
                at: at.clone(),
                repo: "acme/web".into()
            }
        );
        assert_eq!(
            parse_action(&payload(
                json!({"action_id": PICK_REPO, "selected_option": {"value": "acme/demo"}})
            )),
            Action::PickRepo {
                at: at.clone(),
                repo: "acme/demo".into()
            }
        );
        assert_eq!(
            parse_action(&payload(json!({"action_id": CREATE_PR, "value": SID}))),
            Action::CreatePullRequest {
                at,
                session_id: SID.into()
            }
        );
        assert_eq!(
            parse_action(&payload(json!({"action_id": "open_session", "value": "x"}))),
            Action::Ignored("an action with nothing to do here")
        );
        assert_eq!(
            parse_action(&payload(json!({"action_id": PICK_REPO, "value": "../etc"}))),
            Action::Ignored("an action with nothing to do here")
        );
        assert_eq!(
            parse_action(&json!({"type": "view_submission"})),
            Action::Ignored("not a block action")
        );
        assert_eq!(
            parse_action(
                &json!({"type": "block_actions", "actions": [{"action_id": PICK_REPO, "value": "a/b"}]})
            ),
            Action::Ignored("an action without its place, user or value")
        );
    }
}
