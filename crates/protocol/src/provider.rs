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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
    pub branch: String,
    /// Where to clone from; the provider's default (GitHub) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu: f64,
    pub memory_mb: u32,
    pub disk_mb: u32,
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

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub block_network: bool,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateSandbox {
    pub session_id: String,
    pub sandbox_id: String,
    pub coordinator_url: String,
    pub sandbox_token: String,
    pub repo: RepoRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    pub resources: Resources,
    pub network: Network,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedSandbox {
    pub sandbox_id: String,
    pub provider_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTaken {
    pub snapshot_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildImage {
    pub repo: RepoRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBuildStarted {
    pub build_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBuild {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderHealth {
    pub ok: bool,
    pub provider: String,
    #[serde(default)]
    pub app: String,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
