//! Who is online and who is typing, and the change each socket event makes. Pure: the hub
//! feeds it socket events and the time, and sends the deltas it returns.
//!
//! A joiner gets the whole picture once; everyone else gets one small delta per change, so N
//! joins cost O(N) frames of constant size instead of N full lists to N sockets each.

use protocol::event::ParticipantInfo;
use protocol::frames::PresenceChange;
use std::collections::BTreeMap;

/// How long a `typing` frame keeps its sender in the typing list.
pub const TYPING_MS: u64 = 6_000;

/// A change to tell everyone about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub change: PresenceChange,
    pub participant: ParticipantInfo,
}

#[derive(Debug, Default)]
pub struct Presence {
    /// Participants with at least one open socket, by participant id. `None` until read from
    /// the sockets' attachments (after the room wakes from hibernation, memory is empty).
    online: Option<BTreeMap<String, ParticipantInfo>>,
    /// Who is typing, until when (ms).
    typing: BTreeMap<String, (ParticipantInfo, u64)>,
}

impl Presence {
    pub fn is_loaded(&self) -> bool {
        self.online.is_some()
    }

    /// Rebuilds who is online from the open sockets' owners (duplicates are fine).
    pub fn load(&mut self, owners: impl IntoIterator<Item = ParticipantInfo>) {
        self.online = Some(owners.into_iter().map(|p| (p.id.clone(), p)).collect());
    }

    fn online_mut(&mut self) -> &mut BTreeMap<String, ParticipantInfo> {
        self.online.get_or_insert_with(BTreeMap::new)
    }

    /// A socket of `participant` opened: `joined` when it is their first.
    pub fn opened(&mut self, participant: &ParticipantInfo) -> Option<Delta> {
        let online = self.online_mut();
        if online.contains_key(&participant.id) {
            return None;
        }
        online.insert(participant.id.clone(), participant.clone());
        Some(Delta {
            change: PresenceChange::Joined,
            participant: participant.clone(),
        })
    }

    /// A socket of the participant closed, and `others_open` of theirs remain: `left` when it
    /// was their last. Idempotent, since a socket may report both an error and a close.
    pub fn closed(&mut self, participant_id: &str, others_open: bool) -> Option<Delta> {
        if others_open {
            return None;
        }
        let participant = self.online_mut().remove(participant_id)?;
        self.typing.remove(participant_id);
        Some(Delta {
            change: PresenceChange::Left,
            participant,
        })
    }

    /// The participant is typing now; everyone is told once per frame (it renews the timer).
    pub fn typing(&mut self, participant: &ParticipantInfo, now_ms: u64) -> Delta {
        self.typing.insert(
            participant.id.clone(),
            (participant.clone(), now_ms + TYPING_MS),
        );
        Delta {
            change: PresenceChange::Typing,
            participant: participant.clone(),
        }
    }

    /// The participant stopped typing (it sent its prompt): `idle` if it was typing.
    pub fn idle(&mut self, participant_id: &str, now_ms: u64) -> Option<Delta> {
        let (participant, until) = self.typing.remove(participant_id)?;
        (until > now_ms).then_some(Delta {
            change: PresenceChange::Idle,
            participant,
        })
    }

    /// The user behind an online participant.
    pub fn user_of(&self, participant_id: &str) -> Option<String> {
        self.online
            .as_ref()?
            .get(participant_id)
            .map(|p| p.user_id.clone())
    }

    pub fn online(&self) -> Vec<ParticipantInfo> {
        self.online
            .iter()
            .flat_map(|online| online.values().cloned())
            .collect()
    }

    /// Who is typing now (and online); expired entries are dropped.
    pub fn typing_now(&mut self, now_ms: u64) -> Vec<ParticipantInfo> {
        let online = self.online.get_or_insert_with(BTreeMap::new);
        self.typing
            .retain(|id, (_, until)| *until > now_ms && online.contains_key(id));
        self.typing.values().map(|(p, _)| p.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str) -> ParticipantInfo {
        ParticipantInfo {
            id: id.into(),
            user_id: format!("usr_{id}"),
            name: id.to_uppercase(),
        }
    }

    fn change(delta: Option<Delta>) -> Option<PresenceChange> {
        delta.map(|d| d.change)
    }

    #[test]
    fn joins_and_leaves_are_told_once_per_participant() {
        let mut presence = Presence::default();
        assert_eq!(
            change(presence.opened(&person("a"))),
            Some(PresenceChange::Joined)
        );
        // A second tab of the same participant changes nothing.
        assert_eq!(change(presence.opened(&person("a"))), None);
        assert_eq!(
            change(presence.opened(&person("b"))),
            Some(PresenceChange::Joined)
        );
        assert_eq!(presence.online().len(), 2);
        assert_eq!(change(presence.closed("a", true)), None);
        assert_eq!(
            change(presence.closed("a", false)),
            Some(PresenceChange::Left)
        );
        // The same socket reporting an error and a close leaves once.
        assert_eq!(change(presence.closed("a", false)), None);
        assert_eq!(presence.online(), vec![person("b")]);
    }

    #[test]
    fn typing_expires_and_ends_with_a_prompt() {
        let mut presence = Presence::default();
        presence.opened(&person("a"));
        presence.opened(&person("b"));
        assert_eq!(
            presence.typing(&person("a"), 1_000).change,
            PresenceChange::Typing
        );
        assert_eq!(
            presence.typing_now(1_000 + TYPING_MS - 1),
            vec![person("a")]
        );
        assert!(presence.typing_now(1_000 + TYPING_MS).is_empty());
        presence.typing(&person("b"), 2_000);
        assert_eq!(
            change(presence.idle("b", 2_500)),
            Some(PresenceChange::Idle)
        );
        assert_eq!(change(presence.idle("b", 2_600)), None);
        // Someone who leaves stops typing.
        presence.typing(&person("a"), 3_000);
        presence.closed("a", false);
        assert!(presence.typing_now(3_001).is_empty());
    }

    #[test]
    fn loading_after_a_wake_counts_each_participant_once() {
        let mut presence = Presence::default();
        assert!(!presence.is_loaded());
        presence.load([person("a"), person("a"), person("b")]);
        assert!(presence.is_loaded());
        assert_eq!(presence.online().len(), 2);
        assert_eq!(change(presence.opened(&person("b"))), None);
    }
}
