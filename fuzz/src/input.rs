//! Turning libFuzzer's bytes into the few fields a target needs, and the shared refusal check.
//!
//! Multi-field inputs are lines, so the committed seeds stay readable: the first `n - 1`
//! lines are fields and the rest, newlines and all, is the last one.

use protocol::{ApiError, ErrorCode};

/// `n` fields of `data`, or `None` when it has fewer lines.
pub fn fields(data: &[u8], n: usize) -> Option<Vec<&[u8]>> {
    let parts: Vec<&[u8]> = data.splitn(n, |b| *b == b'\n').collect();
    (parts.len() == n).then_some(parts)
}

/// `n` fields of `data` as text, or `None` when it is not UTF-8 or has fewer lines.
pub fn text_fields(data: &[u8], n: usize) -> Option<Vec<&str>> {
    let parts: Vec<&str> = std::str::from_utf8(data).ok()?.splitn(n, '\n').collect();
    (parts.len() == n).then_some(parts)
}

/// A number field; anything else reads as 0, so mutations still reach the checks.
pub fn number(field: &str) -> u64 {
    field.trim().parse().unwrap_or(0)
}

/// A refusal is one of the codes this decoder may give, with a sentence.
pub fn assert_refusal(error: &ApiError, allowed: &[ErrorCode]) {
    assert!(
        allowed.contains(&error.code),
        "refused with {:?}, not one of {allowed:?}: {}",
        error.code,
        error.message
    );
    assert!(!error.message.is_empty(), "a refusal without a sentence");
    // The error body a client gets reads back as the same error.
    let body: serde_json::Value =
        serde_json::from_str(&error.to_body()).expect("the error body is JSON");
    let back: ApiError =
        serde_json::from_value(body["error"].clone()).expect("the error body reads back");
    assert_eq!(&back, error);
}

/// `a` and `b` are the same value once written as JSON, numbers compared to within a few
/// units in the last place: serde_json reads floats fast rather than correctly rounded (its
/// `float_roundtrip` feature is off, in the Worker too), so a float that goes round can move by
/// one unit in the last place. That is the only difference a round trip may make.
pub fn assert_same<T: serde::Serialize + std::fmt::Debug>(a: &T, b: &T, context: &str) {
    let json_of = |value: &T| serde_json::to_value(value).expect("a decoded value serialises");
    assert_same_json(&json_of(a), &json_of(b), context);
}

/// [`assert_same`] for values already written as JSON.
pub fn assert_same_json(a: &serde_json::Value, b: &serde_json::Value, context: &str) {
    assert!(same_json(a, b), "{context}\n  left: {a}\n right: {b}");
}

fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_json(x, y)))
        }
        _ => a == b,
    }
}
