//! Sign-in with GitHub: the authorization-code flow with `state` and PKCE (S256), the code and
//! refresh exchanges, the user and their primary verified email, and who is admitted
//! (ALLOWED_GITHUB_USERS, ALLOWED_GITHUB_ORGS by membership, ALLOWED_EMAIL_DOMAINS). The
//! state, verifier and page to return to travel in a signed, short-lived cookie.

use crate::config::github::{Admission, GithubConfig};
use protocol::crypto::{b64url, hmac_sha256, hmac_sha256_verify, sha256, unb64url};
use serde_json::Value;

/// The cookie that carries a sign-in from `/login` to `/callback`.
pub const LOGIN_COOKIE: &str = "sc_oauth";
pub const LOGIN_TTL_MS: u64 = 10 * 60_000;

/// What the callback needs to finish a sign-in the login started.
#[derive(Debug, PartialEq, Eq)]
pub struct LoginState {
    pub state: String,
    pub verifier: String,
    /// A page fragment (`/s/ses_…`); the callback sends the browser to `/#<return_to>`.
    pub return_to: String,
    pub expires_ms: u64,
}

/// The login cookie's key, derived from TOKEN_SECRET so no setting is added for it.
pub fn login_key(token_secret: &str) -> [u8; 32] {
    hmac_sha256(token_secret.as_bytes(), b"github-login")
}

impl LoginState {
    /// `<state>.<verifier>.<expiry ms>.<b64url return_to>.<b64url mac>`; state and verifier
    /// are base64url, so no part holds a dot.
    pub fn seal(&self, key: &[u8]) -> String {
        let text = format!(
            "{}.{}.{}.{}",
            self.state,
            self.verifier,
            self.expires_ms,
            b64url(self.return_to.as_bytes())
        );
        let mac = b64url(&hmac_sha256(key, text.as_bytes()));
        format!("{text}.{mac}")
    }

    pub fn open(sealed: &str, key: &[u8], now_ms: u64) -> Option<LoginState> {
        let (text, mac) = sealed.rsplit_once('.')?;
        if !hmac_sha256_verify(key, text.as_bytes(), &unb64url(mac)?) {
            return None;
        }
        let mut parts = text.split('.');
        let (state, verifier) = (parts.next()?, parts.next()?);
        let expires_ms = parts.next()?.parse::<u64>().ok()?;
        let return_to = String::from_utf8(unb64url(parts.next()?)?).ok()?;
        (expires_ms > now_ms && parts.next().is_none()).then(|| LoginState {
            state: state.to_owned(),
            verifier: verifier.to_owned(),
            return_to,
            expires_ms,
        })
    }
}

/// PKCE's S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    b64url(&sha256(verifier.as_bytes()))
}

/// A page fragment to come back to after signing in; anything odd becomes `/`.
pub fn return_to(asked: Option<&str>) -> String {
    match asked {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.len() <= 200
                && path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-.?=&".contains(&b)) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// GitHub's authorize page for this sign-in.
pub fn authorize_url(
    gh: &GithubConfig,
    client_id: &str,
    redirect_uri: &str,
    login: &LoginState,
) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", &login.state)
        .append_pair("code_challenge", &pkce_challenge(&login.verifier))
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("{}/login/oauth/authorize?{query}", gh.web_url)
}

/// Where a refused sign-in sends the browser: the page's sign-in view, which shows `reason`.
pub fn refused_location(code: &str, reason: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("error", code)
        .append_pair("reason", reason)
        .finish();
    format!("/#/signin?{query}")
}

/// Whether a GitHub account may sign in, before asking GitHub about organisations.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Only membership of one of ALLOWED_GITHUB_ORGS can still admit them.
    AskOrgs,
    No(String),
}

pub fn admit(admission: &Admission, login: &str, verified_email: Option<&str>) -> Admit {
    if admission.is_empty() {
        return Admit::No(
            "sign-in with GitHub is open to nobody yet: the coordinator's admin sets ALLOWED_GITHUB_USERS, ALLOWED_GITHUB_ORGS or ALLOWED_EMAIL_DOMAINS".into(),
        );
    }
    let domain = verified_email
        .and_then(|email| email.rsplit_once('@'))
        .map(|(_, domain)| domain.to_ascii_lowercase());
    if admission
        .users
        .iter()
        .any(|u| u.eq_ignore_ascii_case(login))
        || domain.is_some_and(|d| admission.email_domains.contains(&d))
    {
        return Admit::Yes;
    }
    if !admission.orgs.is_empty() {
        return Admit::AskOrgs;
    }
    Admit::No(not_admitted(login))
}

/// Why an account none of the lists admits was refused, without naming who is on them.
pub fn not_admitted(login: &str) -> String {
    format!("the GitHub account {login} is not allowed here: it is not among the allowed users, not a member of an allowed organisation, and has no verified email in an allowed domain")
}

/// A user's token pair as GitHub gives it (`expires_in` and `refresh_token` only when the App
/// has expiring user tokens, which is GitHub's default).
#[derive(Debug, PartialEq, Eq)]
pub struct TokenPair {
    pub access: String,
    pub access_expires_ms: Option<u64>,
    pub refresh: Option<String>,
    pub refresh_expires_ms: Option<u64>,
}

/// The pair in a token endpoint's answer, or GitHub's error code (it answers 200 with
/// `{"error": …}`).
pub fn token_pair(json: &Value, now_ms: u64) -> Result<TokenPair, String> {
    let Some(access) = json["access_token"].as_str().filter(|t| !t.is_empty()) else {
        return Err(json["error"].as_str().unwrap_or("no_token").to_owned());
    };
    let after = |field: &str| json[field].as_u64().map(|s| now_ms + s * 1000);
    Ok(TokenPair {
        access: access.to_owned(),
        access_expires_ms: after("expires_in"),
        refresh: json["refresh_token"].as_str().map(str::to_owned),
        refresh_expires_ms: after("refresh_token_expires_in"),
    })
}

/// The primary, verified address of `GET /user/emails`.
pub fn primary_email(emails: &Value) -> Option<String> {
    emails.as_array()?.iter().find_map(|e| {
        let chosen = e["primary"].as_bool() == Some(true) && e["verified"].as_bool() == Some(true);
        chosen.then(|| e["email"].as_str().map(str::to_owned))?
    })
}

#[cfg(target_arch = "wasm32")]
pub use io::{exchange, is_member, user, GithubUser};

#[cfg(target_arch = "wasm32")]
mod io {
    use super::*;
    use crate::config::github::SignIn;
    use crate::error::Result;
    use crate::github::client::call;
    use crate::time::now_ms;
    use protocol::{ApiError, ErrorCode};
    use serde_json::json;
    use worker::Method;

    /// A code (`grant` = `authorization_code` with the verifier) or a refresh token exchanged
    /// at `<web>/login/oauth/access_token`; `Ok(Err(code))` when GitHub refuses.
    pub async fn exchange(
        gh: &GithubConfig,
        sign_in: &SignIn,
        mut grant: Value,
    ) -> Result<std::result::Result<TokenPair, String>> {
        grant["client_id"] = json!(sign_in.client_id);
        grant["client_secret"] = json!(sign_in.client_secret.0);
        let url = format!("{}/login/oauth/access_token", gh.web_url);
        let answer = call(Method::Post, &url, None, Some(&grant)).await?;
        if answer.status >= 500 {
            return Err(answer.refusal("exchange the sign-in"));
        }
        Ok(token_pair(&answer.json, now_ms()))
    }

    pub struct GithubUser {
        pub id: u64,
        pub login: String,
        pub name: String,
        pub email: Option<String>,
    }

    /// `GET /user` and the primary verified email of `GET /user/emails`.
    pub async fn user(gh: &GithubConfig, token: &str) -> Result<GithubUser> {
        let me = call(
            Method::Get,
            &format!("{}/user", gh.api_url),
            Some(token),
            None,
        )
        .await?;
        let (Some(id), Some(login)) = (me.json["id"].as_u64(), me.json["login"].as_str()) else {
            return Err(me.refusal("say who signed in"));
        };
        let url = format!("{}/user/emails", gh.api_url);
        let emails = call(Method::Get, &url, Some(token), None).await?;
        Ok(GithubUser {
            id,
            login: login.to_owned(),
            name: me.json["name"].as_str().unwrap_or(login).to_owned(),
            email: primary_email(&emails.json),
        })
    }

    /// `GET /orgs/{org}/members/{login}` with the user's own token: 204 means a member.
    pub async fn is_member(gh: &GithubConfig, token: &str, org: &str, login: &str) -> Result<bool> {
        let url = format!("{}/orgs/{org}/members/{login}", gh.api_url);
        let answer = call(Method::Get, &url, Some(token), None).await?;
        match answer.status {
            204 => Ok(true),
            302 | 404 => Ok(false),
            _ => Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "GitHub did not say whether you are in {org}: {}",
                    answer.message()
                ),
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn login() -> LoginState {
        LoginState {
            state: "st4te".into(),
            verifier: "v3rifier".into(),
            return_to: "/s/ses_1".into(),
            expires_ms: 1_000,
        }
    }

    #[test]
    fn login_cookie_is_signed_and_expires() {
        let key = login_key("secret");
        let sealed = login().seal(&key);
        assert_eq!(LoginState::open(&sealed, &key, 999), Some(login()));
        assert_eq!(LoginState::open(&sealed, &key, 1_000), None);
        assert_eq!(LoginState::open(&sealed, &login_key("other"), 1), None);
        let forged = sealed.replacen("st4te", "other", 1);
        assert_eq!(LoginState::open(&forged, &key, 1), None);
        assert_eq!(LoginState::open("garbage", &key, 1), None);
    }

    #[test]
    fn pkce_and_return_to() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(return_to(Some("/s/ses_1")), "/s/ses_1");
        for odd in [
            None,
            Some("https://evil.example"),
            Some("//evil"),
            Some("/a b"),
            Some("/<x>"),
        ] {
            assert_eq!(return_to(odd), "/", "{odd:?}");
        }
        assert_eq!(
            refused_location("not_allowed", "you & me"),
            "/#/signin?error=not_allowed&reason=you+%26+me"
        );
    }

    #[test]
    fn admission() {
        let admission = |users: &[&str], orgs: &[&str], domains: &[&str]| Admission {
            users: users.iter().map(|s| s.to_string()).collect(),
            orgs: orgs.iter().map(|s| s.to_string()).collect(),
            email_domains: domains.iter().map(|s| s.to_string()).collect(),
        };
        let nobody = admit(&admission(&[], &[], &[]), "ada", None);
        assert!(matches!(nobody, Admit::No(why) if why.contains("ALLOWED_GITHUB_USERS")));
        assert_eq!(
            admit(&admission(&["ada"], &[], &[]), "Ada", None),
            Admit::Yes
        );
        let by_domain = admission(&[], &[], &["example.com"]);
        assert_eq!(admit(&by_domain, "x", Some("x@Example.com")), Admit::Yes);
        assert!(matches!(admit(&by_domain, "x", None), Admit::No(_)));
        assert_eq!(
            admit(&admission(&[], &["acme"], &[]), "x", None),
            Admit::AskOrgs
        );
    }

    #[test]
    fn token_answers_and_emails() {
        let pair = token_pair(
            &json!({"access_token": "a", "expires_in": 10, "refresh_token": "r", "refresh_token_expires_in": 20}),
            1_000,
        );
        assert_eq!(
            pair,
            Ok(TokenPair {
                access: "a".into(),
                access_expires_ms: Some(11_000),
                refresh: Some("r".into()),
                refresh_expires_ms: Some(21_000),
            })
        );
        assert_eq!(
            token_pair(&json!({"error": "bad_verification_code"}), 0),
            Err("bad_verification_code".into())
        );
        let emails = json!([
            {"email": "old@x.com", "primary": false, "verified": true},
            {"email": "main@x.com", "primary": true, "verified": true},
        ]);
        assert_eq!(primary_email(&emails).as_deref(), Some("main@x.com"));
        assert_eq!(
            primary_email(&json!([{"email": "u@x.com", "primary": true, "verified": false}])),
            None
        );
    }
}
