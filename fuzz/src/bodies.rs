//! HTTP bodies: the API's request bodies, prompts, DOM selections, and the provider contract's
//! requests and answers.

use crate::input::{assert_refusal, assert_same, assert_same_json, fields};
use protocol::api::{AddMember, CancelPrompt, CreateSession, CreateUser, UpdateUser};
use protocol::frames::{parse_json, PromptInput};
use protocol::git::{is_branch_name, CredentialRequest};
use protocol::provider::{
    BuildImage, CreateSandbox, CreatedSandbox, Head, HeadLookup, ImageBuild, ImageBuildStarted,
    ProviderHealth, SnapshotTaken,
};
use protocol::scope::is_repo_name;
use protocol::selection::{DomSelection, TEXT_CHARS};
use protocol::{ApiError, ErrorCode, Limits};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Debug;

const JSON_REFUSALS: &[ErrorCode] = &[ErrorCode::InvalidJson, ErrorCode::InvalidField];

/// The first line names the body (`create_user`, `create_sandbox`, …), the rest is the body.
///
/// - every body parses through `parse_json` (bodies are JSON objects), refusing with
///   `invalid_json` or `invalid_field`;
/// - a validated body holds what its validation promises, and a refused one says
///   `invalid_field`;
/// - the provider contract's bodies and the credential request, which are also written,
///   read back the same after writing.
pub fn http_body(data: &[u8]) {
    let Some([kind, body]) = fields(data, 2).and_then(|f| <[&[u8]; 2]>::try_from(f).ok()) else {
        return;
    };
    match kind {
        b"create_user" => {
            if let Some(input) = parsed::<CreateUser>(body) {
                validated(input.validate(), || {
                    assert!(!input.name.trim().is_empty() && input.email.contains('@'));
                });
            }
        }
        b"update_user" => {
            if let Some(input) = parsed::<UpdateUser>(body) {
                validated(input.validate(), || {
                    assert!(input.scopes.is_some() || input.disabled.is_some());
                });
            }
        }
        b"create_session" => {
            if let Some(input) = parsed::<CreateSession>(body) {
                validated(input.validate(), || {
                    assert!(is_repo_name(&input.repo), "repo {:?}", input.repo);
                    if let Some(branch) = &input.branch {
                        assert!(is_branch_name(branch), "branch {branch:?}");
                    }
                });
            }
        }
        b"add_member" => {
            if let Some(input) = parsed::<AddMember>(body) {
                validated(input.validate(), || {
                    assert!(matches!(input.role.as_deref(), None | Some("member")));
                });
            }
        }
        b"cancel" => {
            parsed::<CancelPrompt>(body);
        }
        b"git_credentials" => round_trip::<CredentialRequest>(body),
        b"create_sandbox" => round_trip::<CreateSandbox>(body),
        b"created_sandbox" => round_trip::<CreatedSandbox>(body),
        b"snapshot_taken" => round_trip::<SnapshotTaken>(body),
        b"build_image" => round_trip::<BuildImage>(body),
        b"image_build_started" => round_trip::<ImageBuildStarted>(body),
        b"image_build" => round_trip::<ImageBuild>(body),
        b"provider_health" => round_trip::<ProviderHealth>(body),
        b"head_lookup" => round_trip::<HeadLookup>(body),
        b"head" => round_trip::<Head>(body),
        b"provider_error" => provider_error(body),
        _ => {}
    }
}

fn parsed<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    match parse_json::<T>(body) {
        Ok(value) => Some(value),
        Err(refused) => {
            assert_refusal(&refused, JSON_REFUSALS);
            None
        }
    }
}

fn validated(outcome: Result<(), ApiError>, holds: impl FnOnce()) {
    match outcome {
        Ok(()) => holds(),
        Err(refused) => assert_refusal(&refused, &[ErrorCode::InvalidField]),
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(body: &[u8]) {
    if let Some(value) = parsed::<T>(body) {
        let again = serde_json::to_vec(&value).expect("a body serialises");
        let context = String::from_utf8_lossy(&again);
        match parse_json::<T>(&again) {
            Ok(back) => assert_same(&value, &back, &context),
            Err(refused) => panic!("written out again: {context}\nrefused: {refused:?}"),
        }
    }
}

/// A provider's error answer, as the Worker reads it (src/provider.rs): the `error` object, if any.
fn provider_error(body: &[u8]) {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| serde_json::from_value::<ApiError>(v["error"].clone()).ok());
    if let Some(error) = error {
        let again = serde_json::from_str::<Value>(&error.to_body()).expect("an error body is JSON");
        assert_eq!(
            serde_json::from_value::<ApiError>(again["error"].clone()).ok(),
            Some(error)
        );
    }
}

/// `PromptInput::from_http_body` (`POST /v1/sessions/:id/prompts`) and `from_content` (the
/// prompt given with a new session).
///
/// - an accepted prompt is within the limits, and written out again reads back the same;
/// - a refusal is `invalid_json`, `invalid_field` or `too_large`.
pub fn prompt_body(data: &[u8]) {
    let limits = Limits::default();
    let refusals = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidField,
        ErrorCode::TooLarge,
    ];
    match PromptInput::from_http_body(data, &limits) {
        Ok(prompt) => {
            check_prompt(&prompt, &limits);
            let written = prompt_json(&prompt);
            let again = written.to_string();
            match PromptInput::from_http_body(again.as_bytes(), &limits) {
                Ok(back) => assert_same_json(&written, &prompt_json(&back), &again),
                Err(refused) => panic!("written out again: {again}\nrefused: {refused:?}"),
            }
        }
        Err(refused) => assert_refusal(&refused, &refusals),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        match PromptInput::from_content(text.to_owned(), &limits) {
            Ok(prompt) => {
                check_prompt(&prompt, &limits);
                assert_eq!(prompt.content, text);
            }
            Err(refused) => assert_refusal(&refused, &refusals),
        }
    }
}

/// What an accepted prompt promises the room.
pub fn check_prompt(prompt: &PromptInput, limits: &Limits) {
    assert!(!prompt.content.trim().is_empty(), "empty content accepted");
    assert!(prompt.content.len() <= limits.prompt_bytes);
    if let Some(id) = &prompt.client_request_id {
        assert!((1..=limits.client_request_id_bytes).contains(&id.len()));
    }
    assert!(prompt.attachments.len() <= limits.attachments);
    assert!(prompt.attachments.iter().all(Value::is_object));
    assert!(prompt.selection_ids.len() <= limits.selection_ids);
    assert!(prompt
        .selection_ids
        .iter()
        .all(|id| (1..=64).contains(&id.len())));
}

/// A prompt as a client posts it.
pub fn prompt_json(prompt: &PromptInput) -> Value {
    json!({
        "content": prompt.content,
        "client_request_id": prompt.client_request_id,
        "attachments": prompt.attachments,
        "selection_ids": prompt.selection_ids,
        "source": prompt.source,
    })
}

/// `DomSelection::from_body` (`POST /v1/sessions/:id/selections`, from the extension).
///
/// - an accepted selection is cut to the documented sizes, with finite numbers;
/// - cutting is idempotent: the stored selection posted again is stored the same;
/// - a refusal is `invalid_json`, `invalid_field` or `too_large`.
pub fn selection(data: &[u8]) {
    let limits = Limits::default();
    match DomSelection::from_body(data, &limits) {
        Ok(selection) => {
            check_selection(&selection, &limits);
            let again = serde_json::to_vec(&selection).expect("a selection serialises");
            let context = String::from_utf8_lossy(&again);
            match DomSelection::from_body(&again, &limits) {
                Ok(back) => assert_same(&selection, &back, &context),
                Err(refused) => panic!("posted again: {context}\nrefused: {refused:?}"),
            }
        }
        Err(refused) => assert_refusal(
            &refused,
            &[
                ErrorCode::InvalidJson,
                ErrorCode::InvalidField,
                ErrorCode::TooLarge,
            ],
        ),
    }
}

fn check_selection(selection: &DomSelection, limits: &Limits) {
    let chars = |text: &str| text.chars().count();
    let at_most = |text: &Option<String>, max: usize| text.as_deref().map_or(0, chars) <= max;
    assert!(["http://", "https://", "file://"]
        .iter()
        .any(|scheme| selection.url.starts_with(scheme)));
    assert!(selection.url.len() <= 4096);
    assert!(chars(&selection.title) <= 300);
    assert!(at_most(&selection.note, 2000));
    assert!(selection.viewport.width.is_finite() && selection.viewport.height.is_finite());
    assert!((1..=limits.selection_elements).contains(&selection.elements.len()));
    for element in &selection.elements {
        assert!(
            (1..=64).contains(&element.tag.len()),
            "tag {:?}",
            element.tag
        );
        assert!(element.classes.len() <= 50);
        assert!(element.classes.iter().all(|c| chars(c) <= TEXT_CHARS));
        assert!(at_most(&element.text, TEXT_CHARS));
        assert!(at_most(&element.id, TEXT_CHARS));
        assert!(at_most(&element.react_component, TEXT_CHARS));
        assert!(at_most(&element.selector, 500));
        let r = element.rect;
        assert!([r.x, r.y, r.width, r.height].iter().all(|v| v.is_finite()));
    }
}
