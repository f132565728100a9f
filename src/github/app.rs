//! The GitHub App: its JWT (RS256, signed by WebCrypto), the installation of a repository, and
//! installation tokens down-scoped to that one repository and to the permissions a use needs,
//! kept in the isolate's memory until five minutes before they expire. Tokens are opaque: they
//! are stored and sent, never parsed. Also the repositories of every installation, cached for
//! five minutes, merged with REPOS.

use protocol::api::Repo;
use serde_json::{json, Value};

/// A cached token is used until this long before it expires.
pub const EXPIRY_MARGIN_MS: u64 = 5 * 60_000;

/// What an installation token is for; each asks for no more than it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// A sandbox's git: `contents: write` on the session's repository.
    Git,
    /// The App opening a pull request (`PR_AS_APP_FALLBACK`): `pull_requests: write` too.
    PullRequest,
    /// The cron reading a repository's default branch and its head: `contents: read`.
    Read,
}

/// The body of `POST /app/installations/{id}/access_tokens` for one repository.
pub fn token_request(repo: &str, purpose: Use) -> Value {
    let name = repo.split_once('/').map_or(repo, |(_, name)| name);
    let permissions = match purpose {
        Use::Git => json!({"contents": "write"}),
        Use::PullRequest => json!({"contents": "write", "pull_requests": "write"}),
        Use::Read => json!({"contents": "read"}),
    };
    json!({"repositories": [name], "permissions": permissions})
}

/// What an App JWT signs: the header and the claims, base64url, joined by a dot.
/// `iat` is a minute back against clock drift; `exp` nine minutes on (GitHub allows ten).
pub fn jwt_signing_input(app_id: &str, now_s: u64) -> String {
    use protocol::crypto::b64url;
    let claims = format!(
        r#"{{"iat":{},"exp":{},"iss":"{app_id}"}}"#,
        now_s - 60,
        now_s + 540
    );
    format!(
        "{}.{}",
        b64url(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64url(claims.as_bytes())
    )
}

/// Whether a token that expires at `expires_ms` may still be handed out at `now_ms`.
pub fn fresh(expires_ms: u64, now_ms: u64) -> bool {
    expires_ms > now_ms + EXPIRY_MARGIN_MS
}

/// A repository of an installation as `GET /installation/repositories` lists it.
pub fn repo_of(item: &Value) -> Option<Repo> {
    Some(Repo {
        name: item["full_name"].as_str()?.to_owned(),
        description: item["description"].as_str().unwrap_or_default().to_owned(),
        hints: Vec::new(),
        default_branch: item["default_branch"].as_str().unwrap_or("main").to_owned(),
        clone_url: None,
    })
}

/// REPOS first (its entries win for description, hints and clone URL), then the installed
/// repositories REPOS does not name.
pub fn merge_repos(configured: &[Repo], installed: Vec<Repo>) -> Vec<Repo> {
    let mut all = configured.to_vec();
    for repo in installed {
        if !all.iter().any(|r| r.name.eq_ignore_ascii_case(&repo.name)) {
            all.push(repo);
        }
    }
    all
}

#[cfg(target_arch = "wasm32")]
pub use io::{head, identify, installation_token, repos, Token};

#[cfg(target_arch = "wasm32")]
mod io {
    use super::*;
    use crate::config::github::{AppSettings, GithubConfig};
    use crate::config::Config;
    use crate::error::Result;
    use crate::github::client::{call, Answer};
    use crate::time::{now_ms, parse_rfc3339};
    use protocol::crypto::b64url;
    use protocol::{ApiError, ErrorCode};
    use std::cell::RefCell;
    use worker::Method;

    /// How long the installations' repository list is kept.
    const REPOS_TTL_MS: u64 = 5 * 60_000;

    /// A token and when it stops working.
    #[derive(Clone)]
    pub struct Token {
        pub value: String,
        pub expires_ms: u64,
    }

    thread_local! {
        static JWT: RefCell<Option<Token>> = const { RefCell::new(None) };
        // A few repositories per isolate: a list searched in order is smaller than a map.
        static INSTALLATIONS: RefCell<Vec<(String, u64)>> = const { RefCell::new(Vec::new()) };
        static TOKENS: RefCell<Vec<(String, Use, Token)>> = const { RefCell::new(Vec::new()) };
        static REPOS: RefCell<Option<(u64, Vec<Repo>)>> = const { RefCell::new(None) };
    }

    fn not_configured() -> ApiError {
        ApiError::new(
            ErrorCode::NotConfigured,
            "the GitHub App is not configured (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY)",
        )
    }

    /// The App's JWT, signed again once the cached one is within its margin.
    async fn jwt(app: &AppSettings) -> Result<String> {
        let now = now_ms();
        if let Some(token) = JWT
            .with_borrow(|t| t.clone())
            .filter(|t| t.expires_ms > now)
        {
            return Ok(token.value);
        }
        let input = jwt_signing_input(&app.app_id, now / 1000);
        let signature = crate::crypto::rs256_sign(&app.private_key.0, input.as_bytes()).await?;
        let value = format!("{input}.{}", b64url(&signature));
        // Nine minutes of life: renewed after four, long before GitHub would refuse it.
        let token = Token {
            value: value.clone(),
            expires_ms: now + 4 * 60_000,
        };
        JWT.with_borrow_mut(|t| *t = Some(token));
        Ok(value)
    }

    async fn as_app(
        gh: &GithubConfig,
        app: &AppSettings,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let jwt = jwt(app).await?;
        call(method, &format!("{}{path}", gh.api_url), Some(&jwt), body).await
    }

    /// `GET /app` with the App's JWT: whether GitHub takes the App's id and key (deep health).
    pub async fn identify(gh: &GithubConfig) -> Result<Answer> {
        let app = gh.app.as_ref().ok_or_else(not_configured)?;
        as_app(gh, app, Method::Get, "/app", None).await
    }

    /// `GET /repos/{owner}/{repo}/installation`, remembered per repository.
    async fn installation_id(gh: &GithubConfig, app: &AppSettings, repo: &str) -> Result<u64> {
        let key = repo.to_ascii_lowercase();
        let known = INSTALLATIONS.with_borrow(|m| m.iter().find(|(r, _)| *r == key).map(|e| e.1));
        if let Some(id) = known {
            return Ok(id);
        }
        let path = format!("/repos/{repo}/installation");
        let answer = as_app(gh, app, Method::Get, &path, None).await?;
        if answer.status == 404 {
            let message = format!("the GitHub App is not installed on {repo}");
            return Err(ApiError::new(ErrorCode::NotConfigured, message).into());
        }
        let id = answer.json["id"].as_u64().filter(|_| answer.ok());
        let id = id.ok_or_else(|| answer.refusal("find the App's installation"))?;
        INSTALLATIONS.with_borrow_mut(|m| m.push((key, id)));
        Ok(id)
    }

    async fn mint(
        gh: &GithubConfig,
        app: &AppSettings,
        installation: u64,
        body: &Value,
    ) -> Result<Token> {
        let path = format!("/app/installations/{installation}/access_tokens");
        let answer = as_app(gh, app, Method::Post, &path, Some(body)).await?;
        let token = answer.json["token"].as_str().filter(|_| answer.ok());
        let expires = answer.json["expires_at"].as_str().and_then(parse_rfc3339);
        match (token, expires) {
            (Some(token), Some(expires_ms)) => Ok(Token {
                value: token.to_owned(),
                expires_ms,
            }),
            _ => Err(answer.refusal("give an installation token")),
        }
    }

    /// A token for `repo` and no other repository, with the permissions `purpose` needs.
    pub async fn installation_token(gh: &GithubConfig, repo: &str, purpose: Use) -> Result<Token> {
        let app = gh.app.as_ref().ok_or_else(not_configured)?;
        let key = repo.to_ascii_lowercase();
        let now = now_ms();
        let cached = TOKENS.with_borrow(|m| {
            m.iter()
                .find(|(r, p, t)| *r == key && *p == purpose && fresh(t.expires_ms, now))
                .map(|e| e.2.clone())
        });
        if let Some(token) = cached {
            return Ok(token);
        }
        let installation = installation_id(gh, app, repo).await?;
        let token = mint(gh, app, installation, &token_request(repo, purpose)).await?;
        TOKENS.with_borrow_mut(|m| {
            m.retain(|(r, p, _)| !(*r == key && *p == purpose));
            m.push((key, purpose, token.clone()));
        });
        Ok(token)
    }

    /// Every repository of every installation of the App (`GET /app/installations`, then
    /// `GET /installation/repositories` with a metadata-only token of each).
    async fn installed(gh: &GithubConfig, app: &AppSettings) -> Result<Vec<Repo>> {
        let answer = as_app(
            gh,
            app,
            Method::Get,
            "/app/installations?per_page=100",
            None,
        )
        .await?;
        if !answer.ok() {
            return Err(answer.refusal("list the App's installations"));
        }
        let mut repos = Vec::new();
        let metadata = json!({"permissions": {"metadata": "read"}});
        for installation in answer.json.as_array().into_iter().flatten() {
            let Some(id) = installation["id"].as_u64() else {
                continue;
            };
            let token = mint(gh, app, id, &metadata).await?;
            for page in 1..=10 {
                let url = format!(
                    "{}/installation/repositories?per_page=100&page={page}",
                    gh.api_url
                );
                let listed = call(Method::Get, &url, Some(&token.value), None).await?;
                if !listed.ok() {
                    return Err(listed.refusal("list an installation's repositories"));
                }
                let items = listed.json["repositories"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                repos.extend(items.iter().filter_map(repo_of));
                if items.len() < 100 {
                    break;
                }
            }
        }
        Ok(repos)
    }

    /// A repository's default branch and the commit at its head (`GET /repos/{repo}`, then
    /// `GET /repos/{repo}/branches/{branch}`), with a read-only installation token.
    pub async fn head(gh: &GithubConfig, repo: &str) -> Result<(String, String)> {
        let token = installation_token(gh, repo, Use::Read).await?;
        let url = format!("{}/repos/{repo}", gh.api_url);
        let answer = call(Method::Get, &url, Some(&token.value), None).await?;
        if !answer.ok() {
            return Err(answer.refusal("read the repository"));
        }
        let Some(branch) = answer.json["default_branch"].as_str().map(str::to_owned) else {
            return Err(
                ApiError::new(ErrorCode::Unavailable, "GitHub named no default branch").into(),
            );
        };
        let url = format!("{}/repos/{repo}/branches/{branch}", gh.api_url);
        let answer = call(Method::Get, &url, Some(&token.value), None).await?;
        if !answer.ok() {
            return Err(answer.refusal("read the default branch"));
        }
        match answer.json["commit"]["sha"].as_str() {
            Some(sha) if protocol::provider::is_commit(sha) => Ok((branch, sha.to_owned())),
            _ => Err(ApiError::new(
                ErrorCode::Unavailable,
                "GitHub named no commit for the branch",
            )
            .into()),
        }
    }

    /// The repositories sessions may be opened on: REPOS, and with the App configured every
    /// installed repository. A GitHub failure leaves REPOS (and the last list) standing.
    pub async fn repos(config: &Config) -> Vec<Repo> {
        let Some((gh, app)) = config
            .github
            .as_ref()
            .and_then(|g| Some((g, g.app.as_ref()?)))
        else {
            return config.repos.clone();
        };
        let now = now_ms();
        let cached = REPOS.with_borrow(|c| c.clone());
        let installed = match cached {
            Some((at, repos)) if at + REPOS_TTL_MS > now => repos,
            stale => match installed(gh, app).await {
                Ok(repos) => {
                    REPOS.with_borrow_mut(|c| *c = Some((now, repos.clone())));
                    repos
                }
                Err(error) => {
                    crate::log::error(&format!(
                        "github: listing the installations' repositories failed: {}",
                        error.into_api().message
                    ));
                    stale.map(|(_, repos)| repos).unwrap_or_default()
                }
            },
        };
        merge_repos(&config.repos, installed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::crypto::unb64url;

    #[test]
    fn token_requests_name_one_repository() {
        assert_eq!(
            token_request("acme/web", Use::Git),
            json!({"repositories": ["web"], "permissions": {"contents": "write"}})
        );
        assert_eq!(
            token_request("acme/web", Use::PullRequest)["permissions"],
            json!({"contents": "write", "pull_requests": "write"})
        );
    }

    #[test]
    fn jwt_claims() {
        let input = jwt_signing_input("42", 1_000_000);
        let (header, claims) = input.split_once('.').unwrap();
        let header: Value = serde_json::from_slice(&unb64url(header).unwrap()).unwrap();
        let claims: Value = serde_json::from_slice(&unb64url(claims).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
        assert_eq!(
            claims,
            json!({"iat": 999_940, "exp": 1_000_540, "iss": "42"})
        );
    }

    #[test]
    fn freshness_and_merging() {
        assert!(fresh(10 * 60_000, 0));
        assert!(!fresh(5 * 60_000, 0));
        let configured = vec![Repo {
            name: "acme/demo".into(),
            description: "mine".into(),
            hints: vec!["hint".into()],
            default_branch: "main".into(),
            clone_url: None,
        }];
        let installed: Vec<Repo> = [
            json!({"full_name": "ACME/demo", "description": "theirs"}),
            json!({"full_name": "acme/web", "description": null, "default_branch": "trunk"}),
            json!({"name": "broken"}),
        ]
        .iter()
        .filter_map(repo_of)
        .collect();
        let merged = merge_repos(&configured, installed);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].description, "mine");
        assert_eq!(merged[1].name, "acme/web");
        assert_eq!(merged[1].default_branch, "trunk");
    }
}
