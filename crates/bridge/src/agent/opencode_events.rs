//! OpenCode's event stream (`GET /event`, v1 routes) mapped to agent events.
//!
//! Shapes, as OpenCode 1.18 sends them (each `{"type", "properties"}`):
//! - `message.updated {info: {id, role, parentID?, sessionID}}`: tells user and assistant
//!   messages apart, and which user message an assistant message answers.
//! - `message.part.delta {sessionID, messageID, partID, field: "text", delta}`: streamed text.
//! - `message.part.updated {part: {id, messageID, sessionID, type, …}}`: a part's full state;
//!   `text` parts carry the whole text so far, `tool` parts `{tool, callID, state: {status:
//!   pending|running|completed|error, input, output?, error?, metadata?}}`.
//! - `session.status {sessionID, status: {type: busy|idle|retry}}`, `session.idle {sessionID}`.
//! - `session.error {sessionID?, error: {name, data: {message}}}`.
//! - `permission.asked {id, sessionID, permission, patterns[], tool?}`: OpenCode waits for an
//!   answer (`POST /permission/:id/reply`).
//!
//! Text can arrive both as deltas and inside `part.updated`; only the part not yet sent goes
//! out, so nothing is said twice. Events of other sessions, the user's own message and
//! messages from before the current prompt are ignored. `idle` is reported twice per prompt and
//! a previous prompt's can trail into the next, so `done` needs a `busy` seen first. An error
//! is reported with the `idle` after it: OpenCode is still busy right after the error, and a
//! prompt posted then is stored but never answered (seen with 1.18.33).

use super::{tool_output, AgentEvent, Outcome, ToolUpdate};
use protocol::event::ToolStatus;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug, PartialEq)]
pub enum Mapped {
    Event(AgentEvent),
    Finished(Outcome),
    /// OpenCode waits for someone to allow a tool call (`permission.asked`).
    PermissionAsked {
        id: String,
        what: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PartKind {
    Text,
    Other,
}

#[derive(Debug)]
struct Message {
    is_user: bool,
    parent_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct EventMapper {
    session_id: String,
    workspace: String,
    prompt_text: String,
    active: bool,
    busy: bool,
    /// The user message the current prompt created, once OpenCode has said which it is.
    user_message: Option<String>,
    messages: HashMap<String, Message>,
    /// Messages from before the current prompt; their late events are dropped.
    stale: HashSet<String>,
    /// The current prompt's `session.error`, reported once OpenCode is idle again.
    failure: Option<String>,
    /// Per part: its kind and the text already sent.
    parts: HashMap<String, (PartKind, String)>,
    /// Per call id: the last status sent, with the call's tool and input.
    tool_status: HashMap<String, (ToolStatus, String, Option<Value>)>,
}

fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The tools whose completion is a change to a file.
fn is_edit_tool(tool: &str) -> bool {
    matches!(
        tool,
        "edit" | "write" | "multiedit" | "patch" | "apply_patch"
    )
}

impl EventMapper {
    pub fn new(session_id: impl Into<String>, workspace: impl Into<String>) -> Self {
        EventMapper {
            session_id: session_id.into(),
            workspace: workspace.into(),
            ..EventMapper::default()
        }
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The prompt goes to another session (the old one was gone); nothing of the old one counts.
    pub fn move_to_session(&mut self, session_id: String) {
        self.session_id = session_id;
        self.messages.clear();
        self.stale.clear();
        self.parts.clear();
        self.tool_status.clear();
        self.user_message = None;
        self.busy = false;
    }

    /// A message the bridge added itself (the transcript): none of its events are a prompt's.
    pub fn forget_message(&mut self, message_id: String) {
        self.messages.remove(&message_id);
        self.stale.insert(message_id);
    }

    /// A new prompt was posted: what came before is history.
    pub fn begin_prompt(&mut self, prompt_text: &str) {
        self.stale.extend(self.messages.drain().map(|(id, _)| id));
        self.parts.clear();
        self.tool_status.clear();
        self.prompt_text = prompt_text.to_string();
        self.user_message = None;
        self.failure = None;
        self.busy = false;
        self.active = true;
    }

    /// Tool calls of the current prompt last reported running, reported ended with `why`:
    /// after a stop OpenCode's own word on them is no longer listened to.
    pub fn close_running_calls(&mut self, why: &str) -> Vec<AgentEvent> {
        let mut closed: Vec<AgentEvent> = self
            .tool_status
            .iter_mut()
            .filter(|(_, (status, _, _))| *status == ToolStatus::Running)
            .map(|(call_id, (status, tool, input))| {
                *status = ToolStatus::Error;
                AgentEvent::Tool(ToolUpdate {
                    call_id: call_id.clone(),
                    tool: tool.clone(),
                    status: ToolStatus::Error,
                    input: input.clone(),
                    output: Some(why.to_string()),
                })
            })
            .collect();
        closed.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        closed
    }

    /// The prompt is over (stopped); later events of it are ignored.
    pub fn end_prompt(&mut self) {
        self.active = false;
    }

    pub fn map(&mut self, event: &Value) -> Vec<Mapped> {
        // `/global/event` wraps each event as `{directory, payload}`.
        let event = event.get("payload").unwrap_or(event);
        let kind = str_at(event, "type").unwrap_or("");
        let Some(props) = event.get("properties") else {
            return Vec::new();
        };
        let session = str_at(props, "sessionID")
            .or_else(|| props.get("info").and_then(|i| str_at(i, "sessionID")))
            .or_else(|| props.get("part").and_then(|p| str_at(p, "sessionID")));
        match session {
            Some(session) if session != self.session_id => return Vec::new(),
            None if kind != "session.error" => return Vec::new(),
            _ => {}
        }
        match kind {
            "message.updated" => {
                if let Some(info) = props.get("info") {
                    self.message_updated(info);
                }
                Vec::new()
            }
            "message.part.delta" => self.part_delta(props).into_iter().collect(),
            "message.part.updated" => match props.get("part") {
                Some(part) => self.part_updated(part),
                None => Vec::new(),
            },
            "session.status" => match props.get("status").and_then(|s| str_at(s, "type")) {
                Some("busy") => {
                    if self.active {
                        self.busy = true;
                    }
                    Vec::new()
                }
                Some("idle") => self.idle(),
                _ => Vec::new(),
            },
            "session.idle" => self.idle(),
            "permission.asked" => self.permission(props).into_iter().collect(),
            "session.error" => self.error(props),
            _ => Vec::new(),
        }
    }

    fn message_updated(&mut self, info: &Value) {
        let Some(id) = str_at(info, "id") else {
            return;
        };
        if !self.active {
            self.stale.insert(id.to_string());
            return;
        }
        if self.stale.contains(id) {
            return;
        }
        let is_user = str_at(info, "role") == Some("user");
        if is_user && self.user_message.is_none() {
            self.user_message = Some(id.to_string());
        }
        if !is_user {
            self.busy = true;
        }
        self.messages.insert(
            id.to_string(),
            Message {
                is_user,
                parent_id: str_at(info, "parentID").map(String::from),
            },
        );
    }

    /// Whether parts of this message belong to the answer to the current prompt.
    fn accepts(&self, message_id: &str) -> bool {
        if !self.active || self.stale.contains(message_id) {
            return false;
        }
        match self.messages.get(message_id) {
            Some(message) if message.is_user => false,
            Some(message) => match (&self.user_message, &message.parent_id) {
                (Some(user), Some(parent)) => user == parent,
                _ => true,
            },
            None => true,
        }
    }

    fn part_delta(&mut self, props: &Value) -> Option<Mapped> {
        if str_at(props, "field") != Some("text") {
            return None;
        }
        let (message_id, part_id, delta) = (
            str_at(props, "messageID")?,
            str_at(props, "partID")?,
            str_at(props, "delta")?,
        );
        if delta.is_empty() || !self.accepts(message_id) {
            return None;
        }
        let (kind, sent) = self
            .parts
            .entry(part_id.to_string())
            .or_insert((PartKind::Text, String::new()));
        if *kind != PartKind::Text {
            return None;
        }
        sent.push_str(delta);
        Some(Mapped::Event(AgentEvent::Token(delta.to_string())))
    }

    fn part_updated(&mut self, part: &Value) -> Vec<Mapped> {
        let (Some(part_id), Some(message_id)) = (str_at(part, "id"), str_at(part, "messageID"))
        else {
            return Vec::new();
        };
        if !self.accepts(message_id) {
            return Vec::new();
        }
        match str_at(part, "type") {
            Some("text") => self
                .text_part(part_id, message_id, part)
                .into_iter()
                .collect(),
            Some("tool") => self.tool_part(part),
            _ => {
                // Reasoning and the like: their deltas are not the answer.
                self.parts
                    .insert(part_id.to_string(), (PartKind::Other, String::new()));
                Vec::new()
            }
        }
    }

    fn text_part(&mut self, part_id: &str, message_id: &str, part: &Value) -> Option<Mapped> {
        let text = str_at(part, "text")?;
        let flagged = |key| part.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flagged("synthetic") || flagged("ignored") {
            return None;
        }
        // Without a `message.updated` first, the user's own text is recognised by itself.
        if !self.messages.contains_key(message_id)
            && !self.parts.contains_key(part_id)
            && !text.is_empty()
            && text == self.prompt_text
        {
            self.parts
                .insert(part_id.to_string(), (PartKind::Other, String::new()));
            return None;
        }
        let (kind, sent) = self
            .parts
            .entry(part_id.to_string())
            .or_insert((PartKind::Text, String::new()));
        if *kind != PartKind::Text || text.len() <= sent.len() || !text.starts_with(sent.as_str()) {
            return None;
        }
        let suffix = text[sent.len()..].to_string();
        *sent = text.to_string();
        Some(Mapped::Event(AgentEvent::Token(suffix)))
    }

    fn tool_part(&mut self, part: &Value) -> Vec<Mapped> {
        let (Some(tool), Some(call_id), Some(state)) = (
            str_at(part, "tool"),
            str_at(part, "callID"),
            part.get("state"),
        ) else {
            return Vec::new();
        };
        let status = match str_at(state, "status") {
            Some("running") => ToolStatus::Running,
            Some("completed") => ToolStatus::Completed,
            Some("error") => ToolStatus::Error,
            // `pending` has no input yet; `running` follows at once.
            _ => return Vec::new(),
        };
        if self.tool_status.get(call_id).map(|(last, _, _)| *last) == Some(status) {
            return Vec::new();
        }
        let input = state
            .get("input")
            .filter(|i| i.as_object().map(|o| !o.is_empty()).unwrap_or(false))
            .cloned();
        self.tool_status.insert(
            call_id.to_string(),
            (status, tool.to_string(), input.clone()),
        );
        let output = match status {
            ToolStatus::Completed => str_at(state, "output"),
            ToolStatus::Error => str_at(state, "error"),
            ToolStatus::Running => None,
        };
        let mut mapped = vec![Mapped::Event(AgentEvent::Tool(ToolUpdate {
            call_id: call_id.to_string(),
            tool: tool.to_string(),
            status,
            input: input.clone(),
            output: output.map(|o| tool_output(o, false)),
        }))];
        if status == ToolStatus::Completed && is_edit_tool(tool) {
            let metadata = state.get("metadata");
            let path = input
                .as_ref()
                .and_then(|i| str_at(i, "filePath").or_else(|| str_at(i, "path")))
                .or_else(|| metadata.and_then(|m| str_at(m, "filepath")));
            if let Some(path) = path {
                mapped.push(Mapped::Event(AgentEvent::FileEdit {
                    path: crate::workspace::display_path(
                        std::path::Path::new(&self.workspace),
                        path,
                    ),
                    diff: metadata.and_then(|m| str_at(m, "diff")).map(String::from),
                }));
            }
        }
        mapped
    }

    fn permission(&self, props: &Value) -> Option<Mapped> {
        if !self.active {
            return None;
        }
        let id = str_at(props, "id")?;
        let permission = str_at(props, "permission").unwrap_or("a tool call");
        let patterns: Vec<&str> = props
            .get("patterns")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let what = if patterns.is_empty() {
            permission.to_string()
        } else {
            format!("{permission} {}", patterns.join(", "))
        };
        Some(Mapped::PermissionAsked {
            id: id.to_string(),
            what,
        })
    }

    fn idle(&mut self) -> Vec<Mapped> {
        if !self.active || !self.busy {
            return Vec::new();
        }
        self.active = false;
        let outcome = match self.failure.take() {
            Some(message) => Outcome::Failed(message),
            None => Outcome::Completed,
        };
        vec![Mapped::Finished(outcome)]
    }

    /// The prompt has failed, but OpenCode is still winding it down: the failure is reported
    /// with the `idle` that follows, so the next prompt does not arrive while it is busy.
    fn error(&mut self, props: &Value) -> Vec<Mapped> {
        if !self.active || self.failure.is_some() {
            return Vec::new();
        }
        let error = props.get("error");
        let message = error
            .and_then(|e| e.get("data"))
            .and_then(|d| str_at(d, "message"))
            .or_else(|| error.and_then(|e| str_at(e, "name")))
            .unwrap_or("OpenCode reported an error");
        self.failure = Some(message.to_string());
        self.busy = true;
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SES: &str = "ses_1";

    fn mapper() -> EventMapper {
        let mut mapper = EventMapper::new(SES, "/w");
        mapper.begin_prompt("list files");
        mapper
    }

    fn user_message(id: &str) -> Value {
        json!({"type": "message.updated", "properties": {"sessionID": SES,
            "info": {"id": id, "role": "user", "sessionID": SES}}})
    }

    fn assistant_message(id: &str, parent: &str) -> Value {
        json!({"type": "message.updated", "properties": {"sessionID": SES,
            "info": {"id": id, "parentID": parent, "role": "assistant", "sessionID": SES}}})
    }

    fn text_part(message: &str, part: &str, text: &str) -> Value {
        json!({"type": "message.part.updated", "properties": {"sessionID": SES,
            "part": {"id": part, "messageID": message, "sessionID": SES, "type": "text", "text": text}}})
    }

    fn delta(message: &str, part: &str, delta: &str) -> Value {
        json!({"type": "message.part.delta", "properties": {"sessionID": SES,
            "messageID": message, "partID": part, "field": "text", "delta": delta}})
    }

    fn tool(message: &str, call: &str, name: &str, state: Value) -> Value {
        json!({"type": "message.part.updated", "properties": {"sessionID": SES,
            "part": {"id": format!("prt_{call}"), "messageID": message, "sessionID": SES,
                     "type": "tool", "tool": name, "callID": call, "state": state}}})
    }

    fn status(kind: &str) -> Value {
        json!({"type": "session.status", "properties": {"sessionID": SES, "status": {"type": kind}}})
    }

    fn idle() -> Value {
        json!({"type": "session.idle", "properties": {"sessionID": SES}})
    }

    fn feed(mapper: &mut EventMapper, events: &[Value]) -> Vec<Mapped> {
        events.iter().flat_map(|e| mapper.map(e)).collect()
    }

    fn token(text: &str) -> Mapped {
        Mapped::Event(AgentEvent::Token(text.into()))
    }

    #[test]
    fn deltas_then_updates_never_repeat_text() {
        let mut m = mapper();
        let out = feed(
            &mut m,
            &[
                user_message("msg_u"),
                text_part("msg_u", "prt_u", "list files"),
                status("busy"),
                assistant_message("msg_a", "msg_u"),
                text_part("msg_a", "prt_t", ""),
                delta("msg_a", "prt_t", "Let me "),
                delta("msg_a", "prt_t", "look"),
                text_part("msg_a", "prt_t", "Let me look"),
                text_part("msg_a", "prt_t", "Let me look around."),
                delta("msg_a", "prt_t2", "Next."),
                text_part("msg_a", "prt_t2", "Next."),
            ],
        );
        assert_eq!(
            out,
            [
                token("Let me "),
                token("look"),
                token(" around."),
                token("Next.")
            ]
        );
    }

    /// The events of one assistant message whose tool part goes through `states`.
    fn tool_states(call: &str, name: &str, states: &[Value]) -> Vec<Mapped> {
        let mut events = vec![user_message("msg_u"), assistant_message("msg_a", "msg_u")];
        events.extend(
            states
                .iter()
                .map(|state| tool("msg_a", call, name, state.clone())),
        );
        feed(&mut mapper(), &events)
    }

    fn update(
        call: &str,
        name: &str,
        status: ToolStatus,
        input: Value,
        output: Option<&str>,
    ) -> Mapped {
        Mapped::Event(AgentEvent::Tool(ToolUpdate {
            call_id: call.into(),
            tool: name.into(),
            status,
            input: Some(input),
            output: output.map(String::from),
        }))
    }

    #[test]
    fn a_tool_call_maps_once_per_status_change_and_never_while_pending() {
        let out = tool_states(
            "call_1",
            "bash",
            &[
                json!({"status": "pending", "input": {}, "raw": ""}),
                json!({"status": "running", "input": {"command": "ls"}}),
                json!({"status": "running", "input": {"command": "ls"},
                       "metadata": {"output": "README.md\n"}}),
                json!({"status": "completed", "input": {"command": "ls"},
                       "output": "README.md\n", "metadata": {"exit": 0}}),
            ],
        );
        let ls = json!({"command": "ls"});
        assert_eq!(
            out,
            [
                update("call_1", "bash", ToolStatus::Running, ls.clone(), None),
                update(
                    "call_1",
                    "bash",
                    ToolStatus::Completed,
                    ls,
                    Some("README.md\n")
                ),
            ]
        );
    }

    #[test]
    fn a_completed_write_is_also_a_file_edit_relative_to_the_workspace() {
        let input = json!({"filePath": "/w/notes.txt", "content": "hello\n"});
        let out = tool_states(
            "call_2",
            "write",
            &[
                json!({"status": "running", "input": input}),
                json!({"status": "completed", "input": input, "output": "Wrote file successfully.",
                       "metadata": {"filepath": "/w/notes.txt", "diff": "@@ +hello"}}),
            ],
        );
        assert_eq!(
            out,
            [
                update("call_2", "write", ToolStatus::Running, input.clone(), None),
                update(
                    "call_2",
                    "write",
                    ToolStatus::Completed,
                    input,
                    Some("Wrote file successfully.")
                ),
                Mapped::Event(AgentEvent::FileEdit {
                    path: "notes.txt".into(),
                    diff: Some("@@ +hello".into())
                }),
            ]
        );
    }

    #[test]
    fn a_failed_tool_is_an_error_with_its_message() {
        let out = tool_states(
            "call_3",
            "read",
            &[
                json!({"status": "error", "input": {"filePath": "/nope"}, "error": "File not found"}),
            ],
        );
        assert_eq!(
            out,
            [update(
                "call_3",
                "read",
                ToolStatus::Error,
                json!({"filePath": "/nope"}),
                Some("File not found")
            )]
        );
    }

    #[test]
    fn idle_finishes_once_and_only_after_busy() {
        let mut m = mapper();
        // A trailing idle of the previous prompt, before this one's busy.
        assert!(feed(&mut m, &[idle(), status("idle")]).is_empty());
        let out = feed(
            &mut m,
            &[status("busy"), status("idle"), idle(), status("idle")],
        );
        assert_eq!(out, [Mapped::Finished(Outcome::Completed)]);
        // Between prompts nothing is reported.
        assert!(feed(
            &mut m,
            &[status("busy"), delta("msg_x", "p", "late"), idle()]
        )
        .is_empty());
    }

    #[test]
    fn session_errors_fail_the_prompt() {
        let mut m = mapper();
        let error = json!({"type": "session.error", "properties": {"sessionID": SES,
            "error": {"name": "APIError", "data": {"message": "stub refused the request", "statusCode": 400}}}});
        let out = feed(&mut m, &[status("busy"), error, status("idle"), idle()]);
        assert_eq!(
            out,
            [Mapped::Finished(Outcome::Failed(
                "stub refused the request".into()
            ))]
        );
        let mut m = mapper();
        let bare =
            json!({"type": "session.error", "properties": {"error": {"name": "UnknownError"}}});
        assert!(feed(&mut m, &[bare]).is_empty());
        assert_eq!(
            feed(&mut m, &[idle()]),
            [Mapped::Finished(Outcome::Failed("UnknownError".into()))]
        );
    }

    #[test]
    fn other_sessions_users_and_old_messages_are_ignored() {
        let mut m = mapper();
        let other = json!({"type": "message.part.delta", "properties": {"sessionID": "ses_other",
            "messageID": "m", "partID": "p", "field": "text", "delta": "not ours"}});
        let other_idle = json!({"type": "session.idle", "properties": {"sessionID": "ses_other"}});
        let reasoning = json!({"type": "message.part.updated", "properties": {"sessionID": SES,
            "part": {"id": "prt_r", "messageID": "msg_a", "sessionID": SES, "type": "reasoning", "text": ""}}});
        let out = feed(
            &mut m,
            &[
                status("busy"),
                other,
                other_idle,
                // The user's text, before its message.updated.
                text_part("msg_u", "prt_u", "list files"),
                user_message("msg_u"),
                text_part("msg_u", "prt_u2", "more user text"),
                assistant_message("msg_a", "msg_u"),
                reasoning,
                delta("msg_a", "prt_r", "thinking"),
                delta("msg_a", "prt_t", "answer"),
                json!({"type": "server.heartbeat", "properties": {}}),
                json!("not an object"),
            ],
        );
        assert_eq!(out, [token("answer")]);
        assert_eq!(
            feed(&mut m, &[idle()]),
            [Mapped::Finished(Outcome::Completed)]
        );

        // Next prompt: late events of the previous answer are dropped, the new answer is not.
        m.begin_prompt("second");
        let out = feed(
            &mut m,
            &[
                tool(
                    "msg_a",
                    "call_s",
                    "bash",
                    json!({"status": "completed", "input": {"command": "sleep 30"},
                    "output": "aborted"}),
                ),
                user_message("msg_u2"),
                assistant_message("msg_old_reply", "msg_u"),
                delta("msg_old_reply", "p_old", "old"),
                assistant_message("msg_b", "msg_u2"),
                delta("msg_b", "prt_b", "new"),
            ],
        );
        assert_eq!(out, [token("new")]);
    }

    #[test]
    fn a_stop_closes_running_calls() {
        let mut m = mapper();
        feed(
            &mut m,
            &[
                tool(
                    "msg_a",
                    "call_1",
                    "bash",
                    json!({"status": "running", "input": {"command": "sleep 30"}}),
                ),
                tool(
                    "msg_a",
                    "call_2",
                    "bash",
                    json!({"status": "completed", "input": {"command": "ls"}, "output": ""}),
                ),
            ],
        );
        assert_eq!(
            m.close_running_calls("stopped"),
            [AgentEvent::Tool(ToolUpdate {
                call_id: "call_1".into(),
                tool: "bash".into(),
                status: ToolStatus::Error,
                input: Some(json!({"command": "sleep 30"})),
                output: Some("stopped".into()),
            })]
        );
        assert!(m.close_running_calls("stopped").is_empty());
    }

    #[test]
    fn permission_requests_are_surfaced() {
        let mut m = mapper();
        let asked = json!({"type": "permission.asked", "properties": {"id": "per_1", "sessionID": SES,
            "permission": "external_directory", "patterns": ["/tmp/x/*"],
            "metadata": {"filepath": "/tmp/x/notes.txt"}, "always": ["/tmp/x/*"],
            "tool": {"messageID": "msg_a", "callID": "call_2"}}});
        assert_eq!(
            feed(&mut m, std::slice::from_ref(&asked)),
            [Mapped::PermissionAsked {
                id: "per_1".into(),
                what: "external_directory /tmp/x/*".into()
            }]
        );
        m.end_prompt();
        assert!(feed(&mut m, &[asked]).is_empty());
    }

    #[test]
    fn global_event_envelopes_are_unwrapped() {
        let mut m = mapper();
        let wrapped = json!({"directory": "/w", "payload": status("busy")});
        let wrapped_idle = json!({"directory": "/w", "payload": idle()});
        assert_eq!(
            feed(&mut m, &[wrapped, wrapped_idle]),
            [Mapped::Finished(Outcome::Completed)]
        );
    }
}
