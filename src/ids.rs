//! Random identifiers and secrets.
//!
//! Ids are a short prefix naming the kind (`usr_`, `ses_`, `msg_` …) and 16 random bytes in
//! lower-case hex, so they sort nowhere in particular and reveal nothing.

use crate::error::{Error, Result};
use protocol::crypto::{b64url, hex};

/// How many random bytes are fetched from the platform at a time: ids are made on hot paths
/// (every prompt), and one call into the platform serves many of them.
const POOL_BYTES: usize = 1024;

thread_local! {
    /// Random bytes from the platform not yet handed out; taken from the end.
    static POOL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Bytes from the platform's CSPRNG (`crypto.getRandomValues` in workerd), fetched in batches
/// and each handed out once. A failure refuses the request: handing out a predictable key or
/// token is never an option.
fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < N {
            let mut fresh = vec![0u8; POOL_BYTES.max(N)];
            getrandom::fill(&mut fresh).map_err(|error| {
                Error::Runtime(format!("the random number generator failed: {error}"))
            })?;
            *pool = fresh;
        }
        let mut bytes = [0u8; N];
        let start = pool.len() - N;
        bytes.copy_from_slice(&pool[start..]);
        // Handed out once: nothing of it stays behind in the pool's memory.
        pool[start..].fill(0);
        pool.truncate(start);
        Ok(bytes)
    })
}

pub fn new_id(prefix: &str) -> Result<String> {
    Ok(format!("{prefix}_{}", hex(&random_bytes::<16>()?)))
}

/// An id whose first 12 hex digits are the time (ms) and the other 20 random (80 bits): ids
/// made one after another sort one after another, so the B-tree index of a table keyed by them
/// grows at its end instead of at random pages (messages are inserted on every prompt).
pub fn new_sortable_id(prefix: &str, now_ms: u64) -> Result<String> {
    let random = random_bytes::<10>()?;
    Ok(format!(
        "{prefix}_{:012x}{}",
        now_ms & 0xffff_ffff_ffff,
        hex(&random)
    ))
}

/// A user API key: `sk_` and 32 random bytes. Only its SHA-256 is stored.
pub fn new_api_key() -> Result<String> {
    Ok(format!("sk_{}", b64url(&random_bytes::<32>()?)))
}

/// A secret for a sandbox to present when it dials the room. Only its SHA-256 is stored.
pub fn new_secret_token() -> Result<String> {
    Ok(b64url(&random_bytes::<32>()?))
}

/// A nonce for a connect ticket: 16 random bytes in hex.
pub fn new_nonce() -> Result<String> {
    Ok(hex(&random_bytes::<16>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = new_id("ses").unwrap();
        assert_eq!(id.len(), 4 + 32);
        assert!(id.starts_with("ses_"));
        assert_ne!(new_id("ses").unwrap(), id);
        let key = new_api_key().unwrap();
        assert!(key.starts_with("sk_"));
        assert_eq!(key.len(), 3 + 43);
        let earlier = new_sortable_id("msg", 1_000).unwrap();
        let later = new_sortable_id("msg", 1_001).unwrap();
        assert_eq!(earlier.len(), 4 + 32);
        assert!(earlier < later);
        // The pool never hands the same bytes out twice, across refills too.
        let ids: std::collections::HashSet<String> =
            (0..200).map(|_| new_id("x").unwrap()).collect();
        assert_eq!(ids.len(), 200);
    }
}
