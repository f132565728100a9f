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
#[cfg(target_arch = "wasm32")]
pub mod index;
pub mod log;
#[cfg(target_arch = "wasm32")]
pub mod provider;
#[cfg(target_arch = "wasm32")]
pub mod respond;
pub mod room;
pub mod slack;
pub mod time;
pub mod url;

#[cfg(target_arch = "wasm32")]
pub use room::SessionRoom;

#[cfg(target_arch = "wasm32")]
#[worker::event(fetch)]
async fn fetch(
    req: worker::Request,
    env: worker::Env,
    ctx: worker::Context,
) -> worker::Result<worker::Response> {
    http::handle(req, env, ctx).await
}
