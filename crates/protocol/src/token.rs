//! Participant tokens: HMAC-signed claims binding one user to one session for a while.
//!
//! Format: `v1.<base64url(claims json)>.<base64url(hmac-sha256(secret, "v1." + claims part))>`.
//!
//! Connect tickets are their single-use, short-lived cousins that travel in socket and SSE
//! URLs instead of the token: `t1.<base64url(ticket claims json)>.<base64url(hmac)>`, signed
//! with a key derived from the same secret ([`ticket_key`]) so a ticket is never a token.

use crate::crypto::{b64url, hmac_sha256, hmac_sha256_verify, unb64url};
use serde::{Deserialize, Serialize};

pub const DEFAULT_TTL_MS: u64 = 15 * 60 * 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Session id.
    pub sid: String,
    /// User id.
    pub uid: String,
    /// Expiry, unix milliseconds.
    pub exp: u64,
}

/// How long a connect ticket can be used for.
pub const TICKET_TTL_MS: u64 = 30 * 1000;

/// What a connect ticket says: who may open one socket or stream of which session, until
/// when the ticket may be used (`exp`), and until when the connection it opens may live
/// (`until`, the participant token's expiry or the token lifetime from when it was made).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    pub sid: String,
    pub uid: String,
    pub exp: u64,
    pub until: u64,
    /// A random nonce; the room records it until `exp`, so the ticket works once.
    pub n: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
    WrongSession,
}

impl TokenError {
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Malformed => "the token is malformed",
            TokenError::BadSignature => "the token signature is invalid",
            TokenError::Expired => "the token has expired; ask for a new one",
            TokenError::WrongSession => "the token is for another session",
        }
    }
}

pub fn sign(secret: &[u8], claims: &Claims) -> String {
    seal(secret, "v1.", claims)
}

fn seal<T: Serialize>(key: &[u8], prefix: &str, claims: &T) -> String {
    let payload = b64url(serde_json::to_string(claims).unwrap_or_default().as_bytes());
    let signed = format!("{prefix}{payload}");
    let mac = hmac_sha256(key, signed.as_bytes());
    format!("{signed}.{}", b64url(&mac))
}

/// The claims of a sealed value, when it is well formed and its MAC is right.
fn open<T: serde::de::DeserializeOwned>(
    key: &[u8],
    prefix: &str,
    sealed: &str,
) -> Result<T, TokenError> {
    if sealed.len() > 1024 {
        return Err(TokenError::Malformed);
    }
    let (signed, mac) = sealed.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let payload = signed.strip_prefix(prefix).ok_or(TokenError::Malformed)?;
    let mac = unb64url(mac).ok_or(TokenError::Malformed)?;
    if !hmac_sha256_verify(key, signed.as_bytes(), &mac) {
        return Err(TokenError::BadSignature);
    }
    unb64url(payload)
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(TokenError::Malformed)
}

/// Checks the signature, the expiry and that the token belongs to `session_id`.
pub fn verify(
    secret: &[u8],
    token: &str,
    session_id: &str,
    now_ms: u64,
) -> Result<Claims, TokenError> {
    let claims: Claims = open(secret, "v1.", token)?;
    if claims.exp <= now_ms {
        return Err(TokenError::Expired);
    }
    if claims.sid != session_id {
        return Err(TokenError::WrongSession);
    }
    Ok(claims)
}

/// The key connect tickets are signed with, derived from the token secret.
pub fn ticket_key(secret: &[u8]) -> [u8; 32] {
    hmac_sha256(secret, b"connect-ticket")
}

/// A connect ticket, signed with [`ticket_key`].
pub fn sign_ticket(key: &[u8], claims: &TicketClaims) -> String {
    seal(key, "t1.", claims)
}

/// Checks a ticket's signature, its expiry and its session. Whether it was used before is
/// for the room to say.
pub fn verify_ticket(
    key: &[u8],
    ticket: &str,
    session_id: &str,
    now_ms: u64,
) -> Result<TicketClaims, TokenError> {
    let claims: TicketClaims = open(key, "t1.", ticket)?;
    let nonce_ok =
        (16..=64).contains(&claims.n.len()) && claims.n.bytes().all(|b| b.is_ascii_alphanumeric());
    if !nonce_ok {
        return Err(TokenError::Malformed);
    }
    if claims.exp <= now_ms {
        return Err(TokenError::Expired);
    }
    if claims.sid != session_id {
        return Err(TokenError::WrongSession);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sid: "ses_a".into(),
            uid: "usr_1".into(),
            exp: 1_000,
        }
    }

    #[test]
    fn round_trip() {
        let token = sign(b"secret", &claims());
        assert_eq!(verify(b"secret", &token, "ses_a", 999), Ok(claims()));
    }

    #[test]
    fn refusals() {
        let token = sign(b"secret", &claims());
        assert_eq!(
            verify(b"other", &token, "ses_a", 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(b"secret", &token, "ses_a", 1_000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(b"secret", &token, "ses_b", 0),
            Err(TokenError::WrongSession)
        );
        for bad in ["", "v1.", "not-a-token", "v1.x.y", "v2.abc.def"] {
            assert!(verify(b"secret", bad, "ses_a", 0).is_err(), "{bad}");
        }
        // A changed payload with the old signature fails.
        let (_, mac) = token.rsplit_once('.').unwrap();
        let forged_claims = Claims {
            exp: u64::MAX,
            ..claims()
        };
        let forged = format!(
            "v1.{}.{mac}",
            b64url(serde_json::to_string(&forged_claims).unwrap().as_bytes())
        );
        assert_eq!(
            verify(b"secret", &forged, "ses_a", 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tickets() {
        let key = ticket_key(b"secret");
        let claims = TicketClaims {
            sid: "ses_a".into(),
            uid: "usr_1".into(),
            exp: 1_000,
            until: 9_000,
            n: "0123456789abcdef".into(),
        };
        let ticket = sign_ticket(&key, &claims);
        assert!(ticket.starts_with("t1."));
        assert_eq!(
            verify_ticket(&key, &ticket, "ses_a", 999),
            Ok(claims.clone())
        );
        assert_eq!(
            verify_ticket(&key, &ticket, "ses_a", 1_000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_ticket(&key, &ticket, "ses_b", 0),
            Err(TokenError::WrongSession)
        );
        // A ticket is not a token, a token is not a ticket, and the raw secret signs neither.
        assert!(verify(&key, &ticket, "ses_a", 0).is_err());
        assert!(verify_ticket(b"secret", &ticket, "ses_a", 0).is_err());
        let token = sign(
            b"secret",
            &Claims {
                sid: "ses_a".into(),
                uid: "usr_1".into(),
                exp: 1_000,
            },
        );
        assert!(verify_ticket(&key, &token, "ses_a", 0).is_err());
        let odd_nonce = sign_ticket(
            &key,
            &TicketClaims {
                n: "x/y".into(),
                ..claims
            },
        );
        assert_eq!(
            verify_ticket(&key, &odd_nonce, "ses_a", 0),
            Err(TokenError::Malformed)
        );
    }
}
