//! Participant tokens and connect tickets: minting them (`POST …/tokens`, `POST …/tickets`),
//! checking what a socket or an SSE stream is opened with, and handing the admitted ones to
//! the room (`GET …/ws`, `GET …/events` as a stream).

use super::auth::caller;
use super::query;
use super::sessions::{out_of_scope, require_active};
use crate::config::Config;
use crate::error::Result;
use crate::index::{Index, Membership};
use crate::respond;
use crate::room::api::{RoomClient, RoomRoute, TicketUse};
use crate::time::{now_ms, rfc3339};
use crate::url::RequestUrl;
use protocol::api::User;
use protocol::token::{self, Claims, TicketClaims, TokenError, TICKET_TTL_MS};
use protocol::{ApiError, CloseCode, ErrorCode};
use serde_json::json;
use worker::{Env, Request, Response};

pub(super) fn token_secret(config: &Config) -> Result<&[u8]> {
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

/// A fresh participant token, with a connect ticket for one socket or stream (`ws_url`,
/// `events_url`) that may live as long as the token.
pub(super) fn mint_token(
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
    let ticket = mint_ticket(config, url, session_id, user_id, expires_ms)?;
    Ok(json!({
        "token": token,
        "expires_at": rfc3339(expires_ms),
        "ticket": ticket["ticket"],
        "ws_url": ticket["ws_url"],
        "events_url": ticket["events_url"],
    }))
}

/// A single-use connect ticket, usable for [`TICKET_TTL_MS`], whose socket or stream lives
/// until `until`; and the URLs that carry it, so no token or key is ever in a URL.
fn mint_ticket(
    config: &Config,
    url: &RequestUrl,
    session_id: &str,
    user_id: &str,
    until: u64,
) -> Result<serde_json::Value> {
    let now = now_ms();
    let claims = TicketClaims {
        sid: session_id.to_owned(),
        uid: user_id.to_owned(),
        exp: now + TICKET_TTL_MS,
        until,
        n: crate::ids::new_nonce()?,
    };
    let ticket = token::sign_ticket(&token::ticket_key(token_secret(config)?), &claims);
    let scheme = if url.is_https() { "wss" } else { "ws" };
    let host = url.host();
    let http = if url.is_https() { "https" } else { "http" };
    Ok(json!({
        "ticket": ticket,
        "expires_at": rfc3339(claims.exp),
        "ws_url": format!("{scheme}://{host}/v1/sessions/{session_id}/ws?ticket={ticket}"),
        "events_url": format!("{http}://{host}/v1/sessions/{session_id}/events?ticket={ticket}"),
    }))
}

/// `POST /v1/sessions/:id/tickets` for a member with a key or the session cookie: the socket
/// it opens lives as long as a participant token would.
pub fn ticket(
    config: &Config,
    url: &RequestUrl,
    membership: &Membership,
    user: &User,
) -> Result<Response> {
    require_active(membership)?;
    let until = now_ms() + config.token_ttl_ms;
    let ticket = mint_ticket(config, url, &membership.session.id, &user.id, until)?;
    respond::json(201, &ticket)
}

/// `POST /v1/sessions/:id/tickets` with a participant token in `Authorization`: the socket
/// lives until the token expires.
pub async fn ticket_for_token(
    index: &Index,
    config: &Config,
    url: &RequestUrl,
    session_id: &str,
    token: &str,
) -> Result<Response> {
    let credential = Credential::Token(token.to_owned());
    match check_credential(index, config, session_id, &credential).await? {
        TokenCheck::Member(admitted) => {
            require_active(&admitted.membership)?;
            let ticket = mint_ticket(
                config,
                url,
                session_id,
                &admitted.user.id,
                admitted.expires_ms,
            )?;
            respond::json(201, &ticket)
        }
        TokenCheck::Refused(_, error) => Err(error.into()),
    }
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

/// What a socket or stream is opened with: a participant token (deprecated in URLs) or a
/// connect ticket.
pub enum Credential {
    Token(String),
    Ticket(String),
}

/// A member admitted to a socket or stream.
pub struct Admitted {
    pub user: User,
    pub membership: Membership,
    /// When the socket must close (the token's expiry, or the ticket's `until`).
    pub expires_ms: u64,
    /// The ticket to use up in the room.
    pub ticket: Option<TicketUse>,
}

/// Who a participant token or ticket belongs to, checked against the session and D1.
pub enum TokenCheck {
    Member(Box<Admitted>),
    /// Close code and reason for a socket; the HTTP error for a stream.
    Refused(CloseCode, ApiError),
}

pub async fn check_credential(
    index: &Index,
    config: &Config,
    session_id: &str,
    credential: &Credential,
) -> Result<TokenCheck> {
    let refused = |code: CloseCode, message: &str| {
        TokenCheck::Refused(code, ApiError::new(ErrorCode::Unauthorized, message))
    };
    let secret = token_secret(config)?;
    let now = now_ms();
    let verified = match credential {
        Credential::Token(token) => {
            token::verify(secret, token, session_id, now).map(|c| (c.uid, c.exp, None))
        }
        Credential::Ticket(ticket) => {
            token::verify_ticket(&token::ticket_key(secret), ticket, session_id, now).map(|c| {
                let ticket = TicketUse {
                    nonce: c.n,
                    exp: c.exp,
                };
                (c.uid, c.until, Some(ticket))
            })
        }
    };
    let (user_id, expires_ms, ticket) = match verified {
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
    let Some(user) = index.user(&user_id).await?.filter(|u| !u.disabled) else {
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
    if !user.scopes.allows_repo(&membership.session.repo) {
        return Ok(TokenCheck::Refused(
            CloseCode::Removed,
            out_of_scope(&membership.session.repo),
        ));
    }
    Ok(TokenCheck::Member(Box::new(Admitted {
        user,
        membership,
        expires_ms,
        ticket,
    })))
}

/// The credential of a socket or stream URL: `?ticket=`, else the deprecated `?token=`.
pub fn url_credential(query_string: &str) -> Credential {
    match query::param(query_string, "ticket") {
        Some(ticket) => Credential::Ticket(ticket),
        None => Credential::Token(query::param(query_string, "token").unwrap_or_default()),
    }
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
    let epoch = query::epoch_param(query_string)?;
    let credential = url_credential(query_string);
    let admitted = match check_credential(index, config, session_id, &credential).await? {
        TokenCheck::Member(admitted) => admitted,
        TokenCheck::Refused(code, error) => return respond::refuse_socket(code, &error.message),
    };
    if admitted.membership.session.is_archived() {
        let archived = CloseCode::Archived;
        return respond::refuse_socket(archived, archived.default_reason());
    }
    let route = RoomRoute::Connect {
        since,
        epoch,
        expires_ms: admitted.expires_ms,
        ticket: admitted.ticket.clone(),
    };
    RoomClient::open(env, session_id)?
        .connect(route, &caller(&admitted.user))
        .await
}

/// `GET /v1/sessions/:id/events` as SSE, resuming after `Last-Event-ID` or `?since=`;
/// `ticket` is the connect ticket it was opened with, if any, and `expires_ms` when the
/// stream ends (the token's expiry; `None` with a key or the session cookie).
pub async fn event_stream(
    env: &Env,
    membership: &Membership,
    user: &User,
    req: &Request,
    ticket: Option<TicketUse>,
    expires_ms: Option<u64>,
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
    room.call(
        RoomRoute::EventStream {
            since,
            expires_ms,
            ticket,
        },
        &caller(user),
        None,
    )
    .await
}
