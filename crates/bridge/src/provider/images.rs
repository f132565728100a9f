//! The local provider's images and branch heads: `POST /heads` answers with `git ls-remote`
//! against the provider's own git host, and `POST /images` clones a repository of that git host
//! at the asked commit into `<workspaces>/.images/<image id>`. `POST /sandboxes` with that
//! `image_id` starts the workspace from a copy of it.
//!
//! An image's repository carries [`MARKER`] in its `.git`: the bridge that finds it there takes
//! the workspace up as a fresh clone (its remote, its credentials, the session branch; see
//! `repo.rs`). Builds are kept in memory: a provider started again has forgotten its builds
//! (`GET /images/:id` answers 404, which the coordinator records as failed) but not its images.

use super::sandboxes::copy_tree;
use crate::error::{Error, Result};
use protocol::provider::{is_commit, BuildImage, Head, HeadLookup, ImageBuild, RepoRef};
use protocol::{ApiError, ErrorCode};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Images live beside the sandboxes, in this folder of the workspaces root.
pub const IMAGES: &str = ".images";
/// Written into an image's `.git`: the workspace came from an image, not from the bridge's clone.
pub const MARKER: &str = crate::repo::IMAGE_MARKER;
/// At most this many builds are remembered; the oldest finished ones go first.
const MAX_BUILDS: usize = 256;
/// The newest images of a repository kept on disk; older ones are removed after a build (the
/// coordinator starts sandboxes from its newest).
const KEPT_PER_REPO: usize = 3;

/// What sandboxes run besides the repository: the coordinator rebuilds images when it changes.
pub fn runtime_version() -> String {
    format!("bridge {}", env!("CARGO_PKG_VERSION"))
}

pub struct Images {
    /// The workspaces root (canonical).
    root: PathBuf,
    /// The git host's repositories, `<git root>/<owner>/<name>.git`.
    git_root: PathBuf,
    /// Build id → its state, in the order they started.
    builds: Arc<Mutex<Vec<(String, ImageBuild)>>>,
}

/// `owner` and `name` as the git host names repositories.
fn repo_path(git_root: &Path, repo: &RepoRef) -> std::result::Result<PathBuf, ApiError> {
    let part = |p: &str| {
        (1..=100).contains(&p.len())
            && p != "."
            && p != ".."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    if !part(&repo.owner) || !part(&repo.name) {
        return Err(ApiError::invalid_field(
            "repo.owner or repo.name is not a repository name",
        ));
    }
    if !protocol::git::is_branch_name(&repo.branch) {
        return Err(ApiError::invalid_field(
            "repo.branch is not a valid branch name",
        ));
    }
    Ok(git_root
        .join(&repo.owner)
        .join(format!("{}.git", repo.name)))
}

impl Images {
    pub fn new(root: PathBuf, git_root: PathBuf) -> Self {
        Images {
            root,
            git_root,
            builds: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(IMAGES)
    }

    /// The folder of a ready image, if there is one of that id.
    pub fn image(&self, image_id: &str) -> Option<PathBuf> {
        if !crate::config::is_plain_id(image_id) {
            return None;
        }
        let path = self.dir().join(image_id);
        path.join(".git").join(MARKER).is_file().then_some(path)
    }

    /// `POST /heads`.
    pub async fn head(&self, lookup: &HeadLookup) -> std::result::Result<Head, ApiError> {
        let path = repo_path(&self.git_root, &lookup.repo)?;
        if !path.is_dir() {
            return Err(ApiError::not_found("repository"));
        }
        let found = crate::git::ls_remote_head(
            &self.git_root,
            &path.to_string_lossy(),
            &lookup.repo.branch,
        )
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
        match found {
            Some(commit) => Ok(Head {
                branch: lookup.repo.branch.clone(),
                commit,
            }),
            None => Err(ApiError::not_found("branch")),
        }
    }

    /// `POST /images`: the build's id; the clone runs on in the background.
    pub fn start(&self, request: BuildImage) -> std::result::Result<String, ApiError> {
        let source = repo_path(&self.git_root, &request.repo)?;
        if let Some(commit) = &request.commit {
            if !is_commit(commit) {
                return Err(ApiError::invalid_field("commit is not a full commit id"));
            }
        }
        let internal = |e: Error| ApiError::new(ErrorCode::Internal, e.to_string());
        let build_id = crate::ids::random_id("bld_").map_err(internal)?;
        let image_id = crate::ids::random_id("img_").map_err(internal)?;
        {
            let mut builds = self.builds.lock().unwrap_or_else(|e| e.into_inner());
            if builds.len() >= MAX_BUILDS {
                if let Some(i) = builds.iter().position(|(_, b)| b.status != "building") {
                    builds.remove(i);
                }
            }
            builds.push((build_id.clone(), building(&request)));
        }
        let builds = self.builds.clone();
        let dir = self.dir();
        let id = build_id.clone();
        tokio::spawn(async move {
            let outcome = build(&dir, &source, &request, &image_id).await;
            let mut builds = builds.lock().unwrap_or_else(|e| e.into_inner());
            let Some((_, record)) = builds.iter_mut().find(|(b, _)| *b == id) else {
                return;
            };
            match outcome {
                Ok(commit) => {
                    crate::log!(
                        "provider",
                        "image {image_id} of {}/{} at {commit}",
                        request.repo.owner,
                        request.repo.name
                    );
                    record.status = "ready".into();
                    record.image_id = Some(image_id);
                    record.commit = Some(commit);
                }
                Err(e) => {
                    crate::log!("provider", "image build {id} failed: {e}");
                    record.status = "failed".into();
                    record.error = Some(e.to_string());
                }
            }
        });
        Ok(build_id)
    }

    /// `GET /images/:build_id`.
    pub fn build(&self, build_id: &str) -> Option<ImageBuild> {
        let builds = self.builds.lock().unwrap_or_else(|e| e.into_inner());
        builds
            .iter()
            .find(|(b, _)| b == build_id)
            .map(|(_, b)| b.clone())
    }

    /// Copies a ready image to `dest`; `false` (and a log line) when there is no such image,
    /// so the sandbox starts from a clone as it would without one.
    pub async fn copy_to(&self, image_id: &str, dest: &Path) -> Result<bool> {
        let Some(image) = self.image(image_id) else {
            crate::log!(
                "provider",
                "no image {image_id:?} here; the sandbox clones instead"
            );
            return Ok(false);
        };
        copy_tree(&image, dest).await.map(|()| true)
    }
}

fn building(request: &BuildImage) -> ImageBuild {
    ImageBuild {
        status: "building".into(),
        image_id: None,
        commit: request.commit.clone(),
        built_at: None,
        error: None,
    }
}

/// Clones `source` at the commit (or the branch's head) into `<dir>/<image_id>`, through a
/// temporary name so a half-made image never has its final one; the commit it holds.
async fn build(dir: &Path, source: &Path, request: &BuildImage, image_id: &str) -> Result<String> {
    if !source.is_dir() {
        return Err(Error::Invalid(format!(
            "the git host has no repository {}/{}",
            request.repo.owner, request.repo.name
        )));
    }
    std::fs::create_dir_all(dir).map_err(Error::io("cannot create the images folder"))?;
    let temp = dir.join(format!(".tmp-{image_id}"));
    std::fs::create_dir_all(&temp).map_err(Error::io("cannot create the image's folder"))?;
    let branch = &request.repo.branch;
    let commit = request
        .commit
        .clone()
        .unwrap_or_else(|| format!("origin/{branch}"));
    let made = async {
        crate::git::clone_at(source, branch, &commit, &temp).await?;
        let head = crate::git::head(&temp)
            .await?
            .ok_or_else(|| Error::Invalid("the image has no commit".into()))?;
        let repo = format!("{}/{}", request.repo.owner, request.repo.name);
        let marker =
            serde_json::json!({"image_id": image_id, "commit": head, "repo": repo}).to_string();
        std::fs::write(temp.join(".git").join(MARKER), marker)
            .map_err(Error::io("cannot mark the image"))?;
        std::fs::rename(&temp, dir.join(image_id))
            .map_err(Error::io("cannot move the image in place"))?;
        prune(dir, &repo);
        Ok(head)
    }
    .await;
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    made
}

/// Removes all but the newest [`KEPT_PER_REPO`] images of `repo` (by their marker's time).
fn prune(dir: &Path, repo: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut images: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter_map(|path| {
            let marker = path.join(".git").join(MARKER);
            let text = std::fs::read_to_string(&marker).ok()?;
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            (value["repo"] == repo).then_some(())?;
            Some((std::fs::metadata(&marker).ok()?.modified().ok()?, path))
        })
        .collect();
    images.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, old) in images.into_iter().skip(KEPT_PER_REPO) {
        if let Err(e) = std::fs::remove_dir_all(&old) {
            crate::log!(
                "provider",
                "cannot remove the old image {}: {e}",
                old.display()
            );
        }
    }
}
