//! Frames on their way to the coordinator.
//!
//! Critical frames (tool calls, file edits, artifacts, `pushed`, `done`, `error`,
//! `snapshot_taken`) get an `ack_id` and stay here until the coordinator acknowledges them; a new
//! connection sends them again, in their original order. `token` frames get their `offset` (the
//! bytes of the prompt's answer before them) and stay until the room says it stored the text
//! that far (`tokens_ack`, or `resume` after a reconnect), so a room that crashed with text in
//! memory gets it again; the room drops what it already holds. Unacknowledged text is bounded
//! ([`MAX_UNACKED_TEXT`]): past it the oldest goes, and the room reports the hole when the
//! prompt ends (`done` carries `text_bytes`). Everything leaves in the order it was pushed, so the
//! frames of one prompt never overtake each other.

use protocol::bridge::FromBridge;
use std::collections::VecDeque;

/// Token deltas waiting to be sent are merged up to this size, so a long disconnection leaves
/// few large frames instead of thousands of tiny ones, still well under the room's frame limit.
const MAX_MERGED_DELTA: usize = 16 * 1024;
/// Answer text kept until the room has stored it. A connected room acknowledges every batch
/// within a fraction of a second; this much only piles up while it is away for long.
pub const MAX_UNACKED_TEXT: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Outbox {
    ack_prefix: String,
    n_acks: u64,
    entries: VecDeque<FromBridge>,
    /// `entries[..n_sent]` went out on the current connection and wait for their ack (by
    /// `ack_id`, or by offset for tokens).
    n_sent: usize,
    /// The prompt whose answer is streaming, and the bytes of it so far: the next offset.
    text: Option<(String, u64)>,
    /// Bytes of token text held in `entries`.
    text_held: usize,
}

impl Outbox {
    /// `ack_prefix` must differ between runs of the bridge: the coordinator ignores ack ids it
    /// has already seen, so a restarted bridge reusing them would lose frames.
    pub fn new(ack_prefix: impl Into<String>) -> Self {
        Outbox {
            ack_prefix: ack_prefix.into(),
            n_acks: 0,
            entries: VecDeque::new(),
            n_sent: 0,
            text: None,
            text_held: 0,
        }
    }

    /// Queues a frame; a critical one gets a fresh `ack_id` (whatever it carried), returned
    /// here. A token gets its offset, and `done` the bytes of its prompt's answer.
    pub fn push(&mut self, mut frame: FromBridge) -> Option<String> {
        match &mut frame {
            FromBridge::Token {
                message_id, delta, ..
            } => {
                let mut start = match &self.text {
                    Some((id, end)) if id == message_id => *end,
                    _ => 0,
                };
                // A long delta goes in pieces, each well under the room's frame limit.
                let mut rest = delta.as_str();
                while !rest.is_empty() {
                    let (piece, _) = protocol::cut::cut_str(rest, MAX_MERGED_DELTA);
                    let piece = if piece.is_empty() { rest } else { piece };
                    self.text_held += piece.len();
                    self.push_token(FromBridge::Token {
                        message_id: message_id.clone(),
                        delta: piece.to_owned(),
                        offset: Some(start),
                    });
                    start += piece.len() as u64;
                    rest = &rest[piece.len()..];
                }
                self.text = Some((message_id.clone(), start));
                self.keep_text_bounded();
                return None;
            }
            FromBridge::Done {
                message_id,
                text_bytes,
                ..
            } if text_bytes.is_none() => {
                *text_bytes = Some(match &self.text {
                    Some((id, end)) if id == message_id => *end,
                    _ => 0,
                });
            }
            _ => {}
        }
        let ack_id = if is_critical(&frame) {
            self.n_acks += 1;
            let id = format!("{}-{}", self.ack_prefix, self.n_acks);
            set_ack_id(&mut frame, id.clone());
            Some(id)
        } else {
            None
        };
        self.entries.push_back(frame);
        ack_id
    }

    /// A token, merged into the last one when that one is unsent and of the same prompt.
    fn push_token(&mut self, frame: FromBridge) {
        let last_is_unsent = self.entries.len() > self.n_sent;
        if let FromBridge::Token {
            message_id, delta, ..
        } = &frame
        {
            if let Some(FromBridge::Token {
                message_id: last_id,
                delta: last_delta,
                ..
            }) = self.entries.back_mut().filter(|_| last_is_unsent)
            {
                if last_id == message_id && last_delta.len() + delta.len() <= MAX_MERGED_DELTA {
                    last_delta.push_str(delta);
                    return;
                }
            }
        }
        self.entries.push_back(frame);
    }

    /// Past [`MAX_UNACKED_TEXT`], the oldest text goes: the room will say it is missing.
    fn keep_text_bounded(&mut self) {
        while self.text_held > MAX_UNACKED_TEXT {
            let Some(index) = self
                .entries
                .iter()
                .position(|f| matches!(f, FromBridge::Token { .. }))
            else {
                return;
            };
            if let Some(FromBridge::Token { delta, .. }) = self.remove(index) {
                crate::log!(
                    "outbox",
                    "dropping {} bytes of answer text the room has not stored",
                    delta.len()
                );
            }
        }
    }

    /// Removes one entry, keeping `n_sent` and `text_held` true.
    fn remove(&mut self, index: usize) -> Option<FromBridge> {
        let frame = self.entries.remove(index)?;
        if index < self.n_sent {
            self.n_sent -= 1;
        }
        if let FromBridge::Token { delta, .. } = &frame {
            self.text_held -= delta.len();
        }
        Some(frame)
    }

    /// The room holds the text of `message_id` up to `offset`: what lies before goes, and a
    /// token it cuts keeps only its rest.
    pub fn ack_text(&mut self, message_id: &str, offset: u64) {
        let mut index = 0;
        while index < self.entries.len() {
            let FromBridge::Token {
                message_id: id,
                delta,
                offset: Some(start),
            } = &mut self.entries[index]
            else {
                index += 1;
                continue;
            };
            if id != message_id {
                index += 1;
                continue;
            }
            let end = *start + delta.len() as u64;
            if end <= offset {
                self.remove(index);
                continue;
            }
            if *start < offset {
                let cut = (offset - *start) as usize;
                if delta.is_char_boundary(cut) {
                    delta.drain(..cut);
                    *start = offset;
                    self.text_held -= cut;
                }
            }
            index += 1;
        }
    }

    /// The outbox a journal kept: its critical frames and the answer text the room had not
    /// acknowledged go out again, in their order, with ack ids continuing from where the
    /// earlier process stopped; the answer streaming then continues from its last offset.
    pub fn restore(ack_prefix: String, n_acks: u64, unacked: Vec<FromBridge>) -> Self {
        let mut text = None;
        let mut text_held = 0;
        for frame in &unacked {
            if let FromBridge::Token {
                message_id,
                delta,
                offset,
            } = frame
            {
                text_held += delta.len();
                text = Some((message_id.clone(), offset.unwrap_or(0) + delta.len() as u64));
            }
        }
        Outbox {
            ack_prefix,
            n_acks,
            entries: unacked.into(),
            n_sent: 0,
            text,
            text_held,
        }
    }

    /// What a journal keeps: the ack id prefix and counter, and every frame not acknowledged
    /// (critical frames, and token text by its offset, at most [`MAX_UNACKED_TEXT`]).
    pub fn to_journal(&self) -> (String, u64, Vec<FromBridge>) {
        let unacked = self.entries.iter().cloned().collect();
        (self.ack_prefix.clone(), self.n_acks, unacked)
    }

    /// Whether token text is held (and so worth journaling even without a critical frame).
    pub fn holds_text(&self) -> bool {
        self.text_held > 0
    }

    /// The next frame to write on the current connection.
    pub fn next_unsent(&self) -> Option<&FromBridge> {
        self.entries.get(self.n_sent)
    }

    /// The frame `next_unsent` returned was written.
    pub fn mark_sent(&mut self) {
        if self.n_sent < self.entries.len() {
            self.n_sent += 1;
        }
    }

    /// Forgets the frame with this ack id; false when there is none (a duplicate ack). Once a
    /// prompt's `done` is acknowledged, the room takes no more of its text.
    pub fn ack(&mut self, ack_id: &str) -> bool {
        let Some(index) = self
            .entries
            .iter()
            .position(|frame| frame.ack_id() == Some(ack_id))
        else {
            return false;
        };
        if let Some(FromBridge::Done { message_id, .. }) = self.remove(index) {
            self.ack_text(&message_id, u64::MAX);
        }
        true
    }

    /// A new connection: every frame still here goes out again, oldest first.
    pub fn rewind(&mut self) {
        self.n_sent = 0;
    }

    /// Critical frames not yet acknowledged, sent or not.
    pub fn n_unacked(&self) -> usize {
        self.entries
            .iter()
            .filter(|frame| frame.ack_id().is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

pub fn is_critical(frame: &FromBridge) -> bool {
    matches!(
        frame,
        FromBridge::ToolCall { .. }
            | FromBridge::FileEdit { .. }
            | FromBridge::Artifact { .. }
            | FromBridge::Done { .. }
            | FromBridge::Error { .. }
            | FromBridge::SnapshotTaken { .. }
            | FromBridge::Pushed { .. }
    )
}

fn set_ack_id(frame: &mut FromBridge, id: String) {
    match frame {
        FromBridge::ToolCall { ack_id, .. }
        | FromBridge::FileEdit { ack_id, .. }
        | FromBridge::Artifact { ack_id, .. } => *ack_id = Some(id),
        FromBridge::Done { ack_id, .. }
        | FromBridge::Error { ack_id, .. }
        | FromBridge::SnapshotTaken { ack_id, .. }
        | FromBridge::Pushed { ack_id, .. } => *ack_id = id,
        FromBridge::Ready { .. } | FromBridge::Heartbeat {} | FromBridge::Token { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::event::FileEdit;

    fn token(delta: &str) -> FromBridge {
        token_of("m1", delta)
    }

    fn token_of(message_id: &str, delta: &str) -> FromBridge {
        FromBridge::Token {
            message_id: message_id.into(),
            delta: delta.into(),
            offset: None,
        }
    }

    fn edit(path: &str) -> FromBridge {
        FromBridge::FileEdit {
            edit: FileEdit {
                message_id: "m1".into(),
                path: path.into(),
                diff: None,
                truncated: false,
                artifact_id: None,
            },
            ack_id: None,
        }
    }

    fn done() -> FromBridge {
        FromBridge::Done {
            message_id: "m1".into(),
            ok: true,
            error: None,
            text_bytes: None,
            ack_id: String::new(),
        }
    }

    /// Writes everything unsent and describes it: `t<offset>:<delta>` for tokens, `<ack_id>`
    /// otherwise.
    fn flush(outbox: &mut Outbox) -> Vec<String> {
        let mut sent = Vec::new();
        while let Some(frame) = outbox.next_unsent() {
            sent.push(match frame {
                FromBridge::Token { delta, offset, .. } => {
                    format!("t{}:{delta}", offset.unwrap_or(u64::MAX))
                }
                other => other.ack_id().unwrap_or("?").to_string(),
            });
            outbox.mark_sent();
        }
        sent
    }

    #[test]
    fn critical_frames_get_fresh_ack_ids_and_tokens_offsets() {
        let mut outbox = Outbox::new("b1");
        assert_eq!(outbox.push(token("a")), None);
        assert_eq!(outbox.push(edit("x")).as_deref(), Some("b1-1"));
        assert_eq!(outbox.push(token("bé")), None);
        assert_eq!(outbox.push(done()).as_deref(), Some("b1-2"));
        assert_eq!(flush(&mut outbox), ["t0:a", "b1-1", "t1:bé", "b1-2"]);
        assert_eq!(outbox.n_unacked(), 2);
        // `done` says how much text the prompt produced; the next prompt counts from 0.
        let Some(FromBridge::Done { text_bytes, .. }) = outbox.entries.back() else {
            panic!("done is last");
        };
        assert_eq!(*text_bytes, Some(4));
        outbox.push(token_of("m2", "c"));
        assert_eq!(flush(&mut outbox), ["t0:c"]);
    }

    #[test]
    fn unacked_frames_and_text_go_out_again_in_order() {
        let mut outbox = Outbox::new("b");
        outbox.push(token("a"));
        outbox.push(edit("x")); // b-1
        outbox.push(token("b"));
        outbox.push(edit("y")); // b-2
        assert_eq!(flush(&mut outbox), ["t0:a", "b-1", "t1:b", "b-2"]);
        assert!(outbox.ack("b-1"));
        outbox.ack_text("m1", 1);
        // Disconnected: these wait.
        outbox.push(token("c"));
        outbox.push(done()); // b-3
        outbox.rewind();
        assert_eq!(flush(&mut outbox), ["t1:b", "b-2", "t2:c", "b-3"]);
        // Acked frames and stored text never come back; the rest does, every time.
        outbox.ack_text("m1", 2);
        outbox.rewind();
        assert_eq!(flush(&mut outbox), ["b-2", "t2:c", "b-3"]);
        assert!(outbox.ack("b-2"));
        // The prompt's `done` acknowledged: its text is of no more use to the room.
        assert!(outbox.ack("b-3"));
        assert!(!outbox.ack("b-3"));
        outbox.rewind();
        assert_eq!(flush(&mut outbox), Vec::<String>::new());
        assert!(outbox.is_empty());
        assert_eq!(outbox.text_held, 0);
    }

    #[test]
    fn ack_before_resend_and_ack_of_unknown_ids() {
        let mut outbox = Outbox::new("b");
        outbox.push(edit("x"));
        outbox.push(edit("y"));
        assert_eq!(flush(&mut outbox), ["b-1", "b-2"]);
        outbox.rewind();
        // The old connection's ack can arrive after the rewind.
        assert!(outbox.ack("b-1"));
        assert!(!outbox.ack("nope"));
        assert_eq!(flush(&mut outbox), ["b-2"]);
        // An ack of a frame already sent keeps the unsent part in place.
        outbox.push(edit("z"));
        assert!(outbox.ack("b-2"));
        assert_eq!(flush(&mut outbox), ["b-3"]);
    }

    #[test]
    fn buffered_tokens_merge_but_never_across_frames_or_prompts() {
        let mut outbox = Outbox::new("b");
        outbox.push(token("a"));
        outbox.push(token("b"));
        outbox.push(edit("x"));
        outbox.push(token("c"));
        outbox.push(token_of("m2", "d"));
        assert_eq!(flush(&mut outbox), ["t0:ab", "b-1", "t2:c", "t0:d"]);
        // A token already sent is not appended to.
        outbox.push(token_of("m2", "e"));
        outbox.mark_sent();
        outbox.push(token_of("m2", "f"));
        assert_eq!(flush(&mut outbox), ["t2:f"]);
    }

    #[test]
    fn a_resume_in_the_middle_of_a_token_keeps_its_rest() {
        let mut outbox = Outbox::new("b");
        outbox.push(token("héllo "));
        assert_eq!(flush(&mut outbox), ["t0:héllo "]);
        outbox.push(token("world"));
        outbox.rewind();
        // 3 bytes are stored ("hé"): what follows goes again from there.
        outbox.ack_text("m1", 3);
        assert_eq!(flush(&mut outbox), ["t3:llo ", "t7:world"]);
        // An offset inside a character keeps the token whole (the room drops what it holds).
        outbox.rewind();
        outbox.ack_text("m1", 8);
        assert_eq!(flush(&mut outbox), ["t8:orld"]);
        outbox.push(token("ö"));
        outbox.rewind();
        outbox.ack_text("m1", 13);
        assert_eq!(flush(&mut outbox), ["t12:ö"]);
        // Another prompt's acknowledgement changes nothing here.
        outbox.rewind();
        outbox.ack_text("m2", 100);
        assert_eq!(flush(&mut outbox), ["t12:ö"]);
    }

    #[test]
    fn merged_tokens_stay_under_the_limit() {
        let mut outbox = Outbox::new("b");
        let chunk = "x".repeat(MAX_MERGED_DELTA / 2);
        for _ in 0..5 {
            outbox.push(token(&chunk));
        }
        let sent = flush(&mut outbox);
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|s| s.len() <= MAX_MERGED_DELTA + 10));
    }

    #[test]
    fn unacknowledged_text_is_bounded_and_the_oldest_goes() {
        let mut outbox = Outbox::new("b");
        let chunk = "x".repeat(MAX_MERGED_DELTA);
        let n = MAX_UNACKED_TEXT / MAX_MERGED_DELTA + 3;
        for _ in 0..n {
            outbox.push(token(&chunk));
        }
        assert!(outbox.text_held <= MAX_UNACKED_TEXT);
        let sent = flush(&mut outbox);
        assert_eq!(sent.len(), MAX_UNACKED_TEXT / MAX_MERGED_DELTA);
        // What is left starts where the dropped text ended: the room sees the hole.
        assert!(sent[0].starts_with(&format!("t{}:", 3 * MAX_MERGED_DELTA)));
    }
}
