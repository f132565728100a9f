//! Git from the sandbox, end to end: `bridge credential` on git's side, the relay in `bridge
//! run`, the local git host in `bridge provider`, and a prompt's work committed and pushed to
//! the session branch.
//!
//! The fake coordinator is a small hyper server on a free port that plays the room's two
//! parts a bridge talks to: the sandbox WebSocket and `POST …/sandbox/git-credentials`, which
//! mints local git tokens with the provider secret as the room does under `npm run dev`.
//! Slow by nature (real processes, real git); every wait is for an event.

mod support;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use protocol::git::{sign_local_token, CredentialRequest};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use support::{now_ms, scratch, Provider, PATIENCE, SECRET};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const SESSION: &str = "ses_git";
const BRANCH: &str = "agent/ses_git";

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// `git args…` in `dir`, which must succeed; its stdout, trimmed.
fn git(dir: &Path, args: &[&str]) -> String {
    // The test reads workspaces that belong to the agent's user when it runs as root.
    let output = Command::new("git")
        .args(["-c", "safe.directory=*"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A git root holding `acme/demo.git` (one commit on `main`, as `npm run dev` makes it) and
/// an empty `acme/web.git`.
fn git_root() -> PathBuf {
    let root = scratch("git-root");
    let source = root.with_extension("source");
    std::fs::create_dir_all(&source).unwrap();
    git(&source, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(source.join("README.md"), "# acme/demo\n").unwrap();
    git(&source, &["add", "README.md"]);
    git(
        &source,
        &[
            "-c",
            "user.name=Session coordinator",
            "-c",
            "user.email=coordinator@localhost",
            "commit",
            "--quiet",
            "-m",
            "Initial commit",
        ],
    );
    std::fs::create_dir_all(root.join("acme")).unwrap();
    git(
        &root.join("acme"),
        &[
            "clone",
            "--quiet",
            "--bare",
            source.to_str().unwrap(),
            "demo.git",
        ],
    );
    git(
        &root.join("acme"),
        &["init", "--quiet", "--bare", "web.git"],
    );
    let _ = std::fs::remove_dir_all(&source);
    root
}

/// A provider serving `root` as its git host.
fn provider_with(root: &Path) -> Provider {
    Provider::start_with_args(
        &[Path::new("--git-root").as_os_str(), root.as_os_str()],
        &[],
    )
}

/// `GET /images/:id` until the build is no longer building.
async fn finished_build(provider: &Provider, build_id: &str) -> Value {
    let path = format!("/images/{build_id}");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, build) = provider.call("GET", &path, None).await;
        assert_eq!(status, 200, "{build}");
        if build["status"] != "building" {
            return build;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the build did not finish: {build}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn heads_come_from_the_git_host_and_images_are_clones_at_a_commit() {
    let root = git_root();
    let provider = provider_with(&root);
    let head = git(
        &root.join("acme/demo.git"),
        &["rev-parse", "refs/heads/main"],
    );
    let demo = json!({"repo": {"owner": "acme", "name": "demo", "branch": "main"}});
    assert_eq!(
        provider.call("POST", "/heads", Some(&demo)).await,
        (200, json!({"branch": "main", "commit": head}))
    );
    let other = json!({"repo": {"owner": "acme", "name": "demo", "branch": "nope"}});
    assert_eq!(provider.call("POST", "/heads", Some(&other)).await.0, 404);
    let empty = json!({"repo": {"owner": "acme", "name": "web", "branch": "main"}});
    assert_eq!(provider.call("POST", "/heads", Some(&empty)).await.0, 404);

    let ask = json!({"repo": {"owner": "acme", "name": "demo", "branch": "main"}, "commit": head});
    let (status, started) = provider.call("POST", "/images", Some(&ask)).await;
    assert_eq!(status, 202, "{started}");
    let build = finished_build(&provider, started["build_id"].as_str().unwrap()).await;
    assert_eq!(build["status"], "ready", "{build}");
    assert_eq!(build["commit"], head);
    let image_id = build["image_id"].as_str().unwrap();
    let image = provider.workspaces.join(".images").join(image_id);
    assert_eq!(git(&image, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&image, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    let marker: Value =
        serde_json::from_slice(&std::fs::read(image.join(".git/sandbox-image")).unwrap()).unwrap();
    assert_eq!(
        marker,
        json!({"image_id": image_id, "commit": head, "repo": "acme/demo"})
    );

    // Only the newest three images of a repository are kept.
    let mut newest = String::new();
    for _ in 0..3 {
        let (_, started) = provider.call("POST", "/images", Some(&ask)).await;
        let build = finished_build(&provider, started["build_id"].as_str().unwrap()).await;
        newest = build["image_id"].as_str().unwrap().to_string();
    }
    let images = provider.workspaces.join(".images");
    let kept: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(
        kept.contains(&newest) && !kept.contains(&image_id.to_string()),
        "{kept:?}"
    );

    // A commit the repository does not have: the build fails with git's reason.
    let missing = json!({"repo": {"owner": "acme", "name": "demo", "branch": "main"}, "commit": "0".repeat(40)});
    let (_, started) = provider.call("POST", "/images", Some(&missing)).await;
    let build = finished_build(&provider, started["build_id"].as_str().unwrap()).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert!(build["image_id"].is_null());
    assert!(
        build["error"].as_str().unwrap().contains("git checkout"),
        "{build}"
    );
}

/// What the fake coordinator answers credential requests with.
#[derive(Clone)]
enum Grant {
    /// A local git token for the repository in the request's path.
    Mint,
    /// This status, with an error body.
    Refuse(u16),
}

/// The fake coordinator: bridge sockets arrive on `sockets`; credential requests are recorded.
struct Coordinator {
    url: String,
    sockets: mpsc::UnboundedReceiver<Socket>,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    grant: Arc<Mutex<Grant>>,
    /// When minted tokens expire: fixed, so a test knows the token the bridge will get.
    expires_ms: u64,
}

/// The token the fake coordinator mints for `repo`.
fn minted(coordinator: &Coordinator, repo: &str) -> String {
    sign_local_token(SECRET.as_bytes(), repo, coordinator.expires_ms)
}

impl Coordinator {
    async fn start() -> Coordinator {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, sockets) = mpsc::unbounded_channel();
        let requests: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let grant = Arc::new(Mutex::new(Grant::Mint));
        let expires_ms = now_ms() + 3_600_000;
        let (seen, granting) = (requests.clone(), grant.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (tx, seen, granting) = (tx.clone(), seen.clone(), granting.clone());
                let service = hyper::service::service_fn(move |request| {
                    let (tx, seen, granting) = (tx.clone(), seen.clone(), granting.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            coordinator_answer(request, tx, seen, granting, expires_ms).await,
                        )
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades(),
                );
            }
        });
        Coordinator {
            url,
            sockets,
            requests,
            grant,
            expires_ms,
        }
    }

    async fn accept(&mut self) -> Socket {
        tokio::time::timeout(PATIENCE, self.sockets.recv())
            .await
            .expect("a bridge dials in")
            .unwrap()
    }

    fn grant(&self, grant: Grant) {
        *self.grant.lock().unwrap() = grant;
    }

    /// The credential requests so far: the Authorization header and the body.
    fn requests(&self) -> Vec<(String, Value)> {
        self.requests.lock().unwrap().clone()
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

async fn coordinator_answer(
    mut request: Request<Incoming>,
    sockets: mpsc::UnboundedSender<Socket>,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    grant: Arc<Mutex<Grant>>,
    expires_ms: u64,
) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let path = request.uri().path().to_string();
    let sandbox_id = header("x-sandbox-id");
    let authorized = header("authorization") == format!("Bearer token-of-{sandbox_id}");
    if path == format!("/v1/sessions/{SESSION}/sandbox") && header("upgrade") == "websocket" {
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
            header("sec-websocket-key").as_bytes(),
        );
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                let _ = sockets.send(socket);
            }
        });
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert("upgrade", "websocket".parse().unwrap());
        headers.insert("connection", "Upgrade".parse().unwrap());
        headers.insert("sec-websocket-accept", accept.parse().unwrap());
        return response;
    }
    if path != format!("/v1/sessions/{SESSION}/sandbox/git-credentials") {
        return reply(
            404,
            json!({"error": {"code": "not_found", "message": "no route"}}),
        );
    }
    let auth = header("authorization");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let Ok(asked) = serde_json::from_slice::<CredentialRequest>(&body) else {
        return reply(
            400,
            json!({"error": {"code": "invalid_json", "message": "not a request"}}),
        );
    };
    seen.lock()
        .unwrap()
        .push((auth, serde_json::to_value(&asked).unwrap()));
    if !authorized {
        return reply(
            401,
            json!({"error": {"code": "unauthorized", "message": "who?"}}),
        );
    }
    let grant = grant.lock().unwrap().clone();
    match grant {
        Grant::Refuse(status) => reply(
            status,
            json!({"error": {"code": "forbidden", "message": "not this repository"}}),
        ),
        Grant::Mint => {
            let repo = asked
                .path
                .as_deref()
                .and_then(|p| p.strip_prefix("git/"))
                .and_then(|p| p.strip_suffix(".git"))
                .unwrap_or("");
            let token = sign_local_token(SECRET.as_bytes(), repo, expires_ms);
            reply(
                200,
                json!({"username": "x-access-token", "password": token}),
            )
        }
    }
}

fn create_body(sandbox_id: &str, coordinator: &str, clone_url: &str) -> Value {
    json!({
        "session_id": SESSION, "sandbox_id": sandbox_id, "coordinator_url": coordinator,
        "sandbox_token": format!("token-of-{sandbox_id}"),
        "repo": {"owner": "acme", "name": "demo", "branch": "main", "clone_url": clone_url},
        "resources": {"cpu": 1, "memory_mb": 512, "disk_mb": 1024, "timeout_s": 600},
        "network": {"block_network": false, "allowed_hosts": []},
        "env": {}
    })
}

/// Creates a sandbox cloning `clone_url`; returns its bridge's connection, past `ready`.
async fn sandbox(
    provider: &Provider,
    coordinator: &mut Coordinator,
    sandbox_id: &str,
    clone_url: &str,
) -> Socket {
    let (status, created) = provider
        .call(
            "POST",
            "/sandboxes",
            Some(&create_body(sandbox_id, &coordinator.url, clone_url)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let mut socket = coordinator.accept().await;
    assert_eq!(next_frame(&mut socket).await["type"], "ready");
    socket
}

/// The next frame that is not a heartbeat; critical ones are acknowledged.
async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame arrives")
            .expect("the socket is open")
            .expect("a good frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).expect("frames are JSON");
            if let Some(ack_id) = frame["ack_id"].as_str() {
                let ack = json!({"type": "ack", "ack_id": ack_id}).to_string();
                socket.send(Message::text(ack)).await.unwrap();
            }
            if frame["type"] != "heartbeat" {
                return frame;
            }
        }
    }
}

/// Runs a prompt by Ada; the frames up to its `done`, tokens left out.
async fn run_prompt(
    socket: &mut Socket,
    message_id: &str,
    content: &str,
    push_branch: Option<&str>,
) -> Vec<Value> {
    let mut prompt = json!({"type": "prompt", "message_id": message_id, "content": content,
        "author": {"name": "Ada Lovelace", "email": "ada@example.com"}});
    if let Some(branch) = push_branch {
        prompt["push_branch"] = json!(branch);
    }
    socket
        .send(Message::text(prompt.to_string()))
        .await
        .unwrap();
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(socket).await;
        let done = frame["type"] == "done" && frame["message_id"] == message_id;
        if frame["type"] != "token" {
            frames.push(frame);
        }
        if done {
            return frames;
        }
    }
}

fn kinds(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or(""))
        .collect()
}

fn frame<'a>(frames: &'a [Value], kind: &str) -> &'a Value {
    frames
        .iter()
        .find(|f| f["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} frame in {frames:?}"))
}

fn tool_output(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| f["type"] == "tool_call" && f["status"] == "completed")
        .filter_map(|f| f["output"].as_str())
        .collect()
}

// --- the helper on git's side ---------------------------------------------------------------

/// A relay socket that answers every connection with `answer`; what it was sent.
fn fake_relay(answer: &'static str) -> (PathBuf, Arc<Mutex<Vec<String>>>) {
    let dir = scratch("relay");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut line);
            record.lock().unwrap().push(line);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (socket, seen)
}

/// `bridge credential <operation> --socket <socket>` with `input` on stdin and nothing in its
/// environment but PATH.
fn helper(socket: &Path, operation: &str, input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["credential", "--socket"])
        .arg(socket)
        .arg(operation)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

const GIT_ASKS: &str = "capability[]=authtype\nprotocol=http\nhost=127.0.0.1:8790\npath=git/acme/demo.git\nwwwauth[]=Basic realm=\"git\"\n\n";

#[test]
fn the_helper_answers_get_from_the_relay_and_ignores_store_and_erase() {
    let (socket, seen) = fake_relay(
        "{\"credential\":{\"username\":\"x-access-token\",\"password\":\"lg1.1.ab\"}}\n",
    );
    let got = helper(&socket, "get", GIT_ASKS);
    assert_eq!(got.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "username=x-access-token\npassword=lg1.1.ab\n"
    );
    let asked: Value = serde_json::from_str(&seen.lock().unwrap()[0]).unwrap();
    assert_eq!(
        asked,
        json!({"protocol": "http", "host": "127.0.0.1:8790", "path": "git/acme/demo.git"})
    );
    for operation in ["store", "erase", "capability"] {
        let done = helper(
            &socket,
            operation,
            "protocol=http\nhost=h\nusername=u\npassword=p\n\n",
        );
        assert_eq!(done.status.code(), Some(0), "{operation}");
        assert!(
            done.stdout.is_empty() && done.stderr.is_empty(),
            "{operation}"
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 1, "only get asks the relay");
    let _ = std::fs::remove_dir_all(socket.parent().unwrap());
}

#[test]
fn a_refusal_or_a_malformed_request_prints_nothing_and_exits_0() {
    let (socket, seen) = fake_relay("{\"refused\":\"the coordinator answered HTTP 403\"}\n");
    let refused = helper(&socket, "get", GIT_ASKS);
    assert_eq!(refused.status.code(), Some(0));
    assert!(refused.stdout.is_empty());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("HTTP 403"));
    for malformed in [
        "protocol=https\nhost github.com\n\n",
        "path=a/b.git\n\n",
        "",
    ] {
        let done = helper(&socket, "get", malformed);
        assert_eq!(done.status.code(), Some(0), "{malformed:?}");
        assert!(done.stdout.is_empty(), "{malformed:?}");
        assert!(!done.stderr.is_empty(), "{malformed:?} says why");
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "malformed requests are not relayed"
    );
    let (garbage, _) =
        fake_relay("{\"credential\":{\"username\":\"u\",\"password\":\"a\\nhost=evil\"}}\n");
    assert!(helper(&garbage, "get", GIT_ASKS).stdout.is_empty());
    let gone = scratch("no-relay").join("s");
    let unreachable = helper(&gone, "get", GIT_ASKS);
    assert_eq!(unreachable.status.code(), Some(0));
    assert!(unreachable.stdout.is_empty());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("not answering"));
    for dir in [&socket, &garbage] {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}

// --- the local git host ---------------------------------------------------------------------

async fn git_host_get(
    provider: &Provider,
    path: &str,
    auth: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = provider
        .http
        .get(format!("{}{path}", provider.base))
        .timeout(PATIENCE);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_git_host_wants_a_live_token_for_the_repository() {
    let root = git_root();
    let provider = provider_with(&root);
    let refs = "/git/acme/demo.git/info/refs?service=git-upload-pack";
    let live = sign_local_token(SECRET.as_bytes(), "acme/demo", now_ms() + 60_000);
    let expired = sign_local_token(SECRET.as_bytes(), "acme/demo", now_ms() - 1);
    let other_repo = sign_local_token(SECRET.as_bytes(), "acme/web", now_ms() + 60_000);
    let other_secret = sign_local_token(b"another secret", "acme/demo", now_ms() + 60_000);
    for auth in [
        None,
        Some(("x-access-token", "lg1.garbage")),
        Some(("x-access-token", expired.as_str())),
        Some(("x-access-token", other_repo.as_str())),
        Some(("x-access-token", other_secret.as_str())),
        Some(("someone-else", live.as_str())),
    ] {
        let response = git_host_get(&provider, refs, auth).await;
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"git\"",
            "{auth:?}"
        );
    }
    let ok = git_host_get(&provider, refs, Some(("x-access-token", &live))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["content-type"],
        "application/x-git-upload-pack-advertisement"
    );
    let advertisement = ok.text().await.unwrap();
    assert!(advertisement.contains("refs/heads/main"), "{advertisement}");
    let web_token = ("x-access-token", other_repo.as_str());
    let missing = sign_local_token(SECRET.as_bytes(), "acme/none", now_ms() + 60_000);
    assert_eq!(
        git_host_get(
            &provider,
            "/git/acme/none.git/info/refs?service=git-upload-pack",
            Some(("x-access-token", &missing))
        )
        .await
        .status(),
        404
    );
    // Sent as they are (an HTTP client would resolve the dots), with a token for acme/web.
    for bad in [
        "/git/acme/../web.git/info/refs",
        "/git/acme/demo.git/../web.git/info/refs",
        "/git/acme/web.git/./info/refs",
        "/git/acme/web/info/refs",
        "/git/acme%2Fweb.git/info/refs",
        "/git/",
    ] {
        assert_eq!(raw_status(&provider, bad, web_token).await, 404, "{bad}");
    }
    // Tokens never show in the provider's log, refused or not.
    let log = provider_log(provider);
    for token in [&live, &expired, &other_repo] {
        assert!(!log.contains(token.as_str()), "{log}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// The status of `GET <path>` written byte for byte.
async fn raw_status(provider: &Provider, path: &str, (user, password): (&str, &str)) -> u16 {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(provider.address())
        .await
        .unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: git\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

fn provider_log(mut provider: Provider) -> String {
    provider.log().join("\n")
}

#[tokio::test]
async fn gzipped_requests_are_inflated_by_http_backend() {
    let root = git_root();
    let provider = provider_with(&root);
    let main = git(&root.join("acme/demo.git"), &["rev-parse", "main"]);
    // What git sends to fetch `main` (protocol v0), compressed as git compresses large ones.
    let request = format!("0032want {main}\n00000009done\n");
    let mut gzip = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    gzip.stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let compressed = gzip.wait_with_output().unwrap().stdout;
    let token = sign_local_token(SECRET.as_bytes(), "acme/demo", now_ms() + 60_000);
    let response = provider
        .http
        .post(format!(
            "{}/git/acme/demo.git/git-upload-pack",
            provider.base
        ))
        .basic_auth("x-access-token", Some(&token))
        .header("content-type", "application/x-git-upload-pack-request")
        .header("content-encoding", "gzip")
        .body(compressed)
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert!(
        body.starts_with(b"0008NAK\n"),
        "{:?}",
        &body[..body.len().min(40)]
    );
    assert!(body.windows(4).any(|w| w == b"PACK"), "a pack follows");
    drop(provider);
    let _ = std::fs::remove_dir_all(&root);
}

// --- a sandbox's git, end to end ------------------------------------------------------------

/// The session branch's commit in the git host: `%an <%ae>`, the message, the files.
fn branch_commit(root: &Path, format: &str) -> String {
    git(
        &root.join("acme/demo.git"),
        &["log", "-1", &format!("--format={format}"), BRANCH],
    )
}

#[tokio::test]
async fn a_prompt_that_writes_a_file_ends_on_the_session_branch_in_its_authors_name() {
    let root = git_root();
    let mut provider = provider_with(&root);
    let mut coordinator = Coordinator::start().await;
    let clone_url = format!("{}/git/acme/demo.git", provider.base);
    let mut socket = sandbox(&provider, &mut coordinator, "sbx_a", &clone_url).await;

    // Cloned through the helper: the coordinator was asked, with the sandbox token, for this
    // repository on this host; nothing of either credential is in the workspace's config.
    let workspace = provider.workspaces.join("sbx_a");
    assert_eq!(
        std::fs::read_to_string(workspace.join("README.md")).unwrap(),
        "# acme/demo\n"
    );
    let requests = coordinator.requests();
    assert!(!requests.is_empty());
    let (auth, asked) = &requests[0];
    assert_eq!(auth, "Bearer token-of-sbx_a");
    assert_eq!(
        asked,
        &json!({"protocol": "http", "host": provider.address(), "path": "git/acme/demo.git"})
    );
    let config = std::fs::read_to_string(workspace.join(".git/config")).unwrap();
    let live = minted(&coordinator, "acme/demo");
    assert!(
        !config.contains("token-of-") && !config.contains(&live),
        "{config}"
    );
    assert!(config.contains("url = http://127.0.0.1:"), "{config}");
    assert!(config.contains("credential --socket"), "{config}");
    assert!(config.contains("useHttpPath = true"), "{config}");

    let frames = run_prompt(&mut socket, "m1", "write hello.txt: hi", Some(BRANCH)).await;
    assert_eq!(kinds(&frames), ["file_edit", "pushed", "done"]);
    let pushed = frame(&frames, "pushed");
    let tip = git(&root.join("acme/demo.git"), &["rev-parse", BRANCH]);
    assert_eq!(pushed["branch"], BRANCH);
    assert_eq!(pushed["commit"], tip.as_str());
    assert_eq!(pushed["message_id"], "m1");
    assert_eq!(
        (
            &pushed["files_changed"],
            &pushed["additions"],
            &pushed["deletions"]
        ),
        (&json!(1), &json!(1), &json!(0))
    );
    assert!(pushed["ack_id"].is_string());
    assert_eq!(
        branch_commit(&root, "%an <%ae>|%cn <%ce>"),
        "Ada Lovelace (agent) <ada@example.com>|Ada Lovelace (agent) <ada@example.com>"
    );
    assert_eq!(
        branch_commit(&root, "%B"),
        "write hello.txt: hi\n\nSession: ses_git"
    );
    let main = git(&root.join("acme/demo.git"), &["rev-parse", "main"]);
    assert_eq!(
        branch_commit(&root, "%P"),
        main,
        "on top of main, which is unchanged"
    );
    assert_eq!(
        git(
            &root.join("acme/demo.git"),
            &["show", &format!("{BRANCH}:hello.txt")]
        ),
        "hi"
    );
    assert_eq!(
        git(&workspace, &["rev-parse", "--abbrev-ref", "HEAD"]),
        BRANCH
    );

    // Nothing changed: no commit, no push.
    let frames = run_prompt(&mut socket, "m2", "Just thinking\n$ true", Some(BRANCH)).await;
    assert!(!kinds(&frames).contains(&"pushed"), "{frames:?}");
    assert_eq!(
        git(&root.join("acme/demo.git"), &["rev-parse", BRANCH]),
        tip
    );

    // A change replacing a line: one file, one addition, one deletion.
    let frames = run_prompt(
        &mut socket,
        "m3",
        "Say more\nwrite hello.txt: hello",
        Some(BRANCH),
    )
    .await;
    let pushed = frame(&frames, "pushed");
    assert_eq!(
        (
            &pushed["files_changed"],
            &pushed["additions"],
            &pushed["deletions"]
        ),
        (&json!(1), &json!(1), &json!(1))
    );
    assert_eq!(branch_commit(&root, "%s|%P"), format!("Say more|{tip}"));

    // A prompt without a push branch is neither committed nor pushed.
    let head = git(&workspace, &["rev-parse", "HEAD"]);
    let frames = run_prompt(&mut socket, "m4", "write draft.txt: wip", None).await;
    assert!(!kinds(&frames).contains(&"pushed"), "{frames:?}");
    assert_eq!(git(&workspace, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&workspace, &["status", "--porcelain"]), "?? draft.txt");

    // The agent's own git asks the same helper: where the agent is the bridge's user it gets the
    // repository's credential, and the sandbox token is neither in its environment nor in what
    // the helper says. A credential the
    // bridge handed out is hidden in the tool's output before it leaves.
    let frames = run_prompt(
        &mut socket,
        "m5",
        &format!("$ printf 'protocol=http\\nhost={}\\npath=git/acme/demo.git\\n\\n' | git credential fill; env", provider.address()),
        None,
    )
    .await;
    let output = tool_output(&frames);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // As root the agent is another user, to whom the helper's socket is closed: only the
        // bridge's own git gets credentials.
        assert!(!output.contains("password="), "{output}");
        assert!(output.contains("Permission denied"), "{output}");
    } else {
        assert!(output.contains("username=x-access-token"), "{output}");
        assert!(output.contains("password=***\n"), "{output}");
    }
    assert!(!output.contains(&live), "{output}");
    assert!(!output.contains("token-of-"), "{output}");
    provider.assert_no_token_logged();
    let log = provider.log().join("\n");
    assert!(!log.contains(&live), "no git credential in the log");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_new_sandbox_of_the_session_continues_its_branch() {
    let root = git_root();
    let provider = provider_with(&root);
    let mut coordinator = Coordinator::start().await;
    let clone_url = format!("{}/git/acme/demo.git", provider.base);
    let mut first = sandbox(&provider, &mut coordinator, "sbx_1", &clone_url).await;
    let frames = run_prompt(&mut first, "m1", "write one.txt: 1", Some(BRANCH)).await;
    assert!(kinds(&frames).contains(&"pushed"));
    let tip = git(&root.join("acme/demo.git"), &["rev-parse", BRANCH]);
    drop(first);

    let mut second = sandbox(&provider, &mut coordinator, "sbx_2", &clone_url).await;
    let frames = run_prompt(&mut second, "m2", "write two.txt: 2\n$ ls", Some(BRANCH)).await;
    assert!(
        tool_output(&frames).contains("one.txt"),
        "the first sandbox's work is there"
    );
    let pushed = frame(&frames, "pushed");
    assert_eq!(
        (&pushed["files_changed"], &pushed["additions"]),
        (&json!(1), &json!(1)),
        "only the new file counts"
    );
    assert_eq!(branch_commit(&root, "%P"), tip);
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_failed_push_is_an_error_without_credentials_and_is_tried_again() {
    let root = git_root();
    let provider = provider_with(&root);
    let mut coordinator = Coordinator::start().await;
    let clone_url = format!("{}/git/acme/demo.git", provider.base);
    let mut socket = sandbox(&provider, &mut coordinator, "sbx_f", &clone_url).await;
    let token = minted(&coordinator, "acme/demo");

    // The git host takes the credential but a hook refuses the push, repeating the token.
    let hook = root.join("acme/demo.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"refused for {token} at http://x-access-token:{token}@host/\" >&2\nexit 1\n"),
    )
    .unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&hook, executable).unwrap();
    let frames = run_prompt(&mut socket, "m1", "write a.txt: a", Some(BRANCH)).await;
    assert_eq!(kinds(&frames), ["file_edit", "error", "done"]);
    let error = frame(&frames, "error");
    let message = error["message"].as_str().unwrap();
    assert_eq!(error["message_id"], "m1");
    assert!(
        message.starts_with(&format!("cannot push to {BRANCH}: git push failed")),
        "{message}"
    );
    assert!(message.contains("refused for ***"), "{message}");
    assert!(
        !message.contains(&token) && !message.contains("x-access-token:"),
        "{message}"
    );
    assert_eq!(
        frame(&frames, "done")["ok"],
        true,
        "the prompt itself succeeded"
    );

    // The coordinator refuses: git gets no credential and says so.
    std::fs::remove_file(&hook).unwrap();
    coordinator.grant(Grant::Refuse(403));
    let frames = run_prompt(&mut socket, "m2", "Nothing new", Some(BRANCH)).await;
    let message = frame(&frames, "error")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("git push failed"), "{message}");
    assert!(
        message.contains("HTTP 403") || message.contains("could not read Username"),
        "{message}"
    );

    // Granted again: the commit left behind goes out after the next prompt, changes or not.
    coordinator.grant(Grant::Mint);
    let frames = run_prompt(&mut socket, "m3", "Still nothing new", Some(BRANCH)).await;
    let pushed = frame(&frames, "pushed");
    assert_eq!(
        (&pushed["files_changed"], &pushed["additions"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(branch_commit(&root, "%s"), "write a.txt: a");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_clone_that_fails_leaves_an_empty_repository_and_says_why() {
    let root = git_root();
    let provider = provider_with(&root);
    let mut coordinator = Coordinator::start().await;
    coordinator.grant(Grant::Refuse(403));
    let clone_url = format!("{}/git/acme/demo.git", provider.base);
    let mut socket = sandbox(&provider, &mut coordinator, "sbx_x", &clone_url).await;
    let error = next_frame(&mut socket).await;
    assert_eq!(error["type"], "error");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("cannot clone {clone_url}: git clone failed")),
        "{message}"
    );
    assert!(
        message.ends_with("the agent works in an empty repository instead"),
        "{message}"
    );
    let workspace = provider.workspaces.join("sbx_x");
    assert_eq!(
        std::fs::read_to_string(workspace.join("README.md")).unwrap(),
        "# acme/demo\n"
    );
    assert_eq!(
        git(&workspace, &["remote"]),
        "",
        "nothing to push over the real history"
    );
    // Nothing to push to: the prompt runs, and no commit or push is attempted.
    let frames = run_prompt(&mut socket, "m1", "write a.txt: a", Some(BRANCH)).await;
    assert_eq!(kinds(&frames), ["file_edit", "done"]);
    assert_eq!(git(&workspace, &["status", "--porcelain"]), "?? a.txt");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_push_larger_than_gits_post_buffer_streams_through_the_git_host() {
    let root = git_root();
    let provider = provider_with(&root);
    let mut coordinator = Coordinator::start().await;
    let clone_url = format!("{}/git/acme/demo.git", provider.base);
    let mut socket = sandbox(&provider, &mut coordinator, "sbx_big", &clone_url).await;
    // Over git's 1 MiB http.postBuffer, so git sends the pack chunked, with no length.
    let frames = run_prompt(
        &mut socket,
        "m1",
        "Add noise\n$ head -c 3000000 /dev/urandom > noise.bin",
        Some(BRANCH),
    )
    .await;
    let pushed = frame(&frames, "pushed");
    assert_eq!(pushed["files_changed"], 1);
    let size = git(
        &root.join("acme/demo.git"),
        &["cat-file", "-s", &format!("{BRANCH}:noise.bin")],
    );
    assert_eq!(size, "3000000");
    let _ = std::fs::remove_dir_all(&root);
}

/// The bridge sends at most 20 `error` frames a minute (`budget.rs`): a flood of prompts that
/// each cause one (a push branch git refuses) gets the first 20 through, the rest held back,
/// and every prompt still ends with its `done`.
#[tokio::test]
async fn error_frames_are_held_to_twenty_a_minute() {
    let root = git_root();
    let provider = provider_with(&root);
    let mut coordinator = Coordinator::start().await;
    let clone_url = format!("{}/git/acme/demo.git", provider.base);
    let mut socket = sandbox(&provider, &mut coordinator, "sbx_errors", &clone_url).await;
    let mut errors = Vec::new();
    for i in 0..25 {
        let frames = run_prompt(&mut socket, &format!("m{i}"), "hi", Some("bad..branch")).await;
        assert_eq!(kinds(&frames).last(), Some(&"done"), "{frames:?}");
        errors.extend(
            frames
                .into_iter()
                .filter(|f| f["type"] == "error")
                .map(|f| f["message"].as_str().unwrap_or("").to_string()),
        );
    }
    assert_eq!(errors.len(), 20, "{errors:?}");
    assert!(
        errors.iter().all(|m| m.contains("not a branch name")),
        "{errors:?}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
