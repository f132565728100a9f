//! The one table of error codes: wire name, HTTP status and a default message.

use serde::{Deserialize, Serialize};
use std::fmt;

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
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// (code, HTTP status, wire name, default message)
    const TABLE: &'static [(ErrorCode, u16, &'static str, &'static str)] = &[
        (
            ErrorCode::InvalidJson,
            400,
            "invalid_json",
            "the body is not valid JSON",
        ),
        (
            ErrorCode::UnknownType,
            400,
            "unknown_type",
            "unknown frame type",
        ),
        (
            ErrorCode::InvalidField,
            422,
            "invalid_field",
            "a field is missing or invalid",
        ),
        (
            ErrorCode::TooLarge,
            413,
            "too_large",
            "the input is over the size limit",
        ),
        (
            ErrorCode::RateLimited,
            429,
            "rate_limited",
            "too many requests; slow down",
        ),
        (
            ErrorCode::Gone,
            410,
            "gone",
            "it has ended and will not come back",
        ),
        (
            ErrorCode::QueueFull,
            409,
            "queue_full",
            "the prompt queue is full",
        ),
        (ErrorCode::NotFound, 404, "not_found", "not found"),
        (ErrorCode::Forbidden, 403, "forbidden", "not allowed"),
        (
            ErrorCode::Unauthorized,
            401,
            "unauthorized",
            "missing or invalid credentials",
        ),
        (
            ErrorCode::Conflict,
            409,
            "conflict",
            "the request conflicts with the current state",
        ),
        (
            ErrorCode::MethodNotAllowed,
            405,
            "method_not_allowed",
            "method not allowed",
        ),
        (
            ErrorCode::ProviderError,
            502,
            "provider_error",
            "the sandbox provider failed",
        ),
        (
            ErrorCode::Unavailable,
            503,
            "unavailable",
            "temporarily unavailable",
        ),
        (ErrorCode::Internal, 500, "internal", "internal error"),
    ];

    fn row(self) -> &'static (ErrorCode, u16, &'static str, &'static str) {
        // The table is exhaustive; the test below keeps it that way.
        Self::TABLE
            .iter()
            .find(|row| row.0 == self)
            .unwrap_or(&Self::TABLE[13])
    }

    pub fn status(self) -> u16 {
        self.row().1
    }

    pub fn as_str(self) -> &'static str {
        self.row().2
    }

    pub fn default_message(self) -> &'static str {
        self.row().3
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
    fn table_covers_every_code_once() {
        for (i, row) in ErrorCode::TABLE.iter().enumerate() {
            assert_eq!(row.0.row().2, row.2);
            assert_eq!(
                ErrorCode::TABLE.iter().filter(|r| r.0 == row.0).count(),
                1,
                "row {i}"
            );
            let wire = serde_json::to_string(&row.0).unwrap();
            assert_eq!(wire, format!("\"{}\"", row.2));
        }
        assert_eq!(ErrorCode::TABLE.len(), 15);
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
