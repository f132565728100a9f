//! The session cookie of a browser signed in with GitHub, `sc_session` =
//! `s1.<b64url {"uid","exp"}>.<b64url mac>` (HMAC-SHA256 under a key derived from
//! TOKEN_SECRET, 7 days; `HttpOnly; Secure; SameSite=Lax; Path=/`), reading cookies from a
//! `Cookie` header, and the rule that keeps other sites from acting with it: a request that
//! is authenticated by the cookie and changes state must come from the page's own origin.
//! Pure, tested natively.

use crate::config::Config;
use protocol::crypto::{b64url, hmac_sha256, hmac_sha256_verify, unb64url};

pub const SESSION_COOKIE: &str = "sc_session";
pub const SESSION_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// The cookie's key: HMAC(TOKEN_SECRET, "session-cookie").
pub fn session_key(token_secret: &str) -> [u8; 32] {
    hmac_sha256(token_secret.as_bytes(), b"session-cookie")
}

pub fn seal_session(key: &[u8], user_id: &str, expires_ms: u64) -> String {
    let claims = serde_json::json!({"uid": user_id, "exp": expires_ms}).to_string();
    let text = format!("s1.{}", b64url(claims.as_bytes()));
    let mac = b64url(&hmac_sha256(key, text.as_bytes()));
    format!("{text}.{mac}")
}

/// The user id of a genuine, unexpired session cookie.
pub fn open_session(key: &[u8], value: &str, now_ms: u64) -> Option<String> {
    let (text, mac) = value.rsplit_once('.')?;
    let claims = text.strip_prefix("s1.")?;
    if !hmac_sha256_verify(key, text.as_bytes(), &unb64url(mac)?) {
        return None;
    }
    let claims: serde_json::Value = serde_json::from_slice(&unb64url(claims)?).ok()?;
    let expires_ms = claims["exp"].as_u64()?;
    let user_id = claims["uid"].as_str()?;
    (expires_ms > now_ms).then(|| user_id.to_owned())
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// A `Set-Cookie` value; `max_age_s` 0 clears the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_s: u64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; Secure; SameSite=Lax")
}

/// Whether a cookie-authenticated request may go ahead: reads always; anything else only
/// with an `Origin` that is the Worker's own or one of ALLOWED_ORIGINS (`*` does not count,
/// since it would let any site act as the signed-in user).
pub fn may_act(config: &Config, method: &str, origin: Option<&str>, own_origin: &str) -> bool {
    if matches!(method, "GET" | "HEAD") {
        return true;
    }
    let Some(origin) = origin else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    origin.eq_ignore_ascii_case(own_origin)
        || crate::config::same_local_host(origin, own_origin)
        || config
            .allowed_origins
            .iter()
            .any(|o| o != "*" && o.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies() {
        let key = session_key("secret");
        let value = seal_session(&key, "usr_1", 1_000);
        assert_eq!(open_session(&key, &value, 999).as_deref(), Some("usr_1"));
        assert_eq!(open_session(&key, &value, 1_000), None);
        assert_eq!(open_session(&session_key("other"), &value, 1), None);
        let (text, mac) = value.rsplit_once('.').unwrap();
        let forged_claims = format!("s1.{}", b64url(br#"{"uid":"usr_2","exp":9999}"#));
        assert_eq!(
            open_session(&key, &format!("{forged_claims}.{mac}"), 1),
            None
        );
        assert_eq!(open_session(&key, text, 1), None);
        assert_eq!(open_session(&key, "x", 1), None);
    }

    #[test]
    fn headers() {
        let header = "a=1; sc_session=s1.x.y; b=2";
        assert_eq!(cookie(header, "sc_session"), Some("s1.x.y"));
        assert_eq!(cookie(header, "c"), None);
        assert_eq!(
            set_cookie("sc_session", "v", "/", 60),
            "sc_session=v; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn cross_site_requests() {
        let own = "http://127.0.0.1:8787";
        let config = Config::from_lookup(|name| {
            (name == "ALLOWED_ORIGINS").then(|| "https://app.example.com, *".to_owned())
        })
        .unwrap();
        assert!(may_act(&config, "GET", Some("https://evil.example"), own));
        assert!(may_act(&config, "POST", Some(own), own));
        assert!(may_act(&config, "POST", Some("http://localhost:8787"), own));
        assert!(may_act(
            &config,
            "DELETE",
            Some("https://app.example.com"),
            own
        ));
        assert!(!may_act(&config, "POST", Some("https://evil.example"), own));
        assert!(!may_act(&config, "POST", None, own));
    }
}
