//! The `bridge` executable: parses the command line and hands over to `run` or `provider`.

use bridge::agent::{dev::DevAgent, opencode::OpenCodeAgent, Agent};
use bridge::config::{self, AgentKind, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = match config::parse(&args, &|name| std::env::var(name).ok()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("bridge: {e}\n\n{}", config::USAGE);
            return ExitCode::from(2);
        }
    };
    let code = match command {
        Command::Help => {
            println!("{}", config::USAGE);
            0
        }
        Command::Version => {
            println!("bridge {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Run(config) => {
            // Read once into the configuration; commands the agent runs must not find it.
            // Still single-threaded here, so changing the environment is sound.
            std::env::remove_var("SANDBOX_TOKEN");
            run(*config)
        }
        Command::Provider(config) => {
            runtime().map_or(1, |rt| rt.block_on(bridge::provider::serve(*config)))
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
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
        AgentKind::Dev => Box::new(DevAgent::new(config.workspace.clone(), config.dev_delay)),
        AgentKind::OpenCode => Box::new(OpenCodeAgent::new(
            config.opencode.clone(),
            config.workspace.clone(),
        )),
    };
    runtime().map_or(1, |rt| rt.block_on(bridge::run::run(config, agent)))
}
