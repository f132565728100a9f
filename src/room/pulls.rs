//! The session's pull request: what the Worker opens it from (the branch as last pushed, the
//! prompts, their authors, the files edited), the `pr` artifact once it is open, and the
//! artifact's updates when GitHub says it was merged, closed, reopened or pushed to. The
//! artifact's data is `protocol::git::PullRequestData`, handled here as JSON.

use super::api::Caller;
use super::artifacts;
use super::context::Ctx;
use super::members::ensure_participant;
use crate::error::Result;
use serde_json::{json, Value};

pub fn draft(cx: &Ctx) -> Result<Value> {
    let session = cx.store.existing_session()?;
    let data = |kind: &str| -> Result<Value> {
        Ok(cx
            .store
            .latest_artifact(kind)?
            .map_or(Value::Null, |row| row.data()))
    };
    let (first, _) = cx.store.messages(0, 1)?;
    Ok(json!({
        "repo": session.repo,
        "base": session.branch,
        "title": session.title,
        "branch": data("branch")?,
        "pull_request": data("pr")?,
        "first_prompt": first.into_iter().next().map(|m| m.content),
        "authors": cx.store.prompt_authors()?,
        "files": cx.store.edited_paths()?,
    }))
}

/// A pull request opened (or found open) by `caller`: a new `pr` artifact, or the one with its
/// number updated. Returns the artifact's id.
pub fn opened(cx: &Ctx, caller: &Caller, body: &Value) -> Result<String> {
    let data = body["pull_request"].clone();
    let number = data["number"]
        .as_u64()
        .ok_or_else(|| protocol::ApiError::invalid_field("pull_request.number is missing"))?;
    if let Some(row) = cx.store.pull_request_artifact(number)? {
        artifacts::update(cx, &row, data)?;
        return Ok(row.id);
    }
    let participant = ensure_participant(cx, caller)?;
    artifacts::add(cx, "pr", Some(&participant), None, data)
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
