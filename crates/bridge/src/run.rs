//! `bridge run`: dials the session room, keeps dialing while the process lives, and routes
//! frames between the room, the outbox and the worker that drives the agent.

use crate::agent::{stop_pair, Agent};
use crate::agent_config::Memory;
use crate::backoff::Backoff;
use crate::budget::{ErrorBudget, Verdict};
use crate::config::RunConfig;
use crate::credentials::relay::{Coordinator, Relay};
use crate::credentials::Redactor;
use crate::error::{Error, Result};
use crate::journal::{Journal, JournalFile};
use crate::outbox::Outbox;
use crate::prompts::Prompts;
use crate::publish::Publisher;
use crate::repo;
use crate::worker::{Job, Worker};
use futures_util::{SinkExt, StreamExt};
use protocol::bridge::{FromBridge, ToBridge, SANDBOX_ID_HEADER};
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A dial that has not finished by then is abandoned and tried again.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the agent gets to finish a stopped prompt before the process exits anyway.
const WORKER_GRACE: Duration = Duration::from_secs(10);

/// Exit codes of `bridge run`.
pub const EXIT_OK: i32 = 0;
pub const EXIT_REFUSED: i32 = 3;
/// The bridge could not start at all (no random ack ids).
pub const EXIT_FAILED: i32 = 1;

/// The room's address for this sandbox: `ws(s)://…/v1/sessions/{session}/sandbox`.
pub fn sandbox_ws_url(base: &str, session_id: &str) -> Result<String> {
    let base = base.trim_end_matches('/');
    let (scheme, rest) = [
        ("https://", "wss://"),
        ("http://", "ws://"),
        ("wss://", "wss://"),
        ("ws://", "ws://"),
    ]
    .iter()
    .find_map(|(from, to)| base.strip_prefix(from).map(|rest| (*to, rest)))
    .ok_or_else(|| Error::Invalid(format!("not an http(s) URL: {base:?}")))?;
    if rest.is_empty() {
        return Err(Error::Invalid(format!("no host in {base:?}")));
    }
    Ok(format!("{scheme}{rest}/v1/sessions/{session_id}/sandbox"))
}

#[derive(Debug)]
enum DialError {
    /// The room said no for good (401, 403, 410).
    Refused(u16),
    Failed(String),
}

async fn dial(config: &RunConfig, url: &str) -> Result<Socket, DialError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| DialError::Failed(format!("bad URL: {e}")))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", config.token.expose()))
        .map_err(|_| DialError::Failed("the sandbox token is not a valid header value".into()))?;
    let sandbox_id = HeaderValue::from_str(&config.sandbox_id)
        .map_err(|_| DialError::Failed("the sandbox id is not a valid header value".into()))?;
    request.headers_mut().insert("Authorization", bearer);
    request.headers_mut().insert(SANDBOX_ID_HEADER, sandbox_id);
    match tokio::time::timeout(DIAL_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err(DialError::Failed(format!(
            "no answer within {DIAL_TIMEOUT:?}"
        ))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            if matches!(status, 401 | 403 | 410) {
                Err(DialError::Refused(status))
            } else {
                Err(DialError::Failed(format!("HTTP {status}")))
            }
        }
        Ok(Err(e)) => Err(DialError::Failed(e.to_string())),
    }
}

/// Why a connection ended.
enum Ended {
    Dropped(String),
    Shutdown,
    Signal,
}

struct Signals {
    terminate: Option<Signal>,
    interrupt: Option<Signal>,
}

impl Signals {
    fn new() -> Self {
        let open = |kind| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                crate::log!("run", "cannot watch signals: {e}");
                None
            }
        };
        Signals {
            terminate: open(SignalKind::terminate()),
            interrupt: open(SignalKind::interrupt()),
        }
    }

    async fn recv(&mut self) {
        async fn one(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    if signal.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.terminate) => {}
            _ = one(&mut self.interrupt) => {}
        }
    }
}

/// What lives across connections.
struct Bridge {
    sandbox_id: String,
    agent_name: String,
    agent_version: String,
    heartbeat: Duration,
    outbox: Outbox,
    prompts: Prompts,
    stops: HashMap<String, watch::Sender<bool>>,
    jobs: mpsc::UnboundedSender<Job>,
    frames: mpsc::UnboundedReceiver<FromBridge>,
    frames_open: bool,
    journal: JournalFile,
    errors: ErrorBudget,
    started: std::time::Instant,
    /// Hides the sandbox token and the git passwords in every frame before it is queued.
    redactor: Redactor,
    /// Token text came since the journal was last saved.
    journal_dirty: bool,
}

/// Unacknowledged answer text reaches the journal at most this long after it was queued.
const JOURNAL_TEXT_EVERY: Duration = Duration::from_millis(200);

/// How many finished prompts the journal remembers.
const N_FINISHED_JOURNALED: usize = 32;

/// How often a warm bridge looks for its assignment.
const ASSIGNMENT_POLL: Duration = Duration::from_millis(20);

/// A warm sandbox: the agent starts (OpenCode takes seconds), then the bridge waits for the
/// provider to write its assignment. `false` if a signal ended the wait, or the assignment was
/// unreadable (the bridge then exits; the room's claim times out and it starts another).
async fn wait_for_assignment(
    config: &mut RunConfig,
    path: &std::path::Path,
    agent: &mut Box<dyn Agent>,
    signals: &mut Signals,
) -> bool {
    crate::log!("run", "warm: starting the {} agent", agent.name());
    if let Err(e) = agent.start().await {
        crate::log!("run", "the {} agent did not start: {e}", agent.name());
    }
    crate::log!("run", "warm: waiting for an assignment");
    loop {
        match RunConfig::take_assignment(path) {
            Ok(Some(assignment)) => {
                config.assign(assignment);
                crate::log!("run", "claimed by session {}", config.session_id);
                return true;
            }
            Ok(None) => {}
            Err(e) => {
                crate::log!("run", "{e}");
                return false;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(ASSIGNMENT_POLL) => {}
            _ = signals.recv() => return false,
        }
    }
}

pub async fn run(mut config: RunConfig, mut agent: Box<dyn Agent>) -> i32 {
    let mut signals = Signals::new();
    let warm = config.assignment.clone();
    if let Some(path) = &warm {
        if !wait_for_assignment(&mut config, path, &mut agent, &mut signals).await {
            return EXIT_OK;
        }
    }
    let url = match sandbox_ws_url(&config.coordinator_url, &config.session_id) {
        Ok(url) => url,
        Err(e) => {
            crate::log!("run", "{e}");
            return EXIT_REFUSED;
        }
    };
    let ack_prefix = match crate::ids::random_id("b") {
        Ok(prefix) => prefix,
        Err(e) => {
            crate::log!("run", "{e}");
            return EXIT_FAILED;
        }
    };
    // Before the agent starts: it works in the clone.
    let relay = start_relay(&config);
    let redactor = relay.as_ref().map(Relay::redactor).unwrap_or_default();
    redactor.pin(config.token.expose());
    let helper = relay
        .as_ref()
        .and_then(|relay| match std::env::current_exe() {
            Ok(bridge) => Some(relay.helper_command(&bridge)),
            Err(e) => {
                crate::log!(
                    "run",
                    "cannot find this executable for git's credential helper: {e}"
                );
                None
            }
        });
    if let Some(user) = config.agent_user {
        if let Err(e) = separate_git(&config, user, helper.clone()) {
            crate::log!("run", "{e}");
            return EXIT_FAILED;
        }
    }
    let prepared = repo::prepare(
        &config.workspace,
        config.repo.as_ref(),
        helper.as_deref(),
        &redactor,
    )
    .await;
    if warm.is_none() {
        if let Err(e) = agent.start().await {
            crate::log!("run", "the {} agent did not start: {e}", agent.name());
        }
    }
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let (frames_tx, frames_rx) = mpsc::unbounded_channel();
    let journal = JournalFile::for_sandbox(
        &config.workspace,
        &config.sandbox_id,
        config.state_dir.as_deref(),
    );
    let earlier = journal.load();
    let mut bridge = Bridge {
        sandbox_id: config.sandbox_id.clone(),
        agent_name: agent.name().to_string(),
        agent_version: agent.version(),
        heartbeat: config.heartbeat,
        outbox: Outbox::new(ack_prefix),
        prompts: Prompts::default(),
        stops: HashMap::new(),
        jobs: jobs_tx,
        frames: frames_rx,
        frames_open: true,
        journal,
        errors: ErrorBudget::default(),
        started: std::time::Instant::now(),
        redactor: redactor.clone(),
        journal_dirty: false,
    };
    if let Some(earlier) = earlier {
        bridge.resume(earlier);
    }
    if let Some(problem) = prepared.problem {
        bridge.queue(FromBridge::Error {
            message_id: None,
            message: problem,
            ack_id: String::new(),
        });
    }
    let worker = Worker {
        agent,
        memory: Memory::new(
            &config.agent_files.home,
            config.agent_files.memory_dir.clone(),
        )
        .run_as(config.agent_user),
        workspace: config.workspace.clone(),
        attribution: config.attribution.clone(),
        publisher: Publisher::new(
            config.workspace.clone(),
            config.session_id.clone(),
            config.attribution.clone(),
            redactor,
            prepared.cloned,
        ),
    };
    let worker = tokio::spawn(worker.work(jobs_rx, frames_tx));
    let mut backoff = Backoff::default();
    let code = loop {
        crate::log!(
            "run",
            "connecting to {url} as sandbox {}",
            config.sandbox_id
        );
        let attempt = tokio::select! {
            attempt = dial(&config, &url) => attempt,
            _ = signals.recv() => break EXIT_OK,
        };
        match attempt {
            Ok(socket) => {
                backoff.reset();
                crate::log!("run", "connected");
                match bridge.serve(socket, &mut signals).await {
                    Ended::Dropped(reason) => crate::log!("run", "connection lost: {reason}"),
                    Ended::Shutdown => {
                        crate::log!("run", "shutdown requested by the coordinator");
                        break EXIT_OK;
                    }
                    Ended::Signal => break EXIT_OK,
                }
            }
            Err(DialError::Refused(status)) => {
                let why = match status {
                    401 => "the sandbox token was refused",
                    403 => "the token belongs to another sandbox",
                    _ => "the sandbox has already ended",
                };
                crate::log!("run", "coordinator answered HTTP {status}: {why}; exiting");
                break EXIT_REFUSED;
            }
            Err(DialError::Failed(reason)) => crate::log!("run", "cannot connect: {reason}"),
        }
        let delay = backoff.next_delay(jitter());
        crate::log!("run", "reconnecting in {} ms", delay.as_millis());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = signals.recv() => break EXIT_OK,
        }
    };
    bridge.finish(worker).await;
    drop(relay);
    code
}

/// The agent runs as `user`: the bridge's git keeps to its own repository in the state folder
/// (0711: the agent's user may pass through to that repository, never list the folder or read
/// the journal).
fn separate_git(
    config: &RunConfig,
    user: crate::process::AgentUser,
    helper: Option<String>,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let state = config
        .state_dir
        .clone()
        .ok_or_else(|| Error::Invalid("AGENT_USER needs BRIDGE_STATE_DIR".into()))?;
    std::fs::create_dir_all(&state)
        .and_then(|()| std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o711)))
        .map_err(Error::io(format!("cannot create {}", state.display())))?;
    crate::git::separate(crate::git::Separation {
        user,
        workspace: config.workspace.clone(),
        private: state.join("git"),
        remote: config.repo.as_ref().map(|repo| repo.url.clone()),
        helper,
    });
    Ok(())
}

/// The socket git's credential helper relays through; without it git gets no credentials,
/// and the bridge still serves the room.
fn start_relay(config: &RunConfig) -> Option<Relay> {
    match Coordinator::new(config).and_then(Relay::start) {
        Ok(relay) => Some(relay),
        Err(e) => {
            crate::log!("run", "no git credentials in this sandbox: {e}");
            None
        }
    }
}

impl Bridge {
    /// Takes over from an earlier process of this sandbox: its unacknowledged frames go out
    /// again, and the prompt it was running ends as failed (its work so far stays in the
    /// workspace; running it again could repeat what it already did).
    fn resume(&mut self, earlier: Journal) {
        crate::log!(
            "run",
            "resuming after an earlier bridge: {} unacknowledged frames",
            earlier.unacked.len()
        );
        self.outbox = Outbox::restore(earlier.ack_prefix, earlier.n_acks, earlier.unacked);
        for message_id in &earlier.finished {
            self.prompts.admit(message_id);
            self.prompts.finished(message_id);
        }
        if let Some(message_id) = earlier.active {
            self.prompts.admit(&message_id);
            self.queue(FromBridge::Done {
                message_id,
                ok: false,
                error: Some(
                    "the bridge restarted while this prompt ran; what it did before is in the workspace"
                        .into(),
                ),
                // The text the journal kept counts; the room has the rest, if any, already.
                text_bytes: None,
                ack_id: String::new(),
            });
        }
        self.save_journal();
    }

    fn save_journal(&mut self) {
        self.journal_dirty = false;
        let (ack_prefix, n_acks, unacked) = self.outbox.to_journal();
        self.journal.save(&Journal {
            ack_prefix,
            n_acks,
            unacked,
            active: self.prompts.active(),
            finished: self.prompts.recently_finished(N_FINISHED_JOURNALED),
        });
    }

    async fn serve(&mut self, socket: Socket, signals: &mut Signals) -> Ended {
        let (mut sink, mut stream) = socket.split();
        let ready = FromBridge::Ready {
            sandbox_id: self.sandbox_id.clone(),
            agent: self.agent_name.clone(),
            agent_version: self.agent_version.clone(),
            message_id: self
                .prompts
                .active()
                .or_else(|| self.prompts.recently_finished(1).pop()),
        };
        if let Err(e) = send(&mut sink, &ready).await {
            return Ended::Dropped(e.to_string());
        }
        self.outbox.rewind();
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + self.heartbeat, self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut journal_tick = tokio::time::interval(JOURNAL_TEXT_EVERY);
        journal_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Err(e) = self.flush(&mut sink).await {
                return Ended::Dropped(e.to_string());
            }
            tokio::select! {
                message = stream.next() => match message {
                    None => return Ended::Dropped("closed".into()),
                    Some(Err(e)) => return Ended::Dropped(e.to_string()),
                    Some(Ok(Message::Text(text))) => {
                        if self.handle(text.as_str()) {
                            return Ended::Shutdown;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let reason = frame
                            .map(|f| format!("closed by the coordinator ({} {})", u16::from(f.code), f.reason))
                            .unwrap_or_else(|| "closed by the coordinator".into());
                        return Ended::Dropped(reason);
                    }
                    Some(Ok(_)) => {}
                },
                frame = self.frames.recv(), if self.frames_open => match frame {
                    Some(frame) => self.queue(frame),
                    None => {
                        crate::log!("run", "the worker stopped unexpectedly");
                        self.frames_open = false;
                    }
                },
                _ = journal_tick.tick(), if self.journal_dirty => self.save_journal(),
                _ = heartbeat.tick() => {
                    if let Err(e) = send(&mut sink, &FromBridge::Heartbeat {}).await {
                        return Ended::Dropped(e.to_string());
                    }
                }
                _ = signals.recv() => return Ended::Signal,
            }
        }
    }

    /// Writes everything the outbox has not sent on this connection yet.
    async fn flush<S>(&mut self, sink: &mut S) -> Result<()>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        while let Some(frame) = self.outbox.next_unsent() {
            send(sink, frame).await?;
            self.outbox.mark_sent();
        }
        Ok(())
    }

    fn queue(&mut self, frame: FromBridge) {
        let mut frame = crate::scrub::frame(&self.redactor, frame);
        if let FromBridge::Done { message_id, .. } = &frame {
            self.prompts.finished(message_id);
            self.stops.remove(message_id);
        }
        if let FromBridge::Error { message, .. } = &mut frame {
            let now = self.started.elapsed().as_millis() as u64;
            match self.errors.admit(std::mem::take(message), now) {
                Verdict::Send(text) => *message = text,
                Verdict::HoldBack => return,
            }
        }
        // The room refuses a frame over its limit: cut it here (room for the ack id kept).
        if !matches!(frame, FromBridge::Token { .. }) {
            protocol::cut::fit_frame(&mut frame, protocol::cut::BRIDGE_FRAME_BYTES - 1024);
        }
        if self.outbox.push(frame).is_some() {
            // Critical: on disk before it is sent, so a restarted bridge sends it again.
            self.save_journal();
        } else if self.outbox.holds_text() {
            // Answer text: on disk within [`JOURNAL_TEXT_EVERY`], not for every delta.
            self.journal_dirty = true;
        }
    }

    /// Acts on a frame from the room; true when it asks the bridge to shut down.
    fn handle(&mut self, text: &str) -> bool {
        let frame = match serde_json::from_str::<ToBridge>(text) {
            Ok(frame) => frame,
            Err(e) => {
                let kind = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(String::from))
                    .unwrap_or_else(|| "?".into());
                crate::log!("run", "ignoring a frame of type {kind:?}: {e}");
                return false;
            }
        };
        match frame {
            ToBridge::Prompt(prompt) => {
                let message_id = prompt.message_id.clone();
                if !self.prompts.admit(&message_id) {
                    crate::log!(
                        "run",
                        "prompt {message_id} was already received; not running it again"
                    );
                    return false;
                }
                self.save_journal();
                let (stop_tx, stop) = stop_pair();
                self.stops.insert(message_id.clone(), stop_tx);
                crate::log!("run", "prompt {message_id} received");
                if self.jobs.send(Job { prompt, stop }).is_err() {
                    crate::log!("run", "the worker is gone; prompt {message_id} cannot run");
                }
            }
            ToBridge::Stop { message_id } => match self.stops.get(&message_id) {
                Some(stop) => {
                    crate::log!("run", "stopping prompt {message_id}");
                    let _ = stop.send(true);
                }
                None => crate::log!("run", "stop for prompt {message_id}, which is not running"),
            },
            ToBridge::Snapshot { reason } => {
                crate::log!("run", "the coordinator is taking a snapshot ({reason})");
            }
            ToBridge::Ack { ack_id } => {
                if self.outbox.ack(&ack_id) {
                    self.save_journal();
                }
            }
            ToBridge::TokensAck { message_id, offset } => self.outbox.ack_text(&message_id, offset),
            ToBridge::Resume { message_id, offset } => {
                crate::log!(
                    "run",
                    "the room holds {offset} bytes of the answer to {message_id}; sending the rest"
                );
                self.outbox.ack_text(&message_id, offset);
            }
            ToBridge::Shutdown {} => return true,
        }
        false
    }

    /// Stops every prompt, lets the worker wind the agent down, and gives up after a while.
    async fn finish(mut self, worker: tokio::task::JoinHandle<()>) {
        if self.journal_dirty {
            self.save_journal();
        }
        for stop in self.stops.values() {
            let _ = stop.send(true);
        }
        drop(self.jobs);
        if tokio::time::timeout(WORKER_GRACE, worker).await.is_err() {
            crate::log!("run", "the agent did not stop within {WORKER_GRACE:?}");
        }
        if self.outbox.n_unacked() > 0 {
            crate::log!(
                "run",
                "exiting with {} unacknowledged frames",
                self.outbox.n_unacked()
            );
        }
    }
}

async fn send<S>(sink: &mut S, frame: &FromBridge) -> Result<()>
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let text = serde_json::to_string(frame)?;
    Ok(sink.send(Message::text(text)).await?)
}

/// The random part of a reconnect delay. Without the system's generator the delay is the
/// middle of its range: jitter only spreads reconnects, and this must not stop them.
fn jitter() -> f64 {
    crate::ids::random_unit().unwrap_or_else(|e| {
        crate::log!("run", "{e}; reconnecting without jitter");
        0.5
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_urls() {
        let check = |base: &str, expected: &str| {
            assert_eq!(sandbox_ws_url(base, "ses_1").unwrap(), expected, "{base}");
        };
        check(
            "http://127.0.0.1:8787",
            "ws://127.0.0.1:8787/v1/sessions/ses_1/sandbox",
        );
        check(
            "https://c.example.com/",
            "wss://c.example.com/v1/sessions/ses_1/sandbox",
        );
        check(
            "https://c.example.com/base",
            "wss://c.example.com/base/v1/sessions/ses_1/sandbox",
        );
        check("ws://h:1", "ws://h:1/v1/sessions/ses_1/sandbox");
        assert!(sandbox_ws_url("ftp://x", "s").is_err());
        assert!(sandbox_ws_url("http://", "s").is_err());
    }
}
