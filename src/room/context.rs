//! What an action borrows from the room for the length of one callback: the store, the
//! sockets, the configuration, the bindings and the time. Every part of the room takes this (and only the
//! extra pieces it needs) rather than the whole room.

use super::hub::Hub;
use super::store::{Store, StoredEvent};
use crate::config::Config;
use crate::error::Result;
use protocol::event::EventBody;
use protocol::Limits;
use worker::{Env, State};

#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub state: &'a State,
    /// The bindings, for the few parts that reach past the room (metrics to D1).
    pub env: &'a Env,
    pub store: &'a Store,
    pub hub: &'a Hub,
    pub config: &'a Config,
    /// The time the callback started, in ms since the epoch.
    pub now: u64,
}

impl Ctx<'_> {
    /// The same context at a later time, after an `.await`.
    pub fn at(&self, now: u64) -> Self {
        Ctx { now, ..*self }
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// Stores an event and sends it to everyone.
    pub fn emit(&self, body: EventBody) -> Result<StoredEvent> {
        self.emit_with_rows(body, |_| Ok(()))
    }

    /// Stores an event and the rows that go with it (`store_rows` gets the event's `seq`),
    /// then sends the event to everyone: nothing is broadcast that is not stored, and with no
    /// `.await` in between the event and its rows commit together.
    pub fn emit_with_rows(
        &self,
        body: EventBody,
        store_rows: impl FnOnce(u64) -> Result<()>,
    ) -> Result<StoredEvent> {
        let event = self.store.append(body, self.now)?;
        store_rows(event.seq)?;
        self.hub
            .broadcast_event(self.state, event.seq, event.type_name, &event.json);
        Ok(event)
    }
}
