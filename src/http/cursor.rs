//! The session list's page cursor: the last session of a page, as `base64url("<created_at>|<id>")`.
//! Pure, so the decoder of this outside input is tested (and fuzzed) natively.

use protocol::crypto::{b64url, unb64url};

/// The cursor that resumes a listing after the session created at `created_at` with `id`.
pub fn encode(created_at: &str, id: &str) -> String {
    b64url(format!("{created_at}|{id}").as_bytes())
}

/// `(created_at, id)` from a cursor this API returned; `None` for anything else.
pub fn decode(cursor: &str) -> Option<(String, String)> {
    let text = String::from_utf8(unb64url(cursor)?).ok()?;
    let (created_at, id) = text.split_once('|')?;
    Some((created_at.to_owned(), id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let cursor = encode("2026-01-02T03:04:05.678Z", "ses_0123");
        assert_eq!(
            decode(&cursor),
            Some(("2026-01-02T03:04:05.678Z".into(), "ses_0123".into()))
        );
        for bad in ["", "!!", "bm9waXBl", "/w"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
