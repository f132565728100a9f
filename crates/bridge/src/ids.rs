//! Random ids and numbers without a random-number crate: std's `RandomState` is seeded from
//! the operating system, which is all that ack ids, snapshot ids and backoff jitter need.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A number in `[0, 1)`.
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// `prefix` followed by 16 hex digits.
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}{:016x}", random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_units_stay_in_range() {
        assert_ne!(random_id("a_"), random_id("a_"));
        assert!(random_id("snap_").starts_with("snap_"));
        for _ in 0..1000 {
            let x = random_unit();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
