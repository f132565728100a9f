//! Who is calling: the admin key, a user's API key, or the session cookie of a browser signed
//! in with GitHub (which may change state only from the page's own origin).

use super::cookie::{cookie, may_act, open_session, session_key, SESSION_COOKIE};
use crate::config::Config;
use crate::error::Result;
use crate::index::Index;
use crate::room::api::Caller;
use protocol::api::User;
use protocol::crypto::{constant_time_eq, sha256_hex};
use protocol::{ApiError, ErrorCode};
use worker::Request;

pub enum Principal {
    Admin,
    User(User),
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

fn bearer(req: &Request) -> Result<Option<String>> {
    let Some(header) = req.headers().get("authorization")? else {
        return Ok(None);
    };
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if key.is_empty() || key.len() > 512 {
        return Err(unauthorized("the Authorization header must be \"Bearer <key>\"").into());
    }
    Ok(Some(key.to_owned()))
}

/// The participant token in `Authorization: Bearer v1.…`, when that is what it carries (API
/// keys start with `sk_` and the admin key is never shaped like a token).
pub fn participant_token(req: &Request) -> Result<Option<String>> {
    Ok(bearer(req)?.filter(|key| key.starts_with("v1.")))
}

/// The value of cookie `name`, when the request carries it.
pub fn cookie_value(req: &Request, name: &str) -> Result<Option<String>> {
    Ok(req
        .headers()
        .get("cookie")?
        .and_then(|header| cookie(&header, name).map(str::to_owned)))
}

/// The user a session cookie names, with the cross-site rule applied.
async fn cookie_user(req: &Request, index: &Index, config: &Config, value: &str) -> Result<User> {
    let key = session_key(config.token_secret.as_deref().unwrap_or_default());
    let user_id = open_session(&key, value, crate::time::now_ms())
        .filter(|_| config.token_secret.is_some())
        .ok_or_else(|| unauthorized("the sign-in has expired; sign in again"))?;
    let url = crate::url::of(req);
    let origin = req.headers().get("origin")?;
    if !may_act(
        config,
        req.method().as_ref(),
        origin.as_deref(),
        url.origin(),
    ) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "a signed-in browser may change things only from this coordinator's own page",
        )
        .into());
    }
    index
        .user(&user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| unauthorized("this user no longer exists or is disabled").into())
}

pub async fn authenticate(req: &Request, index: &Index, config: &Config) -> Result<Principal> {
    let Some(key) = bearer(req)? else {
        return match cookie_value(req, SESSION_COOKIE)? {
            Some(value) => Ok(Principal::User(
                cookie_user(req, index, config, &value).await?,
            )),
            None => Err(unauthorized("missing Authorization: Bearer <key>").into()),
        };
    };
    let key_hash = sha256_hex(key.as_bytes());
    if let Some(admin_key) = &config.admin_key {
        if constant_time_eq(
            key_hash.as_bytes(),
            sha256_hex(admin_key.as_bytes()).as_bytes(),
        ) {
            return Ok(Principal::Admin);
        }
    }
    let user = index
        .user_by_key_hash(&key_hash)
        .await?
        .ok_or_else(|| unauthorized("unknown API key"))?;
    if user.disabled {
        return Err(unauthorized("this user is disabled").into());
    }
    Ok(Principal::User(user))
}

pub fn require_admin(principal: Principal) -> Result<()> {
    match principal {
        Principal::Admin => Ok(()),
        Principal::User(_) => {
            Err(ApiError::new(ErrorCode::Forbidden, "only the admin key may manage users").into())
        }
    }
}

pub fn require_user(principal: Principal) -> Result<User> {
    match principal {
        Principal::User(user) => Ok(user),
        Principal::Admin => Err(ApiError::new(
            ErrorCode::Forbidden,
            "the admin key only works on /v1/users; use a user API key",
        )
        .into()),
    }
}

pub fn caller(user: &User) -> Caller {
    Caller {
        user_id: user.id.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
    }
}
