//! The local provider's sandboxes: a folder under the workspaces root and a `bridge run`
//! process in its own process group.

use crate::config::{is_env_name, is_plain_id, AgentEnv, AgentKind, Secret, PASSTHROUGH_VAR};
use crate::error::{Error, Result};
use crate::process::signal_group;
use protocol::provider::{ClaimSandbox, CreateSandbox};
use protocol::{ApiError, ErrorCode};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// Snapshots live beside the sandboxes, in this folder of the root.
pub const SNAPSHOTS: &str = "snapshots";
/// Each sandbox's scratch `HOME`, in this folder of the root (no sandbox id starts with a dot).
pub const HOMES: &str = ".homes";
/// How long a bridge gets to exit after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Variables a bridge inherits from the provider when they are set: what it needs to find
/// programs, and the bridge's own settings. Besides these only the passthrough variables
/// (`SANDBOX_ENV_PASSTHROUGH`) reach a sandbox; the provider's secret never does. `HOME` is
/// not among them: each sandbox gets a scratch one, so the agent never sees the developer's
/// dotfiles, keys or credentials.
const INHERITED: &[&str] = &[
    "PATH",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TERM",
    "SHELL",
    "DEV_AGENT_DELAY_MS",
    "OPENCODE_BIN",
    "OPENCODE_URL",
    "OPENCODE_MODEL",
    "OPENCODE_SERVER_PASSWORD",
    "HEARTBEAT_SECS",
    "GIT_ATTRIBUTION",
    "CHROMIUM_PATH",
    "GITHUB_MCP_URL",
    "SENTRY_MCP_URL",
    "LINEAR_MCP_URL",
];

/// The agents' memories, one folder per repository and session owner, in this folder of the
/// root; it outlives every sandbox (the Modal app keeps them in a Volume).
pub const MEMORY: &str = ".memory";

/// Set by the provider for each bridge; a request's `env` cannot override them.
const RESERVED: &[&str] = &[
    "COORDINATOR_URL",
    "SESSION_ID",
    "SANDBOX_ID",
    "SANDBOX_TOKEN",
    "SANDBOX_TOKEN_FILE",
    "WORKSPACE",
    "HOME",
    "AGENT",
    "MEMORY_DIR",
    "REPO_CLONE_URL",
    "REPO_BRANCH",
    "AGENT_USER",
    "BRIDGE_STATE_DIR",
    PASSTHROUGH_VAR,
];

enum Slot {
    /// The workspace is being prepared; the id is taken.
    Preparing,
    Live(Bridge),
}

struct Bridge {
    /// The process group of the bridge running now (a restarted one has a new one).
    pgid: watch::Receiver<u32>,
    /// A warm sandbox's assignment, shared with the supervisor that restarts its bridge.
    warm: Option<Arc<std::sync::Mutex<WarmState>>>,
    exited: watch::Receiver<bool>,
    /// Set when the provider ends the sandbox, so the supervisor does not start it again.
    ending: Arc<AtomicBool>,
}

/// Which session each sandbox and each snapshot belongs to: `sandbox-<id>` and `snapshot-<id>`
/// files holding the session id, in a folder of the root no sandbox id can name.
pub const OWNERS: &str = ".owners";

/// Records that `kind` `id` (`sandbox` or `snapshot`) belongs to `session_id`.
pub async fn record_owner(root: &Path, kind: &str, id: &str, session_id: &str) -> Result<()> {
    let path = root.join(OWNERS).join(format!("{kind}-{id}"));
    tokio::fs::write(&path, session_id)
        .await
        .map_err(Error::io(format!("cannot record the owner of {kind} {id}")))
}

/// The session `kind` `id` belongs to, if the provider recorded one.
pub async fn owner(root: &Path, kind: &str, id: &str) -> Option<String> {
    tokio::fs::read_to_string(root.join(OWNERS).join(format!("{kind}-{id}")))
        .await
        .ok()
}

/// Token files live here, in a 0700 folder of the workspaces root (no sandbox id starts with
/// a dot, so none can be named so).
pub const TOKENS: &str = ".tokens";

/// Each bridge's own folder (`<root>/.state/<id>`: its journal, its repository for pushes),
/// which the agent's user may pass through but not list.
pub const STATE: &str = ".state";

/// The unprivileged user a root provider runs each sandbox's agent as, while the bridge stays
/// root: the agent then reads neither the bridge's token file, its credential socket, its
/// journal nor its `/proc` entries.
pub type SandboxUser = crate::process::AgentUser;

/// A warm sandbox (`POST /warm-sandboxes`): its bridge waits for an assignment file, which
/// the provider writes when the sandbox is claimed (`POST /sandboxes/:id/claim`). A bridge
/// started again after the claim starts as an ordinary one of the session.
#[derive(Default)]
pub struct WarmState {
    /// The claim, once made.
    claim: Option<ClaimSandbox>,
    /// Where the waiting bridge looks for its assignment (in its own 0700 folder).
    waiting_at: Option<PathBuf>,
}

/// The file a warm bridge waits for, in its folder.
const ASSIGNMENT: &str = "assignment";

/// How a sandbox's `bridge run` is started. Its token is handed over in a file written just
/// before each start (a restarted bridge gets a new one), never in the environment.
struct BridgeCommand {
    workspace: PathBuf,
    env: Vec<(String, OsString)>,
    token: Secret,
    token_dir: PathBuf,
    sandbox_id: String,
    /// A warm sandbox: no session, URL or token until claimed.
    warm: Option<Arc<std::sync::Mutex<WarmState>>>,
}

impl BridgeCommand {
    /// A fresh 0700 folder of the bridge's user in the tokens folder, named for the sandbox.
    fn private_dir(&self) -> Result<PathBuf, ApiError> {
        use std::os::unix::fs::DirBuilderExt;
        let internal = |e: String| ApiError::new(ErrorCode::Internal, e);
        let suffix = crate::ids::random_u64().map_err(|e| internal(e.to_string()))?;
        let dir = self
            .token_dir
            .join(format!("{}-{suffix:016x}", self.sandbox_id));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| internal(format!("cannot make the token folder: {e}")))?;
        Ok(dir)
    }

    /// A fresh 0600 file holding the token, alone in a fresh 0700 folder, both the bridge's
    /// user's (the provider's); the bridge deletes the file once read.
    fn write_token_file(&self, token: &Secret) -> Result<PathBuf, ApiError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let internal = |e: String| ApiError::new(ErrorCode::Internal, e);
        let path = self.private_dir()?.join("token");
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(token.expose().as_bytes())?;
            Ok::<_, std::io::Error>(())
        })();
        match written {
            Ok(()) => Ok(path),
            Err(e) => {
                forget_token_file(&path);
                Err(internal(format!("cannot write the token file: {e}")))
            }
        }
    }
}

/// Writes a warm bridge's assignment where it waits for it: a temporary name first, then a
/// rename, so the bridge never reads half of it.
fn write_assignment(path: &Path, claim: &ClaimSandbox) -> Result<(), ApiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let internal = |e: std::io::Error| {
        ApiError::new(
            ErrorCode::Internal,
            format!("cannot write the assignment: {e}"),
        )
    };
    let json =
        serde_json::to_vec(claim).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let temp = path.with_file_name(".assignment.tmp");
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&json)?;
        std::fs::rename(&temp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        internal(e)
    })
}

/// Removes a token file's folder, whatever the bridge left of it.
fn forget_token_file(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Gives a prepared workspace, and a fresh home folder beside it, to the sandbox's agent's
/// user; the bridge's state folder starts afresh, the provider's.
pub async fn hand_over(
    root: &Path,
    workspace: &Path,
    sandbox_id: &str,
    user: SandboxUser,
) -> Result<()> {
    for folder in [HOMES, STATE] {
        let path = root.join(folder).join(sandbox_id);
        if path.exists() {
            tokio::fs::remove_dir_all(&path)
                .await
                .map_err(Error::io(format!("cannot clear the old {folder} folder")))?;
        }
    }
    let home = root.join(HOMES).join(sandbox_id);
    tokio::fs::create_dir_all(&home)
        .await
        .map_err(Error::io("cannot create the home folder"))?;
    crate::process::hand_over(workspace, user).await?;
    crate::process::hand_over(&home, user).await
}

/// A bridge that died is started again after this pause, at most this often.
const RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// A folder only this user can enter (0700), made with its parents if missing.
fn make_private_dir(path: &Path) -> Result<(), ApiError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Internal,
                format!("cannot create the sandbox's home folder: {e}"),
            )
        })
}

/// Starts `bridge run`; returns it with its token file, which is removed when the bridge has
/// not done so itself (it failed before reading it).
fn spawn_bridge(
    command: &BridgeCommand,
    bridge_bin: &Path,
) -> Result<(tokio::process::Child, PathBuf), ApiError> {
    let mut cmd = tokio::process::Command::new(bridge_bin);
    cmd.arg("run")
        .current_dir(&command.workspace)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)));
    let claim = command
        .warm
        .as_ref()
        .map(|warm| warm.lock().unwrap_or_else(|e| e.into_inner()).claim.clone());
    let token_file = match claim {
        // Warm and unclaimed: the bridge waits for its assignment; it holds no secret.
        Some(None) => {
            let path = command.private_dir()?.join(ASSIGNMENT);
            if let Some(warm) = &command.warm {
                warm.lock().unwrap_or_else(|e| e.into_inner()).waiting_at = Some(path.clone());
            }
            cmd.env("SANDBOX_ASSIGNMENT_FILE", &path);
            path
        }
        // Claimed, started again: an ordinary bridge of the session.
        Some(Some(claim)) => {
            let path = command.write_token_file(&Secret::new(claim.sandbox_token.clone()))?;
            cmd.env("COORDINATOR_URL", &claim.coordinator_url)
                .env("SESSION_ID", &claim.session_id)
                .env("SANDBOX_TOKEN_FILE", &path);
            path
        }
        None => {
            let path = command.write_token_file(&command.token)?;
            cmd.env("SANDBOX_TOKEN_FILE", &path);
            path
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::process::die_with_parent(&mut cmd);
    match cmd.spawn() {
        Ok(child) => Ok((child, token_file)),
        Err(e) => {
            forget_token_file(&token_file);
            Err(ApiError::new(
                ErrorCode::Internal,
                format!("cannot start {}: {e}", bridge_bin.display()),
            ))
        }
    }
}

fn forward_output(child: &mut tokio::process::Child, label: &str) {
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_lines(stdout, label.to_string()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_lines(stderr, label.to_string()));
    }
}

impl Bridge {
    fn is_running(&self) -> bool {
        !*self.exited.borrow()
    }

    /// SIGTERM to the group, SIGKILL after the grace period; returns once the bridge was reaped.
    async fn end(mut self) {
        self.ending.store(true, Ordering::SeqCst);
        // A bridge that already exited is left alone: its pid may belong to someone else now.
        if !self.is_running() {
            return;
        }
        let pgid = *self.pgid.borrow();
        signal_group(pgid, libc::SIGTERM);
        let timed_out = tokio::time::timeout(GRACE, self.exited.wait_for(|e| *e))
            .await
            .is_err();
        if timed_out {
            signal_group(pgid, libc::SIGKILL);
            let _ = self.exited.wait_for(|e| *e).await;
        }
        // Whatever the bridge left in its group goes with it; the group id cannot have been
        // reused while it still had members.
        signal_group(pgid, libc::SIGKILL);
    }
}

/// What every bridge this provider starts is given, besides its own sandbox's settings.
pub struct BridgeSetup {
    pub agent: AgentKind,
    pub bridge_bin: PathBuf,
    /// The names of the passthrough variables, told to each bridge.
    pub passthrough: Vec<String>,
    /// Those of them set in the provider's environment, with their values.
    pub agent_env: AgentEnv,
    /// Whom agents run as; `None`: the provider's own user, as the bridges always are.
    pub user: Option<SandboxUser>,
}

pub struct Sandboxes {
    root: PathBuf,
    setup: BridgeSetup,
    slots: HashMap<String, Slot>,
}

impl Sandboxes {
    /// `root` must exist and be canonical.
    pub fn new(root: PathBuf, setup: BridgeSetup) -> Self {
        Sandboxes {
            root,
            setup,
            slots: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whom agents run as; `None`: the provider's own user.
    pub fn user(&self) -> Option<SandboxUser> {
        self.setup.user
    }

    pub fn workspace(&self, sandbox_id: &str) -> PathBuf {
        self.root.join(sandbox_id)
    }

    /// The sandbox's scratch `HOME`.
    pub fn home(&self, sandbox_id: &str) -> PathBuf {
        self.root.join(HOMES).join(sandbox_id)
    }

    /// Takes the id for a new sandbox, unless a live one has it.
    pub fn reserve(&mut self, sandbox_id: &str) -> Result<(), ApiError> {
        if !is_plain_id(sandbox_id) || sandbox_id == SNAPSHOTS {
            return Err(ApiError::invalid_field("sandbox_id is not a valid id"));
        }
        match self.slots.get(sandbox_id) {
            Some(Slot::Preparing) => Err(ApiError::new(
                ErrorCode::Conflict,
                "this sandbox is being created",
            )),
            Some(Slot::Live(bridge)) if bridge.is_running() => Err(ApiError::new(
                ErrorCode::Conflict,
                "this sandbox already exists",
            )),
            _ => {
                self.slots.insert(sandbox_id.to_string(), Slot::Preparing);
                Ok(())
            }
        }
    }

    pub fn release(&mut self, sandbox_id: &str) {
        if matches!(self.slots.get(sandbox_id), Some(Slot::Preparing)) {
            self.slots.remove(sandbox_id);
        }
    }

    /// Starts `bridge run` for a prepared workspace; returns the first bridge's pid.
    ///
    /// A bridge that dies (a crash, a kill) is started again in the same workspace, where its
    /// journal lets it resend what the room had not acknowledged. One that exits by itself (a
    /// shutdown, or the room refusing it for good) or was ended by the provider is not.
    pub fn start_bridge(&mut self, request: &CreateSandbox, warm: bool) -> Result<u32, ApiError> {
        let warm = warm.then(|| Arc::new(std::sync::Mutex::new(WarmState::default())));
        let mut command = self.bridge_command(request);
        command.warm = warm.clone();
        make_private_dir(&self.home(&request.sandbox_id))?;
        let (mut child, mut token_file) = spawn_bridge(&command, &self.setup.bridge_bin)?;
        let first_pid = child.id().unwrap_or(0);
        let label = request.sandbox_id.clone();
        let (exited_tx, exited) = watch::channel(false);
        let (pgid_tx, pgid) = watch::channel(first_pid);
        let ending = Arc::new(AtomicBool::new(false));
        let supervisor_ending = ending.clone();
        let bridge_bin = self.setup.bridge_bin.clone();
        tokio::spawn(async move {
            let mut restarts: Vec<Instant> = Vec::new();
            loop {
                forward_output(&mut child, &label);
                let status = child.wait().await;
                // The file is gone when the bridge read it; still there if it died before.
                forget_token_file(&token_file);
                match &status {
                    Ok(status) => {
                        crate::log!("provider", "sandbox {label}: bridge exited ({status})")
                    }
                    Err(e) => crate::log!(
                        "provider",
                        "sandbox {label}: cannot wait for the bridge: {e}"
                    ),
                }
                let died = matches!(&status, Ok(status) if status.code().is_none() || !matches!(status.code(), Some(0) | Some(crate::run::EXIT_REFUSED) | Some(2)));
                restarts.retain(|at| at.elapsed() < RESTART_WINDOW);
                if !died
                    || supervisor_ending.load(Ordering::SeqCst)
                    || restarts.len() >= MAX_RESTARTS
                {
                    break;
                }
                restarts.push(Instant::now());
                tokio::time::sleep(RESTART_DELAY).await;
                if supervisor_ending.load(Ordering::SeqCst) {
                    break;
                }
                crate::log!("provider", "sandbox {label}: starting the bridge again");
                match spawn_bridge(&command, &bridge_bin) {
                    Ok((next, next_token_file)) => {
                        let _ = pgid_tx.send(next.id().unwrap_or(0));
                        child = next;
                        token_file = next_token_file;
                    }
                    Err(e) => {
                        crate::log!("provider", "sandbox {label}: {}", e.message);
                        break;
                    }
                }
            }
            let _ = exited_tx.send(true);
        });
        self.slots.insert(
            request.sandbox_id.clone(),
            Slot::Live(Bridge {
                pgid,
                warm,
                exited,
                ending,
            }),
        );
        Ok(first_pid)
    }

    /// Whether the sandbox is warm, running, waiting and not claimed yet: what a claim needs.
    pub fn claimable(&self, sandbox_id: &str) -> Result<(), ApiError> {
        self.waiting(sandbox_id).map(drop)
    }

    /// A claimable sandbox's pid, its warm state and where its bridge waits.
    fn waiting(
        &self,
        sandbox_id: &str,
    ) -> Result<(u32, Arc<std::sync::Mutex<WarmState>>, PathBuf), ApiError> {
        let Some(Slot::Live(bridge)) = self.slots.get(sandbox_id) else {
            return Err(ApiError::not_found("sandbox"));
        };
        let conflict = |message: &str| Err(ApiError::new(ErrorCode::Conflict, message));
        let Some(warm) = &bridge.warm else {
            return conflict("this sandbox is not warm");
        };
        if !bridge.is_running() {
            return conflict("this warm sandbox has ended");
        }
        let state = warm.lock().unwrap_or_else(|e| e.into_inner());
        if state.claim.is_some() {
            return conflict("this sandbox was claimed already");
        }
        let Some(path) = state.waiting_at.clone() else {
            return conflict("this warm sandbox is not waiting");
        };
        Ok((*bridge.pgid.borrow(), warm.clone(), path))
    }

    /// Hands a warm sandbox its assignment: the file its waiting bridge reads (written whole,
    /// then renamed into place, 0600 in the bridge's own 0700 folder). Returns the running
    /// bridge's pid.
    pub fn claim(&mut self, sandbox_id: &str, claim: &ClaimSandbox) -> Result<u32, ApiError> {
        let (pid, warm, path) = self.waiting(sandbox_id)?;
        let mut warm = warm.lock().unwrap_or_else(|e| e.into_inner());
        write_assignment(&path, claim)?;
        warm.claim = Some(claim.clone());
        Ok(pid)
    }

    /// Everything `bridge run` is started with, kept to start it again.
    fn bridge_command(&self, request: &CreateSandbox) -> BridgeCommand {
        let workspace = self.workspace(&request.sandbox_id);
        let mut env: Vec<(String, OsString)> = INHERITED
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|value| (name.to_string(), value)))
            .collect();
        env.extend(self.setup.agent_env.iter().cloned());
        for (name, value) in &request.env {
            if is_env_name(name) && !RESERVED.contains(&name.as_str()) {
                env.push((name.clone(), value.into()));
            }
        }
        let passthrough = self.setup.passthrough.join(",");
        // A warm sandbox has neither (empty here) until it is claimed.
        for (name, value) in [
            ("COORDINATOR_URL", request.coordinator_url.as_str()),
            ("SESSION_ID", &request.session_id),
        ] {
            if !value.is_empty() {
                env.push((name.to_string(), value.into()));
            }
        }
        for (name, value) in [
            ("SANDBOX_ID", request.sandbox_id.as_str()),
            ("AGENT", self.setup.agent.as_str()),
            (PASSTHROUGH_VAR, &passthrough),
        ] {
            env.push((name.to_string(), value.into()));
        }
        env.push(("WORKSPACE".into(), workspace.clone().into_os_string()));
        env.push((
            "HOME".into(),
            self.home(&request.sandbox_id).into_os_string(),
        ));
        env.push(("MEMORY_DIR".into(), self.root.join(MEMORY).into_os_string()));
        if let Some(user) = self.setup.user {
            env.push(("AGENT_USER".into(), user.to_arg().into()));
            env.push((
                "BRIDGE_STATE_DIR".into(),
                self.root
                    .join(STATE)
                    .join(&request.sandbox_id)
                    .into_os_string(),
            ));
        }
        // The bridge clones an empty workspace itself, through its credential helper.
        if let Some(url) = clone_url(request) {
            env.push(("REPO_CLONE_URL".into(), url.into()));
            env.push(("REPO_BRANCH".into(), request.repo.branch.clone().into()));
        }
        BridgeCommand {
            workspace,
            env,
            token: Secret::new(request.sandbox_token.clone()),
            token_dir: self.root.join(TOKENS),
            sandbox_id: request.sandbox_id.clone(),
            warm: None,
        }
    }

    /// The workspace of a sandbox this provider knows, live or ended, if its folder exists.
    pub fn existing_workspace(&self, sandbox_id: &str) -> Option<PathBuf> {
        if !is_plain_id(sandbox_id) || sandbox_id == SNAPSHOTS {
            return None;
        }
        if matches!(self.slots.get(sandbox_id), Some(Slot::Preparing)) {
            return None;
        }
        let workspace = self.workspace(sandbox_id);
        workspace.is_dir().then_some(workspace)
    }

    /// Takes a live (or ended but not deleted) sandbox out, for ending it outside the lock.
    pub fn remove(&mut self, sandbox_id: &str) -> Result<Option<BridgeHandle>, ApiError> {
        match self.slots.remove(sandbox_id) {
            Some(Slot::Live(bridge)) => Ok(Some(BridgeHandle(bridge))),
            Some(Slot::Preparing) => {
                self.slots.insert(sandbox_id.to_string(), Slot::Preparing);
                Err(ApiError::new(
                    ErrorCode::Conflict,
                    "this sandbox is being created",
                ))
            }
            None => Ok(None),
        }
    }

    pub fn remove_all(&mut self) -> Vec<BridgeHandle> {
        self.slots
            .drain()
            .filter_map(|(_, slot)| match slot {
                Slot::Live(bridge) => Some(BridgeHandle(bridge)),
                Slot::Preparing => None,
            })
            .collect()
    }
}

/// A bridge taken out of the table, to be ended.
pub struct BridgeHandle(Bridge);

impl BridgeHandle {
    pub async fn end(self) {
        self.0.end().await
    }
}

async fn forward_lines(stream: impl tokio::io::AsyncRead + Unpin, label: String) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{label}] {line}");
    }
}

/// The repository's clone URL, if the request gives one.
fn clone_url(request: &CreateSandbox) -> Option<&str> {
    request.repo.clone_url.as_deref().filter(|u| !u.is_empty())
}

/// Fills `dest` (which must not exist): a copy of the snapshot; an empty folder the bridge
/// will clone the repository into; or, when there is nothing to clone, an empty repository.
pub async fn prepare_workspace(
    root: &Path,
    dest: &Path,
    request: &CreateSandbox,
    images: &super::images::Images,
) -> Result<(), ApiError> {
    if let Some(snapshot_id) = &request.snapshot_id {
        if !is_plain_id(snapshot_id) {
            return Err(ApiError::invalid_field("snapshot_id is not a valid id"));
        }
        let snapshot = root.join(SNAPSHOTS).join(snapshot_id);
        if !snapshot.is_dir() {
            return Err(ApiError::not_found("snapshot"));
        }
        // A snapshot is restored only into its own session: another session's workspace (its
        // code, its history) is not for this one to see.
        if owner(root, "snapshot", snapshot_id).await.as_deref() != Some(&request.session_id) {
            return Err(ApiError::invalid_field(format!(
                "snapshot {snapshot_id} belongs to another session"
            )));
        }
        return copy_tree(&snapshot, dest)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()));
    }
    let repo = &request.repo;
    if !protocol::git::is_branch_name(&repo.branch) {
        return Err(ApiError::invalid_field(
            "repo.branch is not a valid branch name",
        ));
    }
    let title = format!("{}/{}", repo.owner, repo.name);
    if let (Some(image_id), Some(_)) = (&request.image_id, clone_url(request)) {
        // The bridge takes an image's repository up as its clone (remote, credentials, branch).
        let copied = images
            .copy_to(image_id, dest)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        if copied {
            crate::log!(
                "provider",
                "sandbox {}: from image {image_id}",
                request.sandbox_id
            );
            return Ok(());
        }
    }
    if clone_url(request).is_some() {
        return tokio::fs::create_dir_all(dest).await.map_err(|e| {
            ApiError::new(
                ErrorCode::Internal,
                format!("cannot create the workspace: {e}"),
            )
        });
    }
    crate::log!(
        "provider",
        "sandbox {}: no clone URL for {title}; starting from an empty repository",
        request.sandbox_id
    );
    crate::git::init_with_readme(dest, &repo.branch, &title)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// `cp -a src dest` through a temporary name, so a half-made copy never has the final name.
pub async fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dest.with_file_name(format!(
        ".tmp-{file_name}-{:08x}",
        crate::ids::random_u64()? as u32
    ));
    let output = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(&temp)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(Error::io("cannot run cp"))?;
    if !output.status.success() {
        let _ = tokio::fs::remove_dir_all(&temp).await;
        return Err(Error::CommandFailed {
            what: "copying",
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    tokio::fs::rename(&temp, dest)
        .await
        .map_err(Error::io("cannot move the copy in place"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations() {
        let mut sandboxes = Sandboxes::new(
            PathBuf::from("/nonexistent"),
            BridgeSetup {
                agent: AgentKind::Dev,
                bridge_bin: PathBuf::from("bridge"),
                passthrough: vec![],
                agent_env: vec![],
                user: None,
            },
        );
        assert!(sandboxes.reserve("sbx_1").is_ok());
        assert_eq!(
            sandboxes.reserve("sbx_1").map_err(|e| e.code),
            Err(ErrorCode::Conflict)
        );
        assert!(sandboxes.remove("sbx_1").is_err());
        sandboxes.release("sbx_1");
        assert!(sandboxes.reserve("sbx_1").is_ok());
        for bad in [SNAPSHOTS, "../x", ""] {
            assert_eq!(
                sandboxes.reserve(bad).map_err(|e| e.code),
                Err(ErrorCode::InvalidField)
            );
        }
        assert!(matches!(sandboxes.remove("unknown"), Ok(None)));
    }
}
