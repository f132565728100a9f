//! Signed values: the provider request signature, participant tokens, local git tokens.
//!
//! The fuzzer cannot forge a MAC, so each target signs a value made from its input and then
//! changes what was signed in a way the input chooses (text put before, after or inside it).
//! What must hold: the genuine value is accepted (until it expires), and whatever the verifier
//! accepts binds the same secret, body, session, repository and expiry as what was signed.

use crate::input::{number, text_fields};
use protocol::crypto::{hex, unhex};
use protocol::git::{sign_local_token, verify_local_token};
use protocol::provider::{self, SignatureError, SIGNATURE_TOLERANCE_MS};
use protocol::token::{self, Claims, TokenError};

/// `protocol::provider::verify` (the `X-Coordinator-Signature` header, v2). Lines: secret,
/// time, now, text before the genuine header, text after it, path, body.
///
/// - the genuine header verifies within the tolerance, as its time and nonce, and is stale
///   outside it;
/// - an accepted header (changed or not) fails for another body, method, path or secret, and
///   at a later time; a nonce admitted once is refused the second time.
pub fn signature(data: &[u8]) {
    let Some([secret, t, now, before, after, path, body]) =
        text_fields(data, 7).and_then(|f| <[&str; 7]>::try_from(f).ok())
    else {
        return;
    };
    let (secret, body) = (secret.as_bytes(), body.as_bytes());
    let (t, now) = (number(t), number(now));
    let nonce = "fuzz-nonce-0123456789";
    let verify =
        |secret: &[u8], header: Option<&str>, method: &str, path: &str, body: &[u8], at| {
            provider::verify(&[secret], header, method, path, body, at)
        };
    let genuine = provider::sign(secret, t, nonce, "POST", path, body);
    match verify(secret, Some(&genuine), "POST", path, body, now) {
        Ok(verified) => {
            assert!(t.abs_diff(now) <= SIGNATURE_TOLERANCE_MS);
            assert_eq!((verified.t_ms, verified.nonce.as_str()), (t, nonce));
            let mut seen = provider::NonceCache::default();
            assert_eq!(seen.admit(&verified, now), Ok(()));
            assert_eq!(seen.admit(&verified, now), Err(SignatureError::Replayed));
        }
        // An empty secret signs nothing: the verifier never accepts one.
        Err(SignatureError::Mismatch) if secret.is_empty() => {}
        Err(error) => assert_eq!(error, SignatureError::Stale, "{genuine}"),
    }
    let header = format!("{before}{genuine}{after}");
    // Any header, even one that is no signature at all, is only ever refused, never a panic.
    let _ = verify(secret, Some(before), "POST", path, body, now);
    if verify(secret, Some(&header), "POST", path, body, now).is_ok() {
        let mut other_body = body.to_vec();
        other_body.push(b'x');
        let mut other_secret = secret.to_vec();
        other_secret.push(b'x');
        let other_path = format!("{path}x");
        for (what, refused) in [
            (
                "another body",
                verify(secret, Some(&header), "POST", path, &other_body, now),
            ),
            (
                "another secret",
                verify(&other_secret, Some(&header), "POST", path, body, now),
            ),
            (
                "another method",
                verify(secret, Some(&header), "DELETE", path, body, now),
            ),
            (
                "another path",
                verify(secret, Some(&header), "POST", &other_path, body, now),
            ),
        ] {
            assert_eq!(
                refused.err(),
                Some(SignatureError::Mismatch),
                "{header} also signs {what}"
            );
        }
        let later = now.saturating_add(2 * SIGNATURE_TOLERANCE_MS + 1);
        if later.abs_diff(t) > SIGNATURE_TOLERANCE_MS {
            assert!(verify(secret, Some(&header), "POST", path, body, later).is_err());
        }
    }
}

/// `protocol::token::verify` (participant tokens). Lines: secret, session, user, expiry, now,
/// where to change the token, what to put there.
///
/// - the genuine token verifies as its claims until it expires, and only for its session;
/// - a token changed in any way is refused.
pub fn participant_token(data: &[u8]) {
    let Some([secret, sid, uid, exp, now, at, insert]) =
        text_fields(data, 7).and_then(|f| <[&str; 7]>::try_from(f).ok())
    else {
        return;
    };
    let claims = Claims {
        sid: sid.into(),
        uid: uid.into(),
        exp: number(exp),
    };
    let now = number(now);
    let secret = secret.as_bytes();
    let genuine = token::sign(secret, &claims);
    let outcome = token::verify(secret, &genuine, sid, now);
    if genuine.len() > 1024 {
        assert_eq!(outcome, Err(TokenError::Malformed));
    } else if claims.exp <= now {
        assert_eq!(outcome, Err(TokenError::Expired));
    } else {
        assert_eq!(outcome, Ok(claims.clone()));
        let elsewhere = format!("{sid}x");
        assert_eq!(
            token::verify(secret, &genuine, &elsewhere, now),
            Err(TokenError::WrongSession)
        );
    }
    let changed = splice(&genuine, number(at), insert);
    if changed != genuine {
        assert!(
            token::verify(secret, &changed, sid, now).is_err(),
            "a changed token verifies: {changed}"
        );
    }
    // The input itself as a token: only ever refused (it cannot carry a valid MAC).
    let _ = token::verify(secret, insert, sid, now);
}

/// `protocol::git::verify_local_token` (the local git host's passwords). Lines: secret, repo,
/// expiry, now, where to change the token, what to put there.
///
/// - the genuine token is accepted for its repository until it expires, and for no other;
/// - a changed token that is still accepted names the same expiry with the same MAC.
pub fn git_token(data: &[u8]) {
    let Some([secret, repo, expires, now, at, insert]) =
        text_fields(data, 6).and_then(|f| <[&str; 6]>::try_from(f).ok())
    else {
        return;
    };
    let secret = secret.as_bytes();
    let (expires, now) = (number(expires), number(now));
    let genuine = sign_local_token(secret, repo, expires);
    assert_eq!(
        verify_local_token(secret, &genuine, repo, now),
        expires > now
    );
    assert!(!verify_local_token(
        secret,
        &genuine,
        &format!("{repo}x"),
        now
    ));
    let changed = splice(&genuine, number(at), insert);
    if verify_local_token(secret, &changed, repo, now) {
        assert_eq!(
            canonical_local_token(&changed).as_deref(),
            Some(genuine.as_str()),
            "{changed} is accepted in place of {genuine}"
        );
    }
    let _ = verify_local_token(secret, insert, repo, now);
}

/// `lg1.<expiry>.<mac>` written the one way the coordinator writes it.
fn canonical_local_token(token: &str) -> Option<String> {
    let mut parts = token.splitn(3, '.');
    let (Some("lg1"), Some(expires), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    Some(format!(
        "lg1.{}.{}",
        expires.parse::<u64>().ok()?,
        hex(&unhex(mac)?)
    ))
}

/// `text` with `insert` put at byte `at` (clamped to the end and moved back to a char boundary).
fn splice(text: &str, at: u64, insert: &str) -> String {
    let mut at = usize::try_from(at).unwrap_or(usize::MAX).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}{insert}{}", &text[..at], &text[at..])
}
