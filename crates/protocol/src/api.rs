//! HTTP request and response bodies of the coordinator API (PROTOCOL.md section 1).

use crate::error::ApiError;
use crate::scope::{is_repo_name, Scopes};
use serde::{Deserialize, Serialize};

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid_field(format!(
            "{field} must not be empty"
        )));
    }
    if value.len() > max {
        return Err(ApiError::invalid_field(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub github_login: Option<String>,
    #[serde(default)]
    pub scopes: Option<Scopes>,
}

impl CreateUser {
    pub fn validate(&self) -> Result<(), ApiError> {
        check_text("name", &self.name, 100)?;
        check_text("email", &self.email, 254)?;
        if !self.email.contains('@') {
            return Err(ApiError::invalid_field("email must be an email address"));
        }
        if let Some(login) = &self.github_login {
            check_text("github_login", login, 39)?;
        }
        if let Some(scopes) = &self.scopes {
            scopes.validate().map_err(ApiError::invalid_field)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default)]
    pub scopes: Option<Scopes>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

impl UpdateUser {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.scopes.is_none() && self.disabled.is_none() {
            return Err(ApiError::invalid_field("give scopes or disabled"));
        }
        if let Some(scopes) = &self.scopes {
            scopes.validate().map_err(ApiError::invalid_field)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub github_login: Option<String>,
    pub scopes: Scopes,
    pub disabled: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub repo: String,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
}

impl CreateSession {
    pub fn validate(&self) -> Result<(), ApiError> {
        if !is_repo_name(&self.repo) {
            return Err(ApiError::invalid_field("repo must be \"owner/name\""));
        }
        if let Some(branch) = &self.branch {
            if !crate::git::is_branch_name(branch) {
                return Err(ApiError::invalid_field(
                    "branch is not a valid git branch name",
                ));
            }
        }
        if let Some(title) = &self.title {
            check_text("title", title, 200)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub repo: String,
    pub branch: String,
    pub title: String,
    pub owner_id: String,
    pub status: String,
    pub created_at: String,
}

impl Session {
    pub fn is_archived(&self) -> bool {
        self.status == "archived"
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user_id: String,
    #[serde(default)]
    pub role: Option<String>,
}

impl AddMember {
    pub fn validate(&self) -> Result<(), ApiError> {
        check_text("user_id", &self.user_id, 64)?;
        match self.role.as_deref() {
            None | Some("member") => Ok(()),
            Some(other) => Err(ApiError::invalid_field(format!(
                "role must be \"member\", not {other:?}"
            ))),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelPrompt {
    pub message_id: String,
}

/// `POST /v1/sessions/:id/pull-request`: what is not given is written from the session.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePullRequest {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub draft: Option<bool>,
}

impl CreatePullRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(title) = &self.title {
            check_text("title", title, 256)?;
        }
        if self.body.as_ref().is_some_and(|body| body.len() > 60_000) {
            return Err(ApiError::invalid_field("body is longer than 60000 bytes"));
        }
        Ok(())
    }
}

/// A repository sessions can be opened on, from the coordinator's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub hints: Vec<String>,
    #[serde(default = "default_branch")]
    pub default_branch: String,
    /// Where the sandbox clones it from; defaults to GitHub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_url: Option<String>,
}

fn default_branch() -> String {
    "main".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::parse_json;

    #[test]
    fn create_user_validation() {
        let ok: CreateUser =
            parse_json(br#"{"name":"Alice","email":"a@example.com","scopes":{"repos":["*"]}}"#)
                .unwrap();
        assert!(ok.validate().is_ok());
        let bad: CreateUser = parse_json(br#"{"name":"","email":"a@example.com"}"#).unwrap();
        assert!(bad.validate().is_err());
        let bad: CreateUser = parse_json(br#"{"name":"A","email":"nope"}"#).unwrap();
        assert!(bad.validate().is_err());
        let bad: CreateUser =
            parse_json(br#"{"name":"A","email":"a@b","scopes":{"repos":["x"]}}"#).unwrap();
        assert!(bad.validate().is_err());
        assert!(parse_json::<CreateUser>(br#"{"name":"A"}"#).is_err());
        assert!(parse_json::<CreateUser>(br#"{"name":"A","email":"a@b","admin":true}"#).is_err());
    }

    #[test]
    fn create_pull_request_validation() {
        for (body, ok) in [
            ("{}", true),
            (
                r#"{"title":"Fix it","body":"why\nand how","draft":true}"#,
                true,
            ),
            (r#"{"title":""}"#, false),
            (r#"{"title":"a\nb"}"#, false),
        ] {
            let parsed: CreatePullRequest = parse_json(body.as_bytes()).unwrap();
            assert_eq!(parsed.validate().is_ok(), ok, "{body}");
        }
        assert!(parse_json::<CreatePullRequest>(br#"{"head":"x"}"#).is_err());
    }

    #[test]
    fn create_session_validation() {
        for (body, ok) in [
            (r#"{"repo":"acme/web"}"#, true),
            (
                r#"{"repo":"acme/web","branch":"feature/x","title":"t"}"#,
                true,
            ),
            (r#"{"repo":"acme"}"#, false),
            (r#"{"repo":"acme/web","branch":"a..b"}"#, false),
            (r#"{"repo":"acme/web","title":""}"#, false),
        ] {
            let parsed: CreateSession = parse_json(body.as_bytes()).unwrap();
            assert_eq!(parsed.validate().is_ok(), ok, "{body}");
        }
    }
}
