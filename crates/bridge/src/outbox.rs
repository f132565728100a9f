//! Frames on their way to the coordinator.
//!
//! Critical frames (tool calls, file edits, artifacts, `pushed`, `done`, `error`,
//! `snapshot_taken`) get an `ack_id` and stay here until the coordinator acknowledges them; a new
//! connection sends them again, in their original order. `token` frames have no ack: they stay only until they have
//! been written once. Everything leaves in the order it was pushed, so the frames of one prompt
//! never overtake each other.

use protocol::bridge::FromBridge;
use std::collections::VecDeque;

/// Token deltas waiting to be sent are merged up to this size, so a long disconnection leaves
/// few large frames instead of thousands of tiny ones, still well under the room's frame limit.
const MAX_MERGED_DELTA: usize = 16 * 1024;

#[derive(Debug)]
pub struct Outbox {
    ack_prefix: String,
    n_acks: u64,
    entries: VecDeque<FromBridge>,
    /// `entries[..n_sent]` went out on the current connection and wait for their ack; they are
    /// all critical, because a token is dropped as soon as it is sent.
    n_sent: usize,
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
        }
    }

    /// Queues a frame; a critical one gets a fresh `ack_id` (whatever it carried), returned here.
    pub fn push(&mut self, mut frame: FromBridge) -> Option<String> {
        let last_is_unsent = self.entries.len() > self.n_sent;
        if let FromBridge::Token { message_id, delta } = &frame {
            if let Some(FromBridge::Token {
                message_id: last_id,
                delta: last_delta,
            }) = self.entries.back_mut().filter(|_| last_is_unsent)
            {
                if last_id == message_id && last_delta.len() + delta.len() <= MAX_MERGED_DELTA {
                    last_delta.push_str(delta);
                    return None;
                }
            }
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

    /// The outbox a journal kept: its critical frames go out again, with ack ids continuing
    /// from where the earlier process stopped.
    pub fn restore(ack_prefix: String, n_acks: u64, unacked: Vec<FromBridge>) -> Self {
        Outbox {
            ack_prefix,
            n_acks,
            entries: unacked.into(),
            n_sent: 0,
        }
    }

    /// What a journal keeps: the ack id prefix and counter, and the critical frames.
    pub fn to_journal(&self) -> (String, u64, Vec<FromBridge>) {
        let unacked = self
            .entries
            .iter()
            .filter(|frame| is_critical(frame))
            .cloned()
            .collect();
        (self.ack_prefix.clone(), self.n_acks, unacked)
    }

    /// The next frame to write on the current connection.
    pub fn next_unsent(&self) -> Option<&FromBridge> {
        self.entries.get(self.n_sent)
    }

    /// The frame `next_unsent` returned was written.
    pub fn mark_sent(&mut self) {
        match self.entries.get(self.n_sent) {
            Some(FromBridge::Token { .. }) => {
                self.entries.remove(self.n_sent);
            }
            Some(_) => self.n_sent += 1,
            None => {}
        }
    }

    /// Forgets the frame with this ack id; false when there is none (a duplicate ack).
    pub fn ack(&mut self, ack_id: &str) -> bool {
        let Some(index) = self
            .entries
            .iter()
            .position(|frame| frame.ack_id() == Some(ack_id))
        else {
            return false;
        };
        self.entries.remove(index);
        if index < self.n_sent {
            self.n_sent -= 1;
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
        FromBridge::Token {
            message_id: "m1".into(),
            delta: delta.into(),
        }
    }

    fn edit(path: &str) -> FromBridge {
        FromBridge::FileEdit {
            edit: FileEdit {
                message_id: "m1".into(),
                path: path.into(),
                diff: None,
            },
            ack_id: None,
        }
    }

    fn done() -> FromBridge {
        FromBridge::Done {
            message_id: "m1".into(),
            ok: true,
            error: None,
            ack_id: String::new(),
        }
    }

    /// Writes everything unsent and describes it: `t:<delta>` for tokens, `<ack_id>` otherwise.
    fn flush(outbox: &mut Outbox) -> Vec<String> {
        let mut sent = Vec::new();
        while let Some(frame) = outbox.next_unsent() {
            sent.push(match frame {
                FromBridge::Token { delta, .. } => format!("t:{delta}"),
                other => other.ack_id().unwrap_or("?").to_string(),
            });
            outbox.mark_sent();
        }
        sent
    }

    #[test]
    fn critical_frames_get_fresh_ack_ids_and_tokens_none() {
        let mut outbox = Outbox::new("b1");
        assert_eq!(outbox.push(token("a")), None);
        assert_eq!(outbox.push(edit("x")).as_deref(), Some("b1-1"));
        assert_eq!(outbox.push(done()).as_deref(), Some("b1-2"));
        assert_eq!(flush(&mut outbox), ["t:a", "b1-1", "b1-2"]);
        assert_eq!(outbox.n_unacked(), 2);
    }

    #[test]
    fn unacked_frames_go_out_again_in_order_then_what_was_buffered() {
        let mut outbox = Outbox::new("b");
        outbox.push(token("a"));
        outbox.push(edit("x")); // b-1
        outbox.push(token("b"));
        outbox.push(edit("y")); // b-2
        assert_eq!(flush(&mut outbox), ["t:a", "b-1", "t:b", "b-2"]);
        assert!(outbox.ack("b-1"));
        // Disconnected: these wait.
        outbox.push(token("c"));
        outbox.push(done()); // b-3
        outbox.push(token("d"));
        outbox.rewind();
        assert_eq!(flush(&mut outbox), ["b-2", "t:c", "b-3", "t:d"]);
        // Acked frames never come back; unacked ones do, every time.
        outbox.rewind();
        assert_eq!(flush(&mut outbox), ["b-2", "b-3"]);
        assert!(outbox.ack("b-3"));
        assert!(outbox.ack("b-2"));
        assert!(!outbox.ack("b-2"));
        outbox.rewind();
        assert_eq!(flush(&mut outbox), Vec::<String>::new());
        assert!(outbox.is_empty());
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
        outbox.push(FromBridge::Token {
            message_id: "m2".into(),
            delta: "d".into(),
        });
        assert_eq!(flush(&mut outbox), ["t:ab", "b-1", "t:c", "t:d"]);
        // A token already sent is not appended to.
        outbox.push(token("e"));
        outbox.mark_sent();
        outbox.push(token("f"));
        assert_eq!(flush(&mut outbox), ["t:f"]);
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
        assert!(sent.iter().all(|s| s.len() <= MAX_MERGED_DELTA + 2));
    }
}
