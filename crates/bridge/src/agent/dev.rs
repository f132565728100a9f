//! A deterministic agent for development and tests: it needs no model. It streams a short
//! acknowledgement, then acts on the prompt's lines:
//!
//! - `$ <command>`: runs it with `sh -c` in the workspace (a `bash` tool call);
//! - `write <path>: <text>`: writes `text` and a newline to the file (a file edit);
//! - `sleep <ms>`: waits, at most a minute (for trying stop and kill mid-prompt);
//! - `stream <n>`: streams a long answer, `1 2 3 … n ` one number a delta (at most 100,000);
//! - `fail <reason>`: ends the prompt as failed;
//! - `recall`: says every earlier prompt of the session it knows of, oldest first, one line
//!   each (`Earlier prompt by <author>: <its first line>`), from the transcript it was given
//!   and the prompts it ran since.
//!
//! Other lines are prose and ignored. When a prompt brings the session's transcript (a new
//! sandbox in a session with earlier prompts) the answer starts with
//! `Context: <n> earlier prompts`.

use super::{
    context_summary, tool_output, Agent, AgentEvent, BoxFuture, EventSink, Outcome, StopSignal,
    ToolUpdate, TOOL_OUTPUT_LIMIT,
};
use crate::config::AgentEnv;
use crate::error::{Error, Result};
use crate::process::{run_shell, AgentUser, ShellOutcome};
use crate::workspace::{resolve_for_write, whole_file_diff};
use protocol::bridge::PromptJob;
use protocol::event::ToolStatus;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const MAX_SLEEP: Duration = Duration::from_secs(60);
const MAX_STREAM: u32 = 100_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    Command(&'a str),
    Write { path: &'a str, text: &'a str },
    Sleep(Duration),
    Stream(u32),
    Fail(&'a str),
    Recall,
    Prose,
}

pub fn parse_line(line: &str) -> Step<'_> {
    if let Some(command) = line.strip_prefix("$ ") {
        let command = command.trim();
        return if command.is_empty() {
            Step::Prose
        } else {
            Step::Command(command)
        };
    }
    if let Some(rest) = line.strip_prefix("write ") {
        if let Some((path, text)) = rest.split_once(':') {
            if !path.trim().is_empty() {
                return Step::Write {
                    path: path.trim(),
                    text: text.strip_prefix(' ').unwrap_or(text),
                };
            }
        }
        return Step::Prose;
    }
    if let Some(ms) = line.strip_prefix("sleep ") {
        return match ms.trim().parse::<u64>() {
            Ok(ms) => Step::Sleep(Duration::from_millis(ms).min(MAX_SLEEP)),
            Err(_) => Step::Prose,
        };
    }
    if let Some(n) = line.strip_prefix("stream ") {
        return match n.trim().parse::<u32>() {
            Ok(n) => Step::Stream(n.min(MAX_STREAM)),
            Err(_) => Step::Prose,
        };
    }
    if line.trim() == "recall" {
        return Step::Recall;
    }
    if let Some(reason) = line.strip_prefix("fail") {
        if reason.is_empty() || reason.starts_with(' ') {
            let reason = reason.trim();
            return Step::Fail(if reason.is_empty() { "failed" } else { reason });
        }
    }
    Step::Prose
}

/// Word-sized pieces that add up to `text` exactly.
pub fn word_chunks(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(' ')
}

pub struct DevAgent {
    /// Canonical, so writes can be checked against it.
    workspace: PathBuf,
    delay: Duration,
    /// Added to the environment of the commands it runs.
    env: AgentEnv,
    /// The session's prompts it knows of, oldest first: (author, first line).
    earlier: Vec<(String, String)>,
    /// Whom its commands run as, and who owns what it writes; `None`: the bridge's user.
    user: Option<AgentUser>,
}

/// The first line of a prompt, trimmed.
fn first_line(content: &str) -> &str {
    content.lines().next().unwrap_or("").trim()
}

impl DevAgent {
    pub fn new(
        workspace: PathBuf,
        delay: Duration,
        env: AgentEnv,
        user: Option<AgentUser>,
    ) -> Self {
        DevAgent {
            workspace,
            delay,
            env,
            earlier: Vec::new(),
            user,
        }
    }

    /// Takes in the transcript a prompt brings (it replaces what this agent knew: it describes
    /// the whole session before the prompt); returns the line that says so.
    fn take_transcript(&mut self, job: &PromptJob) -> Option<String> {
        let transcript = job.context.transcript.as_ref()?;
        if transcript.prompts.is_empty() {
            return None;
        }
        self.earlier = transcript
            .prompts
            .iter()
            .rev()
            .map(|p| (p.author.clone(), first_line(&p.content).to_owned()))
            .collect();
        // One fixed form, `prompts` even for one, so the line is easy to look for.
        let n = transcript.prompts.len();
        Some(match transcript.omitted {
            0 => format!("Context: {n} earlier prompts\n"),
            left_out => format!("Context: {n} earlier prompts ({left_out} more left out)\n"),
        })
    }

    /// Streams `text` in word-sized deltas; false when stopped meanwhile.
    async fn say(&self, sink: &EventSink, stop: &StopSignal, text: &str) -> bool {
        self.say_each(sink, stop, word_chunks(text).map(str::to_owned))
            .await
    }

    /// Streams each delta, one per delay; false when stopped meanwhile.
    async fn say_each(
        &self,
        sink: &EventSink,
        stop: &StopSignal,
        deltas: impl Iterator<Item = String>,
    ) -> bool {
        for delta in deltas {
            if stop.is_stopped() {
                return false;
            }
            sink.token(delta);
            if !self.delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(self.delay) => {}
                    _ = stop.stopped() => return false,
                }
            }
        }
        true
    }

    async fn run_prompt(&mut self, job: &PromptJob, sink: &EventSink, stop: StopSignal) -> Outcome {
        if let Some(line) = self.take_transcript(job) {
            if !self.say(sink, &stop, &line).await {
                return Outcome::Stopped;
            }
        }
        let earlier = self.earlier.clone();
        self.earlier
            .push((job.author.name.clone(), first_line(&job.content).to_owned()));
        let first_line = first_line(&job.content);
        if !self
            .say(sink, &stop, &format!("Working on: {first_line}\n"))
            .await
        {
            return Outcome::Stopped;
        }
        if let Some(summary) = context_summary(job) {
            if !self.say(sink, &stop, &format!("{summary}\n")).await {
                return Outcome::Stopped;
            }
        }
        let mut n_calls = 0;
        for line in job.content.lines() {
            if stop.is_stopped() {
                return Outcome::Stopped;
            }
            match parse_line(line) {
                Step::Prose => {}
                Step::Command(command) => {
                    n_calls += 1;
                    if let Some(outcome) = self.command(sink, &stop, command, n_calls).await {
                        return outcome;
                    }
                }
                Step::Write { path, text } => {
                    n_calls += 1;
                    self.write(sink, path, text, n_calls);
                }
                Step::Sleep(duration) => {
                    tokio::select! {
                        _ = tokio::time::sleep(duration) => {}
                        _ = stop.stopped() => return Outcome::Stopped,
                    }
                }
                Step::Stream(n) => {
                    if !self
                        .say_each(sink, &stop, (1..=n).map(|i| format!("{i} ")))
                        .await
                    {
                        return Outcome::Stopped;
                    }
                }
                Step::Fail(reason) => return Outcome::Failed(reason.to_string()),
                Step::Recall => {
                    let lines = if earlier.is_empty() {
                        vec!["No earlier prompts.\n".to_owned()]
                    } else {
                        earlier
                            .iter()
                            .map(|(author, line)| format!("Earlier prompt by {author}: {line}\n"))
                            .collect()
                    };
                    for line in lines {
                        if !self.say(sink, &stop, &line).await {
                            return Outcome::Stopped;
                        }
                    }
                }
            }
        }
        if stop.is_stopped() {
            return Outcome::Stopped;
        }
        Outcome::Completed
    }

    /// `Some` when the prompt ends here (stopped).
    async fn command(
        &self,
        sink: &EventSink,
        stop: &StopSignal,
        command: &str,
        n: usize,
    ) -> Option<Outcome> {
        let call_id = format!("call_{n}");
        let input = json!({ "command": command });
        sink.token(format!("$ {command}\n"));
        sink.tool(ToolUpdate {
            call_id: call_id.clone(),
            tool: "bash".into(),
            status: ToolStatus::Running,
            input: Some(input.clone()),
            output: None,
        });
        let (status, output, note) = match run_shell(
            command,
            &self.workspace,
            &self.env,
            self.user,
            TOOL_OUTPUT_LIMIT,
            stop.stopped(),
        )
        .await
        {
            Ok(ShellOutcome::Stopped) => {
                // Close the call, so no one is left watching a command that is gone.
                sink.tool(ToolUpdate {
                    call_id,
                    tool: "bash".into(),
                    status: ToolStatus::Error,
                    input: Some(input),
                    output: Some("stopped".into()),
                });
                return Some(Outcome::Stopped);
            }
            Ok(ShellOutcome::Exited { code, output, cut }) => {
                let status = if code == Some(0) {
                    ToolStatus::Completed
                } else {
                    ToolStatus::Error
                };
                let note = match code {
                    Some(code) => format!("exit {code}\n"),
                    None => "ended by a signal\n".to_string(),
                };
                (status, tool_output(&output, cut), note)
            }
            Err(e) => (
                ToolStatus::Error,
                format!("cannot run the command: {e}"),
                "could not run it\n".to_string(),
            ),
        };
        sink.tool(ToolUpdate {
            call_id,
            tool: "bash".into(),
            status,
            input: Some(input),
            output: Some(output),
        });
        sink.token(note);
        None
    }

    /// The file the bridge wrote, and the folders it made for it, become the agent's user's,
    /// as they would had the agent's own tool written them.
    fn give_to(&self, user: AgentUser, target: &std::path::Path) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::lchown(target, Some(user.uid), Some(user.gid))?;
        let mut dir = target.parent();
        while let Some(folder) =
            dir.filter(|d| d.starts_with(&self.workspace) && *d != self.workspace)
        {
            if std::fs::symlink_metadata(folder)?.uid() != user.uid {
                std::os::unix::fs::lchown(folder, Some(user.uid), Some(user.gid))?;
            }
            dir = folder.parent();
        }
        Ok(())
    }

    fn write(&self, sink: &EventSink, path: &str, text: &str, n: usize) {
        let content = format!("{text}\n");
        let result = resolve_for_write(&self.workspace, path).and_then(|target| {
            let old = std::fs::read_to_string(&target).ok();
            std::fs::write(&target, &content).map_err(Error::io(format!("cannot write {path}")))?;
            if let Some(user) = self.user {
                self.give_to(user, &target)
                    .map_err(Error::io(format!("cannot hand {path} over")))?;
            }
            Ok(old)
        });
        match result {
            Ok(old) => {
                let shown = crate::workspace::normalize_relative(path)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| path.to_string());
                sink.emit(AgentEvent::FileEdit {
                    diff: Some(whole_file_diff(&shown, old.as_deref(), &content)),
                    path: shown.clone(),
                });
                sink.token(format!("wrote {shown}\n"));
            }
            Err(error) => {
                sink.tool(ToolUpdate {
                    call_id: format!("call_{n}"),
                    tool: "write".into(),
                    status: ToolStatus::Error,
                    input: Some(json!({ "path": path })),
                    output: Some(error.to_string()),
                });
                sink.token(format!("could not write {path}: {error}\n"));
            }
        }
    }
}

impl Agent for DevAgent {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn start(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn run<'a>(
        &'a mut self,
        job: &'a PromptJob,
        sink: &'a EventSink,
        stop: StopSignal,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(self.run_prompt(job, sink, stop))
    }

    fn shutdown(&mut self) -> BoxFuture<'_, ()> {
        // Commands die with their prompt's stop; nothing else runs.
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::stop_pair;
    use protocol::bridge::{FromBridge, GitAuthor, PromptContext};
    use tokio::sync::mpsc;

    fn check(line: &str, expected: Step<'_>) {
        assert_eq!(parse_line(line), expected, "{line:?}");
    }

    #[test]
    fn line_parsing() {
        check("$ ls -la", Step::Command("ls -la"));
        check("$   ", Step::Prose);
        check("$ls", Step::Prose);
        check(
            "write notes.txt: hello",
            Step::Write {
                path: "notes.txt",
                text: "hello",
            },
        );
        check(
            "write a/b.txt:",
            Step::Write {
                path: "a/b.txt",
                text: "",
            },
        );
        check(
            "write a.txt: x: y",
            Step::Write {
                path: "a.txt",
                text: "x: y",
            },
        );
        check("write nothing", Step::Prose);
        check("sleep 250", Step::Sleep(Duration::from_millis(250)));
        check("sleep 999999", Step::Sleep(MAX_SLEEP));
        check("sleep soon", Step::Prose);
        check("stream 3", Step::Stream(3));
        check("stream 9999999", Step::Stream(MAX_STREAM));
        check("stream many", Step::Prose);
        check("fail out of coffee", Step::Fail("out of coffee"));
        check("fail", Step::Fail("failed"));
        check("recall", Step::Recall);
        check("recall everything", Step::Prose);
        check("failing tests are fine", Step::Prose);
        check("Please fix the bug", Step::Prose);
        assert_eq!(
            word_chunks("Working on: it\n").collect::<Vec<_>>(),
            ["Working ", "on: ", "it\n"]
        );
    }

    fn job(content: &str) -> PromptJob {
        PromptJob {
            message_id: "m1".into(),
            content: content.into(),
            author: GitAuthor {
                name: "Ada".into(),
                email: "ada@example.com".into(),
            },
            attachments: vec![],
            context: PromptContext::default(),
            push_branch: None,
        }
    }

    /// Runs a prompt on a fresh workspace; returns the outcome, the frames and the workspace.
    fn run(content: &str, stop_after: Option<Duration>) -> (Outcome, Vec<FromBridge>, PathBuf) {
        let workspace = std::env::temp_dir().join(crate::ids::random_id("bridge-dev-").unwrap());
        std::fs::create_dir_all(&workspace).unwrap();
        let workspace = workspace.canonicalize().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outcome = rt.block_on(async {
            let mut agent = DevAgent::new(workspace.clone(), Duration::ZERO, AgentEnv::new(), None);
            let sink = EventSink::new("m1".into(), tx);
            let (stop_tx, stop) = stop_pair();
            if let Some(after) = stop_after {
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = stop_tx.send(true);
                });
                agent.run(&job(content), &sink, stop).await
            } else {
                let outcome = agent.run(&job(content), &sink, stop).await;
                drop(stop_tx);
                outcome
            }
        });
        let mut frames = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            frames.push(frame);
        }
        (outcome, frames, workspace)
    }

    fn kinds(frames: &[FromBridge]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                FromBridge::Token { .. } => "token".to_string(),
                FromBridge::ToolCall { call, .. } => {
                    format!("tool:{}:{:?}", call.tool, call.status).to_lowercase()
                }
                FromBridge::FileEdit { edit, .. } => format!("edit:{}", edit.path),
                other => format!("{other:?}"),
            })
            .filter(|k| k != "token")
            .collect()
    }

    #[test]
    fn commands_writes_and_completion() {
        let (outcome, frames, workspace) = run(
            "Do things\n$ echo hi; echo oops >&2\nwrite sub/notes.txt: hello\n$ exit 4",
            None,
        );
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(
            kinds(&frames),
            [
                "tool:bash:running",
                "tool:bash:completed",
                "edit:sub/notes.txt",
                "tool:bash:running",
                "tool:bash:error"
            ]
        );
        let text: String = frames
            .iter()
            .filter_map(|f| match f {
                FromBridge::Token { delta, .. } => Some(delta.as_str()),
                _ => None,
            })
            .collect();
        assert!(text.starts_with("Working on: Do things\n"), "{text}");
        let calls: Vec<&FromBridge> = frames
            .iter()
            .filter(|f| !matches!(f, FromBridge::Token { .. }))
            .collect();
        match calls[1] {
            FromBridge::ToolCall { call, .. } => {
                assert_eq!(call.output.as_deref(), Some("hi\noops\n"));
                assert_eq!(
                    call.input,
                    Some(json!({"command": "echo hi; echo oops >&2"}))
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(workspace.join("sub/notes.txt")).unwrap(),
            "hello\n"
        );
        let _ = std::fs::remove_dir_all(&workspace);
    }

    #[test]
    fn escaping_writes_are_tool_errors() {
        let (outcome, frames, workspace) = run("write ../evil.txt: x", None);
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(kinds(&frames), ["tool:write:error"]);
        assert!(!workspace.parent().unwrap().join("evil.txt").exists());
        let _ = std::fs::remove_dir_all(&workspace);
    }

    #[test]
    fn fail_ends_the_prompt() {
        let (outcome, frames, workspace) = run("go\nfail no luck\n$ echo never", None);
        assert_eq!(outcome, Outcome::Failed("no luck".into()));
        assert!(kinds(&frames).is_empty());
        let _ = std::fs::remove_dir_all(&workspace);
    }

    #[test]
    fn stop_interrupts_a_sleep() {
        let (outcome, _, workspace) = run("sleep 60000", Some(Duration::from_millis(50)));
        assert_eq!(outcome, Outcome::Stopped);
        let _ = std::fs::remove_dir_all(&workspace);
    }

    #[test]
    fn stop_interrupts_a_command_and_closes_its_call() {
        let (outcome, frames, workspace) = run("$ sleep 60", Some(Duration::from_millis(200)));
        assert_eq!(outcome, Outcome::Stopped);
        // Unless the stop came before the command started, the call is opened and closed.
        let kinds = kinds(&frames);
        assert!(
            kinds.is_empty() || kinds == ["tool:bash:running", "tool:bash:error"],
            "{kinds:?}"
        );
        let _ = std::fs::remove_dir_all(&workspace);
    }

    #[test]
    fn a_transcript_is_announced_and_recalled() {
        use protocol::bridge::{Transcript, TranscriptPrompt};
        let workspace = std::env::temp_dir().join(crate::ids::random_id("bridge-dev-").unwrap());
        std::fs::create_dir_all(&workspace).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let earlier = |id: &str, author: &str, content: &str| TranscriptPrompt {
            message_id: id.into(),
            author: author.into(),
            content: content.into(),
            status: "completed".into(),
            answer: String::new(),
            tool_calls: vec![],
            files_edited: vec![],
        };
        let mut first = job("recall");
        first.context.transcript = Some(Transcript {
            // Most recent first.
            prompts: vec![
                earlier("m2", "Bob", "second thing"),
                earlier("m1", "Ada", "the blue door\nmore"),
            ],
            omitted: 0,
        });
        let mut second = job("recall");
        second.message_id = "m4".into();
        let texts: Vec<String> = rt.block_on(async {
            let mut agent = DevAgent::new(workspace, Duration::ZERO, AgentEnv::new(), None);
            let mut texts = Vec::new();
            for job in [&first, &second] {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let sink = EventSink::new(job.message_id.clone(), tx);
                let (_stop_tx, stop) = stop_pair();
                assert_eq!(agent.run(job, &sink, stop).await, Outcome::Completed);
                let mut text = String::new();
                while let Ok(frame) = rx.try_recv() {
                    if let FromBridge::Token { delta, .. } = frame {
                        text.push_str(&delta);
                    }
                }
                texts.push(text);
            }
            texts
        });
        assert_eq!(
            texts[0],
            "Context: 2 earlier prompts\nWorking on: recall\nEarlier prompt by Ada: the blue door\nEarlier prompt by Bob: second thing\n"
        );
        // The next prompt of the same sandbox brings no transcript; the agent still knows.
        assert_eq!(
            texts[1],
            "Working on: recall\nEarlier prompt by Ada: the blue door\nEarlier prompt by Bob: second thing\nEarlier prompt by Ada: recall\n"
        );
    }
}
