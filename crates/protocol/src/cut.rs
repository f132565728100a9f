//! Cutting what the agent produced to a size: a stored event keeps at most
//! [`STORED_FIELD_BYTES`] of a tool call's input and output or of a file edit's diff (the room
//! keeps the whole as an artifact), and a bridge frame stays under [`BRIDGE_FRAME_BYTES`] (the
//! bridge cuts before it sends). Cuts fall on character boundaries and say so (`truncated`).

use crate::bridge::FromBridge;
use crate::event::{FileEdit, ToolCall};
use serde_json::Value;

/// A tool call's input or output, or a diff, in a stored event.
pub const STORED_FIELD_BYTES: usize = 64 * 1024;
/// The largest frame a bridge may send; the room refuses larger ones.
pub const BRIDGE_FRAME_BYTES: usize = 1024 * 1024;

/// The longest prefix of `text` of at most `limit` bytes, and whether it is shorter than `text`.
pub fn cut_str(text: &str, limit: usize) -> (&str, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

fn cut_string(text: &mut String, limit: usize) -> bool {
    let (kept, cut) = cut_str(text, limit);
    let kept = kept.len();
    text.truncate(kept);
    cut
}

/// Input larger than `limit` as JSON becomes the first `limit` bytes of that JSON, a string.
fn cut_value(value: &mut Value, limit: usize) -> bool {
    let text = match &mut *value {
        Value::String(text) => return cut_string(text, limit),
        other => other.to_string(),
    };
    if text.len() <= limit {
        return false;
    }
    *value = Value::String(cut_str(&text, limit).0.to_owned());
    true
}

impl ToolCall {
    /// Cuts `input` and `output` to `limit` bytes each; true (and `truncated`) when anything
    /// was cut.
    pub fn cut_to(&mut self, limit: usize) -> bool {
        let input = self.input.as_mut().is_some_and(|v| cut_value(v, limit));
        let output = self.output.as_mut().is_some_and(|o| cut_string(o, limit));
        self.truncated |= input || output;
        input || output
    }
}

impl FileEdit {
    /// Cuts `diff` to `limit` bytes; true (and `truncated`) when it was cut.
    pub fn cut_to(&mut self, limit: usize) -> bool {
        let cut = self.diff.as_mut().is_some_and(|d| cut_string(d, limit));
        self.truncated |= cut;
        cut
    }
}

/// Makes a frame fit in `limit` bytes as JSON, cutting what can be cut: tool input and output,
/// diffs, error messages, token deltas, artifact data (replaced by a note). Returns the frame's
/// JSON; frames that cannot shrink further come back as they are.
pub fn fit_frame(frame: &mut FromBridge, limit: usize) -> String {
    let mut json = serde_json::to_string(frame).unwrap_or_default();
    // Each pass cuts the cuttable fields to what is left of the limit after the rest of the
    // frame; a few passes settle it even when escaping makes a field longer as JSON.
    for _ in 0..4 {
        if json.len() <= limit {
            break;
        }
        let excess = json.len() - limit;
        match frame {
            FromBridge::ToolCall { call, .. } => {
                let input = call.input.as_ref().map_or(0, |v| v.to_string().len());
                let output = call.output.as_ref().map_or(0, String::len);
                let each = input.max(output).saturating_sub(excess);
                call.cut_to(each);
            }
            FromBridge::FileEdit { edit, .. } => {
                let diff = edit.diff.as_ref().map_or(0, String::len);
                edit.cut_to(diff.saturating_sub(excess));
            }
            FromBridge::Error { message, .. } => {
                let keep = message.len().saturating_sub(excess);
                cut_string(message, keep);
            }
            FromBridge::Done {
                error: Some(error), ..
            } => {
                let keep = error.len().saturating_sub(excess);
                cut_string(error, keep);
            }
            FromBridge::Artifact { artifact, .. } => {
                artifact.data = serde_json::json!({
                    "truncated": true,
                    "note": format!("the artifact's data ({} bytes) was over the frame limit", json.len()),
                });
            }
            _ => break,
        }
        json = serde_json::to_string(frame).unwrap_or_default();
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ToolStatus;
    use serde_json::json;

    fn call(input: Value, output: &str) -> ToolCall {
        ToolCall {
            message_id: "m".into(),
            call_id: "c".into(),
            tool: "bash".into(),
            status: ToolStatus::Completed,
            input: Some(input),
            output: Some(output.into()),
            truncated: false,
            artifact_id: None,
        }
    }

    #[test]
    fn cuts_fall_on_characters_and_say_so() {
        assert_eq!(cut_str("héllo", 2), ("h", true));
        assert_eq!(cut_str("héllo", 3), ("hé", true));
        assert_eq!(cut_str("hi", 3), ("hi", false));
        let mut small = call(json!({"command": "ls"}), "ok");
        assert!(!small.cut_to(64));
        assert!(!small.truncated);
        let mut big = call(json!({"text": "x".repeat(100)}), &"é".repeat(100));
        assert!(big.cut_to(51));
        assert!(big.truncated);
        assert_eq!(big.output.as_ref().unwrap().len(), 50);
        let Some(Value::String(input)) = &big.input else {
            panic!("input over the limit becomes the start of its JSON");
        };
        assert!(input.starts_with("{\"text\":\"xxx") && input.len() == 51);
        let mut edit = FileEdit {
            message_id: "m".into(),
            path: "a".into(),
            diff: Some("+".repeat(10)),
            truncated: false,
            artifact_id: None,
        };
        assert!(edit.cut_to(4));
        assert_eq!((edit.diff.as_deref(), edit.truncated), (Some("++++"), true));
        let json = serde_json::to_value(&edit).unwrap();
        assert_eq!(json["truncated"], true);
        assert!(serde_json::to_value(&small)
            .unwrap()
            .get("truncated")
            .is_none());
    }

    #[test]
    fn frames_are_cut_to_fit() {
        let mut frame = FromBridge::ToolCall {
            call: call(json!({"patch": "\"".repeat(3000)}), &"o".repeat(5000)),
            ack_id: Some("a1".into()),
        };
        let json = fit_frame(&mut frame, 2000);
        assert!(json.len() <= 2000, "{}", json.len());
        assert!(matches!(&frame, FromBridge::ToolCall { call, .. } if call.truncated));
        let mut error = FromBridge::Error {
            message_id: None,
            message: "e".repeat(5000),
            ack_id: "a2".into(),
        };
        assert!(fit_frame(&mut error, 1000).len() <= 1000);
        let mut artifact = FromBridge::Artifact {
            message_id: "m".into(),
            artifact: crate::bridge::ArtifactDraft {
                kind: "file".into(),
                data: json!({"text": "x".repeat(5000)}),
            },
            ack_id: None,
        };
        assert!(fit_frame(&mut artifact, 1000).len() <= 1000);
        let mut small = FromBridge::Heartbeat {};
        assert_eq!(fit_frame(&mut small, 1000), r#"{"type":"heartbeat"}"#);
    }
}
