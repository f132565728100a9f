//! Per-participant rate limits as token buckets. Pure: time comes in as a parameter.
//!
//! The buckets live in the room's memory only. Losing them when the room hibernates is
//! fine: a hibernated room saw no traffic for a while, so every bucket would be full anyway.

use protocol::{ApiError, ErrorCode, Limits};
use std::collections::HashMap;

#[derive(Clone, Debug)]
struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

/// A family of buckets (one per user) sharing a capacity and a refill rate.
#[derive(Debug)]
pub struct RateLimit {
    capacity: f64,
    refill_per_ms: f64,
    what: &'static str,
    buckets: HashMap<String, TokenBucket>,
}

impl RateLimit {
    /// `capacity` actions per `window_ms`, refilled continuously.
    pub fn new(capacity: u32, window_ms: u64, what: &'static str) -> Self {
        RateLimit {
            capacity: f64::from(capacity),
            refill_per_ms: f64::from(capacity) / window_ms.max(1) as f64,
            what,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key`, or says how long to wait.
    pub fn take(&mut self, key: &str, now_ms: u64) -> Result<(), ApiError> {
        if self.buckets.len() > 10_000 {
            // Bound memory: drop buckets that have refilled completely.
            let (capacity, rate) = (self.capacity, self.refill_per_ms);
            self.buckets.retain(|_, b| {
                b.tokens + now_ms.saturating_sub(b.last_ms) as f64 * rate < capacity
            });
        }
        let bucket = self.buckets.entry(key.to_owned()).or_insert(TokenBucket {
            tokens: self.capacity,
            last_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(bucket.last_ms) as f64;
        bucket.tokens = (bucket.tokens + elapsed * self.refill_per_ms).min(self.capacity);
        bucket.last_ms = now_ms.max(bucket.last_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - bucket.tokens) / self.refill_per_ms).ceil() as u64;
        Err(ApiError::new(
            ErrorCode::RateLimited,
            format!("too many {}; try again in {} ms", self.what, wait_ms.max(1)),
        ))
    }

    /// Returns the token an action took, when the action turned out to be a repeat of one
    /// already counted (a prompt re-sent with the same `client_request_id`).
    pub fn give_back(&mut self, key: &str) {
        if let Some(bucket) = self.buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.capacity);
        }
    }
}

/// The limits every participant is held to. Selections (up to 1 MiB each) count like
/// prompts, in a bucket of their own.
#[derive(Debug)]
pub struct RateLimits {
    pub frames: RateLimit,
    pub prompts: RateLimit,
    pub selections: RateLimit,
}

impl RateLimits {
    pub fn new(limits: &Limits) -> Self {
        RateLimits {
            frames: RateLimit::new(limits.frames_per_window, limits.rate_window_ms, "frames"),
            prompts: RateLimit::new(limits.prompts_per_window, limits.rate_window_ms, "prompts"),
            selections: RateLimit::new(
                limits.prompts_per_window,
                limits.rate_window_ms,
                "selections",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut limit = RateLimit::new(10, 10_000, "prompts");
        for _ in 0..10 {
            assert!(limit.take("alice", 0).is_ok());
        }
        let err = limit.take("alice", 0).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert_eq!(err.message, "too many prompts; try again in 1000 ms");
        // Another user has a bucket of their own.
        assert!(limit.take("bob", 0).is_ok());
        // One token comes back per second.
        assert!(limit.take("alice", 999).is_err());
        assert!(limit.take("alice", 1_000).is_ok());
        assert!(limit.take("alice", 1_000).is_err());
        assert!(limit.take("alice", 3_000).is_ok());
        assert!(limit.take("alice", 3_000).is_ok());
        assert!(limit.take("alice", 3_000).is_err());
        // Never more than the capacity, however long the pause.
        for _ in 0..10 {
            assert!(limit.take("alice", 1_000_000).is_ok());
        }
        assert!(limit.take("alice", 1_000_000).is_err());
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let mut limit = RateLimit::new(1, 1_000, "frames");
        assert!(limit.take("a", 5_000).is_ok());
        assert!(limit.take("a", 4_000).is_err());
        assert!(limit.take("a", 6_000).is_ok());
    }
}
