//! Who is calling: the admin key, a user's API key, or a participant token.

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

pub async fn authenticate(req: &Request, index: &Index, config: &Config) -> Result<Principal> {
    let key = bearer(req)?.ok_or_else(|| unauthorized("missing Authorization: Bearer <key>"))?;
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
