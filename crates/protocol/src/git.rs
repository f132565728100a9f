//! Git on the wire: branch names (one rule, applied by the coordinator, the bridge and the
//! providers), the session's branch, the credential request a sandbox's git credential helper
//! makes, the short-lived tokens of the local git host used in development, and the data of
//! the `branch` and `pr` artifacts.

use crate::crypto::{hex, hmac_sha256, hmac_sha256_verify, unhex};
use serde::{Deserialize, Serialize};

/// `https://user:token@host/…` → `https://***@host/…`: git repeats URLs in its messages, and
/// a URL may carry a token. The bridge applies it to git's output, the Worker to an image
/// build's error before it is stored and shown.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c == '\'' || c == '"' || c.is_whitespace())
            .unwrap_or(after.len());
        match after[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &after[at..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// The prefix of session branches when `BRANCH_PREFIX` is not set.
pub const DEFAULT_BRANCH_PREFIX: &str = "agent";

/// Whether `name` is a branch name git accepts and that is safe on a command line: the rules
/// of `git check-ref-format --branch`, a little stricter (ASCII only, no leading `-`).
pub fn is_branch_name(name: &str) -> bool {
    let forbidden_char = |c: char| {
        c.is_ascii_control()
            || !c.is_ascii()
            || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    };
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name != "@"
        && !name.chars().any(forbidden_char)
        && name
            .split('/')
            .all(|part| !part.starts_with('.') && !part.ends_with(".lock"))
}

/// The branch a session's work is pushed to: `<prefix>/<session id>`.
pub fn session_branch(prefix: &str, session_id: &str) -> String {
    format!("{}/{session_id}", prefix.trim_matches('/'))
}

/// What git asks its credential helper (`git credential` input), as the bridge forwards it:
/// `POST /v1/sessions/:id/sandbox/git-credentials`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    /// `https` (or `http` for the local git host in development).
    pub protocol: String,
    /// The host, with its port if any.
    pub host: String,
    /// The repository's path on the host, e.g. `acme/demo.git` (git sends it when
    /// `credential.useHttpPath` is set, which the bridge sets).
    #[serde(default)]
    pub path: Option<String>,
}

/// The credential for one repository: git's `username` and `password`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// When the password stops working (RFC 3339), so git can be asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The username GitHub expects with an installation token, which the local git host mimics.
pub const TOKEN_USERNAME: &str = "x-access-token";

/// A token for the local git host: `lg1.<expiry ms>.<hex HMAC-SHA256(secret, "git:<repo>:<expiry>")>`.
/// The coordinator signs it with the provider secret; the local provider, which serves the
/// repositories, checks it. It names one repository and expires.
pub fn sign_local_token(secret: &[u8], repo: &str, expires_ms: u64) -> String {
    let mac = hmac_sha256(secret, format!("git:{repo}:{expires_ms}").as_bytes());
    format!("lg1.{expires_ms}.{}", hex(&mac))
}

/// Whether `token` is a live local git token for `repo`.
pub fn verify_local_token(secret: &[u8], token: &str, repo: &str, now_ms: u64) -> bool {
    let mut parts = token.splitn(3, '.');
    let (Some("lg1"), Some(expires), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(expires_ms), Some(mac)) = (expires.parse::<u64>(), unhex(mac)) else {
        return false;
    };
    expires_ms > now_ms
        && hmac_sha256_verify(secret, format!("git:{repo}:{expires_ms}").as_bytes(), &mac)
}

/// The data of the session's `branch` artifact: created at the first push, updated at each
/// later one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchData {
    pub name: String,
    pub commit: String,
    pub files_changed: u32,
    pub additions: u32,
    pub deletions: u32,
    /// The branch on the git host's web pages, when it has them (GitHub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A pull request's state as the `pr` artifact shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestState {
    Open,
    Closed,
    Merged,
}

impl PullRequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            PullRequestState::Open => "open",
            PullRequestState::Closed => "closed",
            PullRequestState::Merged => "merged",
        }
    }
}

/// Who asked for a pull request to be opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenedBy {
    pub user_id: String,
    pub name: String,
    /// The GitHub account that opened it; `None` when the App opened it for the user
    /// (`PR_AS_APP_FALLBACK`).
    #[serde(default)]
    pub github_login: Option<String>,
}

/// The data of a `pr` artifact: `POST /v1/sessions/:id/pull-request` creates it, webhooks and
/// later pushes update it (`artifact_updated`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestData {
    pub number: u64,
    pub url: String,
    pub state: PullRequestState,
    /// The head branch (the session's branch) and the base branch it goes into.
    pub head: String,
    pub base: String,
    pub opened_by: OpenedBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact_userinfo(
                "fatal: repository 'https://x-access-token:ghs_abc@github.com/a/b.git/' not found"
            ),
            "fatal: repository 'https://***@github.com/a/b.git/' not found"
        );
        assert_eq!(
            redact_userinfo("see http://h:1/x and ftp://u@h"),
            "see http://h:1/x and ftp://***@h"
        );
        assert_eq!(redact_userinfo("no url"), "no url");
    }

    /// The vectors the Modal app's tests check its schema against too.
    #[test]
    fn branch_names_of_the_shared_vectors() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/branch_names.json")).unwrap();
        for (key, expected) in [("valid", true), ("invalid", false)] {
            let names = vectors[key].as_array().unwrap();
            assert!(names.len() > 10, "{key}");
            for name in names {
                let name = name.as_str().unwrap();
                assert_eq!(is_branch_name(name), expected, "{name:?}");
            }
        }
    }

    #[test]
    fn branch_names() {
        for good in ["main", "feature/x", "agent/ses_0123", "release-1.2", "a_b"] {
            assert!(is_branch_name(good), "{good}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b", "/a", "a/",
            "a.", "a//b", "a@{1}", "@", ".hidden", "a/.b", "x.lock", "a/b.lock", "ü", "a\nb",
        ] {
            assert!(!is_branch_name(bad), "{bad:?}");
        }
        assert!(!is_branch_name(&"x".repeat(201)));
        assert_eq!(session_branch("agent", "ses_1"), "agent/ses_1");
        assert_eq!(session_branch("/bots/", "ses_1"), "bots/ses_1");
        assert!(is_branch_name(&session_branch(
            DEFAULT_BRANCH_PREFIX,
            "ses_1"
        )));
    }

    #[test]
    fn local_tokens_name_one_repo_and_expire() {
        let token = sign_local_token(b"secret", "acme/demo", 10_000);
        assert!(verify_local_token(b"secret", &token, "acme/demo", 9_999));
        assert!(!verify_local_token(b"secret", &token, "acme/demo", 10_000));
        assert!(!verify_local_token(b"secret", &token, "acme/web", 1));
        assert!(!verify_local_token(b"other", &token, "acme/demo", 1));
        let forged = token.replace("lg1.10000", "lg1.99999");
        assert!(!verify_local_token(b"secret", &forged, "acme/demo", 1));
        assert!(!verify_local_token(b"secret", "lg1.x.y", "acme/demo", 1));
    }
}
