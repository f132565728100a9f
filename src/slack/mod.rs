//! Slack, when configured (`config::slack`): a mention of the bot (or a direct message) starts
//! a session on the right repository, follow-ups in the thread steer it, and the room posts
//! progress and the result back to the thread (`room::slack`).
//!
//! Layout:
//! - [`verify`]: the v0 request signature (pure).
//! - [`events`]: `POST /v1/slack/events`: url_verification, de-duplication, who is asking,
//!   the thread's session; what an event means is pure.
//! - [`receive`] and [`sessions`]: the Worker's side of the events endpoint, and the
//!   sessions a request or a follow-up in a thread makes or steers.
//! - [`classify`]: which repository, in stages; the last is a model.
//! - [`blocks`]: Block Kit and Markdown → mrkdwn (pure).
//! - [`client`]: the Web API, one function per method, 429 `Retry-After` honoured.
//! - [`interactions`]: `POST /v1/slack/interactions`: the picker's choice and "Create pull
//!   request"; what an action means is pure.

pub mod blocks;
pub mod classify;
#[cfg(target_arch = "wasm32")]
pub mod client;
pub mod events;
pub mod interactions;
#[cfg(target_arch = "wasm32")]
pub mod receive;
#[cfg(target_arch = "wasm32")]
pub mod sessions;
pub mod verify;
