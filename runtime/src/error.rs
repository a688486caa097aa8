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
    /// What the runtime needs to answer the two kinds that are not failures
    /// of the handler's own.
    pub(crate) detail: Option<Box<Detail>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Detail {
    /// For [`ErrorKind::InputRequired`]: the requests the client must answer,
    /// by key, as they go on the wire (`{"method": ..., "params": ...}`).
    InputRequests(std::collections::BTreeMap<String, serde_json::Value>),
    /// For [`ErrorKind::MissingCapability`]: the capability, e.g. `sampling`.
    Capability(&'static str),
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
    /// Not an error: the call needs the client's answers first (SEP-2322).
    /// Raised by `ClientLink::ask` on the 2026-07-28 wire; the runtime turns
    /// it into an `input_required` result, and the client retries.
    InputRequired,
    /// The handler needs a request the client did not declare it can answer
    /// (JSON-RPC -32021, missing required client capability).
    MissingCapability,
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
    pub(crate) fn input_required(requests: std::collections::BTreeMap<String, serde_json::Value>) -> Self {
        let keys: Vec<&str> = requests.keys().map(String::as_str).collect();
        let message = format!("waiting for the client's answers to {}", keys.join(", "));
        Self {
            kind: ErrorKind::InputRequired,
            message,
            detail: Some(Box::new(Detail::InputRequests(requests))),
        }
    }
    pub(crate) fn missing_capability(capability: &'static str) -> Self {
        Self {
            kind: ErrorKind::MissingCapability,
            message: format!(
                "this call needs the client's `{capability}` capability, which the request does not declare"
            ),
            detail: Some(Box::new(Detail::Capability(capability))),
        }
    }
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            detail: None,
        }
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}
