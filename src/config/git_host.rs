//! Where sandboxes clone from and push to (`GIT_HOST`), and the base URLs of GitHub: https,
//! or plain http for a loopback host with `ENV=development`. Pure, tested natively.

use protocol::git::CredentialRequest;

/// Where sandboxes clone from and push to (`GIT_HOST`): `https://github.com`, or the local git
/// host of `npm run dev` (`http://127.0.0.1:<port>/git`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitHost {
    /// `https`, or `http` for a loopback host in development.
    pub scheme: String,
    /// The host with its port, lower case.
    pub host: String,
    /// A path prefix without slashes at either end (`git`), often empty.
    pub path: String,
}

impl GitHost {
    pub fn base_url(&self) -> String {
        match self.path.as_str() {
            "" => format!("{}://{}", self.scheme, self.host),
            path => format!("{}://{}/{path}", self.scheme, self.host),
        }
    }

    pub fn clone_url(&self, repo: &str) -> String {
        format!("{}/{repo}.git", self.base_url())
    }

    /// The local git host of `npm run dev` (plain http, which only a loopback host may use).
    pub fn is_local(&self) -> bool {
        self.scheme == "http"
    }

    /// Why a credential request is not for `repo` on this host, if it is not.
    pub fn refuses(&self, request: &CredentialRequest, repo: &str) -> Option<&'static str> {
        if request.protocol != self.scheme {
            return Some("credentials are only given for the git host's own protocol");
        }
        if !request.host.eq_ignore_ascii_case(&self.host) {
            return Some("credentials are only given for the configured git host");
        }
        let Some(path) = request.path.as_deref() else {
            return Some("the request names no repository path (set credential.useHttpPath)");
        };
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let expected = match self.path.as_str() {
            "" => repo.to_owned(),
            prefix => format!("{prefix}/{repo}"),
        };
        if !path.eq_ignore_ascii_case(&expected) {
            return Some("credentials are only given for this session's repository");
        }
        None
    }
}

/// A base URL split into scheme and the rest, checked: https, or http on a loopback host when
/// `ENV=development`.
pub(super) fn base_url(
    name: &str,
    value: &str,
    development: bool,
) -> Result<(String, String), String> {
    let value = value.trim().trim_end_matches('/');
    let (scheme, rest) = value
        .split_once("://")
        .ok_or_else(|| format!("{name} must be a URL such as https://github.com"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let bad_host = host.is_empty()
        || host
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "-.:[]".contains(c)));
    if bad_host {
        return Err(format!("{name}: {host:?} is not a host"));
    }
    match scheme {
        "https" => {}
        "http" if development && is_loopback(host) => {}
        _ => {
            return Err(format!(
                "{name} must be https (plain http only for a loopback host with ENV=development)"
            ))
        }
    }
    let path = &rest[host.len()..];
    Ok((
        scheme.to_owned(),
        format!("{}{path}", host.to_ascii_lowercase()),
    ))
}

fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

pub(super) fn git_host(
    value: Option<&str>,
    web_url: &str,
    development: bool,
) -> Result<GitHost, String> {
    let url = match value {
        Some(value) if value.contains("://") => value.to_owned(),
        Some(host) => format!("https://{host}"),
        None => format!("https://{}", web_url.split_once("://").map_or("", |p| p.1)),
    };
    let (scheme, rest) = base_url("GIT_HOST", &url, development)?;
    let (host, path) = rest.split_once('/').unwrap_or((&rest, ""));
    Ok(GitHost {
        scheme,
        host: host.to_owned(),
        path: path.trim_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_requests() {
        let host = git_host(Some("http://127.0.0.1:8790/git"), "", true).unwrap();
        let ask = |protocol: &str, host_name: &str, path: Option<&str>| CredentialRequest {
            protocol: protocol.into(),
            host: host_name.into(),
            path: path.map(str::to_owned),
        };
        let ok = ask("http", "127.0.0.1:8790", Some("git/acme/demo.git"));
        assert_eq!(host.refuses(&ok, "acme/demo"), None);
        assert_eq!(host.refuses(&ok, "ACME/Demo"), None);
        let no_suffix = ask("http", "127.0.0.1:8790", Some("/git/acme/demo"));
        assert_eq!(host.refuses(&no_suffix, "acme/demo"), None);
        for bad in [
            ask("https", "127.0.0.1:8790", Some("git/acme/demo.git")),
            ask("http", "127.0.0.1:9999", Some("git/acme/demo.git")),
            ask("http", "evil.example", Some("git/acme/demo.git")),
            ask("http", "127.0.0.1:8790", Some("git/acme/web.git")),
            ask("http", "127.0.0.1:8790", Some("acme/demo.git")),
            ask("http", "127.0.0.1:8790", None),
        ] {
            assert!(host.refuses(&bad, "acme/demo").is_some(), "{bad:?}");
        }
    }
}
