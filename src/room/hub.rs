//! The room's sockets: who is connected, presence, and broadcast to every participant
//! (WebSockets through the hibernation API, plus live SSE streams held in memory).
//!
//! A participant socket carries its [`Participant`] as the hibernation attachment, so the
//! room knows who is on each socket after it wakes without reading SQLite.

use super::store::Participant;
use crate::error::Result;
use futures_channel::mpsc::UnboundedSender;
use protocol::event::ParticipantInfo;
use protocol::frames::ServerFrame;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::JsCast;
use worker::{State, WebSocket};

pub const PARTICIPANT_TAG: &str = "participant";
/// How long a `typing` frame keeps its sender in the typing list.
const TYPING_MS: u64 = 6_000;

pub fn user_tag(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The tag of a sandbox's bridge socket; it is never a participant, so broadcasts skip it.
pub fn sandbox_tag(sandbox_id: &str) -> String {
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

pub fn close(socket: &WebSocket, code: u16, reason: &str) {
    let _ = socket.close(Some(code), Some(reason));
}

/// In-memory state of the hub; lost on hibernation, which is harmless for all of it:
/// typing expires in seconds and SSE streams keep the room awake while they are open.
#[derive(Default)]
pub struct Hub {
    typing: RefCell<HashMap<String, (ParticipantInfo, u64)>>,
    sse: RefCell<Vec<UnboundedSender<Vec<u8>>>>,
}

impl Hub {
    pub fn accept(
        &self,
        state: &State,
        socket: &WebSocket,
        participant: &Participant,
    ) -> Result<()> {
        state.accept_websocket_with_tags(
            socket,
            &[PARTICIPANT_TAG, &user_tag(&participant.user_id)],
        );
        socket.serialize_attachment(participant)?;
        Ok(())
    }

    pub fn accept_bridge(&self, state: &State, socket: &WebSocket, sandbox_id: &str) -> Result<()> {
        state.accept_websocket_with_tags(socket, &[&sandbox_tag(sandbox_id)]);
        socket.serialize_attachment(BridgeLink {
            sandbox_id: sandbox_id.to_owned(),
        })?;
        Ok(())
    }

    pub fn owner_of(socket: &WebSocket) -> Option<SocketOwner> {
        socket
            .deserialize_attachment::<SocketOwner>()
            .ok()
            .flatten()
    }

    pub fn participant_of(socket: &WebSocket) -> Option<Participant> {
        socket
            .deserialize_attachment::<Participant>()
            .ok()
            .flatten()
    }

    /// Sends the same text to every participant socket and SSE stream.
    pub fn broadcast(&self, state: &State, text: &str) {
        // One JavaScript string for every socket: passing `&str` would copy and decode the
        // UTF-8 across the wasm boundary once per socket.
        let text = wasm_bindgen::JsValue::from_str(text);
        for socket in state.get_websockets_with_tag(PARTICIPANT_TAG) {
            let raw: &RawSocket = socket.as_ref().unchecked_ref();
            let _ = raw.send(&text);
        }
    }

    /// Broadcasts a stored event to sockets and SSE streams.
    pub fn broadcast_event(&self, state: &State, seq: u64, type_name: &str, json: &str) {
        self.broadcast(state, json);
        let mut streams = self.sse.borrow_mut();
        if !streams.is_empty() {
            let chunk = sse_chunk(seq, type_name, json).into_bytes();
            streams.retain(|stream| stream.unbounded_send(chunk.clone()).is_ok());
        }
    }

    pub fn add_stream(&self, stream: UnboundedSender<Vec<u8>>) {
        self.sse.borrow_mut().push(stream);
    }

    /// Distinct participants with an open socket, `except` one that is closing.
    pub fn online(&self, state: &State, except: Option<&WebSocket>) -> Vec<ParticipantInfo> {
        let mut online: Vec<ParticipantInfo> = Vec::new();
        for socket in state.get_websockets_with_tag(PARTICIPANT_TAG) {
            if Some(&socket) == except {
                continue;
            }
            if let Some(participant) = Self::participant_of(&socket) {
                if !online.iter().any(|p| p.id == participant.id) {
                    online.push(participant.info());
                }
            }
        }
        online
    }

    pub fn set_typing(&self, participant: &Participant, now_ms: u64) {
        self.typing.borrow_mut().insert(
            participant.id.clone(),
            (participant.info(), now_ms + TYPING_MS),
        );
    }

    pub fn clear_typing(&self, participant_id: &str) -> bool {
        self.typing.borrow_mut().remove(participant_id).is_some()
    }

    /// Sends `presence` to everyone: who is online and who is typing now.
    pub fn broadcast_presence(&self, state: &State, except: Option<&WebSocket>, now_ms: u64) {
        let online = self.online(state, except);
        let typing = {
            let mut typing = self.typing.borrow_mut();
            typing.retain(|id, (_, until)| *until > now_ms && online.iter().any(|p| &p.id == id));
            typing.values().map(|(info, _)| info.clone()).collect()
        };
        self.broadcast(state, &ServerFrame::Presence { online, typing }.to_json());
    }

    pub fn close_user(&self, state: &State, user_id: &str, code: u16, reason: &str) {
        for socket in state.get_websockets_with_tag(&user_tag(user_id)) {
            close(&socket, code, reason);
        }
    }

    pub fn close_all(&self, state: &State, code: u16, reason: &str) {
        for socket in state.get_websockets_with_tag(PARTICIPANT_TAG) {
            close(&socket, code, reason);
        }
        self.sse.borrow_mut().clear();
    }
}

/// One SSE message: `id`, `event` and `data` lines.
pub fn sse_chunk(seq: u64, type_name: &str, json: &str) -> String {
    format!("id: {seq}\nevent: {type_name}\ndata: {json}\n\n")
}
