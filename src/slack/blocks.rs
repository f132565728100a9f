//! What the bot posts, as Block Kit: the status line of a prompt, the final reply (the answer
//! in Slack's mrkdwn, cut when long, the files changed, the branch or pull request, and the
//! "Open session" and "Create pull request" buttons), the repository picker, and short
//! notices. Also Markdown → mrkdwn. Pure, tested natively.

use serde_json::{json, Value};

/// An answer longer than this (in characters) is cut, with a link to the rest.
pub const ANSWER_CHARS: usize = 2900;

/// Action ids of the buttons and the picker (`/v1/slack/interactions` reads them back).
pub const PICK_REPO: &str = "pick_repo";
pub const CREATE_PR: &str = "create_pr";
pub const OPEN_SESSION: &str = "open_session";

/// Up to this many candidates the picker is buttons; more, a menu.
const PICKER_BUTTONS: usize = 5;

/// Where a prompt is, as its status message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Queued,
    SandboxStarting,
    /// Running; the tool running now, if any.
    Working(Option<String>),
    Done,
    Failed(String),
    Cancelled,
    TimedOut,
}

impl Progress {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Progress::Done | Progress::Failed(_) | Progress::Cancelled | Progress::TimedOut
        )
    }

    /// The status message's text.
    pub fn text(&self) -> String {
        match self {
            Progress::Queued => ":hourglass_flowing_sand: queued".into(),
            Progress::SandboxStarting => ":package: sandbox starting".into(),
            Progress::Working(None) => ":hammer_and_wrench: working".into(),
            Progress::Working(Some(tool)) => {
                format!(":hammer_and_wrench: working: {}", escape(&clip(tool, 80)))
            }
            Progress::Done => ":white_check_mark: done".into(),
            Progress::Failed(why) => format!(":x: failed: {}", escape(&clip(why, 300))),
            Progress::Cancelled => ":no_entry_sign: cancelled".into(),
            Progress::TimedOut => ":alarm_clock: timed out".into(),
        }
    }
}

/// `&`, `<` and `>` as Slack wants them in text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn clip(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Markdown (as agents write it) → Slack mrkdwn: bold, italics, strike-through, links,
/// headings and bullets; code spans and blocks are kept as they are (escaped only).
pub fn mrkdwn(markdown: &str) -> String {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        let escaped = escape(line);
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            out.push(escaped);
            continue;
        }
        if in_fence {
            out.push(escaped);
            continue;
        }
        let trimmed = escaped.trim_start();
        let indent = &escaped[..escaped.len() - trimmed.len()];
        let heading = trimmed.trim_start_matches('#');
        let line = if heading.len() < trimmed.len() && heading.starts_with(' ') {
            format!("*{}*", inline(heading.trim()).replace('*', ""))
        } else if let Some(item) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
            .or_else(|| trimmed.strip_prefix("+ "))
        {
            format!("{indent}• {}", inline(item))
        } else {
            format!("{indent}{}", inline(trimmed))
        };
        out.push(line);
    }
    out.join("\n")
}

/// Inline Markdown outside code spans.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            out.push_str(part);
        } else {
            out.push_str(&emphasis(&links(part)));
        }
    }
    out
}

/// `[text](url)` → `<url|text>`.
fn links(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find("](") else { break };
        let Some(end) = after[close + 2..].find(')') else {
            break;
        };
        let label = &after[..close];
        let url = &after[close + 2..close + 2 + end];
        if label.contains('[') || url.contains(char::is_whitespace) || url.is_empty() {
            out.push_str(&rest[..open + 1]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..open]);
        out.push_str(&format!("<{url}|{label}>"));
        rest = &after[close + 2 + end + 1..];
    }
    out.push_str(rest);
    out
}

/// `**b**`/`__b__` → `*b*`, `*i*`/`_i_` → `_i_`, `~~s~~` → `~s~`.
fn emphasis(text: &str) -> String {
    // Bold is marked first with a character Markdown never carries, so the single `*` of
    // italics can be told from it.
    const BOLD: char = '\u{1}';
    let text = text
        .replace("**", &BOLD.to_string())
        .replace("__", &BOLD.to_string())
        .replace("~~", "~");
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut open_italic = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == '*' {
            let before = i.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i + 1).copied();
            let opens = !open_italic
                && after.is_some_and(|a| !a.is_whitespace())
                && before.is_none_or(|b| b.is_whitespace() || b.is_ascii_punctuation())
                && chars[i + 1..].contains(&'*');
            let closes = open_italic && before.is_some_and(|b| !b.is_whitespace());
            if opens || closes {
                open_italic = opens;
                out.push('_');
                continue;
            }
        }
        out.push(if c == BOLD { '*' } else { c });
    }
    out
}

/// An answer cut to [`ANSWER_CHARS`] at a line or word break, and whether it was cut.
pub fn cut(answer: &str) -> (String, bool) {
    let Some((at, _)) = answer.char_indices().nth(ANSWER_CHARS) else {
        return (answer.to_owned(), false);
    };
    let head = &answer[..at];
    let at = head
        .rfind('\n')
        .filter(|&i| i > at / 2)
        .or_else(|| head.rfind(' ').filter(|&i| i > at / 2))
        .unwrap_or(at);
    (answer[..at].trim_end().to_owned(), true)
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
}

fn button(text: &str, action_id: &str, value: &str) -> Value {
    json!({"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id, "value": value})
}

/// What the final reply says.
#[derive(Clone, Debug, Default)]
pub struct FinalReply<'a> {
    pub session_id: &'a str,
    /// The web page's link to the session.
    pub session_url: &'a str,
    /// The stored text of the prompt, as Markdown.
    pub answer: &'a str,
    /// The error of a prompt that did not complete.
    pub failure: Option<String>,
    pub files: &'a [String],
    /// The branch the work was pushed to, and its page when there is one.
    pub branch: Option<(String, Option<String>)>,
    /// The pull request: its number and URL.
    pub pull_request: Option<(u64, String)>,
    /// Whether to offer "Create pull request".
    pub offer_pull_request: bool,
}

/// The final reply: a fallback text and the blocks.
pub fn final_reply(reply: &FinalReply) -> (String, Value) {
    let mut blocks = Vec::new();
    let answer = reply.answer.trim();
    let (text, was_cut) = cut(&mrkdwn(answer));
    let mut answer_block = if text.is_empty() {
        section("_(no answer)_")
    } else {
        section(&text)
    };
    answer_block["block_id"] = json!("answer");
    blocks.push(answer_block);
    if was_cut {
        blocks.push(context(&format!(
            "… <{}|(the rest in the session)>",
            reply.session_url
        )));
    }
    if let Some(failure) = &reply.failure {
        blocks.push(section(&format!(":x: {}", escape(&clip(failure, 500)))));
    }
    if !reply.files.is_empty() {
        let shown: Vec<String> = reply
            .files
            .iter()
            .take(20)
            .map(|f| format!("`{}`", escape(f)))
            .collect();
        let more = reply.files.len().saturating_sub(shown.len());
        let mut text = format!("*Files changed:* {}", shown.join(", "));
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        let mut block = section(&text);
        block["block_id"] = json!("files");
        blocks.push(block);
    }
    match (&reply.pull_request, &reply.branch) {
        (Some((number, url)), _) => {
            blocks.push(section(&format!("*Pull request:* <{url}|#{number}>")))
        }
        (None, Some((branch, Some(url)))) => {
            blocks.push(section(&format!("*Branch:* <{url}|{}>", escape(branch))))
        }
        (None, Some((branch, None))) => {
            blocks.push(section(&format!("*Branch:* `{}`", escape(branch))))
        }
        (None, None) => {}
    }
    let mut buttons = vec![json!({
        "type": "button",
        "text": {"type": "plain_text", "text": "Open session"},
        "action_id": OPEN_SESSION,
        "url": reply.session_url,
    })];
    if reply.offer_pull_request && reply.pull_request.is_none() {
        buttons.push(button("Create pull request", CREATE_PR, reply.session_id));
    }
    blocks.push(json!({"type": "actions", "block_id": "session", "elements": buttons}));
    let fallback = if text.is_empty() {
        "Done".to_owned()
    } else {
        clip(answer, 200)
    };
    (fallback, Value::Array(blocks))
}

/// The picker: buttons for up to five candidates, a menu for more.
pub fn picker(candidates: &[String], why: &str) -> (String, Value) {
    let text = format!("Which repository is this about? {}", escape(why));
    let chooser = if candidates.len() <= PICKER_BUTTONS {
        json!({"type": "actions", "block_id": "picker", "elements": candidates
            .iter()
            .map(|r| button(r, PICK_REPO, r))
            .collect::<Vec<_>>()})
    } else {
        json!({"type": "actions", "block_id": "picker", "elements": [{
            "type": "static_select",
            "action_id": PICK_REPO,
            "placeholder": {"type": "plain_text", "text": "Choose a repository"},
            "options": candidates.iter().take(100).map(|r| json!({
                "text": {"type": "plain_text", "text": clip(r, 75)},
                "value": r,
            })).collect::<Vec<_>>(),
        }]})
    };
    (text.clone(), json!([section(&text), chooser]))
}

/// What replaces the picker once a repository is chosen.
pub fn working_in(repo: &str) -> (String, Value) {
    let text = format!("Working on it in `{}`", escape(repo));
    (text.clone(), json!([section(&text)]))
}

/// A plain notice in a thread.
pub fn notice(text: &str) -> (String, Value) {
    (text.to_owned(), json!([section(text)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(markdown: &str, expected: &str) {
        assert_eq!(mrkdwn(markdown), expected, "{markdown}");
    }

    #[test]
    fn markdown_to_mrkdwn() {
        check("plain text stays", "plain text stays");
        check(
            "**bold** and *italic* and _also_",
            "*bold* and _italic_ and _also_",
        );
        check("__bold__ ~~gone~~", "*bold* ~gone~");
        check(
            "see [the docs](https://x.example/a?b=1)",
            "see <https://x.example/a?b=1|the docs>",
        );
        check("# Title\n## Sub *x*", "*Title*\n*Sub _x_*");
        check("- one\n* two\n  + three", "• one\n• two\n  • three");
        check("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d");
        check("`**not bold**` **bold**", "`**not bold**` *bold*");
        check("```\n**kept** <x>\n```", "```\n**kept** &lt;x&gt;\n```");
        check("2 * 3 * 4", "2 * 3 * 4");
        check("[broken](no close", "[broken](no close");
    }

    #[test]
    fn long_answers_are_cut_at_a_break() {
        let short = "Working on: x";
        assert_eq!(cut(short), (short.to_owned(), false));
        let long = "word ".repeat(1000);
        let (text, was_cut) = cut(&long);
        assert!(was_cut);
        assert!(text.chars().count() <= ANSWER_CHARS);
        assert!(text.ends_with("word"));
        let wide = "é".repeat(5000);
        assert_eq!(cut(&wide).0.chars().count(), ANSWER_CHARS);
    }

    #[test]
    fn final_reply_blocks() {
        let files = vec!["src/a.rs".to_owned(), "b<c>.md".to_owned()];
        let reply = FinalReply {
            session_id: "ses_1",
            session_url: "https://c.example/#/s/ses_1",
            answer: "Fixed **it**.\n",
            files: &files,
            branch: Some(("agent/ses_1".into(), None)),
            offer_pull_request: true,
            ..Default::default()
        };
        let (text, blocks) = final_reply(&reply);
        assert_eq!(text, "Fixed **it**.");
        let blocks = blocks.as_array().unwrap();
        assert_eq!(blocks[0]["block_id"], "answer");
        assert_eq!(blocks[0]["text"]["text"], "Fixed *it*.");
        assert_eq!(
            blocks[1]["text"]["text"],
            "*Files changed:* `src/a.rs`, `b&lt;c&gt;.md`"
        );
        assert_eq!(blocks[2]["text"]["text"], "*Branch:* `agent/ses_1`");
        let buttons = blocks[3]["elements"].as_array().unwrap();
        assert_eq!(buttons[0]["url"], "https://c.example/#/s/ses_1");
        assert_eq!(buttons[1]["action_id"], CREATE_PR);
        assert_eq!(buttons[1]["value"], "ses_1");

        let long = "x ".repeat(2000);
        let with_pr = FinalReply {
            answer: &long,
            pull_request: Some((7, "https://gh.example/acme/web/pull/7".into())),
            offer_pull_request: true,
            ..reply
        };
        let (_, blocks) = final_reply(&with_pr);
        let blocks = blocks.as_array().unwrap();
        assert!(blocks[1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("the rest in the session"));
        assert!(blocks.iter().any(
            |b| b["text"]["text"] == "*Pull request:* <https://gh.example/acme/web/pull/7|#7>"
        ));
        let buttons = blocks.last().unwrap()["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 1, "no Create pull request once one is open");
    }

    #[test]
    fn pickers_and_progress() {
        let few: Vec<String> = vec!["acme/web".into(), "acme/demo".into()];
        let (_, blocks) = picker(&few, "");
        assert_eq!(blocks[1]["elements"][1]["value"], "acme/demo");
        assert_eq!(blocks[1]["elements"][0]["action_id"], PICK_REPO);
        let many: Vec<String> = (0..7).map(|i| format!("acme/r{i}")).collect();
        let (_, blocks) = picker(&many, "");
        assert_eq!(blocks[1]["elements"][0]["type"], "static_select");
        assert_eq!(blocks[1]["elements"][0]["options"][6]["value"], "acme/r6");
        assert_eq!(
            Progress::Working(Some("bash".into())).text(),
            ":hammer_and_wrench: working: bash"
        );
        assert!(Progress::Failed("x".into()).is_final() && !Progress::Queued.is_final());
    }
}
