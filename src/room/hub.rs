//! The room's sockets: participant sockets and the bridge's (through the hibernation API),
//! live SSE streams held in memory, broadcast to all of them, and presence.
//!
//! A socket carries its owner as the hibernation attachment (a [`Participant`] or a
//! [`BridgeLink`]), so the room knows who is on each socket after it wakes without SQL.

use super::presence::{Delta, Presence, TYPING_MS};
use super::store::Participant;
use crate::error::Result;
use futures_channel::mpsc::UnboundedSender;
use protocol::event::ParticipantInfo;
use protocol::frames::ServerFrame;
use protocol::CloseCode;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use wasm_bindgen::JsCast;
use worker::{State, WebSocket};

const PARTICIPANT_TAG: &str = "participant";

fn user_tag(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The tag of a sandbox's bridge socket; it is never a participant, so broadcasts skip it.
fn sandbox_tag(sandbox_id: &str) -> String {
    format!("sandbox:{sandbox_id}")
}

/// The attachment of a bridge socket: which sandbox is on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BridgeLink {
    pub sandbox_id: String,
}

/// Who is on a socket, read from its attachment in one pass (a failed attempt at the wrong
/// type would cost a JavaScript error per frame).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum SocketOwner {
    Bridge(BridgeLink),
    Participant(Participant),
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// The platform's WebSocket, for `send` with a string that is already a JavaScript value.
    type RawSocket;
    #[wasm_bindgen(method, catch)]
    fn send(this: &RawSocket, data: &wasm_bindgen::JsValue) -> Result<(), wasm_bindgen::JsValue>;
}

/// Sends a frame, ignoring a socket that is already closing: its close handler cleans up.
pub fn send(socket: &WebSocket, text: &str) {
    let _ = socket.send_with_str(text);
}

pub fn close(socket: &WebSocket, code: CloseCode, reason: &str) {
    let _ = socket.close(Some(code.code()), Some(reason));
}

/// In-memory state of the hub; lost on hibernation, which is harmless for all of it:
/// presence is read back from the sockets, typing expires in seconds, and SSE streams keep
/// the room awake while they are open.
#[derive(Default)]
pub struct Hub {
    presence: RefCell<Presence>,
    sse: RefCell<Vec<UnboundedSender<Vec<u8>>>>,
}

impl Hub {
    pub fn owner_of(socket: &WebSocket) -> Option<SocketOwner> {
        socket
            .deserialize_attachment::<SocketOwner>()
            .ok()
            .flatten()
    }

    fn participant_of(socket: &WebSocket) -> Option<Participant> {
        socket
            .deserialize_attachment::<Participant>()
            .ok()
            .flatten()
    }

    // --- participants ------------------------------------------------------------------------

    /// Accepts a participant's socket and sends it the full presence; everyone else hears
    /// that the participant joined if this is their first socket.
    pub fn accept(
        &self,
        state: &State,
        socket: &WebSocket,
        participant: &Participant,
    ) -> Result<()> {
        self.load_presence(state, None);
        state.accept_websocket_with_tags(
            socket,
            &[PARTICIPANT_TAG, &user_tag(&participant.user_id)],
        );
        socket.serialize_attachment(participant)?;
        let delta = self.presence.borrow_mut().opened(&participant.info());
        if let Some(delta) = delta {
            self.broadcast_delta(state, delta, Some(socket));
        }
        Ok(())
    }

    /// Who is online (each participant once).
    pub fn online(&self, state: &State) -> Vec<ParticipantInfo> {
        self.load_presence(state, None);
        self.presence.borrow().online()
    }

    /// Who is typing now.
    pub fn typing_now(&self, state: &State, now_ms: u64) -> Vec<ParticipantInfo> {
        self.load_presence(state, None);
        self.presence.borrow_mut().typing_now(now_ms)
    }

    /// A socket went away (closed or failed); a participant's last one means they left.
    pub fn socket_gone(&self, state: &State, socket: &WebSocket) {
        close(
            socket,
            CloseCode::Normal,
            CloseCode::Normal.default_reason(),
        );
        let Some(participant) = Self::participant_of(socket) else {
            // A bridge that went away reconnects; only a missed heartbeat ends its sandbox.
            return;
        };
        self.load_presence(state, Some(socket));
        let others_open = state
            .get_websockets_with_tag(&user_tag(&participant.user_id))
            .iter()
            .any(|other| other != socket);
        let delta = self
            .presence
            .borrow_mut()
            .closed(&participant.id, others_open);
        if let Some(delta) = delta {
            self.broadcast_delta(state, delta, None);
        }
    }

    pub fn typing(&self, state: &State, participant: &Participant, now_ms: u64) {
        self.load_presence(state, None);
        let delta = self
            .presence
            .borrow_mut()
            .typing(&participant.info(), now_ms);
        self.broadcast_delta(state, delta, None);
    }

    /// The participant sent a prompt: if they were typing, they are not any more.
    pub fn idle(&self, state: &State, participant: &Participant, now_ms: u64) {
        let delta = self.presence.borrow_mut().idle(&participant.id, now_ms);
        if let Some(delta) = delta {
            self.broadcast_delta(state, delta, None);
        }
    }

    fn load_presence(&self, state: &State, except: Option<&WebSocket>) {
        if self.presence.borrow().is_loaded() {
            return;
        }
        let owners: Vec<_> = state
            .get_websockets_with_tag(PARTICIPANT_TAG)
            .iter()
            .filter(|socket| Some(*socket) != except)
            .filter_map(Self::participant_of)
            .map(|participant| participant.info())
            .collect();
        self.presence.borrow_mut().load(owners);
    }

    fn broadcast_delta(&self, state: &State, delta: Delta, except: Option<&WebSocket>) {
        let expires_in_ms =
            (delta.change == protocol::frames::PresenceChange::Typing).then_some(TYPING_MS);
        let frame = ServerFrame::PresenceDelta {
            change: delta.change,
            participant: delta.participant,
            expires_in_ms,
        };
        self.broadcast_sockets(state, &frame.to_json(), except);
    }

    /// Closes every socket and stream of a user who is no longer a member.
    pub fn remove_user(&self, state: &State, participant: &Participant) {
        for socket in state.get_websockets_with_tag(&user_tag(&participant.user_id)) {
            close(
                &socket,
                CloseCode::Removed,
                CloseCode::Removed.default_reason(),
            );
        }
        self.load_presence(state, None);
        let delta = self.presence.borrow_mut().closed(&participant.id, false);
        if let Some(delta) = delta {
            self.broadcast_delta(state, delta, None);
        }
    }

    /// Closes every participant socket and stream (the session was archived).
    pub fn close_all(&self, state: &State, code: CloseCode) {
        for socket in state.get_websockets_with_tag(PARTICIPANT_TAG) {
            close(&socket, code, code.default_reason());
        }
        self.sse.borrow_mut().clear();
    }

    // --- broadcast ---------------------------------------------------------------------------

    fn broadcast_sockets(&self, state: &State, text: &str, except: Option<&WebSocket>) {
        // One JavaScript string for every socket: passing `&str` would copy and decode the
        // UTF-8 across the wasm boundary once per socket.
        let text = wasm_bindgen::JsValue::from_str(text);
        for socket in state.get_websockets_with_tag(PARTICIPANT_TAG) {
            if Some(&socket) == except {
                continue;
            }
            let raw: &RawSocket = socket.as_ref().unchecked_ref();
            let _ = raw.send(&text);
        }
    }

    /// Sends a stored event to every participant socket and SSE stream.
    pub fn broadcast_event(&self, state: &State, seq: u64, type_name: &str, json: &str) {
        self.broadcast_sockets(state, json, None);
        let mut streams = self.sse.borrow_mut();
        if !streams.is_empty() {
            let chunk = sse_chunk(seq, type_name, json).into_bytes();
            streams.retain(|stream| stream.unbounded_send(chunk.clone()).is_ok());
        }
    }

    pub fn add_stream(&self, stream: UnboundedSender<Vec<u8>>) {
        self.sse.borrow_mut().push(stream);
    }

    // --- the bridge --------------------------------------------------------------------------

    /// Accepts a bridge's socket, closing any older one of the same sandbox (4000).
    pub fn accept_bridge(&self, state: &State, socket: &WebSocket, sandbox_id: &str) -> Result<()> {
        for older in state.get_websockets_with_tag(&sandbox_tag(sandbox_id)) {
            close(
                &older,
                CloseCode::Replaced,
                CloseCode::Replaced.default_reason(),
            );
        }
        state.accept_websocket_with_tags(socket, &[&sandbox_tag(sandbox_id)]);
        socket.serialize_attachment(BridgeLink {
            sandbox_id: sandbox_id.to_owned(),
        })?;
        Ok(())
    }

    /// The sandbox's bridge socket: the newest, since a replaced one may still be closing.
    pub fn bridge(&self, state: &State, sandbox_id: &str) -> Option<WebSocket> {
        state
            .get_websockets_with_tag(&sandbox_tag(sandbox_id))
            .into_iter()
            .next_back()
    }

    /// Every socket of an ended sandbox: each is told to shut down and closed with `reason`.
    pub fn end_bridge(&self, state: &State, sandbox_id: &str, shutdown: &str, reason: &str) {
        for socket in state.get_websockets_with_tag(&sandbox_tag(sandbox_id)) {
            send(&socket, shutdown);
            close(&socket, CloseCode::SandboxEnded, reason);
        }
    }
}

/// One SSE message: `id`, `event` and `data` lines.
pub fn sse_chunk(seq: u64, type_name: &str, json: &str) -> String {
    format!("id: {seq}\nevent: {type_name}\ndata: {json}\n\n")
}
