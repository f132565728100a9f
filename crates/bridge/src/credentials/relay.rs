//! `bridge run`'s side of the credential helper: a Unix socket in a folder only this user can
//! enter, and the coordinator's `POST /v1/sessions/:id/sandbox/git-credentials`, asked with the
//! sandbox token for each question git has. Nothing is cached here: the coordinator keeps its
//! tokens, and a fresh answer each time keeps a long-running sandbox working past a token's
//! expiry.

use super::{helper_command, Redactor, RelayAnswer, MAX_RELAY_MESSAGE};
use crate::config::{RunConfig, Secret};
use crate::error::{Error, Result};
use protocol::bridge::SANDBOX_ID_HEADER;
use protocol::git::{Credential, CredentialRequest};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The coordinator gets this long to answer one question.
const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(30);
/// A helper that connects and then says nothing is dropped after this.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the coordinator for git credentials on behalf of this sandbox.
pub struct Coordinator {
    http: reqwest::Client,
    url: String,
    token: Secret,
    sandbox_id: String,
}

impl Coordinator {
    pub fn new(config: &RunConfig) -> Result<Coordinator> {
        Ok(Coordinator {
            http: https_client()?,
            url: format!(
                "{}/v1/sessions/{}/sandbox/git-credentials",
                http_base(&config.coordinator_url)?,
                config.session_id
            ),
            token: config.token.clone(),
            sandbox_id: config.sandbox_id.clone(),
        })
    }

    /// The credential, or why there is none (no secret in the error's sentence).
    pub async fn credential(&self, request: &CredentialRequest) -> Result<Credential> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose())
            .header(SANDBOX_ID_HEADER, &self.sandbox_id)
            .json(request)
            .timeout(COORDINATOR_TIMEOUT)
            .send()
            .await
            .map_err(Error::http("cannot reach the coordinator"))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(Error::http("the coordinator's answer broke off"))?;
        if status != 200 {
            let detail = serde_json::from_slice::<protocol::ApiError>(&body)
                .map(|e| e.message)
                .unwrap_or_default();
            return Err(Error::Status {
                action: "the coordinator refused the credential",
                status,
                detail,
            });
        }
        serde_json::from_slice(&body)
            .map_err(|_| Error::Invalid("the coordinator's answer is not a credential".into()))
    }
}

fn https_client() -> Result<reqwest::Client> {
    crate::http::client_builder()?
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(Error::http("cannot set up the HTTP client"))
}

/// `wss://c.example/base/` → `https://c.example/base`: the coordinator's HTTP address.
pub fn http_base(url: &str) -> Result<String> {
    let url = url.trim_end_matches('/');
    [
        ("https://", "https://"),
        ("http://", "http://"),
        ("wss://", "https://"),
        ("ws://", "http://"),
    ]
    .iter()
    .find_map(|(from, to)| {
        url.strip_prefix(from)
            .filter(|rest| !rest.is_empty())
            .map(|rest| format!("{to}{rest}"))
    })
    .ok_or_else(|| Error::Invalid(format!("not an http(s) URL: {url:?}")))
}

/// The running relay; its folder and socket go when it is dropped.
pub struct Relay {
    dir: PathBuf,
    socket: PathBuf,
    redactor: Redactor,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens in a new folder under the system's temporary folder (a short path: socket
    /// addresses are limited to about a hundred bytes). Must run inside the runtime.
    pub fn start(coordinator: Coordinator) -> Result<Relay> {
        let dir = std::env::temp_dir().join(crate::ids::random_id("bridge-git-")?);
        // Created here, with no group or other access: only this user can reach the socket.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        let socket = dir.join("credentials.sock");
        let listener = match UnixListener::bind(&socket) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Error::io(format!("cannot listen on {}", socket.display()))(
                    e,
                ));
            }
        };
        let redactor = Redactor::default();
        let task = tokio::spawn(serve(listener, Arc::new(coordinator), redactor.clone()));
        Ok(Relay {
            dir,
            socket,
            redactor,
            task,
        })
    }

    /// The `credential.helper` value for a workspace.
    pub fn helper_command(&self, bridge: &Path) -> String {
        helper_command(bridge, &self.socket)
    }

    /// Hides whatever this relay handed out.
    pub fn redactor(&self) -> Redactor {
        self.redactor.clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(listener: UnixListener, coordinator: Arc<Coordinator>, redactor: Redactor) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, coordinator.clone(), redactor.clone()));
            }
            Err(e) => {
                crate::log!("credentials", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One question from a helper, one answer.
async fn answer(stream: UnixStream, coordinator: Arc<Coordinator>, redactor: Redactor) {
    // The folder keeps other users out; the peer's uid is checked as well.
    let same_user = stream
        .peer_cred()
        .is_ok_and(|cred| cred.uid() == current_uid());
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    let read = tokio::time::timeout(
        HELPER_TIMEOUT,
        BufReader::new(reader.take(MAX_RELAY_MESSAGE as u64)).read_line(&mut line),
    )
    .await;
    let answer = match (same_user, read) {
        (false, _) => RelayAnswer::Refused("the helper runs as another user".into()),
        (true, Err(_)) => RelayAnswer::Refused("the helper sent no request".into()),
        (true, Ok(Err(e))) => RelayAnswer::Refused(format!("cannot read the request: {e}")),
        (true, Ok(Ok(_))) => match serde_json::from_str::<CredentialRequest>(&line) {
            Err(e) => RelayAnswer::Refused(format!("not a credential request: {e}")),
            Ok(request) => {
                let target = describe(&request);
                match coordinator.credential(&request).await {
                    Ok(credential) => {
                        redactor.remember(&credential.password);
                        crate::log!("credentials", "git credentials for {target}: granted");
                        RelayAnswer::Credential(credential)
                    }
                    Err(why) => {
                        crate::log!("credentials", "git credentials for {target}: {why}");
                        RelayAnswer::Refused(why.to_string())
                    }
                }
            }
        },
    };
    let Ok(mut text) = serde_json::to_vec(&answer) else {
        return;
    };
    text.push(b'\n');
    let _ = writer.write_all(&text).await;
    let _ = writer.shutdown().await;
}

/// `https://github.com/acme/web.git`, for log lines.
fn describe(request: &CredentialRequest) -> String {
    format!(
        "{}://{}/{}",
        request.protocol,
        request.host,
        request.path.as_deref().unwrap_or("")
    )
}

fn current_uid() -> u32 {
    // SAFETY: getuid(2) cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_bases() {
        let check = |url: &str, expected: &str| assert_eq!(http_base(url).unwrap(), expected);
        check("http://127.0.0.1:8787", "http://127.0.0.1:8787");
        check("https://c.example.com/", "https://c.example.com");
        check("wss://c.example.com/base", "https://c.example.com/base");
        check("ws://h:1", "http://h:1");
        assert!(http_base("ftp://x").is_err());
        assert!(http_base("http://").is_err());
    }
}
