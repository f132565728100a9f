//! Sandbox tokens: bound to one session and one sandbox, and checkable by the Worker alone, so a
//! request without a valid one is refused before any room is woken.
//!
//! Format: `sbx1.<session id>.<sandbox id>.<random>.<hex HMAC-SHA256(key, "sbx1.<session id>.<sandbox id>.<random>")>`,
//! where `key` is derived from `TOKEN_SECRET` ([`key`]). The room still checks the whole token
//! against the hash it stored for the sandbox: the MAC proves the coordinator made it for this
//! session, the hash that it is the one a live sandbox holds.

use crate::crypto::{hex, hmac_sha256, hmac_sha256_verify, unhex};

const VERSION: &str = "sbx1";
/// Longer than any token made here; anything longer is refused unread.
pub const MAX_TOKEN_CHARS: usize = 512;

/// The key sandbox tokens are signed with: HMAC(TOKEN_SECRET, "sandbox-token"), so no setting is
/// added for it and it is never the key of anything else.
pub fn key(token_secret: &[u8]) -> [u8; 32] {
    hmac_sha256(token_secret, b"sandbox-token")
}

/// Why a token was refused; all of them are one 401 to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxTokenError {
    Malformed,
    BadSignature,
    WrongSession,
}

/// An id fit for a token's part: no `.`, nothing a header cannot carry.
fn is_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 128
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// A token for `sandbox_id` of `session_id`; `random` is fresh secret randomness (base64url).
/// `None` when an id cannot be carried in a token (never for the coordinator's own ids).
pub fn mint(key: &[u8; 32], session_id: &str, sandbox_id: &str, random: &str) -> Option<String> {
    if !(is_part(session_id) && is_part(sandbox_id) && is_part(random)) {
        return None;
    }
    let signed = format!("{VERSION}.{session_id}.{sandbox_id}.{random}");
    let mac = hex(&hmac_sha256(key, signed.as_bytes()));
    Some(format!("{signed}.{mac}"))
}

/// The sandbox id of a token the coordinator made for `session_id`.
pub fn verify<'a>(
    key: &[u8; 32],
    token: &'a str,
    session_id: &str,
) -> Result<&'a str, SandboxTokenError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(SandboxTokenError::Malformed);
    }
    let (signed, mac) = token.rsplit_once('.').ok_or(SandboxTokenError::Malformed)?;
    let parts: Vec<&str> = signed.split('.').collect();
    let [VERSION, token_session, sandbox_id, random] = parts.as_slice() else {
        return Err(SandboxTokenError::Malformed);
    };
    if !(is_part(token_session) && is_part(sandbox_id) && is_part(random)) {
        return Err(SandboxTokenError::Malformed);
    }
    let mac = unhex(mac)
        .filter(|m| m.len() == 32)
        .ok_or(SandboxTokenError::Malformed)?;
    if !hmac_sha256_verify(key, signed.as_bytes(), &mac) {
        return Err(SandboxTokenError::BadSignature);
    }
    if *token_session != session_id {
        return Err(SandboxTokenError::WrongSession);
    }
    Ok(*sandbox_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_session_and_sandbox_and_is_refused_elsewhere() {
        let k = key(b"the token secret");
        let token = mint(&k, "ses_a1", "sbx_b2", "c3-d4_e5").unwrap();
        assert!(token.starts_with("sbx1.ses_a1.sbx_b2.c3-d4_e5."), "{token}");
        assert_eq!(verify(&k, &token, "ses_a1"), Ok("sbx_b2"));
        assert_eq!(
            verify(&k, &token, "ses_other"),
            Err(SandboxTokenError::WrongSession)
        );
        assert_eq!(
            verify(&key(b"another secret"), &token, "ses_a1"),
            Err(SandboxTokenError::BadSignature)
        );
        // Changing any part breaks the MAC.
        let moved = token.replace("ses_a1", "ses_a2");
        assert_eq!(
            verify(&k, &moved, "ses_a2"),
            Err(SandboxTokenError::BadSignature)
        );
        let other_sandbox = token.replace("sbx_b2", "sbx_b3");
        assert_eq!(
            verify(&k, &other_sandbox, "ses_a1"),
            Err(SandboxTokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens() {
        let k = key(b"s");
        let good = mint(&k, "ses_1", "sbx_1", "r").unwrap();
        let long = "x".repeat(MAX_TOKEN_CHARS + 1);
        for bad in [
            "",
            "not-a-sandbox-token",
            "sbx1.ses_1.sbx_1.r",
            "sbx2.ses_1.sbx_1.r.00",
            "sbx1.ses_1.sbx_1.r.zz",
            "sbx1.ses_1.sbx_1.r.x.00",
            "sbx1..sbx_1.r.00",
            &good[..good.len() - 2],
            long.as_str(),
        ] {
            assert_eq!(
                verify(&k, bad, "ses_1"),
                Err(SandboxTokenError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(mint(&k, "ses.1", "sbx_1", "r"), None);
        assert_eq!(mint(&k, "ses_1", "", "r"), None);
    }
}
