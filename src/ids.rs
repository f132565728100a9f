//! Random identifiers and secrets.
//!
//! Ids are a short prefix naming the kind (`usr_`, `ses_`, `msg_` …) and 16 random bytes in
//! lower-case hex, so they sort nowhere in particular and reveal nothing.

use crate::error::{Error, Result};
use protocol::crypto::{b64url, hex};

/// Bytes from the platform's CSPRNG (`crypto.getRandomValues` in workerd). A failure refuses
/// the request: handing out a predictable key or token is never an option.
fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|error| Error::Runtime(format!("the random number generator failed: {error}")))?;
    Ok(bytes)
}

pub fn new_id(prefix: &str) -> Result<String> {
    Ok(format!("{prefix}_{}", hex(&random_bytes::<16>()?)))
}

/// A user API key: `sk_` and 32 random bytes. Only its SHA-256 is stored.
pub fn new_api_key() -> Result<String> {
    Ok(format!("sk_{}", b64url(&random_bytes::<32>()?)))
}

/// A secret for a sandbox to present when it dials the room. Only its SHA-256 is stored.
pub fn new_secret_token() -> Result<String> {
    Ok(b64url(&random_bytes::<32>()?))
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
    }
}
