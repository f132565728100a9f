//! GitHub's webhooks: the `X-Hub-Signature-256` check (HMAC-SHA256 of the raw body, compared
//! in constant time) and what a `pull_request` event means for a session: the PR on the
//! session's branch was closed, merged, reopened or pushed to. Heads from forks, other
//! branches and other events are ignored. Pure, tested natively.

use protocol::crypto::{hmac_sha256_verify, unhex};
use protocol::git::PullRequestState;
use serde_json::{json, Value};

/// Whether `header` (`sha256=<hex>`) is the body's HMAC under the webhook secret.
pub fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let mac = header
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(unhex);
    mac.is_some_and(|mac| hmac_sha256_verify(secret.as_bytes(), body, &mac))
}

/// A pull request of a session that changed: what the room updates its `pr` artifact with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestChange {
    pub session_id: String,
    pub repo: String,
    pub number: u64,
    pub state: PullRequestState,
    pub head_commit: Option<String>,
    pub merged_at: Option<String>,
    pub closed_at: Option<String>,
}

impl PullRequestChange {
    /// The body of the room's `PullRequestChanged` route: the fields of the `pr` artifact that
    /// change, plus the repository and the number that identify it.
    pub fn to_json(&self) -> Value {
        json!({
            "repo": self.repo,
            "number": self.number,
            "state": self.state.as_str(),
            "head_commit": self.head_commit,
            "merged_at": self.merged_at,
            "closed_at": self.closed_at,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Webhook {
    PullRequest(PullRequestChange),
    /// Nothing for a session to do, and why (for the log).
    Ignored(&'static str),
}

/// What an event (`X-GitHub-Event`) with this payload means here.
pub fn parse(event: &str, payload: &Value, branch_prefix: &str) -> Webhook {
    if event != "pull_request" {
        return Webhook::Ignored("not a pull_request event");
    }
    let action = payload["action"].as_str().unwrap_or_default();
    if !matches!(action, "closed" | "reopened" | "synchronize") {
        return Webhook::Ignored("an action that changes nothing here");
    }
    let pr = &payload["pull_request"];
    let full_name = |side: &str| pr[side]["repo"]["full_name"].as_str();
    let (Some(head_repo), Some(repo)) = (full_name("head"), full_name("base")) else {
        return Webhook::Ignored("a pull request without its repositories");
    };
    if !head_repo.eq_ignore_ascii_case(repo) {
        return Webhook::Ignored("a head from a fork");
    }
    let session_id = pr["head"]["ref"]
        .as_str()
        .and_then(|r| r.strip_prefix(branch_prefix)?.strip_prefix('/'))
        .filter(|id| crate::http::route::is_session_id(id));
    let (Some(session_id), Some(number)) = (session_id, pr["number"].as_u64()) else {
        return Webhook::Ignored("not a session's branch");
    };
    let text = |field: &str| pr[field].as_str().map(str::to_owned);
    let state = match (pr["merged_at"].is_string(), pr["state"].as_str()) {
        (true, _) => PullRequestState::Merged,
        (false, Some("open")) => PullRequestState::Open,
        _ => PullRequestState::Closed,
    };
    Webhook::PullRequest(PullRequestChange {
        session_id: session_id.to_owned(),
        repo: repo.to_owned(),
        number,
        state,
        head_commit: pr["head"]["sha"].as_str().map(str::to_owned),
        merged_at: text("merged_at"),
        closed_at: text("closed_at"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::crypto::{hex, hmac_sha256};
    use serde_json::json;

    const SID: &str = "ses_0123456789abcdef0123456789abcdef";

    #[test]
    fn signatures() {
        let body = br#"{"zen":"x"}"#;
        let good = format!("sha256={}", hex(&hmac_sha256(b"s3cret", body)));
        assert!(signature_valid("s3cret", body, Some(&good)));
        assert!(!signature_valid("other", body, Some(&good)));
        assert!(!signature_valid("s3cret", b"{}", Some(&good)));
        assert!(!signature_valid(
            "s3cret",
            body,
            Some(&good.replace("sha256=", "sha1="))
        ));
        assert!(!signature_valid("s3cret", body, None));
        assert!(!signature_valid("s3cret", body, Some("sha256=zz")));
    }

    fn payload(action: &str, head_ref: &str, head_repo: &str, merged: bool) -> Value {
        json!({"action": action, "pull_request": {
            "number": 3, "state": if action == "reopened" { "open" } else { "closed" },
            "merged_at": if merged { json!("2026-01-02T03:04:05Z") } else { Value::Null },
            "closed_at": "2026-01-02T03:04:05Z",
            "head": {"ref": head_ref, "sha": "abc", "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "repo": {"full_name": "acme/demo"}},
        }})
    }

    #[test]
    fn pull_request_events() {
        let branch = format!("agent/{SID}");
        let Webhook::PullRequest(change) = parse(
            "pull_request",
            &payload("closed", &branch, "acme/demo", true),
            "agent",
        ) else {
            panic!("a merge on the session's branch is a change");
        };
        assert_eq!((change.session_id.as_str(), change.number), (SID, 3));
        assert_eq!(change.state, PullRequestState::Merged);
        assert_eq!(change.merged_at.as_deref(), Some("2026-01-02T03:04:05Z"));
        let reopened = parse(
            "pull_request",
            &payload("reopened", &branch, "acme/demo", false),
            "agent",
        );
        assert!(matches!(reopened, Webhook::PullRequest(c) if c.state == PullRequestState::Open));
        for (event, body, why) in [
            (
                "push",
                payload("closed", &branch, "acme/demo", true),
                "not a pull_request event",
            ),
            (
                "pull_request",
                payload("labeled", &branch, "acme/demo", false),
                "an action that changes nothing here",
            ),
            (
                "pull_request",
                payload("closed", &branch, "fork/demo", true),
                "a head from a fork",
            ),
            (
                "pull_request",
                payload("closed", "feature/x", "acme/demo", true),
                "not a session's branch",
            ),
            (
                "pull_request",
                payload("closed", "agent/ses_nope", "acme/demo", true),
                "not a session's branch",
            ),
            (
                "pull_request",
                json!({"action": "closed"}),
                "a pull request without its repositories",
            ),
        ] {
            assert_eq!(parse(event, &body, "agent"), Webhook::Ignored(why));
        }
    }
}
