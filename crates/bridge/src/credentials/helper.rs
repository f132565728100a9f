//! `bridge credential get|store|erase`: git's credential helper protocol
//! (gitcredentials(7)). git writes `key=value` lines up to a blank line or the end of input;
//! for `get` the helper answers `username=…` and `password=…`, or nothing, in which case git
//! goes on without (and fails with its own message). `store` and `erase` have nothing to do:
//! no credential is ever kept.
//!
//! The question goes to the running `bridge run` over its socket; this process never sees the
//! sandbox token.

use super::{RelayAnswer, MAX_RELAY_MESSAGE};
use crate::config::CredentialConfig;
use crate::error::{Error, Result};
use protocol::git::{Credential, CredentialRequest};
use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// git's input is a handful of short lines; more than this is not a credential request.
const MAX_INPUT: u64 = 64 * 1024;
/// How long the relay (and the coordinator behind it) may take.
const RELAY_TIMEOUT: Duration = Duration::from_secs(45);

/// Runs the helper on this process's stdin and stdout; the exit code is always 0, since git
/// treats a helper's silence as "no credential", which is what every failure here means.
pub fn main(config: CredentialConfig) -> i32 {
    let stdin = std::io::stdin();
    let input = read_input(stdin.lock());
    if config.operation != "get" {
        return 0;
    }
    let answer = input.and_then(|input| {
        let request = parse_request(&input)?;
        ask(&config.socket, &request)
    });
    match answer.and_then(|answer| format_answer(&answer)) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                eprintln!("bridge credential: cannot write the answer");
            }
        }
        Err(why) => eprintln!("bridge credential: {why}"),
    }
    0
}

/// The lines up to the first blank one (or the end), at most [`MAX_INPUT`] bytes.
fn read_input(input: impl BufRead) -> Result<String> {
    let mut text = String::new();
    for line in input.take(MAX_INPUT).lines() {
        let line = line.map_err(Error::io("cannot read git's request"))?;
        if line.is_empty() {
            break;
        }
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// git's attributes as a request for the coordinator. Attributes other than `protocol`, `host`
/// and `path` (`username`, `capability[]`, `wwwauth[]`, …) are not needed and ignored; a line
/// that is not `key=value` makes the whole request malformed.
pub fn parse_request(input: &str) -> Result<CredentialRequest> {
    let (mut protocol, mut host, mut path) = (None, None, None);
    for (number, line) in input.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::Invalid(format!(
                "line {} of git's request is not key=value",
                number + 1
            )));
        };
        match key {
            "protocol" => protocol = Some(value.to_string()),
            "host" => host = Some(value.to_string()),
            "path" => path = Some(value.to_string()).filter(|p| !p.is_empty()),
            _ => {}
        }
    }
    match (protocol, host) {
        (Some(protocol), Some(host)) if !protocol.is_empty() && !host.is_empty() => {
            Ok(CredentialRequest {
                protocol,
                host,
                path,
            })
        }
        _ => Err(Error::Invalid(
            "git's request names no protocol and host".into(),
        )),
    }
}

/// The answer git reads: `username=…` and `password=…` lines. A value with a line break would
/// smuggle in other attributes, so such an answer is refused.
pub fn format_answer(answer: &RelayAnswer) -> Result<String> {
    match answer {
        RelayAnswer::Refused(why) => Err(Error::Invalid(format!("no credential: {why}"))),
        RelayAnswer::Credential(Credential {
            username, password, ..
        }) => {
            let plain = |value: &str| !value.is_empty() && !value.contains(['\n', '\r', '\0']);
            if plain(username) && plain(password) {
                Ok(format!("username={username}\npassword={password}\n"))
            } else {
                Err(Error::Invalid(
                    "the coordinator's credential is not usable".into(),
                ))
            }
        }
    }
}

/// One JSON line to the relay, one JSON line back.
fn ask(socket: &Path, request: &CredentialRequest) -> Result<RelayAnswer> {
    let unreachable = |e| {
        Error::io(format!(
            "the bridge at {} is not answering",
            socket.display()
        ))(e)
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(RELAY_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(RELAY_TIMEOUT)))
        .map_err(unreachable)?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_RELAY_MESSAGE as u64)
        .read_to_end(&mut answer)
        .map_err(unreachable)?;
    serde_json::from_slice(&answer)
        .map_err(|_| Error::Invalid("the bridge's answer is not JSON".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(&str, &str, Option<&str>), &str>) {
        let got = parse_request(input);
        match expected {
            Ok((protocol, host, path)) => assert_eq!(
                got.ok(),
                Some(CredentialRequest {
                    protocol: protocol.into(),
                    host: host.into(),
                    path: path.map(String::from),
                }),
                "{input:?}"
            ),
            Err(needle) => {
                let error = got.expect_err(input).to_string();
                assert!(error.contains(needle), "{error:?} should say {needle:?}");
            }
        }
    }

    #[test]
    fn requests_as_git_writes_them() {
        check(
            "protocol=https\nhost=github.com\npath=acme/web.git\n",
            Ok(("https", "github.com", Some("acme/web.git"))),
        );
        check(
            "capability[]=authtype\nprotocol=http\nhost=127.0.0.1:8790\npath=git/acme/demo.git\nwwwauth[]=Basic realm=\"git\"\n\n",
            Ok(("http", "127.0.0.1:8790", Some("git/acme/demo.git"))),
        );
        check("protocol=https\r\nhost=h\r\n", Ok(("https", "h", None)));
        check("protocol=https\nhost=h\npath=\n", Ok(("https", "h", None)));
        // The last value wins, as in git; what follows a blank line is not read.
        check(
            "protocol=http\nprotocol=https\nhost=h\n\npath=ignored\n",
            Ok(("https", "h", None)),
        );
        check(
            "username=x\npassword=y=z\nprotocol=https\nhost=h",
            Ok(("https", "h", None)),
        );
    }

    #[test]
    fn malformed_requests() {
        check("", Err("no protocol and host"));
        check("protocol=https\n", Err("no protocol and host"));
        check("protocol=\nhost=h\n", Err("no protocol and host"));
        check(
            "protocol=https\nhost h\n",
            Err("line 2 of git's request is not key=value"),
        );
    }

    #[test]
    fn input_stops_at_the_blank_line() {
        let input = "protocol=https\nhost=h\n\nmore=1\n";
        assert_eq!(
            read_input(input.as_bytes()).unwrap(),
            "protocol=https\nhost=h\n"
        );
        let endless = "x".repeat(MAX_INPUT as usize * 2);
        assert_eq!(
            read_input(endless.as_bytes()).unwrap().len(),
            MAX_INPUT as usize + 1
        );
    }

    #[test]
    fn answers() {
        let credential = |username: &str, password: &str| {
            RelayAnswer::Credential(Credential {
                username: username.into(),
                password: password.into(),
                expires_at: Some("2030-01-01T00:00:00Z".into()),
            })
        };
        assert_eq!(
            format_answer(&credential("x-access-token", "ghs_1")).unwrap(),
            "username=x-access-token\npassword=ghs_1\n"
        );
        assert!(format_answer(&credential("x", "a\nhost=evil")).is_err());
        assert!(format_answer(&credential("", "p")).is_err());
        assert_eq!(
            format_answer(&RelayAnswer::Refused("HTTP 403".into()))
                .unwrap_err()
                .to_string(),
            "no credential: HTTP 403"
        );
    }
}
