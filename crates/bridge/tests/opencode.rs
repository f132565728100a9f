//! The OpenCode agent against a small server that plays OpenCode's v1 API: `GET
//! /global/health`, `POST /session`, `POST /session/:id/prompt_async`, `POST
//! /session/:id/abort` and the `GET /event` stream (chunked, each event split across two
//! chunks). Each prompt's text names the script of events the fake sends after accepting it.

use bridge::agent::opencode::OpenCodeAgent;
use bridge::agent::{stop_pair, Agent, EventSink, Outcome};
use bridge::config::AgentFiles;
use bridge::config::OpenCodeConfig;
use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use protocol::bridge::{FromBridge, GitAuthor, PromptContext, PromptJob};
use protocol::event::ToolStatus;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

const SES: &str = "ses_fake";

#[derive(Clone)]
struct Fake {
    events: broadcast::Sender<String>,
    requests: Arc<Mutex<Vec<(String, String, Value)>>>,
}

fn ev(kind: &str, properties: Value) -> Value {
    json!({"type": kind, "properties": properties})
}

fn message(id: &str, role: &str, parent: Option<&str>) -> Value {
    let mut info = json!({"id": id, "role": role, "sessionID": SES});
    if let Some(parent) = parent {
        info["parentID"] = json!(parent);
    }
    ev("message.updated", json!({"sessionID": SES, "info": info}))
}

fn part(message: &str, part: Value) -> Value {
    let mut part = part;
    part["messageID"] = json!(message);
    part["sessionID"] = json!(SES);
    ev(
        "message.part.updated",
        json!({"sessionID": SES, "part": part}),
    )
}

fn delta(message: &str, part: &str, text: &str) -> Value {
    ev(
        "message.part.delta",
        json!({"sessionID": SES, "messageID": message, "partID": part, "field": "text", "delta": text}),
    )
}

fn status(kind: &str) -> Value {
    ev(
        "session.status",
        json!({"sessionID": SES, "status": {"type": kind}}),
    )
}

fn idle() -> Value {
    ev("session.idle", json!({"sessionID": SES}))
}

/// What OpenCode sends for a prompt, by the prompt's first word.
fn script(text: &str, n: usize) -> Vec<Value> {
    let user = format!("msg_u{n}");
    let reply = format!("msg_a{n}");
    let mut events = vec![
        message(&user, "user", None),
        part(
            &user,
            json!({"id": format!("prt_u{n}"), "type": "text", "text": text}),
        ),
        status("busy"),
        message(&reply, "assistant", Some(&user)),
    ];
    let tool = |call: &str, name: &str, state: Value| {
        part(
            &reply,
            json!({"id": format!("prt_{call}"), "type": "tool", "tool": name, "callID": call, "state": state}),
        )
    };
    match text.split_whitespace().next().unwrap_or("") {
        "work" => events.extend([
            part(&reply, json!({"id": "prt_t", "type": "text", "text": ""})),
            delta(&reply, "prt_t", "Hel"),
            delta(&reply, "prt_t", "lo"),
            part(&reply, json!({"id": "prt_t", "type": "text", "text": "Hello"})),
            part(&reply, json!({"id": "prt_t", "type": "text", "text": "Hello world"})),
            // Another session's events and some noise on the way.
            ev("message.part.delta", json!({"sessionID": "ses_other", "messageID": "m", "partID": "p", "field": "text", "delta": "nope"})),
            ev("session.idle", json!({"sessionID": "ses_other"})),
            ev("server.heartbeat", json!({})),
            tool("call_1", "bash", json!({"status": "pending", "input": {}, "raw": ""})),
            tool("call_1", "bash", json!({"status": "running", "input": {"command": "ls"}})),
            tool("call_1", "bash", json!({"status": "running", "input": {"command": "ls"}, "metadata": {"output": "README.md\n"}})),
            tool("call_1", "bash", json!({"status": "completed", "input": {"command": "ls"}, "output": "README.md\n", "metadata": {"exit": 0}})),
            tool("call_2", "write", json!({"status": "running", "input": {"filePath": "/work/notes.txt", "content": "hi\n"}})),
            tool("call_2", "write", json!({"status": "completed", "input": {"filePath": "/work/notes.txt", "content": "hi\n"},
                "output": "Wrote file successfully.", "metadata": {"filepath": "/work/notes.txt", "exists": false}})),
            status("idle"),
            idle(),
        ]),
        "break" => events.extend([
            ev("session.error", json!({"sessionID": SES, "error": {"name": "APIError",
                "data": {"message": "model exploded", "statusCode": 400, "isRetryable": false}}})),
            status("idle"),
            idle(),
        ]),
        // Starts a command, then waits for an abort.
        _ => events.extend([
            tool("call_s", "bash", json!({"status": "running", "input": {"command": "sleep 30"}})),
            part(&reply, json!({"id": "prt_h", "type": "text", "text": ""})),
            delta(&reply, "prt_h", "Thinking"),
        ]),
    }
    events
}

async fn start_fake() -> (String, Fake) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let fake = Fake {
        events: broadcast::channel(4096).0,
        requests: Arc::new(Mutex::new(Vec::new())),
    };
    let server = fake.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let fake = server.clone();
            let service = hyper::service::service_fn(move |request| {
                let fake = fake.clone();
                async move { Ok::<_, Infallible>(handle(fake, request).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service),
            );
        }
    });
    (url, fake)
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn reply(status: u16, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

/// Every event published from now on, each as two chunks split inside its JSON, after a
/// `server.connected`.
fn event_stream(fake: &Fake) -> Response<Body> {
    let connected = json!({"type": "server.connected", "properties": {}}).to_string();
    let events = fake.events.subscribe();
    let stream = futures_util::stream::unfold(
        (Some(connected), events),
        |(first, mut events)| async move {
            let data = match first {
                Some(data) => data,
                None => events.recv().await.ok()?,
            };
            Some((data, (None, events)))
        },
    )
    .flat_map(|data| {
        let frame = format!("data: {data}\n\n");
        let (a, b) = frame.split_at(frame.len() / 2);
        let halves = [a.to_string(), b.to_string()]
            .map(|half| Ok::<_, Infallible>(Frame::data(Bytes::from(half))));
        futures_util::stream::iter(halves)
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    response
}

async fn handle(fake: Fake, request: Request<Incoming>) -> Response<Body> {
    let (head, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (method, path) = (head.method.as_str(), head.uri.path());
    let n_prompts = {
        let mut requests = fake.requests.lock().unwrap();
        requests.push((method.to_string(), path.to_string(), body.clone()));
        requests
            .iter()
            .filter(|(_, p, _)| p.ends_with("/prompt_async"))
            .count()
    };
    let prompt_path = format!("/session/{SES}/prompt_async");
    let abort_path = format!("/session/{SES}/abort");
    match (method, path) {
        ("GET", "/global/health") => reply(200, r#"{"healthy":true,"version":"1.18.33-fake"}"#),
        ("GET", "/session/status") => reply(200, "{}"),
        ("POST", "/session") => reply(200, &json!({"id": SES, "title": "New session"}).to_string()),
        ("POST", path) if path == prompt_path => {
            let text = body["parts"][0]["text"].as_str().unwrap_or("").to_string();
            // Published once the answer is on its way, as OpenCode works in the background.
            let events = fake.events.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                for event in script(&text, n_prompts) {
                    let _ = events.send(event.to_string());
                }
            });
            reply(204, "")
        }
        ("POST", path) if path == abort_path => {
            for event in [
                ev(
                    "session.error",
                    json!({"sessionID": SES, "error": {"name": "MessageAbortedError", "data": {"message": "Aborted"}}}),
                ),
                status("idle"),
                idle(),
            ] {
                let _ = fake.events.send(event.to_string());
            }
            reply(200, "true")
        }
        ("GET", "/event") => event_stream(&fake),
        _ => reply(404, "{}"),
    }
}

fn job(id: &str, content: &str, selections: Vec<Value>) -> PromptJob {
    PromptJob {
        message_id: id.into(),
        content: content.into(),
        author: GitAuthor {
            name: "Ada".into(),
            email: "ada@example.com".into(),
        },
        attachments: vec![],
        context: PromptContext {
            selections,
            ..PromptContext::default()
        },
        push_branch: None,
    }
}

/// An OpenCode agent started against a fresh fake, and the frames its prompts produce.
struct Session {
    agent: OpenCodeAgent,
    fake: Fake,
    tx: mpsc::UnboundedSender<FromBridge>,
    rx: mpsc::UnboundedReceiver<FromBridge>,
}

impl Session {
    async fn start() -> Session {
        let (url, fake) = start_fake().await;
        let mut agent = OpenCodeAgent::new(
            OpenCodeConfig {
                bin: "opencode-is-not-started".into(),
                url: Some(url),
                model: Some(("stub".into(), "stub-model".into())),
            },
            "/work".into(),
            vec![],
            AgentFiles {
                home: std::env::temp_dir().join("opencode-test-home"),
                memory_dir: None,
                chromium: "/usr/bin/chromium".into(),
                github_mcp_url: "http://127.0.0.1:9/github".into(),
                sentry_mcp_url: "http://127.0.0.1:9/sentry".into(),
                linear_mcp_url: "http://127.0.0.1:9/linear".into(),
            },
        );
        agent.start().await.expect("the fake server answers");
        let (tx, rx) = mpsc::unbounded_channel();
        Session {
            agent,
            fake,
            tx,
            rx,
        }
    }

    /// Runs a prompt to its end; returns its outcome and frames.
    async fn run(&mut self, job: PromptJob) -> (Outcome, Vec<FromBridge>) {
        let sink = EventSink::new(job.message_id.clone(), self.tx.clone());
        let (_stop_tx, stop) = stop_pair();
        let outcome = self.agent.run(&job, &sink, stop).await;
        (outcome, self.drain())
    }

    /// Runs the prompt that waits for an abort, and stops it once OpenCode answers.
    async fn run_and_stop(&mut self, message_id: &str) -> (Outcome, Vec<FromBridge>) {
        let sink = EventSink::new(message_id.into(), self.tx.clone());
        let (stop_tx, stop) = stop_pair();
        let hang = job(message_id, "hang on", vec![]);
        let running = self.agent.run(&hang, &sink, stop);
        let rx = &mut self.rx;
        let watcher = async {
            let mut seen = Vec::new();
            loop {
                match rx.recv().await {
                    Some(frame) => {
                        let thinking = matches!(&frame, FromBridge::Token { delta, .. } if delta == "Thinking");
                        seen.push(frame);
                        if thinking {
                            break;
                        }
                    }
                    None => panic!("the frame channel closed"),
                }
            }
            let _ = stop_tx.send(true);
            seen
        };
        let (outcome, mut frames) = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(running, watcher)
        })
        .await
        .expect("the stop is honoured");
        frames.extend(self.drain());
        (outcome, frames)
    }

    fn drain(&mut self) -> Vec<FromBridge> {
        let mut frames = Vec::new();
        while let Ok(frame) = self.rx.try_recv() {
            frames.push(frame);
        }
        frames
    }

    /// The body of the last prompt posted to OpenCode.
    fn last_prompt_body(&self) -> Value {
        let requests = self.fake.requests.lock().unwrap();
        let (_, _, body) = requests
            .iter()
            .rfind(|(_, path, _)| path.ends_with("/prompt_async"))
            .expect("a prompt was posted");
        body.clone()
    }
}

fn text_of(frames: &[FromBridge]) -> String {
    frames
        .iter()
        .filter_map(|f| match f {
            FromBridge::Token { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}

fn calls_of(frames: &[FromBridge]) -> Vec<(String, String, ToolStatus, Option<String>)> {
    frames
        .iter()
        .filter_map(|f| match f {
            FromBridge::ToolCall { call, .. } => Some((
                call.call_id.clone(),
                call.tool.clone(),
                call.status,
                call.output.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_version_comes_from_the_health_check() {
    let session = Session::start().await;
    assert_eq!(session.agent.version(), "1.18.33-fake");
}

#[tokio::test]
async fn text_deltas_and_snapshots_become_tokens_once() {
    let mut session = Session::start().await;
    let (outcome, frames) = session.run(job("m1", "work please", vec![])).await;
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(text_of(&frames), "Hello world");
    assert!(frames.iter().all(|f| match f {
        FromBridge::Token { message_id, .. } => message_id == "m1",
        _ => true,
    }));
}

#[tokio::test]
async fn tool_states_become_tool_calls_and_writes_file_edits() {
    let mut session = Session::start().await;
    let (_, frames) = session.run(job("m1", "work please", vec![])).await;
    assert_eq!(
        calls_of(&frames),
        [
            ("call_1".into(), "bash".into(), ToolStatus::Running, None),
            (
                "call_1".into(),
                "bash".into(),
                ToolStatus::Completed,
                Some("README.md\n".into())
            ),
            ("call_2".into(), "write".into(), ToolStatus::Running, None),
            (
                "call_2".into(),
                "write".into(),
                ToolStatus::Completed,
                Some("Wrote file successfully.".into())
            ),
        ]
    );
    let edits: Vec<&str> = frames
        .iter()
        .filter_map(|f| match f {
            FromBridge::FileEdit { edit, .. } => Some(edit.path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(edits, ["notes.txt"]);
}

#[tokio::test]
async fn the_posted_prompt_carries_its_context_and_the_model() {
    let mut session = Session::start().await;
    let selection = json!({"url": "https://app.example.com/", "title": "App", "elements": [{"tag": "button", "text": "Buy"}]});
    session.run(job("m1", "work please", vec![selection])).await;
    let body = session.last_prompt_body();
    let sent = body["parts"][0]["text"].as_str().unwrap_or("");
    assert!(
        sent.starts_with("work please\n\nContext given with this request:"),
        "{sent}"
    );
    assert!(
        sent.contains("DOM selection on https://app.example.com/ (App)"),
        "{sent}"
    );
    assert_eq!(body["parts"][0]["type"], "text");
    assert_eq!(
        body["model"],
        json!({"providerID": "stub", "modelID": "stub-model"})
    );
}

#[tokio::test]
async fn a_session_error_fails_the_prompt_and_earlier_events_are_not_its_own() {
    let mut session = Session::start().await;
    session.run(job("m1", "work please", vec![])).await;
    let (outcome, frames) = session.run(job("m2", "break it", vec![])).await;
    assert_eq!(outcome, Outcome::Failed("model exploded".into()));
    assert!(frames.is_empty(), "{frames:?}");
}

#[tokio::test]
async fn stop_aborts_the_opencode_session_and_closes_running_calls() {
    let mut session = Session::start().await;
    let (outcome, frames) = session.run_and_stop("m3").await;
    assert_eq!(outcome, Outcome::Stopped);
    let closed: Vec<(String, ToolStatus, Option<String>)> = calls_of(&frames)
        .into_iter()
        .filter(|(_, _, status, _)| *status != ToolStatus::Running)
        .map(|(id, _, status, output)| (id, status, output))
        .collect();
    assert_eq!(
        closed,
        [(
            "call_s".to_string(),
            ToolStatus::Error,
            Some("stopped".to_string())
        )]
    );
    assert!(session
        .fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|(method, path, _)| method == "POST" && path == &format!("/session/{SES}/abort")));
}

#[tokio::test]
async fn after_an_abort_the_next_prompt_completes() {
    let mut session = Session::start().await;
    session.run_and_stop("m3").await;
    let (outcome, frames) = session.run(job("m4", "work again", vec![])).await;
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(text_of(&frames), "Hello world");
    session.agent.shutdown().await;
}
