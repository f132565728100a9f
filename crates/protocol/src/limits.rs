//! Limits on input size, counts and rates, with the defaults from PROTOCOL.md.

use serde::{Deserialize, Serialize};

/// Every field has a default, so a partial JSON object (the `LIMITS` var) overrides only what it names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Bytes of prompt content.
    pub prompt_bytes: usize,
    /// Bytes of one client WebSocket frame, and of an ordinary HTTP body.
    pub frame_bytes: usize,
    /// Bytes of a DOM selection body.
    pub selection_bytes: usize,
    /// Elements in one DOM selection.
    pub selection_elements: usize,
    /// Prompts waiting in one session's queue (the running one not counted).
    pub queue_len: usize,
    /// Prompts per participant per rate window.
    pub prompts_per_window: u32,
    /// Frames per participant per rate window.
    pub frames_per_window: u32,
    /// The rate window, in milliseconds.
    pub rate_window_ms: u64,
    /// Attachments on one prompt.
    pub attachments: usize,
    /// Selections named by one prompt.
    pub selection_ids: usize,
    /// Bytes of a `client_request_id`.
    pub client_request_id_bytes: usize,
    /// Events in one `history` page.
    pub history_page: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            prompt_bytes: 64 * 1024,
            frame_bytes: 256 * 1024,
            selection_bytes: 1024 * 1024,
            selection_elements: 2000,
            queue_len: 20,
            prompts_per_window: 10,
            frames_per_window: 60,
            rate_window_ms: 10_000,
            attachments: 10,
            selection_ids: 20,
            client_request_id_bytes: 128,
            history_page: 500,
        }
    }
}
