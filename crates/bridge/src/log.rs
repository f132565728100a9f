//! Log lines on stderr: a UTC time and a short component name, nothing else to configure.

use std::time::{SystemTime, UNIX_EPOCH};

/// `HH:MM:SS.mmm` in UTC; enough to order lines when a provider interleaves several bridges.
pub fn timestamp() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// `log!("run", "connected to {url}")` → `12:00:01.234 bridge[run] connected to …`
#[macro_export]
macro_rules! log {
    ($component:expr, $($arg:tt)*) => {
        eprintln!("{} bridge[{}] {}", $crate::log::timestamp(), $component, format_args!($($arg)*))
    };
}
