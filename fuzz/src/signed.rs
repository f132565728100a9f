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

/// `protocol::provider::verify` (the `X-Coordinator-Signature` header). Lines: secret, time,
/// now, text before the genuine header, text after it, body.
///
/// - the genuine header verifies within the tolerance and is stale outside it;
/// - an accepted header (changed or not) fails for another body, another secret and a later time.
pub fn signature(data: &[u8]) {
    let Some([secret, t, now, before, after, body]) =
        text_fields(data, 6).and_then(|f| <[&str; 6]>::try_from(f).ok())
    else {
        return;
    };
    let (secret, body) = (secret.as_bytes(), body.as_bytes());
    let (t, now) = (number(t), number(now));
    let genuine = provider::sign(secret, t, body);
    let expected = if t.abs_diff(now) > SIGNATURE_TOLERANCE_MS {
        Err(SignatureError::Stale)
    } else {
        Ok(())
    };
    assert_eq!(
        provider::verify(secret, Some(&genuine), body, now),
        expected
    );
    let header = format!("{before}{genuine}{after}");
    // Any header, even one that is no signature at all, is only ever refused, never a panic.
    let _ = provider::verify(secret, Some(before), body, now);
    if provider::verify(secret, Some(&header), body, now).is_ok() {
        let mut other_body = body.to_vec();
        other_body.push(b'x');
        let mut other_secret = secret.to_vec();
        other_secret.push(b'x');
        assert_eq!(
            provider::verify(secret, Some(&header), &other_body, now),
            Err(SignatureError::Mismatch),
            "{header} also signs another body"
        );
        assert_eq!(
            provider::verify(&other_secret, Some(&header), body, now),
            Err(SignatureError::Mismatch),
            "{header} verifies with another secret"
        );
        let later = now.saturating_add(2 * SIGNATURE_TOLERANCE_MS + 1);
        if later.abs_diff(t) > SIGNATURE_TOLERANCE_MS {
            assert_ne!(provider::verify(secret, Some(&header), body, later), Ok(()));
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
