//! The local git host: `/git/<owner>/<name>.git/…` on the provider's port, served by git's own
//! `git http-backend` (smart HTTP, as a CGI program) from `<git root>/<owner>/<name>.git`.
//!
//! It asks for what GitHub asks for: Basic auth `x-access-token:<token>`, where the token is a
//! local git token (`protocol::git::sign_local_token`) that the coordinator signs with the
//! provider secret for one repository and a limited time. Without one that fits, the answer is
//! 401 with a Basic challenge, so git asks its credential helper and tries again.
//!
//! Bodies stream both ways, and git's gzip-compressed requests are handed to http-backend as
//! they came (it inflates them itself).

use super::Body;
use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use protocol::git::{verify_local_token, TOKEN_USERNAME};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStderr, ChildStdout};

/// Where git's URLs start on the provider's port.
pub const PREFIX: &str = "/git/";
/// http-backend's CGI header block is a few lines; past this it is not one.
const MAX_CGI_HEAD: usize = 64 * 1024;
/// How long http-backend may take to start answering.
const CGI_HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of http-backend's stderr is logged.
const MAX_LOGGED_STDERR: usize = 4096;

pub struct GitHost {
    /// Canonical: `GIT_PROJECT_ROOT` must be absolute.
    pub root: PathBuf,
    pub secret: Vec<u8>,
}

/// A request's repository and the path http-backend is given.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// `owner/name`, as local git tokens name it.
    pub repo: String,
    /// `/<owner>/<name>.git/<rest>`.
    pub path_info: String,
}

/// `/git/acme/demo.git/info/refs` → `acme/demo` and `/acme/demo.git/info/refs`. Owner and name
/// follow the provider contract's rule (letters, digits, `_`, `.`, `-`; not `.` or `..`); the
/// rest is plain path segments, none of them `.` or `..`.
pub fn parse_path(path: &str) -> Option<Target> {
    let rest = path.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let owner = parts.next()?;
    let name = parts.next()?.strip_suffix(".git")?;
    let tail = parts.next().unwrap_or("");
    let is_repo_part = |part: &str| {
        !part.is_empty()
            && part.len() <= 100
            && part != "."
            && part != ".."
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    // An empty segment only as in `info/refs/`; `.` and `..` never.
    let is_segment = |segment: &str| segment.is_empty() || is_repo_part(segment);
    if !is_repo_part(owner) || !is_repo_part(name) || !tail.split('/').all(is_segment) {
        return None;
    }
    Some(Target {
        repo: format!("{owner}/{name}"),
        path_info: format!("/{owner}/{name}.git/{tail}"),
    })
}

/// Whether the request carries `x-access-token:<token>` with a live token for `repo`.
pub fn authorized(headers: &HeaderMap, secret: &[u8], repo: &str, now_ms: u64) -> bool {
    let Some(encoded) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    match decoded.split_once(':') {
        Some((user, token)) => {
            user == TOKEN_USERNAME && verify_local_token(secret, token, repo, now_ms)
        }
        None => false,
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub async fn handle(host: &GitHost, request: Request<Incoming>, now_ms: u64) -> Response<Body> {
    let (head, body) = request.into_parts();
    let Some(target) = parse_path(head.uri.path()) else {
        return text(
            StatusCode::NOT_FOUND,
            "not a repository path on this git host",
        );
    };
    if !authorized(&head.headers, &host.secret, &target.repo, now_ms) {
        if head.headers.contains_key(AUTHORIZATION) {
            // No token in the line: only what was asked for.
            crate::log!(
                "git-host",
                "{} {}: credentials that are not a live token for {}",
                head.method,
                head.uri.path(),
                target.repo
            );
        }
        let mut response = text(StatusCode::UNAUTHORIZED, "authentication required");
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"git\""),
        );
        return response;
    }
    if !host.root.join(format!("{}.git", target.repo)).is_dir() {
        return text(StatusCode::NOT_FOUND, "no such repository");
    }
    if head.uri.query().unwrap_or("").contains("git-receive-pack") {
        crate::log!("git-host", "push to {}", target.repo);
    }
    match run_cgi(host, &head, &target, body).await {
        Ok(response) => response,
        Err(why) => {
            crate::log!("git-host", "{} {}: {why}", head.method, head.uri.path());
            text(StatusCode::BAD_GATEWAY, &why.to_string())
        }
    }
}

/// Runs `git http-backend` for the request: the body streams into its stdin, its CGI headers
/// become the response's, and the rest of its output streams out as the body.
async fn run_cgi(
    host: &GitHost,
    head: &hyper::http::request::Parts,
    target: &Target,
    mut body: Incoming,
) -> Result<Response<Body>> {
    let header = |name: HeaderName| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &host.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        // Set, http-backend allows pushes (`http.receivepack` defaults to on for a known user).
        .env("REMOTE_USER", TOKEN_USERNAME)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", head.method.as_str())
        .env("PATH_INFO", &target.path_info)
        .env("QUERY_STRING", head.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header(CONTENT_TYPE).unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Without a length (a chunked push), http-backend reads to the end of its input.
    if let Some(length) = header(hyper::header::CONTENT_LENGTH) {
        cmd.env("CONTENT_LENGTH", length);
    }
    if let Some(encoding) = header(hyper::header::CONTENT_ENCODING) {
        cmd.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(version) = header(HeaderName::from_static("git-protocol")) {
        cmd.env("HTTP_GIT_PROTOCOL", version);
    }
    let mut child = cmd
        .spawn()
        .map_err(Error::io("cannot start git http-backend"))?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Error::Invalid("git http-backend has no pipes".into()));
    };
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                if stdin.write_all(&data).await.is_err() {
                    break;
                }
            }
        }
        // Dropping stdin ends http-backend's input.
    });
    let label = format!("{} {}", head.method, head.uri.path());
    tokio::spawn(async move {
        let stderr = read_capped(stderr).await;
        match child.wait().await {
            Ok(status) if status.success() && stderr.is_empty() => {}
            Ok(status) => crate::log!("git-host", "{label}: http-backend {status}: {stderr}"),
            Err(e) => crate::log!("git-host", "{label}: cannot wait for http-backend: {e}"),
        }
    });
    let (cgi_head, rest) = tokio::time::timeout(CGI_HEAD_TIMEOUT, read_cgi_head(&mut stdout))
        .await
        .map_err(|_| Error::TimedOut {
            what: "git http-backend's answer",
            limit: CGI_HEAD_TIMEOUT,
        })??;
    let mut response = Response::new(stream_body(rest, stdout));
    for line in cgi_head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok());
            *response.status_mut() = code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.trim()),
            HeaderValue::try_from(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

/// The CGI header block (up to the blank line) and whatever of the body came with it.
async fn read_cgi_head(stdout: &mut ChildStdout) -> Result<(String, Bytes)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((end, separator)) = find_blank_line(&buffer) {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let rest = Bytes::copy_from_slice(&buffer[end + separator..]);
            return Ok((head, rest));
        }
        if buffer.len() > MAX_CGI_HEAD {
            return Err(Error::Invalid(
                "git http-backend sent no header block".into(),
            ));
        }
        match stdout.read(&mut chunk).await {
            Ok(0) => {
                return Err(Error::Invalid(
                    "git http-backend ended without an answer".into(),
                ))
            }
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(Error::io("cannot read git http-backend's answer")(e)),
        }
    }
}

/// Where the header block ends: the position and length of its `\r\n\r\n` (or `\n\n`).
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// `first`, then the rest of `stdout` as it comes.
fn stream_body(first: Bytes, stdout: ChildStdout) -> Body {
    let state = (Some(first).filter(|b| !b.is_empty()), Some(stdout));
    let stream = futures_util::stream::unfold(state, |(first, stdout)| async move {
        if let Some(first) = first {
            return Some((Ok(Frame::data(first)), (None, stdout)));
        }
        let mut stdout = stdout?;
        let mut chunk = vec![0u8; 32 * 1024];
        match stdout.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok(Frame::data(Bytes::from(chunk))), (None, Some(stdout))))
            }
            // Said once; the stream ends after it.
            Err(e) => Some((Err(e), (None, None))),
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

async fn read_capped(stream: ChildStderr) -> String {
    let mut text = Vec::new();
    let _ = stream
        .take(MAX_LOGGED_STDERR as u64)
        .read_to_end(&mut text)
        .await;
    String::from_utf8_lossy(&text).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::git::sign_local_token;

    #[test]
    fn paths() {
        let check = |path: &str, expected: Option<(&str, &str)>| {
            assert_eq!(
                parse_path(path),
                expected.map(|(repo, path_info)| Target {
                    repo: repo.into(),
                    path_info: path_info.into()
                }),
                "{path}"
            );
        };
        check(
            "/git/acme/demo.git/info/refs",
            Some(("acme/demo", "/acme/demo.git/info/refs")),
        );
        check(
            "/git/acme/demo.git/git-receive-pack",
            Some(("acme/demo", "/acme/demo.git/git-receive-pack")),
        );
        check(
            "/git/my-org/web.site.git/objects/ab/cdef",
            Some(("my-org/web.site", "/my-org/web.site.git/objects/ab/cdef")),
        );
        check("/git/acme/demo.git", Some(("acme/demo", "/acme/demo.git/")));
        for bad in [
            "/git/acme/demo/info/refs",
            "/git/../demo.git/info/refs",
            "/git/acme/...git/info/refs",
            "/git/./demo.git/HEAD",
            "/git/acme/demo.git/../other.git/HEAD",
            "/git/acme/demo.git/objects/./x",
            "/git/acme/de%20mo.git/HEAD",
            "/git/acme%2F..%2Fx/demo.git/HEAD",
            "/git//demo.git/HEAD",
            "/git/acme",
            "/other/acme/demo.git/HEAD",
        ] {
            check(bad, None);
        }
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        headers.insert(AUTHORIZATION, HeaderValue::try_from(value).unwrap());
        headers
    }

    #[test]
    fn tokens() {
        let token = sign_local_token(b"s", "acme/demo", 10_000);
        assert!(authorized(
            &basic("x-access-token", &token),
            b"s",
            "acme/demo",
            1
        ));
        assert!(!authorized(
            &basic("x-access-token", &token),
            b"s",
            "acme/demo",
            10_000
        ));
        assert!(!authorized(
            &basic("x-access-token", &token),
            b"s",
            "acme/web",
            1
        ));
        assert!(!authorized(
            &basic("x-access-token", &token),
            b"other",
            "acme/demo",
            1
        ));
        assert!(!authorized(&basic("someone", &token), b"s", "acme/demo", 1));
        assert!(!authorized(
            &basic("x-access-token", "lg1.x.y"),
            b"s",
            "acme/demo",
            1
        ));
        assert!(!authorized(&HeaderMap::new(), b"s", "acme/demo", 1));
        let mut bearer = HeaderMap::new();
        bearer.insert(
            AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
        );
        assert!(!authorized(&bearer, b"s", "acme/demo", 1));
        let mut garbage = HeaderMap::new();
        garbage.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(!authorized(&garbage, b"s", "acme/demo", 1));
    }

    #[test]
    fn cgi_head_ends_at_the_first_blank_line() {
        assert_eq!(
            find_blank_line(b"Status: 200\r\n\r\nbody\n\n"),
            Some((11, 4))
        );
        assert_eq!(find_blank_line(b"A: b\n\nrest"), Some((4, 2)));
        assert_eq!(find_blank_line(b"A: b\r\n"), None);
    }
}
