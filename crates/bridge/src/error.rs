//! The bridge's one error type. Each variant renders as the sentence that ends up in a log
//! line, a `done` frame's `error` or a provider reply, so callers only add what they were doing.

use crate::workspace::PathError;
use std::process::ExitStatus;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the operating system failed: `cannot create /w/a: Permission denied`.
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    /// A command ran and failed: `git init failed (exit status: 128): fatal: …`.
    #[error("{what} failed ({status}): {output}")]
    CommandFailed {
        what: &'static str,
        status: ExitStatus,
        /// What it wrote on stderr, cut and with credentials in URLs hidden.
        output: String,
    },
    /// A process that should have kept running ended: `opencode serve exited (exit status: 1)`.
    #[error("{what} exited ({status})")]
    Exited {
        what: &'static str,
        status: ExitStatus,
    },
    /// `git clone took more than 120s`.
    #[error("{what} took more than {limit:?}")]
    TimedOut { what: &'static str, limit: Duration },
    /// A server that never became usable: `OpenCode did not answer within 60s (HTTP 503)`.
    #[error("{what} did not answer within {limit:?} ({last_error})")]
    NoAnswer {
        what: &'static str,
        limit: Duration,
        last_error: String,
    },
    /// An HTTP exchange that did not complete, with the causes reqwest keeps in its chain.
    #[error("{action}: {}", with_causes(source))]
    Http {
        action: String,
        source: reqwest::Error,
    },
    /// A server answered with a status that means no: `OpenCode refused the prompt: HTTP 400 …`.
    #[error("{action}: HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(" {detail}") })]
    Status {
        action: &'static str,
        status: u16,
        detail: String,
    },
    /// A path the agent may not write.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Input or an answer that cannot be used as it is: a URL, an allowlist pattern, a body.
    #[error("{0}")]
    Invalid(String),
    /// The operating system's random number generator failed; nothing falls back to a
    /// predictable id.
    #[error("the system's random number generator failed: {0}")]
    Random(#[from] getrandom::Error),
    /// The room's WebSocket failed.
    #[error(transparent)]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// A frame or the journal that would not serialise.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `cannot <action>: <the io error>`; the usual shape of an `Io` error.
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let action = action.into();
        move |source| Error::Io { action, source }
    }

    pub fn http(action: impl Into<String>) -> impl FnOnce(reqwest::Error) -> Error {
        let action = action.into();
        move |source| Error::Http { action, source }
    }
}

/// reqwest's own message is only the outer layer (`error sending request for url (…)`); the
/// reason (`Connection refused`, a timeout) is further down its chain.
fn with_causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn check(error: Error, expected: &str) {
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn every_variant_reads_as_a_sentence() {
        check(
            Error::io("cannot create /w")(std::io::Error::from(std::io::ErrorKind::NotFound)),
            "cannot create /w: entity not found",
        );
        check(
            Error::CommandFailed {
                what: "git init",
                status: ExitStatus::from_raw(128 << 8),
                output: "fatal: no".into(),
            },
            "git init failed (exit status: 128): fatal: no",
        );
        check(
            Error::Exited {
                what: "opencode serve",
                status: ExitStatus::from_raw(1 << 8),
            },
            "opencode serve exited (exit status: 1)",
        );
        check(
            Error::TimedOut {
                what: "git clone",
                limit: Duration::from_secs(120),
            },
            "git clone took more than 120s",
        );
        check(
            Error::NoAnswer {
                what: "OpenCode",
                limit: Duration::from_secs(60),
                last_error: "HTTP 503".into(),
            },
            "OpenCode did not answer within 60s (HTTP 503)",
        );
        check(
            Error::Status {
                action: "OpenCode refused the prompt",
                status: 400,
                detail: "bad model".into(),
            },
            "OpenCode refused the prompt: HTTP 400 bad model",
        );
        check(
            Error::Status {
                action: "cannot create an OpenCode session",
                status: 500,
                detail: String::new(),
            },
            "cannot create an OpenCode session: HTTP 500",
        );
        check(
            Error::from(PathError::Escapes),
            "the path leads outside the workspace",
        );
    }
}
