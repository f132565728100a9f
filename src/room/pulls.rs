//! The session's pull request: opened (or found open) on GitHub from the session's branch
//! with the token the Worker hands over for this one request (the acting user's, or the App's),
//! kept as the `pr` artifact, and updated when GitHub says it was merged, closed, reopened or
//! pushed to. The artifact's data is `protocol::git::PullRequestData`, handled here as JSON.

use super::api::Caller;
use super::artifacts;
use super::context::Ctx;
use super::members::ensure_participant;
use crate::error::{Error, Result};
use crate::github::pulls::{self, Summary};

fn first_prompt(cx: &Ctx) -> Result<Option<String>> {
    let (first, _) = cx.store.messages(0, 1)?;
    Ok(first.into_iter().next().map(|m| m.content))
}

/// The first prompt, who prompted, the files changed and a link back to the session.
fn default_body(cx: &Ctx, session_id: &str, branch: &Value, input: &Value) -> Result<String> {
    let origin = input["origin"].as_str().unwrap_or_default();
    Ok(pulls::default_body(&Summary {
        first_prompt: first_prompt(cx)?.as_deref(),
        authors: &cx.store.prompt_authors()?,
        files: &cx.store.edited_paths()?,
        files_changed: branch["files_changed"].as_u64().unwrap_or(0) as u32,
        session_url: &format!("{origin}/#/s/{session_id}"),
    }))
}
use protocol::{ApiError, ErrorCode};
use serde_json::{json, Value};

/// `POST /v1/sessions/:id/pull-request`, from the Worker with `{token, github_login, title?,
/// body?, draft?, origin}`: `{pull_request, artifact_id, created}`.
pub async fn open(cx: &Ctx<'_>, caller: &Caller, input: &Value) -> Result<Value> {
    let session = cx.store.existing_session()?;
    let branch = cx.store.latest_artifact("branch")?.map(|row| row.data());
    let (Some(gh), Some(branch)) = (&cx.config.github, branch) else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "nothing has been pushed yet: a prompt that changes files pushes the session's branch first",
        )
        .into());
    };
    let token = input["token"].as_str().unwrap_or_default();
    let head = branch["name"].as_str().unwrap_or_default();
    let repo = &session.repo;
    let fields = json!({
        "title": match input["title"].as_str() {
            Some(given) => given.to_owned(),
            None => pulls::default_title(&session.title, first_prompt(cx)?.as_deref()),
        },
        "body": match input["body"].as_str() {
            Some(given) => given.to_owned(),
            None => default_body(cx, &session.id, &branch, input)?,
        },
        "head": head,
        "base": session.branch,
        "draft": input["draft"].as_bool().unwrap_or(false),
    });
    // An open pull request for the branch is reused: GitHub says 422 and it is looked up.
    let answer = pulls::create(gh, token, repo, fields).await?;
    let (found, created) = match answer.status {
        201 => (answer.json, true),
        422 => match pulls::find_open(gh, token, repo, head).await? {
            Some(found) => (found, false),
            None => return Err(answer.refusal("open the pull request")),
        },
        _ => return Err(answer.refusal("open the pull request")),
    };
    let cx = &cx.at(crate::time::now_ms());
    let number = found["number"].as_u64().unwrap_or(0);
    let existing = cx.store.pull_request_artifact(number)?;
    // A reused pull request keeps the name of whoever opened it.
    let opened_by = match &existing {
        Some(row) => row.data()["opened_by"].clone(),
        None => json!({
            "user_id": caller.user_id,
            "name": caller.name,
            "github_login": input["github_login"],
        }),
    };
    let data = pulls::pull_request_of(&found, opened_by)
        .ok_or_else(|| Error::Runtime("GitHub's pull request lacks its fields".into()))?;
    let artifact_id = match existing {
        Some(row) => {
            artifacts::update(cx, &row, data.clone())?;
            row.id
        }
        None => {
            let participant = ensure_participant(cx, caller)?;
            artifacts::add(cx, "pr", Some(&participant), None, data.clone())?
        }
    };
    Ok(json!({ "pull_request": data, "artifact_id": artifact_id, "created": created }))
}

/// What a webhook said of one of the session's pull requests; `false` when it changes nothing
/// here (another repository, a pull request this session did not open, nothing new).
pub fn changed(cx: &Ctx, change: &Value) -> Result<bool> {
    let session = cx.store.existing_session()?;
    let repo = change["repo"].as_str().unwrap_or_default();
    let row = match change["number"].as_u64() {
        Some(number) if session.repo.eq_ignore_ascii_case(repo) => {
            cx.store.pull_request_artifact(number)?
        }
        _ => None,
    };
    let Some(row) = row else {
        return Ok(false);
    };
    let mut pr = row.data();
    for field in ["state", "merged_at", "closed_at", "head_commit"] {
        match &change[field] {
            Value::Null if field == "head_commit" => {}
            Value::Null => drop(pr.as_object_mut().map(|o| o.remove(field))),
            value => pr[field] = value.clone(),
        }
    }
    artifacts::update(cx, &row, pr)
}
