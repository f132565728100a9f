//! Participant tokens: HMAC-signed claims binding one user to one session for a while.
//!
//! Format: `v1.<base64url(claims json)>.<base64url(hmac-sha256(secret, "v1." + claims part))>`.

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
    let payload = b64url(serde_json::to_string(claims).unwrap_or_default().as_bytes());
    let signed = format!("v1.{payload}");
    let mac = hmac_sha256(secret, signed.as_bytes());
    format!("{signed}.{}", b64url(&mac))
}

/// Checks the signature, the expiry and that the token belongs to `session_id`.
pub fn verify(
    secret: &[u8],
    token: &str,
    session_id: &str,
    now_ms: u64,
) -> Result<Claims, TokenError> {
    if token.len() > 1024 {
        return Err(TokenError::Malformed);
    }
    let (signed, mac) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let payload = signed.strip_prefix("v1.").ok_or(TokenError::Malformed)?;
    let mac = unb64url(mac).ok_or(TokenError::Malformed)?;
    if !hmac_sha256_verify(secret, signed.as_bytes(), &mac) {
        return Err(TokenError::BadSignature);
    }
    let claims: Claims = unb64url(payload)
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(TokenError::Malformed)?;
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
}
