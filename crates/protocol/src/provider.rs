//! The sandbox provider API (PROTOCOL.md section 5) and its request signature.
//!
//! Signature header: `X-Coordinator-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.

use crate::crypto::{hex, hmac_sha256, hmac_sha256_verify, unhex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SIGNATURE_HEADER: &str = "X-Coordinator-Signature";
/// How far a signature's time may be from the provider's clock.
pub const SIGNATURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;

pub fn sign(secret: &[u8], t_ms: u64, body: &[u8]) -> String {
    let mut signed = format!("{t_ms}.").into_bytes();
    signed.extend_from_slice(body);
    format!("t={t_ms},v1={}", hex(&hmac_sha256(secret, &signed)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now_ms: u64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = unhex(value),
            _ => {}
        }
    }
    let (t, v1) = (
        t.ok_or(SignatureError::Malformed)?,
        v1.ok_or(SignatureError::Malformed)?,
    );
    if t.abs_diff(now_ms) > SIGNATURE_TOLERANCE_MS {
        return Err(SignatureError::Stale);
    }
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    if hmac_sha256_verify(secret, &signed, &v1) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

// The request types below are also the contract's JSON Schema, `modal/provider.schema.json`,
// which the Modal app validates every body against. `schemars` derives it in tests only (the
// Worker and the bridge never carry it); the attributes state the constraints a schema can
// carry. serde does not check them: the coordinator builds these bodies from values it made.
// Field doc comments become the schema's `description`s, which the Modal app quotes in its 422
// messages, so they say what a valid value is.

/// An opaque id: a letter or digit, then letters, digits, `_`, `-` and `.`; at most 128 in all.
pub const ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$";
/// A provider image or snapshot id: like [`ID_PATTERN`] without `.`.
pub const OBJECT_ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$";
/// A GitHub owner or repository name (`.` and `..` are refused apart).
pub const REPO_PART_PATTERN: &str = r"^[A-Za-z0-9_.-]{1,100}$";
/// The characters a branch name may use.
pub const BRANCH_PATTERN: &str = r"^[A-Za-z0-9_./+-]{1,255}$";
/// What git refuses in a branch name within [`BRANCH_PATTERN`]'s characters.
pub const BRANCH_FORBIDDEN_PATTERN: &str = r"^[-/]|\.\.|//|(\.lock|/|\.)$";
/// An http(s) URL without credentials, query or fragment.
pub const HTTP_URL_PATTERN: &str = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$";
/// An https URL without credentials, query or fragment.
pub const HTTPS_URL_PATTERN: &str = r"^https://[^/?#@\s]+(/[^?#\s]*)?$";
/// Printable ASCII without spaces, 1 to 4096 characters.
pub const TOKEN_PATTERN: &str = r"^[!-~]{1,4096}$";
/// An environment variable name.
pub const ENV_NAME_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$";
/// An environment value: no NUL.
pub const ENV_VALUE_PATTERN: &str = r"^[^\x00]*$";
/// At most this many `env` entries.
pub const MAX_ENV_ENTRIES: usize = 100;
/// At most this many characters in one `env` value.
pub const MAX_ENV_VALUE_CHARS: usize = 32 * 1024;
/// At most this many `network.allowed_hosts`.
pub const MAX_ALLOWED_HOSTS: usize = 100;

/// A repository and branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct RepoRef {
    /// 1-100 letters, digits, '-', '_' or '.', and not '.' or '..'
    #[cfg_attr(test, schemars(regex(pattern = REPO_PART_PATTERN), extend("not" = {"enum": [".", ".."]})))]
    pub owner: String,
    /// 1-100 letters, digits, '-', '_' or '.', and not '.' or '..'
    #[cfg_attr(test, schemars(regex(pattern = REPO_PART_PATTERN), extend("not" = {"enum": [".", ".."]})))]
    pub name: String,
    /// a git branch name: 1-255 letters, digits, '_', '.', '/', '+' or '-', not starting with '-' or '/', without '..' or '//', not ending with '.lock', '/' or '.'
    #[cfg_attr(test, schemars(regex(pattern = BRANCH_PATTERN), extend("not" = {"pattern": BRANCH_FORBIDDEN_PATTERN})))]
    pub branch: String,
    /// an https URL without credentials, query or fragment; GitHub's URL of the repository when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(length(max = 2048), regex(pattern = HTTPS_URL_PATTERN)))]
    pub clone_url: Option<String>,
}

/// What a sandbox may use; the provider may set lower maxima.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Resources {
    #[cfg_attr(test, schemars(range(min = 0.125)))]
    pub cpu: f64,
    #[cfg_attr(test, schemars(range(min = 128, max = u32::MAX)))]
    pub memory_mb: u32,
    #[cfg_attr(test, schemars(range(max = 10 * 1024 * 1024)))]
    pub disk_mb: u32,
    #[cfg_attr(test, schemars(range(min = 60, max = 24 * 3600)))]
    pub timeout_s: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: 2.0,
            memory_mb: 4096,
            disk_mb: 10240,
            timeout_s: 7200,
        }
    }
}

/// Where a sandbox may connect to besides the coordinator and the git host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Network {
    pub block_network: bool,
    /// host names, `*.domain`, IP addresses, CIDR ranges, or `*` for anywhere
    #[serde(default)]
    #[cfg_attr(test, schemars(length(max = MAX_ALLOWED_HOSTS), inner(length(min = 1, max = 253))))]
    pub allowed_hosts: Vec<String>,
}

/// `POST /sandboxes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct CreateSandbox {
    /// 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit
    #[cfg_attr(test, schemars(regex(pattern = ID_PATTERN)))]
    pub session_id: String,
    /// 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit
    #[cfg_attr(test, schemars(regex(pattern = ID_PATTERN)))]
    pub sandbox_id: String,
    /// an http(s) URL without credentials, query or fragment
    #[cfg_attr(test, schemars(length(max = 2048), regex(pattern = HTTP_URL_PATTERN)))]
    pub coordinator_url: String,
    /// 1-4096 printable ASCII characters without spaces
    #[cfg_attr(test, schemars(regex(pattern = TOKEN_PATTERN)))]
    pub sandbox_token: String,
    pub repo: RepoRef,
    /// 1-128 letters, digits, '_' or '-', starting with a letter or digit
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(regex(pattern = OBJECT_ID_PATTERN)))]
    pub image_id: Option<String>,
    /// 1-128 letters, digits, '_' or '-', starting with a letter or digit
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(regex(pattern = OBJECT_ID_PATTERN)))]
    pub snapshot_id: Option<String>,
    pub resources: Resources,
    pub network: Network,
    /// environment variables for the sandbox; the provider passes only those it allows
    #[serde(default)]
    #[cfg_attr(test, schemars(extend(
        "maxProperties" = MAX_ENV_ENTRIES,
        "propertyNames" = {
            "pattern": ENV_NAME_PATTERN,
            "description": "at most 128 letters, digits or '_', not starting with a digit"
        },
        "additionalProperties" = {
            "type": "string",
            "maxLength": MAX_ENV_VALUE_CHARS,
            "pattern": ENV_VALUE_PATTERN,
            "description": "a string without NUL"
        }
    )))]
    pub env: BTreeMap<String, String>,
}

/// The answer to `POST /sandboxes` (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct CreatedSandbox {
    pub sandbox_id: String,
    pub provider_id: String,
}

/// The answer to `POST /sandboxes/:id/snapshot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SnapshotTaken {
    pub snapshot_id: String,
}

/// `POST /images`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct BuildImage {
    pub repo: RepoRef,
}

/// The answer to `POST /images` (202).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ImageBuildStarted {
    pub build_id: String,
}

/// The answer to `GET /images/:build_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ImageBuild {
    /// `building`, `ready` or `failed`
    #[cfg_attr(test, schemars(extend("enum" = ["building", "ready", "failed"])))]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_at: Option<String>,
}

/// The answer to `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ProviderHealth {
    pub ok: bool,
    pub provider: String,
    #[serde(default)]
    pub app: String,
    /// Why it is not ok (configuration, or Modal refusing the app's credentials).
    #[serde(default)]
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same vector as `modal/tests/test_signature.py` (and `openssl dgst -sha256 -hmac s3cret`).
    #[test]
    fn signature_matches_the_known_vector() {
        assert_eq!(
            sign(b"s3cret", 1_000_000, b"{\"a\":1}"),
            "t=1000000,v1=bf0ed7e1bad53ca0126991e26a25594eec1a05788bfffab7498f204a43e09fce"
        );
        let header =
            "t=1000000,v1=bf0ed7e1bad53ca0126991e26a25594eec1a05788bfffab7498f204a43e09fce";
        assert_eq!(
            verify(b"s3cret", Some(header), b"{\"a\":1}", 1_000_000),
            Ok(())
        );
    }

    #[test]
    fn signature_round_trip_and_refusals() {
        let header = sign(b"s3cret", 1_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1000000,v1="));
        assert_eq!(
            verify(b"s3cret", Some(&header), b"{\"a\":1}", 1_000_000),
            Ok(())
        );
        assert_eq!(
            verify(b"s3cret", Some(&header), b"{\"a\":2}", 1_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&header), b"{\"a\":1}", 1_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"s3cret",
                Some(&header),
                b"{\"a\":1}",
                1_000_000 + SIGNATURE_TOLERANCE_MS + 1
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(b"s3cret", None, b"", 0),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(b"s3cret", Some("t=1"), b"", 1),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s3cret", Some("garbage"), b"", 1),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn create_sandbox_shape() {
        let body = r#"{"session_id":"ses_1","sandbox_id":"sbx_1","coordinator_url":"http://127.0.0.1:8787",
            "sandbox_token":"t","repo":{"owner":"acme","name":"web","branch":"main"},
            "resources":{"cpu":2,"memory_mb":4096,"disk_mb":10240,"timeout_s":3600},
            "network":{"block_network":false,"allowed_hosts":[]},"env":{}}"#;
        let parsed: CreateSandbox = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.repo.owner, "acme");
        assert_eq!(parsed.snapshot_id, None);
    }

    const SCHEMA_PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../modal/provider.schema.json"
    );
    const REGENERATE: &str = "UPDATE_PROVIDER_SCHEMA=1 cargo test -p protocol provider_schema";

    /// The provider contract's bodies as one JSON Schema document: every type under `$defs`.
    fn provider_schema() -> String {
        let mut generator = schemars::generate::SchemaSettings::draft2020_12()
            .for_deserialize()
            .into_generator();
        generator.subschema_for::<CreateSandbox>();
        generator.subschema_for::<CreatedSandbox>();
        generator.subschema_for::<SnapshotTaken>();
        generator.subschema_for::<BuildImage>();
        generator.subschema_for::<ImageBuildStarted>();
        generator.subschema_for::<ImageBuild>();
        generator.subschema_for::<ProviderHealth>();
        let document = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Provider API bodies (PROTOCOL.md section 5)",
            "$comment": format!("Generated from crates/protocol/src/provider.rs; do not edit. Regenerate: {REGENERATE}"),
            "$defs": generator.take_definitions(true),
        });
        let mut text = serde_json::to_string_pretty(&document).expect("a JSON value serializes");
        text.push('\n');
        text
    }

    #[test]
    fn provider_schema_file_is_current() {
        let generated = provider_schema();
        if std::env::var_os("UPDATE_PROVIDER_SCHEMA").is_some() {
            std::fs::write(SCHEMA_PATH, &generated)
                .expect("modal/provider.schema.json is writable");
            return;
        }
        let checked_in = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
        assert!(
            checked_in == generated,
            "modal/provider.schema.json differs from the types in crates/protocol/src/provider.rs; regenerate it with: {REGENERATE}"
        );
    }

    #[test]
    fn the_schema_carries_the_constants_and_every_resource_is_required() {
        let schema: serde_json::Value = serde_json::from_str(&provider_schema()).unwrap();
        let create = &schema["$defs"]["CreateSandbox"]["properties"];
        assert_eq!(create["sandbox_id"]["pattern"], ID_PATTERN);
        assert_eq!(create["env"]["maxProperties"], MAX_ENV_ENTRIES);
        assert_eq!(create["env"]["propertyNames"]["pattern"], ENV_NAME_PATTERN);
        let required = schema["$defs"]["Resources"]["required"].as_array().unwrap();
        assert_eq!(
            required.len(),
            4,
            "every resource is required: {required:?}"
        );
    }
}
