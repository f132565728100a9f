//! Which coordinators the local provider starts bridges for: patterns like
//! `http://127.0.0.1:*` (any port) or `https://coordinator.example.com`, compared by scheme,
//! host and port; paths do not matter.

#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    /// As written; `*` in a pattern stands for any port, and no port for the scheme's default.
    port: Option<String>,
}

fn parse_origin(url: &str) -> Option<Origin> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port.to_string())),
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some("80"),
        "https" => Some("443"),
        _ => None,
    };
    // `http://h:80` and `http://h` are the same place.
    let port = port.filter(|p| Some(p.as_str()) != default_port);
    Some(Origin {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[derive(Clone, Debug)]
pub struct Allowlist(Vec<Origin>);

impl Allowlist {
    /// Patterns that are not URLs are left out, and returned so they can be reported.
    pub fn new(patterns: &[String]) -> (Self, Vec<String>) {
        let mut origins = Vec::new();
        let mut bad = Vec::new();
        for pattern in patterns {
            match parse_origin(pattern) {
                Some(origin) => origins.push(origin),
                None => bad.push(pattern.clone()),
            }
        }
        (Allowlist(origins), bad)
    }

    pub fn allows(&self, url: &str) -> bool {
        let Some(origin) = parse_origin(url) else {
            return false;
        };
        if origin.port.as_deref() == Some("*") {
            return false;
        }
        self.0.iter().any(|allowed| {
            allowed.scheme == origin.scheme
                && allowed.host == origin.host
                && (allowed.port.as_deref() == Some("*") || allowed.port == origin.port)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowlist(patterns: &[&str]) -> Allowlist {
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        let (list, bad) = Allowlist::new(&patterns);
        assert!(bad.is_empty(), "{bad:?}");
        list
    }

    #[test]
    fn default_allows_only_local_http() {
        let list = allowlist(&["http://127.0.0.1:*", "http://localhost:*"]);
        for ok in [
            "http://127.0.0.1:8787",
            "http://127.0.0.1:8787/",
            "http://localhost:1/base?x=1",
            "http://LOCALHOST:9",
            "http://127.0.0.1",
        ] {
            assert!(list.allows(ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:8787",
            "http://127.0.0.2:8787",
            "http://localhost.evil.com:80",
            "http://evil.com@127.0.0.1:8787",
            "http://127.0.0.1:*",
            "127.0.0.1:8787",
            "",
        ] {
            assert!(!list.allows(bad), "{bad}");
        }
    }

    #[test]
    fn exact_origins_and_default_ports() {
        let list = allowlist(&["https://c.example.com", "http://10.0.0.1:8787/ignored/path"]);
        assert!(list.allows("https://c.example.com/"));
        assert!(list.allows("https://c.example.com:443"));
        assert!(!list.allows("https://c.example.com:8443"));
        assert!(list.allows("http://10.0.0.1:8787"));
        assert!(!list.allows("http://10.0.0.1:8788"));
        let (_, bad) = Allowlist::new(&["not a url".to_string()]);
        assert_eq!(bad, ["not a url"]);
    }
}
