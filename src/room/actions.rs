//! What the room does, independent of how it was asked (WebSocket frame or HTTP):
//! join, prompt, cancel, stop, select, leave, archive. Each action stores first, then
//! broadcasts, with no `.await` in between.

use super::api::Caller;
use super::object::SessionRoom;
use super::queue::{self, MessageStatus};
use super::store::{found, ArtifactRow, NewMessage, Participant, StoredEvent};
use crate::error::Result;
use crate::ids::new_id;
use crate::respond;
use crate::time::rfc3339;
use protocol::event::{Artifact, EventBody, MessageEvent, PromptStatus, Source};
use protocol::frames::PromptInput;
use protocol::selection::DomSelection;
use protocol::{ApiError, ErrorCode};
use serde_json::{json, Value};
use worker::Response;

impl SessionRoom {
    /// Stores an event and sends it to everyone.
    pub(super) fn emit(&self, body: EventBody, now: u64) -> Result<StoredEvent> {
        self.emit_with_rows(body, now, |_| Ok(()))
    }

    /// Stores an event and the rows that go with it (`store_rows` gets the event's `seq`),
    /// then sends the event to everyone: nothing is broadcast that is not stored.
    pub(super) fn emit_with_rows(
        &self,
        body: EventBody,
        now: u64,
        store_rows: impl FnOnce(u64) -> Result<()>,
    ) -> Result<StoredEvent> {
        let event = self.store.append(body, now)?;
        store_rows(event.seq)?;
        self.hub
            .broadcast_event(&self.state, event.seq, event.type_name, &event.json);
        Ok(event)
    }

    /// The caller's participant, created (with a `participant_joined` event) the first time.
    pub(super) fn ensure_participant(&self, caller: &Caller, now: u64) -> Result<Participant> {
        if let Some(mut participant) = self.store.participant_by_user(&caller.user_id)? {
            if participant.name != caller.name || participant.email != caller.email {
                participant.name = caller.name.clone();
                participant.email = caller.email.clone();
                self.store.update_participant_name(&participant)?;
            }
            return Ok(participant);
        }
        let participant = Participant {
            id: new_id("par"),
            user_id: caller.user_id.clone(),
            name: caller.name.clone(),
            email: caller.email.clone(),
        };
        self.store.insert_participant(&participant, now)?;
        self.emit(
            EventBody::ParticipantJoined {
                participant: participant.info(),
            },
            now,
        )?;
        Ok(participant)
    }

    fn refuse_if_archived(&self) -> Result<()> {
        if self.session()?.is_archived() {
            return Err(ApiError::new(ErrorCode::Conflict, "the session is archived").into());
        }
        Ok(())
    }

    /// Queues a prompt; returns its message id and 1-based place among waiting prompts.
    /// A `client_request_id` seen before from the same user returns the first message.
    pub(super) fn prompt(
        &self,
        author: &Participant,
        input: PromptInput,
        default_source: Source,
        now: u64,
    ) -> Result<(String, u32)> {
        self.refuse_if_archived()?;
        if let Some(request_id) = &input.client_request_id {
            if let Some(existing) = self.store.message_by_request(&author.user_id, request_id)? {
                return Ok((existing.id.clone(), self.store.position(&existing)?));
            }
        }
        self.rates.borrow_mut().prompts.take(&author.user_id, now)?;
        for id in &input.selection_ids {
            match self.store.artifact(id)? {
                Some(artifact) if artifact.kind == "dom_selection" => {}
                _ => {
                    return Err(ApiError::invalid_field(format!(
                        "selection {id} does not exist in this session"
                    ))
                    .into())
                }
            }
        }
        let position = queue::admit(self.store.count_waiting()?, self.limits.queue_len)?;
        let message_id = new_id("msg");
        let source = input.source.unwrap_or(default_source);
        let body = EventBody::Message(MessageEvent {
            message_id: message_id.clone(),
            content: input.content.clone(),
            author: author.author(),
            source,
            client_request_id: input.client_request_id.clone(),
            attachments: input.attachments.clone(),
            selection_ids: input.selection_ids.clone(),
        });
        let message = NewMessage {
            id: &message_id,
            author,
            content: &input.content,
            source: source.as_str(),
            client_request_id: input.client_request_id.as_deref(),
            attachments: &input.attachments,
            selection_ids: &input.selection_ids,
        };
        self.emit_with_rows(body, now, |seq| {
            self.store.insert_message(&message, seq, now)
        })?;
        if self.hub.clear_typing(&author.id) {
            self.hub.broadcast_presence(&self.state, None, now);
        }
        Ok((message_id, position))
    }

    pub(super) fn cancel(&self, message_id: &str, now: u64) -> Result<()> {
        self.refuse_if_archived()?;
        let message = self.store.message(message_id)?;
        queue::check_cancel(message.as_ref().map(|m| m.status()))?;
        self.finish_prompt(message_id, PromptStatus::Cancelled, None, now)
    }

    /// Ends a prompt: its status in `messages` and a `prompt_finished` event, after any
    /// token text still batched in memory.
    pub(super) fn finish_prompt(
        &self,
        message_id: &str,
        status: PromptStatus,
        error: Option<&str>,
        now: u64,
    ) -> Result<()> {
        self.flush_tokens(now)?;
        self.store
            .finish_message(message_id, MessageStatus::from(status), error, now)?;
        self.emit(
            EventBody::PromptFinished {
                message_id: message_id.to_owned(),
                status,
                error: error.map(str::to_owned),
            },
            now,
        )
        .map(drop)
    }

    pub(super) fn add_selection(
        &self,
        author: &Participant,
        selection: DomSelection,
        now: u64,
    ) -> Result<String> {
        self.refuse_if_archived()?;
        let artifact = Artifact {
            id: new_id("art"),
            kind: "dom_selection".into(),
            created_at: rfc3339(now),
            author: Some(author.author()),
            message_id: None,
            data: serde_json::to_value(&selection)?,
        };
        let row_data = serde_json::to_string(&artifact.data)?;
        let id = artifact.id.clone();
        let created_at = artifact.created_at.clone();
        self.emit_with_rows(EventBody::ArtifactCreated { artifact }, now, |seq| {
            self.store.insert_artifact(&ArtifactRow {
                id: id.clone(),
                seq,
                kind: "dom_selection".into(),
                message_id: None,
                author_id: Some(author.id.clone()),
                data: row_data,
                created_at,
            })
        })?;
        Ok(id)
    }

    pub(super) fn artifact_json(&self, row: &ArtifactRow) -> Value {
        json!({
            "id": row.id,
            "type": row.kind,
            "seq": row.seq,
            "message_id": row.message_id,
            "author_id": row.author_id,
            "created_at": row.created_at,
            "data": row.data(),
        })
    }

    /// Participants (with who is online), the queue, the sandbox and the last `seq`.
    pub(super) fn describe(&self) -> Result<Response> {
        found(self.store.session()?, "session")?;
        let online = self.hub.online(&self.state, None);
        let participants: Vec<Value> = self
            .store
            .participants()?
            .iter()
            .map(|p| json!({"id": p.id, "user_id": p.user_id, "name": p.name, "online": online.iter().any(|o| o.id == p.id)}))
            .collect();
        let mut position = 0;
        let queue: Vec<Value> = self
            .store
            .queue()?
            .iter()
            .map(|m| {
                let queued = m.status() == MessageStatus::Queued;
                position += u32::from(queued);
                json!({
                    "message_id": m.id,
                    "status": m.status,
                    "position": if queued { position } else { 0 },
                    "author": {"id": m.author_id, "name": m.author_name},
                    "content": m.content,
                })
            })
            .collect();
        respond::json(
            200,
            &json!({ "participants": participants, "queue": queue, "sandbox": self.sandbox_json()?, "last_seq": self.store.last_seq()? }),
        )
    }

    pub(super) fn remove_member(&self, user_id: &str, now: u64) -> Result<()> {
        if let Some(participant) = self.store.participant_by_user(user_id)? {
            self.hub.close_user(
                &self.state,
                user_id,
                4003,
                "you are no longer a member of this session",
            );
            self.emit(
                EventBody::ParticipantLeft {
                    participant: participant.info(),
                },
                now,
            )?;
        }
        Ok(())
    }

    /// Archives the session: unfinished prompts end as cancelled, sockets close with 4009,
    /// and the history stays readable.
    pub(super) fn archive(&self, now: u64) -> Result<()> {
        self.session()?;
        self.store.set_session_status("archived")?;
        let reason = "the session was archived";
        for message in self.store.queue()? {
            self.finish_prompt(&message.id, PromptStatus::Cancelled, Some(reason), now)?;
        }
        self.end_for_archive(now)?;
        self.hub
            .close_all(&self.state, 4009, "the session is archived");
        Ok(())
    }
}
