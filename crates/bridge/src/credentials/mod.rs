//! Git credentials in the workspace, asked for when git needs them and never stored.
//!
//! git runs `bridge credential get` (the workspace's `credential.helper`); that process holds no
//! secret and only relays git's question over a Unix socket to the running `bridge run`, which
//! asks the coordinator with its sandbox token and hands the answer back.
//!
//! - [`helper`]: `bridge credential`, git's side: the credential protocol on stdin and stdout.
//! - [`relay`]: `bridge run`'s side: the socket, and the coordinator's git-credentials endpoint.
//!
//! Architecture invariant: the sandbox token never leaves `bridge run`: not in the helper's
//! command line, environment or output, not in the git config. What the helper prints is the
//! git credential the coordinator chose to give for that one repository.

pub mod helper;
pub mod relay;

use protocol::git::Credential;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A request or an answer on the relay socket is one JSON line of at most this many bytes.
pub const MAX_RELAY_MESSAGE: usize = 16 * 1024;

/// What `bridge run` answers the helper: a credential, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayAnswer {
    Credential(Credential),
    Refused(String),
}

/// The `credential.helper` value that runs `bridge` as the helper for `socket`. git hands a
/// value starting with `!` to the shell, so both paths are quoted for it.
pub fn helper_command(bridge: &Path, socket: &Path) -> String {
    format!(
        "!{} credential --socket {}",
        shell_quote(&bridge.to_string_lossy()),
        shell_quote(&socket.to_string_lossy())
    )
}

/// `it's` → `'it'\''s'`: one word for `sh`, whatever it holds.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// How many handed-out passwords are remembered for redaction.
const N_REMEMBERED: usize = 32;

/// Hides credentials in text meant for people (git's messages in an `error` frame or a log):
/// userinfo in URLs, and every password the relay has handed out in this process.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    passwords: Arc<Mutex<VecDeque<String>>>,
    /// Secrets hidden for the life of the process, however many passwords come after them
    /// (the sandbox token).
    pinned: Arc<Mutex<Vec<String>>>,
}

impl Redactor {
    /// Hides `secret` everywhere from now on.
    pub fn pin(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if !pinned.iter().any(|p| p == secret) {
            pinned.push(secret.to_string());
        }
    }

    /// Every secret known now, longest first, so one that begins another cannot leave the
    /// other's tail.
    fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .chain(
                self.passwords
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter(),
            )
            .cloned()
            .collect();
        secrets.sort_by_key(|p| std::cmp::Reverse(p.len()));
        secrets
    }

    /// `text` with every known secret replaced by `***`; `None` when it holds none (the
    /// common case, which then costs no copy).
    pub fn hide_secrets(&self, text: &str) -> Option<String> {
        let secrets = self.secrets();
        if !secrets.iter().any(|s| text.contains(s.as_str())) {
            return None;
        }
        let mut text = text.to_string();
        for secret in &secrets {
            text = text.replace(secret.as_str(), "***");
        }
        Some(text)
    }

    pub fn remember(&self, password: &str) {
        if password.is_empty() {
            return;
        }
        let mut passwords = self.passwords.lock().unwrap_or_else(|e| e.into_inner());
        if !passwords.iter().any(|p| p == password) {
            passwords.push_back(password.to_string());
        }
        while passwords.len() > N_REMEMBERED {
            passwords.pop_front();
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let text = crate::git::redact_userinfo(text);
        self.hide_secrets(&text).unwrap_or(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_commands_quote_their_paths() {
        assert_eq!(
            helper_command(
                Path::new("/opt/bridge"),
                Path::new("/tmp/b-1/credentials.sock")
            ),
            "!'/opt/bridge' credential --socket '/tmp/b-1/credentials.sock'"
        );
        assert_eq!(
            helper_command(Path::new("/it's here/bridge"), Path::new("/s")),
            r"!'/it'\''s here/bridge' credential --socket '/s'"
        );
    }

    #[test]
    fn answers_on_the_socket() {
        let granted = RelayAnswer::Credential(Credential {
            username: "x-access-token".into(),
            password: "p".into(),
            expires_at: None,
        });
        assert_eq!(
            serde_json::to_string(&granted).unwrap(),
            r#"{"credential":{"username":"x-access-token","password":"p"}}"#
        );
        assert_eq!(
            serde_json::to_string(&RelayAnswer::Refused("no".into())).unwrap(),
            r#"{"refused":"no"}"#
        );
    }

    #[test]
    fn handed_out_passwords_and_userinfo_are_hidden() {
        let redactor = Redactor::default();
        redactor.remember("lg1.99.abcdef");
        redactor.remember("");
        assert_eq!(
            redactor.redact("remote: lg1.99.abcdef rejected at https://u:lg1.99.abcdef@h/x"),
            "remote: *** rejected at https://***@h/x"
        );
        for i in 0..N_REMEMBERED {
            redactor.remember(&format!("secret-{i}"));
        }
        assert_eq!(redactor.redact("lg1.99.abcdef"), "lg1.99.abcdef");
        assert_eq!(redactor.redact("secret-31 secret-0"), "*** ***");
    }
}
