//! The sandbox provider API (PROTOCOL.md section 5) and its request signature.
//!
//! Signature header (v2), bound to the route and to one use:
//! `X-Coordinator-Signature: t=<unix ms>,n=<nonce>,v2=<hex HMAC-SHA256(secret, text)>` where
//! `text` is `"v2\n<t>\n<nonce>\n<METHOD>\n<path with query>\n<hex SHA-256(body)>"`.
//! A provider refuses a `t` more than five minutes away and a nonce it has seen in that window
//! ([`NonceCache`]); during a rotation it accepts the previous secret too. v1 is refused.

use crate::crypto::{hex, hmac_sha256, hmac_sha256_verify, sha256, unhex};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub const SIGNATURE_HEADER: &str = "X-Coordinator-Signature";
/// How far a signature's time may be from the provider's clock.
pub const SIGNATURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;
/// A nonce: 16 to 128 letters, digits, `_` or `-`.
pub const MIN_NONCE_CHARS: usize = 16;
pub const MAX_NONCE_CHARS: usize = 128;
/// At most this many nonces are remembered; past it (after forgetting the expired ones) new
/// requests are refused rather than the window shortened, which would let a replay through.
pub const MAX_REMEMBERED_NONCES: usize = 100_000;

/// The text a v2 signature covers.
pub fn signed_text(
    t_ms: u64,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    format!(
        "v2\n{t_ms}\n{nonce}\n{}\n{path_and_query}\n{}",
        method.to_ascii_uppercase(),
        hex(&sha256(body))
    )
}

/// The header value for one request: `method` and `path_and_query` as the provider will see
/// them (the path of the provider's base URL included), `nonce` fresh for each request.
pub fn sign(
    secret: &[u8],
    t_ms: u64,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let text = signed_text(t_ms, nonce, method, path_and_query, body);
    format!(
        "t={t_ms},n={nonce},v2={}",
        hex(&hmac_sha256(secret, text.as_bytes()))
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Stale,
    Mismatch,
    /// The nonce was used before within the window (or too many are remembered to tell).
    Replayed,
}

impl SignatureError {
    /// The sentence of a 401.
    pub fn message(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing X-Coordinator-Signature header",
            SignatureError::Malformed => {
                "malformed X-Coordinator-Signature header (v2 with t, n and v2 is required)"
            }
            SignatureError::Stale => "the request signature is too old or too far in the future",
            SignatureError::Mismatch => "the request signature does not match",
            SignatureError::Replayed => "this request signature was already used",
        }
    }
}

/// A signature's parts, once checked against a secret and the clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub t_ms: u64,
    pub nonce: String,
}

fn is_nonce(nonce: &str) -> bool {
    (MIN_NONCE_CHARS..=MAX_NONCE_CHARS).contains(&nonce.len())
        && nonce
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Checks a v2 signature with any of `secrets` (the current one, and the previous one during a
/// rotation). The nonce is not remembered here: pass the result to [`NonceCache::admit`].
pub fn verify(
    secrets: &[&[u8]],
    header: Option<&str>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_ms: u64,
) -> Result<Verified, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut nonce = None;
    let mut mac = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("n", value)) => nonce = Some(value).filter(|n| is_nonce(n)),
            Some(("v2", value)) => mac = unhex(value).filter(|m| m.len() == 32),
            _ => {}
        }
    }
    let (Some(t), Some(nonce), Some(mac)) = (t, nonce, mac) else {
        return Err(SignatureError::Malformed);
    };
    if t.abs_diff(now_ms) > SIGNATURE_TOLERANCE_MS {
        return Err(SignatureError::Stale);
    }
    let text = signed_text(t, nonce, method, path_and_query, body);
    if secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .any(|secret| hmac_sha256_verify(secret, text.as_bytes(), &mac))
    {
        Ok(Verified {
            t_ms: t,
            nonce: nonce.to_owned(),
        })
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The nonces a provider has accepted, each kept until its signature could no longer pass the
/// clock check. Time is an input, so it is tested without waiting.
#[derive(Debug, Default)]
pub struct NonceCache {
    /// Nonce → the time after which its signature is stale anyway.
    seen: HashMap<String, u64>,
}

impl NonceCache {
    /// Remembers a verified signature's nonce; `Replayed` if it was seen within the window.
    pub fn admit(&mut self, verified: &Verified, now_ms: u64) -> Result<(), SignatureError> {
        let forget_after = verified.t_ms.saturating_add(SIGNATURE_TOLERANCE_MS);
        if self.seen.contains_key(&verified.nonce) {
            return Err(SignatureError::Replayed);
        }
        if self.seen.len() >= MAX_REMEMBERED_NONCES {
            self.seen.retain(|_, until| *until >= now_ms);
            if self.seen.len() >= MAX_REMEMBERED_NONCES {
                return Err(SignatureError::Replayed);
            }
        }
        self.seen.insert(verified.nonce.clone(), forget_after);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
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
/// The characters and length of a branch name: printable ASCII but space, `~`, `^`, `:`,
/// `?`, `*`, `[` and `\`; 1 to 200. With [`BRANCH_FORBIDDEN_PATTERN`] it is
/// [`crate::git::is_branch_name`] as a schema can say it (the shared vectors in
/// `testdata/branch_names.json` keep the two equal).
pub const BRANCH_PATTERN: &str = r"^[!-)+-9;->@-Z\]_-}]{1,200}$";
/// What git refuses in a branch name within [`BRANCH_PATTERN`]'s characters.
pub const BRANCH_FORBIDDEN_PATTERN: &str = r"^[-/]|/$|\.$|\.\.|//|@\{|^@$|(^|/)\.|\.lock(/|$)";
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
    /// a git branch name: 1-200 printable ASCII characters but space, '~', '^', ':', '?', '*', '[' and '\', not starting with '-' or '/', no part starting with '.' or ending with '.lock', without '..', '//' or '@{', not ending with '/' or '.', and not '@'
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

/// `POST /warm-sandboxes`: a sandbox for the warm pool, bound to no session. It gets no
/// session id, no sandbox token, no git credentials and no author: the provider prepares its
/// workspace as far as it can without them (the image's clone), starts the bridge waiting for
/// its assignment (it may start the agent meanwhile), and answers with a [`CreatedSandbox`].
/// `env` is the pool's, not a session's: the agent may already run when the sandbox is claimed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct StartWarmSandbox {
    /// 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit
    #[cfg_attr(test, schemars(regex(pattern = ID_PATTERN)))]
    pub sandbox_id: String,
    pub repo: RepoRef,
    /// 1-128 letters, digits, '_' or '-', starting with a letter or digit
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(regex(pattern = OBJECT_ID_PATTERN)))]
    pub image_id: Option<String>,
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

/// `POST /sandboxes/:id/claim`: a warm sandbox's assignment. Only now does it learn its
/// session, where to dial and its own sandbox token (with which it asks for git credentials);
/// the author's identity comes with each prompt. Answered with a [`CreatedSandbox`]; 404 for
/// a sandbox the provider does not know, 409 for one already claimed or not warm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ClaimSandbox {
    /// 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit
    #[cfg_attr(test, schemars(regex(pattern = ID_PATTERN)))]
    pub session_id: String,
    /// an http(s) URL without credentials, query or fragment
    #[cfg_attr(test, schemars(length(max = 2048), regex(pattern = HTTP_URL_PATTERN)))]
    pub coordinator_url: String,
    /// 1-4096 printable ASCII characters without spaces
    #[cfg_attr(test, schemars(regex(pattern = TOKEN_PATTERN)))]
    pub sandbox_token: String,
}

/// What a warm sandbox's bridge reads from its assignment file (the local provider) when it
/// is claimed: the [`ClaimSandbox`] body, written by the provider into the bridge's own 0700
/// folder and deleted by the bridge once read.
pub type Assignment = ClaimSandbox;

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

/// A git commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub const COMMIT_PATTERN: &str = r"^([0-9a-f]{40}|[0-9a-f]{64})$";

/// Whether `text` is a full commit id as [`COMMIT_PATTERN`] says.
pub fn is_commit(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `POST /images`: an image of `repo.branch` at `commit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct BuildImage {
    pub repo: RepoRef,
    /// the commit to build, 40 or 64 lowercase hex digits; the branch's head when the build starts if absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(regex(pattern = COMMIT_PATTERN)))]
    pub commit: Option<String>,
}

/// `POST /heads`: where `repo.branch` stands on the provider's git host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct HeadLookup {
    pub repo: RepoRef,
}

/// The answer to `POST /heads`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Head {
    pub branch: String,
    pub commit: String,
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
    /// Why a `failed` build failed, in words without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    /// What sandboxes run besides the repository (the bridge, the base image); when it
    /// changes, the coordinator has every repository's image built again.
    #[serde(default)]
    pub runtime_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "nonce-0123456789abcdef";
    const S3CRET: &[u8] = b"s3cret";

    /// The same vector as `modal/tests/test_signature.py`: HMAC-SHA256("s3cret", text) where
    /// text is `v2\n1000000\nnonce-0123456789abcdef\nPOST\n/sandboxes?x=1\n<sha256 hex of {"a":1}>`.
    #[test]
    fn signature_matches_the_known_vector() {
        let text = signed_text(1_000_000, NONCE, "post", "/sandboxes?x=1", b"{\"a\":1}");
        assert_eq!(
            text,
            "v2\n1000000\nnonce-0123456789abcdef\nPOST\n/sandboxes?x=1\n015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
        );
        let header = sign(
            b"s3cret",
            1_000_000,
            NONCE,
            "POST",
            "/sandboxes?x=1",
            b"{\"a\":1}",
        );
        assert_eq!(header, format!("t=1000000,n={NONCE},v2={SIGNATURE_VECTOR}"));
        assert!(verify(
            &[S3CRET],
            Some(&header),
            "POST",
            "/sandboxes?x=1",
            b"{\"a\":1}",
            1_000_000
        )
        .is_ok());
    }

    /// `printf 'v2\n1000000\nnonce-0123456789abcdef\nPOST\n/sandboxes?x=1\n015a…f862' | openssl dgst -sha256 -hmac s3cret`
    const SIGNATURE_VECTOR: &str =
        "7b1a7a12412fc8de7c6915805da2a0f7e3fb7f4a625ec6baa2c0a1c65fb84c4e";

    fn check(
        header: &str,
        method: &str,
        path: &str,
        body: &[u8],
        now: u64,
    ) -> Result<Verified, SignatureError> {
        verify(&[S3CRET], Some(header), method, path, body, now)
    }

    #[test]
    fn signature_round_trip_and_refusals() {
        let body = b"{\"a\":1}";
        let header = sign(b"s3cret", 1_000_000, NONCE, "POST", "/sandboxes", body);
        assert!(header.starts_with("t=1000000,n=nonce-0123456789abcdef,v2="));
        assert_eq!(
            check(&header, "POST", "/sandboxes", body, 1_000_000),
            Ok(Verified {
                t_ms: 1_000_000,
                nonce: NONCE.into()
            })
        );
        // Every part of the route and the body is covered.
        for (method, path, body) in [
            ("POST", "/sandboxes", &b"{\"a\":2}"[..]),
            ("DELETE", "/sandboxes", &body[..]),
            ("POST", "/sandboxes/sbx_1/snapshot", &body[..]),
            ("POST", "/sandboxes?x=1", &body[..]),
        ] {
            assert_eq!(
                check(&header, method, path, body, 1_000_000),
                Err(SignatureError::Mismatch),
                "{method} {path}"
            );
        }
        assert_eq!(
            verify(
                &[&b"other"[..]],
                Some(&header),
                "POST",
                "/sandboxes",
                body,
                1_000_000
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                &header,
                "POST",
                "/sandboxes",
                body,
                1_000_000 + SIGNATURE_TOLERANCE_MS + 1
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&[S3CRET], None, "GET", "/", b"", 0),
            Err(SignatureError::Missing)
        );
        let v1 = "t=1000000,v1=bf0ed7e1bad53ca0126991e26a25594eec1a05788bfffab7498f204a43e09fce";
        for malformed in [
            "t=1",
            "garbage",
            v1,
            "t=1000000,n=short,v2=00",
            &header.replace(",n=", ",x="),
            &format!("{header}00"),
        ] {
            assert_eq!(
                check(malformed, "POST", "/sandboxes", body, 1_000_000),
                Err(SignatureError::Malformed),
                "{malformed}"
            );
        }
        // A nonce is part of the signed text: another one does not match.
        let other_nonce = header.replace(NONCE, "nonce-fedcba9876543210");
        assert_eq!(
            check(&other_nonce, "POST", "/sandboxes", body, 1_000_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_previous_secret_is_accepted_during_a_rotation() {
        let old = sign(b"old-secret", 5_000, NONCE, "GET", "/images/b1", b"");
        let new = sign(b"new-secret", 5_000, NONCE, "GET", "/images/b1", b"");
        let both: [&[u8]; 2] = [b"new-secret", b"old-secret"];
        assert!(verify(&both, Some(&old), "GET", "/images/b1", b"", 5_000).is_ok());
        assert!(verify(&both, Some(&new), "GET", "/images/b1", b"", 5_000).is_ok());
        // Without a previous secret (or with an empty one) the old signature is refused.
        let only_new: [&[u8]; 2] = [b"new-secret", b""];
        assert_eq!(
            verify(&only_new, Some(&old), "GET", "/images/b1", b"", 5_000),
            Err(SignatureError::Mismatch)
        );
        let empty: [&[u8]; 1] = [b""];
        let unkeyed = sign(b"", 5_000, NONCE, "GET", "/images/b1", b"");
        assert_eq!(
            verify(&empty, Some(&unkeyed), "GET", "/images/b1", b"", 5_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_nonce_is_refused_a_second_time_within_the_window() {
        let mut cache = NonceCache::default();
        let first = Verified {
            t_ms: 1_000_000,
            nonce: NONCE.into(),
        };
        assert_eq!(cache.admit(&first, 1_000_000), Ok(()));
        assert_eq!(
            cache.admit(&first, 1_000_001),
            Err(SignatureError::Replayed)
        );
        // Still refused up to the end of the window, whatever its t said.
        assert_eq!(
            cache.admit(&first, 1_000_000 + SIGNATURE_TOLERANCE_MS),
            Err(SignatureError::Replayed)
        );
        let second = Verified {
            t_ms: 1_000_000,
            nonce: "nonce-second-0000000".into(),
        };
        assert_eq!(cache.admit(&second, 1_000_000), Ok(()));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_full_nonce_cache_forgets_the_expired_and_refuses_rather_than_forget_live_ones() {
        let mut cache = NonceCache::default();
        for i in 0..MAX_REMEMBERED_NONCES {
            let v = Verified {
                t_ms: 0,
                nonce: format!("nonce-{i:016}"),
            };
            assert_eq!(cache.admit(&v, 0), Ok(()));
        }
        let next = Verified {
            t_ms: 0,
            nonce: "nonce-one-too-many".into(),
        };
        assert_eq!(cache.admit(&next, 0), Err(SignatureError::Replayed));
        // Once the window has passed, the old ones go and new ones are let in.
        let later = Verified {
            t_ms: 2 * SIGNATURE_TOLERANCE_MS,
            nonce: "nonce-one-too-many".into(),
        };
        assert_eq!(cache.admit(&later, 2 * SIGNATURE_TOLERANCE_MS), Ok(()));
        assert_eq!(cache.len(), 1);
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

    #[test]
    fn commits() {
        assert!(is_commit(&"a".repeat(40)));
        assert!(is_commit(&"0123456789abcdef".repeat(4)));
        for bad in ["", "abc", &"A".repeat(40), &"g".repeat(40), &"a".repeat(41)] {
            assert!(!is_commit(bad), "{bad}");
        }
        let build: BuildImage =
            serde_json::from_str(r#"{"repo":{"owner":"acme","name":"web","branch":"main"}}"#)
                .unwrap();
        assert_eq!(build.commit, None);
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
        generator.subschema_for::<StartWarmSandbox>();
        generator.subschema_for::<ClaimSandbox>();
        generator.subschema_for::<SnapshotTaken>();
        generator.subschema_for::<BuildImage>();
        generator.subschema_for::<ImageBuildStarted>();
        generator.subschema_for::<ImageBuild>();
        generator.subschema_for::<HeadLookup>();
        generator.subschema_for::<Head>();
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
