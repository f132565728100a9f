//! `/v1/sessions/…`: the Worker checks who may do what against D1, then hands the
//! request to the session's room.

use super::auth::caller;
use super::cursor;
use super::query;
use super::tickets::{mint_token, token_secret};
use crate::config::Config;
use crate::error::Result;
use crate::ids::new_id;
use crate::index::{Index, ListedSession, Membership};
use crate::respond;
use crate::room::api::{Init, Member, RemovedMember, RoomClient, RoomRoute};
use crate::time::{now_ms, rfc3339};
use crate::url::RequestUrl;
use protocol::api::{AddMember, CreateSession, Repo, Session, User};
use protocol::frames::parse_json;
use protocol::{ApiError, ErrorCode};
use serde_json::json;
use worker::{Env, Response};

/// A member's view of a session, or `not_found` for anyone else. A member whose scopes no
/// longer include the session's repository is refused (403) until they do again.
pub async fn membership(index: &Index, session_id: &str, user: &User) -> Result<Membership> {
    let membership = index
        .membership(session_id, &user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    if !user.scopes.allows_repo(&membership.session.repo) {
        return Err(out_of_scope(&membership.session.repo).into());
    }
    Ok(membership)
}

pub(super) fn out_of_scope(repo: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        format!("your scopes do not include {repo}, this session's repository"),
    )
}

fn require_owner(membership: &Membership) -> Result<()> {
    if !membership.is_owner() {
        return Err(
            ApiError::new(ErrorCode::Forbidden, "only the session's owner may do this").into(),
        );
    }
    Ok(())
}

pub fn require_active(membership: &Membership) -> Result<()> {
    if membership.session.is_archived() {
        return Err(ApiError::new(ErrorCode::Conflict, "the session is archived").into());
    }
    Ok(())
}

/// The id of the session an `Idempotency-Key` names for this user: the same request again
/// finds the same session (HMAC under a key derived from TOKEN_SECRET, so ids reveal nothing).
fn requested_session_id(config: &Config, user_id: &str, key: &str) -> Result<String> {
    let derived = protocol::crypto::hmac_sha256(token_secret(config)?, b"session-request");
    let mac = protocol::crypto::hmac_sha256(&derived, format!("{user_id}\n{key}").as_bytes());
    Ok(format!("ses_{}", protocol::crypto::hex(&mac[..16])))
}

/// What a new session starts with besides its repository and owner.
pub struct NewSession<'a> {
    pub branch: Option<String>,
    pub title: Option<String>,
    pub prompt: Option<String>,
    /// The origin the session was created through (sandboxes dial back to it).
    pub origin: &'a str,
    /// With a key, a repeat of the same request finds the session the first one made (and
    /// its first prompt); another request under the same key is a conflict.
    pub idempotency_key: Option<String>,
}

/// Opens a session on `repo` (one the caller has checked `user` may use): its room, then its
/// index entry. Returns the session and the room's answer (`participant`, `message_id`).
pub async fn start(
    env: &Env,
    index: &Index,
    config: &Config,
    user: &User,
    repo: &Repo,
    new: NewSession<'_>,
) -> Result<(Session, serde_json::Value)> {
    let id = match &new.idempotency_key {
        Some(key) => requested_session_id(config, &user.id, key)?,
        None => new_id("ses")?,
    };
    let mut session = Session {
        id,
        repo: repo.name.clone(),
        branch: new.branch.unwrap_or_else(|| repo.default_branch.clone()),
        title: new.title.unwrap_or_else(|| repo.name.clone()),
        owner_id: user.id.clone(),
        status: "active".into(),
        created_at: rfc3339(now_ms()),
    };
    let earlier = match new.idempotency_key {
        Some(_) => index.membership(&session.id, &user.id).await?,
        None => None,
    };
    if let Some(earlier) = &earlier {
        let same = earlier.session.repo == session.repo
            && earlier.session.branch == session.branch
            && earlier.session.title == session.title;
        if !same || earlier.session.is_archived() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "this Idempotency-Key was already used for another session; use a new key for a new request",
            )
            .into());
        }
        session = earlier.session.clone();
    }
    // The room first: if the index write fails, an unreachable room is harmless, while an
    // index entry without its room would be a session that cannot be opened.
    let room = RoomClient::open(env, &session.id)?;
    let init = Init {
        session: session.clone(),
        prompt: new.prompt,
        origin: new.origin.to_owned(),
        client_request_id: new.idempotency_key,
    };
    let joined = room
        .call_json(
            RoomRoute::Init,
            &caller(user),
            Some(serde_json::to_vec(&init)?),
        )
        .await?;
    if earlier.is_none() {
        index.insert_session(&session).await?;
    }
    Ok((session, joined))
}

/// `POST /v1/sessions`. With an `Idempotency-Key`, a repeat of the same request answers as
/// the first did (the same session and first prompt; a fresh token), and a different request
/// under the same key is a conflict.
pub async fn create(
    env: &Env,
    index: &Index,
    config: &Config,
    url: &RequestUrl,
    user: &User,
    body: &[u8],
    idempotency_key: Option<String>,
) -> Result<Response> {
    let input: CreateSession = parse_json(body)?;
    input.validate()?;
    let repos = crate::github::app::repos(config).await;
    let repo = repos
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(&input.repo))
        .ok_or_else(|| {
            ApiError::invalid_field(format!(
                "unknown repo {:?}; GET /v1/repos lists the configured ones",
                input.repo
            ))
        })?;
    if !user.scopes.allows_repo(&repo.name) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("your scopes do not include {}", repo.name),
        )
        .into());
    }
    let (session, joined) = start(
        env,
        index,
        config,
        user,
        repo,
        NewSession {
            branch: input.branch,
            title: input.title,
            prompt: input.prompt,
            origin: url.origin(),
            idempotency_key,
        },
    )
    .await?;
    let mut response = mint_token(config, url, &session.id, &user.id)?;
    response["session"] = serde_json::to_value(&session)?;
    response["participant"] = joined["participant"].clone();
    if !joined["message_id"].is_null() {
        response["message_id"] = joined["message_id"].clone();
    }
    respond::json(201, &response)
}

pub async fn list(index: &Index, user: &User, query_string: &str) -> Result<Response> {
    let limit = query::limit_param(query_string, 50, 100)?;
    let after = match query::param(query_string, "cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(given) => Some(
            cursor::decode(&given)
                .ok_or_else(|| ApiError::invalid_field("cursor is not one this API returned"))?,
        ),
    };
    let mut listed = index.sessions_of(&user.id, after, limit + 1).await?;
    let next_cursor = if listed.len() > limit as usize {
        listed.truncate(limit as usize);
        listed
            .last()
            .map(|l| cursor::encode(&l.session.created_at, &l.session.id))
    } else {
        None
    };
    let mut sessions = Vec::with_capacity(listed.len());
    for ListedSession {
        session,
        pull_request,
    } in listed
    {
        let mut value = serde_json::to_value(&session)?;
        value["pull_request"] = pull_request.unwrap_or(serde_json::Value::Null);
        sessions.push(value);
    }
    respond::json(
        200,
        &json!({ "sessions": sessions, "next_cursor": next_cursor }),
    )
}

pub async fn get(env: &Env, membership: &Membership, user: &User) -> Result<Response> {
    let room = RoomClient::open(env, &membership.session.id)?;
    let mut state = room
        .call_json(RoomRoute::Describe, &caller(user), None)
        .await?;
    state["session"] = serde_json::to_value(&membership.session)?;
    state["role"] = json!(membership.role);
    respond::json(200, &state)
}

pub async fn add_member(
    env: &Env,
    index: &Index,
    membership: &Membership,
    owner: &User,
    body: &[u8],
) -> Result<Response> {
    require_owner(membership)?;
    require_active(membership)?;
    let input: AddMember = parse_json(body)?;
    input.validate()?;
    let member = index
        .user(&input.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::not_found("user"))?;
    let repo = &membership.session.repo;
    if !member.scopes.allows_repo(repo) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "{} cannot join this session: their scopes do not include {repo}",
                member.name
            ),
        )
        .into());
    }
    index
        .add_member(&membership.session.id, &member.id, &rfc3339(now_ms()))
        .await?;
    let room = RoomClient::open(env, &membership.session.id)?;
    let body = serde_json::to_vec(&Member {
        user: caller(&member),
    })?;
    let joined = room
        .call_json(RoomRoute::AddMember, &caller(owner), Some(body))
        .await?;
    respond::json(
        201,
        &json!({ "user_id": member.id, "role": "member", "participant": joined["participant"] }),
    )
}

pub async fn remove_member(
    env: &Env,
    index: &Index,
    membership: &Membership,
    owner: &User,
    user_id: &str,
) -> Result<Response> {
    require_owner(membership)?;
    if user_id == membership.session.owner_id {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the owner cannot leave their own session",
        )
        .into());
    }
    if index
        .membership(&membership.session.id, user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("member").into());
    }
    index.remove_member(&membership.session.id, user_id).await?;
    let room = RoomClient::open(env, &membership.session.id)?;
    let body = serde_json::to_vec(&RemovedMember {
        user_id: user_id.to_owned(),
    })?;
    room.call_json(RoomRoute::RemoveMember, &caller(owner), Some(body))
        .await?;
    respond::json(200, &json!({ "user_id": user_id, "removed": true }))
}

pub async fn archive(
    env: &Env,
    index: &Index,
    membership: &Membership,
    owner: &User,
) -> Result<Response> {
    require_owner(membership)?;
    index
        .set_session_status(&membership.session.id, "archived", &rfc3339(now_ms()))
        .await?;
    let room = RoomClient::open(env, &membership.session.id)?;
    room.call_json(RoomRoute::Archive, &caller(owner), None)
        .await?;
    let mut session = membership.session.clone();
    session.status = "archived".into();
    respond::json(200, &json!({ "session": session }))
}

/// Forwards a member's request to the room as it is (the room validates the body).
pub async fn forward(
    env: &Env,
    membership: &Membership,
    user: &User,
    route: RoomRoute,
    body: Option<Vec<u8>>,
) -> Result<Response> {
    let room = RoomClient::open(env, &membership.session.id)?;
    room.call(route, &caller(user), body).await
}
