//! The sandbox bridge: runs inside a sandbox, dials the session room, drives a coding agent
//! and streams its work back (PROTOCOL.md section 3); also the local sandbox provider used in
//! development (PROTOCOL.md section 5).
//!
//! Layout:
//! - [`config`]: command line and environment → the two configurations (clap).
//! - [`error`]: the one error type.
//! - [`run`]: the connection loop of `bridge run`: dial, reconnect, route frames.
//! - [`worker`]: runs prompts one at a time on the agent.
//! - [`outbox`]: frames waiting to be sent or acknowledged (pure).
//! - [`scrub`]: the sandbox token and git passwords hidden in every frame, the last line.
//! - [`journal`]: the outbox and prompt state on disk, for a bridge started again.
//! - [`prompts`]: which prompts are queued, running or done (pure).
//! - [`backoff`]: reconnect delays (pure).
//! - [`budget`]: how many `error` frames may go out a minute (pure).
//! - [`agent`]: the agent trait and its events; one file per agent.
//! - [`agent_config`]: the agent's `AGENTS.md` and `opencode.json` (MCP servers), and its memory file.
//! - [`credentials`]: `bridge credential`, git's credential helper, and the relay in `bridge run`
//!   that asks the coordinator for each credential.
//! - [`repo`]: the workspace's repository at start: the clone, the helper's configuration.
//! - [`publish`]: a prompt's changes committed and pushed to the session branch.
//! - [`provider`]: the local provider's HTTP server (hyper), its sandboxes and its git host.
//! - [`git`], [`workspace`], [`process`]: git commands, paths inside the workspace, child process groups.
//! - [`http`]: the HTTP client set-up (rustls, the webpki roots).
//! - [`ids`] and [`log`]: random ids and log lines.
//!
//! Architecture invariant: the sandbox token is read once at start from a file the provider
//! wrote (deleted once read; `SANDBOX_TOKEN` in the environment is the deprecated fallback),
//! kept out of every child process's environment, hidden in every frame, and never printed;
//! the bridge is not dumpable, so a process of its user cannot read its memory; git gets credentials only through
//! the credential helper, one repository at a time, and none is written to disk. The passthrough variables
//! (`SANDBOX_ENV_PASSTHROUGH`) are taken out of the environment too and given to the agent's
//! processes alone.

pub mod agent;
pub mod agent_config;
pub mod backoff;
pub mod budget;
pub mod config;
pub mod credentials;
pub mod error;
pub mod git;
pub mod http;
pub mod ids;
pub mod journal;
#[macro_use]
pub mod log;
pub mod outbox;
pub mod process;
pub mod prompts;
pub mod provider;
pub mod publish;
pub mod repo;
pub mod run;
pub mod scrub;
pub mod worker;
pub mod workspace;
