//! Participant WebSocket frames (PROTOCOL.md section 2): parsing and validation of what
//! clients send, and the ephemeral frames the room sends back.

use crate::error::{ApiError, ErrorCode};
use crate::event::ParticipantInfo;
use crate::limits::Limits;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A prompt as it arrives, before validation (WebSocket frame or HTTP body).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrompt {
    #[serde(rename = "type", default)]
    _type: Option<String>,
    content: String,
    #[serde(default)]
    client_request_id: Option<String>,
    #[serde(default)]
    attachments: Option<Vec<Value>>,
    #[serde(default)]
    selection_ids: Option<Vec<String>>,
    #[serde(default)]
    source: Option<crate::event::Source>,
}

/// A validated prompt: non-empty content within the limit, bounded lists.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptInput {
    pub content: String,
    pub client_request_id: Option<String>,
    pub attachments: Vec<Value>,
    pub selection_ids: Vec<String>,
    pub source: Option<crate::event::Source>,
}

impl PromptInput {
    fn from_raw(raw: RawPrompt, limits: &Limits) -> Result<Self, ApiError> {
        if raw.content.trim().is_empty() {
            return Err(ApiError::invalid_field("content must not be empty"));
        }
        if raw.content.len() > limits.prompt_bytes {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "content is {} bytes; the limit is {}",
                    raw.content.len(),
                    limits.prompt_bytes
                ),
            ));
        }
        if let Some(id) = &raw.client_request_id {
            if id.is_empty() || id.len() > limits.client_request_id_bytes {
                return Err(ApiError::invalid_field(format!(
                    "client_request_id must be 1 to {} bytes",
                    limits.client_request_id_bytes
                )));
            }
        }
        let attachments = raw.attachments.unwrap_or_default();
        if attachments.len() > limits.attachments {
            return Err(ApiError::invalid_field(format!(
                "at most {} attachments",
                limits.attachments
            )));
        }
        if let Some(bad) = attachments.iter().find(|a| !a.is_object()) {
            return Err(ApiError::invalid_field(format!(
                "attachments must be objects, got {bad}"
            )));
        }
        let selection_ids = raw.selection_ids.unwrap_or_default();
        if selection_ids.len() > limits.selection_ids {
            return Err(ApiError::invalid_field(format!(
                "at most {} selection_ids",
                limits.selection_ids
            )));
        }
        if selection_ids
            .iter()
            .any(|id| id.is_empty() || id.len() > 64)
        {
            return Err(ApiError::invalid_field(
                "selection_ids must be artifact ids",
            ));
        }
        Ok(PromptInput {
            content: raw.content,
            client_request_id: raw.client_request_id,
            attachments,
            selection_ids,
            source: raw.source,
        })
    }

    /// A prompt that is only text, such as the one given when a session is created.
    pub fn from_content(content: String, limits: &Limits) -> Result<Self, ApiError> {
        let raw = RawPrompt {
            _type: None,
            content,
            client_request_id: None,
            attachments: None,
            selection_ids: None,
            source: None,
        };
        Self::from_raw(raw, limits)
    }

    /// Parses and validates a prompt posted over HTTP (`client_request_id` optional).
    pub fn from_http_body(body: &[u8], limits: &Limits) -> Result<Self, ApiError> {
        Self::from_raw(parse_json(body)?, limits)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCancel {
    #[serde(rename = "type", default)]
    _type: Option<String>,
    message_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    #[serde(rename = "type", default)]
    _type: Option<String>,
    #[serde(default)]
    before_seq: Option<u64>,
    #[serde(default)]
    limit: Option<u32>,
}

/// A frame a participant sends, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientFrame {
    Ping,
    Prompt(PromptInput),
    Typing,
    Cancel { message_id: String },
    Stop,
    History { before_seq: Option<u64>, limit: u32 },
}

impl ClientFrame {
    /// Frames that carry user content count against the prompt rate as well.
    pub fn is_prompt(&self) -> bool {
        matches!(self, ClientFrame::Prompt(_))
    }
}

/// A refused frame: the error to send and, when it could be read, the request it answers.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameError {
    pub error: ApiError,
    pub client_request_id: Option<String>,
}

impl FrameError {
    pub fn to_frame(&self) -> String {
        ServerFrame::Error {
            code: self.error.code,
            message: self.error.message.clone(),
            client_request_id: self.client_request_id.clone(),
        }
        .to_json()
    }
}

/// Parses JSON into `T`, telling malformed JSON (`invalid_json`) from wrong fields (`invalid_field`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON: {e}")))?;
    from_value(value)
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid_field("expected a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid_field(e.to_string()))
}

/// Reads one client frame: size, JSON, type, fields, in that order.
pub fn parse_client_frame(text: &str, limits: &Limits) -> Result<ClientFrame, FrameError> {
    let fail = |error: ApiError, client_request_id: Option<String>| FrameError {
        error,
        client_request_id,
    };
    if text.len() > limits.frame_bytes {
        return Err(fail(
            ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "frame is {} bytes; the limit is {}",
                    text.len(),
                    limits.frame_bytes
                ),
            ),
            None,
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        fail(
            ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON: {e}")),
            None,
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(fail(
            ApiError::invalid_field("a frame must be a JSON object"),
            None,
        ));
    };
    let client_request_id = object
        .get("client_request_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => {
            return Err(fail(
                ApiError::invalid_field("type must be a string"),
                client_request_id,
            ))
        }
        None => {
            return Err(fail(
                ApiError::invalid_field("missing field `type`"),
                client_request_id,
            ))
        }
    };
    let frame = match kind.as_str() {
        "ping" => Ok(ClientFrame::Ping),
        "typing" => Ok(ClientFrame::Typing),
        "stop" => Ok(ClientFrame::Stop),
        "prompt" => from_value::<RawPrompt>(value).and_then(|raw| {
            if raw.client_request_id.is_none() {
                return Err(ApiError::invalid_field("missing field `client_request_id`"));
            }
            PromptInput::from_raw(raw, limits).map(ClientFrame::Prompt)
        }),
        "cancel" => from_value::<RawCancel>(value).map(|raw| ClientFrame::Cancel {
            message_id: raw.message_id,
        }),
        "history" => from_value::<RawHistory>(value).and_then(|raw| {
            let limit = raw.limit.unwrap_or(100);
            if limit == 0 || limit > limits.history_page {
                return Err(ApiError::invalid_field(format!(
                    "limit must be 1 to {}",
                    limits.history_page
                )));
            }
            Ok(ClientFrame::History {
                before_seq: raw.before_seq,
                limit,
            })
        }),
        other => Err(ApiError::new(
            ErrorCode::UnknownType,
            format!("unknown frame type {:?}", truncate(other, 40)),
        )),
    };
    frame.map_err(|error| fail(error, client_request_id))
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Frames the room sends that are not stored events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        participant: ParticipantInfo,
        session: Value,
        online: Vec<ParticipantInfo>,
        last_seq: u64,
    },
    Pong,
    Presence {
        online: Vec<ParticipantInfo>,
        typing: Vec<ParticipantInfo>,
    },
    PromptAck {
        client_request_id: Option<String>,
        message_id: String,
        position: u32,
    },
    History {
        events: Vec<Value>,
        has_more: bool,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_request_id: Option<String>,
    },
}

impl ServerFrame {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(text: &str) -> ErrorCode {
        parse_client_frame(text, &Limits::default())
            .expect_err(text)
            .error
            .code
    }

    #[test]
    fn accepted_frames() {
        let limits = Limits::default();
        assert_eq!(
            parse_client_frame(r#"{"type":"ping"}"#, &limits),
            Ok(ClientFrame::Ping)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"stop"}"#, &limits),
            Ok(ClientFrame::Stop)
        );
        let prompt = parse_client_frame(
            r#"{"type":"prompt","content":"fix it","client_request_id":"r1","selection_ids":["art_1"]}"#,
            &limits,
        )
        .unwrap();
        let ClientFrame::Prompt(prompt) = prompt else {
            panic!("not a prompt")
        };
        assert_eq!(prompt.content, "fix it");
        assert_eq!(prompt.selection_ids, vec!["art_1"]);
        assert_eq!(
            parse_client_frame(r#"{"type":"history","before_seq":10}"#, &limits),
            Ok(ClientFrame::History {
                before_seq: Some(10),
                limit: 100
            })
        );
    }

    #[test]
    fn refused_frames() {
        let cases = [
            ("{nope", ErrorCode::InvalidJson),
            ("[1,2]", ErrorCode::InvalidField),
            (r#"{"content":"x"}"#, ErrorCode::InvalidField),
            (r#"{"type":5}"#, ErrorCode::InvalidField),
            (r#"{"type":"teleport"}"#, ErrorCode::UnknownType),
            (
                r#"{"type":"prompt","client_request_id":"x"}"#,
                ErrorCode::InvalidField,
            ),
            (
                r#"{"type":"prompt","content":5,"client_request_id":"x"}"#,
                ErrorCode::InvalidField,
            ),
            (
                r#"{"type":"prompt","content":"   ","client_request_id":"x"}"#,
                ErrorCode::InvalidField,
            ),
            (
                r#"{"type":"prompt","content":"hi"}"#,
                ErrorCode::InvalidField,
            ),
            (
                r#"{"type":"prompt","content":"hi","client_request_id":""}"#,
                ErrorCode::InvalidField,
            ),
            (
                r#"{"type":"prompt","content":"hi","client_request_id":"x","attachments":[1]}"#,
                ErrorCode::InvalidField,
            ),
            (
                r#"{"type":"prompt","content":"hi","client_request_id":"x","bogus":1}"#,
                ErrorCode::InvalidField,
            ),
            (r#"{"type":"cancel"}"#, ErrorCode::InvalidField),
            (r#"{"type":"history","limit":501}"#, ErrorCode::InvalidField),
            (r#"{"type":"history","limit":0}"#, ErrorCode::InvalidField),
            (
                r#"{"type":"history","before_seq":-1}"#,
                ErrorCode::InvalidField,
            ),
        ];
        for (text, code) in cases {
            assert_eq!(code_of(text), code, "{text}");
        }
    }

    #[test]
    fn sizes() {
        let big = format!(
            r#"{{"type":"prompt","content":"{}","client_request_id":"big"}}"#,
            "x".repeat(300 * 1024)
        );
        assert_eq!(code_of(&big), ErrorCode::TooLarge);
        let over_prompt = format!(
            r#"{{"type":"prompt","content":"{}","client_request_id":"p"}}"#,
            "x".repeat(65 * 1024)
        );
        let err = parse_client_frame(&over_prompt, &Limits::default()).unwrap_err();
        assert_eq!(err.error.code, ErrorCode::TooLarge);
        assert_eq!(err.client_request_id.as_deref(), Some("p"));
    }

    #[test]
    fn error_frame_carries_request_id() {
        let err = parse_client_frame(
            r#"{"type":"prompt","content":5,"client_request_id":"x2"}"#,
            &Limits::default(),
        )
        .unwrap_err();
        let frame: Value = serde_json::from_str(&err.to_frame()).unwrap();
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["code"], "invalid_field");
        assert_eq!(frame["client_request_id"], "x2");
    }

    #[test]
    fn http_prompt_needs_no_request_id() {
        let prompt =
            PromptInput::from_http_body(br#"{"content":"over http"}"#, &Limits::default()).unwrap();
        assert_eq!(prompt.client_request_id, None);
        assert_eq!(
            PromptInput::from_http_body(b"{not json", &Limits::default())
                .unwrap_err()
                .code,
            ErrorCode::InvalidJson
        );
    }
}
