//! **API Boundary** between the Worker and a session's room: the [`RoomRoute`]s the Worker
//! calls (one enum, written once, read by both sides), the `X-Caller` header and the internal
//! bodies, and [`RoomClient`], the Worker's handle on a room.
//!
//! The Worker authenticates, authorises and validates every query; the room trusts what comes
//! through here because only the Worker can reach a Durable Object.

use crate::http::query;
use serde::{Deserialize, Serialize};

pub const CALLER_HEADER: &str = "X-Caller";

/// The origin the room is reached by; any host works for a stub fetch.
pub const ROOM_ORIGIN: &str = "https://room.internal";

/// The authenticated user a request to the room is made for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: String,
    pub name: String,
    pub email: String,
}

/// `Init`: the room learns its session and its owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Init {
    pub session: protocol::api::Session,
    pub prompt: Option<String>,
    /// The origin the session was created through; sandboxes dial back to it unless
    /// `COORDINATOR_URL` says otherwise.
    #[serde(default)]
    pub origin: String,
    /// The request's `Idempotency-Key`, the first prompt's `client_request_id`: a repeated
    /// `Init` (the same request again) finds the first prompt instead of adding one.
    #[serde(default)]
    pub client_request_id: Option<String>,
}

/// `AddMember`: a user joins the session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    pub user: Caller,
}

/// `RemoveMember`: a user leaves the session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemovedMember {
    pub user_id: String,
}

/// `Revoke`: a user's access ended or narrowed outside the room (disabled, scopes changed):
/// their sockets close with `close` and `reason`, and their streams end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revocation {
    pub user_id: String,
    /// The close code's number (`protocol::CloseCode`).
    pub close: u16,
    pub reason: String,
}

/// A connect ticket being used: the room refuses a nonce it has seen before `exp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketUse {
    pub nonce: String,
    pub exp: u64,
}

impl TicketUse {
    fn query(ticket: &Option<TicketUse>) -> String {
        match ticket {
            Some(t) => format!("&ticket={}&ticket_exp={}", t.nonce, t.exp),
            None => String::new(),
        }
    }
}

/// `SlackPrompt`: a prompt from a Slack thread, and where progress and the reply go.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlackPrompt {
    pub content: String,
    /// `slack_messages` (the thread's messages since the last prompt) and `slack_thread`.
    pub attachments: Vec<serde_json::Value>,
    pub team_id: String,
    pub channel_id: String,
    pub thread_ts: String,
    /// The web page's link to the session, for "Open session".
    pub session_url: String,
    /// Whether the reply offers "Create pull request" (GitHub can open one).
    pub offer_pull_request: bool,
}

/// Every request the Worker makes of a room. Query values are already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomRoute {
    /// Body [`Init`].
    Init,
    /// A participant's WebSocket upgrade; replay after `since` when given, in the log of
    /// `epoch` when given (another log's replays from the beginning). The socket is closed
    /// with 4001 at `expires_ms` (its token's expiry); a ticket is used up.
    Connect {
        since: Option<u64>,
        epoch: Option<String>,
        expires_ms: u64,
        ticket: Option<TicketUse>,
    },
    /// Participants, queue, sandbox and last `seq` (`GET /v1/sessions/:id`).
    Describe,
    /// Body: a prompt as posted over HTTP.
    Prompt,
    /// Body: a DOM selection.
    Selection,
    Events {
        since: u64,
        limit: u32,
    },
    /// The same events as Server-Sent Events, then live ones; the stream ends at `expires_ms`
    /// when it was opened with a token or ticket (its token's expiry).
    EventStream {
        since: u64,
        expires_ms: Option<u64>,
        ticket: Option<TicketUse>,
    },
    Messages {
        after_seq: u64,
        limit: u32,
    },
    Artifacts {
        after_seq: u64,
        limit: u32,
    },
    /// One artifact, whole (`GET …/artifacts/:id`); the id is a plain id.
    Artifact {
        id: String,
    },
    /// The bridge's WebSocket upgrade; its credentials travel in headers.
    Bridge,
    Stop,
    /// Body `{message_id}`.
    Cancel,
    /// Body [`Member`].
    AddMember,
    /// Body [`RemovedMember`].
    RemoveMember,
    /// Body [`Revocation`].
    Revoke,
    Archive,
    /// A sandbox's git credential helper; the sandbox's credentials travel in headers, the
    /// body is a `protocol::git::CredentialRequest`.
    GitCredentials,
    /// Body `{token, github_login, title?, body?, draft?, origin}`: the room opens (or finds)
    /// the session's pull request with that token and keeps it as the `pr` artifact.
    PullRequest,
    /// Body: `github::webhook::PullRequestChange::to_json`.
    PullRequestChanged,
    /// Body [`SlackPrompt`]: queued with source `slack`; the room reports to the thread.
    SlackPrompt,
}

impl RoomRoute {
    pub fn method(&self) -> &'static str {
        use RoomRoute::*;
        match self {
            Connect { .. }
            | Describe
            | Events { .. }
            | EventStream { .. }
            | Messages { .. }
            | Artifacts { .. }
            | Artifact { .. }
            | Bridge => "GET",
            Init | Prompt | Selection | Stop | Cancel | AddMember | RemoveMember | Revoke
            | Archive | GitCredentials | PullRequest | PullRequestChanged | SlackPrompt => "POST",
        }
    }

    /// The path and query the request goes to inside the room.
    pub fn path(&self) -> String {
        use RoomRoute::*;
        match self {
            Init => "/init".into(),
            Connect {
                since,
                epoch,
                expires_ms,
                ticket,
            } => {
                let since = since.map(|n| format!("&since={n}")).unwrap_or_default();
                // Validated by the Worker: letters, digits, `_` and `-` only.
                let epoch = epoch
                    .as_ref()
                    .map(|e| format!("&epoch={e}"))
                    .unwrap_or_default();
                let ticket = TicketUse::query(ticket);
                format!("/connect?expires_ms={expires_ms}{since}{epoch}{ticket}")
            }
            Describe => "/state".into(),
            Prompt => "/prompts".into(),
            Selection => "/selections".into(),
            Events { since, limit } => format!("/events?since={since}&limit={limit}"),
            EventStream {
                since,
                expires_ms,
                ticket,
            } => {
                let expires = expires_ms
                    .map(|at| format!("&expires_ms={at}"))
                    .unwrap_or_default();
                format!(
                    "/events/stream?since={since}{expires}{}",
                    TicketUse::query(ticket)
                )
            }
            Messages { after_seq, limit } => {
                format!("/messages?after_seq={after_seq}&limit={limit}")
            }
            Artifacts { after_seq, limit } => {
                format!("/artifacts?after_seq={after_seq}&limit={limit}")
            }
            Artifact { id } => format!("/artifact?id={id}"),
            Bridge => "/sandbox".into(),
            Stop => "/stop".into(),
            Cancel => "/cancel".into(),
            AddMember => "/members".into(),
            RemoveMember => "/members/remove".into(),
            Revoke => "/members/revoke".into(),
            Archive => "/archive".into(),
            GitCredentials => "/sandbox/git-credentials".into(),
            PullRequest => "/pull-request".into(),
            PullRequestChanged => "/pull-request/changed".into(),
            SlackPrompt => "/slack/prompts".into(),
        }
    }

    /// The route a request inside the room is for; `None` for anything the Worker never sends.
    pub fn parse(method: &str, path: &str, query_string: &str) -> Option<RoomRoute> {
        use RoomRoute::*;
        let number = |name: &str| query::u64_param(query_string, name).ok().flatten();
        let limit = || number("limit").and_then(|n| u32::try_from(n).ok());
        let ticket = || {
            Some(TicketUse {
                nonce: query::param(query_string, "ticket")?,
                exp: number("ticket_exp")?,
            })
        };
        let route = match path {
            "/init" => Init,
            "/connect" => Connect {
                since: number("since"),
                epoch: query::epoch_param(query_string).ok().flatten(),
                expires_ms: number("expires_ms")?,
                ticket: ticket(),
            },
            "/state" => Describe,
            "/prompts" => Prompt,
            "/selections" => Selection,
            "/events" => Events {
                since: number("since")?,
                limit: limit()?,
            },
            "/events/stream" => EventStream {
                since: number("since")?,
                expires_ms: number("expires_ms"),
                ticket: ticket(),
            },
            "/messages" => Messages {
                after_seq: number("after_seq")?,
                limit: limit()?,
            },
            "/artifacts" => Artifacts {
                after_seq: number("after_seq")?,
                limit: limit()?,
            },
            "/artifact" => Artifact {
                id: query::param(query_string, "id")?,
            },
            "/sandbox" => Bridge,
            "/stop" => Stop,
            "/cancel" => Cancel,
            "/members" => AddMember,
            "/members/remove" => RemoveMember,
            "/members/revoke" => Revoke,
            "/archive" => Archive,
            "/sandbox/git-credentials" => GitCredentials,
            "/pull-request" => PullRequest,
            "/pull-request/changed" => PullRequestChanged,
            "/slack/prompts" => SlackPrompt,
            _ => return None,
        };
        (route.method() == method).then_some(route)
    }
}

#[cfg(target_arch = "wasm32")]
pub use client::RoomClient;

#[cfg(target_arch = "wasm32")]
mod client {
    use super::{Caller, RoomRoute, CALLER_HEADER, ROOM_ORIGIN};
    use crate::error::Result;
    use worker::{Headers, Method, Request, RequestInit, Response, Stub};

    /// The Worker's handle on one session's room.
    pub struct RoomClient {
        stub: Stub,
    }

    fn method(route: &RoomRoute) -> Method {
        match route.method() {
            "GET" => Method::Get,
            _ => Method::Post,
        }
    }

    impl RoomClient {
        pub fn open(env: &worker::Env, session_id: &str) -> Result<Self> {
            let namespace = env.durable_object("ROOMS")?;
            Ok(RoomClient {
                stub: namespace.id_from_name(session_id)?.get_stub()?,
            })
        }

        async fn send(
            &self,
            route: &RoomRoute,
            headers: Headers,
            body: Option<Vec<u8>>,
        ) -> Result<Response> {
            // The room's log lines carry the id of the Worker request that called it.
            if let Some(request_id) = crate::log::current_request_id() {
                headers.set(crate::log::REQUEST_ID_HEADER, &request_id)?;
            }
            let mut init = RequestInit::new();
            init.with_method(method(route)).with_headers(headers);
            if let Some(body) = body {
                init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
            }
            let request = Request::new_with_init(&format!("{ROOM_ORIGIN}{}", route.path()), &init)?;
            Ok(self.stub.fetch_with_request(request).await?)
        }

        fn caller_headers(caller: &Caller) -> Result<Headers> {
            let headers = Headers::new();
            headers.set(CALLER_HEADER, &serde_json::to_string(caller)?)?;
            Ok(headers)
        }

        /// Calls the room; its response (success or protocol error) goes to the client as it is.
        pub async fn call(
            &self,
            route: RoomRoute,
            caller: &Caller,
            body: Option<Vec<u8>>,
        ) -> Result<Response> {
            self.send(&route, Self::caller_headers(caller)?, body).await
        }

        /// Calls the room and reads its JSON answer, turning an error answer into an error.
        pub async fn call_json(
            &self,
            route: RoomRoute,
            caller: &Caller,
            body: Option<Vec<u8>>,
        ) -> Result<serde_json::Value> {
            let mut response = self.call(route, caller, body).await?;
            let status = response.status_code();
            let value: serde_json::Value = response.json().await?;
            if status >= 400 {
                let error: protocol::ApiError = serde_json::from_value(value["error"].clone())?;
                return Err(error.into());
            }
            Ok(value)
        }

        /// Forwards a participant's WebSocket upgrade (`route` is a `Connect`).
        pub async fn connect(&self, route: RoomRoute, caller: &Caller) -> Result<Response> {
            let headers = Self::caller_headers(caller)?;
            headers.set("upgrade", "websocket")?;
            self.send(&route, headers, None).await
        }

        /// Forwards a sandbox's request (the bridge's WebSocket upgrade, or its git credential
        /// helper's) with its credentials; the room checks them.
        pub async fn as_sandbox(
            &self,
            route: RoomRoute,
            req: &worker::Request,
            body: Option<Vec<u8>>,
        ) -> Result<Response> {
            let headers = Headers::new();
            for name in [
                "upgrade",
                "authorization",
                protocol::bridge::SANDBOX_ID_HEADER,
            ] {
                if let Some(value) = req.headers().get(name)? {
                    headers.set(name, &value)?;
                }
            }
            self.send(&route, headers, body).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RoomRoute::{self, *};
    use super::TicketUse;

    #[test]
    fn every_route_reads_back_as_itself() {
        let routes = [
            Init,
            Connect {
                since: None,
                epoch: None,
                expires_ms: 5,
                ticket: None,
            },
            Connect {
                since: Some(7),
                epoch: None,
                expires_ms: 1_700_000_000_000,
                ticket: Some(TicketUse {
                    nonce: "abc123abc123abc123".into(),
                    exp: 9,
                }),
            },
            Connect {
                since: Some(7),
                epoch: Some("ep_1-x".into()),
                expires_ms: 5,
                ticket: None,
            },
            Connect {
                since: None,
                epoch: Some("ep_2".into()),
                expires_ms: 5,
                ticket: None,
            },
            Describe,
            Prompt,
            Selection,
            Events {
                since: 3,
                limit: 100,
            },
            EventStream {
                since: 0,
                expires_ms: None,
                ticket: None,
            },
            EventStream {
                since: 4,
                expires_ms: Some(1_700_000_000_000),
                ticket: Some(TicketUse {
                    nonce: "n0nce0n0nce0n0nce0".into(),
                    exp: 2,
                }),
            },
            Messages {
                after_seq: 1,
                limit: 2,
            },
            Artifacts {
                after_seq: 0,
                limit: 500,
            },
            Artifact { id: "art_1".into() },
            Bridge,
            Stop,
            Cancel,
            AddMember,
            RemoveMember,
            Revoke,
            Archive,
            GitCredentials,
            PullRequest,
            PullRequestChanged,
            SlackPrompt,
        ];
        for route in routes {
            let path = route.path();
            let (path, query) = path.split_once('?').unwrap_or((&path, ""));
            assert_eq!(
                RoomRoute::parse(route.method(), path, query),
                Some(route.clone())
            );
        }
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        assert_eq!(RoomRoute::parse("GET", "/nope", ""), None);
        assert_eq!(RoomRoute::parse("GET", "/archive", ""), None);
        assert_eq!(RoomRoute::parse("GET", "/events", "since=1"), None);
    }
}
