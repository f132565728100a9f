//! The Worker's cron (`[triggers] crons` in `wrangler.toml`, `#[event(scheduled)]` in
//! `lib.rs`): each step in turn, a failed one logged without stopping the others.

use worker::Env;

/// Every step of the schedule, in order.
pub async fn run(env: Env) {
    let config = match crate::config::Config::for_isolate(&env) {
        Ok(config) => config,
        Err(error) => {
            crate::log::error(&format!("schedule: the configuration is broken: {error}"));
            return;
        }
    };
    // The warm pool: retire the stale, delete the retired, start the missing.
    if let Err(error) = crate::warm::run(&env, &config, None).await {
        crate::log::error(&format!("schedule: warm pool: {error:?}"));
    }
}
