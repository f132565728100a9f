//! Persisted session events: a per-session `seq`, a timestamp and a typed body.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who a participant is, as events and presence show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub user_id: String,
    pub name: String,
}

/// The author of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Web,
    Extension,
    Slack,
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Web => "web",
            Source::Extension => "extension",
            Source::Slack => "slack",
            Source::Api => "api",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub message_id: String,
    pub content: String,
    pub author: Author,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Value>,
    #[serde(default)]
    pub selection_ids: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Running,
    Completed,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub message_id: String,
    pub call_id: String,
    pub tool: String,
    pub status: ToolStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `input` or `output` was cut (to [`crate::cut::STORED_FIELD_BYTES`] in a stored event);
    /// the whole is in the `file` artifact `artifact_id`, when the room kept it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEdit {
    pub message_id: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// `diff` was cut; the whole is in the `file` artifact `artifact_id`, when the room kept it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_id: Option<String>,
}

/// Something the session produced or was given: a DOM selection, a PR, a file…
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The artifact's content; for `dom_selection` the selection as posted.
    #[serde(default)]
    pub data: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStatus {
    Completed,
    Failed,
    Cancelled,
    TimedOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    Spawning,
    Ready,
    Busy,
    Idle,
    Snapshotting,
    Stopped,
    Failed,
}

impl SandboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Spawning => "spawning",
            SandboxState::Ready => "ready",
            SandboxState::Busy => "busy",
            SandboxState::Idle => "idle",
            SandboxState::Snapshotting => "snapshotting",
            SandboxState::Stopped => "stopped",
            SandboxState::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<SandboxState> {
        [
            SandboxState::Spawning,
            SandboxState::Ready,
            SandboxState::Busy,
            SandboxState::Idle,
            SandboxState::Snapshotting,
            SandboxState::Stopped,
            SandboxState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

crate::closed_enum! {
    /// What a `session_error` event is about.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SessionErrorCode {
        /// The sandbox provider failed; the message says whether and when it tries again.
        ProviderError,
        /// The bridge or the agent reported an error.
        AgentError,
    }
}

impl SessionErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionErrorCode::ProviderError => "provider_error",
            SessionErrorCode::AgentError => "agent_error",
        }
    }
}

/// What happened; the `type` tag is the event type on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant: ParticipantInfo,
    },
    Message(MessageEvent),
    PromptStarted {
        message_id: String,
    },
    Token {
        message_id: String,
        delta: String,
        /// The bytes of the prompt's answer text before this delta; a client that already
        /// holds text from this offset drops the delta.
        #[serde(default)]
        offset: u64,
    },
    ToolCall(ToolCall),
    FileEdit(FileEdit),
    ArtifactCreated {
        artifact: Artifact,
    },
    /// An artifact changed (a later push, a PR merged or closed): the whole artifact as it
    /// is now, under the same id.
    ArtifactUpdated {
        artifact: Artifact,
    },
    PromptFinished {
        message_id: String,
        status: PromptStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The stored answer text is shorter than what the agent produced; `error` says how
        /// much is missing.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        incomplete_text: bool,
    },
    SandboxStatus {
        status: SandboxState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// On `ready`: the sandbox came from the warm pool (claimed, not started for this
        /// session). Absent otherwise.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        warm: bool,
    },
    SessionError {
        code: SessionErrorCode,
        message: String,
    },
}

impl EventBody {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::ParticipantJoined { .. } => "participant_joined",
            EventBody::ParticipantLeft { .. } => "participant_left",
            EventBody::Message(_) => "message",
            EventBody::PromptStarted { .. } => "prompt_started",
            EventBody::Token { .. } => "token",
            EventBody::ToolCall(_) => "tool_call",
            EventBody::FileEdit(_) => "file_edit",
            EventBody::ArtifactCreated { .. } => "artifact_created",
            EventBody::ArtifactUpdated { .. } => "artifact_updated",
            EventBody::PromptFinished { .. } => "prompt_finished",
            EventBody::SandboxStatus { .. } => "sandbox_status",
            EventBody::SessionError { .. } => "session_error",
        }
    }

    /// The prompt this event belongs to, if any (indexed for lookups).
    pub fn message_id(&self) -> Option<&str> {
        match self {
            EventBody::Message(m) => Some(&m.message_id),
            EventBody::PromptStarted { message_id }
            | EventBody::Token { message_id, .. }
            | EventBody::PromptFinished { message_id, .. } => Some(message_id),
            EventBody::ToolCall(t) => Some(&t.message_id),
            EventBody::FileEdit(f) => Some(&f.message_id),
            EventBody::ArtifactCreated { artifact } | EventBody::ArtifactUpdated { artifact } => {
                artifact.message_id.as_deref()
            }
            _ => None,
        }
    }
}

/// A stored event as sent: `{"type", "seq", "ts", …fields}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub ts: String,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape() {
        let event = Event {
            seq: 42,
            ts: "2026-01-01T00:00:00.000Z".into(),
            body: EventBody::Token {
                message_id: "msg_1".into(),
                delta: "hi".into(),
                offset: 5,
            },
        };
        let json = event.to_json();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "token");
        assert_eq!(value["seq"], 42);
        assert_eq!(value["delta"], "hi");
        assert_eq!(value["offset"], 5);
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        assert_eq!(event.body.type_name(), "token");
    }

    #[test]
    fn type_names_match_serde_tags() {
        let info = ParticipantInfo {
            id: "p".into(),
            user_id: "u".into(),
            name: "n".into(),
        };
        let bodies = vec![
            EventBody::ParticipantJoined {
                participant: info.clone(),
            },
            EventBody::ParticipantLeft { participant: info },
            EventBody::PromptStarted {
                message_id: "m".into(),
            },
            EventBody::PromptFinished {
                message_id: "m".into(),
                status: PromptStatus::TimedOut,
                error: None,
                incomplete_text: false,
            },
            EventBody::SandboxStatus {
                status: SandboxState::Spawning,
                detail: None,
                warm: false,
            },
            EventBody::SessionError {
                code: SessionErrorCode::AgentError,
                message: "m".into(),
            },
            EventBody::ArtifactUpdated {
                artifact: Artifact {
                    id: "art_1".into(),
                    kind: "pr".into(),
                    created_at: "t".into(),
                    author: None,
                    message_id: None,
                    data: Value::Null,
                },
            },
        ];
        for body in bodies {
            let value = serde_json::to_value(&body).unwrap();
            assert_eq!(value["type"], body.type_name());
        }
        for &code in SessionErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
        }
    }
}
