//! Runs prompts one at a time on the agent, in the order they arrive, whatever happens to the
//! connection meanwhile; every prompt ends with exactly one `done` frame.

use crate::agent::{Agent, EventSink, Outcome, StopSignal};
use crate::git;
use protocol::bridge::{FromBridge, PromptJob};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

pub struct Job {
    pub prompt: PromptJob,
    pub stop: StopSignal,
}

pub struct Worker {
    pub agent: Box<dyn Agent>,
    pub workspace: PathBuf,
    pub attribution: String,
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
                crate::log!("worker", "prompt {message_id} started");
                self.agent.run(&job.prompt, &sink, job.stop).await
            };
            crate::log!("worker", "prompt {message_id} finished: {outcome:?}");
            let _ = frames.send(outcome.into_done(message_id));
        }
        self.agent.shutdown().await;
    }
}

/// The prompt's author becomes the workspace's git identity; when that fails the prompt still
/// runs, with an error frame saying why commits may be misattributed.
async fn set_identity(workspace: &Path, attribution: &str, prompt: &PromptJob, sink: &EventSink) {
    let name = format!("{}{attribution}", prompt.author.name);
    if let Err(error) = git::set_identity(workspace, &name, &prompt.author.email).await {
        crate::log!("worker", "cannot set the git identity: {error}");
        sink.emit(crate::agent::AgentEvent::Error(format!(
            "cannot set the git identity: {error}"
        )));
    }
}
