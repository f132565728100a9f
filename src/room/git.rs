//! The session's git on the git host: credentials for the sandbox's git credential helper
//! (an installation token down-scoped to the session's repository, or a local git host token
//! under `npm run dev`), the branch each prompt's work is pushed to, and what a push changes:
//! the `branch` artifact, and the open `pr` artifact's head commit.

use super::artifacts;
use super::bridge;
use super::context::Ctx;
use crate::error::Result;
use crate::github::app::{self, Use};
use crate::respond;
use crate::time::rfc3339;
use protocol::frames::parse_json;
use protocol::git::{
    session_branch, sign_local_token, Credential, CredentialRequest, TOKEN_USERNAME,
};
use protocol::{ApiError, ErrorCode};
use serde_json::json;
use worker::{Request, Response};

/// A local git host token lasts this long; the helper asks again after.
const LOCAL_TOKEN_MS: u64 = 3600 * 1000;

fn not_configured() -> ApiError {
    ApiError::new(
        ErrorCode::NotConfigured,
        "this coordinator cannot give git credentials: configure the GitHub App (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY), or GIT_HOST for the local git host",
    )
}

/// The branch the next prompt's work is pushed to, when the sandbox can get credentials.
pub fn push_branch(cx: &Ctx) -> Result<Option<String>> {
    let Some(gh) = cx
        .config
        .github
        .as_ref()
        .filter(|g| g.can_give_credentials())
    else {
        return Ok(None);
    };
    let session = cx.store.existing_session()?;
    Ok(Some(session_branch(&gh.branch_prefix, &session.id)))
}

/// `POST /v1/sessions/:id/sandbox/git-credentials`: the sandbox's git asks for the session's
/// repository on the git host, and nothing else.
pub async fn credentials(cx: &Ctx<'_>, req: &mut Request) -> Result<Response> {
    bridge::authenticate(cx, req)?;
    let session = cx.store.existing_session()?;
    let request: CredentialRequest = parse_json(&req.bytes().await?)?;
    let gh = cx
        .config
        .github
        .as_ref()
        .filter(|g| g.can_give_credentials())
        .ok_or_else(not_configured)?;
    if let Some(why) = gh.git.refuses(&request, &session.repo) {
        return Err(ApiError::new(ErrorCode::Forbidden, why).into());
    }
    let credential = if gh.app.is_some() {
        let token = app::installation_token(gh, &session.repo, Use::Git).await?;
        Credential {
            username: TOKEN_USERNAME.into(),
            password: token.value,
            expires_at: Some(rfc3339(token.expires_ms)),
        }
    } else {
        let secret = cx
            .config
            .provider
            .secret
            .as_deref()
            .ok_or_else(not_configured)?;
        let expires_ms = crate::time::now_ms() + LOCAL_TOKEN_MS;
        Credential {
            username: TOKEN_USERNAME.into(),
            password: sign_local_token(secret.as_bytes(), &session.repo, expires_ms),
            expires_at: Some(rfc3339(expires_ms)),
        }
    };
    respond::json(200, &credential)
}

/// What the bridge reports of a push.
pub struct Pushed {
    pub branch: String,
    pub commit: String,
    pub files_changed: u32,
    pub additions: u32,
    pub deletions: u32,
}

/// The bridge pushed the session's branch: the `branch` artifact (`protocol::git::BranchData`)
/// is created or updated, and an open pull request shows the new head commit.
pub fn pushed(cx: &Ctx, message_id: &str, pushed: Pushed) -> Result<()> {
    let session = cx.store.existing_session()?;
    let gh = cx.config.github.as_ref();
    let expected = gh.map(|g| session_branch(&g.branch_prefix, &session.id));
    if expected.as_deref() != Some(pushed.branch.as_str()) {
        return Err(
            ApiError::invalid_field("pushed names a branch this session did not ask for").into(),
        );
    }
    let mut data = json!({
        "name": pushed.branch,
        "commit": pushed.commit,
        "files_changed": pushed.files_changed,
        "additions": pushed.additions,
        "deletions": pushed.deletions,
    });
    if let Some(url) = gh.and_then(|g| g.branch_url(&session.repo, &pushed.branch)) {
        data["url"] = url.into();
    }
    match cx.store.latest_artifact("branch")? {
        Some(row) => artifacts::update(cx, &row, data).map(drop)?,
        None => {
            let author = match cx.store.message(message_id)? {
                Some(message) => cx.store.participant(&message.author_id)?,
                None => None,
            };
            artifacts::add(cx, "branch", author.as_ref(), Some(message_id), data).map(drop)?
        }
    }
    if let Some(row) = cx.store.latest_artifact("pr")? {
        let mut pr = row.data();
        if pr["state"] == "open" {
            pr["head_commit"] = pushed.commit.into();
            artifacts::update(cx, &row, pr)?;
        }
    }
    Ok(())
}
