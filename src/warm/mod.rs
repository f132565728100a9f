//! The warm pool: sandboxes started ahead of any session, from the latest image, bound to
//! none, so that a session's creation, its first `typing` or its first prompt can claim one
//! instead of waiting for a cold start.
//!
//! - [`plan`] (pure): what one step of the pool does (retire the stale, delete the retired,
//!   start the missing), from the settings, the rows and the time.
//! - `step` (wasm): carries a plan out against D1 ([`crate::index`]) and the provider, from
//!   the cron ([`crate::schedule`]) and right after a claim; and the room's claim.
//!
//! A warm sandbox holds no session secret: it has neither a session id nor a sandbox token nor
//! git credentials until a room claims it (`POST /sandboxes/:id/claim`, PROTOCOL.md section 5).

pub mod plan;
#[cfg(target_arch = "wasm32")]
mod step;

pub use plan::{plan, Plan, PoolRow, WarmStatus};
#[cfg(target_arch = "wasm32")]
pub use step::{claim, latest_image, retire_later, run, top_up_later, Claimed};
