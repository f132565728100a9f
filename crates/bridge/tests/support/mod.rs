//! What the slow tests share: a real `bridge provider` on a free port, ended with its bridges
//! when dropped, its log lines, and signed calls to its API.

#![allow(dead_code)] // each test file uses its own part of this

use protocol::provider::{sign, SIGNATURE_HEADER};
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SECRET: &str = "test-provider-secret";
/// Every wait in these tests ends by this, so a broken build fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// The model-key names a provider passes by default; removed from its environment unless a
/// test sets them, so the machine's own keys change nothing.
const DEFAULT_PASSTHROUGH: [&str; 9] = bridge::config::DEFAULT_PASSTHROUGH;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A folder under the system's temporary folder that no other test uses.
pub fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "bridge-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

/// A nonce no other request of this test process uses.
pub fn fresh_nonce() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("test-{}-{n:012}-{}", std::process::id(), now_ms())
}

/// A running `bridge provider`; ended (with its bridges) when dropped.
pub struct Provider {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    pub workspaces: PathBuf,
    lines: mpsc::Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Provider {
    pub fn start() -> Provider {
        Provider::start_with(&[])
    }

    /// A provider with `env` added to its environment.
    pub fn start_with(env: &[(&str, &str)]) -> Provider {
        Provider::start_with_args::<&str>(&[], env)
    }

    /// A provider with `args` after its own, and `env` added to its environment.
    pub fn start_with_args<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Provider {
        let workspaces = scratch("provider-test");
        let mut command = Command::new(env!("CARGO_BIN_EXE_bridge"));
        command
            .args(["provider", "--listen", "127.0.0.1:0", "--workspaces"])
            .arg(&workspaces)
            .args(args)
            .env("PROVIDER_SECRET", SECRET)
            .env("DEV_AGENT_DELAY_MS", "0")
            .env("HEARTBEAT_SECS", "1")
            .env_remove("PROVIDER_ALLOWED_COORDINATORS")
            .env_remove("PROVIDER_GIT_ROOT")
            .env_remove("AGENT")
            .env_remove("SANDBOX_ENV_PASSTHROUGH");
        for name in DEFAULT_PASSTHROUGH {
            command.env_remove(name);
        }
        if !args.iter().any(|a| a.as_ref() == "--git-root") {
            command
                .arg("--git-root")
                .arg(workspaces.with_extension("git"));
        }
        let mut child = command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bridge provider starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("provider> {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut provider = Provider {
            child,
            base: String::new(),
            http: bridge::http::client_builder().unwrap().build().unwrap(),
            workspaces,
            lines,
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let line = provider.wait_for_log("local provider listening on ");
        assert!(
            !line.contains("http://"),
            "the start line must not look like a URL: {line}"
        );
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address");
        assert!(line.ends_with("(agent dev)"), "{line}");
        provider.base = format!("http://{addr}");
        provider
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Waits for a log line containing `needle` (seen before or arriving now).
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
        {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.lock().unwrap().push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}"),
            }
        }
    }

    /// Every log line so far.
    pub fn log(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.lock().unwrap().push(line);
        }
        self.seen.lock().unwrap().clone()
    }

    /// No log line so far carries anything of a sandbox token.
    pub fn assert_no_token_logged(&mut self) {
        let seen = self.log();
        assert!(!seen.iter().any(|l| l.contains("token-of-")), "{seen:?}");
    }

    /// A signed request.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string().into_bytes());
        let signature = sign(
            SECRET.as_bytes(),
            now_ms(),
            &fresh_nonce(),
            method,
            path,
            body.as_deref().unwrap_or_default(),
        );
        self.raw(
            method,
            path,
            &[(SIGNATURE_HEADER, &signature)],
            body.as_deref(),
        )
        .await
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .timeout(PATIENCE);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        let response = request.send().await.expect("the provider answers");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("a whole answer");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // SIGTERM: the provider ends its bridges before it exits.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.workspaces);
                let _ = std::fs::remove_dir_all(self.workspaces.with_extension("git"));
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
