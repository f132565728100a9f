//! The one way the bridge makes an HTTP client: rustls with ring and the webpki roots, the
//! same trust the room's WebSocket has, handed to reqwest explicitly (reqwest is built without a
//! crypto provider of its own), and no proxy from the environment, as for the WebSocket.

use crate::error::{Error, Result};
use std::sync::Arc;

pub fn client_builder() -> Result<reqwest::ClientBuilder> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Invalid(format!("cannot set up TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy())
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_without_a_process_wide_crypto_provider() {
        assert!(super::client_builder().unwrap().build().is_ok());
    }
}
