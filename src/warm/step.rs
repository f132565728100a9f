//! The warm pool's effects: a step of the pool carried out against D1 and the provider (from
//! the cron, and for one repository right after a claim), and the claim a room makes.

use super::plan::{plan, Target};
use crate::config::Config;
use crate::error::Result;
use crate::ids::new_id;
use crate::index::Index;
use crate::provider::ProviderClient;
use crate::time::now_ms;
use protocol::api::Session;
use protocol::provider::{RepoRef, StartWarmSandbox};
use worker::{Env, State};

/// A warm sandbox a room has claimed in D1; the provider has not been told yet.
pub struct Claimed {
    pub sandbox_id: String,
}

fn index(env: &Env) -> Result<Index> {
    Ok(Index::new(env.d1("DB")?))
}

/// The image new sandboxes of `repo` on `branch` start from: the newest ready build the
/// image step of the cron recorded (`image_builds`), if any; until one is, a sandbox starts
/// from a clone. A D1 failure only means a clone too. The one place rooms and the pool ask.
pub async fn latest_image(index: &Index, repo: &str, branch: &str) -> Option<String> {
    index
        .latest_image(repo, branch)
        .await
        .unwrap_or_else(|error| {
            crate::log::error(&format!("no image for {repo}: {error:?}"));
            None
        })
}

/// What each pooled repository should have (all of them, or `only` that one).
async fn targets(index: &Index, config: &Config, only: Option<&str>) -> Vec<Target> {
    let mut targets = Vec::new();
    for (repo, size) in &config.warm.pool {
        if only.is_some_and(|only| !only.eq_ignore_ascii_case(repo)) {
            continue;
        }
        targets.push(Target {
            repo: repo.clone(),
            size: *size,
            image_id: latest_image(index, repo, &default_branch(config, repo)).await,
            branch: default_branch(config, repo),
        });
    }
    targets
}

fn default_branch(config: &Config, repo: &str) -> String {
    config
        .repo(repo)
        .map_or_else(|| "main".to_owned(), |r| r.default_branch.clone())
}

/// One step of the pool: retire, delete, start (see [`plan`]). Failures of single sandboxes
/// are logged and the step goes on; the next step tries again.
pub async fn run(env: &Env, config: &Config, only: Option<&str>) -> Result<()> {
    let Ok(client) = ProviderClient::new(&config.provider, &config.env) else {
        // No provider, no pool (a configured pool without one is refused at startup by
        // nothing else, so say it here once per step).
        if !config.warm.pool.is_empty() {
            crate::log::error("WARM_POOL is set but no usable sandbox provider is configured");
        }
        return Ok(());
    };
    let index = index(env)?;
    let now = now_ms();
    let targets = targets(&index, config, only).await;
    let rows = index.warm_pool(only).await?;
    let plan = plan(&config.warm, &targets, &rows, now);
    for id in &plan.retire {
        index.retire_warm(id, now).await?;
    }
    for id in plan.delete.iter().chain(&plan.retire) {
        match client.delete(id).await {
            Ok(()) => index.warm_deleted(id).await?,
            Err(error) => crate::log::error(&format!("deleting warm sandbox {id}: {}", error.0)),
        }
    }
    for (repo, n) in &plan.start {
        for _ in 0..*n {
            if let Err(error) = start(&index, &client, config, repo).await {
                crate::log::error(&format!("starting a warm sandbox for {repo}: {error:?}"));
            }
        }
    }
    if only.is_none() {
        index.purge_warm(now).await?;
    }
    crate::log::room(
        "warm_pool",
        None,
        None,
        serde_json::json!({
            "retired": plan.retire.len(),
            "deleted": plan.delete.len(),
            "started": plan.start.iter().map(|(_, n)| n).sum::<u32>(),
        }),
    );
    Ok(())
}

/// Starts one warm sandbox: its row first (so a claim never finds a sandbox D1 does not know),
/// then the provider; a refusal retires the row.
async fn start(
    index: &Index,
    client: &ProviderClient<'_>,
    config: &Config,
    repo: &str,
) -> Result<()> {
    let sandbox_id = new_id("sbx")?;
    let branch = default_branch(config, repo);
    let image_id = latest_image(index, repo, &branch).await;
    index
        .insert_warm(&sandbox_id, repo, &branch, image_id.as_deref(), now_ms())
        .await?;
    let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
    let request = StartWarmSandbox {
        sandbox_id: sandbox_id.clone(),
        repo: RepoRef {
            owner: owner.to_owned(),
            name: name.to_owned(),
            branch,
            clone_url: config.clone_url(repo),
        },
        image_id,
        resources: crate::room::sandbox::resources(config, config.warm.max_age_ms),
        network: crate::room::sandbox::network(config),
        env: Default::default(),
    };
    match client.start_warm(&request).await {
        Ok(created) => index.warm_started(&sandbox_id, &created.provider_id).await,
        Err(error) => {
            crate::log::error(&format!("warm sandbox {sandbox_id}: {}", error.0));
            index.retire_warm(&sandbox_id, now_ms()).await
        }
    }
}

/// Claims the oldest fresh warm sandbox for the session's repository, branch and latest
/// image, if the pool has one. A D1 failure is logged and counts as an empty pool: the cold
/// path still works.
pub async fn claim(env: &Env, config: &Config, session: &Session, now: u64) -> Option<Claimed> {
    if config.warm.size(&session.repo) == 0 {
        return None;
    }
    // Not one that would be retired before it is handed over.
    let fresh_after = now.saturating_sub(config.warm.max_age_ms);
    let claimed = match index(env) {
        Ok(index) => {
            let image_id = latest_image(&index, &session.repo, &session.branch).await;
            index
                .claim_warm(
                    &session.repo,
                    &session.branch,
                    image_id.as_deref(),
                    fresh_after,
                    &session.id,
                    now,
                )
                .await
        }
        Err(error) => Err(error),
    };
    match claimed {
        Ok(claimed) => claimed.map(|sandbox_id| Claimed { sandbox_id }),
        Err(error) => {
            crate::log::error(&format!("claiming a warm sandbox: {error:?}"));
            None
        }
    }
}

/// Refills `repo`'s pool after the room's answer, without waiting for the cron.
pub fn top_up_later(state: &State, env: &Env, config: &Config, repo: &str) {
    let (env, config, repo) = (env.clone(), config.clone(), repo.to_owned());
    state.wait_until(async move {
        if let Err(error) = run(&env, &config, Some(&repo)).await {
            crate::log::error(&format!("topping up the warm pool of {repo}: {error:?}"));
        }
    });
}

/// Retires a warm sandbox whose claim failed; the next step deletes it (the room deletes it
/// too, as one of its own ended sandboxes).
pub fn retire_later(state: &State, env: &Env, sandbox_id: &str) {
    let (env, sandbox_id) = (env.clone(), sandbox_id.to_owned());
    state.wait_until(async move {
        let retired = match index(&env) {
            Ok(index) => index.retire_warm(&sandbox_id, now_ms()).await,
            Err(error) => Err(error),
        };
        if let Err(error) = retired {
            crate::log::error(&format!("retiring warm sandbox {sandbox_id}: {error:?}"));
        }
    });
}
