//! The OpenCode agent against a small server that plays OpenCode's v1 API: `GET
//! /global/health`, `POST /session`, `POST /session/:id/prompt_async`, `POST
//! /session/:id/abort` and the `GET /event` stream (chunked, events split across chunks).
//! Each prompt's text names the script of events the fake sends after accepting it.

use bridge::agent::opencode::OpenCodeAgent;
use bridge::agent::{stop_pair, Agent, EventSink, Outcome};
use bridge::config::OpenCodeConfig;
use protocol::bridge::{FromBridge, GitAuthor, PromptContext, PromptJob};
use protocol::event::ToolStatus;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
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
            tokio::spawn(handle(server.clone(), socket));
        }
    });
    (url, fake)
}

async fn reply(socket: &mut TcpStream, status: u16, body: &str) {
    let _ = bridge::http::write_json(socket, status, body).await;
}

async fn handle(fake: Fake, mut socket: TcpStream) {
    let Ok(request) = bridge::http::read_request(&mut socket, 1 << 20).await else {
        return;
    };
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let n_prompts = {
        let mut requests = fake.requests.lock().unwrap();
        requests.push((request.method.clone(), request.path.clone(), body.clone()));
        requests
            .iter()
            .filter(|(_, p, _)| p.ends_with("/prompt_async"))
            .count()
    };
    let prompt_path = format!("/session/{SES}/prompt_async");
    let abort_path = format!("/session/{SES}/abort");
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/global/health") => {
            reply(
                &mut socket,
                200,
                r#"{"healthy":true,"version":"1.18.33-fake"}"#,
            )
            .await
        }
        ("GET", "/session/status") => reply(&mut socket, 200, "{}").await,
        ("POST", "/session") => {
            reply(
                &mut socket,
                200,
                &json!({"id": SES, "title": "New session"}).to_string(),
            )
            .await
        }
        ("POST", path) if path == prompt_path => {
            let _ = socket
                .write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            let text = body["parts"][0]["text"].as_str().unwrap_or("").to_string();
            for event in script(&text, n_prompts) {
                let _ = fake.events.send(event.to_string());
            }
        }
        ("POST", path) if path == abort_path => {
            reply(&mut socket, 200, "true").await;
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
        }
        ("GET", "/event") => {
            let mut events = fake.events.subscribe();
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let send = |data: String| {
                // Each event in two chunks, split inside the JSON.
                let frame = format!("data: {data}\n\n");
                let (a, b) = frame.split_at(frame.len() / 2);
                format!("{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n", a.len(), b.len())
            };
            let connected = send(json!({"type": "server.connected", "properties": {}}).to_string());
            if socket.write_all(connected.as_bytes()).await.is_err() {
                return;
            }
            while let Ok(data) = events.recv().await {
                if socket.write_all(send(data).as_bytes()).await.is_err() {
                    return;
                }
            }
        }
        _ => reply(&mut socket, 404, "{}").await,
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
        context: PromptContext { selections },
        push_branch: None,
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<FromBridge>) -> Vec<FromBridge> {
    let mut frames = Vec::new();
    while let Ok(frame) = rx.try_recv() {
        frames.push(frame);
    }
    frames
}

#[tokio::test]
async fn maps_a_session_of_prompts_to_frames() {
    let (url, fake) = start_fake().await;
    let mut agent = OpenCodeAgent::new(
        OpenCodeConfig {
            bin: "opencode-is-not-started".into(),
            url: Some(url),
            model: Some(("stub".into(), "stub-model".into())),
        },
        "/work".into(),
    );
    agent.start().await.expect("the fake server starts");
    assert_eq!(agent.version(), "1.18.33-fake");
    let (tx, mut rx) = mpsc::unbounded_channel();

    // 1. Text as deltas and snapshots, tool calls, a file edit, idle.
    let selection = json!({"url": "https://app.example.com/", "title": "App", "elements": [{"tag": "button", "text": "Buy"}]});
    let sink = EventSink::new("m1".into(), tx.clone());
    let (_stop_tx, stop) = stop_pair();
    let outcome = agent
        .run(&job("m1", "work please", vec![selection]), &sink, stop)
        .await;
    assert_eq!(outcome, Outcome::Completed);
    let frames = drain(&mut rx);
    let text: String = frames
        .iter()
        .filter_map(|f| match f {
            FromBridge::Token { message_id, delta } if message_id == "m1" => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Hello world");
    let calls: Vec<(String, String, ToolStatus, Option<String>)> = frames
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
        .collect();
    assert_eq!(
        calls,
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
    {
        let requests = fake.requests.lock().unwrap();
        let (_, _, body) = requests
            .iter()
            .find(|(_, path, _)| path.ends_with("/prompt_async"))
            .expect("a prompt was posted");
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

    // 2. A session error fails the prompt with OpenCode's message; the first prompt's
    //    trailing events are not taken for this one's.
    let sink = EventSink::new("m2".into(), tx.clone());
    let (_stop_tx, stop) = stop_pair();
    let outcome = agent.run(&job("m2", "break it", vec![]), &sink, stop).await;
    assert_eq!(outcome, Outcome::Failed("model exploded".into()));
    assert!(drain(&mut rx).is_empty());

    // 3. Stop: the agent aborts the OpenCode session and reports the prompt stopped.
    let sink = EventSink::new("m3".into(), tx.clone());
    let (stop_tx, stop) = stop_pair();
    let hang = job("m3", "hang on", vec![]);
    let running = agent.run(&hang, &sink, stop);
    let watcher = async {
        // Stop once OpenCode has started answering.
        loop {
            match rx.recv().await {
                Some(FromBridge::Token { delta, .. }) if delta == "Thinking" => break,
                Some(_) => {}
                None => panic!("the frame channel closed"),
            }
        }
        let _ = stop_tx.send(true);
    };
    let (outcome, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(running, watcher)
    })
    .await
    .expect("the stop is honoured");
    assert_eq!(outcome, Outcome::Stopped);
    let closed: Vec<(String, ToolStatus, Option<String>)> = drain(&mut rx)
        .into_iter()
        .filter_map(|f| match f {
            FromBridge::ToolCall { call, .. } => Some((call.call_id, call.status, call.output)),
            _ => None,
        })
        .collect();
    assert_eq!(
        closed,
        [(
            "call_s".to_string(),
            ToolStatus::Error,
            Some("stopped".to_string())
        )]
    );
    assert!(fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|(method, path, _)| method == "POST" && path == &format!("/session/{SES}/abort")));

    // 4. After the abort's own error and idle, the next prompt still completes normally.
    let sink = EventSink::new("m4".into(), tx.clone());
    let (_stop_tx, stop) = stop_pair();
    let outcome = agent
        .run(&job("m4", "work again", vec![]), &sink, stop)
        .await;
    assert_eq!(outcome, Outcome::Completed);
    agent.shutdown().await;
}
