//! Slack's v0 request signature: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
//! "v0:<X-Slack-Request-Timestamp>:<raw body>")>`, refused outside a 300 s window and
//! compared in constant time. Pure, tested natively.

use protocol::crypto::{hmac_sha256_verify, unhex};

/// A request older (or newer) than this is refused, so a captured one cannot be replayed later.
pub const WINDOW_SECS: u64 = 300;

/// Why a request's signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No timestamp or signature header, or one that is not a number or `v0=<hex>`.
    Missing,
    /// The timestamp is more than [`WINDOW_SECS`] away from now.
    Stale,
    /// The HMAC does not match.
    Mismatch,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "X-Slack-Request-Timestamp and X-Slack-Signature are required",
            Refusal::Stale => "the request timestamp is more than 300 s from now",
            Refusal::Mismatch => "the Slack signature does not match",
        }
    }
}

/// Checks a request: `timestamp` and `signature` are the headers as sent, `now_secs` the time.
pub fn check(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: u64,
) -> Result<(), Refusal> {
    let at: u64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(Refusal::Missing)?;
    let mac = signature
        .and_then(|s| s.trim().strip_prefix("v0="))
        .and_then(unhex)
        .ok_or(Refusal::Missing)?;
    if at.abs_diff(now_secs) > WINDOW_SECS {
        return Err(Refusal::Stale);
    }
    let mut signed = format!("v0:{at}:").into_bytes();
    signed.extend_from_slice(body);
    if hmac_sha256_verify(secret.as_bytes(), &signed, &mac) {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::crypto::{hex, hmac_sha256};

    fn sign(secret: &str, at: u64, body: &str) -> String {
        format!(
            "v0={}",
            hex(&hmac_sha256(
                secret.as_bytes(),
                format!("v0:{at}:{body}").as_bytes()
            ))
        )
    }

    fn check_at(
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &str,
        now: u64,
    ) -> Result<(), Refusal> {
        check(
            "8f742231b10e8888abcd99yyyzzz85a5",
            timestamp,
            signature,
            body.as_bytes(),
            now,
        )
    }

    #[test]
    fn signatures() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = "token=x&team_id=T1&text=hi";
        let at = 1_531_420_618;
        let good = sign(secret, at, body);
        let ts = at.to_string();
        assert_eq!(check_at(Some(&ts), Some(&good), body, at), Ok(()));
        assert_eq!(check_at(Some(&ts), Some(&good), body, at + 300), Ok(()));
        assert_eq!(
            check_at(Some(&ts), Some(&good), body, at + 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            check_at(Some(&ts), Some(&good), body, at - 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            check_at(Some(&ts), Some(&good), "text=other", at),
            Err(Refusal::Mismatch)
        );
        let other = sign("another secret", at, body);
        assert_eq!(
            check_at(Some(&ts), Some(&other), body, at),
            Err(Refusal::Mismatch)
        );
        let moved = (at + 1).to_string();
        assert_eq!(
            check_at(Some(&moved), Some(&good), body, at),
            Err(Refusal::Mismatch)
        );
        assert_eq!(check_at(None, Some(&good), body, at), Err(Refusal::Missing));
        assert_eq!(check_at(Some(&ts), None, body, at), Err(Refusal::Missing));
        assert_eq!(
            check_at(Some("soon"), Some(&good), body, at),
            Err(Refusal::Missing)
        );
        assert_eq!(
            check_at(Some(&ts), Some(&good.replace("v0=", "v1=")), body, at),
            Err(Refusal::Missing)
        );
        assert_eq!(
            check_at(Some(&ts), Some("v0=zz"), body, at),
            Err(Refusal::Missing)
        );
        assert_eq!(
            check_at(Some(&ts), Some(&good[..good.len() - 2]), body, at),
            Err(Refusal::Mismatch)
        );
    }
}
