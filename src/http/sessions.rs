//! `/v1/sessions/…`: the Worker checks who may do what against D1, then hands the
//! request to the session's room.

use super::auth::caller;
use super::query;
use crate::config::Config;
use crate::error::Result;
use crate::ids::new_id;
use crate::index::{Index, Membership};
use crate::respond;
use crate::room::api::{Init, Member, RemovedMember, RoomClient, RoomRoute};
use crate::time::{now_ms, rfc3339};
use crate::url::RequestUrl;
use protocol::api::{AddMember, CreateSession, Repo, Session, User};
use protocol::crypto::{b64url, unb64url};
use protocol::frames::parse_json;
use protocol::token::{self, Claims, TokenError};
use protocol::{ApiError, CloseCode, ErrorCode};
use serde_json::json;
use worker::{Env, Request, Response};

/// A member's view of a session, or `not_found` for anyone else.
pub async fn membership(index: &Index, session_id: &str, user: &User) -> Result<Membership> {
    Ok(index
        .membership(session_id, &user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?)
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

fn token_secret(config: &Config) -> Result<&[u8]> {
    config
        .token_secret
        .as_deref()
        .map(str::as_bytes)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unavailable,
                "the coordinator has no TOKEN_SECRET configured",
            )
            .into()
        })
}

/// A fresh participant token and the WebSocket URL that uses it.
fn mint_token(
    config: &Config,
    url: &RequestUrl,
    session_id: &str,
    user_id: &str,
) -> Result<serde_json::Value> {
    let expires_ms = now_ms() + config.token_ttl_ms;
    let claims = Claims {
        sid: session_id.to_owned(),
        uid: user_id.to_owned(),
        exp: expires_ms,
    };
    let token = token::sign(token_secret(config)?, &claims);
    let scheme = if url.is_https() { "wss" } else { "ws" };
    let host = url.host();
    let ws_url = format!("{scheme}://{host}/v1/sessions/{session_id}/ws?token={token}");
    Ok(json!({ "token": token, "expires_at": rfc3339(expires_ms), "ws_url": ws_url }))
}

/// What a new session starts with besides its repository and owner.
pub struct NewSession<'a> {
    pub branch: Option<String>,
    pub title: Option<String>,
    pub prompt: Option<String>,
    /// The origin the session was created through (sandboxes dial back to it).
    pub origin: &'a str,
}

/// Opens a session on `repo` (one the caller has checked `user` may use): its room, then its
/// index entry. Returns the session and the room's answer (`participant`, `message_id`).
pub async fn start(
    env: &Env,
    index: &Index,
    user: &User,
    repo: &Repo,
    new: NewSession<'_>,
) -> Result<(Session, serde_json::Value)> {
    let session = Session {
        id: new_id("ses")?,
        repo: repo.name.clone(),
        branch: new.branch.unwrap_or_else(|| repo.default_branch.clone()),
        title: new.title.unwrap_or_else(|| repo.name.clone()),
        owner_id: user.id.clone(),
        status: "active".into(),
        created_at: rfc3339(now_ms()),
    };
    // The room first: if the index write fails, an unreachable room is harmless, while an
    // index entry without its room would be a session that cannot be opened.
    let room = RoomClient::open(env, &session.id)?;
    let init = Init {
        session: session.clone(),
        prompt: new.prompt,
        origin: new.origin.to_owned(),
    };
    let joined = room
        .call_json(
            RoomRoute::Init,
            &caller(user),
            Some(serde_json::to_vec(&init)?),
        )
        .await?;
    index.insert_session(&session).await?;
    Ok((session, joined))
}

pub async fn create(
    env: &Env,
    index: &Index,
    config: &Config,
    url: &RequestUrl,
    user: &User,
    body: &[u8],
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
        user,
        repo,
        NewSession {
            branch: input.branch,
            title: input.title,
            prompt: input.prompt,
            origin: url.origin(),
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
        Some(cursor) => Some(
            decode_cursor(&cursor)
                .ok_or_else(|| ApiError::invalid_field("cursor is not one this API returned"))?,
        ),
    };
    let mut sessions = index.sessions_of(&user.id, after, limit + 1).await?;
    let next_cursor = if sessions.len() > limit as usize {
        sessions.truncate(limit as usize);
        sessions
            .last()
            .map(|s| b64url(format!("{}|{}", s.created_at, s.id).as_bytes()))
    } else {
        None
    };
    respond::json(
        200,
        &json!({ "sessions": sessions, "next_cursor": next_cursor }),
    )
}

fn decode_cursor(cursor: &str) -> Option<(String, String)> {
    let text = String::from_utf8(unb64url(cursor)?).ok()?;
    let (created_at, id) = text.split_once('|')?;
    Some((created_at.to_owned(), id.to_owned()))
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

pub fn token(
    config: &Config,
    url: &RequestUrl,
    membership: &Membership,
    user: &User,
) -> Result<Response> {
    require_active(membership)?;
    respond::json(
        200,
        &mint_token(config, url, &membership.session.id, &user.id)?,
    )
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

/// Who a participant token belongs to, checked against the session and D1.
pub enum TokenCheck {
    Member(User, Membership),
    /// Close code and reason for a socket; the HTTP error for a stream.
    Refused(CloseCode, ApiError),
}

pub async fn check_token(
    index: &Index,
    config: &Config,
    session_id: &str,
    token: &str,
) -> Result<TokenCheck> {
    let refused = |code: CloseCode, message: &str| {
        TokenCheck::Refused(code, ApiError::new(ErrorCode::Unauthorized, message))
    };
    let claims = match token::verify(token_secret(config)?, token, session_id, now_ms()) {
        Ok(claims) => claims,
        // Not a token this coordinator issued: refused before any socket is opened.
        Err(error @ (TokenError::Malformed | TokenError::BadSignature)) => {
            return Err(ApiError::new(ErrorCode::Unauthorized, error.message()).into());
        }
        // A genuine token that has run out or belongs elsewhere: the client can act on 4001
        // (fetch a new token), which a browser could not read from an HTTP status.
        Err(error @ (TokenError::Expired | TokenError::WrongSession)) => {
            return Ok(refused(CloseCode::TokenExpired, error.message()))
        }
    };
    let Some(user) = index.user(&claims.uid).await?.filter(|u| !u.disabled) else {
        return Ok(refused(
            CloseCode::TokenExpired,
            "the token's user no longer exists or is disabled",
        ));
    };
    let Some(membership) = index.membership(session_id, &user.id).await? else {
        return Ok(TokenCheck::Refused(
            CloseCode::Removed,
            ApiError::new(
                ErrorCode::Forbidden,
                "you are no longer a member of this session",
            ),
        ));
    };
    Ok(TokenCheck::Member(user, membership))
}

/// `GET /v1/sessions/:id/ws`: checks the token and the origin, then hands the socket to the room.
pub async fn connect(
    env: &Env,
    index: &Index,
    config: &Config,
    req: &Request,
    session_id: &str,
) -> Result<Response> {
    let url = crate::url::of(req);
    let query_string = url.query();
    if !req
        .headers()
        .get("upgrade")?
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    {
        return Err(ApiError::invalid_field("this endpoint needs a WebSocket upgrade").into());
    }
    if let Some(origin) = req.headers().get("origin")? {
        if !config.origin_allowed(&origin, url.origin()) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "this origin may not open session sockets",
            )
            .into());
        }
    }
    let since = query::u64_param(query_string, "since")?;
    let token = query::param(query_string, "token").unwrap_or_default();
    let (user, membership) = match check_token(index, config, session_id, &token).await? {
        TokenCheck::Member(user, membership) => (user, membership),
        TokenCheck::Refused(code, error) => return respond::refuse_socket(code, &error.message),
    };
    if membership.session.is_archived() {
        let archived = CloseCode::Archived;
        return respond::refuse_socket(archived, archived.default_reason());
    }
    RoomClient::open(env, session_id)?
        .connect(since, &caller(&user))
        .await
}

/// `GET /v1/sessions/:id/events` as SSE, resuming after `Last-Event-ID` or `?since=`.
pub async fn event_stream(
    env: &Env,
    membership: &Membership,
    user: &User,
    req: &Request,
) -> Result<Response> {
    let url = crate::url::of(req);
    let query_string = url.query();
    let last_event_id = match req.headers().get("last-event-id")? {
        Some(id) => Some(
            id.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::invalid_field("Last-Event-ID must be an event seq"))?,
        ),
        None => None,
    };
    let since = match last_event_id {
        Some(id) => id,
        None => query::u64_param(query_string, "since")?.unwrap_or(0),
    };
    let room = RoomClient::open(env, &membership.session.id)?;
    room.call(RoomRoute::EventStream { since }, &caller(user), None)
        .await
}
