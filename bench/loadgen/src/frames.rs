//! What the benchmark reads from a frame, found by searching the bytes rather than parsing
//! the whole JSON: a participant may receive a hundred thousand frames a second, and the
//! client must not be the bottleneck. The benchmark controls every string it sends, so the
//! field names it looks for never occur inside a value. The first `"type"` of a frame is
//! its own: nested objects come after it (serde writes the tag first).

use memchr::memmem;

fn after<'a>(bytes: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
    memmem::find(bytes, needle).map(|i| &bytes[i + needle.len()..])
}

/// The string value of `"name":"…"` (raw, escapes untouched).
pub fn str_field<'a>(bytes: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut needle = Vec::with_capacity(name.len() + 5);
    needle.extend_from_slice(b"\"");
    needle.extend_from_slice(name);
    needle.extend_from_slice(b"\":\"");
    let rest = after(bytes, &needle)?;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'\\' => i += 2,
            b'"' => return Some(&rest[..i]),
            _ => i += 1,
        }
    }
    None
}

/// The unsigned integer value of `"name":N`.
pub fn u64_field(bytes: &[u8], name: &[u8]) -> Option<u64> {
    let mut needle = Vec::with_capacity(name.len() + 4);
    needle.extend_from_slice(b"\"");
    needle.extend_from_slice(name);
    needle.extend_from_slice(b"\":");
    let rest = after(bytes, &needle)?;
    digits(rest)
}

fn digits(rest: &[u8]) -> Option<u64> {
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The frame's `type`.
pub fn kind(bytes: &[u8]) -> Option<&[u8]> {
    str_field(bytes, b"type")
}

/// The benchmark numbers its prompts `client_request_id: "b<k>"`; for a `message` event
/// (or the floor's copy of one) this returns `k`.
pub fn message_index(bytes: &[u8]) -> Option<usize> {
    let rest = after(bytes, b"\"client_request_id\":\"b")?;
    let k = digits(rest)? as usize;
    (kind(bytes)? == b"message").then_some(k)
}

/// Whether the frame is a stored event (it has a `seq`), or for the floor, not a control frame.
pub fn is_event(bytes: &[u8]) -> bool {
    !matches!(
        kind(bytes),
        Some(b"welcome" | b"presence" | b"presence_delta" | b"prompt_ack" | b"pong" | b"error")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let frame = br#"{"seq":12,"ts":"x","type":"message","message_id":"msg_1","content":"a \"q\"","author":{"id":"p","name":"n"},"client_request_id":"b417","attachments":[]}"#;
        assert_eq!(kind(frame), Some(b"message".as_slice()));
        assert_eq!(u64_field(frame, b"seq"), Some(12));
        assert_eq!(str_field(frame, b"content"), Some(br#"a \"q\""#.as_slice()));
        assert_eq!(message_index(frame), Some(417));
        let ack = br#"{"type":"prompt_ack","client_request_id":"b417","message_id":"msg_1","position":3}"#;
        assert_eq!(message_index(ack), None);
        assert!(!is_event(ack));
        assert!(is_event(frame));
    }
}
