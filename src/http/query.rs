//! Query-string parameters, parsed (`form_urlencoded`, as browsers encode them) and checked. Pure.

use protocol::ApiError;

/// The decoded value of `name` in a query string (without the leading `?`).
pub fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// An optional non-negative integer parameter; a present but bad value is `invalid_field`.
pub fn u64_param(query: &str, name: &str) -> Result<Option<u64>, ApiError> {
    match param(query, name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n < 1 << 53)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_field(format!("{name} must be a non-negative integer"))
            }),
    }
}

/// The `epoch` a client got in `welcome` and passes back: absent or empty is `None`;
/// anything but 1 to 64 letters, digits, `_` or `-` is `invalid_field`.
pub fn epoch_param(query: &str) -> Result<Option<String>, ApiError> {
    match param(query, "epoch") {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v)
            if v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(Some(v))
        }
        Some(_) => Err(ApiError::invalid_field(
            "epoch must be the epoch a welcome frame gave",
        )),
    }
}

/// A page size: default when absent, `1..=max` otherwise.
pub fn limit_param(query: &str, default: u32, max: u32) -> Result<u32, ApiError> {
    match u64_param(query, "limit")? {
        None => Ok(default),
        Some(n) if (1..=u64::from(max)).contains(&n) => Ok(n as u32),
        Some(_) => Err(ApiError::invalid_field(format!("limit must be 1 to {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs() {
        assert_eq!(epoch_param("since=3"), Ok(None));
        assert_eq!(epoch_param("epoch="), Ok(None));
        assert_eq!(
            epoch_param("since=3&epoch=ep_a-1").unwrap().as_deref(),
            Some("ep_a-1")
        );
        for bad in [
            "epoch=a%20b",
            "epoch=%3Cx%3E",
            &format!("epoch={}", "a".repeat(65)),
        ] {
            assert!(epoch_param(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params() {
        assert_eq!(
            param("a=1&b=two%20words", "b").as_deref(),
            Some("two words")
        );
        assert_eq!(param("a=1&b=two+words", "b").as_deref(), Some("two words"));
        assert_eq!(param("a=1&flag", "flag").as_deref(), Some(""));
        assert_eq!(param("a=1", "b"), None);
        assert_eq!(param("t=%zz%", "t").as_deref(), Some("%zz%"));
        assert_eq!(param("%74oken=x", "token").as_deref(), Some("x"));
        assert_eq!(u64_param("since=42", "since"), Ok(Some(42)));
        assert_eq!(u64_param("since=", "since"), Ok(None));
        for bad in ["since=-1", "since=x", "since=9007199254740993"] {
            assert!(u64_param(bad, "since").is_err(), "{bad}");
        }
        assert_eq!(limit_param("", 100, 500), Ok(100));
        assert_eq!(limit_param("limit=500", 100, 500), Ok(500));
        assert!(limit_param("limit=0", 100, 500).is_err());
        assert!(limit_param("limit=501", 100, 500).is_err());
    }
}
