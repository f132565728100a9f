//! Which repository a request from Slack is about, in stages: a repository named in the text
//! (`repo:owner/name`, or a name that matches exactly one candidate), the channel's
//! configured repository, the only repository the user may use, and last a fast model
//! (an OpenAI-compatible `/chat/completions`) given the candidates and the thread. Anything
//! the model does not answer clearly, confidently and in time becomes the picker.
//! The stages and the model's request and answer are pure, tested natively; the call is not.

use protocol::api::Repo;
use serde_json::{json, Value};

/// Below this confidence the model's answer is not taken: the user picks.
pub const MIN_CONFIDENCE: f64 = 0.7;

/// The messages of the thread the model is given, at most.
pub const THREAD_MESSAGES: usize = 10;

/// What the stages that need no model decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Staged {
    /// This repository, and the stage that chose it.
    Chosen(String, &'static str),
    /// `repo:owner/name` names a repository the user may not use (or that does not exist).
    NotAllowed(String),
    /// The user may use no repository at all.
    NoCandidates,
    /// Only the model (or the user) can tell.
    AskModel,
}

/// Stages 1 to 3. `candidates` are the repositories the user's scopes allow.
pub fn stage(text: &str, channel_repo: Option<&str>, candidates: &[Repo]) -> Staged {
    if candidates.is_empty() {
        return Staged::NoCandidates;
    }
    let find = |name: &str| {
        candidates
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .map(|r| r.name.clone())
    };
    let words: Vec<&str> = text
        .split(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    ',' | ';' | '(' | ')' | '`' | '*' | '<' | '>' | '"' | '\'' | '|'
                )
        })
        .map(|w| w.trim_end_matches(['.', ':', '!', '?']))
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(explicit) = words.iter().find_map(|w| w.strip_prefix("repo:")) {
        return match find(explicit) {
            Some(repo) => Staged::Chosen(repo, "named"),
            None => Staged::NotAllowed(explicit.chars().take(100).collect()),
        };
    }
    let mut named: Vec<&str> = Vec::new();
    for word in &words {
        for repo in candidates {
            let short = repo.name.split('/').nth(1).unwrap_or_default();
            let matches = repo.name.eq_ignore_ascii_case(word) || short.eq_ignore_ascii_case(word);
            if matches && !named.contains(&repo.name.as_str()) {
                named.push(&repo.name);
            }
        }
    }
    if let [only] = named.as_slice() {
        return Staged::Chosen((*only).to_owned(), "named");
    }
    if let Some(repo) = channel_repo.and_then(find) {
        return Staged::Chosen(repo, "channel");
    }
    if let [only] = candidates {
        return Staged::Chosen(only.name.clone(), "only");
    }
    Staged::AskModel
}

/// One message of the thread as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadMessage {
    pub author: String,
    pub text: String,
}

/// The body of `POST <CLASSIFIER_URL>/chat/completions`.
pub fn request(
    model: &str,
    candidates: &[Repo],
    channel_name: &str,
    thread: &[ThreadMessage],
) -> Value {
    let repos: Vec<Value> = candidates
        .iter()
        .map(|r| json!({"repo": r.name, "description": r.description, "hints": r.hints}))
        .collect();
    let start = thread.len().saturating_sub(THREAD_MESSAGES);
    let conversation: String = thread[start..]
        .iter()
        .map(|m| format!("{}: {}\n", m.author, m.text))
        .collect();
    let system = "You route a request from a chat to the code repository it is about. \
        Answer with one JSON object and nothing else: \
        {\"repo\": \"owner/name\" or null, \"confidence\": a number from 0 to 1, \"reason\": a short sentence}. \
        The repo must be one of the candidates; answer null when you cannot tell.";
    let user = format!(
        "Candidates:\n{}\nChannel: #{channel_name}\nThread (oldest first):\n{conversation}",
        serde_json::to_string_pretty(&repos).unwrap_or_default()
    );
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
        "response_format": {"type": "json_object"},
        "temperature": 0,
    })
}

/// The model's decision, when it is one to act on: the repository and its reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub repo: String,
    pub confidence: f64,
    pub reason: String,
}

/// Why the model's answer was not taken (for the log and the picker's wording).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoDecision {
    /// Not a chat completion, or its content is not the strict JSON asked for.
    Invalid(&'static str),
    /// `repo` is null.
    Unsure,
    /// A repository that is not a candidate.
    NotACandidate,
    /// Below [`MIN_CONFIDENCE`].
    LowConfidence,
}

/// Reads a chat completion's answer: `choices[0].message.content` must be exactly
/// `{repo, confidence, reason}` naming a candidate with enough confidence.
pub fn answer(completion: &Value, candidates: &[Repo]) -> Result<Decision, NoDecision> {
    let content = completion["choices"][0]["message"]["content"]
        .as_str()
        .ok_or(NoDecision::Invalid("no message content"))?;
    let parsed: Value = serde_json::from_str(content.trim())
        .map_err(|_| NoDecision::Invalid("the content is not JSON"))?;
    let object = parsed
        .as_object()
        .ok_or(NoDecision::Invalid("the content is not an object"))?;
    if object
        .keys()
        .any(|k| !matches!(k.as_str(), "repo" | "confidence" | "reason"))
    {
        return Err(NoDecision::Invalid("unexpected fields"));
    }
    let confidence = object
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| (0.0..=1.0).contains(c))
        .ok_or(NoDecision::Invalid(
            "confidence must be a number from 0 to 1",
        ))?;
    let reason = match object.get("reason") {
        Some(Value::String(reason)) => reason.chars().take(300).collect(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(NoDecision::Invalid("reason must be text")),
    };
    let repo = match object.get("repo") {
        Some(Value::String(repo)) => repo,
        None | Some(Value::Null) => return Err(NoDecision::Unsure),
        Some(_) => return Err(NoDecision::Invalid("repo must be text or null")),
    };
    let repo = candidates
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(repo))
        .ok_or(NoDecision::NotACandidate)?;
    if confidence < MIN_CONFIDENCE {
        return Err(NoDecision::LowConfidence);
    }
    Ok(Decision {
        repo: repo.name.clone(),
        confidence,
        reason,
    })
}

#[cfg(target_arch = "wasm32")]
pub use model::ask_model;

#[cfg(target_arch = "wasm32")]
mod model {
    use super::{answer, request, Decision, ThreadMessage};
    use crate::config::slack::ClassifierConfig;
    use futures_util::future::{select, Either};
    use protocol::api::Repo;
    use std::time::Duration;
    use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

    /// Asks the model; `None` when it fails, is slow or is not sure (the user picks then).
    pub async fn ask_model(
        classifier: &ClassifierConfig,
        candidates: &[Repo],
        channel_name: &str,
        thread: &[ThreadMessage],
    ) -> Option<Decision> {
        let body = request(&classifier.model, candidates, channel_name, thread);
        let call = Box::pin(async move {
            let headers = Headers::new();
            headers.set("content-type", "application/json")?;
            if let Some(key) = &classifier.api_key {
                headers.set("authorization", &format!("Bearer {}", key.0))?;
            }
            let mut init = RequestInit::new();
            init.with_method(Method::Post)
                .with_headers(headers)
                .with_body(Some(body.to_string().into()));
            let url = format!("{}/chat/completions", classifier.url);
            let mut response = Fetch::Request(Request::new_with_init(&url, &init)?)
                .send()
                .await?;
            let status = response.status_code();
            let json: serde_json::Value = response.json().await.unwrap_or_default();
            Ok::<_, worker::Error>((status, json))
        });
        let timeout = Box::pin(Delay::from(Duration::from_millis(classifier.timeout_ms)));
        let completion = match select(call, timeout).await {
            Either::Left((Ok((200, json)), _)) => json,
            Either::Left((Ok((status, _)), _)) => {
                crate::log::error(&format!("classifier answered {status}"));
                return None;
            }
            Either::Left((Err(error), _)) => {
                crate::log::error(&format!("classifier unreachable: {error}"));
                return None;
            }
            Either::Right(_) => {
                crate::log::info(&format!(
                    "classifier gave no answer within {} ms",
                    classifier.timeout_ms
                ));
                return None;
            }
        };
        match answer(&completion, candidates) {
            Ok(decision) => Some(decision),
            Err(why) => {
                crate::log::info(&format!("classifier answer not taken: {why:?}"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repos(names: &[&str]) -> Vec<Repo> {
        names
            .iter()
            .map(|n| Repo {
                name: n.to_string(),
                description: format!("about {n}"),
                hints: vec![],
                default_branch: "main".into(),
                clone_url: None,
            })
            .collect()
    }

    fn check(text: &str, channel: Option<&str>, candidates: &[&str], expected: Staged) {
        assert_eq!(stage(text, channel, &repos(candidates)), expected, "{text}");
    }

    #[test]
    fn stages() {
        let two = ["acme/web", "acme/demo"];
        use Staged::*;
        check(
            "<@U1> fix it in repo:acme/web please",
            None,
            &two,
            Chosen("acme/web".into(), "named"),
        );
        check(
            "fix it repo:ACME/Demo",
            Some("C1"),
            &two,
            Chosen("acme/demo".into(), "named"),
        );
        check(
            "fix it repo:acme/secret",
            None,
            &two,
            NotAllowed("acme/secret".into()),
        );
        check(
            "the web login is broken.",
            None,
            &two,
            Chosen("acme/web".into(), "named"),
        );
        check("compare web with demo", None, &two, AskModel);
        check(
            "the login is broken",
            Some("acme/demo"),
            &two,
            Chosen("acme/demo".into(), "channel"),
        );
        check("the login is broken", Some("acme/other"), &two, AskModel);
        check(
            "the login is broken",
            None,
            &["acme/web"],
            Chosen("acme/web".into(), "only"),
        );
        check("the login is broken", None, &[], NoCandidates);
        check("webpack config", None, &two, AskModel);
    }

    fn completion(content: &str) -> Value {
        json!({"choices": [{"message": {"role": "assistant", "content": content}}]})
    }

    #[test]
    fn answers() {
        let two = repos(&["acme/web", "acme/demo"]);
        let ok = answer(
            &completion(r#"{"repo": "acme/web", "confidence": 0.9, "reason": "login"}"#),
            &two,
        );
        assert_eq!(ok.map(|d| d.repo), Ok("acme/web".into()));
        for (content, expected) in [
            (
                r#"{"repo": null, "confidence": 0.2, "reason": "?"}"#,
                NoDecision::Unsure,
            ),
            (
                r#"{"repo": "acme/web", "confidence": 0.5, "reason": "x"}"#,
                NoDecision::LowConfidence,
            ),
            (
                r#"{"repo": "acme/else", "confidence": 0.9, "reason": "x"}"#,
                NoDecision::NotACandidate,
            ),
            ("acme/web", NoDecision::Invalid("the content is not JSON")),
            (
                r#"{"repo": "acme/web", "confidence": 2, "reason": "x"}"#,
                NoDecision::Invalid("confidence must be a number from 0 to 1"),
            ),
            (
                r#"{"repo": "acme/web", "confidence": 0.9, "reason": "x", "extra": 1}"#,
                NoDecision::Invalid("unexpected fields"),
            ),
            (
                r#"["acme/web"]"#,
                NoDecision::Invalid("the content is not an object"),
            ),
        ] {
            assert_eq!(
                answer(&completion(content), &two),
                Err(expected),
                "{content}"
            );
        }
        assert_eq!(
            answer(&json!({"error": "x"}), &two),
            Err(NoDecision::Invalid("no message content"))
        );
    }

    #[test]
    fn the_request_carries_candidates_channel_and_the_last_ten_messages() {
        let thread: Vec<ThreadMessage> = (0..12)
            .map(|i| ThreadMessage {
                author: format!("a{i}"),
                text: format!("message {i}"),
            })
            .collect();
        let body = request("fast", &repos(&["acme/web"]), "frontend", &thread);
        assert_eq!(body["model"], "fast");
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["temperature"], 0);
        let user = body["messages"][1]["content"].as_str().unwrap();
        assert!(user.contains("about acme/web") && user.contains("#frontend"));
        assert!(user.contains("a11: message 11") && user.contains("a2: message 2"));
        assert!(!user.contains("a1: message 1\n"));
    }
}
