//! Artifacts: what the session produced or was given (a DOM selection from a participant, the
//! session's branch, its pull request, a file from the agent), each stored with its
//! `artifact_created` event, and changed later with an `artifact_updated` one.

use super::context::Ctx;
use super::prompts::refuse_if_archived;
use super::store::{ArtifactRow, Participant};
use crate::error::Result;
use crate::ids::new_id;
use crate::time::rfc3339;
use protocol::event::{Artifact, EventBody};
use protocol::selection::DomSelection;
use serde_json::{json, Value};

/// Stores an artifact and its event; returns the artifact's id.
pub fn add(
    cx: &Ctx,
    kind: &str,
    author: Option<&Participant>,
    message_id: Option<&str>,
    data: Value,
) -> Result<String> {
    let artifact = Artifact {
        id: new_id("art")?,
        kind: kind.to_owned(),
        created_at: rfc3339(cx.now),
        author: author.map(Participant::author),
        message_id: message_id.map(str::to_owned),
        data,
    };
    let row = ArtifactRow {
        id: artifact.id.clone(),
        seq: 0,
        kind: artifact.kind.clone(),
        message_id: artifact.message_id.clone(),
        author_id: author.map(|a| a.id.clone()),
        data: serde_json::to_string(&artifact.data)?,
        created_at: artifact.created_at.clone(),
    };
    let id = row.id.clone();
    cx.emit_with_rows(EventBody::ArtifactCreated { artifact }, |seq| {
        cx.store.insert_artifact(&ArtifactRow { seq, ..row })
    })?;
    Ok(id)
}

/// New data for an artifact, with its `artifact_updated` event (the whole artifact as it is
/// now); nothing is stored or sent when the data did not change.
pub fn update(cx: &Ctx, row: &ArtifactRow, data: Value) -> Result<bool> {
    if row.data() == data {
        return Ok(false);
    }
    let author = match &row.author_id {
        Some(id) => cx.store.participant(id)?.map(|p| p.author()),
        None => None,
    };
    let text = serde_json::to_string(&data)?;
    let artifact = Artifact {
        id: row.id.clone(),
        kind: row.kind.clone(),
        created_at: row.created_at.clone(),
        author,
        message_id: row.message_id.clone(),
        data,
    };
    cx.emit_with_rows(EventBody::ArtifactUpdated { artifact }, |seq| {
        cx.store.update_artifact(&row.id, seq, &text)
    })?;
    Ok(true)
}

/// A participant's DOM selection (from the Chrome extension).
pub fn add_selection(cx: &Ctx, author: &Participant, selection: DomSelection) -> Result<String> {
    refuse_if_archived(cx)?;
    add(
        cx,
        "dom_selection",
        Some(author),
        None,
        serde_json::to_value(&selection)?,
    )
}

/// An artifact as `GET /v1/sessions/:id/artifacts` lists it.
pub fn to_json(row: &ArtifactRow) -> Value {
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
