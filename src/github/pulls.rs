//! Pull requests on GitHub: the title and body written from the session when none is given,
//! GitHub's pull request as the `pr` artifact's data, and the calls that find an open one for
//! the session's branch or open a new one.

use serde_json::{json, Value};

/// GitHub shows about this much of a title in lists.
const TITLE_CHARS: usize = 72;

/// What the session says about the work, for a body nobody wrote.
pub struct Summary<'a> {
    pub first_prompt: Option<&'a str>,
    pub authors: &'a [String],
    pub files: &'a [String],
    pub files_changed: u32,
    pub session_url: &'a str,
}

/// The first prompt's first line, cut to 72 characters; the session's title without one.
pub fn default_title(session_title: &str, first_prompt: Option<&str>) -> String {
    let line = first_prompt
        .and_then(|p| p.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or(session_title);
    let mut title: String = line.chars().take(TITLE_CHARS).collect();
    if line.chars().count() > TITLE_CHARS {
        title.pop();
        title.push('…');
    }
    title
}

/// The first prompt, who prompted, the files changed and a link back to the session.
pub fn default_body(summary: &Summary) -> String {
    let mut body = String::new();
    if let Some(prompt) = summary.first_prompt {
        for line in prompt.chars().take(2000).collect::<String>().lines() {
            body.push_str(&format!("> {line}\n"));
        }
        body.push('\n');
    }
    if !summary.authors.is_empty() {
        body.push_str(&format!("Prompted by {}.\n\n", summary.authors.join(", ")));
    }
    body.push_str(&format!("Files changed: {}\n", summary.files_changed));
    for file in summary.files.iter().take(50) {
        body.push_str(&format!("- `{file}`\n"));
    }
    body.push_str(&format!("\nSession: {}\n", summary.session_url));
    body
}

/// A pull request of GitHub's REST API as the `pr` artifact's data
/// (`protocol::git::PullRequestData`, built as JSON: the Worker never needs it as a struct).
/// `opened_by` is `{user_id, name, github_login}`.
pub fn pull_request_of(pr: &Value, opened_by: Value) -> Option<Value> {
    let state = match (pr["state"].as_str()?, pr["merged_at"].is_string()) {
        (_, true) => "merged",
        ("open", _) => "open",
        _ => "closed",
    };
    let mut data = json!({
        "number": pr["number"].as_u64()?,
        "url": pr["html_url"].as_str()?,
        "state": state,
        "head": pr["head"]["ref"].as_str()?,
        "base": pr["base"]["ref"].as_str()?,
        "opened_by": opened_by,
    });
    for (field, value) in [
        ("head_commit", &pr["head"]["sha"]),
        ("merged_at", &pr["merged_at"]),
        ("closed_at", &pr["closed_at"]),
    ] {
        if value.is_string() {
            data[field] = value.clone();
        }
    }
    Some(data)
}

#[cfg(target_arch = "wasm32")]
pub use io::{create, find_open};

#[cfg(target_arch = "wasm32")]
mod io {
    use crate::config::github::GithubConfig;
    use crate::error::Result;
    use crate::github::client::{call, Answer};
    use serde_json::Value;
    use worker::Method;

    /// The open pull request whose head is `branch` of `repo` itself (not a fork), if any.
    pub async fn find_open(
        gh: &GithubConfig,
        token: &str,
        repo: &str,
        branch: &str,
    ) -> Result<Option<Value>> {
        let owner = repo.split('/').next().unwrap_or_default();
        let head: String =
            form_urlencoded::byte_serialize(format!("{owner}:{branch}").as_bytes()).collect();
        let url = format!(
            "{}/repos/{repo}/pulls?state=open&per_page=10&head={head}",
            gh.api_url
        );
        let answer = call(Method::Get, &url, Some(token), None).await?;
        if !answer.ok() {
            return Err(answer.refusal("list the repository's pull requests"));
        }
        Ok(answer.json.as_array().and_then(|a| a.first()).cloned())
    }

    /// `POST /repos/{repo}/pulls`. GitHub's answer as it is: 201 with the pull request, or 422
    /// when one exists already (the caller looks it up).
    pub async fn create(
        gh: &GithubConfig,
        token: &str,
        repo: &str,
        fields: Value,
    ) -> Result<Answer> {
        let url = format!("{}/repos/{repo}/pulls", gh.api_url);
        call(Method::Post, &url, Some(token), Some(&fields)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary<'a>(
        prompt: Option<&'a str>,
        authors: &'a [String],
        files: &'a [String],
    ) -> Summary<'a> {
        Summary {
            first_prompt: prompt,
            authors,
            files,
            files_changed: files.len() as u32,
            session_url: "https://c.example/#/s/ses_1",
        }
    }

    #[test]
    fn titles() {
        let title = |prompt| default_title("acme/demo", prompt);
        assert_eq!(
            title(Some("\n  write hello.txt: hi\nmore")),
            "write hello.txt: hi"
        );
        assert_eq!(title(None), "acme/demo");
        let long = "x".repeat(100);
        let title = title(Some(&long));
        assert_eq!(title.chars().count(), 72);
        assert!(title.ends_with('…'));
    }

    #[test]
    fn bodies() {
        let authors = vec!["Ada".to_owned(), "Bob".to_owned()];
        let files = vec!["hello.txt".to_owned()];
        let body = default_body(&summary(Some("write hello.txt: hi"), &authors, &files));
        assert_eq!(
            body,
            "> write hello.txt: hi\n\nPrompted by Ada, Bob.\n\nFiles changed: 1\n- `hello.txt`\n\nSession: https://c.example/#/s/ses_1\n"
        );
    }

    #[test]
    fn github_pull_requests_are_the_protocol_s_shape() {
        use protocol::git::{PullRequestData, PullRequestState};
        let by = json!({"user_id": "usr_1", "name": "Ada", "github_login": "ada"});
        let open = json!({"number": 7, "html_url": "https://github.com/acme/demo/pull/7", "state": "open",
            "head": {"ref": "agent/ses_1", "sha": "abc"}, "base": {"ref": "main"}, "merged_at": null, "closed_at": null});
        let data = pull_request_of(&open, by.clone()).unwrap();
        let pr: PullRequestData = serde_json::from_value(data.clone()).unwrap();
        assert_eq!(
            (pr.number, pr.state, pr.head_commit.as_deref()),
            (7, PullRequestState::Open, Some("abc"))
        );
        assert_eq!(pr.opened_by.github_login.as_deref(), Some("ada"));
        assert_eq!(
            serde_json::to_value(&pr).unwrap(),
            data,
            "nothing lost or added"
        );
        let mut merged = open.clone();
        merged["state"] = json!("closed");
        merged["merged_at"] = json!("2026-01-01T00:00:00Z");
        let state = |json: &Value| {
            serde_json::from_value::<PullRequestData>(pull_request_of(json, by.clone()).unwrap())
                .unwrap()
                .state
        };
        assert_eq!(state(&merged), PullRequestState::Merged);
        merged["merged_at"] = Value::Null;
        assert_eq!(state(&merged), PullRequestState::Closed);
        assert_eq!(pull_request_of(&json!({"number": 1}), by), None);
    }
}
