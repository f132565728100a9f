//! The one table of error codes: wire name, HTTP status and a default message, each an
//! exhaustive `match`, so a new code does not compile until it has all three.

use serde::{Deserialize, Serialize};
use std::fmt;

crate::closed_enum! {
/// Every error the coordinator reports, on HTTP and on WebSockets alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    UnknownType,
    InvalidField,
    TooLarge,
    RateLimited,
    QueueFull,
    NotFound,
    Forbidden,
    Unauthorized,
    Conflict,
    Gone,
    MethodNotAllowed,
    ProviderError,
    NotConfigured,
    Unavailable,
    Internal,
}
}

impl ErrorCode {
    /// The HTTP status. Exhaustive, so a new code does not compile without its row.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::UnknownType => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::QueueFull | ErrorCode::Conflict | ErrorCode::NotConfigured => 409,
            ErrorCode::Gone => 410,
            ErrorCode::TooLarge => 413,
            ErrorCode::InvalidField => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::ProviderError => 502,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Gone => "gone",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "the body is not valid JSON",
            ErrorCode::UnknownType => "unknown frame type",
            ErrorCode::InvalidField => "a field is missing or invalid",
            ErrorCode::TooLarge => "the input is over the size limit",
            ErrorCode::RateLimited => "too many requests; slow down",
            ErrorCode::QueueFull => "the prompt queue is full",
            ErrorCode::NotFound => "not found",
            ErrorCode::Forbidden => "not allowed",
            ErrorCode::Unauthorized => "missing or invalid credentials",
            ErrorCode::Conflict => "the request conflicts with the current state",
            ErrorCode::Gone => "it has ended and will not come back",
            ErrorCode::MethodNotAllowed => "method not allowed",
            ErrorCode::ProviderError => "the sandbox provider failed",
            ErrorCode::NotConfigured => {
                "GitHub is not configured on this coordinator; see README, Connect GitHub"
            }
            ErrorCode::Unavailable => "temporarily unavailable",
            ErrorCode::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error value as it crosses the wire: `{"code": …, "message": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn of(code: ErrorCode) -> Self {
        ApiError::new(code, code.default_message())
    }

    pub fn invalid_field(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidField, message)
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The HTTP error body: `{"error": {"code", "message"}}`.
    pub fn to_body(&self) -> String {
        serde_json::json!({ "error": self }).to_string()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The HTTP error body, for clients that read one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_serde_names_and_distinct() {
        for (i, &code) in ErrorCode::ALL.iter().enumerate() {
            let wire = serde_json::to_string(&code).unwrap();
            assert_eq!(wire, format!("\"{}\"", code.as_str()));
            assert!(ErrorCode::ALL[..i].iter().all(|other| *other != code));
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn body_shape() {
        let body = ApiError::invalid_field("content must not be empty").to_body();
        assert_eq!(
            body,
            r#"{"error":{"code":"invalid_field","message":"content must not be empty"}}"#
        );
        assert_eq!(ApiError::of(ErrorCode::QueueFull).status(), 409);
    }
}
