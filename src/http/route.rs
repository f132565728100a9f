//! Maps a method and path to the endpoint that serves it. Pure, so every route is tested natively.

use protocol::{ApiError, ErrorCode};

/// Every endpoint of the HTTP API (PROTOCOL.md section 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    CreateUser,
    ListUsers,
    UpdateUser(String),
    Me,
    ListRepos,
    CreateSession,
    ListSessions,
    GetSession(String),
    ArchiveSession(String),
    AddMember(String),
    RemoveMember(String, String),
    MintToken(String),
    /// A single-use connect ticket for a socket or stream URL.
    Tickets(String),
    Connect(String),
    PostPrompt(String),
    PostSelection(String),
    Events(String),
    Messages(String),
    Artifacts(String),
    /// One artifact, whole: a stored event that was cut keeps its full text here.
    Artifact(String, String),
    Stop(String),
    Cancel(String),
    SandboxConnect(String),
    /// Which sign-in methods this coordinator offers.
    AuthMethods,
    /// The start and the end of sign-in with GitHub.
    GithubLogin,
    GithubCallback,
    Logout,
    GithubWebhook,
    /// A sandbox's git credential helper (sandbox token).
    GitCredentials(String),
    PullRequest(String),
    /// Slack's Events API and interactivity (signed by Slack).
    SlackEvents,
    SlackInteractions,
    /// Usage and speed: the admin key, or a user with the `metrics` scope.
    Metrics,
}

impl Endpoint {
    /// Endpoints that only the admin key may call.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Endpoint::CreateUser | Endpoint::ListUsers | Endpoint::UpdateUser(_)
        )
    }
}

impl Endpoint {
    /// The session a member-only endpoint acts on. The socket endpoints, which authenticate
    /// with tokens instead of keys, are not among them.
    pub fn member_session(&self) -> Option<&str> {
        use Endpoint::*;
        match self {
            GetSession(id)
            | ArchiveSession(id)
            | AddMember(id)
            | RemoveMember(id, _)
            | MintToken(id)
            | Tickets(id)
            | PostPrompt(id)
            | PostSelection(id)
            | Events(id)
            | Messages(id)
            | Artifacts(id)
            | Artifact(id, _)
            | Stop(id)
            | Cancel(id)
            | PullRequest(id) => Some(id),
            Health | CreateUser | ListUsers | UpdateUser(_) | Me | ListRepos | CreateSession
            | ListSessions | Connect(_) | SandboxConnect(_) | AuthMethods | GithubLogin
            | GithubCallback | Logout | GithubWebhook | GitCredentials(_) | SlackEvents
            | SlackInteractions | Metrics => None,
        }
    }
}

impl Endpoint {
    /// The endpoint's pattern, as logs name it: ids stand as `:id`, so a line never carries
    /// more of the URL than the session id it names on its own.
    pub fn pattern(&self) -> &'static str {
        use Endpoint::*;
        match self {
            Health => "/health",
            CreateUser | ListUsers => "/v1/users",
            UpdateUser(_) => "/v1/users/:id",
            Me => "/v1/me",
            ListRepos => "/v1/repos",
            CreateSession | ListSessions => "/v1/sessions",
            GetSession(_) | ArchiveSession(_) => "/v1/sessions/:id",
            AddMember(_) => "/v1/sessions/:id/members",
            RemoveMember(..) => "/v1/sessions/:id/members/:user_id",
            MintToken(_) => "/v1/sessions/:id/tokens",
            Tickets(_) => "/v1/sessions/:id/tickets",
            Connect(_) => "/v1/sessions/:id/ws",
            PostPrompt(_) => "/v1/sessions/:id/prompts",
            PostSelection(_) => "/v1/sessions/:id/selections",
            Events(_) => "/v1/sessions/:id/events",
            Messages(_) => "/v1/sessions/:id/messages",
            Artifacts(_) => "/v1/sessions/:id/artifacts",
            Artifact(..) => "/v1/sessions/:id/artifacts/:artifact_id",
            Stop(_) => "/v1/sessions/:id/stop",
            Cancel(_) => "/v1/sessions/:id/cancel",
            SandboxConnect(_) => "/v1/sessions/:id/sandbox",
            GitCredentials(_) => "/v1/sessions/:id/sandbox/git-credentials",
            PullRequest(_) => "/v1/sessions/:id/pull-request",
            AuthMethods => "/v1/auth/methods",
            GithubLogin => "/v1/auth/github/login",
            GithubCallback => "/v1/auth/github/callback",
            Logout => "/v1/auth/logout",
            GithubWebhook => "/v1/github/webhook",
            SlackEvents => "/v1/slack/events",
            SlackInteractions => "/v1/slack/interactions",
            Metrics => "/v1/metrics",
        }
    }

    /// The session the endpoint is about, whoever may call it.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Endpoint::Connect(id) | Endpoint::SandboxConnect(id) | Endpoint::GitCredentials(id) => {
                Some(id.as_str())
            }
            other => other.member_session(),
        }
    }
}

/// A session id as the coordinator mints them: `ses_` and 32 hex digits.
pub fn is_session_id(id: &str) -> bool {
    id.len() == 36 && id.starts_with("ses_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Endpoint {
    /// The ids in the endpoint's path, in the order its pattern names them.
    fn ids(&self) -> Vec<&str> {
        match self {
            Endpoint::RemoveMember(id, second) | Endpoint::Artifact(id, second) => vec![id, second],
            Endpoint::UpdateUser(id) => vec![id],
            other => other.session_id().into_iter().collect(),
        }
    }

    /// The path a client writes for this endpoint: its pattern with its ids in place, which
    /// `resolve` turns back into the endpoint (tested for every route here, and fuzzed).
    pub fn path(&self) -> String {
        let mut ids = self.ids().into_iter();
        self.pattern()
            .split('/')
            .map(|segment| match segment.starts_with(':') {
                true => ids.next().unwrap_or(segment),
                false => segment,
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

pub fn resolve(method: &str, path: &str) -> Result<Endpoint, ApiError> {
    use Endpoint::*;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let not_found = || {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no such endpoint: {}", shorten(path)),
        )
    };
    // (endpoint per allowed method) for the matched path.
    let candidates: Vec<(&str, Endpoint)> = match segments.as_slice() {
        ["health"] => vec![("GET", Health)],
        ["v1", "users"] => vec![("GET", ListUsers), ("POST", CreateUser)],
        ["v1", "users", id] if is_plain_id(id) => vec![("PATCH", UpdateUser(id.to_string()))],
        ["v1", "me"] => vec![("GET", Me)],
        ["v1", "auth", "methods"] => vec![("GET", AuthMethods)],
        ["v1", "auth", "github", "login"] => vec![("GET", GithubLogin)],
        ["v1", "auth", "github", "callback"] => vec![("GET", GithubCallback)],
        ["v1", "auth", "logout"] => vec![("POST", Logout)],
        ["v1", "github", "webhook"] => vec![("POST", GithubWebhook)],
        ["v1", "slack", "events"] => vec![("POST", SlackEvents)],
        ["v1", "slack", "interactions"] => vec![("POST", SlackInteractions)],
        ["v1", "repos"] => vec![("GET", ListRepos)],
        ["v1", "metrics"] => vec![("GET", Metrics)],
        ["v1", "sessions"] => vec![("GET", ListSessions), ("POST", CreateSession)],
        ["v1", "sessions", id, rest @ ..] if is_session_id(id) => {
            let id = id.to_string();
            match rest {
                [] => vec![
                    ("GET", GetSession(id.clone())),
                    ("DELETE", ArchiveSession(id)),
                ],
                ["members"] => vec![("POST", AddMember(id))],
                ["members", user] if is_plain_id(user) => {
                    vec![("DELETE", RemoveMember(id, user.to_string()))]
                }
                ["tokens"] => vec![("POST", MintToken(id))],
                ["tickets"] => vec![("POST", Tickets(id))],
                ["ws"] => vec![("GET", Connect(id))],
                ["prompts"] => vec![("POST", PostPrompt(id))],
                ["selections"] => vec![("POST", PostSelection(id))],
                ["events"] => vec![("GET", Events(id))],
                ["messages"] => vec![("GET", Messages(id))],
                ["artifacts"] => vec![("GET", Artifacts(id))],
                ["artifacts", artifact] if is_plain_id(artifact) => {
                    vec![("GET", Artifact(id, artifact.to_string()))]
                }
                ["stop"] => vec![("POST", Stop(id))],
                ["cancel"] => vec![("POST", Cancel(id))],
                ["sandbox"] => vec![("GET", SandboxConnect(id))],
                ["sandbox", "git-credentials"] => vec![("POST", GitCredentials(id))],
                ["pull-request"] => vec![("POST", PullRequest(id))],
                _ => return Err(not_found()),
            }
        }
        _ => return Err(not_found()),
    };
    let method = if method == "HEAD" { "GET" } else { method };
    match candidates.iter().position(|(m, _)| *m == method) {
        Some(i) => Ok(candidates
            .into_iter()
            .nth(i)
            .map(|(_, e)| e)
            .unwrap_or(Health)),
        None => {
            let allowed: Vec<&str> = candidates.iter().map(|(m, _)| *m).collect();
            Err(ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed here; use {}", allowed.join(" or ")),
            ))
        }
    }
}

fn shorten(path: &str) -> String {
    path.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "ses_0123456789abcdef0123456789abcdef";

    fn check(method: &str, path: &str, expected: Result<Endpoint, ErrorCode>) {
        assert_eq!(
            resolve(method, path).map_err(|e| e.code),
            expected,
            "{method} {path}"
        );
        // An endpoint's own path leads back to it.
        if let Ok(endpoint) = expected {
            assert_eq!(resolve(method, &endpoint.path()).ok(), Some(endpoint));
        }
    }

    #[test]
    fn routes() {
        use Endpoint::*;
        let sid = SID.to_string();
        check("GET", "/health", Ok(Health));
        check("POST", "/v1/users", Ok(CreateUser));
        check("PATCH", "/v1/users/usr_1", Ok(UpdateUser("usr_1".into())));
        check("GET", "/v1/sessions/", Ok(ListSessions));
        check(
            "GET",
            &format!("/v1/sessions/{SID}"),
            Ok(GetSession(sid.clone())),
        );
        check(
            "DELETE",
            &format!("/v1/sessions/{SID}"),
            Ok(ArchiveSession(sid.clone())),
        );
        check(
            "GET",
            &format!("/v1/sessions/{SID}/ws"),
            Ok(Connect(sid.clone())),
        );
        check(
            "POST",
            &format!("/v1/sessions/{SID}/cancel"),
            Ok(Cancel(sid.clone())),
        );
        check(
            "POST",
            &format!("/v1/sessions/{SID}/tickets"),
            Ok(Tickets(sid.clone())),
        );
        check(
            "DELETE",
            &format!("/v1/sessions/{SID}/members/usr_2"),
            Ok(RemoveMember(sid.clone(), "usr_2".into())),
        );
        check(
            "GET",
            &format!("/v1/sessions/{SID}/artifacts/art_1"),
            Ok(Artifact(sid.clone(), "art_1".into())),
        );
        check(
            "GET",
            &format!("/v1/sessions/{SID}/artifacts/a%20b"),
            Err(ErrorCode::NotFound),
        );
        check("HEAD", "/v1/me", Ok(Me));
        check("GET", "/v1/auth/methods", Ok(AuthMethods));
        check("GET", "/v1/auth/github/login", Ok(GithubLogin));
        check("GET", "/v1/auth/github/callback", Ok(GithubCallback));
        check("POST", "/v1/auth/logout", Ok(Logout));
        check("POST", "/v1/github/webhook", Ok(GithubWebhook));
        check("POST", "/v1/slack/events", Ok(SlackEvents));
        check("POST", "/v1/slack/interactions", Ok(SlackInteractions));
        check("GET", "/v1/slack/events", Err(ErrorCode::MethodNotAllowed));
        check("GET", "/v1/metrics", Ok(Metrics));
        check(
            "POST",
            &format!("/v1/sessions/{SID}/sandbox/git-credentials"),
            Ok(GitCredentials(sid.clone())),
        );
        check(
            "POST",
            &format!("/v1/sessions/{SID}/pull-request"),
            Ok(PullRequest(sid.clone())),
        );
    }

    #[test]
    fn patterns_name_no_ids() {
        let endpoint = resolve("DELETE", &format!("/v1/sessions/{SID}/members/usr_2")).unwrap();
        assert_eq!(endpoint.pattern(), "/v1/sessions/:id/members/:user_id");
        assert_eq!(endpoint.session_id(), Some(SID));
        let socket = resolve("GET", &format!("/v1/sessions/{SID}/sandbox")).unwrap();
        assert_eq!(socket.session_id(), Some(SID));
        assert_eq!(resolve("GET", "/v1/metrics").unwrap().session_id(), None);
    }

    #[test]
    fn member_sessions() {
        let of = |method: &str, path: String| {
            resolve(method, &path)
                .unwrap()
                .member_session()
                .map(str::to_owned)
        };
        assert_eq!(
            of("POST", format!("/v1/sessions/{SID}/prompts")).as_deref(),
            Some(SID)
        );
        assert_eq!(
            of("DELETE", format!("/v1/sessions/{SID}/members/usr_2")).as_deref(),
            Some(SID)
        );
        assert_eq!(
            of("GET", format!("/v1/sessions/{SID}/ws")),
            None,
            "sockets authenticate with tokens"
        );
        assert_eq!(of("GET", format!("/v1/sessions/{SID}/sandbox")), None);
        assert_eq!(
            of(
                "POST",
                format!("/v1/sessions/{SID}/sandbox/git-credentials")
            ),
            None,
            "the git credential helper authenticates with the sandbox token"
        );
        assert_eq!(
            of("POST", format!("/v1/sessions/{SID}/pull-request")).as_deref(),
            Some(SID)
        );
        assert_eq!(of("GET", "/v1/sessions".into()), None);
    }

    #[test]
    fn refusals() {
        check("GET", "/", Err(ErrorCode::NotFound));
        check("GET", "/v1/sessions/nope", Err(ErrorCode::NotFound));
        check(
            "GET",
            &format!("/v1/sessions/{SID}/teleport"),
            Err(ErrorCode::NotFound),
        );
        check("GET", "/v1/users/a%2Fb", Err(ErrorCode::NotFound));
        check("DELETE", "/v1/me", Err(ErrorCode::MethodNotAllowed));
        check(
            "GET",
            "/v1/github/webhook",
            Err(ErrorCode::MethodNotAllowed),
        );
        check(
            "GET",
            &format!("/v1/sessions/{SID}/prompts"),
            Err(ErrorCode::MethodNotAllowed),
        );
        let err = resolve("PUT", "/v1/sessions").unwrap_err();
        assert_eq!(err.message, "PUT is not allowed here; use GET or POST");
    }
}
