//! WebSocket frames: what participants send the room, and what the bridge and the room send
//! each other.

use crate::input::{assert_refusal, assert_same, assert_same_json};
use protocol::bridge::{FromBridge, ToBridge};
use protocol::frames::{parse_by_value, parse_client_frame, parse_json, ClientFrame};
use protocol::{ErrorCode, Limits};
use serde_json::{json, Value};

/// `parse_client_frame`, the room's reader of every participant frame.
///
/// - the one-pass path and the general path give the same answer, error sentences included;
/// - an accepted frame is within the limits, and written out again it reads back the same;
/// - a refusal is `invalid_json`, `invalid_field`, `too_large` or `unknown_type`, and its
///   `error` frame is JSON that names the same code and request id.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default();
    let parsed = parse_client_frame(text, &limits);
    if text.len() <= limits.frame_bytes {
        assert_eq!(
            parsed,
            parse_by_value(text, &limits),
            "the one-pass path and the general path disagree"
        );
    }
    match parsed {
        Ok(frame) => {
            check_accepted(&frame, &limits);
            let written = client_frame_json(&frame);
            let again = written.to_string();
            match parse_client_frame(&again, &limits) {
                Ok(back) => assert_same_json(&written, &client_frame_json(&back), &again),
                Err(refused) => panic!("written out again: {again}\nrefused: {refused:?}"),
            }
        }
        Err(refused) => {
            assert_refusal(
                &refused.error,
                &[
                    ErrorCode::InvalidJson,
                    ErrorCode::InvalidField,
                    ErrorCode::TooLarge,
                    ErrorCode::UnknownType,
                ],
            );
            let frame: Value =
                serde_json::from_str(&refused.to_frame()).expect("an error frame is JSON");
            assert_eq!(frame["type"], "error");
            assert_eq!(frame["code"], refused.error.code.as_str());
            assert_eq!(
                frame["client_request_id"].as_str(),
                refused.client_request_id.as_deref()
            );
        }
    }
}

fn check_accepted(frame: &ClientFrame, limits: &Limits) {
    match frame {
        ClientFrame::Prompt(prompt) => {
            crate::bodies::check_prompt(prompt, limits);
            assert!(
                prompt.client_request_id.is_some(),
                "a prompt frame needs a client_request_id"
            );
        }
        ClientFrame::History { limit, .. } => {
            assert!((1..=limits.history_page).contains(limit), "limit {limit}");
        }
        ClientFrame::Ping
        | ClientFrame::Typing
        | ClientFrame::Stop
        | ClientFrame::Cancel { .. } => {}
    }
}

/// A frame as a client would write it.
fn client_frame_json(frame: &ClientFrame) -> Value {
    match frame {
        ClientFrame::Ping => json!({"type": "ping"}),
        ClientFrame::Typing => json!({"type": "typing"}),
        ClientFrame::Stop => json!({"type": "stop"}),
        ClientFrame::Prompt(prompt) => {
            let mut body = crate::bodies::prompt_json(prompt);
            body["type"] = json!("prompt");
            body
        }
        ClientFrame::Cancel { message_id } => json!({"type": "cancel", "message_id": message_id}),
        ClientFrame::History { before_seq, limit } => {
            json!({"type": "history", "before_seq": before_seq, "limit": limit})
        }
    }
}

/// `FromBridge` through `parse_json` (the room's reader of bridge frames) and `ToBridge` as
/// the bridge reads it (serde_json).
///
/// - an accepted frame written out again reads back the same;
/// - the frames the bridge keeps until acknowledged carry an `ack_id`;
/// - a refusal is `invalid_json` or `invalid_field`.
pub fn bridge_frame(data: &[u8]) {
    match parse_json::<FromBridge>(data) {
        Ok(frame) => {
            let again = serde_json::to_vec(&frame).expect("a bridge frame serialises");
            let context = String::from_utf8_lossy(&again);
            match parse_json::<FromBridge>(&again) {
                Ok(back) => assert_same(&frame, &back, &context),
                Err(refused) => panic!("written out again: {context}\nrefused: {refused:?}"),
            }
            let critical = matches!(
                frame,
                FromBridge::Done { .. }
                    | FromBridge::Error { .. }
                    | FromBridge::SnapshotTaken { .. }
            );
            if critical {
                assert!(frame.ack_id().is_some(), "a critical frame without ack_id");
            }
        }
        Err(refused) => {
            assert_refusal(&refused, &[ErrorCode::InvalidJson, ErrorCode::InvalidField])
        }
    }
    if let Ok(frame) = serde_json::from_slice::<ToBridge>(data) {
        let again = serde_json::to_vec(&frame).expect("a room frame serialises");
        let context = String::from_utf8_lossy(&again);
        match serde_json::from_slice::<ToBridge>(&again) {
            Ok(back) => assert_same(&frame, &back, &context),
            Err(refused) => panic!("written out again: {context}\nrefused: {refused}"),
        }
    }
}
