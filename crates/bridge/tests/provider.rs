//! The local provider end to end: `bridge provider` on a free port, its signature checks, and
//! sandboxes whose bridges dial a fake coordinator run by the test (a WebSocket server on
//! another free port). Slow by nature (real processes, git), so it is one test file with few,
//! long tests; every wait is for an event, never for a fixed time.

use bridge::http::{self, HttpUrl};
use futures_util::{SinkExt, StreamExt};
use protocol::provider::{sign, SIGNATURE_HEADER};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const SECRET: &str = "test-provider-secret";
/// Every wait in these tests ends by this, so a broken build fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running `bridge provider`; ended (with its bridges) when dropped.
struct Provider {
    child: Child,
    url: HttpUrl,
    workspaces: PathBuf,
    lines: mpsc::Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Provider {
    fn start() -> Provider {
        let workspaces = std::env::temp_dir().join(format!(
            "bridge-provider-test-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_bridge"))
            .args(["provider", "--listen", "127.0.0.1:0", "--workspaces"])
            .arg(&workspaces)
            .env("PROVIDER_SECRET", SECRET)
            .env("DEV_AGENT_DELAY_MS", "0")
            .env("HEARTBEAT_SECS", "1")
            .env_remove("PROVIDER_ALLOWED_COORDINATORS")
            .env_remove("AGENT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bridge provider starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("provider> {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut provider = Provider {
            child,
            url: HttpUrl::parse("http://127.0.0.1:1/").unwrap(),
            workspaces,
            lines,
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let line = provider.wait_for_log("local provider listening on ");
        assert!(
            !line.contains("http://"),
            "the start line must not look like a URL: {line}"
        );
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address");
        assert!(line.ends_with("(agent dev)"), "{line}");
        provider.url = HttpUrl::parse(&format!("http://{addr}/")).unwrap();
        provider
    }

    /// Waits for a log line containing `needle` (seen before or arriving now).
    fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
        {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.lock().unwrap().push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}"),
            }
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string().into_bytes());
        let signature = sign(
            SECRET.as_bytes(),
            now_ms(),
            body.as_deref().unwrap_or_default(),
        );
        self.raw(
            method,
            path,
            &[(SIGNATURE_HEADER, &signature)],
            body.as_deref(),
        )
        .await
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        let response = http::request(method, &self.url.with_path(path), &all, body, PATIENCE)
            .await
            .expect("the provider answers");
        let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, value)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // SIGTERM: the provider ends its bridges before it exits.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.workspaces);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn create_body(sandbox_id: &str, coordinator: &str, snapshot_id: Option<&str>) -> Value {
    let mut body = json!({
        "session_id": "ses_test", "sandbox_id": sandbox_id, "coordinator_url": coordinator,
        "sandbox_token": format!("token-of-{sandbox_id}"),
        "repo": {"owner": "acme", "name": "demo", "branch": "main"},
        "resources": {"cpu": 1, "memory_mb": 512, "disk_mb": 1024, "timeout_s": 600},
        "network": {"block_network": false, "allowed_hosts": []},
        "env": {"EXTRA_SETTING": "1", "SANDBOX_TOKEN": "must-not-override"}
    });
    if let Some(snapshot_id) = snapshot_id {
        body["snapshot_id"] = json!(snapshot_id);
    }
    body
}

/// The fake coordinator: accepts bridge connections, or refuses them with a status.
struct Room {
    listener: TcpListener,
    url: String,
}

type Socket = WebSocketStream<TcpStream>;
/// The path and headers of a bridge's handshake.
type Handshake = (String, Vec<(String, String)>);

impl Room {
    async fn start() -> Room {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Room { listener, url }
    }

    /// The next connection, with its path and headers.
    #[allow(clippy::result_large_err)] // tungstenite's handshake callback fixes the error type
    async fn accept(
        &self,
        refuse_with: Option<u16>,
    ) -> Option<(Socket, String, Vec<(String, String)>)> {
        let (stream, _) = tokio::time::timeout(PATIENCE, self.listener.accept())
            .await
            .expect("a bridge dials in")
            .unwrap();
        let seen: Arc<Mutex<Handshake>> = Arc::default();
        let record = seen.clone();
        let callback =
            move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
                let headers = request
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                *record.lock().unwrap() = (request.uri().path().to_string(), headers);
                match refuse_with {
                    Some(status) => {
                        let mut refusal = ErrorResponse::new(Some("refused".into()));
                        *refusal.status_mut() = StatusCode::from_u16(status).unwrap();
                        Err(refusal)
                    }
                    None => Ok(response),
                }
            };
        let socket = tokio_tungstenite::accept_hdr_async(stream, callback)
            .await
            .ok();
        let (path, headers) = seen.lock().unwrap().clone();
        socket.map(|socket| (socket, path, headers))
    }
}

/// The next frame that is not a heartbeat.
async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame arrives")
            .expect("the socket is open")
            .expect("a good frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).expect("frames are JSON");
            if frame["type"] != "heartbeat" {
                return frame;
            }
        }
    }
}

/// Frames up to and including the `done` of `message_id`.
async fn frames_until_done(socket: &mut Socket, message_id: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(socket).await;
        let done = frame["type"] == "done" && frame["message_id"] == message_id;
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::text(frame.to_string()))
        .await
        .expect("the bridge is connected");
}

fn prompt(message_id: &str, content: &str) -> Value {
    json!({"type": "prompt", "message_id": message_id, "content": content,
           "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
           "attachments": [], "context": {"selections": []}})
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn requests_must_be_signed_and_well_formed() {
    let provider = Provider::start();
    let (status, health) = provider.raw("GET", "/health", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(health["ok"], true);
    assert_eq!(health["provider"], "local");
    assert!(health["app"].as_str().unwrap_or("").starts_with("bridge "));

    let body = create_body("sbx_x", "http://127.0.0.1:9", None)
        .to_string()
        .into_bytes();
    let unauthorized = |(status, value): (u16, Value)| {
        assert_eq!(status, 401, "{value}");
        assert_eq!(value["error"]["code"], "unauthorized");
        assert!(value["error"]["message"].is_string());
    };
    unauthorized(provider.raw("POST", "/sandboxes", &[], Some(&body)).await);
    let wrong_secret = sign(b"another secret", now_ms(), &body);
    unauthorized(
        provider
            .raw(
                "POST",
                "/sandboxes",
                &[(SIGNATURE_HEADER, &wrong_secret)],
                Some(&body),
            )
            .await,
    );
    let other_body = sign(SECRET.as_bytes(), now_ms(), b"{}");
    unauthorized(
        provider
            .raw(
                "POST",
                "/sandboxes",
                &[(SIGNATURE_HEADER, &other_body)],
                Some(&body),
            )
            .await,
    );
    let stale = sign(SECRET.as_bytes(), now_ms() - 10 * 60 * 1000, &body);
    unauthorized(
        provider
            .raw(
                "POST",
                "/sandboxes",
                &[(SIGNATURE_HEADER, &stale)],
                Some(&body),
            )
            .await,
    );
    unauthorized(
        provider
            .raw(
                "POST",
                "/sandboxes",
                &[(SIGNATURE_HEADER, "garbage")],
                Some(&body),
            )
            .await,
    );
    unauthorized(provider.raw("DELETE", "/sandboxes/sbx_x", &[], None).await);

    let (status, value) = provider
        .call("POST", "/sandboxes", Some(&json!({"session_id": "s"})))
        .await;
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );
    let broken = b"{not json";
    let signature = sign(SECRET.as_bytes(), now_ms(), broken);
    let (status, value) = provider
        .raw(
            "POST",
            "/sandboxes",
            &[(SIGNATURE_HEADER, &signature)],
            Some(broken),
        )
        .await;
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let huge = vec![b' '; 2 * 1024 * 1024];
    let (status, value) = provider.raw("POST", "/sandboxes", &[], Some(&huge)).await;
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (413, Some("too_large"))
    );

    let elsewhere = create_body("sbx_x", "https://coordinator.example.com", None);
    let (status, value) = provider.call("POST", "/sandboxes", Some(&elsewhere)).await;
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let bad_id = create_body("../escape", "http://127.0.0.1:9", None);
    assert_eq!(
        provider.call("POST", "/sandboxes", Some(&bad_id)).await.0,
        422
    );
    let missing_snapshot = create_body("sbx_x", "http://127.0.0.1:9", Some("snap_missing"));
    let (status, value) = provider
        .call("POST", "/sandboxes", Some(&missing_snapshot))
        .await;
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    assert_eq!(
        provider
            .call("DELETE", "/sandboxes/sbx_unknown", None)
            .await
            .0,
        404
    );
    assert_eq!(
        provider
            .call("POST", "/sandboxes/sbx_unknown/snapshot", None)
            .await
            .0,
        404
    );
    assert_eq!(provider.call("GET", "/nowhere", None).await.0, 404);
    assert_eq!(provider.call("GET", "/sandboxes", None).await.0, 405);

    let repo = json!({"repo": {"owner": "acme", "name": "demo", "branch": "main"}});
    let (status, build) = provider.call("POST", "/images", Some(&repo)).await;
    assert_eq!(
        (status, build["build_id"].as_str()),
        (202, Some("local-noop"))
    );
    let (status, image) = provider.call("GET", "/images/local-noop", None).await;
    assert_eq!((status, image["status"].as_str()), (200, Some("ready")));
}

#[tokio::test]
async fn sandboxes_run_prompts_resend_unacked_frames_snapshot_and_end() {
    let mut provider = Provider::start();
    let room = Room::start().await;

    // Create: the bridge dials the room with its token and id, and says it is ready.
    let (status, created) = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body("sbx_a", &room.url, None)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["sandbox_id"], "sbx_a");
    assert!(created["provider_id"]
        .as_str()
        .unwrap_or("")
        .starts_with("local-"));
    let (status, conflict) = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body("sbx_a", &room.url, None)),
        )
        .await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    let (mut socket, path, headers) = room.accept(None).await.expect("the handshake succeeds");
    assert_eq!(path, "/v1/sessions/ses_test/sandbox");
    assert_eq!(
        header(&headers, "authorization"),
        Some("Bearer token-of-sbx_a")
    );
    assert_eq!(header(&headers, "x-sandbox-id"), Some("sbx_a"));
    let ready = next_frame(&mut socket).await;
    assert_eq!(
        (
            ready["type"].as_str(),
            ready["sandbox_id"].as_str(),
            ready["agent"].as_str()
        ),
        (Some("ready"), Some("sbx_a"), Some("dev"))
    );

    // A prompt: tokens, a command, a file edit, done. Tool calls are acked, the rest not.
    send(
        &mut socket,
        prompt("m1", "List and note\n$ ls -a\nwrite notes.txt: hello"),
    )
    .await;
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(&mut socket).await;
        if frame["type"] == "tool_call" {
            send(
                &mut socket,
                json!({"type": "ack", "ack_id": frame["ack_id"]}),
            )
            .await;
        }
        let done = frame["type"] == "done";
        frames.push(frame);
        if done {
            break;
        }
    }
    let kinds: Vec<&str> = frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or(""))
        .filter(|k| *k != "token")
        .collect();
    assert_eq!(kinds, ["tool_call", "tool_call", "file_edit", "done"]);
    let text: String = frames
        .iter()
        .filter(|f| f["type"] == "token")
        .filter_map(|f| f["delta"].as_str())
        .collect();
    assert!(text.starts_with("Working on: List and note\n"), "{text}");
    assert!(frames
        .iter()
        .filter(|f| f["type"] == "token")
        .all(|f| f["message_id"] == "m1"));
    let calls: Vec<&Value> = frames.iter().filter(|f| f["type"] == "tool_call").collect();
    assert_eq!(
        (calls[0]["status"].as_str(), calls[1]["status"].as_str()),
        (Some("running"), Some("completed"))
    );
    assert_eq!(calls[1]["input"]["command"], "ls -a");
    assert!(
        calls[1]["output"]
            .as_str()
            .unwrap_or("")
            .contains("README.md"),
        "{}",
        calls[1]
    );
    assert!(
        calls[1]["output"].as_str().unwrap_or("").contains(".git"),
        "{}",
        calls[1]
    );
    let edit = frames
        .iter()
        .find(|f| f["type"] == "file_edit")
        .unwrap()
        .clone();
    assert_eq!(edit["path"], "notes.txt");
    assert!(edit["diff"].as_str().unwrap_or("").contains("+hello"));
    let done = frames.last().unwrap().clone();
    assert_eq!(
        (done["ok"].as_bool(), done["message_id"].as_str()),
        (Some(true), Some("m1"))
    );
    let ack_ids: Vec<&str> = frames.iter().filter_map(|f| f["ack_id"].as_str()).collect();
    assert_eq!(ack_ids.len(), 4);
    assert_eq!(
        ack_ids
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        4,
        "ack ids are unique"
    );
    let workspace = provider.workspaces.join("sbx_a");
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes.txt")).unwrap(),
        "hello\n"
    );
    let git_name = Command::new("git")
        .args(["config", "user.name"])
        .current_dir(&workspace)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&git_name.stdout).trim(),
        "Ada Lovelace (agent)"
    );

    // The room drops the connection: on the next one, after `ready`, exactly the unacked
    // frames come again, in order, with their ack ids.
    socket.close(None).await.unwrap();
    while let Some(Ok(_)) = socket.next().await {}
    let (mut socket, _, _) = room.accept(None).await.expect("the bridge reconnects");
    assert_eq!(next_frame(&mut socket).await["type"], "ready");
    let again = [next_frame(&mut socket).await, next_frame(&mut socket).await];
    assert_eq!(again, [edit.clone(), done.clone()]);
    for frame in &again {
        send(
            &mut socket,
            json!({"type": "ack", "ack_id": frame["ack_id"]}),
        )
        .await;
    }

    // The same prompt again runs nothing; the next prompt's frames come straight after.
    send(&mut socket, prompt("m1", "List and note\n$ ls -a")).await;
    send(&mut socket, json!({"type": "nonsense"})).await;
    send(&mut socket, prompt("m2", "Try\nfail no luck today")).await;
    let frames = frames_until_done(&mut socket, "m2").await;
    assert!(frames.iter().all(|f| f["message_id"] == "m2"), "{frames:?}");
    let done = frames.last().unwrap();
    assert_eq!(
        (done["ok"].as_bool(), done["error"].as_str()),
        (Some(false), Some("no luck today"))
    );
    send(
        &mut socket,
        json!({"type": "ack", "ack_id": done["ack_id"]}),
    )
    .await;

    // Stop mid-command: the command's group is killed, the call closed, the prompt stopped.
    send(&mut socket, prompt("m3", "Wait\n$ sleep 30")).await;
    loop {
        let frame = next_frame(&mut socket).await;
        if frame["type"] == "tool_call" && frame["status"] == "running" {
            break;
        }
    }
    send(&mut socket, json!({"type": "stop", "message_id": "m3"})).await;
    let frames = frames_until_done(&mut socket, "m3").await;
    let done = frames.last().unwrap();
    assert_eq!(
        (done["ok"].as_bool(), done["error"].as_str()),
        (Some(false), Some("stopped"))
    );
    assert!(frames
        .iter()
        .any(|f| f["type"] == "tool_call" && f["status"] == "error" && f["output"] == "stopped"));

    // Snapshot, and a new sandbox from it, which finds the file. Its bridge dials the same
    // room; deleting it ends the process and so the connection.
    let (status, snapshot) = provider
        .call("POST", "/sandboxes/sbx_a/snapshot", None)
        .await;
    assert_eq!(status, 200, "{snapshot}");
    let snapshot_id = snapshot["snapshot_id"]
        .as_str()
        .expect("a snapshot id")
        .to_string();
    let (status, _) = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body("sbx_b", &room.url, Some(&snapshot_id))),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        std::fs::read_to_string(provider.workspaces.join("sbx_b/notes.txt")).unwrap(),
        "hello\n"
    );
    let (mut socket_b, _, headers) = room.accept(None).await.expect("the second bridge connects");
    assert_eq!(header(&headers, "x-sandbox-id"), Some("sbx_b"));
    assert_eq!(next_frame(&mut socket_b).await["type"], "ready");
    assert_eq!(
        provider.call("DELETE", "/sandboxes/sbx_b", None).await.0,
        200
    );
    provider.wait_for_log("sandbox sbx_b: bridge exited");
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(_)) = socket_b.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the deleted bridge's connection ends");
    assert_eq!(
        provider.call("DELETE", "/sandboxes/sbx_b", None).await.0,
        404
    );

    // A sandbox cloned from a repository; its room answers 410, which makes the bridge exit
    // instead of retrying.
    let source = provider.workspaces.with_extension("source");
    bridge::git::init_with_readme(&source, "main", "the source repository")
        .await
        .expect("a repository to clone");
    let gone = Room::start().await;
    let mut cloned = create_body("sbx_c", &gone.url, None);
    cloned["repo"]["clone_url"] = json!(source.display().to_string());
    let (status, _) = provider.call("POST", "/sandboxes", Some(&cloned)).await;
    assert_eq!(status, 201);
    assert_eq!(
        std::fs::read_to_string(provider.workspaces.join("sbx_c/README.md")).unwrap(),
        "# the source repository\n"
    );
    let _ = std::fs::remove_dir_all(&source);
    assert!(gone.accept(Some(410)).await.is_none());
    let exit = provider.wait_for_log("sandbox sbx_c: bridge exited");
    assert!(!exit.contains("exit status: 0"), "{exit}");

    // `shutdown` ends the first bridge cleanly; the ended sandbox can still be deleted once.
    send(&mut socket, json!({"type": "shutdown"})).await;
    let exit = provider.wait_for_log("sandbox sbx_a: bridge exited");
    assert!(exit.contains("exit status: 0"), "{exit}");
    assert_eq!(
        provider.call("DELETE", "/sandboxes/sbx_a", None).await.0,
        200
    );
    assert_eq!(
        provider.call("DELETE", "/sandboxes/sbx_a", None).await.0,
        404
    );

    // Nothing of the token reached a log line.
    while let Ok(line) = provider.lines.try_recv() {
        provider.seen.lock().unwrap().push(line);
    }
    assert!(!provider
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("token-of-")));
}
