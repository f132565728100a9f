//! Frames between the coordinator and the sandbox bridge (PROTOCOL.md section 3).

use crate::event::{FileEdit, ToolCall};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The git identity a prompt's work is committed under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitAuthor {
    pub name: String,
    pub email: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptContext {
    /// DOM selections named by the prompt, as stored (`dom_selection` artifacts' data).
    #[serde(default)]
    pub selections: Vec<Value>,
    /// The session so far, with the first prompt a sandbox runs when the session had earlier
    /// prompts (the sandbox replaced one that failed, stopped idle or was restored from a
    /// snapshot); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Transcript>,
    /// Whose memory the agent keeps: the session's repository and owner. With every prompt,
    /// because a sandbox may have started before it knew its session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryScope>,
}

/// What happened earlier in the session, most recent prompt first, within
/// [`TRANSCRIPT_BYTES`] as JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub prompts: Vec<TranscriptPrompt>,
    /// Earlier prompts left out (the oldest) to stay within the size.
    #[serde(default)]
    pub omitted: u32,
}

/// A transcript is at most this many bytes of JSON.
pub const TRANSCRIPT_BYTES: usize = 64 * 1024;

/// One earlier prompt: who asked what, how it ended, what the agent answered (its stored
/// text, cut in the middle when long), the tools it called and the files it edited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptPrompt {
    pub message_id: String,
    pub author: String,
    pub content: String,
    /// `completed`, `failed`, `cancelled` or `timed_out`.
    pub status: String,
    #[serde(default)]
    pub answer: String,
    #[serde(default)]
    pub tool_calls: Vec<ToolSummary>,
    #[serde(default)]
    pub files_edited: Vec<String>,
}

/// A tool call as it ended: its tool, last status and the start of its input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSummary {
    pub tool: String,
    pub status: String,
    #[serde(default)]
    pub input: String,
}

/// The agent's memory belongs to one repository and one person: sessions of different owners,
/// or on different repositories, share none of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryScope {
    /// `owner/name`.
    pub repo: String,
    /// The session owner's user id.
    pub owner: String,
}

impl MemoryScope {
    /// A folder name for this scope, the same on every provider: `<owner>__<name>/<user id>`
    /// with anything but ASCII letters, digits, `-`, `_` and `.` replaced by `_` (and no
    /// component that is only dots), so it can never leave the memory folder.
    pub fn relative_dir(&self) -> String {
        fn clean(part: &str) -> String {
            let cleaned: String = part
                .chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
                    _ => '_',
                })
                .take(100)
                .collect();
            if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
                format!("_{cleaned}")
            } else {
                cleaned
            }
        }
        let (owner, name) = self.repo.split_once('/').unwrap_or((&self.repo, ""));
        format!("{}__{}/{}", clean(owner), clean(name), clean(&self.owner))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptJob {
    pub message_id: String,
    pub content: String,
    pub author: GitAuthor,
    #[serde(default)]
    pub attachments: Vec<Value>,
    #[serde(default)]
    pub context: PromptContext,
    /// When set, the bridge commits the prompt's changes and pushes them to this branch
    /// (`git::session_branch`), then sends `pushed`; `None` means do not push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_branch: Option<String>,
}

/// Coordinator → bridge.
// A frame is made, serialised and dropped (or parsed and taken apart) at once: boxing the
// prompt would add an allocation and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToBridge {
    Prompt(PromptJob),
    Stop {
        message_id: String,
    },
    Snapshot {
        reason: String,
    },
    Shutdown {},
    Ack {
        ack_id: String,
    },
    /// The room has stored the prompt's answer text up to `offset` (bytes): the bridge may
    /// forget the text before it. Sent after each stored batch.
    TokensAck {
        message_id: String,
        offset: u64,
    },
    /// Sent on `ready` for the prompt still running: the room holds its text up to `offset`,
    /// and the bridge sends again whatever it has after that.
    Resume {
        message_id: String,
        offset: u64,
    },
}

/// An artifact the agent produced; the coordinator gives it an id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactDraft {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
}

/// Bridge → coordinator. Frames with an `ack_id` are kept by the bridge until acknowledged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromBridge {
    Ready {
        sandbox_id: String,
        agent: String,
        #[serde(default)]
        agent_version: String,
        /// The prompt this bridge is working on, or finished without an acknowledged `done`:
        /// after a reconnect the room re-sends the running prompt only when this differs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
    },
    Heartbeat {},
    Token {
        message_id: String,
        delta: String,
        /// The bytes (UTF-8) of answer text before this delta in its prompt. Absent from
        /// bridges older than offsets: the room then appends the delta to what it holds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    ToolCall {
        #[serde(flatten)]
        call: ToolCall,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack_id: Option<String>,
    },
    FileEdit {
        #[serde(flatten)]
        edit: FileEdit,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack_id: Option<String>,
    },
    Artifact {
        message_id: String,
        artifact: ArtifactDraft,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack_id: Option<String>,
    },
    Done {
        message_id: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The bytes of answer text the prompt produced; the room compares it with what it
        /// stored and says so when text was lost.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text_bytes: Option<u64>,
        ack_id: String,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        message: String,
        ack_id: String,
    },
    SnapshotTaken {
        snapshot_id: String,
        ack_id: String,
    },
    /// The prompt's changes were committed and pushed to `branch` (sent before `done`).
    Pushed {
        message_id: String,
        branch: String,
        commit: String,
        files_changed: u32,
        additions: u32,
        deletions: u32,
        ack_id: String,
    },
}

impl FromBridge {
    pub fn ack_id(&self) -> Option<&str> {
        match self {
            FromBridge::ToolCall { ack_id, .. }
            | FromBridge::FileEdit { ack_id, .. }
            | FromBridge::Artifact { ack_id, .. } => ack_id.as_deref(),
            FromBridge::Done { ack_id, .. }
            | FromBridge::Error { ack_id, .. }
            | FromBridge::SnapshotTaken { ack_id, .. }
            | FromBridge::Pushed { ack_id, .. } => Some(ack_id),
            _ => None,
        }
    }
}

/// Headers the bridge sends when it dials the room.
pub const SANDBOX_ID_HEADER: &str = "X-Sandbox-Id";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ToolStatus;

    #[test]
    fn flattened_frames_round_trip() {
        let frame = FromBridge::ToolCall {
            call: ToolCall {
                message_id: "msg_1".into(),
                call_id: "c1".into(),
                tool: "bash".into(),
                status: ToolStatus::Completed,
                input: Some(serde_json::json!({"command": "ls"})),
                output: Some("README.md".into()),
                truncated: false,
                artifact_id: None,
            },
            ack_id: Some("a1".into()),
        };
        let json = serde_json::to_string(&frame).unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "tool_call");
        assert_eq!(value["call_id"], "c1");
        assert_eq!(value["ack_id"], "a1");
        assert_eq!(serde_json::from_str::<FromBridge>(&json).unwrap(), frame);
        assert_eq!(frame.ack_id(), Some("a1"));
        assert_eq!(
            serde_json::to_string(&FromBridge::Heartbeat {}).unwrap(),
            r#"{"type":"heartbeat"}"#
        );
        assert_eq!(
            serde_json::to_string(&ToBridge::Shutdown {}).unwrap(),
            r#"{"type":"shutdown"}"#
        );
    }

    #[test]
    fn pushed_is_critical_and_push_branch_is_optional() {
        let pushed: FromBridge = serde_json::from_str(
            r#"{"type":"pushed","message_id":"m","branch":"agent/ses_1","commit":"abc","files_changed":1,"additions":2,"deletions":0,"ack_id":"a9"}"#,
        )
        .unwrap();
        assert_eq!(pushed.ack_id(), Some("a9"));
        let job: PromptJob = serde_json::from_str(
            r#"{"message_id":"m","content":"c","author":{"name":"A","email":"a@b"}}"#,
        )
        .unwrap();
        assert_eq!(job.push_branch, None);
        assert!(!serde_json::to_string(&job).unwrap().contains("push_branch"));
    }

    #[test]
    fn transcripts_and_memory_are_optional() {
        let job: PromptJob = serde_json::from_str(
            r#"{"message_id":"m","content":"c","author":{"name":"A","email":"a@b"},"context":{"selections":[]}}"#,
        )
        .unwrap();
        assert_eq!(job.context.transcript, None);
        let json = serde_json::to_string(&job).unwrap();
        assert!(
            !json.contains("transcript") && !json.contains("memory"),
            "{json}"
        );
        let job: PromptJob = serde_json::from_str(
            r#"{"message_id":"m","content":"c","author":{"name":"A","email":"a@b"},
                "context":{"transcript":{"prompts":[{"message_id":"m0","author":"Ada","content":"hi","status":"completed"}],"omitted":2},
                           "memory":{"repo":"acme/demo","owner":"usr_1"}}}"#,
        )
        .unwrap();
        let transcript = job.context.transcript.unwrap();
        assert_eq!(transcript.omitted, 2);
        assert_eq!(transcript.prompts[0].answer, "");
        assert_eq!(
            job.context.memory.unwrap().relative_dir(),
            "acme__demo/usr_1"
        );
    }

    #[test]
    fn memory_folders_stay_inside() {
        let dir = |repo: &str, owner: &str| {
            MemoryScope {
                repo: repo.into(),
                owner: owner.into(),
            }
            .relative_dir()
        };
        assert_eq!(dir("../..", "../x"), "_..___../.._x");
        assert_eq!(dir("a/b", ".."), "a__b/_..");
        assert_eq!(dir("a/b", ""), "a__b/_");
        assert_eq!(dir("a/b/c", "u/v"), "a__b_c/u_v");
        for d in [dir("../..", "../x"), dir("a/b", ".."), dir("x", "/etc")] {
            assert!(
                d.split('/').all(|part| !part.chars().all(|c| c == '.')),
                "{d}"
            );
            assert_eq!(d.split('/').count(), 2, "{d}");
        }
    }

    #[test]
    fn token_offsets_and_their_acknowledgements() {
        let token: FromBridge =
            serde_json::from_str(r#"{"type":"token","message_id":"m","delta":"hé","offset":7}"#)
                .unwrap();
        assert_eq!(
            token,
            FromBridge::Token {
                message_id: "m".into(),
                delta: "hé".into(),
                offset: Some(7)
            }
        );
        let legacy: FromBridge =
            serde_json::from_str(r#"{"type":"token","message_id":"m","delta":"x"}"#).unwrap();
        assert!(matches!(legacy, FromBridge::Token { offset: None, .. }));
        assert_eq!(
            serde_json::to_string(&ToBridge::TokensAck {
                message_id: "m".into(),
                offset: 9
            })
            .unwrap(),
            r#"{"type":"tokens_ack","message_id":"m","offset":9}"#
        );
        let resume: ToBridge =
            serde_json::from_str(r#"{"type":"resume","message_id":"m","offset":3}"#).unwrap();
        assert_eq!(
            resume,
            ToBridge::Resume {
                message_id: "m".into(),
                offset: 3
            }
        );
        let done: FromBridge = serde_json::from_str(
            r#"{"type":"done","message_id":"m","ok":true,"text_bytes":12,"ack_id":"a"}"#,
        )
        .unwrap();
        assert!(matches!(
            done,
            FromBridge::Done {
                text_bytes: Some(12),
                ..
            }
        ));
    }
}
