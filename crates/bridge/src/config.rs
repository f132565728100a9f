//! The command line and the environment, turned into a configuration once, at the edge.
//!
//! One clap declaration gives both the parser and `--help`. Every setting can come from a flag
//! or from its environment variable (the flag wins), so a provider can start `bridge run` with
//! variables alone; the two secrets, the sandbox token and the provider's signing secret, come
//! only from the environment. An empty variable counts as unset, except the two whose empty
//! value means something: `GIT_ATTRIBUTION` (no suffix) and `SANDBOX_ENV_PASSTHROUGH` (pass
//! nothing). Bad usage exits with code 2. `bridge credential`, which git runs, reads no variable
//! at all: everything it needs is on the command line git was configured with.

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use protocol::provider::Assignment;
use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8789";

/// The variable naming what reaches the agent; the provider hands its value on to bridges.
pub const PASSTHROUGH_VAR: &str = "SANDBOX_ENV_PASSTHROUGH";

/// The model providers' usual key variables: what an agent needs from the machine it was
/// started on, and nothing the bridge itself reads. Agent settings such as `OPENCODE_MODEL`
/// reach the agent anyway, as bridge settings.
pub const DEFAULT_PASSTHROUGH: [&str; 9] = [
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENERATIVE_AI_API_KEY",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
];

/// Variables the passthrough list may not name: the two secrets, and what the provider sets
/// for each bridge itself.
const NOT_PASSED_THROUGH: &[&str] = &[
    "SANDBOX_TOKEN",
    "SANDBOX_TOKEN_FILE",
    "PROVIDER_SECRET",
    "PROVIDER_SECRET_PREVIOUS",
    "COORDINATOR_URL",
    "SESSION_ID",
    "SANDBOX_ID",
    "WORKSPACE",
    "AGENT",
    "MEMORY_DIR",
    "REPO_CLONE_URL",
    "REPO_BRANCH",
    PASSTHROUGH_VAR,
];

/// Arguments whose variable may be set to the empty string on purpose.
const MAY_BE_EMPTY: &[&str] = &["attribution", "passthrough"];

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AgentKind {
    Dev,
    #[value(name = "opencode")]
    OpenCode,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Dev => "dev",
            AgentKind::OpenCode => "opencode",
        }
    }
}

/// Variables for the agent process alone, with their values (as read from the environment).
pub type AgentEnv = Vec<(String, OsString)>;

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
    /// Taken out of the bridge's own environment and given to the agent's processes only.
    pub agent_env: AgentEnv,
    /// What to clone into an empty workspace.
    pub repo: Option<CloneSource>,
    /// A warm sandbox's assignment file: until it appears, `coordinator_url`, `session_id`
    /// and `token` are empty ([`RunConfig::assign`] fills them).
    pub assignment: Option<PathBuf>,
    /// Where the agent's configuration goes and what it is filled with.
    pub agent_files: AgentFiles,
    /// Whom the agent's processes run as; `None`: the bridge's own user.
    pub agent_user: Option<crate::process::AgentUser>,
    /// The bridge's own folder (its journal, its git repository for pushes); `None`: the
    /// workspace's `.git`, which only does where the agent is the bridge's user.
    pub state_dir: Option<PathBuf>,
}

impl RunConfig {
    /// A warm sandbox's assignment, if the provider has written it: read, deleted, checked.
    /// `Ok(None)` while there is none.
    pub fn take_assignment(path: &std::path::Path) -> Result<Option<Assignment>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot read the assignment {}: {e}",
                    path.display()
                ))
            }
        };
        // A provider writes the file whole under a temporary name and renames it, so a file
        // that is there is complete.
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot delete the assignment {}: {e}", path.display()))?;
        let assignment: Assignment = serde_json::from_str(&text)
            .map_err(|e| format!("the assignment is not what the protocol says: {e}"))?;
        plain_id(&assignment.session_id)?;
        coordinator_url(&assignment.coordinator_url)?;
        if assignment.sandbox_token.is_empty()
            || !assignment
                .sandbox_token
                .chars()
                .all(|c| c.is_ascii_graphic())
        {
            return Err("the assignment holds no sandbox token".into());
        }
        Ok(Some(assignment))
    }

    /// The sandbox was claimed: from now on it is an ordinary sandbox of the session.
    pub fn assign(&mut self, assignment: Assignment) {
        self.coordinator_url = assignment.coordinator_url;
        self.session_id = assignment.session_id;
        self.token = Secret::new(assignment.sandbox_token);
        self.assignment = None;
    }
}

/// The agent's configuration (`agent_config`): the home it is written to, the memory folder,
/// the browser and the remote MCP servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentFiles {
    pub home: PathBuf,
    pub memory_dir: Option<PathBuf>,
    pub chromium: String,
    pub github_mcp_url: String,
    pub sentry_mcp_url: String,
    pub linear_mcp_url: String,
}

/// A repository to clone: its URL (never with credentials in it) and the branch to check out
/// (`None`: the remote's default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloneSource {
    pub url: String,
    pub branch: Option<String>,
}

/// `bridge credential <operation>`, as git runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialConfig {
    /// `get`, `store`, `erase`, or an operation of a later git, which is ignored.
    pub operation: String,
    /// The running `bridge run`'s relay socket.
    pub socket: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderConfig {
    pub listen: String,
    pub secret: Secret,
    /// The secret before a rotation, accepted too while the coordinator still signs with it.
    pub secret_previous: Option<Secret>,
    pub workspaces: PathBuf,
    pub agent: AgentKind,
    /// `None`: this executable.
    pub bridge_bin: Option<PathBuf>,
    pub allowed_coordinators: Vec<String>,
    /// The names bridges are told to keep for their agent.
    pub passthrough: Vec<String>,
    /// Those of them set here, handed to every bridge.
    pub agent_env: AgentEnv,
    /// The local git host's repositories: `<root>/<owner>/<name>.git`, bare.
    pub git_root: PathBuf,
    /// The user (a name, a uid, or `uid:gid`) the agents run as when the provider is root
    /// (`None`: `nobody`); bridges run as the provider's own user.
    pub agent_user: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Box<RunConfig>),
    Provider(Box<ProviderConfig>),
    Credential(CredentialConfig),
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

/// Names a shell would accept for a variable.
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Parser, Debug)]
#[command(
    name = "bridge",
    version,
    about = "The sandbox bridge: connects a coding agent to its session room; also the local sandbox provider",
    subcommand_required = true,
    arg_required_else_help = true,
    // A flag given twice takes the last value, as a later setting overrides an earlier one.
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

// Parsed once at start and taken apart at once.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Sub {
    /// Inside a sandbox: dial the session room and drive the agent, one prompt at a time.
    #[command(
        after_help = "The sandbox token comes from SANDBOX_TOKEN_FILE (--token-file), a file read and deleted at start; \
                      SANDBOX_TOKEN (required without it) in the environment is still accepted but deprecated."
    )]
    Run(RunArgs),
    /// The local sandbox provider for development: each sandbox a folder and a `bridge run`.
    #[command(
        after_help = "The signing secret comes only from the environment: PROVIDER_SECRET (required), \
                      and during a rotation PROVIDER_SECRET_PREVIOUS (also accepted)."
    )]
    Provider(ProviderArgs),
    /// git's credential helper in a workspace (`credential.helper`): asks the running `bridge
    /// run` over its socket, which asks the coordinator. Holds no secret itself.
    #[command(
        after_help = "git runs it with the operation last: `bridge credential --socket <PATH> get`. \
                      `store`, `erase` and unknown operations do nothing."
    )]
    Credential(CredentialArgs),
}

#[derive(Args, Debug)]
struct CredentialArgs {
    /// The relay socket of the bridge that configured the workspace.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// What git asks for: `get`, `store` or `erase`.
    #[arg(value_name = "OPERATION")]
    operation: String,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The coordinator's base URL (http://, https://, ws:// or wss://).
    #[arg(long = "url", env = "COORDINATOR_URL", value_name = "URL", value_parser = coordinator_url,
          required_unless_present = "assignment_file")]
    coordinator_url: Option<String>,
    /// The session the sandbox works for.
    #[arg(long = "session", env = "SESSION_ID", value_name = "ID", value_parser = plain_id,
          required_unless_present = "assignment_file")]
    session_id: Option<String>,
    /// A warm sandbox: the file its assignment (session, coordinator URL, sandbox token) will
    /// appear in when the sandbox is claimed. The agent starts meanwhile; the bridge reads and
    /// deletes the file, then dials the room. Instead of the session, URL and token.
    #[arg(long = "assignment-file", env = "SANDBOX_ASSIGNMENT_FILE", value_name = "PATH",
          conflicts_with_all = ["session_id", "coordinator_url", "token_file"])]
    assignment_file: Option<PathBuf>,
    /// This sandbox's id.
    #[arg(long = "sandbox", env = "SANDBOX_ID", value_name = "ID", value_parser = plain_id)]
    sandbox_id: String,
    /// A file holding the sandbox token (0600, written by the provider): read, then deleted,
    /// before anything else starts, so the agent finds the token in no file and no environment.
    #[arg(long = "token-file", env = "SANDBOX_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Declared only so that passing it is refused with a reason; see SANDBOX_TOKEN.
    #[arg(long = "token", env = "SANDBOX_TOKEN", hide = true, value_parser = secret)]
    token: Option<Secret>,
    /// The repository the agent works in.
    #[arg(long, env = "WORKSPACE", value_name = "DIR", default_value = ".")]
    workspace: PathBuf,
    /// The agent that works on the prompts.
    #[arg(long, env = "AGENT", value_enum, default_value_t = AgentKind::Dev)]
    agent: AgentKind,
    /// Added to the prompt author's name in the workspace's git identity; may be empty.
    #[arg(
        long,
        env = "GIT_ATTRIBUTION",
        value_name = "SUFFIX",
        default_value = " (agent)"
    )]
    attribution: String,
    /// Seconds between heartbeats to the room.
    #[arg(long = "heartbeat-secs", env = "HEARTBEAT_SECS", value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_secs: u64,
    /// The dev agent's pause between streamed words, in milliseconds.
    #[arg(long = "dev-delay-ms", env = "DEV_AGENT_DELAY_MS", value_name = "MS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(..=10_000))]
    dev_delay_ms: u64,
    /// The `opencode` executable to start.
    #[arg(
        long = "opencode-bin",
        env = "OPENCODE_BIN",
        value_name = "PATH",
        default_value = "opencode"
    )]
    opencode_bin: String,
    /// An OpenCode server already running (http://); the bridge then starts none.
    #[arg(long = "opencode-url", env = "OPENCODE_URL", value_name = "URL")]
    opencode_url: Option<String>,
    /// The model OpenCode is asked to use.
    #[arg(long = "opencode-model", env = "OPENCODE_MODEL", value_name = "PROVIDER/MODEL", value_parser = model)]
    opencode_model: Option<(String, String)>,
    /// The repository to clone (through the bridge's credential helper) when the workspace is
    /// empty; a URL without credentials.
    #[arg(long = "repo-url", env = "REPO_CLONE_URL", value_name = "URL", value_parser = clone_url)]
    repo_url: Option<String>,
    /// The branch to clone [default: the remote's default branch].
    #[arg(long = "repo-branch", env = "REPO_BRANCH", value_name = "BRANCH", value_parser = branch_name)]
    repo_branch: Option<String>,
    /// The provider's persistent folder of agent memories (one per repository and session
    /// owner); without it the memory server keeps its file in the sandbox alone.
    #[arg(long = "memory-dir", env = "MEMORY_DIR", value_name = "DIR")]
    memory_dir: Option<PathBuf>,
    /// The browser the playwright MCP server drives.
    #[arg(
        long = "chromium",
        env = "CHROMIUM_PATH",
        value_name = "PATH",
        default_value = "/usr/bin/chromium"
    )]
    chromium: String,
    /// The GitHub MCP server, used when `GITHUB_TOKEN` reaches the agent.
    #[arg(
        long = "github-mcp-url",
        env = "GITHUB_MCP_URL",
        value_name = "URL",
        default_value = "https://api.githubcopilot.com/mcp/"
    )]
    github_mcp_url: String,
    /// The Sentry MCP server, used when `SENTRY_ACCESS_TOKEN` reaches the agent.
    #[arg(
        long = "sentry-mcp-url",
        env = "SENTRY_MCP_URL",
        value_name = "URL",
        default_value = "https://mcp.sentry.dev/mcp"
    )]
    sentry_mcp_url: String,
    /// The Linear MCP server, used when `LINEAR_API_KEY` reaches the agent.
    #[arg(
        long = "linear-mcp-url",
        env = "LINEAR_MCP_URL",
        value_name = "URL",
        default_value = "https://mcp.linear.app/mcp"
    )]
    linear_mcp_url: String,
    /// The sandbox's home folder, where the agent's configuration is written.
    #[arg(long = "home", env = "HOME", value_name = "DIR", hide = true)]
    home: Option<PathBuf>,
    /// Run the agent's processes (the agent server, its tools, the dev agent's commands) as
    /// this unprivileged user (a name, a uid, or `uid:gid`); the bridge must run as root, and
    /// the workspace and HOME should be that user's [default: the bridge's own user].
    #[arg(long = "agent-user", env = "AGENT_USER", value_name = "USER", value_parser = agent_user)]
    agent_user: Option<crate::process::AgentUser>,
    /// The bridge's own folder, which the agent's user must not be able to read or change:
    /// the journal, and the repository pushes go out from. Required with --agent-user
    /// [default: the workspace's .git].
    #[arg(long = "state-dir", env = "BRIDGE_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    passthrough: Passthrough,
}

#[derive(Args, Debug)]
struct ProviderArgs {
    /// Where the provider API listens.
    #[arg(long, env = "PROVIDER_LISTEN", value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// The folder holding one workspace per sandbox, and the snapshots.
    #[arg(
        long,
        env = "PROVIDER_WORKSPACES",
        value_name = "DIR",
        default_value = ".wrangler/sandboxes"
    )]
    workspaces: PathBuf,
    /// The agent the sandboxes' bridges run.
    #[arg(long, env = "AGENT", value_enum, default_value_t = AgentKind::Dev)]
    agent: AgentKind,
    /// The bridge executable for sandboxes [default: this one].
    #[arg(long = "bridge-bin", env = "BRIDGE_BIN", value_name = "PATH")]
    bridge_bin: Option<PathBuf>,
    /// The local git host's repositories, served under /git/ on the listening port
    /// (`<DIR>/<owner>/<name>.git`, bare).
    #[arg(
        long = "git-root",
        env = "PROVIDER_GIT_ROOT",
        value_name = "DIR",
        default_value = ".wrangler/git"
    )]
    git_root: PathBuf,
    /// A coordinator bridges may be pointed at; `*` as the port allows any
    /// [default: http://127.0.0.1:* and http://localhost:*].
    #[arg(long = "allow-coordinator", env = "PROVIDER_ALLOWED_COORDINATORS", value_name = "URL",
          value_delimiter = ',', value_parser = trimmed)]
    allowed_coordinators: Vec<String>,
    /// Declared only so that passing it is refused with a reason; see PROVIDER_SECRET.
    #[arg(long = "secret", env = "PROVIDER_SECRET", hide = true, value_parser = secret)]
    secret: Option<Secret>,
    /// When the provider runs as root: run each sandbox's agent (its server, its tools, the dev
    /// agent's commands) as this unprivileged user (a name, a uid, or `uid:gid`), while the
    /// bridge stays the provider's user; ignored otherwise, where the agent is the provider's
    /// user [default as root: nobody].
    #[arg(long = "agent-user", env = "PROVIDER_AGENT_USER", value_name = "USER")]
    agent_user: Option<String>,
    /// Declared only so that passing it is refused with a reason; see PROVIDER_SECRET_PREVIOUS.
    #[arg(long = "secret-previous", env = "PROVIDER_SECRET_PREVIOUS", hide = true, value_parser = secret)]
    secret_previous: Option<Secret>,
    #[command(flatten)]
    passthrough: Passthrough,
}

#[derive(Args, Debug)]
struct Passthrough {
    /// Variables (comma-separated names) that reach the agent's processes and nothing else;
    /// the provider passes those it has to every bridge. Empty: none.
    #[arg(long = "env-passthrough", env = PASSTHROUGH_VAR, value_name = "NAMES",
          value_delimiter = ',', default_values = DEFAULT_PASSTHROUGH, value_parser = passthrough_name)]
    passthrough: Vec<String>,
}

impl Passthrough {
    fn names(self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self.passthrough {
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// The named variables that are set here, with their values.
fn present(names: &[String]) -> AgentEnv {
    names
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|value| (name.clone(), value)))
        .collect()
}

fn coordinator_url(value: &str) -> Result<String, String> {
    if ["http://", "https://", "ws://", "wss://"]
        .iter()
        .any(|scheme| value.starts_with(scheme))
    {
        Ok(value.to_string())
    } else {
        Err("the coordinator URL must start with http:// or https://".into())
    }
}

/// A clone URL must not carry credentials: they would land in the workspace's git config.
fn clone_url(value: &str) -> Result<String, String> {
    let authority = value
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""));
    if value.starts_with('-') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("not a URL".into())
    } else if authority.is_some_and(|authority| authority.contains('@')) {
        Err("the clone URL must not carry credentials; the credential helper provides them".into())
    } else {
        Ok(value.to_string())
    }
}

fn agent_user(value: &str) -> Result<crate::process::AgentUser, String> {
    crate::process::AgentUser::lookup(value)
}

fn branch_name(value: &str) -> Result<String, String> {
    if protocol::git::is_branch_name(value) {
        Ok(value.to_string())
    } else {
        Err("not a branch name git accepts".into())
    }
}

fn plain_id(value: &str) -> Result<String, String> {
    if is_plain_id(value) {
        Ok(value.to_string())
    } else {
        Err("an id may only contain letters, digits, '_', '-' and '.'".into())
    }
}

/// The token in `path`, which is deleted once read: whatever the agent runs later finds no
/// copy. A file that cannot be deleted is refused, as it would leave the token behind.
fn take_token_file(path: &std::path::Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    std::fs::remove_file(path)
        .map_err(|e| format!("cannot delete the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("the token file {} holds no token", path.display()));
    }
    Ok(Secret::new(token.to_string()))
}

fn secret(value: &str) -> Result<Secret, Infallible> {
    Ok(Secret::new(value.to_string()))
}

fn model(value: &str) -> Result<(String, String), String> {
    match value.split_once('/') {
        Some((provider, model)) if !provider.is_empty() && !model.is_empty() => {
            Ok((provider.to_string(), model.to_string()))
        }
        _ => Err("OPENCODE_MODEL must look like provider/model".into()),
    }
}

fn trimmed(value: &str) -> Result<String, Infallible> {
    Ok(value.trim().to_string())
}

/// A name for the passthrough list; the empty string (an empty list) is let through here.
fn passthrough_name(value: &str) -> Result<String, String> {
    let name = value.trim();
    if NOT_PASSED_THROUGH.contains(&name) {
        return Err(format!("{name} is never passed through to the agent"));
    }
    if !name.is_empty() && !is_env_name(name) {
        return Err("not a variable name".into());
    }
    Ok(name.to_string())
}

/// A value that must come from the environment: passing it as a flag is refused.
fn from_environment(
    value: Option<Secret>,
    matches: Option<&ArgMatches>,
    id: &str,
    variable: &str,
    what: &str,
) -> Result<Secret, (ErrorKind, String)> {
    match (value, matches.and_then(|m| m.value_source(id))) {
        (Some(_), Some(ValueSource::CommandLine)) => Err((
            ErrorKind::ArgumentConflict,
            format!("{what} is read only from the {variable} environment variable"),
        )),
        (Some(value), _) => Ok(value),
        (None, _) => Err((
            ErrorKind::MissingRequiredArgument,
            format!("{variable} is required in the environment"),
        )),
    }
}

impl RunArgs {
    fn into_config(self, matches: Option<&ArgMatches>) -> Result<RunConfig, (ErrorKind, String)> {
        let from_env = match from_environment(
            self.token,
            matches,
            "token",
            "SANDBOX_TOKEN",
            "the sandbox token",
        ) {
            Ok(token) => Some(token),
            Err((ErrorKind::MissingRequiredArgument, _)) => None,
            Err(refusal) => return Err(refusal),
        };
        let token = match (self.token_file, from_env) {
            // A warm sandbox gets its token with its assignment.
            _ if self.assignment_file.is_some() => Secret::new(String::new()),
            (Some(path), _) => {
                take_token_file(&path).map_err(|m| (ErrorKind::ValueValidation, m))?
            }
            (None, Some(token)) => token,
            (None, None) => return Err((
                ErrorKind::MissingRequiredArgument,
                "SANDBOX_TOKEN_FILE (or, deprecated, SANDBOX_TOKEN) is required in the environment"
                    .into(),
            )),
        };
        if self.agent_user.is_some() {
            if !crate::process::is_root() {
                return Err((
                    ErrorKind::ValueValidation,
                    "AGENT_USER needs the bridge to run as root".into(),
                ));
            }
            if self.state_dir.is_none() {
                return Err((
                    ErrorKind::MissingRequiredArgument,
                    "AGENT_USER needs BRIDGE_STATE_DIR: the journal must be out of the agent's reach".into(),
                ));
            }
        }
        Ok(RunConfig {
            coordinator_url: self.coordinator_url.unwrap_or_default(),
            session_id: self.session_id.unwrap_or_default(),
            assignment: self.assignment_file,
            sandbox_id: self.sandbox_id,
            token,
            workspace: self.workspace,
            agent: self.agent,
            attribution: self.attribution,
            heartbeat: Duration::from_secs(self.heartbeat_secs),
            dev_delay: Duration::from_millis(self.dev_delay_ms),
            opencode: OpenCodeConfig {
                bin: self.opencode_bin,
                url: self.opencode_url,
                model: self.opencode_model,
            },
            agent_env: present(&self.passthrough.names()),
            agent_files: AgentFiles {
                home: self
                    .home
                    .unwrap_or_else(|| std::env::temp_dir().join("agent-home")),
                memory_dir: self.memory_dir,
                chromium: self.chromium,
                github_mcp_url: self.github_mcp_url,
                sentry_mcp_url: self.sentry_mcp_url,
                linear_mcp_url: self.linear_mcp_url,
            },
            repo: self.repo_url.map(|url| CloneSource {
                url,
                branch: self.repo_branch,
            }),
            agent_user: self.agent_user,
            state_dir: self.state_dir,
        })
    }
}

impl ProviderArgs {
    fn into_config(
        self,
        matches: Option<&ArgMatches>,
    ) -> Result<ProviderConfig, (ErrorKind, String)> {
        let secret = from_environment(
            self.secret,
            matches,
            "secret",
            "PROVIDER_SECRET",
            "the provider secret",
        )?;
        let secret_previous = match from_environment(
            self.secret_previous,
            matches,
            "secret_previous",
            "PROVIDER_SECRET_PREVIOUS",
            "the previous provider secret",
        ) {
            Ok(previous) => Some(previous),
            Err((ErrorKind::MissingRequiredArgument, _)) => None,
            Err(refusal) => return Err(refusal),
        };
        let mut allowed: Vec<String> = self
            .allowed_coordinators
            .into_iter()
            .filter(|pattern| !pattern.is_empty())
            .collect();
        if allowed.is_empty() {
            allowed = vec!["http://127.0.0.1:*".into(), "http://localhost:*".into()];
        }
        let passthrough = self.passthrough.names();
        Ok(ProviderConfig {
            listen: self.listen,
            secret,
            secret_previous,
            workspaces: self.workspaces,
            agent: self.agent,
            bridge_bin: self.bridge_bin,
            allowed_coordinators: allowed,
            agent_env: present(&passthrough),
            passthrough,
            git_root: self.git_root,
            agent_user: self.agent_user,
        })
    }
}

/// `args` with the program name first, as `std::env::args_os()` gives them. `Err` is clap's:
/// `exit()` prints it (help and version on stdout) and exits with 0 for those, 2 otherwise.
pub fn parse<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_with(Cli::command(), args, &|arg| {
        !MAY_BE_EMPTY.contains(&arg.get_id().as_str())
            && arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|value| value.is_empty())
    })
}

/// Parses with the environment variables of the arguments `ignore_env` picks left unread.
fn parse_with<I, T>(
    cmd: clap::Command,
    args: I,
    ignore_env: &dyn Fn(&clap::Arg) -> bool,
) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = without_env(cmd, ignore_env);
    let matches = cmd.try_get_matches_from_mut(args)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    let sub_matches = matches.subcommand().map(|(_, m)| m);
    let (name, result) = match cli.command {
        Sub::Run(args) => (
            "run",
            args.into_config(sub_matches)
                .map(|c| Command::Run(Box::new(c))),
        ),
        Sub::Provider(args) => (
            "provider",
            args.into_config(sub_matches)
                .map(|c| Command::Provider(Box::new(c))),
        ),
        Sub::Credential(args) => (
            "credential",
            Ok(Command::Credential(CredentialConfig {
                operation: args.operation,
                socket: args.socket,
            })),
        ),
    };
    result.map_err(|(kind, message)| match cmd.find_subcommand_mut(name) {
        Some(sub) => sub.error(kind, message),
        None => cmd.error(kind, message),
    })
}

/// The declaration as parsed: the arguments `ignore_env` picks read no variable, and help
/// names the variables without showing their values.
fn without_env(cmd: clap::Command, ignore_env: &dyn Fn(&clap::Arg) -> bool) -> clap::Command {
    cmd.mut_subcommands(|sub| {
        sub.mut_args(|arg| {
            let arg = arg.hide_env_values(true);
            if ignore_env(&arg) {
                arg.env(None::<&'static str>)
            } else {
                arg
            }
        })
    })
}

#[cfg(test)]
mod tests {
    //! The command line alone: these parse with every environment variable ignored, so the
    //! machine's environment cannot change them. The variables are checked on the real
    //! executable in `tests/cli.rs`.
    use super::*;

    fn parse_flags(args: &[&str]) -> Result<Command, clap::Error> {
        let args = std::iter::once("bridge").chain(args.iter().copied());
        parse_with(Cli::command(), args, &|_| true)
    }

    /// What a refusal says, for a command line that should be refused.
    fn refusal(args: &[&str]) -> String {
        match parse_flags(args) {
            Err(e) => e.to_string(),
            Ok(command) => panic!("{args:?} should be refused, got {command:?}"),
        }
    }

    /// Parses with the secrets given as defaults: they must come from the environment, which
    /// these tests ignore, and a default is not the command line.
    fn parse_with_secrets(args: &[&str]) -> Result<Command, clap::Error> {
        let cmd = Cli::command()
            .mut_subcommand("run", |sub| {
                sub.mut_arg("token", |arg| arg.default_value("tok"))
            })
            .mut_subcommand("provider", |sub| {
                sub.mut_arg("secret", |arg| arg.default_value("s"))
            });
        let args = std::iter::once("bridge").chain(args.iter().copied());
        parse_with(cmd, args, &|_| true)
    }

    fn run_config(args: &[&str]) -> RunConfig {
        match parse_with_secrets(args) {
            Ok(Command::Run(config)) => *config,
            other => panic!("expected a run config, got {other:?}"),
        }
    }

    fn provider_config(args: &[&str]) -> ProviderConfig {
        match parse_with_secrets(args) {
            Ok(Command::Provider(config)) => *config,
            other => panic!("expected a provider config, got {other:?}"),
        }
    }

    #[test]
    fn clap_accepts_the_declaration() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults() {
        let config = run_config(&[
            "run",
            "--url",
            "http://127.0.0.1:8787",
            "--session=ses_1",
            "--sandbox",
            "sbx_1",
        ]);
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
        assert_eq!(config.opencode.url, None);
        assert_eq!(config.opencode.model, None);
        assert_eq!(config.repo, None);
        assert!(!format!("{config:?}").contains("tok\""));
    }

    #[test]
    fn run_from_every_flag() {
        let config = run_config(&[
            "run",
            "--url=wss://c.example",
            "--session=s",
            "--sandbox=b",
            "--workspace=/w",
            "--agent=opencode",
            "--attribution=",
            "--heartbeat-secs=5",
            "--dev-delay-ms=0",
            "--opencode-bin=/bin/oc",
            "--opencode-url=http://127.0.0.1:4096",
            "--opencode-model=stub/stub-model",
            "--repo-url=http://127.0.0.1:8790/git/acme/demo.git",
            "--repo-branch=main",
        ]);
        assert_eq!(config.workspace, PathBuf::from("/w"));
        assert_eq!(config.agent, AgentKind::OpenCode);
        assert_eq!(config.attribution, "");
        assert_eq!(config.heartbeat, Duration::from_secs(5));
        assert_eq!(config.dev_delay, Duration::ZERO);
        assert_eq!(config.opencode.bin, "/bin/oc");
        assert_eq!(
            config.opencode.url.as_deref(),
            Some("http://127.0.0.1:4096")
        );
        assert_eq!(
            config.opencode.model,
            Some(("stub".into(), "stub-model".into()))
        );
        assert_eq!(
            config.repo,
            Some(CloneSource {
                url: "http://127.0.0.1:8790/git/acme/demo.git".into(),
                branch: Some("main".into()),
            })
        );
    }

    #[test]
    fn run_needs_the_token_from_the_environment() {
        let base = [
            "run",
            "--url",
            "http://x",
            "--session",
            "s",
            "--sandbox",
            "b",
        ];
        assert!(refusal(&base).contains(
            "SANDBOX_TOKEN_FILE (or, deprecated, SANDBOX_TOKEN) is required in the environment"
        ));
        let with_flag = [&base[..], &["--token", "t"]].concat();
        assert!(refusal(&with_flag).contains("read only from the SANDBOX_TOKEN"));
        let with_inline_flag = [&base[..], &["--token=t"]].concat();
        assert!(refusal(&with_inline_flag).contains("read only from the SANDBOX_TOKEN"));
    }

    #[test]
    fn the_token_file_is_read_and_deleted() {
        let dir = std::env::temp_dir().join(format!("bridge-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "sbx1.the-token\n").unwrap();
        let base = [
            "run",
            "--url",
            "http://x",
            "--session",
            "s",
            "--sandbox",
            "b",
        ];
        let with_file = [&base[..], &["--token-file", file.to_str().unwrap()]].concat();
        match parse_flags(&with_file) {
            Ok(Command::Run(config)) => assert_eq!(config.token.expose(), "sbx1.the-token"),
            other => panic!("{other:?}"),
        }
        assert!(!file.exists(), "the token file is deleted once read");
        // A missing or empty file is refused with the reason.
        assert!(refusal(&with_file).contains("cannot read the token file"));
        std::fs::write(&file, "\n").unwrap();
        assert!(refusal(&with_file).contains("holds no token"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_warm_bridge_starts_without_a_session_and_takes_its_assignment_once() {
        let dir =
            std::env::temp_dir().join(format!("bridge-assignment-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("assignment");
        let args = [
            "run",
            "--sandbox",
            "b",
            "--assignment-file",
            file.to_str().unwrap(),
        ];
        let mut config = match parse_flags(&args) {
            Ok(Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (config.session_id.as_str(), config.coordinator_url.as_str()),
            ("", "")
        );
        assert_eq!(config.token.expose(), "");
        // Nothing yet; then the provider's file, read and deleted.
        assert_eq!(RunConfig::take_assignment(&file), Ok(None));
        std::fs::write(
            &file,
            r#"{"session_id":"ses_1","coordinator_url":"http://127.0.0.1:8787","sandbox_token":"sbx1.t"}"#,
        )
        .unwrap();
        let assignment = RunConfig::take_assignment(&file).unwrap().unwrap();
        assert!(!file.exists(), "the assignment is deleted once read");
        config.assign(assignment);
        assert_eq!(config.session_id, "ses_1");
        assert_eq!(config.coordinator_url, "http://127.0.0.1:8787");
        assert_eq!(config.token.expose(), "sbx1.t");
        assert_eq!(config.assignment, None);
        for bad in [
            "not json",
            r#"{"session_id":"../x","coordinator_url":"http://x","sandbox_token":"t"}"#,
            r#"{"session_id":"s","coordinator_url":"ftp://x","sandbox_token":"t"}"#,
            r#"{"session_id":"s","coordinator_url":"http://x","sandbox_token":""}"#,
        ] {
            std::fs::write(&file, bad).unwrap();
            assert!(RunConfig::take_assignment(&file).is_err(), "{bad}");
        }
        // A warm bridge is given no session, URL or token file besides.
        let both = [&args[..], &["--session", "s"]].concat();
        assert!(parse_flags(&both).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn run_refuses_bad_values_by_name() {
        let check = |extra: &[&str], needle: &str| {
            let mut args = vec![
                "run",
                "--url",
                "http://x",
                "--session",
                "s",
                "--sandbox",
                "b",
            ];
            args.extend_from_slice(extra);
            let text = refusal(&args);
            assert!(text.contains(needle), "{text:?} should mention {needle:?}");
        };
        check(&["--agent", "gpt"], "possible values: dev, opencode");
        check(&["--url", "ftp://x"], "http://");
        check(&["--session", "../x"], "--session");
        check(&["--heartbeat-secs", "0"], "--heartbeat-secs");
        check(&["--dev-delay-ms", "10001"], "--dev-delay-ms");
        check(&["--opencode-model", "x"], "provider/model");
        check(&["--bogus", "1"], "--bogus");
        check(&["--url"], "a value is required");
        check(
            &["--env-passthrough", "SANDBOX_TOKEN"],
            "never passed through",
        );
        check(&["--env-passthrough", "A-B"], "not a variable name");
        check(
            &["--env-passthrough", "REPO_CLONE_URL"],
            "never passed through",
        );
        check(
            &[
                "--repo-url",
                "https://x-access-token:ghs_1@github.com/a/b.git",
            ],
            "must not carry credentials",
        );
        check(&["--repo-url=-uhack"], "not a URL");
        check(&["--repo-branch", "a..b"], "not a branch name");
    }

    #[test]
    fn usage_errors_exit_with_2_and_help_with_0() {
        assert_eq!(parse_flags(&["run"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse_flags(&["nonsense"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse_flags(&["--help"]).unwrap_err().exit_code(), 0);
        assert_eq!(parse_flags(&["--version"]).unwrap_err().exit_code(), 0);
        let help = parse_flags(&["run", "--help"]).unwrap_err().to_string();
        for flag in [
            "--url",
            "--session",
            "--sandbox",
            "--heartbeat-secs",
            "--env-passthrough",
        ] {
            assert!(help.contains(flag), "{flag} in {help}");
        }
        assert!(help.contains("SANDBOX_TOKEN_FILE (--token-file)"), "{help}");
        assert!(!help.contains("--token <"), "{help}");
    }

    #[test]
    fn provider_defaults() {
        let config = provider_config(&["provider", "--listen", "127.0.0.1:0"]);
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.workspaces, PathBuf::from(".wrangler/sandboxes"));
        assert_eq!(config.agent, AgentKind::Dev);
        assert_eq!(config.bridge_bin, None);
        assert_eq!(
            config.allowed_coordinators,
            ["http://127.0.0.1:*", "http://localhost:*"]
        );
        assert_eq!(config.passthrough, DEFAULT_PASSTHROUGH);
        assert_eq!(config.secret.expose(), "s");
        assert_eq!(config.secret_previous, None);
        assert_eq!(config.agent_user, None);
        assert_eq!(config.git_root, PathBuf::from(".wrangler/git"));
        assert!(!format!("{config:?}").contains("\"s\""));
    }

    #[test]
    fn credential_takes_the_operation_last_and_needs_the_socket() {
        let check = |args: &[&str], operation: &str| match parse_flags(args) {
            Ok(Command::Credential(config)) => {
                assert_eq!(config.operation, operation);
                assert_eq!(config.socket, PathBuf::from("/run/b/s"));
            }
            other => panic!("{args:?}: {other:?}"),
        };
        check(&["credential", "--socket", "/run/b/s", "get"], "get");
        check(&["credential", "--socket=/run/b/s", "store"], "store");
        check(
            &["credential", "--socket", "/run/b/s", "capability"],
            "capability",
        );
        assert!(refusal(&["credential", "get"]).contains("--socket"));
        assert!(refusal(&["credential", "--socket", "/s"]).contains("OPERATION"));
    }

    #[test]
    fn provider_allowlist_and_passthrough_from_flags() {
        let config = provider_config(&[
            "provider",
            "--allow-coordinator",
            "https://a",
            "--allow-coordinator=https://b, https://c",
            "--env-passthrough",
            "MY_KEY,OTHER_KEY,MY_KEY",
        ]);
        assert_eq!(
            config.allowed_coordinators,
            ["https://a", "https://b", "https://c"]
        );
        assert_eq!(config.passthrough, ["MY_KEY", "OTHER_KEY"]);
        assert_eq!(config.listen, DEFAULT_LISTEN);
        let config = provider_config(&["provider", "--env-passthrough", ""]);
        assert!(config.passthrough.is_empty());
    }

    #[test]
    fn provider_refuses_the_secret_as_a_flag() {
        let text = refusal(&["provider", "--secret", "s"]);
        assert!(
            text.contains("read only from the PROVIDER_SECRET"),
            "{text}"
        );
        assert!(!text.contains("'s'"), "{text}");
        assert!(refusal(&["provider"]).contains("PROVIDER_SECRET is required"));
        let text = match parse_with_secrets(&["provider", "--secret-previous", "old"]) {
            Err(e) => e.to_string(),
            Ok(command) => panic!("the previous secret as a flag is refused, not {command:?}"),
        };
        assert!(
            text.contains("read only from the PROVIDER_SECRET_PREVIOUS"),
            "{text}"
        );
    }

    #[test]
    fn plain_ids() {
        for ok in ["sbx_1", "a.b-c", "X"] {
            assert!(is_plain_id(ok), "{ok}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", &"x".repeat(129)] {
            assert!(!is_plain_id(bad), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        for ok in ["NPM_TOKEN", "_X1"] {
            assert!(is_env_name(ok), "{ok}");
        }
        for bad in ["1X", "A-B", "", "A=B"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }
}
