//! The workspace's repository when `bridge run` starts: cloned through the credential helper
//! when the workspace is empty and a repository is given, and in every case set up so that git
//! asks the bridge, and only the bridge, for credentials.
//!
//! A provider therefore needs no token to prepare a sandbox, and the clone URL in the
//! workspace's config carries none.

use crate::config::CloneSource;
use crate::credentials::Redactor;
use crate::git;
use std::path::Path;

/// What preparing the workspace came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// This process cloned the repository: the workspace holds nothing of an earlier sandbox.
    pub cloned: bool,
    /// Something the session should hear about (a failed clone), without any credential.
    pub problem: Option<String>,
}

/// Clones `source` into `workspace` if it is empty; then points git's credential helper at
/// `helper` (a `credential.helper` value), when there is a repository and a helper.
pub async fn prepare(
    workspace: &Path,
    source: Option<&CloneSource>,
    helper: Option<&str>,
    redactor: &Redactor,
) -> Prepared {
    let mut prepared = Prepared::default();
    let from_image = workspace.join(".git").join(IMAGE_MARKER).is_file();
    if let Some(source) = source {
        if !workspace.join(".git").exists() {
            prepared = clone_into(workspace, source, helper, redactor).await;
        }
    }
    if let Some(helper) = helper {
        if workspace.join(".git").exists() {
            if let Err(e) = git::configure_helper(workspace, helper).await {
                crate::log!("repo", "cannot set the credential helper: {e}");
            }
        }
    }
    if let (true, Some(source)) = (from_image, source) {
        prepared = take_up_image(workspace, source, redactor).await;
    }
    prepared
}

/// Written by a provider into the `.git` of an image's repository (`provider/images.rs`).
pub const IMAGE_MARKER: &str = "sandbox-image";

/// A workspace copied from an image is this bridge's clone: `origin` is pointed at the clone
/// URL and fetched (through the helper), and the marker goes, so a bridge started again in the
/// same workspace does not take it up twice. The work tree stays at the image's commit: the
/// session branch is taken up from there before the first prompt, as after a clone.
async fn take_up_image(workspace: &Path, source: &CloneSource, redactor: &Redactor) -> Prepared {
    let shown = redactor.redact(&source.url);
    crate::log!(
        "repo",
        "the workspace comes from an image; fetching {shown}"
    );
    let marker = workspace.join(".git").join(IMAGE_MARKER);
    let used = workspace.join(".git").join(format!("{IMAGE_MARKER}.used"));
    if let Err(e) = std::fs::rename(&marker, &used) {
        crate::log!("repo", "cannot put the image's marker aside: {e}");
    }
    let mut problem = None;
    if let Err(e) = git::set_origin(workspace, &source.url).await {
        problem = Some(format!(
            "cannot point the image's repository at {shown}: {e}"
        ));
    } else if let Some(branch) = source.branch.as_deref() {
        if let Err(e) = git::fetch_branch(workspace, branch, redactor).await {
            problem = Some(format!(
                "cannot fetch {shown}: {e}; the agent works on the image's commit"
            ));
        }
    }
    if let Some(problem) = &problem {
        crate::log!("repo", "{problem}");
    }
    Prepared {
        cloned: true,
        problem,
    }
}

async fn clone_into(
    workspace: &Path,
    source: &CloneSource,
    helper: Option<&str>,
    redactor: &Redactor,
) -> Prepared {
    let shown = redactor.redact(&source.url);
    match std::fs::read_dir(workspace).map(|mut entries| entries.next().is_none()) {
        Ok(true) => {}
        Ok(false) => {
            crate::log!(
                "repo",
                "the workspace is not empty and has no .git; not cloning {shown}"
            );
            return Prepared::default();
        }
        Err(e) => {
            crate::log!("repo", "cannot read the workspace: {e}");
            return Prepared::default();
        }
    }
    crate::log!("repo", "cloning {shown}");
    let branch = source.branch.as_deref();
    match git::clone(&source.url, branch, workspace, helper, redactor).await {
        Ok(()) => Prepared {
            cloned: true,
            problem: None,
        },
        Err(e) => {
            let problem = format!(
                "cannot clone {shown}: {e}; the agent works in an empty repository instead"
            );
            crate::log!("repo", "{problem}");
            empty_folder(workspace);
            // Without a remote: nothing made here can be pushed over the real repository's
            // history by mistake.
            let title = repo_title(&source.url);
            if let Err(e) = git::init_with_readme(workspace, branch.unwrap_or("main"), &title).await
            {
                crate::log!("repo", "cannot start an empty repository either: {e}");
            }
            Prepared {
                cloned: false,
                problem: Some(problem),
            }
        }
    }
}

/// Whatever a failed clone left behind.
fn empty_folder(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let _ = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// `https://github.com/acme/web.git` → `acme/web`, for the README of an empty repository.
pub fn repo_title(url: &str) -> String {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    let parts: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let name = |part: &str| part.strip_suffix(".git").unwrap_or(part).to_string();
    match parts.as_slice() {
        [.., owner, repo] if parts.len() > 2 || !url.contains("://") => {
            format!("{}/{}", name(owner), name(repo))
        }
        [.., repo] => name(repo),
        [] => "workspace".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        let check = |url: &str, expected: &str| assert_eq!(repo_title(url), expected, "{url}");
        check("https://github.com/acme/web.git", "acme/web");
        check("http://127.0.0.1:8790/git/acme/demo.git", "acme/demo");
        check("https://host/solo.git", "solo");
        check("/srv/repos/acme/site", "acme/site");
        check("", "workspace");
    }
}
