//! The transcript a new sandbox's agent starts with: the session's earlier prompts, most
//! recent first, each with its author, how it ended, the agent's stored answer, its tool calls
//! and the files it edited, all within [`TRANSCRIPT_BYTES`] of JSON.
//!
//! Pure: the room reads the prompts from SQLite one at a time, newest first
//! (`store::transcript`), and feeds them to a [`Builder`] until it says the transcript is full,
//! so a long session costs only the reads that fit.

use protocol::bridge::{ToolSummary, Transcript, TranscriptPrompt, TRANSCRIPT_BYTES};
use protocol::cut::cut_str;

/// A prompt's text is kept up to this many bytes.
pub const CONTENT_BYTES: usize = 4 * 1024;
/// An answer longer than twice this keeps this much of its start and of its end.
pub const ANSWER_END_BYTES: usize = 3 * 1024;
/// Tool calls and edited files kept per prompt (the first ones), and each call's input.
pub const TOOL_CALLS: usize = 30;
pub const FILES: usize = 50;
pub const TOOL_INPUT_BYTES: usize = 200;
/// At most this many earlier prompts are read, however small: each costs a few reads of the log.
pub const MAX_PROMPTS: u32 = 50;

/// One earlier prompt as the store reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EarlierPrompt {
    pub message_id: String,
    pub author: String,
    pub content: String,
    pub status: String,
    /// The start of the stored answer (its first token events, concatenated) …
    pub answer_head: String,
    /// … and its last ones after those, when there are more.
    pub answer_tail: String,
    /// Whether token events lie between the head and the tail that were not read.
    pub answer_gap: bool,
    /// Every `tool_call` event of the prompt, oldest first: (call id, tool, status, input).
    pub tool_events: Vec<ToolEvent>,
    /// Paths of its `file_edit` events, oldest first (repeats allowed).
    pub files: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolEvent {
    pub call_id: String,
    pub tool: String,
    pub status: String,
    /// The call's input as JSON text (a string input as itself).
    pub input: String,
}

/// Gathers prompts newest first until the next one would not fit.
#[derive(Debug)]
pub struct Builder {
    prompts: Vec<TranscriptPrompt>,
    /// Earlier prompts in all, read or not.
    total: u32,
    /// JSON bytes used so far, envelope included.
    bytes: usize,
    full: bool,
}

impl Builder {
    /// For a session with `total` earlier prompts.
    pub fn new(total: u32) -> Self {
        Builder {
            prompts: Vec::new(),
            total,
            // `{"prompts":[],"omitted":4294967295}`
            bytes: 36,
            full: false,
        }
    }

    /// Adds the next older prompt; false once the transcript is full (this one included: it
    /// did not fit), so the caller stops reading.
    pub fn push(&mut self, earlier: EarlierPrompt) -> bool {
        if self.full || self.prompts.len() as u32 >= self.total.min(MAX_PROMPTS) {
            self.full = true;
            return false;
        }
        let prompt = summarise(earlier);
        let size = serde_json::to_string(&prompt).map_or(usize::MAX, |json| json.len()) + 1;
        if self.bytes.saturating_add(size) > TRANSCRIPT_BYTES {
            self.full = true;
            return false;
        }
        self.bytes += size;
        self.prompts.push(prompt);
        true
    }

    /// `None` when there was nothing earlier.
    pub fn finish(self) -> Option<Transcript> {
        if self.total == 0 {
            return None;
        }
        Some(Transcript {
            omitted: self.total - self.prompts.len() as u32,
            prompts: self.prompts,
        })
    }
}

fn summarise(earlier: EarlierPrompt) -> TranscriptPrompt {
    let (content, cut) = cut_str(&earlier.content, CONTENT_BYTES);
    let content = if cut {
        format!("{content} […]")
    } else {
        content.to_owned()
    };
    TranscriptPrompt {
        message_id: earlier.message_id,
        author: earlier.author,
        content,
        status: earlier.status,
        answer: answer(
            &earlier.answer_head,
            &earlier.answer_tail,
            earlier.answer_gap,
        ),
        tool_calls: tool_calls(&earlier.tool_events),
        files_edited: files(earlier.files),
    }
}

/// The answer whole when it is short, else its start and its end around a note.
pub fn answer(head: &str, tail: &str, gap: bool) -> String {
    if !gap && head.len() + tail.len() <= 2 * ANSWER_END_BYTES {
        return format!("{head}{tail}");
    }
    let whole_known = !gap;
    let (start, _) = cut_str(head, ANSWER_END_BYTES);
    let rest = if whole_known {
        format!("{}{tail}", &head[start.len()..])
    } else if tail.is_empty() {
        head[start.len()..].to_owned()
    } else {
        tail.to_owned()
    };
    let end = last_bytes(&rest, ANSWER_END_BYTES);
    format!("{start}\n[… part of the answer left out …]\n{end}")
}

/// At most the last `limit` bytes of `text`, starting on a character boundary.
fn last_bytes(text: &str, limit: usize) -> &str {
    let mut from = text.len().saturating_sub(limit);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    &text[from..]
}

/// One summary per call, in the order the calls started, with the status it ended in.
fn tool_calls(events: &[ToolEvent]) -> Vec<ToolSummary> {
    let mut calls: Vec<(&str, ToolSummary)> = Vec::new();
    for event in events {
        let (input, cut) = cut_str(&event.input, TOOL_INPUT_BYTES);
        let input = if cut {
            format!("{input}…")
        } else {
            input.to_owned()
        };
        if let Some((_, call)) = calls.iter_mut().find(|(id, _)| *id == event.call_id) {
            call.status = event.status.clone();
            if call.input.is_empty() {
                call.input = input;
            }
        } else if calls.len() < TOOL_CALLS {
            calls.push((
                &event.call_id,
                ToolSummary {
                    tool: event.tool.clone(),
                    status: event.status.clone(),
                    input,
                },
            ));
        }
    }
    calls.into_iter().map(|(_, call)| call).collect()
}

fn files(paths: Vec<String>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for path in paths {
        if seen.len() >= FILES {
            break;
        }
        if !seen.contains(&path) {
            seen.push(path);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earlier(n: usize, answer: &str) -> EarlierPrompt {
        EarlierPrompt {
            message_id: format!("msg_{n}"),
            author: "Ada".into(),
            content: format!("prompt {n}"),
            status: "completed".into(),
            answer_head: answer.into(),
            ..EarlierPrompt::default()
        }
    }

    fn tool(call_id: &str, status: &str, input: &str) -> ToolEvent {
        ToolEvent {
            call_id: call_id.into(),
            tool: "bash".into(),
            status: status.into(),
            input: input.into(),
        }
    }

    #[test]
    fn nothing_earlier_is_no_transcript() {
        assert_eq!(Builder::new(0).finish(), None);
        let mut builder = Builder::new(0);
        assert!(!builder.push(earlier(1, "x")));
        assert_eq!(builder.finish(), None);
    }

    #[test]
    fn prompts_keep_their_order_and_work() {
        let mut builder = Builder::new(2);
        let mut newest = earlier(2, "Working on: prompt 2\n");
        newest.tool_events = vec![
            tool("c1", "running", r#"{"command":"ls"}"#),
            tool("c2", "running", r#"{"command":"make"}"#),
            tool("c1", "completed", r#"{"command":"ls"}"#),
            tool("c2", "error", ""),
        ];
        newest.files = vec!["a.txt".into(), "b.txt".into(), "a.txt".into()];
        assert!(builder.push(newest));
        assert!(builder.push(earlier(1, "hello")));
        assert!(!builder.push(earlier(0, "beyond the total")));
        let transcript = builder.finish().unwrap();
        assert_eq!(transcript.omitted, 0);
        let ids: Vec<&str> = transcript
            .prompts
            .iter()
            .map(|p| p.message_id.as_str())
            .collect();
        assert_eq!(ids, ["msg_2", "msg_1"]);
        let first = &transcript.prompts[0];
        assert_eq!(first.answer, "Working on: prompt 2\n");
        assert_eq!(first.files_edited, ["a.txt", "b.txt"]);
        assert_eq!(
            first.tool_calls,
            [
                ToolSummary {
                    tool: "bash".into(),
                    status: "completed".into(),
                    input: r#"{"command":"ls"}"#.into()
                },
                ToolSummary {
                    tool: "bash".into(),
                    status: "error".into(),
                    input: r#"{"command":"make"}"#.into()
                },
            ]
        );
    }

    #[test]
    fn the_size_is_bounded_and_what_is_left_out_counted() {
        let mut builder = Builder::new(100);
        let long = "é".repeat(20_000);
        let mut pushed = 0;
        for n in (0..100).rev() {
            let mut prompt = earlier(n, &long);
            prompt.content = "x".repeat(10_000);
            prompt.tool_events = (0..100)
                .map(|i| tool(&format!("c{i}"), "completed", &"y".repeat(1000)))
                .collect();
            prompt.files = (0..100).map(|i| format!("file{i}.txt")).collect();
            if !builder.push(prompt) {
                break;
            }
            pushed += 1;
        }
        let transcript = builder.finish().unwrap();
        assert!(
            pushed >= 2,
            "each prompt is cut small enough that several fit"
        );
        assert_eq!(transcript.prompts.len(), pushed);
        assert_eq!(transcript.omitted as usize, 100 - pushed);
        let json = serde_json::to_string(&transcript).unwrap();
        assert!(json.len() <= TRANSCRIPT_BYTES, "{} bytes", json.len());
        let first = &transcript.prompts[0];
        assert_eq!(first.message_id, "msg_99", "most recent first");
        assert!(first.content.len() <= CONTENT_BYTES + 8);
        assert_eq!(first.tool_calls.len(), TOOL_CALLS);
        assert!(first.tool_calls[0].input.len() <= TOOL_INPUT_BYTES + 4);
        assert_eq!(first.files_edited.len(), FILES);
        assert!(first.answer.contains("[… part of the answer left out …]"));
        assert!(first.answer.len() <= 2 * ANSWER_END_BYTES + 64);
    }

    #[test]
    fn at_most_so_many_prompts_are_read() {
        let mut builder = Builder::new(500);
        let mut pushed = 0;
        while builder.push(earlier(pushed, "ok")) {
            pushed += 1;
        }
        assert_eq!(pushed, MAX_PROMPTS as usize);
        let transcript = builder.finish().unwrap();
        assert_eq!(transcript.omitted, 500 - MAX_PROMPTS);
    }

    #[test]
    fn long_answers_keep_their_start_and_end() {
        assert_eq!(answer("ab", "cd", false), "abcd");
        let head = format!("START{}", "h".repeat(5000));
        let tail = format!("{}END", "t".repeat(5000));
        for gap in [false, true] {
            let text = answer(&head, &tail, gap);
            assert!(text.starts_with("START"), "{gap}");
            assert!(text.ends_with("END"), "{gap}");
            assert!(text.len() < 2 * ANSWER_END_BYTES + 64);
        }
        // Only a head, longer than fits: its end is kept.
        let text = answer(&format!("A{}Z", "m".repeat(9000)), "", true);
        assert!(text.starts_with('A') && text.ends_with('Z'));
        // Multi-byte text is cut on character boundaries.
        let text = answer(&"é".repeat(5000), &"ü".repeat(5000), false);
        assert!(text.starts_with('é') && text.ends_with('ü'));
    }
}
