//! Wire types shared by every end of the session protocol (see PROTOCOL.md).
//!
//! Layout:
//! - [`error`]: the closed table of error codes, their HTTP statuses and the error body.
//! - [`close`]: the closed table of WebSocket close codes.
//! - [`limits`]: size, count and rate limits with their defaults.
//! - [`event`]: persisted session events (`seq`, `ts`, typed body).
//! - [`frames`]: participant WebSocket frames, both directions, and their validation.
//! - [`api`]: HTTP request and response bodies of the coordinator.
//! - [`selection`]: DOM selections posted by the Chrome extension.
//! - [`bridge`]: frames between the coordinator and the sandbox bridge.
//! - [`cut`]: cutting tool calls, file edits and frames to a size, on a character boundary.
//! - [`provider`]: the sandbox provider API and its request signature.
//! - [`token`]: HMAC-signed participant tokens.
//! - [`sandbox_token`]: sandbox tokens bound to their session, checkable without the room.
//! - [`git`]: branch names, session branches, git credentials, local git host tokens.
//! - [`scope`]: repository scope patterns (`owner/name`, `owner/*`, `*`).
//! - [`crypto`]: the few hashing and encoding helpers the others share.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of the Workers
//! runtime, so it builds for wasm and native alike and both ends share one definition.

/// Declares a closed enum together with `ALL`, its variants in declaration order, so a table
/// that must cover every variant (the web page's sentences, say) can be checked against it.
#[macro_export]
macro_rules! closed_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)* }) => {
        $(#[$meta])* $vis enum $name { $($(#[$vmeta])* $variant,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
        }
    };
}

pub mod api;
pub mod bridge;
pub mod close;
pub mod crypto;
pub mod cut;
pub mod error;
pub mod event;
pub mod frames;
pub mod git;
pub mod limits;
pub mod provider;
pub mod sandbox_token;
pub mod scope;
pub mod selection;
pub mod token;

pub use close::CloseCode;
pub use error::{ApiError, ErrorCode};
pub use limits::Limits;
