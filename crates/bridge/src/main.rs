//! The `bridge` executable: parses the command line and hands over to `run`, `provider` or
//! `credential`.

use bridge::agent::{dev::DevAgent, opencode::OpenCodeAgent, Agent};
use bridge::config::{self, AgentKind, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any secret is read: a process of the same user (the agent's, where it runs as the
    // bridge's user) can then read neither this one's memory nor its environment in /proc.
    bridge::process::forbid_dumps();
    let command = match config::parse(std::env::args_os()) {
        Ok(command) => command,
        // Help and version (exit 0) or bad usage (exit 2), printed by clap.
        Err(e) => e.exit(),
    };
    let code = match command {
        Command::Run(config) => {
            // Read once into the configuration: commands the bridge runs must not find the
            // token, and only the agent's processes get the passthrough variables.
            forget(["SANDBOX_TOKEN", "SANDBOX_TOKEN_FILE"], &config.agent_env);
            run(*config)
        }
        Command::Provider(config) => {
            // The signing secret stays in this process; the passthrough variables go to
            // bridges explicitly, and to none of the provider's own commands (git, cp).
            forget(
                ["PROVIDER_SECRET", "PROVIDER_SECRET_PREVIOUS"],
                &config.agent_env,
            );
            runtime().map_or(1, |rt| rt.block_on(bridge::provider::serve(*config)))
        }
        // Short-lived and synchronous: git waits for it.
        Command::Credential(config) => bridge::credentials::helper::main(config),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Takes variables out of this process's environment, so children do not inherit them.
fn forget<const N: usize>(names: [&str; N], agent_env: &config::AgentEnv) {
    // Still single-threaded here (no runtime yet), so changing the environment is sound.
    for name in names
        .iter()
        .copied()
        .chain(agent_env.iter().map(|(n, _)| n.as_str()))
    {
        std::env::remove_var(name);
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    // Only one crypto provider is compiled in; installing it explicitly keeps wss working
    // should another dependency ever enable a second one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("bridge: cannot start the runtime: {e}");
            None
        }
    }
}

fn run(mut config: config::RunConfig) -> i32 {
    config.workspace = match config.workspace.canonicalize() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("bridge: workspace {}: {e}", config.workspace.display());
            return 2;
        }
    };
    let agent: Box<dyn Agent> = match config.agent {
        AgentKind::Dev => Box::new(DevAgent::new(
            config.workspace.clone(),
            config.dev_delay,
            config.agent_env.clone(),
            config.agent_user,
        )),
        AgentKind::OpenCode => Box::new(
            OpenCodeAgent::new(
                config.opencode.clone(),
                config.workspace.clone(),
                config.agent_env.clone(),
                config.agent_files.clone(),
            )
            .run_as(config.agent_user),
        ),
    };
    runtime().map_or(1, |rt| rt.block_on(bridge::run::run(config, agent)))
}
