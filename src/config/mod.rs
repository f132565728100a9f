//! The coordinator's configuration, read once per request from Worker vars and secrets.
//! Parsing is pure (a lookup function in, a [`Config`] out) so it is tested natively; the
//! GitHub settings are in [`github`], the Slack ones in [`slack`].

mod git_host;
pub mod github;
pub mod slack;
pub mod warm;

pub use github::GithubConfig;
pub use slack::SlackConfig;
pub use warm::WarmConfig;

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
    pub provider: ProviderConfig,
    pub lifecycle: Lifecycle,
    /// `None` when no GitHub setting is given.
    pub github: Option<GithubConfig>,
    /// `None` when no Slack setting is given.
    pub slack: Option<SlackConfig>,
    /// How often each repository's head is looked up for a new image (`IMAGE_REFRESH_MINUTES`,
    /// default 30; 0 looks at every run of the cron).
    pub image_refresh_ms: u64,
    /// The warm pool (none by default).
    pub warm: WarmConfig,
}

/// `IMAGE_REFRESH_MINUTES` when unset.
pub const DEFAULT_IMAGE_REFRESH_MINUTES: u64 = 30;

/// Which sandbox provider the coordinator asks for sandboxes, and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// No provider: prompts wait in the queue.
    None,
    /// `bridge provider` on the developer's machine; refused unless `ENV=development`.
    Local,
    /// The Modal app in `modal/`.
    Modal,
}

impl ProviderKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::None => "none",
            ProviderKind::Local => "local",
            ProviderKind::Modal => "modal",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// The provider API's base URL, without a trailing slash.
    pub url: String,
    /// Signs provider requests (`X-Coordinator-Signature`).
    pub secret: Option<String>,
    /// Modal proxy auth, sent as `Modal-Key` / `Modal-Secret` when both are set.
    pub modal_key: Option<String>,
    pub modal_secret: Option<String>,
    /// The base URL sandboxes dial back to; the Worker's own origin when unset.
    pub coordinator_url: Option<String>,
    /// Hosts a sandbox may reach besides the coordinator (comma separated in `SANDBOX_ALLOWED_HOSTS`).
    pub allowed_hosts: Vec<String>,
}

impl ProviderConfig {
    /// Why sandboxes cannot be created with this configuration, if they cannot.
    pub fn unusable(&self, env: &str) -> Option<&'static str> {
        match self.kind {
            ProviderKind::None => Some("no sandbox provider is configured"),
            ProviderKind::Local if env != "development" => {
                Some("the local sandbox provider runs commands on this machine and is refused unless ENV=development")
            }
            _ if self.url.is_empty() => Some("PROVIDER_URL is not set"),
            _ if self.secret.is_none() => Some("PROVIDER_SECRET is not set"),
            _ => None,
        }
    }
}

/// Deadlines of a room's sandbox, all multiplexed on the room's one alarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// A sandbox with no heartbeat for this long has failed.
    pub heartbeat_timeout_ms: u64,
    /// A prompt running longer than this finishes as `timed_out`.
    pub prompt_timeout_ms: u64,
    /// A sandbox idle (nothing running or queued) this long is snapshotted and shut down.
    pub idle_shutdown_ms: u64,
    /// A requested sandbox that has not connected after this long has failed.
    pub spawn_timeout_ms: u64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            heartbeat_timeout_ms: 60_000,
            prompt_timeout_ms: 30 * 60_000,
            idle_shutdown_ms: 10 * 60_000,
            spawn_timeout_ms: 5 * 60_000,
        }
    }
}

/// The secrets the coordinator's own safety rests on, chosen by whoever deploys it (those
/// GitHub or Modal hand out are theirs to size).
pub const OWN_SECRETS: &[&str] = &[
    "ADMIN_KEY",
    "TOKEN_SECRET",
    "PROVIDER_SECRET",
    "GITHUB_WEBHOOK_SECRET",
];

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Reads the configuration; `lookup` returns a var or secret by name.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let non_empty = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        for name in OWN_SECRETS {
            if let Some(value) = non_empty(name) {
                if value.len() < MIN_SECRET_BYTES {
                    return Err(format!(
                        "{name} is {} bytes long; secrets must be at least {MIN_SECRET_BYTES} bytes (for example: head -c 32 /dev/urandom | base64)",
                        value.len()
                    ));
                }
            }
        }
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
        let limits = match non_empty("LIMITS") {
            Some(json) => serde_json::from_str::<Limits>(&json)
                .map_err(|e| format!("LIMITS is not a JSON object of limits: {e}"))?,
            None => Limits::default(),
        };
        let seconds = |name: &str, default_ms: u64| -> Result<u64, String> {
            match non_empty(name) {
                Some(value) => value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=7 * 24 * 3600).contains(s))
                    .map(|s| s * 1000)
                    .ok_or_else(|| format!("{name} must be a number of seconds from 1 to 604800")),
                None => Ok(default_ms),
            }
        };
        let defaults = Lifecycle::default();
        let lifecycle = Lifecycle {
            heartbeat_timeout_ms: seconds(
                "SANDBOX_HEARTBEAT_TIMEOUT_SECONDS",
                defaults.heartbeat_timeout_ms,
            )?,
            prompt_timeout_ms: seconds("PROMPT_TIMEOUT_SECONDS", defaults.prompt_timeout_ms)?,
            idle_shutdown_ms: seconds("SANDBOX_IDLE_SECONDS", defaults.idle_shutdown_ms)?,
            spawn_timeout_ms: seconds("SANDBOX_SPAWN_TIMEOUT_SECONDS", defaults.spawn_timeout_ms)?,
        };
        let kind = match non_empty("PROVIDER").as_deref() {
            None | Some("none") => ProviderKind::None,
            Some("local") => ProviderKind::Local,
            Some("modal") => ProviderKind::Modal,
            Some(other) => {
                return Err(format!(
                    "PROVIDER must be none, local or modal, not {other:?}"
                ))
            }
        };
        let provider = ProviderConfig {
            kind,
            url: non_empty("PROVIDER_URL")
                .map(|u| u.trim_end_matches('/').to_owned())
                .unwrap_or_default(),
            secret: non_empty("PROVIDER_SECRET"),
            modal_key: non_empty("MODAL_KEY"),
            modal_secret: non_empty("MODAL_SECRET"),
            coordinator_url: non_empty("COORDINATOR_URL")
                .map(|u| u.trim_end_matches('/').to_owned()),
            allowed_hosts: non_empty("SANDBOX_ALLOWED_HOSTS")
                .map(|list| {
                    list.split(',')
                        .map(|h| h.trim().to_owned())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        };
        let image_refresh_ms = match non_empty("IMAGE_REFRESH_MINUTES") {
            Some(minutes) => {
                minutes
                    .parse::<u64>()
                    .ok()
                    .filter(|m| *m <= 24 * 60)
                    .ok_or("IMAGE_REFRESH_MINUTES must be 0 to 1440")?
                    * 60_000
            }
            None => DEFAULT_IMAGE_REFRESH_MINUTES * 60_000,
        };
        let env = non_empty("ENV").unwrap_or_else(|| "production".into());
        let github = GithubConfig::from_lookup(&non_empty, env == "development")?;
        let slack = SlackConfig::from_lookup(&non_empty, env == "development")?;
        let warm = WarmConfig::from_lookup(&non_empty)?;
        Ok(Config {
            warm,
            github,
            slack,
            provider,
            lifecycle,
            limits,
            env,
            admin_key: non_empty("ADMIN_KEY"),
            token_secret: non_empty("TOKEN_SECRET"),
            repos,
            allowed_origins,
            token_ttl_ms,
            image_refresh_ms,
        })
    }

    /// The configuration of this isolate, parsed on its first request: vars and secrets are
    /// fixed for the life of an isolate, and parsing `REPOS` and `LIMITS` on every request
    /// would cost each one a few JSON parses.
    #[cfg(target_arch = "wasm32")]
    pub fn for_isolate(env: &worker::Env) -> Result<std::rc::Rc<Config>, String> {
        thread_local! {
            static PARSED: std::cell::OnceCell<Result<std::rc::Rc<Config>, String>> =
                const { std::cell::OnceCell::new() };
        }
        PARSED.with(|parsed| {
            parsed
                .get_or_init(|| Config::from_env(env).map(std::rc::Rc::new))
                .clone()
        })
    }

    /// Reads the configuration from the Worker's vars and secrets (a secret wins over a var).
    #[cfg(target_arch = "wasm32")]
    pub fn from_env(env: &worker::Env) -> Result<Config, String> {
        Config::from_lookup(|name| {
            env.secret(name)
                .map(|s| s.to_string())
                .ok()
                .or_else(|| env.var(name).map(|v| v.to_string()).ok())
        })
    }

    /// Where sandboxes and image builds clone `repo` from: the git host's URL (or REPOS's
    /// `clone_url`) with GitHub configured, else REPOS's `clone_url`, if any.
    pub fn clone_url(&self, repo: &str) -> Option<String> {
        match &self.github {
            Some(gh) => Some(gh.clone_url(repo, self.repo(repo))),
            None => self.repo(repo).and_then(|r| r.clone_url.clone()),
        }
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
pub fn same_local_host(a: &str, b: &str) -> bool {
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
    fn image_refresh() {
        assert_eq!(config(&[]).unwrap().image_refresh_ms, 30 * 60_000);
        assert_eq!(
            config(&[("IMAGE_REFRESH_MINUTES", "5")])
                .unwrap()
                .image_refresh_ms,
            300_000
        );
        assert_eq!(
            config(&[("IMAGE_REFRESH_MINUTES", "0")])
                .unwrap()
                .image_refresh_ms,
            0
        );
        assert!(config(&[("IMAGE_REFRESH_MINUTES", "1441")]).is_err());
        assert!(config(&[("IMAGE_REFRESH_MINUTES", "soon")]).is_err());
    }

    #[test]
    fn limits_provider_and_lifecycle() {
        let c = config(&[(
            "LIMITS",
            r#"{"queue_len": 500, "prompts_per_window": 100000}"#,
        )])
        .unwrap();
        assert_eq!(c.limits.queue_len, 500);
        assert_eq!(c.limits.frame_bytes, Limits::default().frame_bytes);
        assert!(config(&[("LIMITS", r#"{"queue_lenn": 1}"#)]).is_err());
        assert_eq!(c.provider.kind, ProviderKind::None);
        assert!(c.provider.unusable("development").is_some());

        let local = [
            ("PROVIDER", "local"),
            ("PROVIDER_URL", "http://127.0.0.1:8790/"),
            ("PROVIDER_SECRET", "a-provider-secret-of-at-least-32-bytes"),
            ("SANDBOX_HEARTBEAT_TIMEOUT_SECONDS", "3"),
        ];
        let c = config(&local).unwrap();
        assert_eq!(c.provider.url, "http://127.0.0.1:8790");
        assert_eq!(c.provider.unusable("development"), None);
        assert!(c
            .provider
            .unusable("production")
            .unwrap()
            .contains("ENV=development"));
        assert_eq!(c.lifecycle.heartbeat_timeout_ms, 3000);
        assert_eq!(
            c.lifecycle.prompt_timeout_ms,
            Lifecycle::default().prompt_timeout_ms
        );
        assert!(config(&[("PROVIDER", "docker")]).is_err());
        assert!(config(&[("PROMPT_TIMEOUT_SECONDS", "0")]).is_err());
        let c = config(&[
            ("PROVIDER", "modal"),
            ("PROVIDER_URL", "https://x.modal.run"),
        ])
        .unwrap();
        assert_eq!(
            c.provider.unusable("production"),
            Some("PROVIDER_SECRET is not set")
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        for name in OWN_SECRETS {
            let error = config(&[(name, "too-short")]).unwrap_err();
            assert_eq!(
                error.split(';').next(),
                Some(format!("{name} is 9 bytes long").as_str()),
                "{error}"
            );
            assert!(!error.contains("too-short"), "the value is never repeated");
            assert!(config(&[(name, &"x".repeat(MIN_SECRET_BYTES))]).is_ok());
        }
        // Unset is not short: the coordinator then refuses what needs the secret.
        assert!(config(&[("TOKEN_SECRET", "  ")]).is_ok());
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
