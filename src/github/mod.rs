//! GitHub, when configured (`config::github`).
//!
//! Layout:
//! - [`client`]: one request to GitHub with a timeout, answered as status and JSON.
//! - [`app`]: the App's JWT, installation lookup, down-scoped installation tokens (cached),
//!   and the installations' repositories.
//! - [`oauth`]: sign-in with state and PKCE, admission, the code and refresh exchanges.
//! - [`tokens`]: a user's own token, encrypted in D1 and refreshed once under concurrency.
//! - [`pulls`]: pull request titles and bodies, finding and opening pull requests.
//! - [`webhook`]: the signature check and what a `pull_request` event means.

pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod client;
pub mod oauth;
pub mod pulls;
pub mod tokens;
pub mod webhook;
