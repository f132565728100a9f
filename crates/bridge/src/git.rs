//! The few git commands the bridge and the local provider run.

use crate::error::{Error, Result};
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

/// Cloning is the only git command that talks to the network; past this it is given up.
const CLONE_TIMEOUT: Duration = Duration::from_secs(120);

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env_remove("SANDBOX_TOKEN")
        // A clone that needs credentials must fail, not wait for someone to type them.
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn run(mut cmd: Command, what: &'static str) -> Result<()> {
    let output = cmd
        .output()
        .await
        .map_err(Error::io(format!("{what}: cannot run git")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = redact_userinfo(String::from_utf8_lossy(&output.stderr).trim());
    let (stderr, _) = crate::process::cut_text(&stderr, 500);
    Err(Error::CommandFailed {
        what,
        status: output.status,
        output: stderr.to_string(),
    })
}

/// `https://user:token@host/…` → `https://***@host/…`: git repeats URLs in its messages, and
/// a clone URL may carry a token.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c == '\'' || c == '"' || c.is_whitespace())
            .unwrap_or(after.len());
        match after[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &after[at..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Commits made in the workspace carry the prompt author's name with the attribution suffix.
pub async fn set_identity(workspace: &Path, name: &str, email: &str) -> Result<()> {
    let mut cmd = git(workspace);
    cmd.args(["config", "user.name", name]);
    run(cmd, "git config user.name").await?;
    let mut cmd = git(workspace);
    cmd.args(["config", "user.email", email]);
    run(cmd, "git config user.email").await
}

/// `git clone --branch <branch> <url> <dest>`; the URL is not repeated in the error, since it
/// may carry credentials.
pub async fn clone(url: &str, branch: &str, dest: &Path) -> Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut cmd = git(parent);
    cmd.args(["clone", "--quiet", "--branch", branch, "--", url])
        .arg(dest);
    match tokio::time::timeout(CLONE_TIMEOUT, run(cmd, "git clone")).await {
        Ok(result) => result,
        Err(_) => Err(Error::TimedOut {
            what: "git clone",
            limit: CLONE_TIMEOUT,
        }),
    }
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
        "commit",
        "--quiet",
        "-m",
        "Initial commit",
    ]);
    run(cmd, "git commit").await
}

/// Branch names come from the coordinator; refuse ones git would read as options or that are
/// not plain names.
pub fn is_safe_branch(branch: &str) -> bool {
    !branch.is_empty()
        && branch.len() <= 200
        && !branch.starts_with('-')
        && !branch.contains("..")
        && branch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact_userinfo(
                "fatal: repository 'https://x-access-token:ghs_abc@github.com/a/b.git/' not found"
            ),
            "fatal: repository 'https://***@github.com/a/b.git/' not found"
        );
        assert_eq!(
            redact_userinfo("see http://h:1/x and ftp://u@h"),
            "see http://h:1/x and ftp://***@h"
        );
        assert_eq!(redact_userinfo("no url"), "no url");
    }

    #[test]
    fn branch_names() {
        for ok in ["main", "feature/x-1", "v1.2"] {
            assert!(is_safe_branch(ok), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a;b"] {
            assert!(!is_safe_branch(bad), "{bad}");
        }
    }

    #[test]
    fn init_then_identity() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(crate::ids::random_id("bridge-git-").unwrap());
        rt.block_on(async {
            init_with_readme(&dir, "main", "acme/demo").await.unwrap();
            set_identity(&dir, "Ada (agent)", "ada@example.com")
                .await
                .unwrap();
        });
        let name = std::process::Command::new("git")
            .args(["config", "user.name"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&name.stdout).trim(), "Ada (agent)");
        let branch = std::process::Command::new("git")
            .args(["rev-parse", "--abbrev-ref", "HEAD"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&branch.stdout).trim(), "main");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
