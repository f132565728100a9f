//! The one table of WebSocket close codes the coordinator uses, on participant sockets and on
//! the bridge's socket alike (PROTOCOL.md sections 2 and 3).

use std::fmt;

crate::closed_enum! {
/// Why the room closed a socket. Clients act on the number; the reason is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// The socket's own side went away, or the room let go of a socket it had finished with.
    Normal,
    /// The client is leaving (browsers send it when a page goes).
    GoingAway,
    /// A frame over the platform's size limit.
    TooLarge,
    /// Over a per-user cap (sockets per session): close one elsewhere before opening another.
    TooMany,
    /// The room could not make sense of the socket (no identity attached).
    Internal,
    /// A newer connection of the same sandbox replaced this bridge socket.
    Replaced,
    /// The participant token is expired or not for this session: fetch a new one.
    TokenExpired,
    /// The user is no longer a member of the session.
    Removed,
    /// The session is archived: read-only from now on.
    Archived,
    /// The sandbox behind this bridge socket has ended: do not reconnect.
    SandboxEnded,
}
}

impl CloseCode {
    /// The number on the wire.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::TooLarge => 1009,
            CloseCode::TooMany => 1008,
            CloseCode::Internal => 1011,
            CloseCode::Replaced => 4000,
            CloseCode::TokenExpired => 4001,
            CloseCode::Removed => 4003,
            CloseCode::Archived => 4009,
            CloseCode::SandboxEnded => 4010,
        }
    }

    /// The reason sent with the code when the room has nothing more specific to say.
    pub fn default_reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "closed",
            CloseCode::GoingAway => "going away",
            CloseCode::TooLarge => "a frame was over the size limit",
            CloseCode::TooMany => "too many connections of this user to this session",
            CloseCode::Internal => "the room could not identify this socket",
            CloseCode::Replaced => "replaced by a newer connection of the same sandbox",
            CloseCode::TokenExpired => "the participant token has expired; fetch a new one",
            CloseCode::Removed => "you are no longer a member of this session",
            CloseCode::Archived => "the session is archived",
            CloseCode::SandboxEnded => "this sandbox has ended; do not reconnect",
        }
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.iter().copied().find(|c| c.code() == code)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for &close in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(close.code()), Some(close));
            assert!(!close.default_reason().is_empty());
            // Reasons must fit the 123 bytes a close frame allows.
            assert!(close.default_reason().len() <= 123);
        }
        assert_eq!(CloseCode::from_code(4999), None);
    }
}
