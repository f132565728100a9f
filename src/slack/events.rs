//! What a Slack Events API payload means, pure and tested natively: a mention of the bot or a
//! message in a direct conversation to act on (`Incoming`), or a reason to ignore it (bots,
//! the app's own messages, subtypes); the mention stripped, thread order, the messages posted
//! between two prompts, a session's title. The Worker's side is `receive.rs`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message to act on: a mention of the bot, or a message in a direct conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    pub team_id: String,
    pub channel_id: String,
    /// The Slack user who wrote it.
    pub user_id: String,
    /// The text without the mention of the bot.
    pub text: String,
    pub ts: String,
    /// The thread it belongs to: its parent's `ts`, or its own when it starts one.
    pub thread_ts: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Act(Incoming),
    Ignored(&'static str),
}

/// What an `event_callback` payload means. `bot_user_id` is the app's own user (from the
/// payload's `authorizations`, or `auth.test`).
pub fn parse_event(payload: &Value, bot_user_id: Option<&str>) -> Parsed {
    let event = &payload["event"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match event["type"].as_str() {
        Some("app_mention") => {}
        Some("message") if event["channel_type"] == "im" => {}
        Some("message") => return Parsed::Ignored("a channel message without a mention"),
        _ => return Parsed::Ignored("an event this app does not act on"),
    }
    if !event["bot_id"].is_null()
        || event["subtype"] == "bot_message"
        || !event["bot_profile"].is_null()
    {
        return Parsed::Ignored("a message from a bot");
    }
    if !event["subtype"].is_null() {
        return Parsed::Ignored("not a new message (edited, deleted, joined …)");
    }
    let (Some(user_id), Some(channel_id), Some(ts)) = (
        text(&event["user"]),
        text(&event["channel"]),
        text(&event["ts"]),
    ) else {
        return Parsed::Ignored("a message without its user, channel or ts");
    };
    if bot_user_id == Some(user_id.as_str()) {
        return Parsed::Ignored("the app's own message");
    }
    let team_id = text(&payload["team_id"])
        .or_else(|| text(&event["team"]))
        .unwrap_or_default();
    let body = strip_mention(event["text"].as_str().unwrap_or_default(), bot_user_id);
    if body.is_empty() {
        return Parsed::Ignored("a mention with nothing asked");
    }
    let thread_ts = text(&event["thread_ts"]).unwrap_or_else(|| ts.clone());
    Parsed::Act(Incoming {
        team_id,
        channel_id,
        user_id,
        text: body,
        ts,
        thread_ts,
    })
}

/// The app's user id as the payload's `authorizations` name it.
pub fn bot_user_of(payload: &Value) -> Option<&str> {
    payload["authorizations"]
        .as_array()?
        .iter()
        .find(|a| a["is_bot"] == true)
        .and_then(|a| a["user_id"].as_str())
}

/// The text without mentions of the bot (`<@U123>`), line breaks kept; the leading mention
/// when the bot's id is not known.
pub fn strip_mention(text: &str, bot_user_id: Option<&str>) -> String {
    let mut rest = text.trim();
    let mut out = String::new();
    let mut first = true;
    while let Some(start) = rest.find("<@") {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let mention = &rest[start + 2..start + len];
        let id = mention.split('|').next().unwrap_or_default();
        let is_bot = match bot_user_id {
            Some(bot) => id == bot,
            None => first && rest[..start].trim().is_empty(),
        };
        first = false;
        out.push_str(&rest[..start]);
        if is_bot {
            rest = &rest[start + len + 1..];
            if out.trim().is_empty() || out.ends_with(' ') {
                rest = rest.trim_start_matches(' ');
            }
        } else {
            out.push_str(&rest[start..start + len + 1]);
            rest = &rest[start + len + 1..];
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// Slack's `ts` as a sortable pair (seconds, micro part): `"1700000000.000100"`.
pub fn ts_key(ts: &str) -> (u64, u64) {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    (secs.parse().unwrap_or(0), frac.parse().unwrap_or(0))
}

/// A message of the thread written by a person (not a bot, not a join or an edit).
pub fn is_human(message: &Value, bot_user_id: Option<&str>) -> bool {
    message["bot_id"].is_null()
        && message["subtype"].is_null()
        && message["user"]
            .as_str()
            .is_some_and(|u| Some(u) != bot_user_id)
}

/// The human messages of a thread after `after_ts` and before `before_ts` (exclusive).
pub fn messages_between<'a>(
    messages: &'a [Value],
    bot_user_id: Option<&str>,
    after_ts: &str,
    before_ts: &str,
) -> Vec<&'a Value> {
    let (after, before) = (ts_key(after_ts), ts_key(before_ts));
    messages
        .iter()
        .filter(|m| is_human(m, bot_user_id))
        .filter(|m| {
            let at = ts_key(m["ts"].as_str().unwrap_or_default());
            at > after && at < before
        })
        .collect()
}

/// A session's title from the request: its first line, at most 80 characters.
pub fn title_of(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(fields: Value) -> Value {
        let mut event = json!({"type": "app_mention", "user": "U1", "channel": "C1", "ts": "100.000200", "text": "<@UBOT> fix the login"});
        for (k, v) in fields.as_object().unwrap() {
            event[k] = v.clone();
        }
        json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event,
               "authorizations": [{"user_id": "UBOT", "is_bot": true}]})
    }

    fn check(fields: Value, expected: Result<(&str, &str), &str>) {
        let payload = event(fields);
        let parsed = parse_event(&payload, bot_user_of(&payload));
        match (parsed, expected) {
            (Parsed::Act(incoming), Ok((text, thread_ts))) => {
                assert_eq!(
                    (incoming.text.as_str(), incoming.thread_ts.as_str()),
                    (text, thread_ts)
                );
                assert_eq!(incoming.team_id, "T1");
            }
            (Parsed::Ignored(why), Err(expected)) => assert_eq!(why, expected),
            (parsed, expected) => panic!("{parsed:?} is not {expected:?}"),
        }
    }

    #[test]
    fn events() {
        check(json!({}), Ok(("fix the login", "100.000200")));
        check(json!({"thread_ts": "99.1"}), Ok(("fix the login", "99.1")));
        check(
            json!({"type": "message", "channel_type": "im", "text": "hello there"}),
            Ok(("hello there", "100.000200")),
        );
        check(
            json!({"type": "message", "channel_type": "channel"}),
            Err("a channel message without a mention"),
        );
        check(json!({"bot_id": "B1"}), Err("a message from a bot"));
        check(
            json!({"subtype": "bot_message"}),
            Err("a message from a bot"),
        );
        check(
            json!({"subtype": "message_changed"}),
            Err("not a new message (edited, deleted, joined …)"),
        );
        check(json!({"user": "UBOT"}), Err("the app's own message"));
        check(
            json!({"text": "<@UBOT>"}),
            Err("a mention with nothing asked"),
        );
        check(
            json!({"type": "reaction_added"}),
            Err("an event this app does not act on"),
        );
        check(
            json!({"user": null}),
            Err("a message without its user, channel or ts"),
        );
    }

    #[test]
    fn mentions() {
        assert_eq!(
            strip_mention("<@UBOT> ask <@U2> about it", Some("UBOT")),
            "ask <@U2> about it"
        );
        assert_eq!(
            strip_mention("hey <@UBOT|bot>, fix it", Some("UBOT")),
            "hey , fix it"
        );
        assert_eq!(strip_mention("<@UX> <@U2> fix", None), "<@U2> fix");
        assert_eq!(
            strip_mention("<@UBOT> fix it\nwrite a: b", Some("UBOT")),
            "fix it\nwrite a: b"
        );
    }

    #[test]
    fn thread_messages() {
        let messages = vec![
            json!({"user": "U1", "ts": "100.000100", "text": "first"}),
            json!({"user": "U2", "ts": "100.000300", "text": "second"}),
            json!({"bot_id": "B1", "user": "UBOT", "ts": "100.000400", "text": "status"}),
            json!({"user": "U2", "ts": "100.000500", "subtype": "channel_join"}),
            json!({"user": "U3", "ts": "100.000900", "text": "third"}),
            json!({"user": "U1", "ts": "101.000000", "text": "the mention"}),
        ];
        let texts = |after: &str| -> Vec<String> {
            messages_between(&messages, Some("UBOT"), after, "101.000000")
                .iter()
                .map(|m| m["text"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(texts("0"), ["first", "second", "third"]);
        assert_eq!(texts("100.000100"), ["second", "third"]);
        assert!(ts_key("100.000900") < ts_key("101.000000"));
        assert!(ts_key("100.000900") > ts_key("100.000300"));
    }

    #[test]
    fn titles() {
        assert_eq!(title_of("fix the login\nand more"), "fix the login");
        assert_eq!(title_of(&"x".repeat(100)).chars().count(), 81);
    }
}
