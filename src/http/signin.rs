//! Signing in: which methods there are, sign-in with GitHub (login → GitHub's authorize page →
//! callback → session cookie), and logout. A refused sign-in goes back to the page's sign-in
//! view with a code and a sentence that says why.

use super::cookie::{seal_session, session_key, set_cookie, SESSION_COOKIE, SESSION_TTL_MS};
use super::query;
use crate::config::github::{GithubConfig, SignIn};
use crate::config::Config;
use crate::error::Result;
use crate::github::oauth::{self, Admit, LoginState, LOGIN_COOKIE, LOGIN_TTL_MS};
use crate::github::tokens;
use crate::ids::{new_id, new_secret_token};
use crate::index::Index;
use crate::respond;
use crate::time::{now_ms, rfc3339};
use crate::url::RequestUrl;
use protocol::api::User;
use protocol::crypto::constant_time_eq;
use protocol::{ApiError, ErrorCode};
use serde_json::json;
use worker::{Request, Response};

const LOGIN_PATH: &str = "/v1/auth/github";

pub fn methods(config: &Config) -> Result<Response> {
    let github = config.github.as_ref().is_some_and(|g| g.sign_in.is_some());
    respond::json(200, &json!({ "api_key": true, "github": github }))
}

fn sign_in(config: &Config) -> Result<(&GithubConfig, &SignIn, &str)> {
    let gh = config.github.as_ref();
    match (gh, gh.and_then(|g| g.sign_in.as_ref()), &config.token_secret) {
        (Some(gh), Some(sign_in), Some(secret)) => Ok((gh, sign_in, secret)),
        _ => Err(ApiError::new(
            ErrorCode::NotConfigured,
            "sign-in with GitHub is not configured: set GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, TOKEN_ENCRYPTION_KEY and TOKEN_SECRET",
        )
        .into()),
    }
}

fn redirect_uri(url: &RequestUrl) -> String {
    format!("{}{LOGIN_PATH}/callback", url.origin())
}

/// `GET /v1/auth/github/login?return_to=`: to GitHub's authorize page, with the state and the
/// PKCE verifier in a signed cookie only the callback reads.
pub fn login(config: &Config, url: &RequestUrl) -> Result<Response> {
    let (gh, sign_in, secret) = sign_in(config)?;
    let login = LoginState {
        state: new_secret_token()?,
        verifier: new_secret_token()?,
        return_to: oauth::return_to(query::param(url.query(), "return_to").as_deref()),
        expires_ms: now_ms() + LOGIN_TTL_MS,
    };
    let cookie = set_cookie(
        LOGIN_COOKIE,
        &login.seal(&oauth::login_key(secret)),
        LOGIN_PATH,
        LOGIN_TTL_MS / 1000,
    );
    let location = oauth::authorize_url(gh, &sign_in.client_id, &redirect_uri(url), &login);
    respond::redirect(&location, &[cookie])
}

/// Why a sign-in failed, as the page's sign-in view shows it.
struct Refused(&'static str, String);

/// `GET /v1/auth/github/callback?code=&state=`: the code exchanged (with the verifier), the
/// user read and admitted, created or linked, their token stored, the session cookie set.
pub async fn callback(index: &Index, config: &Config, req: &Request) -> Result<Response> {
    let (gh, sign_in, secret) = sign_in(config)?;
    let url = crate::url::of(req);
    let clear_login = set_cookie(LOGIN_COOKIE, "", LOGIN_PATH, 0);
    match finish(index, gh, sign_in, secret, req, &url).await? {
        Ok((user, return_to)) => {
            crate::log::info(&format!("signed in with GitHub: {}", user.id));
            let value = seal_session(&session_key(secret), &user.id, now_ms() + SESSION_TTL_MS);
            let session = set_cookie(SESSION_COOKIE, &value, "/", SESSION_TTL_MS / 1000);
            respond::redirect(&format!("/#{return_to}"), &[clear_login, session])
        }
        Err(Refused(code, reason)) => {
            crate::log::info(&format!("GitHub sign-in refused: {code}"));
            respond::redirect(&oauth::refused_location(code, &reason), &[clear_login])
        }
    }
}

async fn finish(
    index: &Index,
    gh: &GithubConfig,
    sign_in: &SignIn,
    secret: &str,
    req: &Request,
    url: &RequestUrl,
) -> Result<Result<(User, String), Refused>> {
    let q = url.query();
    if let Some(error) = query::param(q, "error") {
        let reason = format!("GitHub did not authorize the sign-in ({error})");
        return Ok(Err(Refused("denied", reason)));
    }
    let sealed = super::auth::cookie_value(req, LOGIN_COOKIE)?;
    let login = sealed.and_then(|s| LoginState::open(&s, &oauth::login_key(secret), now_ms()));
    let Some(login) = login else {
        let reason = "the sign-in took too long or began in another browser; please try again";
        return Ok(Err(Refused("expired", reason.into())));
    };
    let state = query::param(q, "state").unwrap_or_default();
    if !constant_time_eq(state.as_bytes(), login.state.as_bytes()) {
        let reason = "the sign-in's state does not match; please try again";
        return Ok(Err(Refused("state_mismatch", reason.into())));
    }
    let grant = json!({
        "code": query::param(q, "code").unwrap_or_default(),
        "redirect_uri": redirect_uri(url),
        "code_verifier": login.verifier,
    });
    let pair = match oauth::exchange(gh, sign_in, grant).await? {
        Ok(pair) => pair,
        Err(code) => {
            let reason = format!("GitHub did not accept the sign-in ({code}); please try again");
            return Ok(Err(Refused("exchange_failed", reason)));
        }
    };
    let github = oauth::user(gh, &pair.access).await?;
    let admitted = match oauth::admit(&gh.admission, &github.login, github.email.as_deref()) {
        Admit::Yes => Ok(()),
        Admit::No(reason) => Err(reason),
        Admit::AskOrgs => {
            let mut member = false;
            for org in &gh.admission.orgs {
                if oauth::is_member(gh, &pair.access, org, &github.login).await? {
                    member = true;
                    break;
                }
            }
            if member {
                Ok(())
            } else {
                Err(oauth::not_admitted(&github.login))
            }
        }
    };
    if let Err(reason) = admitted {
        return Ok(Err(Refused("not_allowed", reason)));
    }
    let email = github.email.as_deref();
    let user = match index
        .user_for_github(github.id, &github.login, email)
        .await?
    {
        Some(user) if user.disabled => {
            let reason = "this account is disabled on the coordinator; ask its admin";
            return Ok(Err(Refused("disabled", reason.into())));
        }
        Some(mut user) => {
            index
                .link_github(&user.id, github.id, &github.login)
                .await?;
            user.github_login = Some(github.login);
            user
        }
        None => {
            let user = User {
                id: new_id("usr")?,
                name: github.name,
                // GitHub's own no-reply address when no verified email is shared.
                email: github.email.unwrap_or_else(|| {
                    format!("{}+{}@users.noreply.github.com", github.id, github.login)
                }),
                github_login: Some(github.login),
                scopes: gh.default_scopes.clone(),
                disabled: false,
                created_at: rfc3339(now_ms()),
            };
            index.insert_github_user(&user, github.id).await?;
            user
        }
    };
    tokens::store(index, gh, &user.id, &pair).await?;
    Ok(Ok((user, login.return_to)))
}

/// `POST /v1/auth/logout`: the session cookie is cleared.
pub fn logout() -> Result<Response> {
    respond::no_content(&[set_cookie(SESSION_COOKIE, "", "/", 0)])
}
