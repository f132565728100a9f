//! Drives an OpenCode server (v1 routes, as in opencode-ai 1.18): starts `opencode serve` in
//! the workspace (or uses one at `OPENCODE_URL`), keeps one OpenCode session for the bridge's
//! life, posts each prompt with `prompt_async` and follows `GET /event` until the session is
//! idle again. The mapping of events lives in [`super::opencode_events`].

use super::opencode_events::{EventMapper, Mapped};
use super::{context_text, Agent, AgentEvent, BoxFuture, EventSink, Outcome, StopSignal};
use crate::config::OpenCodeConfig;
use crate::http::{self, HttpUrl};
use crate::sse::SseParser;
use base64::Engine;
use protocol::bridge::PromptJob;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A fresh OpenCode installs nothing offline but still takes a few seconds to answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
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
    version: String,
    running: Option<Running>,
}

/// A server the agent can talk to, with its event subscription and its session.
struct Running {
    base: HttpUrl,
    /// `Some` when this agent started the server.
    child: Option<Child>,
    auth: Option<String>,
    events: mpsc::UnboundedReceiver<Value>,
    pump: JoinHandle<()>,
    mapper: EventMapper,
    /// The last prompt failed or was aborted, and OpenCode may still be winding it down.
    winding_down: bool,
}

impl OpenCodeAgent {
    pub fn new(config: OpenCodeConfig, workspace: PathBuf) -> Self {
        OpenCodeAgent {
            config,
            workspace,
            version: String::new(),
            running: None,
        }
    }

    async fn ensure_started(&mut self) -> Result<&mut Running, String> {
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
            .ok_or_else(|| "OpenCode is not running".to_string())
    }

    async fn launch(&mut self) -> Result<Running, String> {
        let auth = basic_auth();
        let (base, mut child) = match &self.config.url {
            Some(url) => (HttpUrl::parse(url)?, None),
            None => {
                let port = free_port()?;
                let child = self.spawn_server(port)?;
                (
                    HttpUrl::parse(&format!("http://127.0.0.1:{port}/"))?,
                    Some(child),
                )
            }
        };
        let started = async {
            self.version = wait_healthy(&base, auth.as_deref(), child.as_mut()).await?;
            let (events, pump) = subscribe(&base, auth.clone()).await?;
            let session_id = match create_session(&base, auth.as_deref()).await {
                Ok(session_id) => session_id,
                Err(e) => {
                    pump.abort();
                    return Err(e);
                }
            };
            crate::log!(
                "opencode",
                "OpenCode {} ready at {}:{}, session {session_id}",
                self.version,
                base.host,
                base.port
            );
            let workspace = self.workspace.to_string_lossy().into_owned();
            Ok::<_, String>((events, pump, EventMapper::new(session_id, workspace)))
        }
        .await;
        match started {
            Ok((events, pump, mapper)) => Ok(Running {
                base,
                child,
                auth,
                events,
                pump,
                mapper,
                winding_down: false,
            }),
            Err(e) => {
                if let Some(mut child) = child {
                    crate::process::terminate_group(&mut child, Duration::from_secs(3)).await;
                }
                Err(e)
            }
        }
    }

    fn spawn_server(&self, port: u16) -> Result<Child, String> {
        let mut cmd = tokio::process::Command::new(&self.config.bin);
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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so stopping it also ends the tools it started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", self.config.bin))?;
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
        let running = match self.ensure_started().await {
            Ok(running) => running,
            Err(e) => return Outcome::Failed(format!("OpenCode is not available: {e}")),
        };
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
            return Outcome::Failed(e);
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
    fn headers(&self) -> Vec<(&str, &str)> {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ];
        if let Some(auth) = &self.auth {
            headers.push(("Authorization", auth.as_str()));
        }
        headers
    }

    async fn post_prompt(&mut self, body: &Value) -> Result<(), String> {
        let bytes = body.to_string().into_bytes();
        for attempt in 0..2 {
            let path = format!("/session/{}/prompt_async", self.mapper.session_id());
            let response = http::request(
                "POST",
                &self.base.with_path(&path),
                &self.headers(),
                Some(&bytes),
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|e| format!("cannot send the prompt to OpenCode: {e}"))?;
            match response.status {
                200..=299 => return Ok(()),
                // The session is gone (a restarted server): a new one, once.
                404 if attempt == 0 => {
                    let session_id = create_session(&self.base, self.auth.as_deref()).await?;
                    crate::log!(
                        "opencode",
                        "the session was gone; continuing in {session_id}"
                    );
                    self.mapper.move_to_session(session_id);
                }
                status => {
                    let (detail, _) = crate::process::cut_text(
                        std::str::from_utf8(&response.body).unwrap_or(""),
                        500,
                    );
                    return Err(format!(
                        "OpenCode refused the prompt: HTTP {status} {detail}"
                    ));
                }
            }
        }
        Err("OpenCode refused the prompt".into())
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
        let url = self.base.with_path("/session/status");
        while tokio::time::Instant::now() < deadline {
            let busy =
                match http::request("GET", &url, &self.headers(), None, REQUEST_TIMEOUT).await {
                    Ok(response) if response.status == 200 => {
                        serde_json::from_slice::<Value>(&response.body)
                            .ok()
                            .and_then(|statuses| {
                                statuses
                                    .get(self.mapper.session_id())
                                    .and_then(|s| s.get("type"))
                                    .and_then(Value::as_str)
                                    .map(|kind| kind != "idle")
                            })
                            .unwrap_or(false)
                    }
                    // An older server without this route: go ahead.
                    _ => false,
                };
            if !busy {
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
        let body = json!({
            "reply": "reject",
            "message": "This runs in an unattended sandbox; stay inside the workspace and do without this.",
        })
        .to_string();
        match http::request(
            "POST",
            &self.base.with_path(&format!("/permission/{id}/reply")),
            &self.headers(),
            Some(body.as_bytes()),
            REQUEST_TIMEOUT,
        )
        .await
        {
            Ok(response) if (200..300).contains(&response.status) => {}
            Ok(response) => crate::log!(
                "opencode",
                "the permission reply answered HTTP {}",
                response.status
            ),
            Err(e) => crate::log!("opencode", "cannot answer the permission request: {e}"),
        }
    }

    async fn abort(&self) {
        let path = format!("/session/{}/abort", self.mapper.session_id());
        match http::request(
            "POST",
            &self.base.with_path(&path),
            &self.headers(),
            None,
            REQUEST_TIMEOUT,
        )
        .await
        {
            Ok(response) if (200..300).contains(&response.status) => {}
            Ok(response) => crate::log!("opencode", "abort answered HTTP {}", response.status),
            Err(e) => crate::log!("opencode", "cannot abort: {e}"),
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

    fn start(&mut self) -> BoxFuture<'_, Result<(), String>> {
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

/// `OPENCODE_SERVER_PASSWORD` protects a server with basic auth; the bridge then uses it too.
fn basic_auth() -> Option<String> {
    let password = std::env::var("OPENCODE_SERVER_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())?;
    let username = std::env::var("OPENCODE_SERVER_USERNAME")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "opencode".into());
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    Some(format!("Basic {encoded}"))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

async fn forward_lines(stream: impl tokio::io::AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        crate::log!("opencode", "| {line}");
    }
}

/// Polls `GET /global/health` until the server answers; returns its version.
async fn wait_healthy(
    base: &HttpUrl,
    auth: Option<&str>,
    mut child: Option<&mut Child>,
) -> Result<String, String> {
    let url = base.with_path("/global/health");
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    let mut last_error = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("opencode serve exited ({status})"));
            }
        }
        match http::request("GET", &url, &headers, None, Duration::from_secs(5)).await {
            Ok(response) if response.status == 200 => {
                let health: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
                return Ok(health
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string());
            }
            Ok(response) => last_error = format!("HTTP {}", response.status),
            Err(e) => last_error = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "OpenCode did not answer within {STARTUP_TIMEOUT:?} ({last_error})"
    ))
}

async fn create_session(base: &HttpUrl, auth: Option<&str>) -> Result<String, String> {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    let response = http::request(
        "POST",
        &base.with_path("/session"),
        &headers,
        Some(b"{}"),
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(|e| format!("cannot create an OpenCode session: {e}"))?;
    if !(200..300).contains(&response.status) {
        return Err(format!(
            "cannot create an OpenCode session: HTTP {}",
            response.status
        ));
    }
    let session: Value = serde_json::from_slice(&response.body)
        .map_err(|e| format!("OpenCode's session is not JSON: {e}"))?;
    session
        .get("id")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| "OpenCode's session has no id".into())
}

/// Opens `GET /event` and keeps it open in a task, reopening it if it drops; returns once the
/// first event arrived, so nothing a prompt causes can be missed.
async fn subscribe(
    base: &HttpUrl,
    auth: Option<String>,
) -> Result<(mpsc::UnboundedReceiver<Value>, JoinHandle<()>), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let url = base.with_path("/event");
    let pump = tokio::spawn(async move {
        let mut first = Some(first_tx);
        loop {
            let reason = pump_once(&url, auth.as_deref(), &tx, &mut first).await;
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
            Err("OpenCode's event stream did not open".into())
        }
    }
}

async fn pump_once(
    url: &HttpUrl,
    auth: Option<&str>,
    tx: &mpsc::UnboundedSender<Value>,
    first: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> String {
    let mut headers = vec![("Accept", "text/event-stream")];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    let mut body = match http::send("GET", url, &headers, None, REQUEST_TIMEOUT).await {
        Ok(body) if body.status == 200 => body,
        Ok(body) => return format!("HTTP {}", body.status),
        Err(e) => return e,
    };
    let mut parser = SseParser::default();
    loop {
        match body.next_chunk().await {
            Ok(Some(bytes)) => {
                for event in parser.feed(&bytes) {
                    let Ok(value) = serde_json::from_str::<Value>(&event.data) else {
                        continue;
                    };
                    if tx.send(value).is_err() {
                        return "closed".into();
                    }
                    if let Some(first) = first.take() {
                        let _ = first.send(());
                    }
                }
            }
            Ok(None) => return "end of stream".into(),
            Err(e) => return e,
        }
    }
}
