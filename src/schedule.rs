//! The Worker's cron (`[triggers] crons` in wrangler.toml, `#[event(scheduled)]` in `lib.rs`):
//! a short list of steps, each its own module. A step that fails is logged and the next one
//! still runs; the cron comes back a few minutes later and tries again.

use crate::config::Config;
use crate::index::Index;
use worker::Env;

/// Every step of the schedule, in order.
pub async fn run(env: Env) {
    let config = match Config::for_isolate(&env) {
        Ok(config) => config,
        Err(error) => return crate::log::error(&format!("schedule: configuration: {error}")),
    };
    let index = match env.d1("DB") {
        Ok(db) => Index::new(db),
        Err(error) => return crate::log::error(&format!("schedule: D1: {error}")),
    };
    // Repository images: rebuilt when the default branch moves or the runtime changes.
    if let Err(error) = crate::images::io::run(&config, &index).await {
        crate::log::error(&format!("schedule: images: {error:?}"));
    }
    // The warm pool, from the images just recorded: retire the stale (and those of an older
    // image), delete the retired, start the missing.
    if let Err(error) = crate::warm::run(&env, &config, None).await {
        crate::log::error(&format!("schedule: warm pool: {error:?}"));
    }
}
