//! The `SessionRoom` Durable Object: one per session. This file is the shell that turns
//! platform callbacks (fetch from the Worker, socket messages, closes) into calls on the
//! room's parts: [`store`] (SQLite), [`hub`] (sockets and presence), [`queue`] (prompt
//! rules) and [`ratelimit`].

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod hub;
pub mod lifecycle;
pub mod queue;
pub mod ratelimit;
pub mod schema;
#[cfg(target_arch = "wasm32")]
pub mod store;

#[cfg(target_arch = "wasm32")]
mod actions;
#[cfg(target_arch = "wasm32")]
mod object;
#[cfg(target_arch = "wasm32")]
mod sandbox;

#[cfg(target_arch = "wasm32")]
pub use object::SessionRoom;
