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
pub use step::{claim, retire_later, run, top_up_later, Claimed};

/// The image new sandboxes of `repo` start from, if one was built. Images are recorded by the
/// image step of the cron (`image_builds`); until then there is none, and a warm sandbox
/// starts from a clone like a cold one.
pub fn latest_image(_repo: &str) -> Option<String> {
    None
}
