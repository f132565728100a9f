//! Who belongs to the session: participants as they first appear, members removed, the
//! session archived, and the description `GET /v1/sessions/:id` shows.

use super::api::{Caller, Revocation};
use super::bridge::flush_tokens;
use super::context::Ctx;
use super::queue::MessageStatus;
use super::store::Participant;
use super::tokens::Coalescer;
use super::{artifacts, prompts, sandbox};
use crate::error::Result;
use crate::ids::new_id;
use protocol::event::{EventBody, PromptStatus};
use protocol::CloseCode;
use serde_json::{json, Value};
use std::cell::RefCell;

/// The caller's participant, created (with a `participant_joined` event) the first time.
pub fn ensure_participant(cx: &Ctx, caller: &Caller) -> Result<Participant> {
    if let Some(mut participant) = cx.store.participant_by_user(&caller.user_id)? {
        if participant.name != caller.name || participant.email != caller.email {
            participant.name = caller.name.clone();
            participant.email = caller.email.clone();
            cx.store.update_participant_name(&participant)?;
        }
        return Ok(participant);
    }
    let participant = Participant {
        id: new_id("par")?,
        user_id: caller.user_id.clone(),
        name: caller.name.clone(),
        email: caller.email.clone(),
    };
    cx.store.insert_participant(&participant, cx.now)?;
    cx.emit(EventBody::ParticipantJoined {
        participant: participant.info(),
    })?;
    Ok(participant)
}

/// The member's sockets close with 4003, and a `participant_left` event is stored.
pub fn remove(cx: &Ctx, user_id: &str) -> Result<()> {
    if let Some(participant) = cx.store.participant_by_user(user_id)? {
        let removed = CloseCode::Removed;
        cx.hub.close_user(
            cx.state,
            &participant,
            removed,
            removed.default_reason(),
            cx.now,
        );
        cx.emit(EventBody::ParticipantLeft {
            participant: participant.info(),
        })?;
    }
    Ok(())
}

/// A user's access ended outside the room (disabled, or scopes that no longer cover the
/// repository): their sockets close with the code given and their streams end. They stay a
/// participant; the Worker refuses them until their access is back.
pub fn revoke(cx: &Ctx, revocation: &Revocation) -> Result<()> {
    let code = CloseCode::from_code(revocation.close).unwrap_or(CloseCode::Removed);
    // A close frame's reason has room for 123 bytes.
    let mut end = revocation.reason.len().min(123);
    while !revocation.reason.is_char_boundary(end) {
        end -= 1;
    }
    if let Some(participant) = cx.store.participant_by_user(&revocation.user_id)? {
        cx.hub.close_user(
            cx.state,
            &participant,
            code,
            &revocation.reason[..end],
            cx.now,
        );
    }
    Ok(())
}

/// Archives the session: unfinished prompts end as cancelled, the sandbox ends, sockets
/// close with 4009, and the history stays readable.
pub fn archive(cx: &Ctx, tokens: &RefCell<Coalescer>) -> Result<()> {
    cx.store.existing_session()?;
    cx.store.set_session_status("archived")?;
    flush_tokens(cx, tokens)?;
    let reason = "the session was archived";
    for message in cx.store.queue()? {
        prompts::finish(cx, &message.id, PromptStatus::Cancelled, Some(reason))?;
    }
    sandbox::end_for_archive(cx)?;
    cx.hub.close_all(cx.state, CloseCode::Archived);
    Ok(())
}

/// Participants (with who is online), the queue, the sandbox and the last `seq`.
pub fn describe(cx: &Ctx) -> Result<Value> {
    cx.store.existing_session()?;
    let online = cx.hub.online(cx.state, cx.store)?;
    let participants: Vec<Value> = cx
        .store
        .participants()?
        .iter()
        .map(|p| json!({"id": p.id, "user_id": p.user_id, "name": p.name, "online": online.iter().any(|o| o.id == p.id)}))
        .collect();
    let mut position = 0;
    let queue: Vec<Value> = cx
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
    Ok(json!({
        "participants": participants,
        "queue": queue,
        "sandbox": sandbox::describe(cx)?,
        // The session's branch and pull request as they are now, so a page that shows only
        // the last events still shows them.
        "branch": cx.store.latest_artifact("branch")?.as_ref().map(artifacts::to_json),
        "pull_request": cx.store.latest_artifact("pr")?.as_ref().map(artifacts::to_json),
        "last_seq": cx.store.last_seq()?,
    }))
}
