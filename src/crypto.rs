//! Cryptography through the platform's WebCrypto (`crypto.subtle`): AES-256-GCM for the GitHub
//! tokens kept in D1 and RS256 signatures for the App's JWT, reached through a few small
//! `wasm_bindgen` externs rather than a Rust RSA or AES crate. The pure part, tested natively:
//! a PEM private key (PKCS#1 as GitHub hands it out, or PKCS#8) turned into the PKCS#8 DER
//! that WebCrypto imports.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;

/// Base64 in either alphabet, with or without padding; whitespace is ignored.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let unpadded = compact.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .ok()
}

/// The PKCS#8 DER of a PEM RSA private key. GitHub hands out PKCS#1 (`BEGIN RSA PRIVATE
/// KEY`), which is wrapped here; PKCS#8 (`BEGIN PRIVATE KEY`) is taken as it is. Literal `\n`
/// escapes (a PEM pasted into one line of a settings form) count as line breaks.
pub fn pkcs8_from_pem(pem: &str) -> Result<Vec<u8>, &'static str> {
    let pem = pem.replace("\\n", "\n");
    let (label, body) = pem_body(&pem).ok_or("is not a PEM block (-----BEGIN …-----)")?;
    let der = decode_base64(body).ok_or("is not valid base64 inside its PEM block")?;
    if der.first() != Some(&0x30) {
        return Err("does not hold a DER key");
    }
    match label {
        "RSA PRIVATE KEY" => Ok(wrap_pkcs1(&der)),
        "PRIVATE KEY" => Ok(der),
        _ => Err("must be BEGIN RSA PRIVATE KEY (PKCS#1) or BEGIN PRIVATE KEY (PKCS#8)"),
    }
}

/// The label and the base64 between `-----BEGIN <label>-----` and `-----END <label>-----`.
fn pem_body(pem: &str) -> Option<(&str, &str)> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let label_end = start + pem[start..].find("-----")?;
    let label = &pem[start..label_end];
    let body_start = label_end + "-----".len();
    let end = body_start + pem[body_start..].find(&format!("-----END {label}-----"))?;
    Some((label, &pem[body_start..end]))
}

/// PrivateKeyInfo { version 0, AlgorithmIdentifier { rsaEncryption, NULL }, OCTET STRING
/// pkcs1 } in DER (RFC 5208).
fn wrap_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    const VERSION_AND_ALGORITHM: [u8; 18] = [
        0x02, 0x01, 0x00, // INTEGER 0
        0x30, 0x0d, // SEQUENCE, 13 bytes
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
        0x01, // 1.2.840.113549.1.1.1
        0x05, 0x00, // NULL
    ];
    let mut octets = vec![0x04];
    octets.extend(der_length(pkcs1.len()));
    octets.extend_from_slice(pkcs1);
    let inner_len = VERSION_AND_ALGORITHM.len() + octets.len();
    let mut out = vec![0x30];
    out.extend(der_length(inner_len));
    out.extend_from_slice(&VERSION_AND_ALGORITHM);
    out.extend(octets);
    out
}

/// A DER length: short form below 128, else the long form with its bytes (big-endian).
fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

#[cfg(target_arch = "wasm32")]
pub use subtle::{aes_gcm_decrypt, aes_gcm_encrypt, rs256_sign};

#[cfg(target_arch = "wasm32")]
mod subtle {
    use crate::error::{Error, Result};
    use js_sys::{Array, ArrayBuffer, Object, Promise, Reflect, Uint8Array};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::JsFuture;

    #[wasm_bindgen]
    extern "C" {
        /// `crypto.subtle`, the platform's WebCrypto.
        type Subtle;
        #[wasm_bindgen(method, catch, js_name = importKey)]
        fn import_key(
            this: &Subtle,
            format: &str,
            key_data: &Uint8Array,
            algorithm: &Object,
            extractable: bool,
            usages: &Array,
        ) -> std::result::Result<Promise, JsValue>;
        #[wasm_bindgen(method, catch)]
        fn sign(
            this: &Subtle,
            algorithm: &Object,
            key: &JsValue,
            data: &Uint8Array,
        ) -> std::result::Result<Promise, JsValue>;
        #[wasm_bindgen(method, catch)]
        fn encrypt(
            this: &Subtle,
            algorithm: &Object,
            key: &JsValue,
            data: &Uint8Array,
        ) -> std::result::Result<Promise, JsValue>;
        #[wasm_bindgen(method, catch)]
        fn decrypt(
            this: &Subtle,
            algorithm: &Object,
            key: &JsValue,
            data: &Uint8Array,
        ) -> std::result::Result<Promise, JsValue>;
    }

    /// WebCrypto's errors name the operation, never the key or the data.
    fn failed(what: &str) -> impl Fn(JsValue) -> Error + '_ {
        move |error| {
            let name = Reflect::get(&error, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
                .unwrap_or_default();
            Error::Runtime(format!("webcrypto {what} failed: {name}"))
        }
    }

    fn subtle() -> Result<Subtle> {
        let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).map_err(failed("lookup"))?;
        let subtle = Reflect::get(&crypto, &"subtle".into()).map_err(failed("lookup"))?;
        Ok(subtle.unchecked_into())
    }

    fn object(pairs: &[(&str, &JsValue)]) -> Result<Object> {
        let object = Object::new();
        for (name, value) in pairs {
            Reflect::set(&object, &(*name).into(), value).map_err(failed("setup"))?;
        }
        Ok(object)
    }

    async fn wait(promise: std::result::Result<Promise, JsValue>, what: &str) -> Result<JsValue> {
        JsFuture::from(promise.map_err(failed(what))?)
            .await
            .map_err(failed(what))
    }

    async fn import(
        subtle: &Subtle,
        format: &str,
        key: &[u8],
        algorithm: &Object,
        usage: &str,
    ) -> Result<JsValue> {
        let usages = Array::of1(&usage.into());
        let promise = subtle.import_key(format, &key.into(), algorithm, false, &usages);
        wait(promise, "importKey").await
    }

    fn bytes(buffer: JsValue) -> Vec<u8> {
        Uint8Array::new(&buffer.unchecked_into::<ArrayBuffer>()).to_vec()
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWT `RS256`) under a PKCS#8 RSA key.
    pub async fn rs256_sign(pkcs8: &[u8], data: &[u8]) -> Result<Vec<u8>> {
        let subtle = subtle()?;
        let name: JsValue = "RSASSA-PKCS1-v1_5".into();
        let algorithm = object(&[("name", &name), ("hash", &"SHA-256".into())])?;
        let key = import(&subtle, "pkcs8", pkcs8, &algorithm, "sign").await?;
        let signed = wait(subtle.sign(&algorithm, &key, &data.into()), "sign").await?;
        Ok(bytes(signed))
    }

    async fn aes_gcm(
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        data: &[u8],
        encrypting: bool,
    ) -> Result<Vec<u8>> {
        let subtle = subtle()?;
        let name: JsValue = "AES-GCM".into();
        let usage = if encrypting { "encrypt" } else { "decrypt" };
        let key = import(&subtle, "raw", key, &object(&[("name", &name)])?, usage).await?;
        let iv: JsValue = Uint8Array::from(&nonce[..]).into();
        let aad: JsValue = Uint8Array::from(aad).into();
        let algorithm = object(&[("name", &name), ("iv", &iv), ("additionalData", &aad)])?;
        let promise = if encrypting {
            subtle.encrypt(&algorithm, &key, &data.into())
        } else {
            subtle.decrypt(&algorithm, &key, &data.into())
        };
        Ok(bytes(wait(promise, usage).await?))
    }

    /// AES-256-GCM: the ciphertext with its 16-byte tag; `aad` is bound to it.
    pub async fn aes_gcm_encrypt(
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        aes_gcm(key, nonce, aad, plain, true).await
    }

    /// The plaintext, or an error when the key, the nonce, the `aad` or the data do not match.
    pub async fn aes_gcm_decrypt(
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        aes_gcm(key, nonce, aad, sealed, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A throwaway 512-bit test key made for this test: `openssl genrsa -traditional 512`
    // (PKCS#1), then `openssl pkcs8 -topk8 -nocrypt` (PKCS#8) of the same key. It signs nothing.
    const PKCS1: &str = include_str!("../tests/fixtures/test-key-pkcs1.txt");
    const PKCS8: &str = include_str!("../tests/fixtures/test-key-pkcs8.txt");

    fn pem(label: &str, body: &str) -> String {
        format!("-----BEGIN {label}-----\n{body}-----END {label}-----\n")
    }

    #[test]
    fn pkcs1_is_wrapped_as_openssl_does() {
        let expected = decode_base64(PKCS8).unwrap();
        assert_eq!(
            pkcs8_from_pem(&pem("RSA PRIVATE KEY", PKCS1)).unwrap(),
            expected
        );
        assert_eq!(
            pkcs8_from_pem(&pem("PRIVATE KEY", PKCS8)).unwrap(),
            expected
        );
        let one_line = pem("RSA PRIVATE KEY", PKCS1).replace('\n', "\\n");
        assert_eq!(pkcs8_from_pem(&one_line).unwrap(), expected);
    }

    #[test]
    fn refusals() {
        assert!(pkcs8_from_pem("").is_err());
        assert!(pkcs8_from_pem(&pem("PUBLIC KEY", PKCS8)).is_err());
        assert!(pkcs8_from_pem(&pem("PRIVATE KEY", "!!!\n")).is_err());
        assert!(pkcs8_from_pem(&pem("PRIVATE KEY", "AAAA\n")).is_err());
        assert!(pkcs8_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA").is_err());
    }

    #[test]
    fn lengths_and_base64() {
        assert_eq!(der_length(5), [5]);
        assert_eq!(der_length(0x80), [0x81, 0x80]);
        assert_eq!(der_length(0x1234), [0x82, 0x12, 0x34]);
        assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("aGk"), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_base64("a b\nc="), decode_base64("abc"));
        assert_eq!(decode_base64("***"), None);
    }
}
