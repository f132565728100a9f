//! The rows the room reads and writes, and how each shows on the wire.

use crate::room::queue::MessageStatus;
use crate::time::rfc3339;
use protocol::event::{Author, ParticipantInfo, SandboxState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Participant {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub email: String,
}

impl Participant {
    pub fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            name: self.name.clone(),
        }
    }

    pub fn author(&self) -> Author {
        Author {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }
}

/// A stored message (prompt) as the API lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: String,
    pub seq: u64,
    pub author_id: String,
    pub author_user_id: String,
    pub author_name: String,
    pub content: String,
    pub source: String,
    pub client_request_id: Option<String>,
    pub attachments: String,
    pub selection_ids: String,
    pub status: String,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl MessageRow {
    pub fn status(&self) -> MessageStatus {
        MessageStatus::parse(&self.status).unwrap_or(MessageStatus::Failed)
    }

    /// When it started running, in ms (0 if it has not).
    pub fn started_ms(&self) -> u64 {
        self.started_at
            .as_deref()
            .and_then(crate::time::parse_rfc3339)
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "seq": self.seq,
            "content": self.content,
            "author": {"id": self.author_id, "user_id": self.author_user_id, "name": self.author_name},
            "source": self.source,
            "client_request_id": self.client_request_id,
            "attachments": serde_json::from_str::<Value>(&self.attachments).unwrap_or(Value::Array(vec![])),
            "selection_ids": serde_json::from_str::<Value>(&self.selection_ids).unwrap_or(Value::Array(vec![])),
            "status": self.status,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct ArtifactRow {
    pub id: String,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub message_id: Option<String>,
    pub author_id: Option<String>,
    pub data: String,
    pub created_at: String,
}

impl ArtifactRow {
    pub fn data(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// A sandbox the room asked for; the live one is the newest without `ended_at`.
#[derive(Clone, Debug, Deserialize)]
pub struct SandboxRow {
    pub id: String,
    pub token_hash: String,
    pub status: String,
    pub provider_id: Option<String>,
    pub agent: Option<String>,
    pub detail: Option<String>,
    pub restored_from: Option<String>,
    pub created_at: u64,
    pub heartbeat_at: Option<u64>,
    pub idle_since: u64,
    pub ended_at: Option<u64>,
}

impl SandboxRow {
    pub fn state(&self) -> SandboxState {
        SandboxState::parse(&self.status).unwrap_or(SandboxState::Failed)
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "status": self.status,
            "agent": self.agent,
            "provider_id": self.provider_id,
            "detail": self.detail,
            "restored_from": self.restored_from,
            "created_at": rfc3339(self.created_at),
            "last_heartbeat_at": self.heartbeat_at.map(rfc3339),
        })
    }
}

/// A new prompt, validated, ready to store.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub author: &'a Participant,
    pub content: &'a str,
    pub source: &'a str,
    pub client_request_id: Option<&'a str>,
    pub attachments: &'a [Value],
    pub selection_ids: &'a [String],
}

/// An event as appended: its number and the exact JSON every client receives.
pub struct StoredEvent {
    pub seq: u64,
    pub type_name: &'static str,
    pub json: String,
}

/// An event as read back: what replay and SSE send.
#[derive(Deserialize)]
pub struct EventRow {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub json: String,
}
