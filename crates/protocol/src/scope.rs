//! Scopes: which repos a user may open sessions on, and whether they may read the metrics.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes {
    #[serde(default)]
    pub repos: Vec<String>,
    /// `GET /v1/metrics` (usage across every repository), besides the admin key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metrics: bool,
}

impl Scopes {
    pub fn allows_repo(&self, repo: &str) -> bool {
        self.repos
            .iter()
            .any(|pattern| pattern_matches(pattern, repo))
    }

    /// Checks every pattern is `*`, `owner/*` or `owner/name`.
    pub fn validate(&self) -> Result<(), String> {
        if self.repos.len() > 200 {
            return Err("scopes.repos has more than 200 patterns".into());
        }
        for pattern in &self.repos {
            if pattern != "*" && !is_repo_pattern(pattern) {
                return Err(format!(
                    "scopes.repos: {pattern:?} is not \"*\", \"owner/*\" or \"owner/name\""
                ));
            }
        }
        Ok(())
    }
}

fn pattern_matches(pattern: &str, repo: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(owner) => repo
            .split_once('/')
            .is_some_and(|(o, _)| o.eq_ignore_ascii_case(owner)),
        None => pattern.eq_ignore_ascii_case(repo),
    }
}

fn is_name(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 100
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && part != "."
        && part != ".."
}

fn is_repo_pattern(pattern: &str) -> bool {
    match pattern.split_once('/') {
        Some((owner, "*")) => is_name(owner),
        Some((owner, name)) => is_name(owner) && is_name(name),
        None => false,
    }
}

/// A repository name `owner/name`, checked.
pub fn is_repo_name(repo: &str) -> bool {
    matches!(repo.split_once('/'), Some((owner, name)) if is_name(owner) && is_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(patterns: &[&str], repo: &str, expected: bool) {
        let scopes = Scopes {
            repos: patterns.iter().map(|p| p.to_string()).collect(),
            ..Scopes::default()
        };
        assert_eq!(scopes.allows_repo(repo), expected, "{patterns:?} vs {repo}");
    }

    #[test]
    fn matching() {
        check(&[], "acme/web", false);
        check(&["*"], "acme/web", true);
        check(&["acme/*"], "acme/web", true);
        check(&["acme/*"], "other/web", false);
        check(&["acme/web"], "ACME/Web", true);
        check(&["acme/web"], "acme/webapp", false);
        check(&["acme/we*"], "acme/web", false);
    }

    #[test]
    fn validation() {
        let ok = Scopes {
            repos: vec!["*".into(), "a/*".into(), "a-b/c.d".into()],
            ..Scopes::default()
        };
        assert!(ok.validate().is_ok());
        for bad in ["", "a", "a/", "/b", "a/b/c", "a/../b", "a b/c", "*/b"] {
            assert!(
                Scopes {
                    repos: vec![bad.into()],
                    ..Scopes::default()
                }
                .validate()
                .is_err(),
                "{bad}"
            );
        }
        assert!(is_repo_name("acme/web"));
        let metrics: Scopes = serde_json::from_str(r#"{"repos":[],"metrics":true}"#).unwrap();
        assert!(metrics.metrics);
        assert_eq!(
            serde_json::to_string(&Scopes::default()).unwrap(),
            r#"{"repos":[]}"#
        );
        assert!(!is_repo_name("acme/*"));
    }
}
