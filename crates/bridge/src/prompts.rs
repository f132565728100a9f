//! Which prompts this bridge has accepted, so a prompt the coordinator sends again after a
//! reconnect runs only once.

use std::collections::{HashMap, VecDeque};

/// How many finished prompts are remembered; a session never re-sends one that old.
const N_DONE_REMEMBERED: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptState {
    /// Queued or running.
    Active,
    /// Its `done` frame was produced (acked or still in the outbox).
    Done,
}

#[derive(Debug, Default)]
pub struct Prompts {
    states: HashMap<String, PromptState>,
    done_order: VecDeque<String>,
}

impl Prompts {
    /// True when the prompt is new and should run; false for one already seen.
    pub fn admit(&mut self, message_id: &str) -> bool {
        if self.states.contains_key(message_id) {
            return false;
        }
        self.states
            .insert(message_id.to_string(), PromptState::Active);
        true
    }

    pub fn finished(&mut self, message_id: &str) {
        if self.states.get(message_id) == Some(&PromptState::Done) {
            return;
        }
        self.states
            .insert(message_id.to_string(), PromptState::Done);
        self.done_order.push_back(message_id.to_string());
        while self.done_order.len() > N_DONE_REMEMBERED {
            if let Some(old) = self.done_order.pop_front() {
                self.states.remove(&old);
            }
        }
    }

    /// The prompt queued or running, if any (the room sends one at a time).
    pub fn active(&self) -> Option<String> {
        self.states
            .iter()
            .find(|(_, state)| **state == PromptState::Active)
            .map(|(id, _)| id.clone())
    }

    /// The last `n` finished prompts, oldest first.
    pub fn recently_finished(&self, n: usize) -> Vec<String> {
        let skip = self.done_order.len().saturating_sub(n);
        self.done_order.iter().skip(skip).cloned().collect()
    }

    pub fn state(&self, message_id: &str) -> Option<PromptState> {
        self.states.get(message_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_runs_once_whether_active_or_done() {
        let mut prompts = Prompts::default();
        assert!(prompts.admit("m1"));
        assert!(!prompts.admit("m1"));
        assert_eq!(prompts.state("m1"), Some(PromptState::Active));
        prompts.finished("m1");
        assert!(!prompts.admit("m1"));
        assert_eq!(prompts.state("m1"), Some(PromptState::Done));
        assert!(prompts.admit("m2"));
        assert_eq!(prompts.state("m3"), None);
    }

    #[test]
    fn remembers_a_bounded_number_of_finished_prompts() {
        let mut prompts = Prompts::default();
        for i in 0..N_DONE_REMEMBERED + 10 {
            let id = format!("m{i}");
            assert!(prompts.admit(&id));
            prompts.finished(&id);
            prompts.finished(&id);
        }
        assert_eq!(prompts.state("m0"), None);
        assert_eq!(prompts.state("m10"), Some(PromptState::Done));
        assert_eq!(prompts.done_order.len(), N_DONE_REMEMBERED);
    }
}
