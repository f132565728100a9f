//! The room's sockets: participant sockets and the bridge's (through the hibernation API),
//! live SSE streams held in memory, broadcast to all of them, and presence.
//!
//! A socket carries its owner as a short string in its hibernation attachment
//! (`p:<participant id>:<token expiry ms>` or `b:<sandbox id>`), so the room knows who is on
//! each socket, and until when it may stay, after it wakes, and reading it on every frame
//! costs one short string across the boundary. SSE streams are kept with their user, so a
//! member who is removed or revoked loses their streams as well as their sockets.

use super::presence::{Delta, Presence, TYPING_MS};
use super::store::{Participant, Store};
use crate::error::Result;
use futures_channel::mpsc::UnboundedSender;
use protocol::event::ParticipantInfo;
use protocol::frames::{PresenceChange, ServerFrame};
use protocol::CloseCode;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{State, WebSocket};

const PARTICIPANT_TAG: &str = "participant";
/// Presence changes closer together than this go out together, as one frame per socket: a
/// burst of joins costs O(N) frames, not one per join per socket.
const PRESENCE_BATCH_MS: u64 = 50;
/// What an SSE stream may hold that its reader has not taken; a reader further behind is
/// cut off and comes back with `Last-Event-ID`.
const SSE_QUEUE_CHUNKS: usize = 512;
const SSE_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Sockets, and SSE streams, one user may hold open on one session.
pub const MAX_CONNECTIONS_PER_USER: usize = 8;

/// What an SSE stream's reader has not taken yet: chunks and bytes.
#[derive(Clone, Default)]
pub struct Backlog(Rc<Cell<(usize, usize)>>);

impl Backlog {
    fn add(&self, bytes: usize) {
        let (n, total) = self.0.get();
        self.0.set((n + 1, total + bytes));
    }

    /// The reader took a chunk of `bytes`.
    pub fn taken(&self, bytes: usize) {
        let (n, total) = self.0.get();
        self.0
            .set((n.saturating_sub(1), total.saturating_sub(bytes)));
    }

    fn would_overflow(&self, bytes: usize) -> bool {
        let (n, total) = self.0.get();
        n >= SSE_QUEUE_CHUNKS || total + bytes > SSE_QUEUE_BYTES
    }
}

/// A live SSE stream: whose it is, where its chunks go, and how far its reader is behind.
pub struct Stream {
    pub user_id: String,
    pub sender: UnboundedSender<Vec<u8>>,
    pub backlog: Backlog,
    /// When it ends: its token's expiry, if it was opened with one.
    pub expires_ms: Option<u64>,
}

impl Stream {
    /// Queues a chunk; false when the stream is gone, or its reader so far behind that it is
    /// cut off (dropping the sender ends the response; the reader resumes from its last id).
    pub fn send(&self, chunk: Vec<u8>) -> bool {
        if self.backlog.would_overflow(chunk.len()) {
            return false;
        }
        let bytes = chunk.len();
        let sent = self.sender.unbounded_send(chunk).is_ok();
        if sent {
            self.backlog.add(bytes);
        }
        sent
    }
}

fn user_tag(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The tag of a sandbox's bridge socket; it is never a participant, so broadcasts skip it.
fn sandbox_tag(sandbox_id: &str) -> String {
    format!("sandbox:{sandbox_id}")
}

/// Who is on a socket, as its attachment says.
pub enum SocketOwner {
    /// A participant, by participant id.
    Participant(String),
    /// A sandbox's bridge, by sandbox id.
    Bridge(String),
}

#[wasm_bindgen(inline_js = r#"
export function broadcast(state, tag, text, except) {
  for (const socket of state.getWebSockets(tag)) {
    if (socket === except) continue;
    try { socket.send(text); } catch (_) { /* closing: its close handler cleans up */ }
  }
}
export function attachment(socket) {
  const value = socket.deserializeAttachment();
  return typeof value === "string" ? value : undefined;
}
"#)]
extern "C" {
    /// Sends the same text to every socket with `tag` but `except`, in one call: the loop runs
    /// in JavaScript, so the text crosses the boundary once and no socket is wrapped for Rust.
    fn broadcast(state: &JsValue, tag: &str, text: &str, except: &JsValue);
    /// The socket's attachment when it is a string (every socket this room accepts).
    fn attachment(socket: &JsValue) -> Option<String>;
}

/// Sends a frame, ignoring a socket that is already closing: its close handler cleans up.
pub fn send(socket: &WebSocket, text: &str) {
    let _ = socket.send_with_str(text);
}

pub fn close(socket: &WebSocket, code: CloseCode, reason: &str) {
    let _ = socket.close(Some(code.code()), Some(reason));
}

fn raw(socket: &WebSocket) -> &JsValue {
    socket.as_ref().unchecked_ref()
}

/// In-memory state of the hub; lost on hibernation, which is harmless for all of it:
/// presence is read back from the sockets, typing expires in seconds, and SSE streams keep
/// the room awake while they are open.
#[derive(Default)]
pub struct Hub {
    presence: RefCell<Presence>,
    /// Presence changes not yet sent, and when the last batch went out.
    pending: RefCell<Vec<Delta>>,
    last_presence_ms: Cell<u64>,
    /// Live SSE streams, each with the user it was opened for.
    sse: RefCell<Vec<Stream>>,
    /// The earliest token expiry among participant sockets: `None` until read back from the
    /// attachments (after a wake), then kept as sockets come and their tokens run out.
    earliest_expiry: Cell<Option<Option<u64>>>,
}

/// The participant id and token expiry of a participant socket's attachment
/// (`<id>:<expiry>`; an attachment without an expiry never expires).
fn participant_part(rest: &str) -> (&str, Option<u64>) {
    match rest.split_once(':') {
        Some((id, expires)) => (id, expires.parse().ok()),
        None => (rest, None),
    }
}

impl Hub {
    pub fn owner_of(socket: &WebSocket) -> Option<SocketOwner> {
        let text = attachment(raw(socket))?;
        match text.split_once(':')? {
            ("p", rest) => Some(SocketOwner::Participant(
                participant_part(rest).0.to_owned(),
            )),
            ("b", id) => Some(SocketOwner::Bridge(id.to_owned())),
            _ => None,
        }
    }

    fn participant_id(socket: &WebSocket) -> Option<String> {
        match Self::owner_of(socket)? {
            SocketOwner::Participant(id) => Some(id),
            SocketOwner::Bridge(_) => None,
        }
    }

    // --- participants ------------------------------------------------------------------------

    /// Accepts a participant's socket, which closes with 4001 at `expires_ms`. Call
    /// [`Hub::joined`] once the socket has its welcome.
    pub fn accept(
        &self,
        state: &State,
        store: &Store,
        socket: &WebSocket,
        participant: &Participant,
        expires_ms: u64,
    ) -> Result<()> {
        self.load_presence(state, store)?;
        state.accept_websocket_with_tags(
            socket,
            &[PARTICIPANT_TAG, &user_tag(&participant.user_id)],
        );
        socket.serialize_attachment(format!("p:{}:{expires_ms}", participant.id))?;
        if let Some(known) = self.earliest_expiry.get() {
            let earliest = known.map_or(expires_ms, |at| at.min(expires_ms));
            self.earliest_expiry.set(Some(Some(earliest)));
        }
        Ok(())
    }

    /// When the first participant socket's or SSE stream's token runs out, if any has one.
    pub fn earliest_expiry(&self, state: &State) -> Option<u64> {
        let sockets = match self.earliest_expiry.get() {
            Some(known) => known,
            None => {
                let earliest = state
                    .get_websockets_with_tag(PARTICIPANT_TAG)
                    .iter()
                    .filter_map(socket_expiry)
                    .min();
                self.earliest_expiry.set(Some(earliest));
                earliest
            }
        };
        let streams = self.sse.borrow().iter().filter_map(|s| s.expires_ms).min();
        match (sockets, streams) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes with 4001 every participant socket whose token has run out by `now_ms`, and ends
    /// every SSE stream whose token has (dropping its sender ends the response).
    pub fn close_expired(&self, state: &State, now_ms: u64) {
        self.sse
            .borrow_mut()
            .retain(|stream| stream.expires_ms.is_none_or(|at| at > now_ms));
        let mut earliest: Option<u64> = None;
        for socket in state.get_websockets_with_tag(PARTICIPANT_TAG) {
            match socket_expiry(&socket) {
                Some(at) if at <= now_ms => {
                    let expired = CloseCode::TokenExpired;
                    close(&socket, expired, expired.default_reason());
                }
                Some(at) => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                None => {}
            }
        }
        self.earliest_expiry.set(Some(earliest));
    }

    /// The participant's socket is in: everyone hears that they joined, if it is their first.
    pub fn joined(&self, state: &State, participant: &Participant, now_ms: u64) {
        let delta = self.presence.borrow_mut().opened(&participant.info());
        if let Some(delta) = delta {
            self.announce(state, delta, now_ms);
        }
    }

    /// Who is online (each participant once).
    pub fn online(&self, state: &State, store: &Store) -> Result<Vec<ParticipantInfo>> {
        self.load_presence(state, store)?;
        Ok(self.presence.borrow().online())
    }

    /// Who is typing now.
    pub fn typing_now(&self, now_ms: u64) -> Vec<ParticipantInfo> {
        self.presence.borrow_mut().typing_now(now_ms)
    }

    /// A socket went away (closed or failed); a participant's last one means they left.
    pub fn socket_gone(&self, state: &State, store: &Store, socket: &WebSocket, now_ms: u64) {
        close(
            socket,
            CloseCode::Normal,
            CloseCode::Normal.default_reason(),
        );
        // A bridge that went away reconnects; only a missed heartbeat ends its sandbox.
        let Some(participant_id) = Self::participant_id(socket) else {
            return;
        };
        if let Err(error) = self.load_presence(state, store) {
            crate::log::error(&format!("presence could not be read back: {error:?}"));
            return;
        }
        let user_id = self.presence.borrow().user_of(&participant_id);
        let others_open = user_id.is_some_and(|user_id| {
            state
                .get_websockets_with_tag(&user_tag(&user_id))
                .iter()
                .any(|other| other != socket)
        });
        let delta = self
            .presence
            .borrow_mut()
            .closed(&participant_id, others_open);
        if let Some(delta) = delta {
            self.announce(state, delta, now_ms);
        }
    }

    pub fn typing(
        &self,
        state: &State,
        store: &Store,
        participant: &Participant,
        now_ms: u64,
    ) -> Result<()> {
        self.load_presence(state, store)?;
        let delta = self
            .presence
            .borrow_mut()
            .typing(&participant.info(), now_ms);
        self.announce(state, delta, now_ms);
        Ok(())
    }

    /// The participant sent a prompt: if they were typing, they are not any more.
    pub fn idle(&self, state: &State, participant: &Participant, now_ms: u64) {
        let delta = self.presence.borrow_mut().idle(&participant.id, now_ms);
        if let Some(delta) = delta {
            self.announce(state, delta, now_ms);
        }
    }

    /// Reads who is online back from the sockets, once after the room wakes. A socket that is
    /// closing counts too: its close handler then tells everyone the participant left.
    fn load_presence(&self, state: &State, store: &Store) -> Result<()> {
        if self.presence.borrow().is_loaded() {
            return Ok(());
        }
        let mut owners = Vec::new();
        for socket in state.get_websockets_with_tag(PARTICIPANT_TAG) {
            if let Some(id) = Self::participant_id(&socket) {
                if let Some(participant) = store.participant(&id)? {
                    owners.push(participant.info());
                }
            }
        }
        self.presence.borrow_mut().load(owners);
        Ok(())
    }

    /// Tells everyone of a presence change: at once after a quiet spell, otherwise together
    /// with the changes that follow it, when [`Hub::presence_due`] says.
    fn announce(&self, state: &State, delta: Delta, now_ms: u64) {
        self.pending.borrow_mut().push(delta);
        if now_ms.saturating_sub(self.last_presence_ms.get()) >= PRESENCE_BATCH_MS {
            self.flush_presence(state, now_ms);
        }
    }

    /// When the presence changes held back must go out, if any are.
    pub fn presence_due(&self) -> Option<u64> {
        (!self.pending.borrow().is_empty()).then(|| self.last_presence_ms.get() + PRESENCE_BATCH_MS)
    }

    /// Sends the presence changes held back, as one `presence_delta` frame to every socket.
    pub fn flush_presence(&self, state: &State, now_ms: u64) {
        let changes = std::mem::take(&mut *self.pending.borrow_mut());
        if changes.is_empty() {
            return;
        }
        self.last_presence_ms.set(now_ms);
        let changes = changes
            .into_iter()
            .map(|delta| protocol::frames::PresenceDelta {
                expires_in_ms: (delta.change == PresenceChange::Typing).then_some(TYPING_MS),
                change: delta.change,
                participant: delta.participant,
            })
            .collect();
        self.broadcast_sockets(
            state,
            &ServerFrame::PresenceDelta { changes }.to_json(),
            None,
        );
    }

    /// Closes every socket of a user with `code` and ends their streams: they are no longer
    /// a member, or may no longer use the session (disabled, scopes narrowed).
    pub fn close_user(
        &self,
        state: &State,
        participant: &Participant,
        code: CloseCode,
        reason: &str,
        now_ms: u64,
    ) {
        for socket in state.get_websockets_with_tag(&user_tag(&participant.user_id)) {
            close(&socket, code, reason);
        }
        // Dropping a stream's sender ends its response.
        self.sse
            .borrow_mut()
            .retain(|stream| stream.user_id != participant.user_id);
        let delta = self.presence.borrow_mut().closed(&participant.id, false);
        if let Some(delta) = delta {
            self.announce(state, delta, now_ms);
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
        let except = except.map_or(JsValue::UNDEFINED, |socket| raw(socket).clone());
        broadcast(state.as_raw().as_ref(), PARTICIPANT_TAG, text, &except);
    }

    /// Sends a stored event to every participant socket and SSE stream; a stream whose reader
    /// is too far behind is cut off.
    pub fn broadcast_event(&self, state: &State, seq: u64, type_name: &str, json: &str) {
        self.broadcast_sockets(state, json, None);
        let mut streams = self.sse.borrow_mut();
        if !streams.is_empty() {
            let chunk = sse_chunk(seq, type_name, json).into_bytes();
            streams.retain(|stream| stream.send(chunk.clone()));
        }
    }

    /// Keeps a stream for live events; it ends when its user loses access.
    pub fn add_stream(&self, stream: Stream) {
        self.sse.borrow_mut().push(stream);
    }

    /// How many sockets and how many open SSE streams the user has on this session.
    pub fn connections_of(&self, state: &State, user_id: &str) -> (usize, usize) {
        let sockets = state.get_websockets_with_tag(&user_tag(user_id)).len();
        let streams = self
            .sse
            .borrow()
            .iter()
            .filter(|s| s.user_id == user_id && !s.sender.is_closed())
            .count();
        (sockets, streams)
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
        socket.serialize_attachment(format!("b:{sandbox_id}"))?;
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

/// The token expiry in a participant socket's attachment.
fn socket_expiry(socket: &WebSocket) -> Option<u64> {
    let text = attachment(raw(socket))?;
    participant_part(text.strip_prefix("p:")?).1
}

/// One SSE message: `id`, `event` and `data` lines.
pub fn sse_chunk(seq: u64, type_name: &str, json: &str) -> String {
    format!("id: {seq}\nevent: {type_name}\ndata: {json}\n\n")
}
