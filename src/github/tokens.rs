//! A user's own GitHub token: kept AES-256-GCM encrypted in D1 (a fresh random nonce per value,
//! the user id as associated data, the key's id so keys can rotate), and refreshed five minutes
//! before it expires. A refresh takes a lease with a compare-and-swap on the row's version, so
//! two requests (two rooms, two tabs) refreshing at once make one exchange: the other waits
//! for the version to move and uses the new token.

/// A token is refreshed when it has less than this left.
pub const REFRESH_MARGIN_MS: u64 = 5 * 60_000;

/// How long a refresh lease holds before another request may take it over.
pub const LEASE_MS: u64 = 30_000;

/// What to do with the stored token at `now_ms`.
#[derive(Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Use it as it is.
    Use,
    /// Refresh it; while another request does, the current one still works.
    RefreshWhileValid,
    /// Refresh it; it no longer works.
    RefreshExpired,
    /// It has expired and cannot be refreshed: sign in again.
    Dead,
}

pub fn freshness(
    access_expires_ms: Option<u64>,
    refresh_expires_ms: Option<u64>,
    has_refresh: bool,
    now_ms: u64,
) -> Freshness {
    let Some(expires) = access_expires_ms else {
        return Freshness::Use;
    };
    let refreshable = has_refresh && refresh_expires_ms.is_none_or(|r| r > now_ms);
    match (
        expires > now_ms + REFRESH_MARGIN_MS,
        expires > now_ms,
        refreshable,
    ) {
        (true, _, _) => Freshness::Use,
        (false, true, true) => Freshness::RefreshWhileValid,
        (false, true, false) => Freshness::Use,
        (false, false, true) => Freshness::RefreshExpired,
        (false, false, false) => Freshness::Dead,
    }
}

#[cfg(target_arch = "wasm32")]
pub use io::{store, usable};

#[cfg(target_arch = "wasm32")]
mod io {
    use super::*;
    use crate::config::github::{GithubConfig, TokenKey};
    use crate::crypto::{aes_gcm_decrypt, aes_gcm_encrypt};
    use crate::error::{Error, Result};
    use crate::github::oauth::{exchange, TokenPair};
    use crate::index::{Index, StoredToken, TokenWrite};
    use crate::time::now_ms;
    use protocol::crypto::{b64url, unb64url};
    use serde_json::json;
    use std::time::Duration;

    async fn seal(key: &TokenKey, user_id: &str, value: &str) -> Result<(String, String)> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| Error::Runtime(format!("random: {e}")))?;
        let sealed =
            aes_gcm_encrypt(&key.key, &nonce, user_id.as_bytes(), value.as_bytes()).await?;
        Ok((b64url(&nonce), b64url(&sealed)))
    }

    async fn open(key: &TokenKey, user_id: &str, nonce: &str, sealed: &str) -> Result<String> {
        let bad = || Error::Runtime("a stored GitHub token is damaged".into());
        let nonce: [u8; 12] = unb64url(nonce)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(bad)?;
        let sealed = unb64url(sealed).ok_or_else(bad)?;
        let plain = aes_gcm_decrypt(&key.key, &nonce, user_id.as_bytes(), &sealed).await?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    async fn encrypt(gh: &GithubConfig, user_id: &str, pair: &TokenPair) -> Result<TokenWrite> {
        let key = gh
            .token_keys
            .first()
            .ok_or_else(|| Error::Runtime("no TOKEN_ENCRYPTION_KEY".into()))?;
        let refresh = match &pair.refresh {
            Some(token) => Some(seal(key, user_id, token).await?),
            None => None,
        };
        Ok(TokenWrite {
            key_id: key.id.clone(),
            access: seal(key, user_id, &pair.access).await?,
            access_expires_at: pair.access_expires_ms,
            refresh,
            refresh_expires_at: pair.refresh_expires_ms,
        })
    }

    /// Stores the pair a sign-in gave, encrypted under the newest key.
    pub async fn store(
        index: &Index,
        gh: &GithubConfig,
        user_id: &str,
        pair: &TokenPair,
    ) -> Result<()> {
        let write = encrypt(gh, user_id, pair).await?;
        index.put_github_token(user_id, &write, now_ms()).await
    }

    /// The key a row was sealed with; `None` once that key has been retired.
    fn key_of<'a>(gh: &'a GithubConfig, row: &StoredToken) -> Option<&'a TokenKey> {
        gh.token_keys.iter().find(|k| k.id == row.key_id)
    }

    /// The user's working access token, refreshed if due; `None` when they have none (never
    /// signed in with GitHub, or it was refused and must be given again).
    pub async fn usable(index: &Index, gh: &GithubConfig, user_id: &str) -> Result<Option<String>> {
        let started = now_ms();
        loop {
            let now = now_ms();
            let Some(row) = index.github_token(user_id).await? else {
                return Ok(None);
            };
            let Some(key) = key_of(gh, &row) else {
                return Ok(None);
            };
            let access = || open(key, user_id, &row.access_nonce, &row.access_ciphertext);
            let state = freshness(
                row.access_expires_at,
                row.refresh_expires_at,
                row.refresh_ciphertext.is_some(),
                now,
            );
            match state {
                Freshness::Use => return Ok(Some(access().await?)),
                Freshness::Dead => return Ok(None),
                Freshness::RefreshWhileValid | Freshness::RefreshExpired => {}
            }
            let lease_free = row.refreshing_until.is_none_or(|until| until < now);
            if lease_free
                && index
                    .take_refresh_lease(user_id, row.version, now, now + LEASE_MS)
                    .await?
            {
                return refresh(index, gh, user_id, key, &row).await;
            }
            // Someone else is refreshing: the current token while it lasts, else wait for theirs.
            if state == Freshness::RefreshWhileValid {
                return Ok(Some(access().await?));
            }
            if now > started + 5_000 {
                return Err(Error::Api(protocol::ApiError::new(
                    protocol::ErrorCode::Unavailable,
                    "your GitHub token is being refreshed; try again in a moment",
                )));
            }
            worker::Delay::from(Duration::from_millis(200)).await;
        }
    }

    /// The lease is ours: exchange the refresh token and store the new pair over our version.
    async fn refresh(
        index: &Index,
        gh: &GithubConfig,
        user_id: &str,
        key: &TokenKey,
        row: &StoredToken,
    ) -> Result<Option<String>> {
        let (Some(sign_in), Some(nonce), Some(sealed)) =
            (&gh.sign_in, &row.refresh_nonce, &row.refresh_ciphertext)
        else {
            return Ok(None);
        };
        let refresh_token = open(key, user_id, nonce, sealed).await?;
        let grant = json!({"grant_type": "refresh_token", "refresh_token": refresh_token});
        let pair = match exchange(gh, sign_in, grant).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(code)) => {
                // GitHub refused the refresh token (revoked, used, expired): sign in again.
                crate::log::info(&format!("github: refresh refused for {user_id}: {code}"));
                index.delete_github_token(user_id).await?;
                return Ok(None);
            }
            Err(error) => {
                index.release_refresh_lease(user_id, row.version).await?;
                return Err(error);
            }
        };
        let write = encrypt(gh, user_id, &pair).await?;
        index
            .put_refreshed_token(user_id, row.version, &write, now_ms())
            .await?;
        Ok(Some(pair.access))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_to_refresh() {
        let m = 60_000;
        assert_eq!(freshness(None, None, false, 0), Freshness::Use);
        assert_eq!(freshness(Some(10 * m), None, true, 0), Freshness::Use);
        assert_eq!(
            freshness(Some(4 * m), None, true, 0),
            Freshness::RefreshWhileValid
        );
        assert_eq!(freshness(Some(4 * m), None, false, 0), Freshness::Use);
        assert_eq!(
            freshness(Some(m), Some(2 * m), true, 2 * m),
            Freshness::Dead
        );
        assert_eq!(
            freshness(Some(m), Some(9 * m), true, 2 * m),
            Freshness::RefreshExpired
        );
        assert_eq!(freshness(Some(m), None, false, 2 * m), Freshness::Dead);
    }
}
