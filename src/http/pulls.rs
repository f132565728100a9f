//! `POST /v1/sessions/:id/pull-request` (a member opens the session's pull request with their
//! own GitHub token, so whoever asked cannot approve their own agent's work; the App opens it
//! only with `PR_AS_APP_FALLBACK=true`) and `POST /v1/github/webhook` (GitHub says a session's
//! pull request was merged, closed, reopened or pushed to).

use super::auth::caller;
use super::sessions::require_active;
use crate::config::github::GithubConfig;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::github::app::{self, Use};
use crate::github::tokens;
use crate::github::webhook::{self, Webhook};
use crate::index::{Index, Membership};
use crate::respond;
use crate::room::api::{Caller, RoomClient, RoomRoute};
use crate::time::{now_ms, rfc3339};
use crate::url::RequestUrl;
use protocol::api::{CreatePullRequest, User};
use protocol::frames::parse_json;
use protocol::{ApiError, ErrorCode};
use serde_json::json;
use worker::{Env, Request, Response};

/// GitHub, when it can open pull requests: sign-in (the user's own token), or the App with
/// the fallback allowed.
pub fn github_for_pulls(config: &Config) -> Result<&GithubConfig> {
    config
        .github
        .as_ref()
        .filter(|g| g.sign_in.is_some() || (g.app.is_some() && g.pr_as_app_fallback))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotConfigured,
                "pull requests need GitHub, which is not configured here: see README, Connect GitHub",
            )
            .into()
        })
}

pub async fn open(
    env: &Env,
    index: &Index,
    config: &Config,
    url: &RequestUrl,
    membership: &Membership,
    user: &User,
    body: &[u8],
) -> Result<Response> {
    let input: CreatePullRequest = parse_json(body)?;
    let (created, answer) =
        open_as(env, index, config, url.origin(), membership, user, input).await?;
    respond::json(if created { 201 } else { 200 }, &answer)
}

/// Opens (or finds) the session's pull request as `user`: what `POST …/pull-request` and
/// Slack's "Create pull request" both do. Returns whether it was created, and
/// `{pull_request, artifact_id}`.
pub async fn open_as(
    env: &Env,
    index: &Index,
    config: &Config,
    origin: &str,
    membership: &Membership,
    user: &User,
    input: CreatePullRequest,
) -> Result<(bool, serde_json::Value)> {
    let gh = github_for_pulls(config)?;
    input.validate()?;
    require_active(membership)?;
    let session = &membership.session;
    // The acting user's own token; the App's only when allowed and the user has none.
    let user_token = match gh.sign_in {
        Some(_) => tokens::usable(index, gh, &user.id).await?,
        None => None,
    };
    let (token, github_login) = match user_token {
        Some(token) => (token, user.github_login.clone()),
        None if gh.pr_as_app_fallback && gh.app.is_some() => {
            let token = app::installation_token(gh, &session.repo, Use::PullRequest).await?;
            (token.value, None)
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "connect your GitHub account first (sign in with GitHub), so the pull request is opened in your name",
            )
            .into())
        }
    };
    let request = json!({
        "token": token,
        "github_login": github_login,
        "title": input.title,
        "body": input.body,
        "draft": input.draft,
        "origin": origin,
    });
    let opened = RoomClient::open(env, &session.id)?
        .call_json(
            RoomRoute::PullRequest,
            &caller(user),
            Some(serde_json::to_vec(&request)?),
        )
        .await?;
    let pull_request = &opened["pull_request"];
    index
        .record_pull_request(&session.id, &session.repo, pull_request, &rfc3339(now_ms()))
        .await?;
    Ok((
        opened["created"] == true,
        json!({ "pull_request": pull_request, "artifact_id": opened["artifact_id"] }),
    ))
}

/// The webhook's caller, as rooms see it.
fn github_caller() -> Caller {
    Caller {
        user_id: "github".into(),
        name: "GitHub".into(),
        email: String::new(),
    }
}

/// `POST /v1/github/webhook`: signed by GitHub, each delivery handled once.
pub async fn webhook(
    env: &Env,
    index: &Index,
    config: &Config,
    req: &mut Request,
) -> Result<Response> {
    let gh = config.github.as_ref();
    let Some((gh, secret)) = gh.and_then(|g| Some((g, g.webhook_secret.as_ref()?))) else {
        return Err(
            ApiError::not_found("webhook endpoint (GITHUB_WEBHOOK_SECRET is not set)").into(),
        );
    };
    let body = respond::read_body(req, 4 * 1024 * 1024).await?;
    let header = |name: &str| req.headers().get(name);
    let signature = header("x-hub-signature-256")?;
    if !webhook::signature_valid(&secret.0, &body, signature.as_deref()) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "the webhook signature does not match",
        )
        .into());
    }
    let event = header("x-github-event")?.unwrap_or_default();
    let delivery = header("x-github-delivery")?
        .filter(|d| !d.is_empty() && d.len() <= 100)
        .ok_or_else(|| ApiError::invalid_field("X-GitHub-Delivery is missing"))?;
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(ErrorCode::InvalidJson, "the payload is not JSON"))?;
    let change = match webhook::parse(&event, &payload, &gh.branch_prefix) {
        Webhook::PullRequest(change) => change,
        Webhook::Ignored(why) => {
            crate::log::info(&format!("webhook {delivery} ({event}) ignored: {why}"));
            return respond::no_content(&[]);
        }
    };
    if !index.record_delivery(&delivery, &event, now_ms()).await? {
        return respond::json(200, &json!({ "duplicate": true }));
    }
    let room = RoomClient::open(env, &change.session_id)?;
    let body = serde_json::to_vec(&change.to_json())?;
    let updated = match room
        .call_json(RoomRoute::PullRequestChanged, &github_caller(), Some(body))
        .await
    {
        Ok(answer) => answer["updated"].as_bool().unwrap_or(false),
        // A session branch of a session this coordinator does not have.
        Err(Error::Api(error)) if error.code == ErrorCode::NotFound => false,
        Err(error) => {
            // Handled next time GitHub delivers it again.
            index.forget_delivery(&delivery).await?;
            return Err(error);
        }
    };
    index
        .pull_request_outcome(
            &change.repo,
            change.number,
            change.state.as_str(),
            change.merged_at.as_deref(),
            change.closed_at.as_deref(),
        )
        .await?;
    respond::json(200, &json!({ "updated": updated }))
}
