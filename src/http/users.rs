//! `/v1/users` (admin key only), `/v1/me` and `/v1/repos` (REPOS, and the GitHub App's
//! installed repositories when it is configured).

use crate::config::Config;
use crate::error::Result;
use crate::ids::{new_api_key, new_id};
use crate::index::Index;
use crate::respond;
use crate::room::api::{Caller, Revocation, RoomClient, RoomRoute};
use crate::time::{now_ms, rfc3339};
use protocol::api::{CreateUser, UpdateUser, User};
use protocol::crypto::sha256_hex;
use protocol::frames::parse_json;
use protocol::{ApiError, CloseCode};
use serde_json::json;
use worker::{Env, Response};

pub async fn create(index: &Index, body: &[u8]) -> Result<Response> {
    let input: CreateUser = parse_json(body)?;
    input.validate()?;
    let user = User {
        id: new_id("usr")?,
        name: input.name.trim().to_owned(),
        email: input.email.trim().to_owned(),
        github_login: input.github_login,
        scopes: input.scopes.unwrap_or_default(),
        disabled: false,
        created_at: rfc3339(now_ms()),
    };
    let api_key = new_api_key()?;
    index
        .insert_user(&user, &sha256_hex(api_key.as_bytes()))
        .await?;
    crate::log::info(&format!("user created: {}", user.id));
    respond::json(201, &json!({ "user": user, "api_key": api_key }))
}

pub async fn list(index: &Index) -> Result<Response> {
    respond::json(200, &json!({ "users": index.users().await? }))
}

/// `PATCH /v1/users/:id`. A user disabled, or whose scopes no longer cover a session's
/// repository, loses their open sockets and streams there at once: D1 knows their sessions,
/// and each room is told.
pub async fn update(env: &Env, index: &Index, id: &str, body: &[u8]) -> Result<Response> {
    let input: UpdateUser = parse_json(body)?;
    input.validate()?;
    if index.user(id).await?.is_none() {
        return Err(ApiError::not_found("user").into());
    }
    index
        .update_user(id, input.scopes.as_ref(), input.disabled)
        .await?;
    let user = index
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let revocations: Vec<(String, Revocation)> = index
        .active_sessions_of(id)
        .await?
        .into_iter()
        .filter_map(|session| {
            let (close, reason) = if user.disabled {
                (CloseCode::TokenExpired, "this user is disabled".to_owned())
            } else if !user.scopes.allows_repo(&session.repo) {
                let reason = format!("your scopes no longer include {}", session.repo);
                (CloseCode::Removed, reason)
            } else {
                return None;
            };
            let revocation = Revocation {
                user_id: user.id.clone(),
                close: close.code(),
                reason,
            };
            Some((session.id, revocation))
        })
        .collect();
    let admin = Caller {
        user_id: "admin".into(),
        name: "admin".into(),
        email: String::new(),
    };
    for (session_id, revocation) in &revocations {
        let told = match RoomClient::open(env, session_id) {
            Ok(room) => room
                .call_json(
                    RoomRoute::Revoke,
                    &admin,
                    Some(serde_json::to_vec(revocation)?),
                )
                .await
                .map(drop),
            Err(error) => Err(error),
        };
        // The change is stored, and the Worker refuses the user wherever it applies; a room
        // that could not be told keeps the sockets until their tokens run out.
        if let Err(error) = told {
            crate::log::error(&format!(
                "user {id}: session {session_id} could not be told of the change: {error:?}"
            ));
        }
    }
    respond::json(200, &json!({ "user": user }))
}

/// The caller, and whether their GitHub account is connected (a token is stored).
pub async fn me(index: &Index, config: &Config, user: &User) -> Result<Response> {
    let connected = match config.github {
        Some(_) => index.github_token(&user.id).await?.is_some(),
        None => false,
    };
    let github = json!({ "login": user.github_login, "connected": connected });
    respond::json(200, &json!({ "user": user, "github": github }))
}

/// The repositories in the caller's scope, each with its newest image build (`image`: null
/// before the first).
pub async fn repos(index: &Index, config: &Config, user: &User) -> Result<Response> {
    // The images are a note beside each repository: without them the list still answers.
    let builds = index.latest_image_builds().await.unwrap_or_else(|error| {
        crate::log::error(&format!("repos: image builds: {error:?}"));
        Vec::new()
    });
    let repos: Vec<_> = crate::github::app::repos(config)
        .await
        .into_iter()
        .filter(|r| user.scopes.allows_repo(&r.name))
        .map(|repo| {
            let key = repo.name.to_ascii_lowercase();
            let image = builds.iter().find(|b| b.repo == key).map(|b| {
                json!({
                    "status": b.status,
                    "commit": b.commit_sha,
                    "started_at": crate::time::rfc3339(b.started_at as u64),
                    "finished_at": b.finished_at.map(|at| crate::time::rfc3339(at as u64)),
                    "error": b.error,
                })
            });
            let mut value = serde_json::to_value(&repo).unwrap_or_default();
            value["image"] = image.unwrap_or(serde_json::Value::Null);
            value
        })
        .collect();
    respond::json(200, &json!({ "repos": repos }))
}
