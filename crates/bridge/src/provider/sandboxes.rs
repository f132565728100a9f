//! The local provider's sandboxes: a folder under the workspaces root and a `bridge run`
//! process in its own process group.

use crate::config::{is_plain_id, AgentKind};
use crate::process::signal_group;
use protocol::provider::CreateSandbox;
use protocol::{ApiError, ErrorCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// Snapshots live beside the sandboxes, in this folder of the root.
pub const SNAPSHOTS: &str = "snapshots";
/// How long a bridge gets to exit after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Variables a bridge inherits from the provider when they are set: what it needs to find
/// programs and a home, and the bridge's own settings. Nothing else (the provider's secret in
/// particular) reaches a sandbox.
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
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
];

/// Set by the provider for each bridge; a request's `env` cannot override them.
const RESERVED: &[&str] = &[
    "COORDINATOR_URL",
    "SESSION_ID",
    "SANDBOX_ID",
    "SANDBOX_TOKEN",
    "WORKSPACE",
    "AGENT",
];

enum Slot {
    /// The workspace is being prepared; the id is taken.
    Preparing,
    Live(Bridge),
}

struct Bridge {
    pgid: u32,
    exited: watch::Receiver<bool>,
}

impl Bridge {
    fn is_running(&self) -> bool {
        !*self.exited.borrow()
    }

    /// SIGTERM to the group, SIGKILL after the grace period; returns once the bridge was reaped.
    async fn end(mut self) {
        // A bridge that already exited is left alone: its pid may belong to someone else now.
        if !self.is_running() {
            return;
        }
        signal_group(self.pgid, libc::SIGTERM);
        let timed_out = tokio::time::timeout(GRACE, self.exited.wait_for(|e| *e))
            .await
            .is_err();
        if timed_out {
            signal_group(self.pgid, libc::SIGKILL);
            let _ = self.exited.wait_for(|e| *e).await;
        }
        // Whatever the bridge left in its group goes with it; the group id cannot have been
        // reused while it still had members.
        signal_group(self.pgid, libc::SIGKILL);
    }
}

pub struct Sandboxes {
    root: PathBuf,
    agent: AgentKind,
    bridge_bin: PathBuf,
    slots: HashMap<String, Slot>,
}

impl Sandboxes {
    /// `root` must exist and be canonical.
    pub fn new(root: PathBuf, agent: AgentKind, bridge_bin: PathBuf) -> Self {
        Sandboxes {
            root,
            agent,
            bridge_bin,
            slots: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn workspace(&self, sandbox_id: &str) -> PathBuf {
        self.root.join(sandbox_id)
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

    /// Starts `bridge run` for a prepared workspace; returns the bridge's pid.
    pub fn start_bridge(&mut self, request: &CreateSandbox) -> Result<u32, ApiError> {
        let workspace = self.workspace(&request.sandbox_id);
        let mut cmd = tokio::process::Command::new(&self.bridge_bin);
        cmd.arg("run")
            .current_dir(&workspace)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        crate::process::die_with_parent(&mut cmd);
        for name in INHERITED {
            if let Ok(value) = std::env::var(name) {
                cmd.env(name, value);
            }
        }
        for (name, value) in &request.env {
            if is_env_name(name) && !RESERVED.contains(&name.as_str()) {
                cmd.env(name, value);
            }
        }
        cmd.env("COORDINATOR_URL", &request.coordinator_url)
            .env("SESSION_ID", &request.session_id)
            .env("SANDBOX_ID", &request.sandbox_id)
            .env("SANDBOX_TOKEN", &request.sandbox_token)
            .env("WORKSPACE", &workspace)
            .env("AGENT", self.agent.as_str());
        let mut child = cmd.spawn().map_err(|e| {
            ApiError::new(
                ErrorCode::Internal,
                format!("cannot start {}: {e}", self.bridge_bin.display()),
            )
        })?;
        let pid = child
            .id()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the bridge exited at once"))?;
        let label = request.sandbox_id.clone();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward_lines(stdout, label.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_lines(stderr, label.clone()));
        }
        let (exited_tx, exited) = watch::channel(false);
        // Reaps the bridge whenever it exits, so no zombie is left and `exited` is known.
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => crate::log!("provider", "sandbox {label}: bridge exited ({status})"),
                Err(e) => crate::log!(
                    "provider",
                    "sandbox {label}: cannot wait for the bridge: {e}"
                ),
            }
            let _ = exited_tx.send(true);
        });
        self.slots.insert(
            request.sandbox_id.clone(),
            Slot::Live(Bridge { pgid: pid, exited }),
        );
        Ok(pid)
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

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn forward_lines(stream: impl tokio::io::AsyncRead + Unpin, label: String) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{label}] {line}");
    }
}

/// Fills `dest` (which must not exist): a copy of the snapshot, a clone of the repository, or
/// an empty repository when there is nothing to clone or the clone fails.
pub async fn prepare_workspace(
    root: &Path,
    dest: &Path,
    request: &CreateSandbox,
) -> Result<(), ApiError> {
    if let Some(snapshot_id) = &request.snapshot_id {
        if !is_plain_id(snapshot_id) {
            return Err(ApiError::invalid_field("snapshot_id is not a valid id"));
        }
        let snapshot = root.join(SNAPSHOTS).join(snapshot_id);
        if !snapshot.is_dir() {
            return Err(ApiError::not_found("snapshot"));
        }
        return copy_tree(&snapshot, dest)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e));
    }
    let repo = &request.repo;
    if !crate::git::is_safe_branch(&repo.branch) {
        return Err(ApiError::invalid_field(
            "repo.branch is not a valid branch name",
        ));
    }
    let title = format!("{}/{}", repo.owner, repo.name);
    if let Some(url) = repo.clone_url.as_deref().filter(|u| !u.is_empty()) {
        match crate::git::clone(url, &repo.branch, dest).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                crate::log!(
                    "provider",
                    "sandbox {}: cloning {title} failed ({e}); starting from an empty repository",
                    request.sandbox_id
                );
                let _ = tokio::fs::remove_dir_all(dest).await;
            }
        }
    } else {
        crate::log!(
            "provider",
            "sandbox {}: no clone URL for {title}; starting from an empty repository",
            request.sandbox_id
        );
    }
    crate::git::init_with_readme(dest, &repo.branch, &title)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e))
}

/// `cp -a src dest` through a temporary name, so a half-made copy never has the final name.
pub async fn copy_tree(src: &Path, dest: &Path) -> Result<(), String> {
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dest.with_file_name(format!(
        ".tmp-{file_name}-{:08x}",
        crate::ids::random_u64() as u32
    ));
    let output = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(&temp)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run cp: {e}"))?;
    if !output.status.success() {
        let _ = tokio::fs::remove_dir_all(&temp).await;
        return Err(format!(
            "copying failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    tokio::fs::rename(&temp, dest)
        .await
        .map_err(|e| format!("cannot move the copy in place: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(is_env_name("NPM_TOKEN"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("A=B"));
    }

    #[test]
    fn reservations() {
        let mut sandboxes = Sandboxes::new(
            PathBuf::from("/nonexistent"),
            AgentKind::Dev,
            PathBuf::from("bridge"),
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
