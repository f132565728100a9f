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
        if raw.source == Some(crate::event::Source::Slack) {
            // Only the coordinator's Slack integration may say a prompt came from Slack.
            return Err(ApiError::invalid_field(
                "source \"slack\" is set by the Slack integration, not by clients; use web, extension or api",
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

/// Parses JSON into `T` in one pass, telling malformed JSON (`invalid_json`) from wrong fields
/// (`invalid_field`) by serde's own error category.
///
/// Bodies are JSON objects: serde would also fill a struct from an array, by position.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(bytes).map_err(json_error)?;
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(value),
        _ => Err(ApiError::invalid_field("expected a JSON object")),
    }
}

/// The protocol's error for a serde_json error.
pub fn json_error(error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON: {error}"))
        }
        Category::Data => ApiError::invalid_field(error.to_string()),
    }
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid_field("expected a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid_field(e.to_string()))
}

/// A field as it appeared: `None` when absent, `Some(None)` when `null`. The one-pass path
/// needs the difference: a field of another frame type is refused even when it is `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Every field any client frame may carry: a well-formed frame is read in this one pass.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnyFrame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "present")]
    content: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    client_request_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    attachments: Option<Option<Vec<Value>>>,
    #[serde(default, deserialize_with = "present")]
    selection_ids: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    source: Option<Option<crate::event::Source>>,
    #[serde(default, deserialize_with = "present")]
    message_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    before_seq: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    limit: Option<Option<u32>>,
}

impl AnyFrame {
    /// The frame, when the fields present are the ones its type takes; `None` sends the
    /// frame down the slower path that words the error exactly.
    fn into_frame(self, limits: &Limits) -> Option<Result<ClientFrame, FrameError>> {
        let no_prompt_fields = self.content.is_none()
            && self.client_request_id.is_none()
            && self.attachments.is_none()
            && self.selection_ids.is_none()
            && self.source.is_none();
        let no_cancel_fields = self.message_id.is_none();
        let no_history_fields = self.before_seq.is_none() && self.limit.is_none();
        match self.kind.as_str() {
            "prompt"
                if no_cancel_fields
                    && no_history_fields
                    && matches!(self.client_request_id, Some(Some(_))) =>
            {
                let raw = RawPrompt {
                    _type: None,
                    content: self.content.flatten()?,
                    client_request_id: self.client_request_id.flatten(),
                    attachments: self.attachments.flatten(),
                    selection_ids: self.selection_ids.flatten(),
                    source: self.source.flatten(),
                };
                let client_request_id = raw.client_request_id.clone();
                Some(
                    PromptInput::from_raw(raw, limits)
                        .map(ClientFrame::Prompt)
                        .map_err(|error| FrameError {
                            error,
                            client_request_id,
                        }),
                )
            }
            "cancel" if no_prompt_fields && no_history_fields => Some(Ok(ClientFrame::Cancel {
                message_id: self.message_id.flatten()?,
            })),
            _ => None,
        }
    }
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
    // The frames that carry data (prompts above all) are read in one pass; the others, and
    // anything refused, take the path below, which names the exact problem.
    // (Only objects: serde would also fill the struct from an array, by position.)
    let is_object = text.trim_start().starts_with('{');
    if let Some(Ok(frame)) = is_object.then(|| serde_json::from_str::<AnyFrame>(text)) {
        if let Some(outcome) = frame.into_frame(limits) {
            return outcome;
        }
    }
    parse_by_value(text, limits)
}

/// The general path: JSON, then the type, then the fields of that type. Public so the fuzz
/// target (fuzz/) can check that the one-pass path of [`parse_client_frame`] agrees with it.
pub fn parse_by_value(text: &str, limits: &Limits) -> Result<ClientFrame, FrameError> {
    let fail = |error: ApiError, client_request_id: Option<String>| FrameError {
        error,
        client_request_id,
    };
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

/// How presence changed, in a `presence_delta` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceChange {
    /// The participant's first socket opened.
    Joined,
    /// The participant's last socket closed.
    Left,
    /// The participant is typing; clients show it for `expires_in_ms`.
    Typing,
    /// The participant stopped typing (it sent its prompt).
    Idle,
}

/// One change of presence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PresenceDelta {
    pub change: PresenceChange,
    pub participant: ParticipantInfo,
    /// For `typing`: how long to show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
}

/// Frames the room sends that are not stored events. Only ever written, never read, by the
/// coordinator, so history pages can carry the stored events' JSON as it is.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        participant: ParticipantInfo,
        session: Value,
        online: Vec<ParticipantInfo>,
        typing: Vec<ParticipantInfo>,
        last_seq: u64,
        /// The session log's identity: random, fixed for the life of the log. A client passes
        /// it back (`epoch=`) with `since=`.
        epoch: String,
        /// False when the client's `since` (beyond `last_seq`) or `epoch` (another log's) could
        /// not be honoured: the replay then starts from the beginning and the client resets
        /// its view.
        recovered: bool,
        /// The first seq the replay sends: the newest events up to about 1 MiB come now, the
        /// rest below it a `history` page at a time.
        replay_from: u64,
    },
    Pong,
    /// Changes of presence since the last such frame, in order. A joiner gets the whole
    /// picture in its `welcome`; everyone else gets these, so a burst of joins costs each
    /// socket a frame per batch, not a full list per join.
    PresenceDelta {
        changes: Vec<PresenceDelta>,
    },
    PromptAck {
        client_request_id: Option<String>,
        message_id: String,
        position: u32,
    },
    History {
        events: Vec<Box<serde_json::value::RawValue>>,
        has_more: bool,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
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
            (
                r#"{"type":"prompt","content":"hi","client_request_id":"x","source":"slack"}"#,
                ErrorCode::InvalidField,
            ),
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
    fn one_pass_agrees_with_the_general_path() {
        let limits = Limits::default();
        let cases = [
            r#"{"type":"prompt","content":"fix it","client_request_id":"r1"}"#,
            r#"{"type":"prompt","content":"x","client_request_id":"r1","attachments":[{"a":1}],"selection_ids":["art_1"],"source":"extension"}"#,
            r#"{"type":"prompt","content":"   ","client_request_id":"x"}"#,
            r#"{"type":"prompt","content":"hi","client_request_id":""}"#,
            r#"{"type":"prompt","content":"hi","client_request_id":"x","attachments":[1]}"#,
            r#"{"type":"prompt","content":"hi","client_request_id":"x","message_id":"m"}"#,
            r#"{"type":"prompt","client_request_id":"x"}"#,
            r#"{"type":"prompt","content":"x","client_request_id":"r1","source":"slack"}"#,
            r#"{"type":"cancel","message_id":"msg_1"}"#,
            r#"{"type":"cancel","message_id":"msg_1","content":"x"}"#,
            r#"{"type":"cancel"}"#,
            r#"["prompt","hi","r1"]"#,
            // A field of another frame type is refused by both paths, even as `null`.
            r#"{"type":"prompt","content":"hi","client_request_id":"x","limit":null}"#,
            r#"{"type":"prompt","content":"hi","client_request_id":"x","message_id":null}"#,
            r#"{"type":"cancel","message_id":"msg_1","content":null}"#,
            r#"{"type":"prompt","content":null,"client_request_id":"x"}"#,
            r#"{"type":"prompt","content":"hi","client_request_id":null}"#,
            r#"{"type":"prompt","content":"hi","client_request_id":"x","source":null,"attachments":null}"#,
        ];
        for text in cases {
            assert_eq!(
                parse_client_frame(text, &limits),
                parse_by_value(text, &limits),
                "{text}"
            );
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
    fn bodies_must_be_objects() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Body {
            repo: String,
        }
        assert!(parse_json::<Body>(br#" {"repo":"a/b"}"#).is_ok());
        for (text, code) in [
            (&br#"["a/b"]"#[..], ErrorCode::InvalidField),
            (br#""a/b""#, ErrorCode::InvalidField),
            (br#"{"repo":5}"#, ErrorCode::InvalidField),
            (br#"{"repo":"a/b"} x"#, ErrorCode::InvalidJson),
            (br#"{"repo""#, ErrorCode::InvalidJson),
        ] {
            assert_eq!(parse_json::<Body>(text).unwrap_err().code, code, "{text:?}");
        }
    }

    #[test]
    fn http_prompt_needs_no_request_id() {
        let prompt =
            PromptInput::from_http_body(br#"{"content":"over http"}"#, &Limits::default()).unwrap();
        assert_eq!(prompt.client_request_id, None);
        assert_eq!(
            PromptInput::from_http_body(br#"{"content":"x","source":"slack"}"#, &Limits::default())
                .unwrap_err()
                .code,
            ErrorCode::InvalidField
        );
        assert_eq!(
            PromptInput::from_http_body(b"{not json", &Limits::default())
                .unwrap_err()
                .code,
            ErrorCode::InvalidJson
        );
    }
}
