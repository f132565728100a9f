//! The session coordinator Worker.
//!
//! Layout:
//! - [`http`]: the front door: routing, authentication, authorisation, handlers.
//! - [`index`]: the D1 index of users, API keys, sessions and members.
//! - [`room`]: the `SessionRoom` Durable Object, one per session: SQLite store, socket hub,
//!   prompt queue, rate limits.
//! - [`config`]: vars and secrets, parsed once per request (the GitHub settings in
//!   [`config::github`]).
//! - [`github`]: the GitHub App (JWT, installation tokens), sign-in, pull requests, webhooks.
//! - [`slack`]: the Slack app: signed events and interactions, who is asking, which
//!   repository, a thread as a session (the room reports back through `room::slack`).
//! - [`crypto`]: AES-256-GCM and RS256 through WebCrypto; PEM keys to PKCS#8.
//! - [`respond`]: building responses and reading bodies.
//! - [`metrics`]: the window and the answer of `GET /v1/metrics` (its SQL is in [`index`]).
//! - [`schedule`]: the cron's steps; [`images`]: repository images rebuilt when the branch moves;
//!   [`warm`]: the warm pool (its rules are pure; its cron step and the rooms' claims).
//! - [`error`], [`ids`], [`time`], [`log`], [`url`]: small shared pieces.
//!
//! Only the modules that touch the Workers runtime are compiled for wasm alone; the rest
//! (routing, queue rules, rate limits, configuration, time formatting) are tested natively.

pub mod config;
pub mod crypto;
pub mod error;
pub mod github;
pub mod http;
pub mod ids;
pub mod images;
#[cfg(target_arch = "wasm32")]
pub mod index;
pub mod log;
pub mod metrics;
#[cfg(target_arch = "wasm32")]
pub mod provider;
#[cfg(target_arch = "wasm32")]
pub mod respond;
pub mod room;
#[cfg(target_arch = "wasm32")]
pub mod schedule;
pub mod slack;
pub mod time;
pub mod url;
pub mod warm;

#[cfg(target_arch = "wasm32")]
pub use room::SessionRoom;

/// Every request, with its one log line: the endpoint's pattern (never the URL, whose query
/// may hold a token), its session, its status and how long it took.
#[cfg(target_arch = "wasm32")]
#[worker::event(fetch)]
async fn fetch(
    req: worker::Request,
    env: worker::Env,
    ctx: worker::Context,
) -> worker::Result<worker::Response> {
    let started = time::now_ms();
    let request_id = match req.headers().get("cf-ray").ok().flatten() {
        Some(ray)
            if ray.len() <= 64 && ray.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            ray
        }
        _ => ids::new_id("req").unwrap_or_else(|_| format!("req_{started}")),
    };
    let method = req.method().as_ref().to_owned();
    let url = url::of(&req);
    let endpoint = http::route::resolve(&method, url.path()).ok();
    let response = log::WithRequestId::new(&request_id, http::handle(req, env, ctx)).await;
    log::request(&log::RequestLine {
        request_id: &request_id,
        method: &method,
        route: endpoint.as_ref().map_or("unknown", |e| e.pattern()),
        session_id: endpoint.as_ref().and_then(|e| e.session_id()),
        status: response.as_ref().map_or(500, |r| r.status_code()),
        duration_ms: time::now_ms().saturating_sub(started),
    });
    response
}

/// The cron (`[triggers] crons`): its steps are [`schedule::run`]'s.
#[cfg(target_arch = "wasm32")]
#[worker::event(scheduled)]
async fn scheduled(
    _event: worker::ScheduledEvent,
    env: worker::Env,
    _ctx: worker::ScheduleContext,
) {
    schedule::run(env).await;
}
