//! Logging that never carries a secret: callers pass ids and codes, not keys or tokens.

#[cfg(target_arch = "wasm32")]
pub fn error(message: &str) {
    worker::console_error!("{message}");
}

#[cfg(target_arch = "wasm32")]
pub fn info(message: &str) {
    worker::console_log!("{message}");
}

#[cfg(not(target_arch = "wasm32"))]
pub fn error(message: &str) {
    eprintln!("error: {message}");
}

#[cfg(not(target_arch = "wasm32"))]
pub fn info(message: &str) {
    eprintln!("{message}");
}
