//! The local provider end to end: `bridge provider` on a free port, its signature checks, and
//! sandboxes whose bridges dial a fake coordinator run by the test (a WebSocket server on
//! another free port). Slow by nature (real processes, git): each test starts its own provider,
//! and every wait is for an event, never for a fixed time.

use futures_util::{SinkExt, StreamExt};
use protocol::provider::{sign, SIGNATURE_HEADER};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

mod support;

use support::{fresh_nonce, now_ms, Provider, PATIENCE, SECRET};

/// Creates a sandbox for the room; returns its bridge's connection, past `ready`.
async fn sandbox(provider: &Provider, room: &Room, sandbox_id: &str) -> Socket {
    let (status, created) = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body(sandbox_id, &room.url, None)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (mut socket, _, _) = room.accept(None).await.expect("the bridge connects");
    assert_eq!(next_frame(&mut socket).await["type"], "ready");
    socket
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

/// Frames up to and including the `done` of `message_id`, acknowledging those `ack` picks.
async fn frames_until_done(
    socket: &mut Socket,
    message_id: &str,
    ack: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(socket).await;
        if frame["ack_id"].is_string() && ack(&frame) {
            send(socket, json!({"type": "ack", "ack_id": frame["ack_id"]})).await;
        }
        let done = frame["type"] == "done" && frame["message_id"] == message_id;
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// Runs a prompt, acknowledging every critical frame; returns its frames.
async fn run_prompt(socket: &mut Socket, message_id: &str, content: &str) -> Vec<Value> {
    send(socket, prompt(message_id, content)).await;
    frames_until_done(socket, message_id, |_| true).await
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

/// The output of the last completed tool call among `frames`.
fn tool_output(frames: &[Value]) -> String {
    frames
        .iter()
        .rfind(|f| f["type"] == "tool_call" && f["status"] != "running")
        .and_then(|f| f["output"].as_str())
        .unwrap_or("")
        .to_string()
}

fn error_code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"]["code"].as_str())
}

// ---------------------------------------------------------------------------------------
// The provider API: signatures, bodies, routes.

#[tokio::test]
async fn health_answers_without_a_signature() {
    let provider = Provider::start();
    let (status, health) = provider.raw("GET", "/health", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(health["ok"], true);
    assert_eq!(health["provider"], "local");
    assert!(health["app"].as_str().unwrap_or("").starts_with("bridge "));
}

#[tokio::test]
async fn unsigned_or_badly_signed_requests_are_unauthorized() {
    let provider = Provider::start();
    let body = create_body("sbx_x", "http://127.0.0.1:9", None)
        .to_string()
        .into_bytes();
    let signed = |secret: &[u8], t: u64, method: &str, path: &str, body: &[u8]| {
        sign(secret, t, &fresh_nonce(), method, path, body)
    };
    let wrong_secret = signed(b"another secret", now_ms(), "POST", "/sandboxes", &body);
    let other_body = signed(SECRET.as_bytes(), now_ms(), "POST", "/sandboxes", b"{}");
    let other_method = signed(SECRET.as_bytes(), now_ms(), "PUT", "/sandboxes", &body);
    let other_path = signed(SECRET.as_bytes(), now_ms(), "POST", "/images", &body);
    let other_query = signed(SECRET.as_bytes(), now_ms(), "POST", "/sandboxes?a=1", &body);
    let stale = signed(
        SECRET.as_bytes(),
        now_ms() - 10 * 60 * 1000,
        "POST",
        "/sandboxes",
        &body,
    );
    // The signature the coordinator sent before v2.
    let v1 = {
        let mut text = format!("{}.", now_ms()).into_bytes();
        text.extend_from_slice(&body);
        let mac = protocol::crypto::hex(&protocol::crypto::hmac_sha256(SECRET.as_bytes(), &text));
        format!("t={},v1={mac}", now_ms())
    };
    let check = |answer: (u16, Value)| {
        assert_eq!(
            error_code(&answer),
            (401, Some("unauthorized")),
            "{}",
            answer.1
        );
        assert!(answer.1["error"]["message"].is_string());
    };
    for signature in [
        None,
        Some(wrong_secret.as_str()),
        Some(other_body.as_str()),
        Some(other_method.as_str()),
        Some(other_path.as_str()),
        Some(other_query.as_str()),
        Some(stale.as_str()),
        Some(v1.as_str()),
        Some("garbage"),
    ] {
        let headers: Vec<(&str, &str)> = signature
            .map(|s| (SIGNATURE_HEADER, s))
            .into_iter()
            .collect();
        check(
            provider
                .raw("POST", "/sandboxes", &headers, Some(&body))
                .await,
        );
    }
    check(provider.raw("DELETE", "/sandboxes/sbx_x", &[], None).await);
}

#[tokio::test]
async fn a_signed_request_is_accepted_once() {
    let provider = Provider::start();
    let signature = sign(
        SECRET.as_bytes(),
        now_ms(),
        &fresh_nonce(),
        "GET",
        "/images/bld_unknown",
        b"",
    );
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    // Past the signature: the build is not known.
    let first = provider
        .raw("GET", "/images/bld_unknown", &headers, None)
        .await;
    assert_eq!(error_code(&first), (404, Some("not_found")));
    let replayed = provider
        .raw("GET", "/images/bld_unknown", &headers, None)
        .await;
    assert_eq!(error_code(&replayed), (401, Some("unauthorized")));
    assert!(
        replayed.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("already used")),
        "{}",
        replayed.1
    );
}

#[tokio::test]
async fn the_previous_secret_is_accepted_during_a_rotation() {
    let provider = Provider::start_with(&[("PROVIDER_SECRET_PREVIOUS", "the-secret-before")]);
    let path = "/images/bld_unknown";
    for secret in [SECRET.as_bytes(), b"the-secret-before"] {
        let signature = sign(secret, now_ms(), &fresh_nonce(), "GET", path, b"");
        let answer = provider
            .raw("GET", path, &[(SIGNATURE_HEADER, &signature)], None)
            .await;
        // Accepted (the route answers), where a wrong secret is 401.
        assert_eq!(error_code(&answer), (404, Some("not_found")));
    }
    let other = sign(
        b"never-the-secret",
        now_ms(),
        &fresh_nonce(),
        "GET",
        path,
        b"",
    );
    let answer = provider
        .raw("GET", path, &[(SIGNATURE_HEADER, &other)], None)
        .await;
    assert_eq!(error_code(&answer), (401, Some("unauthorized")));
    // Without the setting, the previous secret is refused.
    let plain = Provider::start();
    let old = sign(
        b"the-secret-before",
        now_ms(),
        &fresh_nonce(),
        "GET",
        path,
        b"",
    );
    let answer = plain
        .raw("GET", path, &[(SIGNATURE_HEADER, &old)], None)
        .await;
    assert_eq!(error_code(&answer), (401, Some("unauthorized")));
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_are_422_and_broken_json_is_400() {
    let provider = Provider::start();
    let wrong_shape = provider
        .call("POST", "/sandboxes", Some(&json!({"session_id": "s"})))
        .await;
    assert_eq!(error_code(&wrong_shape), (422, Some("invalid_field")));
    let broken = b"{not json";
    let signature = sign(
        SECRET.as_bytes(),
        now_ms(),
        &fresh_nonce(),
        "POST",
        "/sandboxes",
        broken,
    );
    let answer = provider
        .raw(
            "POST",
            "/sandboxes",
            &[(SIGNATURE_HEADER, &signature)],
            Some(broken),
        )
        .await;
    assert_eq!(error_code(&answer), (400, Some("invalid_json")));
}

#[tokio::test]
async fn bodies_over_a_mebibyte_are_refused_with_413() {
    let provider = Provider::start();
    let huge = vec![b' '; 2 * 1024 * 1024];
    let answer = provider.raw("POST", "/sandboxes", &[], Some(&huge)).await;
    assert_eq!(error_code(&answer), (413, Some("too_large")));
    // The connection's next request is answered as usual.
    assert_eq!(provider.raw("GET", "/health", &[], None).await.0, 200);
}

#[tokio::test]
async fn coordinators_outside_the_allowlist_are_forbidden() {
    let provider = Provider::start();
    let elsewhere = create_body("sbx_x", "https://coordinator.example.com", None);
    let answer = provider.call("POST", "/sandboxes", Some(&elsewhere)).await;
    assert_eq!(error_code(&answer), (403, Some("forbidden")));
}

#[tokio::test]
async fn bad_ids_and_missing_snapshots_are_refused() {
    let provider = Provider::start();
    let bad_id = create_body("../escape", "http://127.0.0.1:9", None);
    let answer = provider.call("POST", "/sandboxes", Some(&bad_id)).await;
    assert_eq!(error_code(&answer), (422, Some("invalid_field")));
    let missing_snapshot = create_body("sbx_x", "http://127.0.0.1:9", Some("snap_missing"));
    let answer = provider
        .call("POST", "/sandboxes", Some(&missing_snapshot))
        .await;
    assert_eq!(error_code(&answer), (404, Some("not_found")));
}

#[tokio::test]
async fn unknown_sandboxes_and_routes_are_404_and_wrong_methods_405() {
    let provider = Provider::start();
    let check = |answer: (u16, Value), status: u16| {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert!(answer.1["error"]["code"].is_string(), "{}", answer.1);
    };
    check(
        provider
            .call("DELETE", "/sandboxes/sbx_unknown", None)
            .await,
        404,
    );
    check(
        provider
            .call("POST", "/sandboxes/sbx_unknown/snapshot", None)
            .await,
        404,
    );
    check(provider.call("GET", "/nowhere", None).await, 404);
    check(provider.call("GET", "/images/other", None).await, 404);
    check(provider.call("GET", "/sandboxes", None).await, 405);
}

#[tokio::test]
async fn an_image_of_a_repository_the_git_host_does_not_have_fails_and_bad_bodies_are_refused() {
    let provider = Provider::start();
    let check = |answer: (u16, Value), status: u16| {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert!(answer.1["error"]["code"].is_string(), "{}", answer.1);
    };
    let repo = json!({"repo": {"owner": "acme", "name": "demo", "branch": "main"}});
    let (status, build) = provider.call("POST", "/images", Some(&repo)).await;
    assert_eq!(status, 202, "{build}");
    let path = format!("/images/{}", build["build_id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let image = loop {
        let (status, image) = provider.call("GET", &path, None).await;
        assert_eq!(status, 200, "{image}");
        if image["status"] != "building" || std::time::Instant::now() > deadline {
            break image;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(image["status"], "failed", "{image}");
    assert!(
        image["error"]
            .as_str()
            .unwrap()
            .contains("no repository acme/demo"),
        "{image}"
    );
    let bad_commit =
        json!({"repo": {"owner": "acme", "name": "demo", "branch": "main"}, "commit": "main"});
    check(
        provider.call("POST", "/images", Some(&bad_commit)).await,
        422,
    );
    let bad_owner = json!({"repo": {"owner": "..", "name": "demo", "branch": "main"}});
    check(
        provider.call("POST", "/images", Some(&bad_owner)).await,
        422,
    );
    check(provider.call("POST", "/heads", Some(&bad_owner)).await, 422);
    check(provider.call("POST", "/heads", Some(&repo)).await, 404);
    check(provider.call("GET", "/heads", None).await, 405);
}

// ---------------------------------------------------------------------------------------
// Sandboxes: bridges, prompts, snapshots, the end.

#[tokio::test]
async fn a_sandbox_bridge_dials_the_room_with_its_token_and_id() {
    let mut provider = Provider::start();
    let room = Room::start().await;
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
    let conflict = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body("sbx_a", &room.url, None)),
        )
        .await;
    assert_eq!(error_code(&conflict), (409, Some("conflict")));

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
    provider.assert_no_token_logged();
}

#[tokio::test]
async fn a_prompt_streams_tokens_a_command_an_edit_and_done() {
    let mut provider = Provider::start();
    let room = Room::start().await;
    let mut socket = sandbox(&provider, &room, "sbx_a").await;
    let frames = run_prompt(
        &mut socket,
        "m1",
        "List and note\n$ ls -a\nwrite notes.txt: hello",
    )
    .await;
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
    assert!(frames.iter().all(|f| f["message_id"] == "m1"));
    let calls: Vec<&Value> = frames.iter().filter(|f| f["type"] == "tool_call").collect();
    assert_eq!(
        (calls[0]["status"].as_str(), calls[1]["status"].as_str()),
        (Some("running"), Some("completed"))
    );
    assert_eq!(calls[1]["input"]["command"], "ls -a");
    let listing = tool_output(&frames);
    assert!(
        listing.contains("README.md") && listing.contains(".git"),
        "{listing}"
    );
    let edit = frames.iter().find(|f| f["type"] == "file_edit").unwrap();
    assert_eq!(edit["path"], "notes.txt");
    assert!(edit["diff"].as_str().unwrap_or("").contains("+hello"));
    let done = frames.last().unwrap();
    assert_eq!(done["ok"], true);

    // Tool calls, the edit and done are critical: each has its own ack id; tokens have none.
    let ack_ids: Vec<&str> = frames.iter().filter_map(|f| f["ack_id"].as_str()).collect();
    assert_eq!(ack_ids.len(), 4);
    assert_eq!(ack_ids.iter().collect::<HashSet<_>>().len(), 4);

    let workspace = provider.workspaces.join("sbx_a");
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes.txt")).unwrap(),
        "hello\n"
    );
    // The workspace is the agent's user's when the provider runs as root.
    let git_name = Command::new("git")
        .args(["-c", "safe.directory=*", "config", "user.name"])
        .current_dir(&workspace)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&git_name.stdout).trim(),
        "Ada Lovelace (agent)"
    );
    provider.assert_no_token_logged();
}

#[tokio::test]
async fn after_a_reconnect_exactly_the_unacked_frames_come_again() {
    let mut provider = Provider::start();
    let room = Room::start().await;
    let mut socket = sandbox(&provider, &room, "sbx_a").await;
    send(
        &mut socket,
        prompt("m1", "Note\n$ true\nwrite notes.txt: hello"),
    )
    .await;
    // Only the tool calls are acknowledged; the edit and done are not.
    let frames = frames_until_done(&mut socket, "m1", |f| f["type"] == "tool_call").await;
    let unacked: Vec<Value> = frames
        .iter()
        .filter(|f| f["type"] == "file_edit" || f["type"] == "done")
        .cloned()
        .collect();
    assert_eq!(unacked.len(), 2);

    // The room drops the connection: on the next one, after `ready`, the unacked frames come
    // again, in order, with their ack ids.
    socket.close(None).await.unwrap();
    while let Some(Ok(_)) = socket.next().await {}
    let (mut socket, _, _) = room.accept(None).await.expect("the bridge reconnects");
    let ready = next_frame(&mut socket).await;
    assert_eq!(
        (ready["type"].as_str(), ready["message_id"].as_str()),
        (Some("ready"), Some("m1"))
    );
    // The answer text was not acknowledged either (no `tokens_ack`): it comes again too, in
    // its place among the critical frames, from offset 0.
    let text = |frames: &[Value]| -> String {
        frames
            .iter()
            .filter(|f| f["type"] == "token")
            .map(|f| f["delta"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let mut again = Vec::new();
    while again
        .iter()
        .filter(|f: &&Value| f["type"] != "token")
        .count()
        < 2
    {
        again.push(next_frame(&mut socket).await);
    }
    let critical: Vec<Value> = again
        .iter()
        .filter(|f| f["type"] != "token")
        .cloned()
        .collect();
    assert_eq!(critical, unacked);
    assert_eq!(again[0]["offset"], 0);
    assert_eq!(text(&again), text(&frames));
    provider.assert_no_token_logged();
}

#[tokio::test]
async fn a_prompt_sent_again_does_not_run_twice() {
    let mut provider = Provider::start();
    let room = Room::start().await;
    let mut socket = sandbox(&provider, &room, "sbx_a").await;
    run_prompt(&mut socket, "m1", "Count\n$ echo x >> runs.txt").await;
    // The same prompt again (and a frame the bridge does not know) run nothing: the next
    // prompt's frames come straight after.
    send(&mut socket, prompt("m1", "Count\n$ echo x >> runs.txt")).await;
    send(&mut socket, json!({"type": "nonsense"})).await;
    let frames = run_prompt(&mut socket, "m2", "Try\nfail no luck today").await;
    assert!(frames.iter().all(|f| f["message_id"] == "m2"), "{frames:?}");
    let done = frames.last().unwrap();
    assert_eq!(
        (done["ok"].as_bool(), done["error"].as_str()),
        (Some(false), Some("no luck today"))
    );
    let runs = std::fs::read_to_string(provider.workspaces.join("sbx_a/runs.txt")).unwrap();
    assert_eq!(runs, "x\n");
    provider.assert_no_token_logged();
}

#[tokio::test]
async fn stop_kills_the_running_command_and_ends_the_prompt_stopped() {
    let mut provider = Provider::start();
    let room = Room::start().await;
    let mut socket = sandbox(&provider, &room, "sbx_a").await;
    send(&mut socket, prompt("m3", "Wait\n$ sleep 30")).await;
    loop {
        let frame = next_frame(&mut socket).await;
        if frame["type"] == "tool_call" && frame["status"] == "running" {
            break;
        }
    }
    send(&mut socket, json!({"type": "stop", "message_id": "m3"})).await;
    let frames = frames_until_done(&mut socket, "m3", |_| true).await;
    let done = frames.last().unwrap();
    assert_eq!(
        (done["ok"].as_bool(), done["error"].as_str()),
        (Some(false), Some("stopped"))
    );
    assert!(frames
        .iter()
        .any(|f| f["type"] == "tool_call" && f["status"] == "error" && f["output"] == "stopped"));
    provider.assert_no_token_logged();
}

#[tokio::test]
async fn a_snapshot_starts_a_new_sandbox_and_delete_ends_its_bridge() {
    let mut provider = Provider::start();
    let room = Room::start().await;
    let mut socket = sandbox(&provider, &room, "sbx_a").await;
    run_prompt(&mut socket, "m1", "Note\nwrite notes.txt: hello").await;
    let (status, snapshot) = provider
        .call("POST", "/sandboxes/sbx_a/snapshot", None)
        .await;
    assert_eq!(status, 200, "{snapshot}");
    let snapshot_id = snapshot["snapshot_id"].as_str().expect("a snapshot id");
    assert!(snapshot_id.starts_with("snap_"), "{snapshot_id}");

    // Another session cannot start from it.
    let mut foreign = create_body("sbx_c", &room.url, Some(snapshot_id));
    foreign["session_id"] = json!("ses_someone_else");
    let answer = provider.call("POST", "/sandboxes", Some(&foreign)).await;
    assert_eq!(error_code(&answer), (422, Some("invalid_field")));
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("belongs to another session")),
        "{}",
        answer.1
    );
    assert!(!provider.workspaces.join("sbx_c").exists());

    // The new sandbox starts from the snapshot, and its bridge dials the same room.
    let (status, _) = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body("sbx_b", &room.url, Some(snapshot_id))),
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

    // Deleting it ends the process and so the connection; it is gone after that.
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
    provider.assert_no_token_logged();
}

#[tokio::test]
async fn a_sandbox_clones_its_repository_and_exits_when_the_room_answers_410() {
    let mut provider = Provider::start();
    let source = provider.workspaces.with_extension("source");
    bridge::git::init_with_readme(&source, "main", "the source repository")
        .await
        .expect("a repository to clone");
    let gone = Room::start().await;
    let mut cloned = create_body("sbx_c", &gone.url, None);
    cloned["repo"]["clone_url"] = json!(source.display().to_string());
    let (status, _) = provider.call("POST", "/sandboxes", Some(&cloned)).await;
    assert_eq!(status, 201);
    // The bridge clones before it dials. 410: it exits instead of dialling again, and is not
    // started again.
    assert!(gone.accept(Some(410)).await.is_none());
    assert_eq!(
        std::fs::read_to_string(provider.workspaces.join("sbx_c/README.md")).unwrap(),
        "# the source repository\n"
    );
    let _ = std::fs::remove_dir_all(&source);
    let exit = provider.wait_for_log("sandbox sbx_c: bridge exited");
    assert!(exit.contains("exit status: 3"), "{exit}");
    provider.assert_no_token_logged();
}

#[tokio::test]
async fn shutdown_ends_the_bridge_cleanly_and_its_sandbox_is_deleted_once() {
    let mut provider = Provider::start();
    let room = Room::start().await;
    let mut socket = sandbox(&provider, &room, "sbx_a").await;
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
    provider.assert_no_token_logged();
}

// ---------------------------------------------------------------------------------------
// What reaches the agent's environment (SANDBOX_ENV_PASSTHROUGH).

/// The environment a dev-agent command sees in a new sandbox of `provider`.
async fn agent_environment(provider: &mut Provider) -> String {
    let room = Room::start().await;
    let mut socket = sandbox(provider, &room, "sbx_env").await;
    let frames = run_prompt(&mut socket, "m1", "Show\n$ env").await;
    provider.assert_no_token_logged();
    tool_output(&frames)
}

#[tokio::test]
async fn model_keys_reach_the_agent_but_no_secret_does() {
    let mut provider = Provider::start_with(&[
        ("ANTHROPIC_API_KEY", "test-anthropic-key"),
        ("NOT_A_MODEL_KEY", "stays-with-the-provider"),
    ]);
    let env = agent_environment(&mut provider).await;
    assert!(
        env.contains("ANTHROPIC_API_KEY=test-anthropic-key\n"),
        "{env}"
    );
    // The request's own env still reaches the sandbox, as before.
    assert!(env.contains("EXTRA_SETTING=1\n"), "{env}");
    for absent in [
        "NOT_A_MODEL_KEY",
        "PROVIDER_SECRET",
        SECRET,
        "SANDBOX_TOKEN",
        "token-of-",
        "must-not-override",
    ] {
        assert!(!env.contains(absent), "{absent} in {env}");
    }
}

#[tokio::test]
async fn a_passthrough_list_replaces_the_default_one() {
    let mut provider = Provider::start_with(&[
        ("SANDBOX_ENV_PASSTHROUGH", "MY_AGENT_SETTING"),
        ("MY_AGENT_SETTING", "on"),
        ("ANTHROPIC_API_KEY", "test-anthropic-key"),
    ]);
    let env = agent_environment(&mut provider).await;
    assert!(env.contains("MY_AGENT_SETTING=on\n"), "{env}");
    assert!(!env.contains("ANTHROPIC_API_KEY"), "{env}");
}

#[tokio::test]
async fn an_empty_passthrough_list_passes_nothing() {
    let mut provider = Provider::start_with(&[
        ("SANDBOX_ENV_PASSTHROUGH", ""),
        ("ANTHROPIC_API_KEY", "test-anthropic-key"),
    ]);
    let env = agent_environment(&mut provider).await;
    assert!(!env.contains("ANTHROPIC_API_KEY"), "{env}");
}

#[tokio::test]
async fn a_sandbox_gets_a_scratch_home_not_the_developers() {
    let mut provider = Provider::start_with(&[]);
    let env = agent_environment(&mut provider).await;
    let home = provider.workspaces.join(".homes").join("sbx_env");
    assert!(env.contains(&format!("HOME={}\n", home.display())), "{env}");
    if let Some(own) = std::env::var_os("HOME") {
        let own = format!("HOME={}\n", own.to_string_lossy());
        assert!(!env.contains(&own), "{env}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&home).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "only its user may enter it");
}

/// What the agent's shell can reach: the bridge's environment (its parent's), the folder of
/// token files, the bridge's own token file. None holds the token, and a tool that prints it
/// anyway (here `echo`) has it replaced before it leaves.
#[tokio::test]
async fn the_agent_finds_the_sandbox_token_nowhere_and_cannot_send_it_out() {
    let mut provider = Provider::start();
    let room = Room::start().await;
    let (status, created) = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body("sbx_secret", &room.url, None)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (mut socket, _, headers) = room.accept(None).await.expect("the bridge connects");
    // The bridge read its token from the file.
    assert_eq!(
        header(&headers, "authorization"),
        Some("Bearer token-of-sbx_secret")
    );
    assert_eq!(next_frame(&mut socket).await["type"], "ready");
    let tokens = provider.workspaces.join(".tokens");
    let commands = format!(
        "Look around\n\
         $ tr '\\0' '\\n' < /proc/$PPID/environ\n\
         $ ls -la {tokens}; cat {tokens}/* 2>&1; f=$(tr '\\0' '\\n' < /proc/$PPID/environ | sed -n 's/^SANDBOX_TOKEN_FILE=//p'); echo \"file: $f\"; cat \"$f\" 2>&1\n\
         $ echo the token is token-of-sbx_secret",
        tokens = tokens.display()
    );
    let frames = run_prompt(&mut socket, "m1", &commands).await;
    let outputs: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "tool_call" && f["status"] != "running")
        .filter_map(|f| f["output"].as_str())
        .collect();
    assert_eq!(outputs.len(), 3, "{frames:?}");
    // Where the agent is the bridge's user it reads the bridge's environment, which holds no
    // token; as root it is another user, to whom even that is closed.
    assert!(
        outputs[0].contains("SESSION_ID=ses_test") || outputs[0].contains("Permission denied"),
        "{}",
        outputs[0]
    );
    assert!(!outputs[0].contains("SANDBOX_TOKEN"), "{}", outputs[0]);
    assert!(outputs[1].contains("file: "), "{}", outputs[1]);
    assert_eq!(outputs[2], "the token is ***\n");
    for frame in &frames {
        assert!(
            !frame.to_string().contains("token-of-sbx_secret"),
            "{frame}"
        );
    }
    // The folder is the provider's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&tokens).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // The bridge's own folder in it is empty: the file went once read.
    for folder in std::fs::read_dir(&tokens).unwrap() {
        let folder = folder.unwrap().path();
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0, "{folder:?}");
    }
    provider.assert_no_token_logged();
}

/// A root provider runs the agent as another, unprivileged user (`nobody` unless told), while
/// the bridge stays root and not dumpable: the agent reads neither the bridge's environment,
/// its memory, its journal nor its credential socket, and what the bridge wrote for the agent
/// is the agent's. Skipped unless root.
#[tokio::test]
async fn a_root_provider_runs_the_agent_unprivileged_and_the_bridge_stays_closed() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let mut provider = Provider::start();
    let room = Room::start().await;
    let mut socket = sandbox(&provider, &room, "sbx_user").await;
    let frames = run_prompt(
        &mut socket,
        "m1",
        "Who am I\n$ id -u; echo \"home=$HOME\"; stat -c %u /proc/$PPID\n$ cat /proc/$PPID/environ 2>&1; head -c 16 /proc/$PPID/mem 2>&1; ls ../.state/sbx_user 2>&1; cat ../.state/sbx_user/bridge-journal-sbx_user.json 2>&1; ls /tmp/bridge-git-* 2>&1; echo\nwrite sub/note.txt: mine\n$ echo more >> sub/note.txt && echo appended",
    )
    .await;
    let outputs: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "tool_call" && f["status"] != "running")
        .filter_map(|f| f["output"].as_str())
        .collect();
    assert_eq!(outputs.len(), 3, "{frames:?}");
    let mut lines = outputs[0].lines();
    assert_eq!(lines.next(), Some("65534"), "{}", outputs[0]);
    assert!(outputs[0].contains("/.homes/sbx_user"), "{}", outputs[0]);
    // The bridge, the agent's parent, is root.
    assert_eq!(outputs[0].lines().last(), Some("0"), "{}", outputs[0]);
    assert!(outputs[1].contains("Permission denied"), "{}", outputs[1]);
    assert!(!outputs[1].contains("SESSION_ID="), "{}", outputs[1]);
    assert!(!outputs[1].contains("ack_prefix"), "{}", outputs[1]);
    assert!(!outputs[1].contains("credentials.sock"), "{}", outputs[1]);
    assert!(outputs[2].contains("appended"), "{}", outputs[2]);
    // The agent's workspace and what the bridge wrote in it are the agent's user's.
    use std::os::unix::fs::MetadataExt;
    for path in [
        "sbx_user",
        "sbx_user/.git",
        "sbx_user/sub",
        "sbx_user/sub/note.txt",
    ] {
        let meta = std::fs::metadata(provider.workspaces.join(path)).unwrap();
        assert_eq!(meta.uid(), 65534, "{path}");
    }
    // The journal is the bridge's, out of the workspace.
    let journal = provider
        .workspaces
        .join(".state/sbx_user/bridge-journal-sbx_user.json");
    let journal_meta = std::fs::metadata(&journal);
    assert!(
        journal_meta.is_err() || journal_meta.unwrap().uid() == 0,
        "{journal:?}"
    );
    assert!(!provider
        .workspaces
        .join("sbx_user/.git/bridge-journal-sbx_user.json")
        .exists());
    provider.assert_no_token_logged();
}

/// A warm sandbox: started with no session, no coordinator and no token; it dials only after
/// the claim, with the claim's token, and serves that session from then on.
#[tokio::test]
async fn a_warm_sandbox_waits_for_its_claim_then_serves_its_session() {
    let mut provider = Provider::start();
    let room = Room::start().await;
    let warm = json!({
        "sandbox_id": "sbx_w",
        "repo": {"owner": "acme", "name": "demo", "branch": "main"},
        "resources": {"cpu": 1, "memory_mb": 512, "disk_mb": 1024, "timeout_s": 600},
        "network": {"block_network": false, "allowed_hosts": []},
        "env": {}
    });
    let (status, created) = provider.call("POST", "/warm-sandboxes", Some(&warm)).await;
    assert_eq!(status, 201, "{created}");
    // Its token folder holds nothing and no session owns it; it has dialled nobody.
    let tokens = provider.workspaces.join(".tokens");
    let folders: Vec<_> = std::fs::read_dir(&tokens)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sbx_w-")
        })
        .collect();
    assert_eq!(folders.len(), 1);
    assert_eq!(std::fs::read_dir(&folders[0]).unwrap().count(), 0);
    assert!(!provider.workspaces.join(".owners/sandbox-sbx_w").exists());
    let no_dial = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        room.listener.accept(),
    )
    .await;
    assert!(
        no_dial.is_err(),
        "a warm bridge dials no room before its claim"
    );

    // A claim naming a coordinator outside the allowlist is refused, and changes nothing.
    let claim = |url: &str| json!({"session_id": "ses_warm", "coordinator_url": url, "sandbox_token": "token-of-sbx_w"});
    let refused = provider
        .call(
            "POST",
            "/sandboxes/sbx_w/claim",
            Some(&claim("https://evil.example")),
        )
        .await;
    assert_eq!(error_code(&refused), (403, Some("forbidden")));
    let (status, claimed) = provider
        .call("POST", "/sandboxes/sbx_w/claim", Some(&claim(&room.url)))
        .await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(
        claimed["provider_id"], created["provider_id"],
        "the same bridge"
    );
    let (mut socket, path, headers) = room.accept(None).await.expect("the bridge dials in");
    assert_eq!(path, "/v1/sessions/ses_warm/sandbox");
    assert!(headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == "Bearer token-of-sbx_w"));
    assert_eq!(next_frame(&mut socket).await["type"], "ready");
    assert_eq!(
        std::fs::read_dir(&folders[0]).unwrap().count(),
        0,
        "the bridge deleted its assignment"
    );
    assert_eq!(
        std::fs::read_to_string(provider.workspaces.join(".owners/sandbox-sbx_w")).unwrap(),
        "ses_warm"
    );
    let frames = run_prompt(&mut socket, "m1", "hello warm").await;
    assert_eq!(frames.last().unwrap()["ok"], true, "{frames:?}");
    // Claimed once: a second claim is a conflict; a cold sandbox is not claimable.
    let again = provider
        .call("POST", "/sandboxes/sbx_w/claim", Some(&claim(&room.url)))
        .await;
    assert_eq!(error_code(&again), (409, Some("conflict")));
    let mut foreign = claim(&room.url);
    foreign["session_id"] = json!("ses_other");
    let foreign = provider
        .call("POST", "/sandboxes/sbx_w/claim", Some(&foreign))
        .await;
    assert_eq!(error_code(&foreign), (409, Some("conflict")));
    assert_eq!(
        std::fs::read_to_string(provider.workspaces.join(".owners/sandbox-sbx_w")).unwrap(),
        "ses_warm",
        "a refused claim changes no owner"
    );
    let unknown = provider
        .call("POST", "/sandboxes/sbx_nope/claim", Some(&claim(&room.url)))
        .await;
    assert_eq!(error_code(&unknown), (404, Some("not_found")));
    provider.assert_no_token_logged();
}

/// Answer text the room has not acknowledged survives the bridge's death: the journal keeps it,
/// and the bridge the provider starts again sends it from offset 0, then ends the interrupted
/// prompt with `text_bytes` counting it.
#[tokio::test]
async fn unacknowledged_answer_text_survives_a_killed_bridge() {
    let provider = Provider::start_with(&[("DEV_AGENT_DELAY_MS", "20")]);
    let room = Room::start().await;
    let (status, created) = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body("sbx_text", &room.url, None)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let pid: i32 = created["provider_id"]
        .as_str()
        .and_then(|id| id.strip_prefix("local-"))
        .and_then(|pid| pid.parse().ok())
        .expect("local-<pid>");
    let (mut socket, _, _) = room.accept(None).await.expect("the bridge connects");
    assert_eq!(next_frame(&mut socket).await["type"], "ready");
    send(&mut socket, prompt("m1", "stream 2000")).await;
    // Text arrives and is never acknowledged (no tokens_ack).
    let mut seen = String::new();
    while seen.len() < 200 {
        let frame = next_frame(&mut socket).await;
        if frame["type"] == "token" {
            assert_eq!(frame["offset"].as_u64(), Some(seen.len() as u64), "{frame}");
            seen.push_str(frame["delta"].as_str().unwrap());
        }
    }
    // Past the journal's interval, then a crash.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // SAFETY: kill(2) of the bridge this test's provider started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    drop(socket);
    let (mut socket, _, _) = room
        .accept(None)
        .await
        .expect("the bridge is started again");
    assert_eq!(next_frame(&mut socket).await["type"], "ready");
    let frames = frames_until_done(&mut socket, "m1", |_| true).await;
    let mut resent = String::new();
    for frame in frames.iter().filter(|f| f["type"] == "token") {
        assert_eq!(
            frame["offset"].as_u64(),
            Some(resent.len() as u64),
            "{frame}"
        );
        resent.push_str(frame["delta"].as_str().unwrap());
    }
    assert!(
        resent.starts_with(&seen),
        "{resent:?} does not hold {seen:?}"
    );
    let done = frames.last().unwrap();
    assert_eq!(done["type"], "done");
    assert_eq!(done["ok"], false);
    assert_eq!(
        done["text_bytes"].as_u64(),
        Some(resent.len() as u64),
        "{done}"
    );
}
