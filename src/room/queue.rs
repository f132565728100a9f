//! The prompt queue's rules: admission, cancellation and what runs next. Pure; the room
//! keeps the queue itself in SQLite (`messages.status`) and asks these functions what to do.

use protocol::{ApiError, ErrorCode};

/// A prompt's place in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    TimedOut,
}

impl MessageStatus {
    const ALL: [MessageStatus; 6] = [
        MessageStatus::Queued,
        MessageStatus::Running,
        MessageStatus::Completed,
        MessageStatus::Failed,
        MessageStatus::Cancelled,
        MessageStatus::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Running => "running",
            MessageStatus::Completed => "completed",
            MessageStatus::Failed => "failed",
            MessageStatus::Cancelled => "cancelled",
            MessageStatus::TimedOut => "timed_out",
        }
    }

    pub fn parse(name: &str) -> Option<MessageStatus> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, MessageStatus::Queued | MessageStatus::Running)
    }
}

impl From<protocol::event::PromptStatus> for MessageStatus {
    fn from(status: protocol::event::PromptStatus) -> Self {
        use protocol::event::PromptStatus as P;
        match status {
            P::Completed => MessageStatus::Completed,
            P::Failed => MessageStatus::Failed,
            P::Cancelled => MessageStatus::Cancelled,
            P::TimedOut => MessageStatus::TimedOut,
        }
    }
}

/// Whether one more prompt fits; `waiting` is how many are queued now. Returns its 1-based position.
pub fn admit(waiting: usize, queue_len: usize) -> Result<u32, ApiError> {
    if waiting >= queue_len {
        return Err(ApiError::new(
            ErrorCode::QueueFull,
            format!(
                "the queue already holds {queue_len} prompts; wait for one to finish or cancel one"
            ),
        ));
    }
    Ok(waiting as u32 + 1)
}

/// Only a prompt that has not started can be cancelled; a running one is stopped instead.
pub fn check_cancel(status: Option<MessageStatus>) -> Result<(), ApiError> {
    match status {
        None => Err(ApiError::not_found("prompt")),
        Some(MessageStatus::Queued) => Ok(()),
        Some(MessageStatus::Running) => Err(ApiError::new(
            ErrorCode::Conflict,
            "the prompt is already running; send stop to end it",
        )),
        Some(finished) => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("the prompt has already finished ({})", finished.as_str()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission() {
        assert_eq!(admit(0, 20), Ok(1));
        assert_eq!(admit(19, 20), Ok(20));
        assert_eq!(admit(20, 20).unwrap_err().code, ErrorCode::QueueFull);
    }

    #[test]
    fn cancellation() {
        use MessageStatus::*;
        for (status, expected) in [
            (None, Err(ErrorCode::NotFound)),
            (Some(Queued), Ok(())),
            (Some(Running), Err(ErrorCode::Conflict)),
            (Some(Completed), Err(ErrorCode::Conflict)),
            (Some(Cancelled), Err(ErrorCode::Conflict)),
        ] {
            assert_eq!(
                check_cancel(status).map_err(|e| e.code),
                expected,
                "{status:?}"
            );
        }
    }

    #[test]
    fn status_names_round_trip() {
        for status in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(MessageStatus::parse("nope"), None);
        assert!(MessageStatus::TimedOut.is_finished());
        assert!(!MessageStatus::Running.is_finished());
    }
}
