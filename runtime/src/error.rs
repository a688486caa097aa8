//! What a handler reports when it cannot do what was asked: its own module so
//! that the client link and the egress clients, which dispatch's `Context`
//! holds, can report errors without pointing back at dispatch.

/// What a handler reports when it cannot do what was asked. The message
/// reaches the caller (as an `isError` result for tools), so it must not
/// carry secrets or internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The arguments were well-formed but make no sense here (unknown id, bad combination).
    Invalid,
    /// The thing asked for does not exist.
    NotFound,
    /// A downstream system failed or timed out; trying later may work.
    Unavailable,
    /// The handler is not written yet.
    NotImplemented,
    /// A bug or an unexpected state; details go to the log, not the caller.
    Internal,
}

impl ToolError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            ErrorKind::NotImplemented,
            format!("{what} is not implemented yet: write it in src/handlers/"),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}
