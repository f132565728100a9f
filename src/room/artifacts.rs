//! Artifacts: what the session produced or was given (a DOM selection from a participant, the
//! session's branch, its pull request, a file from the agent), each stored with its
//! `artifact_created` event, and changed later with an `artifact_updated` one. A tool call or
//! file edit too large for an event is stored cut, and its whole kept as a `file` artifact
//! that is fetched on demand (`GET …/artifacts/:id`), with no event of its own.

use super::context::Ctx;
use super::prompts::refuse_if_archived;
use super::store::{ArtifactRow, Participant};
use crate::error::Result;
use crate::ids::new_id;
use crate::time::rfc3339;
use protocol::cut::STORED_FIELD_BYTES;
use protocol::event::{Artifact, EventBody, FileEdit, ToolCall};
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

/// A tool call, cut to [`STORED_FIELD_BYTES`] an input and output; the whole in an artifact.
pub fn tool_call(cx: &Ctx, mut call: ToolCall) -> Result<()> {
    let whole = json!({
        "name": format!("{} {} ({})", call.tool, call.call_id, status_name(&call)),
        "event": "tool_call",
        "call_id": call.call_id,
        "input": call.input,
        "output": call.output,
    });
    if !call.cut_to(STORED_FIELD_BYTES) {
        return cx.emit(EventBody::ToolCall(call)).map(drop);
    }
    let message_id = call.message_id.clone();
    let id = new_id("art")?;
    call.artifact_id = Some(id.clone());
    keep_whole(cx, id, &message_id, whole, EventBody::ToolCall(call))
}

fn status_name(call: &ToolCall) -> String {
    serde_json::to_value(call.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A file edit, its diff cut to [`STORED_FIELD_BYTES`]; the whole in an artifact.
pub fn file_edit(cx: &Ctx, mut edit: FileEdit) -> Result<()> {
    let whole = json!({
        "name": format!("{}.diff", edit.path),
        "event": "file_edit",
        "path": edit.path,
        "diff": edit.diff,
    });
    if !edit.cut_to(STORED_FIELD_BYTES) {
        return cx.emit(EventBody::FileEdit(edit)).map(drop);
    }
    let message_id = edit.message_id.clone();
    let id = new_id("art")?;
    edit.artifact_id = Some(id.clone());
    keep_whole(cx, id, &message_id, whole, EventBody::FileEdit(edit))
}

/// Stores the cut event and, with it, the artifact holding the whole.
fn keep_whole(
    cx: &Ctx,
    id: String,
    message_id: &str,
    whole: Value,
    event: EventBody,
) -> Result<()> {
    let row = ArtifactRow {
        id,
        seq: 0,
        kind: "file".into(),
        message_id: Some(message_id.to_owned()),
        author_id: None,
        data: serde_json::to_string(&whole)?,
        created_at: rfc3339(cx.now),
    };
    cx.emit_with_rows(event, |seq| {
        cx.store.insert_artifact(&ArtifactRow { seq, ..row })
    })
    .map(drop)
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
