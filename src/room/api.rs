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

/// Every request the Worker makes of a room. Query values are already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomRoute {
    /// Body [`Init`].
    Init,
    /// A participant's WebSocket upgrade; replay after `since` when given.
    Connect {
        since: Option<u64>,
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
    /// The same events as Server-Sent Events, then live ones.
    EventStream {
        since: u64,
    },
    Messages {
        after_seq: u64,
        limit: u32,
    },
    Artifacts {
        after_seq: u64,
        limit: u32,
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
    Archive,
    /// A sandbox's git credential helper; the sandbox's credentials travel in headers, the
    /// body is a `protocol::git::CredentialRequest`.
    GitCredentials,
    /// Body `{token, github_login, title?, body?, draft?, origin}`: the room opens (or finds)
    /// the session's pull request with that token and keeps it as the `pr` artifact.
    PullRequest,
    /// Body: `github::webhook::PullRequestChange::to_json`.
    PullRequestChanged,
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
            | Bridge => "GET",
            Init | Prompt | Selection | Stop | Cancel | AddMember | RemoveMember | Archive
            | GitCredentials | PullRequest | PullRequestChanged => "POST",
        }
    }

    /// The path and query the request goes to inside the room.
    pub fn path(&self) -> String {
        use RoomRoute::*;
        match self {
            Init => "/init".into(),
            Connect { since: None } => "/connect".into(),
            Connect { since: Some(since) } => format!("/connect?since={since}"),
            Describe => "/state".into(),
            Prompt => "/prompts".into(),
            Selection => "/selections".into(),
            Events { since, limit } => format!("/events?since={since}&limit={limit}"),
            EventStream { since } => format!("/events/stream?since={since}"),
            Messages { after_seq, limit } => {
                format!("/messages?after_seq={after_seq}&limit={limit}")
            }
            Artifacts { after_seq, limit } => {
                format!("/artifacts?after_seq={after_seq}&limit={limit}")
            }
            Bridge => "/sandbox".into(),
            Stop => "/stop".into(),
            Cancel => "/cancel".into(),
            AddMember => "/members".into(),
            RemoveMember => "/members/remove".into(),
            Archive => "/archive".into(),
            GitCredentials => "/sandbox/git-credentials".into(),
            PullRequest => "/pull-request".into(),
            PullRequestChanged => "/pull-request/changed".into(),
        }
    }

    /// The route a request inside the room is for; `None` for anything the Worker never sends.
    pub fn parse(method: &str, path: &str, query_string: &str) -> Option<RoomRoute> {
        use RoomRoute::*;
        let number = |name: &str| query::u64_param(query_string, name).ok().flatten();
        let limit = || number("limit").and_then(|n| u32::try_from(n).ok());
        let route = match path {
            "/init" => Init,
            "/connect" => Connect {
                since: number("since"),
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
            },
            "/messages" => Messages {
                after_seq: number("after_seq")?,
                limit: limit()?,
            },
            "/artifacts" => Artifacts {
                after_seq: number("after_seq")?,
                limit: limit()?,
            },
            "/sandbox" => Bridge,
            "/stop" => Stop,
            "/cancel" => Cancel,
            "/members" => AddMember,
            "/members/remove" => RemoveMember,
            "/archive" => Archive,
            "/sandbox/git-credentials" => GitCredentials,
            "/pull-request" => PullRequest,
            "/pull-request/changed" => PullRequestChanged,
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

        /// Forwards a participant's WebSocket upgrade.
        pub async fn connect(&self, since: Option<u64>, caller: &Caller) -> Result<Response> {
            let headers = Self::caller_headers(caller)?;
            headers.set("upgrade", "websocket")?;
            self.send(&RoomRoute::Connect { since }, headers, None)
                .await
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

    #[test]
    fn every_route_reads_back_as_itself() {
        let routes = [
            Init,
            Connect { since: None },
            Connect { since: Some(7) },
            Describe,
            Prompt,
            Selection,
            Events {
                since: 3,
                limit: 100,
            },
            EventStream { since: 0 },
            Messages {
                after_seq: 1,
                limit: 2,
            },
            Artifacts {
                after_seq: 0,
                limit: 500,
            },
            Bridge,
            Stop,
            Cancel,
            AddMember,
            RemoveMember,
            Archive,
            GitCredentials,
            PullRequest,
            PullRequestChanged,
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
