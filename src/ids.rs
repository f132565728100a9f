//! Random identifiers and secrets.
//!
//! Ids are a short prefix naming the kind (`usr_`, `ses_`, `msg_` …) and 16 random bytes in
//! lower-case hex, so they sort nowhere in particular and reveal nothing.

use protocol::crypto::{b64url, hex};

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The platform's CSPRNG (crypto.getRandomValues in workerd); failure is not expected,
    // and an all-zero id would then collide loudly on the primary key instead of silently.
    let _ = getrandom::fill(&mut bytes);
    bytes
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex(&random_bytes::<16>()))
}

/// A user API key: `sk_` and 32 random bytes. Only its SHA-256 is stored.
pub fn new_api_key() -> String {
    format!("sk_{}", b64url(&random_bytes::<32>()))
}

/// A secret for a sandbox to present when it dials the room. Only its SHA-256 is stored.
pub fn new_secret_token() -> String {
    b64url(&random_bytes::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = new_id("ses");
        assert_eq!(id.len(), 4 + 32);
        assert!(id.starts_with("ses_"));
        assert_ne!(new_id("ses"), id);
        assert!(new_api_key().starts_with("sk_"));
        assert_eq!(new_api_key().len(), 3 + 43);
    }
}
