//! The coordinator's configuration, read once per request from Worker vars and secrets.
//! Parsing is pure (a lookup function in, a [`Config`] out) so it is tested natively.

use protocol::api::Repo;
use protocol::token::DEFAULT_TTL_MS;
use protocol::Limits;

#[derive(Clone, Debug)]
pub struct Config {
    /// "development" or "production".
    pub env: String,
    /// The admin key; `None` leaves `/v1/users` closed.
    pub admin_key: Option<String>,
    /// Signs participant tokens; `None` leaves sessions unreachable by WebSocket.
    pub token_secret: Option<String>,
    pub repos: Vec<Repo>,
    /// Browser origins allowed to open WebSockets; empty means the Worker's own origin only.
    pub allowed_origins: Vec<String>,
    pub token_ttl_ms: u64,
    pub limits: Limits,
}

impl Config {
    /// Reads the configuration; `lookup` returns a var or secret by name.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let non_empty = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let repos = match non_empty("REPOS") {
            Some(json) => serde_json::from_str::<Vec<Repo>>(&json)
                .map_err(|e| format!("REPOS is not a JSON list of repos: {e}"))?,
            None => Vec::new(),
        };
        if let Some(bad) = repos
            .iter()
            .find(|r| !protocol::scope::is_repo_name(&r.name))
        {
            return Err(format!("REPOS: {:?} is not owner/name", bad.name));
        }
        let token_ttl_ms = match non_empty("PARTICIPANT_TOKEN_TTL_MINUTES") {
            Some(minutes) => {
                minutes
                    .parse::<u64>()
                    .ok()
                    .filter(|m| (1..=24 * 60).contains(m))
                    .ok_or("PARTICIPANT_TOKEN_TTL_MINUTES must be 1 to 1440")?
                    * 60_000
            }
            None => DEFAULT_TTL_MS,
        };
        let allowed_origins = non_empty("ALLOWED_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Config {
            env: non_empty("ENV").unwrap_or_else(|| "production".into()),
            admin_key: non_empty("ADMIN_KEY"),
            token_secret: non_empty("TOKEN_SECRET"),
            repos,
            allowed_origins,
            token_ttl_ms,
            limits: Limits::default(),
        })
    }

    pub fn repo(&self, name: &str) -> Option<&Repo> {
        self.repos
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// Whether a browser origin may open a WebSocket; `own_origin` is this Worker's.
    pub fn origin_allowed(&self, origin: &str, own_origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        if self.allowed_origins.is_empty() {
            return origin.eq_ignore_ascii_case(own_origin) || same_local_host(origin, own_origin);
        }
        self.allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// `localhost` and `127.0.0.1` on the same port are the same development server.
fn same_local_host(a: &str, b: &str) -> bool {
    let canon = |o: &str| {
        o.to_ascii_lowercase()
            .replace("://localhost", "://127.0.0.1")
    };
    canon(a) == canon(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.env, "production");
        assert_eq!(c.admin_key, None);
        assert_eq!(c.token_ttl_ms, 15 * 60_000);
        assert!(c.repos.is_empty());
    }

    #[test]
    fn repos_and_ttl() {
        let c = config(&[
            ("REPOS", r#"[{"name":"acme/web","description":"d"}]"#),
            ("PARTICIPANT_TOKEN_TTL_MINUTES", "5"),
            ("ADMIN_KEY", "  "),
        ])
        .unwrap();
        assert_eq!(
            c.repo("ACME/web").map(|r| r.default_branch.as_str()),
            Some("main")
        );
        assert_eq!(c.token_ttl_ms, 300_000);
        assert_eq!(c.admin_key, None);
        assert!(config(&[("REPOS", "{")]).is_err());
        assert!(config(&[("REPOS", r#"[{"name":"nope"}]"#)]).is_err());
        assert!(config(&[("PARTICIPANT_TOKEN_TTL_MINUTES", "0")]).is_err());
    }

    #[test]
    fn origins() {
        let own = "http://127.0.0.1:8787";
        let c = config(&[]).unwrap();
        assert!(c.origin_allowed("http://127.0.0.1:8787", own));
        assert!(c.origin_allowed("http://localhost:8787/", own));
        assert!(!c.origin_allowed("http://evil.example", own));
        let c = config(&[(
            "ALLOWED_ORIGINS",
            "https://app.example.com, chrome-extension://abc",
        )])
        .unwrap();
        assert!(c.origin_allowed("chrome-extension://abc", own));
        assert!(!c.origin_allowed(own, own));
    }
}
