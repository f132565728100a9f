//! The cron's image step: first the builds still running are asked about, then the
//! repositories whose check is due have their default branch's head looked up (GitHub with the
//! App, else the provider's `POST /heads`), and a build is asked for where [`decide`] says so.
//! Every outcome is in D1 (`index/images.rs`); a failure is logged and left for the next run.

use super::{decide, due, error_text, update, Answer, Decision, Update, MAX_REPOS_PER_RUN};
use crate::config::Config;
use crate::error::Result;
use crate::index::{Index, NewBuild};
use crate::provider::ProviderClient;
use crate::time::now_ms;
use protocol::provider::{BuildImage, HeadLookup, RepoRef};

pub async fn run(config: &Config, index: &Index) -> Result<()> {
    let client = match ProviderClient::new(&config.provider, &config.env) {
        Ok(client) => client,
        // No provider: nothing can be built, and nothing is looked up.
        Err(_) => return Ok(()),
    };
    refresh_running(&client, index).await?;
    let runtime = match client.health().await {
        Ok(health) => health.runtime_version,
        Err(error) => {
            crate::log::error(&format!("images: the provider's health: {}", error.0));
            return Ok(());
        }
    };
    let repos: Vec<String> = crate::github::app::repos(config)
        .await
        .into_iter()
        .map(|r| r.name)
        .collect();
    let checks = index.image_checks(&repos).await?;
    for repo in due(
        &checks,
        now_ms(),
        config.image_refresh_ms,
        MAX_REPOS_PER_RUN,
    ) {
        if let Err(error) = check(config, index, &client, &repo, &runtime).await {
            crate::log::error(&format!("images: {repo}: {:?}", error));
        }
    }
    Ok(())
}

/// Asks the provider about every build still `building` and records what it says.
async fn refresh_running(client: &ProviderClient<'_>, index: &Index) -> Result<()> {
    for row in index.running_image_builds().await? {
        let answer = match row.build_id.as_deref() {
            None => Answer::Unknown,
            Some(build_id) => match client.image_build(build_id).await {
                Ok(Some(build)) => Answer::Build {
                    status: build.status,
                    image_id: build.image_id,
                    commit: build.commit,
                    error: build.error,
                },
                Ok(None) => Answer::Unknown,
                Err(error) => {
                    crate::log::error(&format!("images: build {}: {}", row.id, error.0));
                    Answer::Unreachable
                }
            },
        };
        let now = now_ms();
        match update(answer, row.started_at as u64, now) {
            Update::Keep => {}
            Update::Ready { image_id, .. } => {
                crate::log::info(&format!(
                    "images: {} at {} is ready: {image_id}",
                    row.repo, row.commit_sha
                ));
                index
                    .finish_image_build(&row.id, Some(&image_id), None, now)
                    .await?;
            }
            Update::Failed(error) => {
                let error = error_text(&error);
                crate::log::error(&format!(
                    "images: {} at {} failed: {error}",
                    row.repo, row.commit_sha
                ));
                index
                    .finish_image_build(&row.id, None, Some(&error), now)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Looks the repository's head up and asks for a build if one is due.
async fn check(
    config: &Config,
    index: &Index,
    client: &ProviderClient<'_>,
    repo: &str,
    runtime: &str,
) -> Result<()> {
    let configured = config.repo(repo);
    let clone_url = config.clone_url(repo);
    let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
    let known_branch = configured.map_or("main", |r| r.default_branch.as_str());
    let head = match head(config, client, repo, known_branch, clone_url.as_deref()).await {
        Ok(head) => head,
        Err(error) => {
            let error = error_text(&error);
            crate::log::error(&format!("images: the head of {repo}: {error}"));
            return index.record_image_check(repo, now_ms(), Some(&error)).await;
        }
    };
    index.record_image_check(repo, now_ms(), None).await?;
    let (branch, commit) = head;
    if !protocol::git::is_branch_name(&branch) {
        crate::log::error(&format!(
            "images: {repo}: the default branch {branch:?} is not a branch name"
        ));
        return Ok(());
    }
    let latest = index.latest_image_build(repo).await?;
    let reason = match decide(
        latest.as_ref().and_then(|r| r.last_build()).as_ref(),
        &branch,
        &commit,
        runtime,
        now_ms(),
    ) {
        Decision::Build(reason) => reason,
        Decision::Building | Decision::UpToDate => return Ok(()),
    };
    let request = BuildImage {
        repo: RepoRef {
            owner: owner.to_owned(),
            name: name.to_owned(),
            branch: branch.clone(),
            clone_url,
        },
        commit: Some(commit.clone()),
    };
    let started = client.build_image(&request).await;
    let id = crate::ids::new_id("imb")?;
    let now = now_ms();
    let refusal;
    let started = match &started {
        Ok(answer) => Ok(answer.build_id.as_str()),
        Err(error) => {
            refusal = error_text(&error.0);
            Err(refusal.as_str())
        }
    };
    crate::log::info(&format!(
        "images: {repo} at {commit}: {} ({}): {}",
        reason.as_str(),
        runtime,
        match started {
            Ok(build_id) => format!("build {build_id} started"),
            Err(error) => format!("not started: {error}"),
        }
    ));
    index
        .insert_image_build(&NewBuild {
            id: &id,
            repo,
            branch: &branch,
            commit: &commit,
            runtime_version: runtime,
            started,
            now_ms: now,
        })
        .await
}

/// The default branch and its head: from GitHub with the App (when the repository lives on
/// GitHub's git host), else from the provider's git host for the branch REPOS names.
async fn head(
    config: &Config,
    client: &ProviderClient<'_>,
    repo: &str,
    known_branch: &str,
    clone_url: Option<&str>,
) -> std::result::Result<(String, String), String> {
    if let Some(gh) = config.github.as_ref().filter(|gh| {
        gh.app.is_some()
            && gh.branch_url(repo, known_branch).is_some()
            && config
                .repo(repo)
                .and_then(|r| r.clone_url.as_ref())
                .is_none()
    }) {
        return crate::github::app::head(gh, repo)
            .await
            .map_err(|e| e.into_api().message);
    }
    let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
    let lookup = HeadLookup {
        repo: RepoRef {
            owner: owner.to_owned(),
            name: name.to_owned(),
            branch: known_branch.to_owned(),
            clone_url: clone_url.map(str::to_owned),
        },
    };
    match client.head(&lookup).await {
        Ok(head) if protocol::provider::is_commit(&head.commit) => Ok((head.branch, head.commit)),
        Ok(_) => Err("the provider's head is not a commit id".into()),
        Err(error) => Err(error.0),
    }
}
