//! The Slack settings, all optional: the app's signing secret and bot token, the Web API's
//! base URL, each channel's repository, the repository classifier (an OpenAI-compatible
//! model) and the web page's origin for links. With none of them set there is no Slack and
//! both Slack endpoints answer 404. Pure parsing, tested natively.

use super::git_host::base_url;
use super::github::Secret;
use protocol::scope::is_repo_name;

/// The classifier waits this long for the model unless `CLASSIFIER_TIMEOUT_MS` says otherwise.
pub const DEFAULT_CLASSIFIER_TIMEOUT_MS: u64 = 2500;

#[derive(Clone, Debug)]
pub struct SlackConfig {
    /// Checks `X-Slack-Signature` (`SLACK_SIGNING_SECRET`).
    pub signing_secret: Secret,
    /// `xoxb-…` (`SLACK_BOT_TOKEN`), sent only in the `Authorization` header.
    pub bot_token: Secret,
    /// The Web API's base, ending in `/` (`SLACK_API_URL`, default `https://slack.com/api/`).
    pub api_url: String,
    /// Channel id → `owner/name` (`SLACK_CHANNEL_REPOS`).
    pub channel_repos: Vec<(String, String)>,
    pub classifier: Option<ClassifierConfig>,
    /// The web page's origin for "Open session" links (`PUBLIC_URL`); `None` means the origin
    /// the request came through.
    pub public_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ClassifierConfig {
    /// An OpenAI-compatible base (`…/v1`), without a trailing slash (`CLASSIFIER_URL`).
    pub url: String,
    pub model: String,
    pub api_key: Option<Secret>,
    pub timeout_ms: u64,
}

impl SlackConfig {
    /// The repository configured for a channel.
    pub fn channel_repo(&self, channel_id: &str) -> Option<&str> {
        self.channel_repos
            .iter()
            .find(|(channel, _)| channel == channel_id)
            .map(|(_, repo)| repo.as_str())
    }

    /// The Slack settings, or `None` when none is given. `non_empty` reads a var or secret,
    /// trimmed.
    pub fn from_lookup(
        non_empty: &dyn Fn(&str) -> Option<String>,
        development: bool,
    ) -> Result<Option<SlackConfig>, String> {
        let names = [
            "SLACK_SIGNING_SECRET",
            "SLACK_BOT_TOKEN",
            "SLACK_API_URL",
            "SLACK_CHANNEL_REPOS",
            "CLASSIFIER_URL",
            "CLASSIFIER_MODEL",
            "CLASSIFIER_API_KEY",
        ];
        if names.iter().all(|name| non_empty(name).is_none()) {
            return Ok(None);
        }
        let (Some(signing_secret), Some(bot_token)) = (
            non_empty("SLACK_SIGNING_SECRET"),
            non_empty("SLACK_BOT_TOKEN"),
        ) else {
            return Err(
                "Slack needs SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (README, Connect Slack)"
                    .into(),
            );
        };
        let url = |name: &str, value: &str| -> Result<String, String> {
            let (scheme, rest) = base_url(name, value, development)?;
            Ok(format!("{scheme}://{rest}"))
        };
        let api_url = url(
            "SLACK_API_URL",
            &non_empty("SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api/".into()),
        )? + "/";
        let channel_repos = match non_empty("SLACK_CHANNEL_REPOS") {
            Some(value) => channel_repos(&value)?,
            None => Vec::new(),
        };
        let classifier = match (non_empty("CLASSIFIER_URL"), non_empty("CLASSIFIER_MODEL")) {
            (Some(base), Some(model)) => Some(ClassifierConfig {
                url: url("CLASSIFIER_URL", &base)?,
                model,
                api_key: non_empty("CLASSIFIER_API_KEY").map(Secret),
                timeout_ms: match non_empty("CLASSIFIER_TIMEOUT_MS") {
                    Some(ms) => ms
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| (100..=60_000).contains(ms))
                        .ok_or("CLASSIFIER_TIMEOUT_MS must be 100 to 60000")?,
                    None => DEFAULT_CLASSIFIER_TIMEOUT_MS,
                },
            }),
            (None, None) => None,
            _ => return Err("CLASSIFIER_URL and CLASSIFIER_MODEL are set together".into()),
        };
        let public_url = match non_empty("PUBLIC_URL") {
            Some(value) => Some(url("PUBLIC_URL", &value)?),
            None => None,
        };
        Ok(Some(SlackConfig {
            signing_secret: Secret(signing_secret),
            bot_token: Secret(bot_token),
            api_url,
            channel_repos,
            classifier,
            public_url,
        }))
    }
}

/// `SLACK_CHANNEL_REPOS`: JSON `{"C123": "owner/name", …}` or `C123=owner/name,…`.
fn channel_repos(value: &str) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, String)> = if value.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value)
            .map_err(|e| format!("SLACK_CHANNEL_REPOS is not a JSON object: {e}"))?;
        map.into_iter()
            .map(|(channel, repo)| match repo {
                serde_json::Value::String(repo) => Ok((channel, repo)),
                _ => Err(format!(
                    "SLACK_CHANNEL_REPOS: {channel} must name owner/name"
                )),
            })
            .collect::<Result<_, _>>()?
    } else {
        value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .split_once('=')
                    .map(|(c, r)| (c.trim().to_owned(), r.trim().to_owned()))
                    .ok_or_else(|| format!("SLACK_CHANNEL_REPOS: {entry:?} is not C123=owner/name"))
            })
            .collect::<Result<_, _>>()?
    };
    for (channel, repo) in &pairs {
        let good_channel = !channel.is_empty()
            && channel.len() <= 32
            && channel.bytes().all(|b| b.is_ascii_alphanumeric());
        if !good_channel {
            return Err(format!(
                "SLACK_CHANNEL_REPOS: {channel:?} is not a channel id"
            ));
        }
        if !is_repo_name(repo) {
            return Err(format!("SLACK_CHANNEL_REPOS: {repo:?} is not owner/name"));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn slack(vars: &[(&str, &str)]) -> Result<Option<SlackConfig>, String> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        SlackConfig::from_lookup(&|name| vars.get(name).map(|v| v.trim().to_owned()), true)
    }

    const BASE: [(&str, &str); 2] = [("SLACK_SIGNING_SECRET", "s"), ("SLACK_BOT_TOKEN", "xoxb-1")];

    #[test]
    fn none_and_defaults() {
        assert!(slack(&[]).unwrap().is_none());
        let c = slack(&BASE).unwrap().unwrap();
        assert_eq!(c.api_url, "https://slack.com/api/");
        assert!(c.classifier.is_none() && c.public_url.is_none());
        assert!(format!("{c:?}").contains("Secret(…)"));
        assert!(!format!("{c:?}").contains("xoxb"));
        assert!(slack(&[("SLACK_BOT_TOKEN", "x")]).is_err());
        assert!(slack(&[("CLASSIFIER_URL", "http://127.0.0.1:1/v1")]).is_err());
    }

    #[test]
    fn urls_channels_and_classifier() {
        let mut vars = BASE.to_vec();
        vars.extend([
            ("SLACK_API_URL", "http://127.0.0.1:9000/api"),
            ("SLACK_CHANNEL_REPOS", "C1=acme/web, C2 = acme/demo"),
            ("CLASSIFIER_URL", "http://127.0.0.1:9001/v1/"),
            ("CLASSIFIER_MODEL", "fast"),
        ]);
        let c = slack(&vars).unwrap().unwrap();
        assert_eq!(c.api_url, "http://127.0.0.1:9000/api/");
        assert_eq!(c.channel_repo("C2"), Some("acme/demo"));
        assert_eq!(c.channel_repo("C3"), None);
        let classifier = c.classifier.unwrap();
        assert_eq!(classifier.url, "http://127.0.0.1:9001/v1");
        assert_eq!(classifier.timeout_ms, DEFAULT_CLASSIFIER_TIMEOUT_MS);
        let mut json = BASE.to_vec();
        json.push(("SLACK_CHANNEL_REPOS", r#"{"C9": "acme/web"}"#));
        assert_eq!(
            slack(&json).unwrap().unwrap().channel_repo("C9"),
            Some("acme/web")
        );
        for bad in ["C1", "C1=acme", r#"{"C1": 3}"#, "c-1=acme/web"] {
            let mut vars = BASE.to_vec();
            vars.push(("SLACK_CHANNEL_REPOS", bad));
            assert!(slack(&vars).is_err(), "{bad}");
        }
        let mut vars = BASE.to_vec();
        vars.push(("SLACK_API_URL", "http://slack.example/api"));
        assert!(slack(&vars).is_err(), "plain http only on loopback");
    }
}
