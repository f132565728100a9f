//! The command line of the real executable, with a cleared environment: what the environment
//! variables do (the unit tests in `config.rs` ignore them), the exit codes, and `--help`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

/// Runs `bridge args…` with only `PATH` and `env` in its environment.
fn bridge(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the bridge runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exits with 2 and says `needle` on stderr.
fn check_usage_error(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let output = bridge(args, env);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {text}");
    assert!(text.contains(needle), "{text:?} should mention {needle:?}");
}

/// A coordinator that answers every connection with `410 Gone`, for as many connections as
/// given; its URL.
fn gone_room(n_connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n_connections) {
            let Ok(mut stream) = stream else { return };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n");
        }
    });
    url
}

/// A folder of its own for a test's bridge to work in (it may leave its journal there).
struct Workspace(std::path::PathBuf);

impl Workspace {
    fn new(name: &str) -> Workspace {
        let dir = std::env::temp_dir().join(format!("bridge-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Workspace(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const RUN_ENV: [(&str, &str); 3] = [
    ("SESSION_ID", "ses_1"),
    ("SANDBOX_ID", "sbx_1"),
    ("SANDBOX_TOKEN", "cli-test-token"),
];

#[test]
fn run_takes_every_setting_from_the_environment() {
    let url = gone_room(1);
    let workspace = Workspace::new("every-setting");
    let mut env = RUN_ENV.to_vec();
    env.extend([
        ("COORDINATOR_URL", url.as_str()),
        ("WORKSPACE", workspace.path()),
        ("AGENT", "dev"),
        ("HEARTBEAT_SECS", "5"),
        ("DEV_AGENT_DELAY_MS", "0"),
    ]);
    let output = bridge(&["run"], &env);
    let text = stderr(&output);
    // Refused for good by the room: exit 3, not a usage error.
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(
        text.contains("/v1/sessions/ses_1/sandbox as sandbox sbx_1"),
        "{text}"
    );
    assert!(!text.contains("cli-test-token"), "{text}");
}

#[test]
fn empty_variables_count_as_unset() {
    let url = gone_room(1);
    let workspace = Workspace::new("empty-variables");
    let mut env = RUN_ENV.to_vec();
    env.extend([
        ("COORDINATOR_URL", url.as_str()),
        ("WORKSPACE", workspace.path()),
        ("AGENT", ""),
        ("HEARTBEAT_SECS", ""),
        ("OPENCODE_MODEL", ""),
        ("GIT_ATTRIBUTION", ""),
    ]);
    let output = bridge(&["run"], &env);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}

#[test]
fn bad_values_in_variables_are_usage_errors() {
    let mut env = RUN_ENV.to_vec();
    env.push(("COORDINATOR_URL", "http://127.0.0.1:9"));
    let with = |extra: (&'static str, &'static str)| {
        let mut env = env.clone();
        env.push(extra);
        env
    };
    check_usage_error(&["run"], &with(("HEARTBEAT_SECS", "0")), "--heartbeat-secs");
    check_usage_error(
        &["run"],
        &with(("AGENT", "gpt")),
        "possible values: dev, opencode",
    );
    check_usage_error(&["run"], &with(("OPENCODE_MODEL", "x")), "provider/model");
    check_usage_error(&["run"], &with(("SESSION_ID", "../x")), "--session");
    check_usage_error(
        &["run"],
        &with(("SANDBOX_ENV_PASSTHROUGH", "SANDBOX_TOKEN")),
        "never passed through",
    );
    check_usage_error(
        &["run"],
        &[
            ("SESSION_ID", "s"),
            ("SANDBOX_ID", "b"),
            ("SANDBOX_TOKEN", "t"),
            ("COORDINATOR_URL", "ftp://x"),
        ],
        "http://",
    );
}

#[test]
fn the_secrets_come_only_from_the_environment() {
    let args = [
        "run",
        "--url",
        "http://127.0.0.1:9",
        "--session",
        "s",
        "--sandbox",
        "b",
    ];
    check_usage_error(
        &args,
        &[],
        "SANDBOX_TOKEN_FILE (or, deprecated, SANDBOX_TOKEN) is required in the environment",
    );
    let with_token = [&args[..], &["--token", "flag-token"]].concat();
    let output = bridge(&with_token, &[]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("read only from the SANDBOX_TOKEN"), "{text}");
    assert!(!text.contains("flag-token"), "{text}");
    check_usage_error(
        &["provider"],
        &[],
        "PROVIDER_SECRET is required in the environment",
    );
    check_usage_error(
        &["provider", "--secret", "s"],
        &[],
        "read only from the PROVIDER_SECRET",
    );
}

#[test]
fn help_lists_the_flags_with_their_variables() {
    let output = bridge(
        &["run", "--help"],
        &[("COORDINATOR_URL", "http://shown-nowhere")],
    );
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, variable) in [
        ("--url", "COORDINATOR_URL"),
        ("--session", "SESSION_ID"),
        ("--sandbox", "SANDBOX_ID"),
        ("--workspace", "WORKSPACE"),
        ("--agent", "AGENT"),
        ("--attribution", "GIT_ATTRIBUTION"),
        ("--heartbeat-secs", "HEARTBEAT_SECS"),
        ("--dev-delay-ms", "DEV_AGENT_DELAY_MS"),
        ("--opencode-bin", "OPENCODE_BIN"),
        ("--opencode-url", "OPENCODE_URL"),
        ("--opencode-model", "OPENCODE_MODEL"),
        ("--env-passthrough", "SANDBOX_ENV_PASSTHROUGH"),
        ("--token-file", "SANDBOX_TOKEN_FILE"),
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
        assert!(
            help.contains(&format!("[env: {variable}]")),
            "{variable} in {help}"
        );
    }
    assert!(!help.contains("shown-nowhere"), "{help}");
    let output = bridge(&["provider", "--help"], &[]);
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, variable) in [
        ("--listen", "PROVIDER_LISTEN"),
        ("--workspaces", "PROVIDER_WORKSPACES"),
        ("--bridge-bin", "BRIDGE_BIN"),
        ("--allow-coordinator", "PROVIDER_ALLOWED_COORDINATORS"),
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
        assert!(
            help.contains(&format!("[env: {variable}]")),
            "{variable} in {help}"
        );
    }
    let output = bridge(&["--version"], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("bridge "));
}

#[test]
fn no_command_or_an_unknown_one_is_a_usage_error() {
    check_usage_error(&[], &[], "Usage: bridge <COMMAND>");
    check_usage_error(&["nonsense"], &[], "nonsense");
}
