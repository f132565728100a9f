//! The command line and the environment, turned into a configuration once, at the edge.
//!
//! Every flag of `bridge run` can also come from the environment, so a provider can start the
//! bridge with variables alone; the sandbox token can only come from there.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage:
  bridge run [--url URL] [--session ID] [--sandbox ID] [--workspace DIR] [--agent dev|opencode]
             [--attribution SUFFIX] [--heartbeat-secs N] [--opencode-bin PATH]
      env: COORDINATOR_URL SESSION_ID SANDBOX_ID SANDBOX_TOKEN (required, env only) WORKSPACE AGENT
           GIT_ATTRIBUTION HEARTBEAT_SECS OPENCODE_BIN OPENCODE_URL OPENCODE_MODEL DEV_AGENT_DELAY_MS
  bridge provider [--listen ADDR] [--workspaces DIR] [--agent dev|opencode] [--bridge-bin PATH]
                  [--allow-coordinator URL]...
      env: PROVIDER_SECRET (required) PROVIDER_LISTEN AGENT PROVIDER_ALLOWED_COORDINATORS
  bridge --version";

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8789";

/// A value that must never reach a log line: `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentKind {
    Dev,
    OpenCode,
}

impl AgentKind {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "dev" => Ok(AgentKind::Dev),
            "opencode" => Ok(AgentKind::OpenCode),
            other => Err(format!(
                "unknown agent {other:?} (expected dev or opencode)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Dev => "dev",
            AgentKind::OpenCode => "opencode",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCodeConfig {
    pub bin: String,
    /// A server that is already running; the bridge then starts none.
    pub url: Option<String>,
    /// `(provider id, model id)`, from `OPENCODE_MODEL=provider/model`.
    pub model: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunConfig {
    pub coordinator_url: String,
    pub session_id: String,
    pub sandbox_id: String,
    pub token: Secret,
    pub workspace: PathBuf,
    pub agent: AgentKind,
    pub attribution: String,
    pub heartbeat: Duration,
    pub dev_delay: Duration,
    pub opencode: OpenCodeConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderConfig {
    pub listen: String,
    pub secret: Secret,
    pub workspaces: PathBuf,
    pub agent: AgentKind,
    /// `None`: this executable.
    pub bridge_bin: Option<PathBuf>,
    pub allowed_coordinators: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Box<RunConfig>),
    Provider(Box<ProviderConfig>),
    Help,
    Version,
}

/// Ids that end up in URLs and directory names: letters, digits, `_`, `-`, `.`, not starting
/// with a dot, at most 128 characters.
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `args` without the program name; `env` looks a variable up.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, String> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    match subcommand.as_str() {
        "run" => parse_run(rest, env).map(|c| Command::Run(Box::new(c))),
        "provider" => parse_provider(rest, env).map(|c| Command::Provider(Box::new(c))),
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" | "version" => Ok(Command::Version),
        other => Err(format!("unknown command {other:?}")),
    }
}

/// `--name value` and `--name=value` pairs, in order.
fn flags(args: &[String], known: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        if name == "token" {
            return Err(
                "the sandbox token is read only from the SANDBOX_TOKEN environment variable".into(),
            );
        }
        if !known.contains(&name) {
            return Err(format!("unknown option --{name}"));
        }
        let value = match inline_value {
            Some(value) => value,
            None => iter
                .next()
                .cloned()
                .ok_or_else(|| format!("--{name} needs a value"))?,
        };
        pairs.push((name.to_string(), value));
    }
    Ok(pairs)
}

/// The last value of a flag, else the environment variable, skipping empty values.
fn lookup(
    pairs: &[(String, String)],
    flag: &str,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(name, _)| name == flag)
        .map(|(_, value)| value.clone())
        .or_else(|| env(var))
        .filter(|value| !value.is_empty())
}

fn parse_run(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<RunConfig, String> {
    let pairs = flags(
        args,
        &[
            "url",
            "session",
            "sandbox",
            "workspace",
            "agent",
            "attribution",
            "heartbeat-secs",
            "opencode-bin",
        ],
    )?;
    let get = |flag: &str, var: &str| lookup(&pairs, flag, var, env);
    let coordinator_url =
        get("url", "COORDINATOR_URL").ok_or("--url or COORDINATOR_URL is required")?;
    if !["http://", "https://", "ws://", "wss://"]
        .iter()
        .any(|scheme| coordinator_url.starts_with(scheme))
    {
        return Err(format!(
            "the coordinator URL must start with http:// or https:// (got {coordinator_url:?})"
        ));
    }
    let session_id = get("session", "SESSION_ID").ok_or("--session or SESSION_ID is required")?;
    let sandbox_id = get("sandbox", "SANDBOX_ID").ok_or("--sandbox or SANDBOX_ID is required")?;
    for (what, id) in [("session", &session_id), ("sandbox", &sandbox_id)] {
        if !is_plain_id(id) {
            return Err(format!(
                "the {what} id may only contain letters, digits, '_', '-' and '.'"
            ));
        }
    }
    let token = env("SANDBOX_TOKEN")
        .filter(|t| !t.is_empty())
        .ok_or("SANDBOX_TOKEN is required in the environment")?;
    let heartbeat_secs = match get("heartbeat-secs", "HEARTBEAT_SECS") {
        Some(value) => value
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=3600).contains(n))
            .ok_or_else(|| format!("heartbeat seconds must be 1..=3600 (got {value:?})"))?,
        None => 20,
    };
    let dev_delay_ms = match env("DEV_AGENT_DELAY_MS").filter(|v| !v.is_empty()) {
        Some(value) => value
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| format!("DEV_AGENT_DELAY_MS must be 0..=10000 (got {value:?})"))?,
        None => 15,
    };
    let model = match env("OPENCODE_MODEL").filter(|v| !v.is_empty()) {
        Some(value) => match value.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => {
                Some((provider.to_string(), model.to_string()))
            }
            _ => {
                return Err(format!(
                    "OPENCODE_MODEL must look like provider/model (got {value:?})"
                ))
            }
        },
        None => None,
    };
    Ok(RunConfig {
        coordinator_url,
        session_id,
        sandbox_id,
        token: Secret::new(token),
        workspace: PathBuf::from(get("workspace", "WORKSPACE").unwrap_or_else(|| ".".into())),
        agent: AgentKind::parse(&get("agent", "AGENT").unwrap_or_else(|| "dev".into()))?,
        // An explicitly empty suffix is allowed, so this one does not skip empty values.
        attribution: pairs
            .iter()
            .rev()
            .find(|(name, _)| name == "attribution")
            .map(|(_, value)| value.clone())
            .or_else(|| env("GIT_ATTRIBUTION"))
            .unwrap_or_else(|| " (agent)".into()),
        heartbeat: Duration::from_secs(heartbeat_secs),
        dev_delay: Duration::from_millis(dev_delay_ms),
        opencode: OpenCodeConfig {
            bin: get("opencode-bin", "OPENCODE_BIN").unwrap_or_else(|| "opencode".into()),
            url: env("OPENCODE_URL").filter(|v| !v.is_empty()),
            model,
        },
    })
}

fn parse_provider(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProviderConfig, String> {
    let pairs = flags(
        args,
        &[
            "listen",
            "workspaces",
            "agent",
            "bridge-bin",
            "allow-coordinator",
        ],
    )?;
    let get = |flag: &str, var: &str| lookup(&pairs, flag, var, env);
    let secret = env("PROVIDER_SECRET")
        .filter(|s| !s.is_empty())
        .ok_or("PROVIDER_SECRET is required in the environment")?;
    let mut allowed: Vec<String> = pairs
        .iter()
        .filter(|(name, _)| name == "allow-coordinator")
        .map(|(_, value)| value.clone())
        .collect();
    if allowed.is_empty() {
        allowed = env("PROVIDER_ALLOWED_COORDINATORS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
    }
    if allowed.is_empty() {
        allowed = vec!["http://127.0.0.1:*".into(), "http://localhost:*".into()];
    }
    Ok(ProviderConfig {
        listen: get("listen", "PROVIDER_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into()),
        secret: Secret::new(secret),
        workspaces: PathBuf::from(
            get("workspaces", "PROVIDER_WORKSPACES")
                .unwrap_or_else(|| ".wrangler/sandboxes".into()),
        ),
        agent: AgentKind::parse(&get("agent", "AGENT").unwrap_or_else(|| "dev".into()))?,
        bridge_bin: get("bridge-bin", "BRIDGE_BIN").map(PathBuf::from),
        allowed_coordinators: allowed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(args: &[&str], vars: &[(&str, &str)]) -> Result<Command, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args, &|name| vars.get(name).cloned())
    }

    fn run_config(args: &[&str], vars: &[(&str, &str)]) -> RunConfig {
        match parse_with(args, vars) {
            Ok(Command::Run(config)) => *config,
            other => panic!("expected a run config, got {other:?}"),
        }
    }

    #[test]
    fn run_from_flags_with_defaults() {
        let config = run_config(
            &[
                "run",
                "--url",
                "http://127.0.0.1:8787",
                "--session=ses_1",
                "--sandbox",
                "sbx_1",
            ],
            &[("SANDBOX_TOKEN", "tok")],
        );
        assert_eq!(config.coordinator_url, "http://127.0.0.1:8787");
        assert_eq!(config.session_id, "ses_1");
        assert_eq!(config.sandbox_id, "sbx_1");
        assert_eq!(config.token.expose(), "tok");
        assert_eq!(config.workspace, PathBuf::from("."));
        assert_eq!(config.agent, AgentKind::Dev);
        assert_eq!(config.attribution, " (agent)");
        assert_eq!(config.heartbeat, Duration::from_secs(20));
        assert_eq!(config.dev_delay, Duration::from_millis(15));
        assert_eq!(config.opencode.bin, "opencode");
        assert!(!format!("{config:?}").contains("tok\""));
    }

    #[test]
    fn run_from_environment_and_flags_win() {
        let vars = [
            ("COORDINATOR_URL", "https://c.example"),
            ("SESSION_ID", "s"),
            ("SANDBOX_ID", "b"),
            ("SANDBOX_TOKEN", "t"),
            ("AGENT", "opencode"),
            ("GIT_ATTRIBUTION", ""),
            ("HEARTBEAT_SECS", "5"),
            ("WORKSPACE", "/w"),
            ("OPENCODE_MODEL", "stub/stub-model"),
            ("OPENCODE_URL", "http://127.0.0.1:4096"),
            ("DEV_AGENT_DELAY_MS", "0"),
        ];
        let config = run_config(&["run", "--agent", "dev"], &vars);
        assert_eq!(config.agent, AgentKind::Dev);
        assert_eq!(config.attribution, "");
        assert_eq!(config.heartbeat, Duration::from_secs(5));
        assert_eq!(config.workspace, PathBuf::from("/w"));
        assert_eq!(
            config.opencode.model,
            Some(("stub".into(), "stub-model".into()))
        );
        assert_eq!(
            config.opencode.url.as_deref(),
            Some("http://127.0.0.1:4096")
        );
        assert_eq!(config.dev_delay, Duration::ZERO);
    }

    #[test]
    fn run_refusals() {
        let base = [
            ("COORDINATOR_URL", "http://x"),
            ("SESSION_ID", "s"),
            ("SANDBOX_ID", "b"),
        ];
        let check = |args: &[&str], extra: &[(&str, &str)], needle: &str| {
            let mut vars = base.to_vec();
            vars.extend_from_slice(extra);
            let err = parse_with(args, &vars).expect_err("should be refused");
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        };
        check(&["run"], &[], "SANDBOX_TOKEN");
        check(
            &["run", "--token", "t"],
            &[("SANDBOX_TOKEN", "t")],
            "only from",
        );
        check(
            &["run", "--token=t"],
            &[("SANDBOX_TOKEN", "t")],
            "only from",
        );
        check(
            &["run", "--agent", "gpt"],
            &[("SANDBOX_TOKEN", "t")],
            "unknown agent",
        );
        check(
            &["run", "--url", "ftp://x"],
            &[("SANDBOX_TOKEN", "t")],
            "http://",
        );
        check(
            &["run", "--session", "../x"],
            &[("SANDBOX_TOKEN", "t")],
            "session id",
        );
        check(
            &["run", "--heartbeat-secs", "0"],
            &[("SANDBOX_TOKEN", "t")],
            "heartbeat",
        );
        check(
            &["run", "--bogus", "1"],
            &[("SANDBOX_TOKEN", "t")],
            "unknown option",
        );
        check(
            &["run", "--url"],
            &[("SANDBOX_TOKEN", "t")],
            "needs a value",
        );
        check(
            &["run"],
            &[("SANDBOX_TOKEN", "t"), ("OPENCODE_MODEL", "x")],
            "provider/model",
        );
    }

    #[test]
    fn provider_defaults_and_allowlist_sources() {
        let config = match parse_with(
            &["provider", "--listen", "127.0.0.1:0"],
            &[("PROVIDER_SECRET", "s")],
        ) {
            Ok(Command::Provider(config)) => *config,
            other => panic!("{other:?}"),
        };
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.workspaces, PathBuf::from(".wrangler/sandboxes"));
        assert_eq!(
            config.allowed_coordinators,
            ["http://127.0.0.1:*", "http://localhost:*"]
        );
        let config = match parse_with(
            &[
                "provider",
                "--allow-coordinator",
                "https://a",
                "--allow-coordinator=https://b",
            ],
            &[
                ("PROVIDER_SECRET", "s"),
                ("PROVIDER_ALLOWED_COORDINATORS", "https://c"),
            ],
        ) {
            Ok(Command::Provider(config)) => *config,
            other => panic!("{other:?}"),
        };
        assert_eq!(config.allowed_coordinators, ["https://a", "https://b"]);
        assert_eq!(config.listen, DEFAULT_LISTEN);
        let config = match parse_with(
            &["provider"],
            &[
                ("PROVIDER_SECRET", "s"),
                ("PROVIDER_ALLOWED_COORDINATORS", "https://c, https://d"),
            ],
        ) {
            Ok(Command::Provider(config)) => *config,
            other => panic!("{other:?}"),
        };
        assert_eq!(config.allowed_coordinators, ["https://c", "https://d"]);
        assert!(parse_with(&["provider"], &[]).is_err());
    }

    #[test]
    fn plain_ids() {
        for ok in ["sbx_1", "a.b-c", "X"] {
            assert!(is_plain_id(ok), "{ok}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", &"x".repeat(129)] {
            assert!(!is_plain_id(bad), "{bad}");
        }
        assert_eq!(parse_with(&[], &[]), Ok(Command::Help));
        assert_eq!(parse_with(&["--version"], &[]), Ok(Command::Version));
    }
}
