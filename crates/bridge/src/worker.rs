//! Runs prompts one at a time on the agent, in the order they arrive, whatever happens to the
//! connection meanwhile; every prompt ends with exactly one `done` frame, preceded by `pushed`
//! when its work went to the session branch.

use crate::agent::{Agent, EventSink, Outcome, StopSignal};
use crate::agent_config::Memory;
use crate::git;
use crate::publish::{Publisher, Start};
use protocol::bridge::{FromBridge, PromptJob};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

pub struct Job {
    pub prompt: PromptJob,
    pub stop: StopSignal,
}

pub struct Worker {
    pub agent: Box<dyn Agent>,
    /// The memory server's file, linked to the session owner's memory by the first prompt.
    pub memory: Memory,
    pub workspace: PathBuf,
    pub attribution: String,
    pub publisher: Publisher,
}

impl Worker {
    /// Until `jobs` closes; then the agent is shut down.
    pub async fn work(
        mut self,
        mut jobs: mpsc::UnboundedReceiver<Job>,
        frames: mpsc::UnboundedSender<FromBridge>,
    ) {
        while let Some(job) = jobs.recv().await {
            let message_id = job.prompt.message_id.clone();
            let sink = EventSink::new(message_id.clone(), frames.clone());
            let outcome = if job.stop.is_stopped() {
                Outcome::Stopped
            } else {
                set_identity(&self.workspace, &self.attribution, &job.prompt, &sink).await;
                if let Some(scope) = &job.prompt.context.memory {
                    if let Err(why) = self.memory.link(scope) {
                        report(&sink, format!("the agent's memory is not kept: {why}"));
                    }
                }
                let start = self
                    .publisher
                    .start(&job.prompt)
                    .await
                    .unwrap_or_else(|why| {
                        report(&sink, why);
                        None
                    });
                crate::log!("worker", "prompt {message_id} started");
                let outcome = self.agent.run(&job.prompt, &sink, job.stop).await;
                // Whatever the outcome: the work it left in the workspace is kept on the branch.
                if let Some(start) = start {
                    self.publish(&job.prompt, start, &sink, &frames).await;
                }
                outcome
            };
            crate::log!("worker", "prompt {message_id} finished: {outcome:?}");
            let _ = frames.send(outcome.into_done(message_id));
        }
        self.agent.shutdown().await;
    }

    /// Commits and pushes; `pushed` (or the error) goes out before the prompt's `done`.
    async fn publish(
        &mut self,
        prompt: &PromptJob,
        start: Start,
        sink: &EventSink,
        frames: &mpsc::UnboundedSender<FromBridge>,
    ) {
        match self.publisher.finish(prompt, start).await {
            Ok(None) => {}
            Ok(Some(pushed)) => {
                let _ = frames.send(FromBridge::Pushed {
                    message_id: prompt.message_id.clone(),
                    branch: pushed.branch,
                    commit: pushed.commit,
                    files_changed: pushed.stat.files_changed,
                    additions: pushed.stat.additions,
                    deletions: pushed.stat.deletions,
                    ack_id: String::new(),
                });
            }
            Err(why) => report(sink, why),
        }
    }
}

fn report(sink: &EventSink, why: String) {
    crate::log!("worker", "{why}");
    sink.emit(crate::agent::AgentEvent::Error(why));
}

/// The prompt's author becomes the workspace's git identity; when that fails the prompt still
/// runs, with an error frame saying why commits may be misattributed.
async fn set_identity(workspace: &Path, attribution: &str, prompt: &PromptJob, sink: &EventSink) {
    let name = format!("{}{attribution}", prompt.author.name);
    if let Err(error) = git::set_identity(workspace, &name, &prompt.author.email).await {
        report(sink, format!("cannot set the git identity: {error}"));
    }
}
