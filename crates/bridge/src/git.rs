//! The git commands the bridge and the local provider run. Every one runs with a closed stdin
//! and no terminal prompt, and whatever git says in an error goes through a [`Redactor`], so no
//! credential reaches a frame or a log line.
//!
//! Where the agent runs as another user ([`separate`]), the workspace is that user's, and so
//! is everything in its `.git` (config, hooks, attributes) that makes git run commands. The
//! bridge's git then never runs with its own rights in there: commands that work on the
//! workspace alone (add, commit, checkout, config, diff) run as the agent's user, and those
//! that need credentials from the bridge's helper (ls-remote, fetch, push) run in the bridge's
//! own bare repository, which borrows the workspace's objects (`objects/info/alternates`) and
//! whose config only the bridge writes, against the clone URL the provider gave (never the
//! workspace's `origin`), with hooks off and no global config. The clone, made before the
//! agent has touched the workspace, is handed over to the agent's user when done.

use crate::credentials::Redactor;
use crate::error::{Error, Result};
use crate::process::AgentUser;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::process::Command;

/// How the bridge's git is kept apart from an agent of another user.
#[derive(Clone, Debug)]
pub struct Separation {
    pub user: AgentUser,
    pub workspace: PathBuf,
    /// The bridge's own bare repository (in its state folder), readable by the agent's user so
    /// that a fetched branch can be taken over into the workspace.
    pub private: PathBuf,
    /// The repository to fetch from and push to: the clone URL, as the provider gave it.
    pub remote: Option<String>,
    /// The bridge's credential helper (a `credential.helper` value).
    pub helper: Option<String>,
}

static SEPARATION: OnceLock<Separation> = OnceLock::new();

/// From now on, in this process, git works as [`Separation`] says. Set once, at start.
pub fn separate(separation: Separation) {
    let _ = SEPARATION.set(separation);
}

fn separation() -> Option<&'static Separation> {
    SEPARATION.get()
}

/// Configuration for every git command the bridge runs with its own rights: no hooks, no
/// file-system monitor, no askpass program, no background maintenance, no `ext::` transport.
const LOCKED: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.askPass=",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "submodule.recurse=false",
];

/// git with the bridge's own rights, locked down, and no global config (the agent's `HOME`
/// may be the one the bridge has).
fn own_git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env_remove("SANDBOX_TOKEN")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(LOCKED)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// git in the bridge's own repository (made on first use), asking the bridge's helper for
/// credentials.
async fn in_private(separation: &Separation) -> Result<Command> {
    let private = &separation.private;
    if !private.join("HEAD").exists() {
        let mut cmd = own_git(separation.private.parent().unwrap_or(Path::new("/")));
        cmd.args(["init", "--bare", "--quiet"]).arg(private);
        run(cmd, "git init --bare").await?;
    }
    let alternates = private.join("objects/info/alternates");
    let objects = format!("{}\n", separation.workspace.join(".git/objects").display());
    std::fs::write(&alternates, objects)
        .map_err(Error::io(format!("cannot write {}", alternates.display())))?;
    let mut cmd = own_git(private);
    cmd.arg("--git-dir").arg(private);
    if let Some(helper) = &separation.helper {
        cmd.args(["-c", "credential.helper=", "-c"])
            .arg(format!("credential.helper={helper}"))
            .args(["-c", "credential.useHttpPath=true"]);
    }
    Ok(cmd)
}

/// The remote the bridge's own repository talks to.
fn private_remote(separation: &Separation) -> Result<&str> {
    separation
        .remote
        .as_deref()
        .ok_or_else(|| Error::Invalid("this sandbox was given no repository to push to".into()))
}

/// Commands that talk to the network (clone, fetch, push) are given up past this.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(120);
/// Error output in an error is cut to this many bytes.
const ERROR_OUTPUT_LIMIT: usize = 2000;

/// git on the workspace alone: as the agent's user when it is another.
fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    crate::process::run_as(&mut cmd, separation().map(|s| s.user));
    cmd.current_dir(dir)
        .env_remove("SANDBOX_TOKEN")
        // A command that needs credentials the helper cannot give must fail, not wait for
        // someone to type them.
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd`; `Err` when it cannot run or outlives `limit`, otherwise its output whatever its
/// exit status.
async fn exec(mut cmd: Command, what: &'static str, limit: Option<Duration>) -> Result<Output> {
    let output = cmd.output();
    let output = match limit {
        Some(limit) => tokio::time::timeout(limit, output)
            .await
            .map_err(|_| Error::TimedOut { what, limit })?,
        None => output.await,
    };
    output.map_err(Error::io(format!("{what}: cannot run git")))
}

/// The error for a command that failed: git's stderr, redacted and cut.
fn failed(what: &'static str, output: &Output, redactor: &Redactor) -> Error {
    let stderr = redactor.redact(String::from_utf8_lossy(&output.stderr).trim());
    let (stderr, _) = crate::process::cut_text(&stderr, ERROR_OUTPUT_LIMIT);
    Error::CommandFailed {
        what,
        status: output.status,
        output: stderr.to_string(),
    }
}

/// Runs `cmd` and returns its stdout, trimmed; a failure is an error.
async fn run_with(
    cmd: Command,
    what: &'static str,
    redactor: &Redactor,
    limit: Option<Duration>,
) -> Result<String> {
    let output = exec(cmd, what, limit).await?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(failed(what, &output, redactor))
    }
}

async fn run(cmd: Command, what: &'static str) -> Result<String> {
    run_with(cmd, what, &Redactor::default(), None).await
}

pub use protocol::git::redact_userinfo;

/// Commits made in the workspace carry the prompt author's name with the attribution suffix.
pub async fn set_identity(workspace: &Path, name: &str, email: &str) -> Result<()> {
    let mut cmd = git(workspace);
    cmd.args(["config", "user.name", name]);
    run(cmd, "git config user.name").await?;
    let mut cmd = git(workspace);
    cmd.args(["config", "user.email", email]);
    run(cmd, "git config user.email").await.map(drop)
}

/// `git clone [--branch <branch>] <url> .` into `dest`, an empty folder, asking `helper` (a
/// `credential.helper` value) for credentials. Every helper configured elsewhere (the user's
/// or the system's) is switched off first, so none of them is asked or stores what git got.
pub async fn clone(
    url: &str,
    branch: Option<&str>,
    dest: &Path,
    helper: Option<&str>,
    redactor: &Redactor,
) -> Result<()> {
    // With the bridge's rights (its helper's socket is closed to the agent), into a folder
    // the agent has not used yet; handed over once made.
    let mut cmd = own_git(dest);
    if let Some(helper) = helper {
        cmd.args(["-c", "credential.helper=", "-c"])
            .arg(format!("credential.helper={helper}"))
            .args(["-c", "credential.useHttpPath=true"]);
    }
    cmd.args(["clone", "--quiet"]);
    if let Some(branch) = branch {
        cmd.args(["--branch", branch]);
    }
    cmd.args(["--", url, "."]);
    run_with(cmd, "git clone", redactor, Some(NETWORK_TIMEOUT)).await?;
    hand_over(dest).await
}

/// What the bridge made in the workspace becomes the agent's user's, when that is another.
async fn hand_over(path: &Path) -> Result<()> {
    match separation() {
        Some(separation) => crate::process::hand_over(path, separation.user).await,
        None => Ok(()),
    }
}

/// An image's workspace: `source` (a repository on this machine) cloned into `dest`, with
/// `branch` checked out at `commit`. No hard links into `source`: the image is copied into
/// workspaces that another user may own.
pub async fn clone_at(source: &Path, branch: &str, commit: &str, dest: &Path) -> Result<()> {
    let mut cmd = git(dest);
    cmd.args(["clone", "--quiet", "--no-hardlinks", "--no-checkout", "--"])
        .arg(source)
        .arg(".");
    run_with(
        cmd,
        "git clone",
        &Redactor::default(),
        Some(NETWORK_TIMEOUT),
    )
    .await?;
    let mut cmd = git(dest);
    cmd.args(["checkout", "--quiet", "-B", branch, commit, "--"]);
    run(cmd, "git checkout").await.map(drop)
}

/// The commit `refs/heads/<branch>` names in `repository` (a URL or a path), by `git ls-remote`;
/// `None` when it has no such branch.
pub async fn ls_remote_head(dir: &Path, repository: &str, branch: &str) -> Result<Option<String>> {
    let mut cmd = git(dir);
    cmd.args(["ls-remote", "--heads", "--", repository])
        .arg(format!("refs/heads/{branch}"));
    let listed = run_with(
        cmd,
        "git ls-remote",
        &Redactor::default(),
        Some(NETWORK_TIMEOUT),
    )
    .await?;
    Ok(listed
        .lines()
        .find_map(|line| line.split_once('\t'))
        .filter(|(_, name)| *name == format!("refs/heads/{branch}"))
        .map(|(commit, _)| commit.to_string()))
}

/// Points `origin` at `url` (adding it when there is none).
pub async fn set_origin(workspace: &Path, url: &str) -> Result<()> {
    let verb = if has_origin(workspace).await? {
        "set-url"
    } else {
        "add"
    };
    let mut cmd = git(workspace);
    cmd.args(["remote", verb, "origin", url]);
    run(cmd, "git remote").await.map(drop)
}

/// `git fetch origin <branch>` into `refs/remotes/origin/<branch>`, through the configured helper.
pub async fn fetch_branch(workspace: &Path, branch: &str, redactor: &Redactor) -> Result<()> {
    let mut cmd = git(workspace);
    cmd.args(["fetch", "--quiet", "origin"])
        .arg(format!("+refs/heads/{branch}:refs/remotes/origin/{branch}"));
    run_with(cmd, "git fetch", redactor, Some(NETWORK_TIMEOUT))
        .await
        .map(drop)
}

/// Makes `helper` the workspace's only credential helper, asked with the repository's path.
pub async fn configure_helper(workspace: &Path, helper: &str) -> Result<()> {
    // The empty value clears the helpers of the user's and the system's config.
    let mut cmd = git(workspace);
    cmd.args(["config", "--replace-all", "credential.helper", ""]);
    run(cmd, "git config credential.helper").await?;
    let mut cmd = git(workspace);
    cmd.args(["config", "--add", "credential.helper", helper]);
    run(cmd, "git config credential.helper").await?;
    let mut cmd = git(workspace);
    cmd.args(["config", "credential.useHttpPath", "true"]);
    run(cmd, "git config credential.useHttpPath")
        .await
        .map(drop)
}

/// An empty repository on `branch` with one commit holding a README.
pub async fn init_with_readme(dest: &Path, branch: &str, title: &str) -> Result<()> {
    std::fs::create_dir_all(dest)
        .map_err(Error::io(format!("cannot create {}", dest.display())))?;
    let mut cmd = git(dest);
    cmd.args(["init", "--quiet"]);
    run(cmd, "git init").await?;
    let mut cmd = git(dest);
    cmd.args(["checkout", "--quiet", "-b", branch]);
    run(cmd, "git checkout -b").await?;
    std::fs::write(dest.join("README.md"), format!("# {title}\n"))
        .map_err(Error::io("cannot write README.md"))?;
    let mut cmd = git(dest);
    cmd.args(["add", "README.md"]);
    run(cmd, "git add").await?;
    let mut cmd = git(dest);
    cmd.args([
        "-c",
        "user.name=bridge",
        "-c",
        "user.email=bridge@localhost",
        "-c",
        "commit.gpgSign=false",
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        "Initial commit",
    ]);
    run(cmd, "git commit").await?;
    hand_over(dest).await
}

/// The commit HEAD points at; `None` in a repository without commits.
pub async fn head(workspace: &Path) -> Result<Option<String>> {
    let mut cmd = git(workspace);
    cmd.args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]);
    let output = exec(cmd, "git rev-parse", None).await?;
    match output.status.code() {
        Some(0) => Ok(Some(
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
        )),
        Some(1) => Ok(None),
        _ => Err(failed("git rev-parse", &output, &Redactor::default())),
    }
}

/// The checked-out branch; `None` on a detached HEAD.
pub async fn current_branch(workspace: &Path) -> Result<Option<String>> {
    let mut cmd = git(workspace);
    cmd.args(["symbolic-ref", "--quiet", "--short", "HEAD"]);
    let output = exec(cmd, "git symbolic-ref", None).await?;
    match output.status.code() {
        Some(0) => Ok(Some(
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
        )),
        Some(1) => Ok(None),
        _ => Err(failed("git symbolic-ref", &output, &Redactor::default())),
    }
}

/// `git add -A`, then whether anything is staged.
pub async fn stage_all(workspace: &Path) -> Result<bool> {
    let mut cmd = git(workspace);
    cmd.args(["add", "-A"]);
    run(cmd, "git add").await?;
    let mut cmd = git(workspace);
    cmd.args(["diff", "--cached", "--quiet"]);
    let output = exec(cmd, "git diff --cached", None).await?;
    match output.status.code() {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(failed("git diff --cached", &output, &Redactor::default())),
    }
}

/// Commits what is staged as `name <email>` (author and committer). Hooks and signing set up
/// elsewhere are left out: the commit must not depend on them.
pub async fn commit(workspace: &Path, name: &str, email: &str, message: &str) -> Result<()> {
    let mut cmd = git(workspace);
    cmd.arg("-c")
        .arg(format!("user.name={name}"))
        .arg("-c")
        .arg(format!("user.email={email}"))
        .args([
            "-c",
            "commit.gpgSign=false",
            "commit",
            "--quiet",
            "--no-verify",
        ])
        .args(["--cleanup=verbatim", "-m", message])
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env_remove("GIT_COMMITTER_NAME")
        .env_remove("GIT_COMMITTER_EMAIL");
    run(cmd, "git commit").await.map(drop)
}

/// `git push origin HEAD:refs/heads/<branch>`; never forced, so work already on the branch
/// cannot be lost.
pub async fn push(workspace: &Path, branch: &str, redactor: &Redactor) -> Result<()> {
    let cmd = match separation() {
        Some(separation) => {
            let Some(commit) = head(workspace).await? else {
                return Err(Error::Invalid("there is no commit to push".into()));
            };
            let mut cmd = in_private(separation).await?;
            cmd.args(["push", "--porcelain", private_remote(separation)?])
                .arg(format!("{commit}:refs/heads/{branch}"));
            cmd
        }
        None => {
            let mut cmd = git(workspace);
            cmd.args(["push", "--porcelain", "origin"])
                .arg(format!("HEAD:refs/heads/{branch}"));
            cmd
        }
    };
    run_with(cmd, "git push", redactor, Some(NETWORK_TIMEOUT))
        .await
        .map(drop)
}

/// Whether the workspace has a remote named `origin`.
pub async fn has_origin(workspace: &Path) -> Result<bool> {
    // Where the agent is another user, pushes go to the provider's clone URL, never to what the
    // workspace's config says; the `origin` remote still tells a clone from a repository that
    // was started empty (a failed clone), which pushes nowhere.
    if separation().is_some_and(|s| s.remote.is_none()) {
        return Ok(false);
    }
    let mut cmd = git(workspace);
    cmd.args(["remote"]);
    Ok(run(cmd, "git remote")
        .await?
        .lines()
        .any(|name| name == "origin"))
}

/// Whether `origin` has the branch.
pub async fn remote_has_branch(
    workspace: &Path,
    branch: &str,
    redactor: &Redactor,
) -> Result<bool> {
    let mut cmd = match separation() {
        Some(separation) => {
            let mut cmd = in_private(separation).await?;
            cmd.args([
                "ls-remote",
                "--exit-code",
                "--heads",
                private_remote(separation)?,
            ]);
            cmd
        }
        None => {
            let mut cmd = git(workspace);
            cmd.args(["ls-remote", "--exit-code", "--heads", "origin"]);
            cmd
        }
    };
    cmd.arg(format!("refs/heads/{branch}"));
    let output = exec(cmd, "git ls-remote", Some(NETWORK_TIMEOUT)).await?;
    match output.status.code() {
        Some(0) => Ok(true),
        Some(2) => Ok(false),
        _ => Err(failed("git ls-remote", &output, redactor)),
    }
}

/// Fetches `branch` from `origin` and checks it out as the local branch of that name.
pub async fn check_out_remote_branch(
    workspace: &Path,
    branch: &str,
    redactor: &Redactor,
) -> Result<()> {
    let tracking = format!("refs/remotes/origin/{branch}");
    match separation() {
        Some(separation) => {
            // Into the bridge's repository first, then, as the agent's user, from there.
            let mut cmd = in_private(separation).await?;
            cmd.args(["fetch", "--quiet", private_remote(separation)?])
                .arg(format!("+refs/heads/{branch}:{tracking}"));
            run_with(cmd, "git fetch", redactor, Some(NETWORK_TIMEOUT)).await?;
            // git clears `-c` settings for a local upload-pack: they go on its command line.
            let private = separation.private.display().to_string().replace('\'', "");
            let mut cmd = git(workspace);
            cmd.args(["fetch", "--quiet"])
                .arg(format!(
                    "--upload-pack=git -c 'safe.directory={private}' upload-pack"
                ))
                .arg(&separation.private)
                .arg(format!("+{tracking}:{tracking}"));
            run_with(cmd, "git fetch", redactor, Some(NETWORK_TIMEOUT)).await?;
        }
        None => {
            let mut cmd = git(workspace);
            cmd.args(["fetch", "--quiet", "origin"])
                .arg(format!("+refs/heads/{branch}:{tracking}"));
            run_with(cmd, "git fetch", redactor, Some(NETWORK_TIMEOUT)).await?;
        }
    }
    let mut cmd = git(workspace);
    cmd.args(["checkout", "--quiet", "-B", branch, &tracking]);
    run(cmd, "git checkout").await.map(drop)
}

/// Starts the local branch `branch` at HEAD (the work in progress stays as it is).
pub async fn start_branch(workspace: &Path, branch: &str) -> Result<()> {
    let mut cmd = git(workspace);
    cmd.args(["checkout", "--quiet", "-B", branch]);
    run(cmd, "git checkout").await.map(drop)
}

/// What changed between two commits, as `git diff --shortstat` counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shortstat {
    pub files_changed: u32,
    pub additions: u32,
    pub deletions: u32,
}

/// `git diff --shortstat <base> <head>`; with no base, against the empty tree.
pub async fn shortstat(workspace: &Path, base: Option<&str>, head: &str) -> Result<Shortstat> {
    let base = match base {
        Some(base) => base.to_string(),
        None => {
            let mut cmd = git(workspace);
            cmd.args(["hash-object", "-t", "tree", "/dev/null"]);
            run(cmd, "git hash-object").await?
        }
    };
    let mut cmd = git(workspace);
    cmd.args(["diff", "--shortstat", &base, head, "--"]);
    Ok(parse_shortstat(&run(cmd, "git diff --shortstat").await?))
}

/// ` 2 files changed, 3 insertions(+), 1 deletion(-)`; parts git leaves out are zero.
pub fn parse_shortstat(text: &str) -> Shortstat {
    let mut stat = Shortstat::default();
    for part in text.split(',') {
        let mut words = part.split_whitespace();
        let (Some(number), Some(noun)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        if noun.starts_with("file") {
            stat.files_changed = number;
        } else if noun.starts_with("insertion") {
            stat.additions = number;
        } else if noun.starts_with("deletion") {
            stat.deletions = number;
        }
    }
    stat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortstats() {
        let check = |text: &str, expected: (u32, u32, u32)| {
            let stat = parse_shortstat(text);
            assert_eq!(
                (stat.files_changed, stat.additions, stat.deletions),
                expected,
                "{text:?}"
            );
        };
        check(" 1 file changed, 1 insertion(+)", (1, 1, 0));
        check(
            " 3 files changed, 10 insertions(+), 2 deletions(-)",
            (3, 10, 2),
        );
        check(" 1 file changed, 4 deletions(-)", (1, 0, 4));
        check(
            " 1 file changed, 0 insertions(+), 0 deletions(-)",
            (1, 0, 0),
        );
        check("", (0, 0, 0));
        check("garbage, more", (0, 0, 0));
    }

    fn in_runtime<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn git_out(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    #[test]
    fn init_then_identity() {
        let dir = std::env::temp_dir().join(crate::ids::random_id("bridge-git-").unwrap());
        in_runtime(async {
            init_with_readme(&dir, "main", "acme/demo").await.unwrap();
            set_identity(&dir, "Ada (agent)", "ada@example.com")
                .await
                .unwrap();
        });
        assert_eq!(git_out(&dir, &["config", "user.name"]), "Ada (agent)");
        assert_eq!(
            git_out(&dir, &["rev-parse", "--abbrev-ref", "HEAD"]),
            "main"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stage_commit_and_count() {
        let dir = std::env::temp_dir().join(crate::ids::random_id("bridge-git-").unwrap());
        in_runtime(async {
            init_with_readme(&dir, "main", "t").await.unwrap();
            let before = head(&dir).await.unwrap().unwrap();
            assert!(!stage_all(&dir).await.unwrap());
            std::fs::write(dir.join("a.txt"), "1\n2\n").unwrap();
            std::fs::write(dir.join("README.md"), "changed\n").unwrap();
            assert!(stage_all(&dir).await.unwrap());
            commit(
                &dir,
                "Ada (agent)",
                "ada@example.com",
                "Two files\n\nSession: s",
            )
            .await
            .unwrap();
            let after = head(&dir).await.unwrap().unwrap();
            assert_ne!(before, after);
            let stat = shortstat(&dir, Some(&before), &after).await.unwrap();
            assert_eq!(
                (stat.files_changed, stat.additions, stat.deletions),
                (2, 3, 1)
            );
            let from_nothing = shortstat(&dir, None, &after).await.unwrap();
            assert_eq!((from_nothing.files_changed, from_nothing.additions), (2, 3));
            assert_eq!(current_branch(&dir).await.unwrap().as_deref(), Some("main"));
            start_branch(&dir, "agent/s").await.unwrap();
            assert_eq!(
                current_branch(&dir).await.unwrap().as_deref(),
                Some("agent/s")
            );
        });
        assert_eq!(
            git_out(&dir, &["log", "-1", "--format=%an <%ae>|%cn|%B"]),
            "Ada (agent) <ada@example.com>|Ada (agent)|Two files\n\nSession: s"
        );
        let empty = std::env::temp_dir().join(crate::ids::random_id("bridge-git-").unwrap());
        std::fs::create_dir_all(&empty).unwrap();
        std::process::Command::new("git")
            .args(["init", "--quiet"])
            .current_dir(&empty)
            .status()
            .unwrap();
        assert_eq!(in_runtime(head(&empty)).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&empty);
    }
}
