//! A prompt's work on the session branch: before the prompt, a workspace this bridge cloned
//! takes up the branch where earlier sandboxes of the session left it; after it, what changed
//! is committed as the prompt's author and pushed to `<push_branch>` on `origin`.
//!
//! Only prompts that carry a `push_branch` are committed, and only in a workspace with an
//! `origin` to push to. A push that fails is tried again after the next prompt, so nothing
//! committed stays behind for good.

use crate::credentials::Redactor;
use crate::git;
use protocol::bridge::PromptJob;
use std::path::PathBuf;

/// A push that went through, with what it carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    pub branch: String,
    pub commit: String,
    pub stat: git::Shortstat,
}

/// Where the workspace stood when a prompt began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    branch: String,
    /// HEAD before the prompt; `None` in a repository without commits.
    head: Option<String>,
}

pub struct Publisher {
    workspace: PathBuf,
    session_id: String,
    attribution: String,
    redactor: Redactor,
    /// This process cloned the workspace and has not looked for the session branch yet.
    take_up_branch: bool,
    /// The commit the branch was last pushed from, when a later push failed: the next push
    /// counts its changes from there.
    unpushed_since: Option<Option<String>>,
    /// The log already says there is no `origin` to push to.
    said_no_origin: bool,
}

impl Publisher {
    pub fn new(
        workspace: PathBuf,
        session_id: String,
        attribution: String,
        redactor: Redactor,
        cloned: bool,
    ) -> Publisher {
        Publisher {
            workspace,
            session_id,
            attribution,
            redactor,
            take_up_branch: cloned,
            unpushed_since: None,
            said_no_origin: false,
        }
    }

    /// Before the prompt runs: `None` when it is not to be pushed. An `Err` is a sentence for
    /// the session; the prompt runs anyway.
    pub async fn start(&mut self, job: &PromptJob) -> Result<Option<Start>, String> {
        let Some(branch) = job.push_branch.as_deref() else {
            return Ok(None);
        };
        if !protocol::git::is_branch_name(branch) {
            return Err(format!(
                "not pushing to {branch:?}: not a branch name git accepts"
            ));
        }
        // A workspace that was not cloned (nothing to clone, or the clone failed, which the
        // session has heard about) has nowhere to push to.
        if !git::has_origin(&self.workspace).await.unwrap_or(false) {
            if !std::mem::replace(&mut self.said_no_origin, true) {
                crate::log!(
                    "publish",
                    "the workspace has no origin remote; nothing is pushed"
                );
            }
            return Ok(None);
        }
        if self.take_up_branch {
            // Until this works, nothing is pushed: the branch may hold work to build on.
            self.take_up(branch).await.map_err(|e| {
                format!("not pushing: cannot check out the session branch {branch}: {e}")
            })?;
            self.take_up_branch = false;
        }
        let head = git::head(&self.workspace)
            .await
            .map_err(|e| format!("cannot read HEAD: {e}"))?;
        Ok(Some(Start {
            branch: branch.to_string(),
            head,
        }))
    }

    /// A fresh clone continues the session: the branch as the remote has it, or a new one.
    async fn take_up(&self, branch: &str) -> crate::error::Result<()> {
        if git::current_branch(&self.workspace).await?.as_deref() == Some(branch) {
            return Ok(());
        }
        if git::remote_has_branch(&self.workspace, branch, &self.redactor).await? {
            crate::log!("publish", "continuing the session branch {branch}");
            git::check_out_remote_branch(&self.workspace, branch, &self.redactor).await
        } else {
            git::start_branch(&self.workspace, branch).await
        }
    }

    /// After the prompt: commits what changed and pushes. `Ok(None)` when there was nothing to
    /// push; an `Err` is git's message, without credentials.
    pub async fn finish(
        &mut self,
        job: &PromptJob,
        start: Start,
    ) -> Result<Option<Pushed>, String> {
        let workspace = &self.workspace;
        let staged = git::stage_all(workspace)
            .await
            .map_err(|e| format!("cannot stage the changes: {e}"))?;
        if staged {
            let name = format!("{}{}", job.author.name, self.attribution);
            let message = commit_message(&job.content, &self.session_id);
            git::commit(workspace, &name, &job.author.email, &message)
                .await
                .map_err(|e| format!("cannot commit the changes: {e}"))?;
        }
        let Some(head) = git::head(workspace)
            .await
            .map_err(|e| format!("cannot read HEAD: {e}"))?
        else {
            return Ok(None);
        };
        let base = match self.unpushed_since.take() {
            Some(base) => base,
            None if start.head.as_deref() == Some(head.as_str()) => return Ok(None),
            None => start.head,
        };
        if let Err(e) = git::push(workspace, &start.branch, &self.redactor).await {
            self.unpushed_since = Some(base);
            return Err(format!("cannot push to {}: {e}", start.branch));
        }
        crate::log!("publish", "pushed {head} to {}", start.branch);
        let stat = git::shortstat(workspace, base.as_deref(), &head)
            .await
            .unwrap_or_else(|e| {
                crate::log!("publish", "cannot count the changes: {e}");
                git::Shortstat::default()
            });
        Ok(Some(Pushed {
            branch: start.branch,
            commit: head,
            stat,
        }))
    }
}

/// The prompt's first line, a blank line, and the trailer naming the session.
pub fn commit_message(prompt: &str, session_id: &str) -> String {
    let title = prompt
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("Changes by the agent");
    format!("{title}\n\nSession: {session_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let check = |prompt: &str, expected: &str| {
            assert_eq!(commit_message(prompt, "ses_1"), expected, "{prompt:?}")
        };
        check(
            "write hello.txt: hi",
            "write hello.txt: hi\n\nSession: ses_1",
        );
        check(
            "Fix the header\nIt overflows on phones.\n$ npm test",
            "Fix the header\n\nSession: ses_1",
        );
        check(
            "\n  \n  Indented first line  \nmore",
            "Indented first line\n\nSession: ses_1",
        );
        check("   ", "Changes by the agent\n\nSession: ses_1");
    }
}
