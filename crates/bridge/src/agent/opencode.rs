//! Drives an OpenCode server (v1 routes, as in opencode-ai 1.18): starts `opencode serve` in
//! the workspace (or uses one at `OPENCODE_URL`), keeps one OpenCode session for the bridge's
//! life, posts each prompt with `prompt_async` and follows `GET /event` until the session is
//! idle again. The mapping of events lives in [`super::opencode_events`].

use super::opencode_api::{Api, PromptAnswer};
use super::opencode_events::{EventMapper, Mapped};
use super::{
    context_text, transcript_text, Agent, AgentEvent, BoxFuture, EventSink, Outcome, StopSignal,
};
use crate::agent_config::{self, AgentSettings};
use crate::config::{AgentEnv, AgentFiles, OpenCodeConfig};
use crate::error::{Error, Result};
use futures_util::StreamExt;
use protocol::bridge::PromptJob;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A fresh OpenCode installs nothing offline but still takes a few seconds to answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the event stream may take to say `server.connected` after it is opened.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a prompt waits for the previous one to wind down in OpenCode.
const IDLE_WAIT: Duration = Duration::from_secs(10);
/// After a failed or aborted prompt, OpenCode is taken to be done once its events pause this long.
const QUIET: Duration = Duration::from_millis(500);
/// How long a stopped prompt waits for OpenCode to confirm the abort.
const ABORT_SETTLE: Duration = Duration::from_secs(5);

pub struct OpenCodeAgent {
    config: OpenCodeConfig,
    workspace: PathBuf,
    /// Added to the environment of the `opencode serve` this agent starts.
    env: AgentEnv,
    /// Where its configuration (`AGENTS.md`, `opencode.json`) is written before it starts.
    files: AgentFiles,
    /// Whom `opencode serve` (and so every tool it runs) runs as; `None`: the bridge's user.
    user: Option<crate::process::AgentUser>,
    version: String,
    running: Option<Running>,
    /// The transcript the session's first prompt here brought, as text; given to every new
    /// OpenCode session of this sandbox before its first prompt.
    transcript: Option<String>,
}

/// A server the agent can talk to, with its event subscription and its session.
struct Running {
    api: Arc<Api>,
    /// `Some` when this agent started the server.
    child: Option<Child>,
    events: mpsc::UnboundedReceiver<Value>,
    pump: JoinHandle<()>,
    mapper: EventMapper,
    /// The last prompt failed or was aborted, and OpenCode may still be winding it down.
    winding_down: bool,
    /// The OpenCode session the transcript was given to.
    context_given: Option<String>,
}

impl OpenCodeAgent {
    pub fn new(
        config: OpenCodeConfig,
        workspace: PathBuf,
        env: AgentEnv,
        files: AgentFiles,
    ) -> Self {
        OpenCodeAgent {
            config,
            workspace,
            env,
            files,
            user: None,
            version: String::new(),
            running: None,
            transcript: None,
        }
    }

    /// The server runs as `user`.
    pub fn run_as(mut self, user: Option<crate::process::AgentUser>) -> Self {
        self.user = user;
        self
    }

    /// Writes `AGENTS.md` and `opencode.json` into OpenCode's global config folder in the
    /// sandbox's home (never the workspace), with the MCP servers this sandbox can run.
    fn write_config(&self) -> Result<()> {
        let path = std::env::var_os("PATH");
        let settings = AgentSettings {
            workspace: self.workspace.clone(),
            memory_file: agent_config::Memory::new(&self.files.home, None).file,
            chromium: self.files.chromium.clone(),
            github_mcp_url: self.files.github_mcp_url.clone(),
            sentry_mcp_url: self.files.sentry_mcp_url.clone(),
            linear_mcp_url: self.files.linear_mcp_url.clone(),
        };
        let config = agent_config::opencode_config(
            &settings,
            |key| self.env.iter().any(|(name, _)| name == key),
            |program| agent_config::installed(program, path.as_ref()),
        );
        let xdg = self
            .env
            .iter()
            .find(|(name, _)| name == "XDG_CONFIG_HOME")
            .map(|(_, value)| PathBuf::from(value));
        let dir = agent_config::opencode_config_dir(&self.files.home, xdg.as_deref());
        agent_config::write_opencode_files(&dir, &config, self.user)?;
        let servers: Vec<&str> = config["mcp"]
            .as_object()
            .map(|servers| servers.keys().map(String::as_str).collect())
            .unwrap_or_default();
        crate::log!(
            "opencode",
            "configuration in {}: MCP servers {}",
            dir.display(),
            if servers.is_empty() {
                "none".to_owned()
            } else {
                servers.join(", ")
            }
        );
        Ok(())
    }

    async fn ensure_started(&mut self) -> Result<&mut Running> {
        if let Some(running) = &mut self.running {
            let exited = match &mut running.child {
                Some(child) => child.try_wait().ok().flatten().is_some(),
                None => false,
            };
            if exited {
                crate::log!(
                    "opencode",
                    "the OpenCode server has exited; starting it again"
                );
                if let Some(old) = self.running.take() {
                    old.stop().await;
                }
            }
        }
        if self.running.is_none() {
            let running = self.launch().await?;
            self.running = Some(running);
        }
        self.running
            .as_mut()
            .ok_or_else(|| Error::Invalid("OpenCode is not running".into()))
    }

    async fn launch(&mut self) -> Result<Running> {
        let (api, mut child) = match &self.config.url {
            Some(url) => (Api::new(url)?, None),
            None => {
                self.write_config()?;
                let port = free_port()?;
                let api = Api::new(&format!("http://127.0.0.1:{port}/"))?;
                (api, Some(self.spawn_server(port)?))
            }
        };
        let api = Arc::new(api);
        let started = async {
            self.version = wait_healthy(&api, child.as_mut()).await?;
            let (events, pump) = subscribe(api.clone()).await?;
            let session_id = match api.create_session().await {
                Ok(session_id) => session_id,
                Err(e) => {
                    pump.abort();
                    return Err(e);
                }
            };
            crate::log!(
                "opencode",
                "OpenCode {} ready at {}, session {session_id}",
                self.version,
                api.address()
            );
            let workspace = self.workspace.to_string_lossy().into_owned();
            Ok((events, pump, EventMapper::new(session_id, workspace)))
        }
        .await;
        match started {
            Ok((events, pump, mapper)) => Ok(Running {
                api,
                child,
                events,
                pump,
                mapper,
                winding_down: false,
                context_given: None,
            }),
            Err(e) => {
                if let Some(mut child) = child {
                    crate::process::terminate_group(&mut child, Duration::from_secs(3)).await;
                }
                Err(e)
            }
        }
    }

    fn spawn_server(&self, port: u16) -> Result<Child> {
        let mut cmd = tokio::process::Command::new(&self.config.bin);
        crate::process::run_as(&mut cmd, self.user);
        crate::process::die_with_parent(&mut cmd);
        let mut child = cmd
            .args([
                "serve",
                "--port",
                &port.to_string(),
                "--hostname",
                "127.0.0.1",
            ])
            .current_dir(&self.workspace)
            .env_remove("SANDBOX_TOKEN")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so stopping it also ends the tools it started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(Error::io(format!("cannot start {:?}", self.config.bin)))?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward_lines(stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_lines(stderr));
        }
        Ok(child)
    }

    async fn run_prompt(&mut self, job: &PromptJob, sink: &EventSink, stop: StopSignal) -> Outcome {
        let model = self.config.model.clone();
        if let Some(transcript) = &job.context.transcript {
            self.transcript = transcript_text(transcript);
        }
        let transcript = self.transcript.clone();
        let running = match self.ensure_started().await {
            Ok(running) => running,
            Err(e) => return Outcome::Failed(format!("OpenCode is not available: {e}")),
        };
        if let Some(transcript) = transcript {
            running.give_context(&transcript, sink).await;
        }
        let mut text = job.content.clone();
        if let Some(context) = context_text(job) {
            text.push_str("\n\n");
            text.push_str(&context);
        }
        let mut body = json!({ "parts": [{ "type": "text", "text": text }] });
        if let Some((provider_id, model_id)) = &model {
            body["model"] = json!({ "providerID": provider_id, "modelID": model_id });
        }
        running.wait_until_idle().await;
        running.mapper.begin_prompt(&text);
        if let Err(e) = running.post_prompt(&body).await {
            running.mapper.end_prompt();
            return Outcome::Failed(e.to_string());
        }
        loop {
            tokio::select! {
                event = running.events.recv() => {
                    let Some(event) = event else {
                        return Outcome::Failed("the OpenCode event stream ended".into());
                    };
                    for mapped in running.mapper.map(&event) {
                        match mapped {
                            Mapped::Event(event) => sink.emit(event),
                            Mapped::Finished(outcome) => {
                                running.winding_down = outcome != Outcome::Completed;
                                return outcome;
                            }
                            Mapped::PermissionAsked { id, what } => {
                                sink.emit(AgentEvent::Error(format!(
                                    "OpenCode asked for permission ({what}); refused, since no one can approve it inside the sandbox"
                                )));
                                running.refuse_permission(&id).await;
                            }
                        }
                    }
                }
                _ = stop.stopped() => {
                    for event in running.mapper.close_running_calls("stopped") {
                        sink.emit(event);
                    }
                    running.abort().await;
                    running.settle().await;
                    running.winding_down = true;
                    return Outcome::Stopped;
                }
                _ = exited(&mut running.child) => {
                    return Outcome::Failed("the OpenCode server exited".into());
                }
            }
        }
    }
}

impl Running {
    /// The transcript, as a message of the session that asks for no answer (`noReply`), once
    /// per OpenCode session: the model reads it with every later prompt. A failure is reported
    /// and the prompt runs without it.
    async fn give_context(&mut self, transcript: &str, sink: &EventSink) {
        let session_id = self.mapper.session_id().to_owned();
        if self.context_given.as_deref() == Some(session_id.as_str()) {
            return;
        }
        let body = json!({
            "noReply": true,
            "parts": [{ "type": "text", "text": transcript }],
        });
        match self.api.add_message(&session_id, &body).await {
            Ok(message_id) => {
                // Its events are history, not the next prompt's.
                if let Some(id) = message_id {
                    self.mapper.forget_message(id);
                }
                self.context_given = Some(session_id);
            }
            Err(e) => sink.emit(AgentEvent::Error(format!(
                "the session's transcript could not be given to OpenCode: {e}"
            ))),
        }
    }

    async fn post_prompt(&mut self, body: &Value) -> Result<()> {
        match self
            .api
            .prompt_async(self.mapper.session_id(), body)
            .await?
        {
            PromptAnswer::Accepted => Ok(()),
            // The session is gone (a restarted server): a new one, once.
            PromptAnswer::SessionGone => {
                let session_id = self.api.create_session().await?;
                crate::log!(
                    "opencode",
                    "the session was gone; continuing in {session_id}"
                );
                self.mapper.move_to_session(session_id);
                match self
                    .api
                    .prompt_async(self.mapper.session_id(), body)
                    .await?
                {
                    PromptAnswer::Accepted => Ok(()),
                    PromptAnswer::SessionGone => Err(Error::Status {
                        action: "OpenCode refused the prompt",
                        status: 404,
                        detail: String::new(),
                    }),
                }
            }
        }
    }

    /// OpenCode stores but never answers a prompt posted while the session is still winding
    /// down the previous one. `GET /session/status` must not list it as busy; and after a
    /// failure or an abort, which OpenCode reports idle before it is done (seen with 1.18.33),
    /// its events must also have gone quiet for a moment. Events read here only tell the
    /// mapper which messages are old.
    async fn wait_until_idle(&mut self) {
        let deadline = tokio::time::Instant::now() + IDLE_WAIT;
        while let Ok(event) = self.events.try_recv() {
            self.mapper.map(&event);
        }
        if std::mem::take(&mut self.winding_down) {
            while let Ok(Some(event)) = tokio::time::timeout_at(
                (tokio::time::Instant::now() + QUIET).min(deadline),
                self.events.recv(),
            )
            .await
            {
                self.mapper.map(&event);
            }
        }
        while tokio::time::Instant::now() < deadline {
            if !self.api.is_busy(self.mapper.session_id()).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        crate::log!(
            "opencode",
            "the session is still busy after {IDLE_WAIT:?}; sending the prompt anyway"
        );
    }

    /// A prompt must never wait for a person: whatever OpenCode asks is refused, and the
    /// model hears why.
    async fn refuse_permission(&self, id: &str) {
        let reason =
            "This runs in an unattended sandbox; stay inside the workspace and do without this.";
        if let Err(e) = self.api.reject_permission(id, reason).await {
            crate::log!("opencode", "{e}");
        }
    }

    async fn abort(&self) {
        if let Err(e) = self.api.abort(self.mapper.session_id()).await {
            crate::log!("opencode", "{e}");
        }
    }

    /// After an abort OpenCode still reports the prompt's end (an `Aborted` error, idle);
    /// those are read here, so the next prompt does not take them for its own.
    async fn settle(&mut self) {
        let drained = tokio::time::timeout(ABORT_SETTLE, async {
            while let Some(event) = self.events.recv().await {
                if self
                    .mapper
                    .map(&event)
                    .iter()
                    .any(|m| matches!(m, Mapped::Finished(_)))
                {
                    return;
                }
            }
        })
        .await;
        if drained.is_err() {
            crate::log!(
                "opencode",
                "the session did not report its end after the abort"
            );
        }
        self.mapper.end_prompt();
    }

    async fn stop(mut self) {
        self.pump.abort();
        if let Some(child) = &mut self.child {
            crate::process::terminate_group(child, Duration::from_secs(3)).await;
        }
    }
}

/// Resolves when the server this agent started exits; never for one it did not start.
async fn exited(child: &mut Option<Child>) {
    match child {
        Some(child) => {
            let _ = child.wait().await;
        }
        None => std::future::pending().await,
    }
}

impl Agent for OpenCodeAgent {
    fn name(&self) -> &'static str {
        "opencode"
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn start(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { self.ensure_started().await.map(|_| ()) })
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
        Box::pin(async {
            if let Some(running) = self.running.take() {
                running.stop().await;
            }
        })
    }
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(Error::io("cannot find a free port"))
}

async fn forward_lines(stream: impl tokio::io::AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        crate::log!("opencode", "| {line}");
    }
}

/// Polls `GET /global/health` until the server answers; returns its version.
async fn wait_healthy(api: &Api, mut child: Option<&mut Child>) -> Result<String> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    let mut last_error = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Exited {
                    what: "opencode serve",
                    status,
                });
            }
        }
        match api.version().await {
            Ok(version) => return Ok(version),
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::NoAnswer {
        what: "OpenCode",
        limit: STARTUP_TIMEOUT,
        last_error,
    })
}

/// Opens `GET /event` and keeps it open in a task, reopening it if it drops; returns once the
/// first event arrived, so nothing a prompt causes can be missed.
async fn subscribe(api: Arc<Api>) -> Result<(mpsc::UnboundedReceiver<Value>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let pump = tokio::spawn(async move {
        let mut first = Some(first_tx);
        loop {
            let reason = pump_once(&api, &tx, &mut first).await;
            if tx.is_closed() {
                return;
            }
            crate::log!("opencode", "event stream ended ({reason}); reopening");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, first_rx).await {
        Ok(Ok(())) => Ok((rx, pump)),
        _ => {
            pump.abort();
            Err(Error::TimedOut {
                what: "opening OpenCode's event stream",
                limit: SUBSCRIBE_TIMEOUT,
            })
        }
    }
}

/// Forwards one opening of the event stream; returns why it ended.
async fn pump_once(
    api: &Api,
    tx: &mpsc::UnboundedSender<Value>,
    first: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> String {
    let mut events = match api.events().await {
        Ok(events) => events,
        Err(e) => return e.to_string(),
    };
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => return e.to_string(),
        };
        if tx.send(event).is_err() {
            return "closed".into();
        }
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
    }
    "end of stream".into()
}
