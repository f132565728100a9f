//! **API Boundary**: the signed client for the sandbox provider API (PROTOCOL.md section 5),
//! spoken to the Modal app in production and to `bridge provider` in development.
//! Every request carries `X-Coordinator-Signature` (v2): its time, a fresh nonce, the method,
//! the path the provider sees (with the base URL's own path, and any query) and the SHA-256 of
//! its exact body bytes.

use crate::config::ProviderConfig;
use crate::time::now_ms;
use futures_util::future::{select, Either};
use protocol::provider::{
    sign, BuildImage, ClaimSandbox, CreateSandbox, CreatedSandbox, Head, HeadLookup, ImageBuild,
    ImageBuildStarted, ProviderHealth, SnapshotTaken, StartWarmSandbox, SIGNATURE_HEADER,
};
use serde::de::DeserializeOwned;
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

/// Why a provider call failed, in words fit for a `session_error` (no secret, no token).
#[derive(Debug)]
pub struct ProviderError(pub String);

pub struct ProviderClient<'a> {
    config: &'a ProviderConfig,
    secret: &'a str,
}

impl<'a> ProviderClient<'a> {
    /// A client, or why this configuration cannot reach a provider.
    pub fn new(config: &'a ProviderConfig, env: &str) -> Result<Self, ProviderError> {
        if let Some(reason) = config.unusable(env) {
            return Err(ProviderError(reason.into()));
        }
        let secret = config.secret.as_deref().unwrap_or_default();
        Ok(ProviderClient { config, secret })
    }

    pub async fn create(&self, request: &CreateSandbox) -> Result<CreatedSandbox, ProviderError> {
        let body = serde_json::to_vec(request).map_err(|e| ProviderError(e.to_string()))?;
        self.call(Method::Post, "/sandboxes", body, 30_000).await
    }

    /// Starts a sandbox for the warm pool, bound to no session.
    pub async fn start_warm(
        &self,
        request: &StartWarmSandbox,
    ) -> Result<CreatedSandbox, ProviderError> {
        let body = serde_json::to_vec(request).map_err(|e| ProviderError(e.to_string()))?;
        self.call(Method::Post, "/warm-sandboxes", body, 30_000)
            .await
    }

    /// Hands a warm sandbox its session, its coordinator and its own token.
    pub async fn claim(
        &self,
        sandbox_id: &str,
        request: &ClaimSandbox,
    ) -> Result<CreatedSandbox, ProviderError> {
        let body = serde_json::to_vec(request).map_err(|e| ProviderError(e.to_string()))?;
        let path = format!("/sandboxes/{sandbox_id}/claim");
        self.call(Method::Post, &path, body, 15_000).await
    }

    pub async fn snapshot(&self, sandbox_id: &str) -> Result<SnapshotTaken, ProviderError> {
        let path = format!("/sandboxes/{sandbox_id}/snapshot");
        self.call(Method::Post, &path, b"{}".to_vec(), 120_000)
            .await
    }

    /// Deleting a sandbox the provider no longer knows is done already.
    pub async fn delete(&self, sandbox_id: &str) -> Result<(), ProviderError> {
        let path = format!("/sandboxes/{sandbox_id}");
        match self.send(Method::Delete, &path, Vec::new(), 15_000).await? {
            (404, _) => Ok(()),
            (status, bytes) => self
                .answer::<serde_json::Value>(&format!("DELETE {path}"), status, &bytes)
                .map(drop),
        }
    }

    pub async fn build_image(
        &self,
        request: &BuildImage,
    ) -> Result<ImageBuildStarted, ProviderError> {
        let body = serde_json::to_vec(request).map_err(|e| ProviderError(e.to_string()))?;
        self.call(Method::Post, "/images", body, 30_000).await
    }

    /// A build's state; `Ok(None)` when the provider does not know the build (404).
    pub async fn image_build(&self, build_id: &str) -> Result<Option<ImageBuild>, ProviderError> {
        let path = format!("/images/{build_id}");
        match self.send(Method::Get, &path, Vec::new(), 10_000).await? {
            (404, _) => Ok(None),
            (status, bytes) => self
                .answer(&format!("GET {path}"), status, &bytes)
                .map(Some),
        }
    }

    /// Where a branch stands on the provider's git host.
    pub async fn head(&self, request: &HeadLookup) -> Result<Head, ProviderError> {
        let body = serde_json::to_vec(request).map_err(|e| ProviderError(e.to_string()))?;
        self.call(Method::Post, "/heads", body, 30_000).await
    }

    pub async fn health(&self) -> Result<ProviderHealth, ProviderError> {
        self.call(Method::Get, "/health", Vec::new(), 5_000).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<T, ProviderError> {
        let what = format!("{method} {path}");
        let (status, bytes) = self.send(method, path, body, timeout_ms).await?;
        self.answer(&what, status, &bytes)
    }

    /// Sends a signed request; the status and body of whatever came back, within the timeout.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<(u16, Vec<u8>), ProviderError> {
        let what = format!("{method} {path}");
        let request = self
            .request(method, path, body)
            .map_err(|e| ProviderError(format!("{what}: {e}")))?;
        let fetch = Box::pin(async move {
            let mut response = Fetch::Request(request).send().await?;
            let status = response.status_code();
            let bytes = response.bytes().await?;
            Ok::<_, worker::Error>((status, bytes))
        });
        let timeout = Box::pin(Delay::from(Duration::from_millis(timeout_ms)));
        match select(fetch, timeout).await {
            Either::Left((Ok(answer), _)) => Ok(answer),
            Either::Left((Err(error), _)) => Err(ProviderError(format!(
                "the sandbox provider could not be reached ({what}): {error}"
            ))),
            Either::Right(_) => Err(ProviderError(format!(
                "the sandbox provider did not answer {what} within {} s",
                timeout_ms / 1000
            ))),
        }
    }

    /// A 2xx answer parsed as the protocol says, or why not.
    fn answer<T: DeserializeOwned>(
        &self,
        what: &str,
        status: u16,
        bytes: &[u8],
    ) -> Result<T, ProviderError> {
        if !(200..300).contains(&status) {
            return Err(ProviderError(format!(
                "the sandbox provider answered {what} with {status}: {}",
                error_message(bytes)
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            ProviderError(format!(
                "the sandbox provider's answer to {what} is not what the protocol says: {e}"
            ))
        })
    }

    fn request(&self, method: Method, path: &str, body: Vec<u8>) -> worker::Result<Request> {
        let headers = Headers::new();
        // A fresh nonce per request: a provider accepts each signature once.
        let nonce = crate::ids::new_id("n")
            .map_err(|e| worker::Error::RustError(format!("no nonce: {e:?}")))?;
        // The provider sees the base URL's own path (`https://host/prefix`) before the route.
        let base = crate::url::RequestUrl::parse(self.config.url.clone());
        let signed_path = format!("{}{path}", base.path().trim_end_matches('/'));
        headers.set(
            SIGNATURE_HEADER,
            &sign(
                self.secret.as_bytes(),
                now_ms(),
                &nonce,
                method.as_ref(),
                &signed_path,
                &body,
            ),
        )?;
        headers.set("content-type", "application/json")?;
        if let (Some(key), Some(secret)) = (&self.config.modal_key, &self.config.modal_secret) {
            headers.set("Modal-Key", key)?;
            headers.set("Modal-Secret", secret)?;
        }
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if !body.is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        Request::new_with_init(&format!("{}{path}", self.config.url), &init)
    }
}

/// The `error.message` of a protocol error body, or the start of whatever came back.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<protocol::ApiError> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::from_value(v["error"].clone()).ok());
    let text = match parsed {
        Some(error) => error.message,
        None => String::from_utf8_lossy(body).into_owned(),
    };
    text.chars().take(300).collect()
}
