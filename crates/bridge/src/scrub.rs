//! The last line of defence: no secret the bridge knows (its sandbox token, the git passwords
//! handed out) leaves in a frame. Every frame the worker makes passes through [`frame`] before
//! it is queued, journaled or sent, so tool output, diffs and errors that quote a secret carry
//! `***` instead. The first lines are elsewhere: the token is in no environment or file the
//! agent can read, and the bridge is not dumpable.
//!
//! A secret split across two token deltas, or encoded, is not recognised; this catches the
//! plain copy a tool prints.

use crate::credentials::Redactor;
use protocol::bridge::FromBridge;
use serde_json::Value;

/// `frame` with every known secret in its strings replaced by `***`.
pub fn frame(redactor: &Redactor, frame: FromBridge) -> FromBridge {
    // The secrets are printable ASCII that JSON does not escape, so the serialised frame holds
    // one exactly when one of its strings does.
    let Ok(text) = serde_json::to_string(&frame) else {
        return frame;
    };
    if redactor.hide_secrets(&text).is_none() {
        return frame;
    }
    let delta_bytes = match &frame {
        FromBridge::Token { delta, .. } => Some(delta.len()),
        _ => None,
    };
    let hidden = serde_json::to_value(&frame).ok().and_then(|mut value| {
        hide_in(&mut value, redactor);
        serde_json::from_value::<FromBridge>(value).ok()
    });
    match hidden {
        Some(mut hidden) => {
            // Token offsets count the answer's bytes: a delta keeps its length once hidden,
            // so the deltas after it still line up.
            if let (Some(bytes), FromBridge::Token { delta, .. }) = (delta_bytes, &mut hidden) {
                if delta.len() < bytes {
                    delta.push_str(&"*".repeat(bytes - delta.len()));
                }
            }
            hidden
        }
        // Never the frame with the secret in it.
        None => FromBridge::Error {
            message_id: None,
            message: "a frame that quoted a secret of the sandbox was dropped".into(),
            ack_id: String::new(),
        },
    }
}

fn hide_in(value: &mut Value, redactor: &Redactor) {
    match value {
        Value::String(text) => {
            if let Some(hidden) = redactor.hide_secrets(text) {
                *text = hidden;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| hide_in(v, redactor)),
        Value::Object(fields) => fields.values_mut().for_each(|v| hide_in(v, redactor)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::bridge::FromBridge;

    fn redactor() -> Redactor {
        let redactor = Redactor::default();
        redactor.pin("sbx1.ses_1.sbx_1.secret.abcdef");
        redactor.remember("ghs_git_password");
        redactor
    }

    #[test]
    fn tool_output_and_errors_lose_the_secrets() {
        let frame: FromBridge = serde_json::from_value(serde_json::json!({
            "type": "tool_call", "message_id": "m1", "call_id": "c1", "tool": "bash",
            "status": "completed", "input": {"command": "env"},
            "output": "SANDBOX_TOKEN=sbx1.ses_1.sbx_1.secret.abcdef\npassword=ghs_git_password\n"
        }))
        .unwrap();
        let text = serde_json::to_string(&super::frame(&redactor(), frame)).unwrap();
        assert!(!text.contains("secret.abcdef"), "{text}");
        assert!(!text.contains("ghs_git_password"), "{text}");
        assert!(text.contains("SANDBOX_TOKEN=***\\npassword=***"), "{text}");
        let error = FromBridge::Error {
            message_id: Some("m1".into()),
            message: "push failed with sbx1.ses_1.sbx_1.secret.abcdef".into(),
            ack_id: "a1".into(),
        };
        match super::frame(&redactor(), error) {
            FromBridge::Error {
                message, ack_id, ..
            } => {
                assert_eq!(message, "push failed with ***");
                assert_eq!(ack_id, "a1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hidden_token_delta_keeps_its_length() {
        let delta = "the token is sbx1.ses_1.sbx_1.secret.abcdef, see";
        let frame = FromBridge::Token {
            message_id: "m1".into(),
            delta: delta.into(),
            offset: Some(10),
        };
        match super::frame(&redactor(), frame) {
            FromBridge::Token {
                delta: hidden,
                offset,
                ..
            } => {
                assert_eq!(hidden.len(), delta.len());
                assert!(hidden.starts_with("the token is ***, see"), "{hidden}");
                assert_eq!(offset, Some(10));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_frame_without_secrets_is_unchanged() {
        let frame = FromBridge::Token {
            message_id: "m1".into(),
            delta: "hello sbx1 world".into(),
            offset: Some(3),
        };
        assert_eq!(super::frame(&redactor(), frame.clone()), frame);
    }
}
