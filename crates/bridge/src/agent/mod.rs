//! What every agent is to the bridge: something that runs one prompt at a time and reports
//! what it does as a stream of events, and that stops when told to.
//!
//! - [`dev`]: a deterministic agent for development and tests, no model needed.
//! - [`opencode`]: drives an OpenCode server, through [`opencode_api`] (its HTTP API and
//!   event stream); [`opencode_events`] maps the events to frames.

pub mod dev;
pub mod opencode;
pub mod opencode_api;
pub mod opencode_events;

use protocol::bridge::{ArtifactDraft, FromBridge, PromptJob, Transcript};
use protocol::event::{FileEdit, ToolCall, ToolStatus};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, watch};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Tool output in a frame is cut to this many bytes.
pub const TOOL_OUTPUT_LIMIT: usize = 16 * 1024;

pub trait Agent: Send {
    /// The name sent in `ready`.
    fn name(&self) -> &'static str;
    /// The version sent in `ready`; known after `start` for agents that ask a server.
    fn version(&self) -> String;
    /// Gets ready before the first prompt. A failure is logged; `run` may try again.
    fn start(&mut self) -> BoxFuture<'_, crate::error::Result<()>>;
    /// Runs one prompt, reporting through `sink`, until it ends or `stop` fires.
    fn run<'a>(
        &'a mut self,
        job: &'a PromptJob,
        sink: &'a EventSink,
        stop: StopSignal,
    ) -> BoxFuture<'a, Outcome>;
    /// Ends whatever the agent started (servers, commands).
    fn shutdown(&mut self) -> BoxFuture<'_, ()>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed(String),
    Stopped,
}

impl Outcome {
    pub fn into_done(self, message_id: String) -> FromBridge {
        let (ok, error) = match self {
            Outcome::Completed => (true, None),
            Outcome::Failed(error) => (false, Some(error)),
            Outcome::Stopped => (false, Some("stopped".to_string())),
        };
        FromBridge::Done {
            message_id,
            ok,
            error,
            // The outbox counts the text.
            text_bytes: None,
            ack_id: String::new(),
        }
    }
}

/// One change of a tool call, as agents report it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolUpdate {
    pub call_id: String,
    pub tool: String,
    pub status: ToolStatus,
    pub input: Option<Value>,
    pub output: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AgentEvent {
    Token(String),
    Tool(ToolUpdate),
    FileEdit {
        path: String,
        diff: Option<String>,
    },
    Artifact(ArtifactDraft),
    /// Something went wrong that does not end the prompt.
    Error(String),
}

impl AgentEvent {
    /// The frame for this event; critical frames get their ack id in the outbox.
    pub fn into_frame(self, message_id: String) -> FromBridge {
        match self {
            // The outbox gives it its offset.
            AgentEvent::Token(delta) => FromBridge::Token {
                message_id,
                delta,
                offset: None,
            },
            AgentEvent::Tool(update) => FromBridge::ToolCall {
                call: ToolCall {
                    message_id,
                    call_id: update.call_id,
                    tool: update.tool,
                    status: update.status,
                    input: update.input,
                    output: update.output,
                    truncated: false,
                    artifact_id: None,
                },
                ack_id: None,
            },
            AgentEvent::FileEdit { path, diff } => FromBridge::FileEdit {
                edit: FileEdit {
                    message_id,
                    path,
                    diff,
                    truncated: false,
                    artifact_id: None,
                },
                ack_id: None,
            },
            AgentEvent::Artifact(artifact) => FromBridge::Artifact {
                message_id,
                artifact,
                ack_id: None,
            },
            AgentEvent::Error(message) => FromBridge::Error {
                message_id: Some(message_id),
                message,
                ack_id: String::new(),
            },
        }
    }
}

/// Tool output as sent: at most [`TOOL_OUTPUT_LIMIT`] bytes, saying so when it was cut here
/// or before (`cut_before`, when the agent itself read only that much).
pub fn tool_output(text: &str, cut_before: bool) -> String {
    let (text, cut) = crate::process::cut_text(text, TOOL_OUTPUT_LIMIT);
    if cut || cut_before {
        format!("{text}\n[output cut at 16 KiB]")
    } else {
        text.to_string()
    }
}

/// Where an agent's events for one prompt go.
#[derive(Clone, Debug)]
pub struct EventSink {
    message_id: String,
    frames: mpsc::UnboundedSender<FromBridge>,
}

impl EventSink {
    pub fn new(message_id: String, frames: mpsc::UnboundedSender<FromBridge>) -> Self {
        EventSink { message_id, frames }
    }

    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    pub fn emit(&self, event: AgentEvent) {
        // The receiver lives as long as the bridge runs; after that nothing is left to tell.
        let _ = self.frames.send(event.into_frame(self.message_id.clone()));
    }

    pub fn token(&self, delta: impl Into<String>) {
        self.emit(AgentEvent::Token(delta.into()));
    }

    pub fn tool(&self, update: ToolUpdate) {
        self.emit(AgentEvent::Tool(update));
    }
}

/// Fires once when the prompt should stop; clones all see it.
#[derive(Clone, Debug)]
pub struct StopSignal(watch::Receiver<bool>);

pub fn stop_pair() -> (watch::Sender<bool>, StopSignal) {
    let (tx, rx) = watch::channel(false);
    (tx, StopSignal(rx))
}

impl StopSignal {
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when stopped; never, if the sending side is gone without stopping.
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|stopped| *stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One line naming the context a prompt carries, e.g. `Context: 1 selection from <url>`.
pub fn context_summary(job: &PromptJob) -> Option<String> {
    let selections = &job.context.selections;
    let attachments = &job.attachments;
    if selections.is_empty() && attachments.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !selections.is_empty() {
        let urls: Vec<&str> = selections
            .iter()
            .filter_map(|s| s.get("url").and_then(Value::as_str))
            .collect();
        let noun = if selections.len() == 1 {
            "selection"
        } else {
            "selections"
        };
        parts.push(if urls.is_empty() {
            format!("{} {noun}", selections.len())
        } else {
            format!("{} {noun} from {}", selections.len(), urls.join(", "))
        });
    }
    if !attachments.is_empty() {
        let noun = if attachments.len() == 1 {
            "attachment"
        } else {
            "attachments"
        };
        parts.push(format!("{} {noun}", attachments.len()));
    }
    Some(format!("Context: {}", parts.join(", ")))
}

/// The session's transcript as text for a model, oldest prompt first; `None` when it holds
/// no prompt.
pub fn transcript_text(transcript: &Transcript) -> Option<String> {
    if transcript.prompts.is_empty() {
        return None;
    }
    let n = transcript.prompts.len();
    let mut text = format!(
        "Context: this session began before this sandbox. What happened so far, oldest first ({n} earlier prompt{}{}). It is done; do not redo it, but know it when asked.\n",
        if n == 1 { "" } else { "s" },
        match transcript.omitted {
            0 => String::new(),
            k => format!("; {k} older left out"),
        }
    );
    for (i, prompt) in transcript.prompts.iter().rev().enumerate() {
        text.push_str(&format!(
            "\n## Prompt {} of {n}, by {} ({})\n{}\n",
            i + 1,
            prompt.author,
            prompt.status,
            prompt.content
        ));
        if !prompt.answer.is_empty() {
            text.push_str(&format!("\nYour answer:\n{}\n", prompt.answer));
        }
        if !prompt.tool_calls.is_empty() {
            let calls: Vec<String> = prompt
                .tool_calls
                .iter()
                .map(|call| {
                    format!("{} ({}) {}", call.tool, call.status, call.input)
                        .trim()
                        .to_owned()
                })
                .collect();
            text.push_str(&format!("\nTool calls: {}\n", calls.join("; ")));
        }
        if !prompt.files_edited.is_empty() {
            text.push_str(&format!(
                "Files edited: {}\n",
                prompt.files_edited.join(", ")
            ));
        }
    }
    Some(text)
}

/// Each attachment is shown at most this long, as JSON, in the text given to a model.
const ATTACHMENT_TEXT_LIMIT: usize = 4096;

/// The prompt's selections and attachments as plain text for a model.
pub fn context_text(job: &PromptJob) -> Option<String> {
    if job.context.selections.is_empty() && job.attachments.is_empty() {
        return None;
    }
    let mut text = String::from("Context given with this request:\n");
    for selection in &job.context.selections {
        let field = |name: &str| selection.get(name).and_then(Value::as_str).unwrap_or("");
        text.push_str(&format!("\nDOM selection on {}", field("url")));
        if !field("title").is_empty() {
            text.push_str(&format!(" ({})", field("title")));
        }
        text.push('\n');
        if !field("note").is_empty() {
            text.push_str(&format!("Note: {}\n", field("note")));
        }
        let elements = selection
            .get("elements")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for element in elements {
            text.push_str("- ");
            text.push_str(&describe_element(element));
            text.push('\n');
        }
    }
    for attachment in &job.attachments {
        let json = attachment.to_string();
        let (json, cut) = crate::process::cut_text(&json, ATTACHMENT_TEXT_LIMIT);
        text.push_str(&format!(
            "\nAttachment: {json}{}\n",
            if cut { " …" } else { "" }
        ));
    }
    Some(text)
}

/// `div#revenue.card [RevenueCard] selector=#revenue "Revenue $12,400"`
fn describe_element(element: &Value) -> String {
    let field = |name: &str| element.get(name).and_then(Value::as_str).unwrap_or("");
    let mut out = field("tag").to_string();
    if !field("id").is_empty() {
        out.push('#');
        out.push_str(field("id"));
    }
    for class in element
        .get("classes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if let Some(class) = class.as_str() {
            out.push('.');
            out.push_str(class);
        }
    }
    if !field("react_component").is_empty() {
        out.push_str(&format!(" [{}]", field("react_component")));
    }
    if !field("selector").is_empty() {
        out.push_str(&format!(" selector={}", field("selector")));
    }
    if !field("text").is_empty() {
        out.push_str(&format!(" {:?}", field("text")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::bridge::{GitAuthor, PromptContext};
    use serde_json::json;

    fn job(selections: Vec<Value>, attachments: Vec<Value>) -> PromptJob {
        PromptJob {
            message_id: "m1".into(),
            content: "fix it".into(),
            author: GitAuthor {
                name: "Ada".into(),
                email: "ada@example.com".into(),
            },
            attachments,
            context: PromptContext {
                selections,
                ..PromptContext::default()
            },
            push_branch: None,
        }
    }

    fn selection() -> Value {
        json!({"url": "https://app.example.com/dashboard", "title": "Dashboard",
               "note": "overflows", "elements": [{"tag": "div", "classes": ["card"], "id": "revenue",
               "text": "Revenue $12,400", "react_component": "RevenueCard", "selector": "#revenue"}]})
    }

    #[test]
    fn summaries() {
        assert_eq!(context_summary(&job(vec![], vec![])), None);
        assert_eq!(
            context_summary(&job(vec![selection()], vec![])).as_deref(),
            Some("Context: 1 selection from https://app.example.com/dashboard")
        );
        assert_eq!(
            context_summary(&job(vec![json!({}), json!({})], vec![json!({"a": 1})])).as_deref(),
            Some("Context: 2 selections, 1 attachment")
        );
    }

    #[test]
    fn context_text_for_models() {
        let text = context_text(&job(vec![selection()], vec![json!({"name": "log.txt"})])).unwrap();
        assert!(text.contains("DOM selection on https://app.example.com/dashboard (Dashboard)"));
        assert!(text.contains("Note: overflows"));
        assert!(
            text.contains("- div#revenue.card [RevenueCard] selector=#revenue \"Revenue $12,400\"")
        );
        assert!(text.contains("Attachment: {\"name\":\"log.txt\"}"));
        assert_eq!(context_text(&job(vec![], vec![])), None);
    }

    #[test]
    fn transcripts_as_text_read_oldest_first() {
        use protocol::bridge::{ToolSummary, TranscriptPrompt};
        let prompt = |id: &str, author: &str, content: &str, answer: &str| TranscriptPrompt {
            message_id: id.into(),
            author: author.into(),
            content: content.into(),
            status: "completed".into(),
            answer: answer.into(),
            tool_calls: vec![],
            files_edited: vec![],
        };
        assert_eq!(transcript_text(&Transcript::default()), None);
        let mut newest = prompt("m2", "Bob", "add a test", "Added it.");
        newest.tool_calls = vec![ToolSummary {
            tool: "bash".into(),
            status: "completed".into(),
            input: r#"{"command":"cargo test"}"#.into(),
        }];
        newest.files_edited = vec!["tests/a.rs".into()];
        let text = transcript_text(&Transcript {
            prompts: vec![newest, prompt("m1", "Ada", "fix the door", "Fixed.")],
            omitted: 3,
        })
        .unwrap();
        assert!(
            text.starts_with("Context: this session began before this sandbox"),
            "{text}"
        );
        assert!(
            text.contains("(2 earlier prompts; 3 older left out)"),
            "{text}"
        );
        let ada = text
            .find("## Prompt 1 of 2, by Ada (completed)\nfix the door\n\nYour answer:\nFixed.\n")
            .unwrap();
        let bob = text
            .find("## Prompt 2 of 2, by Bob (completed)\nadd a test")
            .unwrap();
        assert!(ada < bob);
        assert!(text.contains("Tool calls: bash (completed) {\"command\":\"cargo test\"}\nFiles edited: tests/a.rs\n"), "{text}");
    }

    #[test]
    fn frames_carry_the_message_id_and_outputs_are_cut() {
        let frame = AgentEvent::Tool(ToolUpdate {
            call_id: "c".into(),
            tool: "bash".into(),
            status: ToolStatus::Completed,
            input: None,
            output: Some("ok".into()),
        })
        .into_frame("m9".into());
        let value = serde_json::to_value(&frame).unwrap();
        assert_eq!(value["message_id"], "m9");
        assert_eq!(value["type"], "tool_call");
        assert_eq!(value["output"], "ok");
        let long = tool_output(&"x".repeat(TOOL_OUTPUT_LIMIT + 10), false);
        assert!(long.ends_with("\n[output cut at 16 KiB]"));
        assert!(long.len() < TOOL_OUTPUT_LIMIT + 40);
        assert_eq!(tool_output("short", false), "short");
        assert_eq!(tool_output("short", true), "short\n[output cut at 16 KiB]");
        assert_eq!(
            serde_json::to_value(Outcome::Stopped.into_done("m9".into())).unwrap()["error"],
            "stopped"
        );
    }

    #[test]
    fn stop_signal_fires_for_every_clone() {
        let (tx, stop) = stop_pair();
        let other = stop.clone();
        assert!(!stop.is_stopped());
        let _ = tx.send(true);
        assert!(stop.is_stopped() && other.is_stopped());
    }
}
