//! The warm pool's settings: `WARM_POOL` (`{"owner/name": size}`, none by default) and
//! `WARM_MAX_AGE_MINUTES` (how old a warm sandbox may get before it is retired, 25 by
//! default: before the next image is due).

use std::collections::BTreeMap;

/// The most warm sandboxes kept for one repository.
pub const MAX_POOL_SIZE: u32 = 20;
pub const DEFAULT_MAX_AGE_MINUTES: u64 = 25;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmConfig {
    /// Repository (`owner/name`, as written) → how many warm sandboxes to keep.
    pub pool: BTreeMap<String, u32>,
    /// A warm sandbox older than this is never claimed, and the cron retires it.
    pub max_age_ms: u64,
}

impl Default for WarmConfig {
    fn default() -> Self {
        WarmConfig {
            pool: BTreeMap::new(),
            max_age_ms: DEFAULT_MAX_AGE_MINUTES * 60_000,
        }
    }
}

impl WarmConfig {
    /// Reads the settings; `non_empty` returns a trimmed, non-empty var by name.
    pub fn from_lookup(non_empty: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let pool = match non_empty("WARM_POOL") {
            None => BTreeMap::new(),
            Some(json) => {
                let pool: BTreeMap<String, u32> = serde_json::from_str(&json).map_err(|e| {
                    format!(
                        "WARM_POOL must be a JSON object of repository to size, like {{\"acme/demo\": 1}}: {e}"
                    )
                })?;
                if let Some(bad) = pool.keys().find(|r| !protocol::scope::is_repo_name(r)) {
                    return Err(format!("WARM_POOL: {bad:?} is not owner/name"));
                }
                if let Some((repo, size)) = pool.iter().find(|(_, n)| **n > MAX_POOL_SIZE) {
                    return Err(format!(
                        "WARM_POOL: {size} warm sandboxes for {repo} is over the limit of {MAX_POOL_SIZE}"
                    ));
                }
                pool
            }
        };
        let max_age_ms = match non_empty("WARM_MAX_AGE_MINUTES") {
            None => DEFAULT_MAX_AGE_MINUTES * 60_000,
            Some(minutes) => {
                minutes
                    .parse::<u64>()
                    .ok()
                    .filter(|m| (1..=24 * 60).contains(m))
                    .ok_or("WARM_MAX_AGE_MINUTES must be a number of minutes from 1 to 1440")?
                    * 60_000
            }
        };
        Ok(WarmConfig { pool, max_age_ms })
    }

    /// How many warm sandboxes `repo` keeps (0: none).
    pub fn size(&self, repo: &str) -> u32 {
        self.pool
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(repo))
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vars: &[(&str, &str)]) -> Result<WarmConfig, String> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        WarmConfig::from_lookup(&lookup)
    }

    #[test]
    fn pool_and_age() {
        assert_eq!(check(&[]), Ok(WarmConfig::default()));
        let c = check(&[
            ("WARM_POOL", r#"{"acme/demo": 2, "acme/web": 0}"#),
            ("WARM_MAX_AGE_MINUTES", "3"),
        ])
        .unwrap();
        assert_eq!(c.size("ACME/demo"), 2);
        assert_eq!(c.size("acme/web"), 0);
        assert_eq!(c.size("acme/other"), 0);
        assert_eq!(c.max_age_ms, 180_000);
        for (vars, says) in [
            (
                &[("WARM_POOL", "[1]")][..],
                "WARM_POOL must be a JSON object",
            ),
            (&[("WARM_POOL", r#"{"acme": 1}"#)], "not owner/name"),
            (
                &[("WARM_POOL", r#"{"acme/demo": -1}"#)],
                "WARM_POOL must be",
            ),
            (&[("WARM_POOL", r#"{"acme/demo": 21}"#)], "over the limit"),
            (&[("WARM_MAX_AGE_MINUTES", "0")], "WARM_MAX_AGE_MINUTES"),
        ] {
            let error = check(vars).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }
}
