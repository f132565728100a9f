//! Answer text from the bridge: which part of a delta is new (its `offset` says where it
//! starts in the prompt's text), how deltas are batched into `token` events, and how much of
//! the running prompt's text the room has stored. Pure, so `cargo test` covers every rule.
//!
//! Text is stored exactly once: a delta the room already holds is dropped, one that overlaps
//! keeps only its new part, and one that starts beyond what the room holds (the bridge lost
//! text it could not keep) is stored where it belongs, leaving a hole `done` reports.

/// Token deltas waiting to be stored as one `token` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    pub message_id: String,
    pub text: String,
    /// Where `text` starts in the prompt's answer (bytes).
    pub offset: u64,
    pub started_at: u64,
}

impl TokenBatch {
    /// Where the batch's text ends in the prompt's answer.
    pub fn end(&self) -> u64 {
        self.offset + self.text.len() as u64
    }
}

/// What the room has stored of one prompt's answer text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub message_id: String,
    /// Where the stored text ends: what `tokens_ack` and `resume` say.
    pub end: u64,
    /// How many bytes are stored; less than `end` when the text has a hole.
    pub bytes: u64,
}

/// A delta whose offset cuts a character in two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitCharacter;

/// Batches token deltas: a delta after a quiet spell is stored at once (the first words show
/// without delay); under a stream, deltas gather for a window that grows from
/// [`Coalescer::MIN_WINDOW_MS`] to [`Coalescer::MAX_WINDOW_MS`] while the stream keeps up
/// (fewer, larger events: the envelope of each event costs more than a few words), or until
/// [`Coalescer::MAX_BYTES`]. Each batch holds only new text; nothing stored is rewritten.
#[derive(Debug)]
pub struct Coalescer {
    batch: Option<TokenBatch>,
    /// When the last delta came: a stream is quiet after [`Coalescer::MAX_WINDOW_MS`] without.
    last_delta_at: u64,
    window_ms: u64,
    /// The stored text of the prompt last seen; `None` until the room has read it.
    held: Option<Held>,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            batch: None,
            last_delta_at: 0,
            window_ms: Self::MIN_WINDOW_MS,
            held: None,
        }
    }
}

impl Coalescer {
    pub const MIN_WINDOW_MS: u64 = 40;
    pub const MAX_WINDOW_MS: u64 = 150;
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Whether the stored text of `message_id` is known; when not, the room reads it from
    /// the log and [`Coalescer::load`]s it before the prompt's first delta after a wake.
    pub fn knows(&self, message_id: &str) -> bool {
        self.held
            .as_ref()
            .is_some_and(|h| h.message_id == message_id)
    }

    pub fn load(&mut self, held: Held) {
        self.held = Some(held);
    }

    /// What is stored of the prompt's text, if known.
    pub fn held(&self, message_id: &str) -> Option<&Held> {
        self.held.as_ref().filter(|h| h.message_id == message_id)
    }

    /// Adds a delta that starts at `offset` (`None`: right after what the room has);
    /// returns the batches to store now, oldest first. Nothing changes on a refusal.
    pub fn push(
        &mut self,
        message_id: &str,
        delta: &str,
        offset: Option<u64>,
        now: u64,
    ) -> Result<Vec<TokenBatch>, SplitCharacter> {
        let same_batch = self.batch.as_ref().filter(|b| b.message_id == message_id);
        let held_end = self.held(message_id).map_or(0, |h| h.end);
        let expected = same_batch.map_or(held_end, TokenBatch::end);
        let offset = offset.unwrap_or(expected);
        let end = offset + delta.len() as u64;
        if end <= expected {
            return Ok(Vec::new());
        }
        let new_text = match usize::try_from(expected.saturating_sub(offset)) {
            Ok(cut) if delta.is_char_boundary(cut) => &delta[cut..],
            _ => return Err(SplitCharacter),
        };
        let start = offset.max(expected);
        let mut ready = Vec::new();
        // Another prompt's batch, or text before a hole, goes as it is.
        if self.batch.is_some() && (same_batch.is_none() || start > expected) {
            ready.extend(self.take());
        }
        if !self.knows(message_id) {
            self.held = Some(Held {
                message_id: message_id.to_owned(),
                end: 0,
                bytes: 0,
            });
        }
        // Deltas reach the room in bursts (the network, proxies): only a pause longer than the
        // longest window counts as quiet, so jitter does not shrink the window again.
        let quiet = now.saturating_sub(self.last_delta_at) >= Self::MAX_WINDOW_MS;
        self.last_delta_at = now;
        if quiet {
            self.window_ms = Self::MIN_WINDOW_MS;
        }
        let batch = self.batch.get_or_insert_with(|| TokenBatch {
            message_id: message_id.to_owned(),
            text: String::new(),
            offset: start,
            started_at: now,
        });
        batch.text.push_str(new_text);
        let full = batch.text.len() >= Self::MAX_BYTES;
        let old = now.saturating_sub(batch.started_at) >= self.window_ms;
        if old && !quiet {
            // The stream keeps up: a longer window next time.
            self.window_ms = (self.window_ms * 2).min(Self::MAX_WINDOW_MS);
        }
        if quiet || full || old {
            ready.extend(self.take());
        }
        Ok(ready)
    }

    /// The batch in memory, to store before anything else about its prompt; what is held
    /// grows by it.
    pub fn take(&mut self) -> Option<TokenBatch> {
        let batch = self.batch.take()?;
        if let Some(held) = self
            .held
            .as_mut()
            .filter(|h| h.message_id == batch.message_id)
        {
            held.end = held.end.max(batch.end());
            held.bytes += batch.text.len() as u64;
        }
        Some(batch)
    }

    /// When the batch in memory must be stored even if no other delta comes.
    pub fn flush_at(&self) -> Option<u64> {
        self.batch.as_ref().map(|b| b.started_at + self.window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(batches: &[TokenBatch]) -> Vec<(u64, &str)> {
        batches
            .iter()
            .map(|b| (b.offset, b.text.as_str()))
            .collect()
    }

    #[test]
    fn coalescing_batches_a_stream_and_flushes_a_lone_delta() {
        let mut tokens = Coalescer::default();
        // After a quiet spell the first delta is stored at once.
        let first = tokens.push("m1", "Hel", None, 1_000).unwrap();
        assert_eq!(texts(&first), [(0, "Hel")]);
        // A stream gathers until the batch is old enough.
        assert!(tokens.push("m1", "lo ", None, 1_010).unwrap().is_empty());
        assert!(tokens.push("m1", "wor", None, 1_020).unwrap().is_empty());
        assert_eq!(tokens.flush_at(), Some(1_010 + Coalescer::MIN_WINDOW_MS));
        let batch = tokens.push("m1", "ld", None, 1_050).unwrap();
        assert_eq!(texts(&batch), [(3, "lo world")]);
        assert_eq!(tokens.flush_at(), None);
        assert_eq!(tokens.held("m1").map(|h| (h.end, h.bytes)), Some((11, 11)));
        // Another prompt's delta stores the pending batch first.
        assert!(tokens.push("m1", "a", None, 1_060).unwrap().is_empty());
        let batches = tokens.push("m2", "b", Some(0), 1_070).unwrap();
        assert_eq!(texts(&batches), [(11, "a")]);
        assert_eq!(tokens.take().map(|b| b.text), Some("b".into()));
        // A huge delta is stored at once even mid-stream.
        assert!(tokens.push("m2", "x", None, 1_081).unwrap().is_empty());
        let big = "y".repeat(Coalescer::MAX_BYTES);
        assert_eq!(
            tokens.push("m2", &big, None, 1_082).unwrap()[0].text.len(),
            Coalescer::MAX_BYTES + 1
        );
    }

    #[test]
    fn the_window_grows_under_a_steady_stream_and_resets_after_a_pause() {
        let mut tokens = Coalescer::default();
        let mut sizes = Vec::new();
        // 100 deltas per second for two seconds.
        for i in 0..200u64 {
            for batch in tokens.push("m", "word ", None, 10_000 + i * 10).unwrap() {
                sizes.push(batch.text.len() / 5);
            }
        }
        // The first alone, then batches that grow to the longest window (16 deltas).
        assert_eq!(&sizes[..4], &[1, 5, 9, 16]);
        assert!(sizes[3..].iter().all(|n| *n == 16), "{sizes:?}");
        assert!(sizes.len() < 20, "{} events for 200 deltas", sizes.len());
        // After a pause the first delta goes at once again, with the shortest window.
        tokens.take();
        assert_eq!(tokens.push("m", "again", None, 14_000).unwrap().len(), 1);
        assert!(tokens.push("m", " and", None, 14_010).unwrap().is_empty());
        assert_eq!(tokens.flush_at(), Some(14_010 + Coalescer::MIN_WINDOW_MS));
    }

    #[test]
    fn text_already_held_is_dropped_and_overlaps_keep_their_new_part() {
        let mut tokens = Coalescer::default();
        tokens.load(Held {
            message_id: "m".into(),
            end: 6,
            bytes: 6,
        });
        // Held entirely: nothing to store.
        assert!(tokens
            .push("m", "Hello ", Some(0), 1_000)
            .unwrap()
            .is_empty());
        // Overlapping: only "wörld" is new; "é"-like characters are cut on their boundary.
        let stored = tokens.push("m", "lo wörld", Some(3), 2_000).unwrap();
        assert_eq!(texts(&stored), [(6, "wörld")]);
        // In the batch but not stored yet counts as held too.
        assert!(tokens.push("m", "!", Some(12), 2_001).unwrap().is_empty());
        assert!(tokens.push("m", "!", Some(12), 2_002).unwrap().is_empty());
        assert_eq!(
            tokens.take().map(|b| (b.offset, b.text)),
            Some((12, "!".into()))
        );
        // An offset inside a character is refused and changes nothing.
        assert_eq!(
            tokens.push("m", "ö!?", Some(12), 3_000),
            Err(SplitCharacter)
        );
        assert_eq!(tokens.held("m").map(|h| (h.end, h.bytes)), Some((13, 13)));
    }

    #[test]
    fn text_after_a_hole_keeps_its_place_and_the_hole_shows_in_what_is_held() {
        let mut tokens = Coalescer::default();
        assert_eq!(
            texts(&tokens.push("m", "ab", Some(0), 1_000).unwrap()),
            [(0, "ab")]
        );
        assert!(tokens.push("m", "cd", Some(2), 1_001).unwrap().is_empty());
        // "ef" never comes; "gh" at 6: the batch before the hole is stored as it is.
        let before_hole = tokens.push("m", "gh", Some(6), 1_002).unwrap();
        assert_eq!(texts(&before_hole), [(2, "cd")]);
        assert_eq!(tokens.take().map(|b| b.offset), Some(6));
        let held = tokens.held("m").unwrap();
        assert_eq!((held.end, held.bytes), (8, 6));
    }
}
