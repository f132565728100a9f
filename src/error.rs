//! The Worker's error type: either a protocol error meant for the caller, or a runtime
//! failure that is logged in full and shown to the caller only as `internal`.

use protocol::{ApiError, ErrorCode};

#[derive(Debug)]
pub enum Error {
    Api(ApiError),
    Runtime(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What the caller sees. Runtime details go to the log, never into a response.
    pub fn into_api(self) -> ApiError {
        match self {
            Error::Api(error) => error,
            Error::Runtime(detail) => {
                crate::log::error(&detail);
                ApiError::of(ErrorCode::Internal)
            }
        }
    }
}

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Self {
        Error::Api(error)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Runtime(format!("json: {error}"))
    }
}

#[cfg(target_arch = "wasm32")]
impl From<worker::Error> for Error {
    fn from(error: worker::Error) -> Self {
        Error::Runtime(error.to_string())
    }
}
