//! `bridge provider`: the local sandbox provider for development (PROTOCOL.md section 5).
//! Each sandbox is a folder under the workspaces root and a `bridge run` process on this
//! machine; every request but `GET /health` must carry the coordinator's signature.
//!
//! Images are clones of the local git host's repositories at a commit, and `POST /heads`
//! reads a branch's head from that git host ([`images`]).
//!
//! The same port serves the local git host under `/git/` (its own authentication: local git
//! tokens, not the coordinator's signature).
//!
//! - [`sandboxes`]: workspaces and bridge processes.
//! - [`allowlist`]: which coordinator URLs a bridge may be pointed at.
//! - [`git_host`]: the local git host, git's `http-backend` behind a token check.
//! - [`images`]: image builds and branch heads from the git host.

pub mod allowlist;
pub mod git_host;
pub mod images;
pub mod sandboxes;

use crate::config::ProviderConfig;
use crate::error::{Error, Result};
use allowlist::Allowlist;
use git_host::GitHost;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use images::Images;
use protocol::provider::{
    BuildImage, ClaimSandbox, CreateSandbox, CreatedSandbox, HeadLookup, ImageBuildStarted,
    NonceCache, ProviderHealth, SnapshotTaken, StartWarmSandbox, SIGNATURE_HEADER,
};
use protocol::{ApiError, ErrorCode};
use sandboxes::{BridgeSetup, Sandboxes, SNAPSHOTS};
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// Request bodies over this are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a client may take to send a request's head, and then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A refused body is still read up to this much (or for this long), so the client gets the
/// 413 instead of a reset connection.
const MAX_DRAINED: usize = 4 * MAX_BODY;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Response bodies: whole JSON answers, or git's streamed ones.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Whom the agents run as: as root, the user `--agent-user` names, else `nobody`; otherwise the
/// provider's own user (which can run nothing as another).
fn agent_user(name: Option<&str>) -> Result<Option<sandboxes::SandboxUser>> {
    let lookup = |name: &str| {
        crate::process::AgentUser::lookup(name)
            .map_err(|e| Error::Invalid(format!("--agent-user: {e}")))
    };
    match (crate::process::is_root(), name) {
        (true, Some(name)) => lookup(name).map(Some),
        (true, None) => lookup("nobody").map(Some),
        (false, Some(_)) => Err(Error::Invalid(
            "--agent-user needs the provider to run as root".into(),
        )),
        (false, None) => Ok(None),
    }
}

struct Provider {
    /// The signing secret, then the previous one during a rotation.
    secrets: Vec<Vec<u8>>,
    /// The signatures' nonces seen within the window: each request is accepted once.
    nonces: std::sync::Mutex<NonceCache>,
    allowlist: Allowlist,
    sandboxes: Mutex<Sandboxes>,
    git_host: GitHost,
    images: Images,
}

/// A response: status and JSON body.
type Reply = (u16, String);

fn ok<T: Serialize>(status: u16, body: &T) -> Reply {
    match serde_json::to_string(body) {
        Ok(json) => (status, json),
        Err(e) => error(ApiError::new(ErrorCode::Internal, e.to_string())),
    }
}

fn error(error: ApiError) -> Reply {
    (error.status(), error.to_body())
}

pub async fn serve(config: ProviderConfig) -> i32 {
    match start(config).await {
        Ok(code) => code,
        Err(e) => {
            crate::log!("provider", "{e}");
            1
        }
    }
}

async fn start(config: ProviderConfig) -> Result<i32> {
    let (allowlist, bad) = Allowlist::new(&config.allowed_coordinators);
    if !bad.is_empty() {
        return Err(Error::Invalid(format!(
            "not URLs in the coordinator allowlist: {bad:?}"
        )));
    }
    std::fs::create_dir_all(config.workspaces.join(SNAPSHOTS)).map_err(Error::io(format!(
        "cannot create {}",
        config.workspaces.display()
    )))?;
    let user = agent_user(config.agent_user.as_deref())?;
    // The sandbox tokens' files and the owners of sandboxes and snapshots: only this user (the
    // bridges') may list or read them. Agents of another user may pass through to what is
    // theirs (their workspace, their home, their bridge's repository), but list nothing.
    let passable = if user.is_some() { 0o711 } else { 0o700 };
    for (folder, mode) in [
        (config.workspaces.clone(), None),
        (config.workspaces.join(sandboxes::TOKENS), Some(0o700)),
        (config.workspaces.join(sandboxes::OWNERS), Some(0o700)),
        (config.workspaces.join(sandboxes::HOMES), Some(passable)),
        (config.workspaces.join(images::IMAGES), Some(0o700)),
        (config.workspaces.join(sandboxes::STATE), Some(passable)),
        // The agents' memories: a bridge makes each repository's folder (the provider's user's,
        // listed by nobody else) and each owner's folder in it (the agent's user's).
        (config.workspaces.join(sandboxes::MEMORY), Some(passable)),
    ] {
        let mode = match (mode, user) {
            (Some(mode), _) => Some(mode),
            (None, Some(_)) => Some(0o711),
            (None, None) => None,
        };
        std::fs::create_dir_all(&folder)
            .and_then(|()| match mode {
                Some(mode) => {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(mode))
                }
                None => Ok(()),
            })
            .map_err(Error::io(format!("cannot create {}", folder.display())))?;
    }
    let root = config.workspaces.canonicalize().map_err(Error::io(format!(
        "cannot resolve {}",
        config.workspaces.display()
    )))?;
    std::fs::create_dir_all(&config.git_root).map_err(Error::io(format!(
        "cannot create {}",
        config.git_root.display()
    )))?;
    let git_root = config.git_root.canonicalize().map_err(Error::io(format!(
        "cannot resolve {}",
        config.git_root.display()
    )))?;
    let bridge_bin = match config.bridge_bin {
        Some(bin) => bin,
        None => std::env::current_exe().map_err(Error::io("cannot find this executable"))?,
    };
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(Error::io(format!("cannot listen on {}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("cannot read the listening address"))?;
    // Deliberately not a URL: a harness reading the dev log takes the first http:// URL it
    // sees for the coordinator's.
    eprintln!(
        "local provider listening on {addr} (agent {})",
        config.agent.as_str()
    );
    crate::log!("provider", "workspaces in {}", root.display());
    crate::log!(
        "provider",
        "git host: repositories in {} under /git/",
        git_root.display()
    );
    match user {
        Some(user) => crate::log!(
            "provider",
            "agents run as uid {} (gid {}); bridges as this provider's user",
            user.uid,
            user.gid
        ),
        None => crate::log!(
            "provider",
            "agents run as this provider's user, as bridges do"
        ),
    }
    if !config.agent_env.is_empty() {
        let names: Vec<&str> = config.agent_env.iter().map(|(n, _)| n.as_str()).collect();
        crate::log!("provider", "passing {} to the agents", names.join(", "));
    }
    let setup = BridgeSetup {
        agent: config.agent,
        bridge_bin,
        passthrough: config.passthrough,
        agent_env: config.agent_env,
        user,
    };
    let secret = config.secret.expose().as_bytes().to_vec();
    let mut secrets = vec![secret.clone()];
    if let Some(previous) = &config.secret_previous {
        secrets.push(previous.expose().as_bytes().to_vec());
    }
    let provider = Arc::new(Provider {
        images: Images::new(root.clone(), git_root.clone()),
        git_host: GitHost {
            root: git_root,
            secret,
        },
        secrets,
        nonces: std::sync::Mutex::new(NonceCache::default()),
        allowlist,
        sandboxes: Mutex::new(Sandboxes::new(root, setup)),
    });
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::io("cannot watch SIGTERM"))?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(Error::io("cannot watch SIGINT"))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    tokio::spawn(serve_connection(provider.clone(), socket));
                }
                Err(e) => {
                    crate::log!("provider", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    let bridges = provider.sandboxes.lock().await.remove_all();
    crate::log!("provider", "stopping {} bridges", bridges.len());
    let mut ending = tokio::task::JoinSet::new();
    for bridge in bridges {
        ending.spawn(bridge.end());
    }
    while ending.join_next().await.is_some() {}
    Ok(0)
}

/// HTTP/1.1 on one connection, keep-alive included; hyper answers malformed requests itself.
async fn serve_connection(provider: Arc<Provider>, socket: TcpStream) {
    let service = hyper::service::service_fn(move |request| {
        let provider = provider.clone();
        async move {
            let response = if request.uri().path().starts_with(git_host::PREFIX) {
                git_host::handle(&provider.git_host, request, now_ms()).await
            } else {
                handle(&provider, request)
                    .await
                    .map(|body| body.map_err(|never| match never {}).boxed_unsync())
            };
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .serve_connection(TokioIo::new(socket), service);
    if let Err(e) = connection.await {
        if !e.is_incomplete_message() {
            crate::log!("provider", "connection failed: {e}");
        }
    }
}

async fn handle(provider: &Provider, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    let (status, body) = match tokio::time::timeout(READ_TIMEOUT, read_body(body)).await {
        Err(_) => error(ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body did not arrive within {READ_TIMEOUT:?}"),
        )),
        Ok(Err(BodyError::TooLarge)) => error(ApiError::new(
            ErrorCode::TooLarge,
            format!("the request is over {MAX_BODY} bytes"),
        )),
        Ok(Err(BodyError::Broken(e))) => error(ApiError::new(ErrorCode::InvalidJson, e)),
        Ok(Ok(body)) => {
            let signature = head
                .headers
                .get(SIGNATURE_HEADER)
                .and_then(|value| value.to_str().ok());
            let path_and_query = head
                .uri
                .path_and_query()
                .map_or(head.uri.path(), |p| p.as_str());
            route(
                provider,
                &head.method,
                head.uri.path(),
                path_and_query,
                signature,
                &body,
            )
            .await
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

enum BodyError {
    TooLarge,
    Broken(String),
}

/// The whole body, if it is at most [`MAX_BODY`] bytes. A longer one is read on (and thrown
/// away) for a while, so the client is still reading when the 413 comes.
async fn read_body(mut body: Incoming) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    let mut n_received = 0;
    while n_received <= MAX_BODY {
        match body.frame().await {
            None => return Ok(bytes),
            Some(Err(e)) => return Err(BodyError::Broken(e.to_string())),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    n_received += data.len();
                    if n_received <= MAX_BODY {
                        bytes.extend_from_slice(data);
                    }
                }
            }
        }
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while n_received < MAX_DRAINED {
            match body.frame().await {
                Some(Ok(frame)) => n_received += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    })
    .await;
    Err(BodyError::TooLarge)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether the request is signed (v2) with one of the provider's secrets, for this method,
/// path and body, and its nonce is new.
fn check_signature(
    provider: &Provider,
    method: &str,
    path_and_query: &str,
    signature: Option<&str>,
    body: &[u8],
) -> std::result::Result<(), protocol::provider::SignatureError> {
    let secrets: Vec<&[u8]> = provider.secrets.iter().map(Vec::as_slice).collect();
    let now = now_ms();
    let verified =
        protocol::provider::verify(&secrets, signature, method, path_and_query, body, now)?;
    provider
        .nonces
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .admit(&verified, now)
}

async fn route(
    provider: &Provider,
    method: &Method,
    path: &str,
    path_and_query: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Reply {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let method = method.as_str();
    if method == "GET" && segments == ["health"] {
        return ok(
            200,
            &ProviderHealth {
                ok: true,
                provider: "local".into(),
                app: format!("bridge {}", env!("CARGO_PKG_VERSION")),
                problems: Vec::new(),
                runtime_version: images::runtime_version(),
            },
        );
    }
    if let Err(e) = check_signature(provider, method, path_and_query, signature, body) {
        return error(ApiError::new(ErrorCode::Unauthorized, e.message()));
    }
    match (method, segments.as_slice()) {
        ("POST", ["sandboxes"]) => create(provider, body).await,
        ("POST", ["warm-sandboxes"]) => start_warm(provider, body).await,
        ("POST", ["sandboxes", id, "claim"]) => claim(provider, id, body).await,
        ("POST", ["sandboxes", id, "snapshot"]) => snapshot(provider, id).await,
        ("DELETE", ["sandboxes", id]) => delete(provider, id).await,
        ("POST", ["images"]) => match parse_body::<BuildImage>(body) {
            Ok(request) => match provider.images.start(request) {
                Ok(build_id) => ok(202, &ImageBuildStarted { build_id }),
                Err(e) => error(e),
            },
            Err(e) => error(e),
        },
        ("GET", ["images", id]) => match provider.images.build(id) {
            Some(build) => ok(200, &build),
            None => error(ApiError::not_found("image build")),
        },
        ("POST", ["heads"]) => match parse_body::<HeadLookup>(body) {
            Ok(lookup) => match provider.images.head(&lookup).await {
                Ok(head) => ok(200, &head),
                Err(e) => error(e),
            },
            Err(e) => error(e),
        },
        (
            _,
            ["sandboxes"]
            | ["sandboxes", _]
            | ["sandboxes", _, "snapshot" | "claim"]
            | ["images"]
            | ["heads"]
            | ["warm-sandboxes"],
        ) => error(ApiError::of(ErrorCode::MethodNotAllowed)),
        _ => error(ApiError::not_found("route")),
    }
}

/// A body as a `T`: broken JSON is 400 `invalid_json`, JSON of the wrong shape 422 `invalid_field`.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid_field(e.to_string()),
        _ => ApiError::new(ErrorCode::InvalidJson, e.to_string()),
    })
}

async fn create(provider: &Provider, body: &[u8]) -> Reply {
    let request: CreateSandbox = match parse_body(body) {
        Ok(request) => request,
        Err(e) => return error(e),
    };
    if let Err(e) = check_binding(
        provider,
        &request.session_id,
        &request.sandbox_token,
        &request.coordinator_url,
    ) {
        return error(e);
    }
    start_sandbox(provider, request, false).await
}

/// What binds a sandbox to its session, whether at its creation or at a warm one's claim: a
/// plain session id, a token, and a coordinator this provider may point bridges at.
fn check_binding(
    provider: &Provider,
    session_id: &str,
    sandbox_token: &str,
    coordinator_url: &str,
) -> std::result::Result<(), ApiError> {
    if !crate::config::is_plain_id(session_id) {
        return Err(ApiError::invalid_field("session_id is not a valid id"));
    }
    if sandbox_token.is_empty() {
        return Err(ApiError::invalid_field("sandbox_token must not be empty"));
    }
    if !provider.allowlist.allows(coordinator_url) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "coordinator_url is not in this provider's allowlist",
        ));
    }
    Ok(())
}

/// `POST /warm-sandboxes`: a sandbox bound to no session. Its workspace is prepared as for a
/// cold one (the clone waits for the claim: it needs the sandbox token's git credentials) and
/// its bridge starts waiting for an assignment, starting the agent meanwhile.
async fn start_warm(provider: &Provider, body: &[u8]) -> Reply {
    let warm: StartWarmSandbox = match parse_body(body) {
        Ok(request) => request,
        Err(e) => return error(e),
    };
    // The same preparation as a cold sandbox, with no session, coordinator or token in it.
    let request = CreateSandbox {
        session_id: String::new(),
        sandbox_id: warm.sandbox_id,
        coordinator_url: String::new(),
        sandbox_token: String::new(),
        repo: warm.repo,
        image_id: warm.image_id,
        snapshot_id: None,
        resources: warm.resources,
        network: warm.network,
        env: warm.env,
    };
    start_sandbox(provider, request, true).await
}

/// `POST /sandboxes/:id/claim`: a warm sandbox learns its session, where to dial and its
/// token; it belongs to that session from now on (its snapshots too).
async fn claim(provider: &Provider, sandbox_id: &str, body: &[u8]) -> Reply {
    let request: ClaimSandbox = match parse_body(body) {
        Ok(request) => request,
        Err(e) => return error(e),
    };
    if let Err(e) = check_binding(
        provider,
        &request.session_id,
        &request.sandbox_token,
        &request.coordinator_url,
    ) {
        return error(e);
    }
    // Held throughout, so two claims of the same sandbox cannot interleave: the owner is
    // recorded only for a sandbox that can be claimed, and before its bridge learns its session.
    let mut sandboxes = provider.sandboxes.lock().await;
    if let Err(e) = sandboxes.claimable(sandbox_id) {
        crate::log!("provider", "claiming sandbox {sandbox_id}: {}", e.message);
        return error(e);
    }
    let root = sandboxes.root().to_path_buf();
    if let Err(e) = sandboxes::record_owner(&root, "sandbox", sandbox_id, &request.session_id).await
    {
        return error(ApiError::new(ErrorCode::Internal, e.to_string()));
    }
    let claimed = sandboxes.claim(sandbox_id, &request);
    drop(sandboxes);
    match claimed {
        Ok(pid) => {
            crate::log!(
                "provider",
                "warm sandbox {sandbox_id} claimed by session {}",
                request.session_id
            );
            ok(
                200,
                &CreatedSandbox {
                    sandbox_id: sandbox_id.to_owned(),
                    provider_id: format!("local-{pid}"),
                },
            )
        }
        Err(e) => {
            crate::log!("provider", "claiming sandbox {sandbox_id}: {}", e.message);
            error(e)
        }
    }
}

/// Prepares the workspace and starts the bridge: a cold sandbox of a session, or a warm one.
async fn start_sandbox(provider: &Provider, request: CreateSandbox, warm: bool) -> Reply {
    let (root, dest, user) = {
        let mut sandboxes = provider.sandboxes.lock().await;
        if let Err(e) = sandboxes.reserve(&request.sandbox_id) {
            return error(e);
        }
        (
            sandboxes.root().to_path_buf(),
            sandboxes.workspace(&request.sandbox_id),
            sandboxes.user(),
        )
    };
    let prepared = async {
        if dest.exists() {
            // An ended sandbox of the same id left its folder; a new sandbox starts afresh.
            tokio::fs::remove_dir_all(&dest).await.map_err(|e| {
                ApiError::new(
                    ErrorCode::Internal,
                    format!("cannot clear the old workspace: {e}"),
                )
            })?;
        }
        sandboxes::prepare_workspace(&root, &dest, &request, &provider.images).await?;
        if let Some(user) = user {
            sandboxes::hand_over(&root, &dest, &request.sandbox_id, user)
                .await
                .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        }
        if warm {
            // Its owner is recorded when it is claimed.
            return Ok(());
        }
        sandboxes::record_owner(&root, "sandbox", &request.sandbox_id, &request.session_id)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
    }
    .await;
    let mut sandboxes = provider.sandboxes.lock().await;
    let started = prepared.and_then(|()| sandboxes.start_bridge(&request, warm));
    match started {
        Ok(pid) => {
            if warm {
                crate::log!(
                    "provider",
                    "warm sandbox {}: bridge pid {pid}",
                    request.sandbox_id
                );
            } else {
                crate::log!(
                    "provider",
                    "sandbox {} for session {}: bridge pid {pid}",
                    request.sandbox_id,
                    request.session_id
                );
            }
            ok(
                201,
                &CreatedSandbox {
                    sandbox_id: request.sandbox_id.clone(),
                    provider_id: format!("local-{pid}"),
                },
            )
        }
        Err(e) => {
            sandboxes.release(&request.sandbox_id);
            crate::log!("provider", "sandbox {}: {e}", request.sandbox_id);
            error(e)
        }
    }
}

async fn snapshot(provider: &Provider, sandbox_id: &str) -> Reply {
    let (root, workspace) = {
        let sandboxes = provider.sandboxes.lock().await;
        match sandboxes.existing_workspace(sandbox_id) {
            Some(workspace) => (sandboxes.root().to_path_buf(), workspace),
            None => return error(ApiError::not_found("sandbox")),
        }
    };
    let snapshot_id = match crate::ids::random_id("snap_") {
        Ok(id) => id,
        Err(e) => return error(ApiError::new(ErrorCode::Internal, e.to_string())),
    };
    let Some(session_id) = sandboxes::owner(&root, "sandbox", sandbox_id).await else {
        return error(ApiError::new(
            ErrorCode::Conflict,
            "this provider does not know which session the sandbox belongs to",
        ));
    };
    let dest = root.join(SNAPSHOTS).join(&snapshot_id);
    let taken = async {
        sandboxes::copy_tree(&workspace, &dest).await?;
        sandboxes::record_owner(&root, "snapshot", &snapshot_id, &session_id).await
    };
    match taken.await {
        Ok(()) => {
            crate::log!("provider", "sandbox {sandbox_id}: snapshot {snapshot_id}");
            ok(200, &SnapshotTaken { snapshot_id })
        }
        Err(e) => error(ApiError::new(ErrorCode::Internal, e.to_string())),
    }
}

async fn delete(provider: &Provider, sandbox_id: &str) -> Reply {
    let removed = provider.sandboxes.lock().await.remove(sandbox_id);
    match removed {
        Ok(Some(bridge)) => {
            bridge.end().await;
            crate::log!("provider", "sandbox {sandbox_id}: ended");
            (200, "{}".into())
        }
        Ok(None) => error(ApiError::not_found("sandbox")),
        Err(e) => error(e),
    }
}
