//! The `SessionRoom` Durable Object: one per session.
//!
//! Layout, one concern per file:
//! - [`api`]: **API Boundary** with the Worker: the routes (one enum both sides use), the
//!   caller header, the internal bodies, and the Worker's `RoomClient`.
//! - `object`: the Durable Object shell; callbacks in, calls on the parts below out.
//! - `context`: `Ctx`, what a part borrows for one callback (store, hub, config, time), and
//!   `emit` (store an event, then broadcast it).
//! - `sockets`: a participant's socket: join, replay, frames.
//! - `members`: participants, removal, archive, the session's description.
//! - `prompts`: the queue: submit, cancel, dispatch, finish, stop, timeout.
//! - `bridge`: the sandbox's socket and its frames, acks, token batching.
//! - `sandbox`: spawn (a warm sandbox claimed, else a cold one), end, snapshot and delete
//!   through the provider; typing and creation asking for a sandbox.
//! - `alarm`: the one alarm: the next deadline, and what it does when it fires.
//! - `history`: reading the log back (replay, pages, `history` frames, SSE).
//! - `artifacts`: selections and the agent's artifacts, created and updated.
//! - `git`: credentials for the sandbox's git, the branch it pushes to, and what a push changes.
//! - `pulls`: the session's pull request: its draft, its `pr` artifact, webhook updates.
//! - `metrics`: what a finished prompt reports to D1 (waits, duration, author, source).
//! - `slack`: prompts from Slack threads, and their status and reply posted back, from the alarm.
//! - `hub`: sockets, SSE streams, broadcast, presence.
//! - `store`: SQLite (migrations in [`schema`]).
//! - Pure rules, tested natively: [`lifecycle`] (deadlines, back-off), [`tokens`] (answer
//!   text by offset, exactly once, and its batching), [`queue`] (admission, cancellation),
//!   [`presence`] (who is online and typing), [`ratelimit`] (token buckets), [`transcript`]
//!   (what a new sandbox's agent is told of the session so far).

pub mod api;
pub mod lifecycle;
pub mod presence;
pub mod queue;
pub mod ratelimit;
pub mod schema;
pub mod tokens;
pub mod transcript;

#[cfg(target_arch = "wasm32")]
mod alarm;
#[cfg(target_arch = "wasm32")]
mod artifacts;
#[cfg(target_arch = "wasm32")]
mod bridge;
#[cfg(target_arch = "wasm32")]
mod context;
#[cfg(target_arch = "wasm32")]
mod git;
#[cfg(target_arch = "wasm32")]
mod history;
#[cfg(target_arch = "wasm32")]
mod hub;
#[cfg(target_arch = "wasm32")]
mod members;
#[cfg(target_arch = "wasm32")]
mod metrics;
#[cfg(target_arch = "wasm32")]
mod object;
#[cfg(target_arch = "wasm32")]
mod prompts;
#[cfg(target_arch = "wasm32")]
mod pulls;
#[cfg(target_arch = "wasm32")]
pub(crate) mod sandbox;
#[cfg(target_arch = "wasm32")]
mod slack;
#[cfg(target_arch = "wasm32")]
mod sockets;
#[cfg(target_arch = "wasm32")]
pub mod store;

#[cfg(target_arch = "wasm32")]
pub use object::SessionRoom;
