//! The session's pull request: what the Worker opens it from (the branch as last pushed, the
//! prompts, their authors, the files edited), the `pr` artifact once it is open, and the
//! artifact's updates when GitHub says it was merged, closed, reopened or pushed to.

use super::api::{Caller, PullRequestDraft};
use super::artifacts;
use super::context::Ctx;
use super::members::ensure_participant;
use crate::error::Result;
use crate::github::webhook::PullRequestChange;
use protocol::git::PullRequestData;
use serde_json::Value;

pub fn draft(cx: &Ctx) -> Result<PullRequestDraft> {
    let session = cx.store.existing_session()?;
    let data = |kind: &str| -> Result<Value> {
        Ok(cx
            .store
            .latest_artifact(kind)?
            .map_or(Value::Null, |row| row.data()))
    };
    let (first, _) = cx.store.messages(0, 1)?;
    Ok(PullRequestDraft {
        repo: session.repo,
        base: session.branch,
        title: session.title,
        branch: serde_json::from_value(data("branch")?).ok(),
        pull_request: serde_json::from_value(data("pr")?).ok(),
        first_prompt: first.into_iter().next().map(|m| m.content),
        authors: cx.store.prompt_authors()?,
        files: cx.store.edited_paths()?,
    })
}

/// A pull request opened (or found open) by `caller`: a new `pr` artifact, or the one with its
/// number updated. Returns the artifact's id.
pub fn opened(cx: &Ctx, caller: &Caller, pull_request: PullRequestData) -> Result<String> {
    let data = serde_json::to_value(&pull_request)?;
    if let Some(row) = cx.store.pull_request_artifact(pull_request.number)? {
        artifacts::update(cx, &row, data)?;
        return Ok(row.id);
    }
    let participant = ensure_participant(cx, caller)?;
    artifacts::add(cx, "pr", Some(&participant), None, data)
}

/// What a webhook said of one of the session's pull requests; `false` when it changes nothing
/// here (another repository, a pull request this session did not open, nothing new).
pub fn changed(cx: &Ctx, change: PullRequestChange) -> Result<bool> {
    let session = cx.store.existing_session()?;
    if !session.repo.eq_ignore_ascii_case(&change.repo) {
        return Ok(false);
    }
    let Some(row) = cx.store.pull_request_artifact(change.number)? else {
        return Ok(false);
    };
    let Ok(mut pr) = serde_json::from_value::<PullRequestData>(row.data()) else {
        return Ok(false);
    };
    pr.state = change.state;
    pr.head_commit = change.head_commit.or(pr.head_commit);
    pr.merged_at = change.merged_at;
    pr.closed_at = change.closed_at;
    artifacts::update(cx, &row, serde_json::to_value(&pr)?)
}
