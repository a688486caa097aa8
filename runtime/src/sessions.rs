//! Legacy Streamable HTTP sessions (2025-11-25), when a contract opts in with
//! `access.sessions`: rmcp's in-memory session manager, bounded and bound to
//! its caller.
//!
//! - **Bounded.** At most `max` sessions live in one process; an `initialize`
//!   past that is refused (the gate answers 503 before rmcp sees it, and
//!   [`Sessions::create_session`] refuses too, for a race between two).
//!   A session idle for `idle` is closed by rmcp's worker.
//! - **Bound to its caller.** The gate records who opened each session and
//!   answers a request that names someone else's session as if the session
//!   did not exist (404), so a leaked `Mcp-Session-Id` is no bearer token.
//! - **Subscriptions end with it.** Closing a session drops its resource
//!   subscriptions.
//!
//! A session lives in one process's memory: replicas need sticky routing
//! (the generated Service and README say how).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId, SessionManager};

use super::subscriptions::Subscriptions;
use super::surface::SessionsSpec;

/// The header that names a legacy session.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// rmcp's local session manager under a cap, with each session's owner.
pub struct Sessions {
    local: LocalSessionManager,
    max: usize,
    /// Who opened each live session (the caller's subject).
    owners: Mutex<HashMap<SessionId, Arc<str>>>,
    subscriptions: Arc<Subscriptions>,
}

/// Why a session could not be used.
#[derive(Debug)]
pub enum SessionsError {
    /// The process holds its `max` sessions already.
    Full(usize),
    Local(LocalSessionManagerError),
}

impl std::fmt::Display for SessionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionsError::Full(max) => write!(f, "this server holds its {max} sessions already"),
            SessionsError::Local(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SessionsError {}

impl From<LocalSessionManagerError> for SessionsError {
    fn from(e: LocalSessionManagerError) -> Self {
        SessionsError::Local(e)
    }
}

/// Whether a request may use the session it names.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// The caller opened it (or no session by that id is known: rmcp answers 404).
    Caller,
    /// Somebody else's session.
    Other,
}

impl Sessions {
    /// Sessions as the contract bounds them; `None` gives a manager that is never
    /// asked for one (stateless HTTP), so the service has one type either way.
    pub fn new(spec: Option<SessionsSpec>, subscriptions: Arc<Subscriptions>) -> Sessions {
        let mut local = LocalSessionManager::default();
        let (max, idle) = match spec {
            Some(spec) => (spec.max as usize, Duration::from_millis(spec.idle_ms)),
            None => (0, SessionConfig::DEFAULT_KEEP_ALIVE),
        };
        local.session_config.keep_alive = Some(idle);
        Sessions {
            local,
            max,
            owners: Mutex::new(HashMap::new()),
            subscriptions,
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<str>>> {
        self.owners.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a new session would be refused.
    pub async fn full(&self) -> bool {
        self.local.sessions.read().await.len() >= self.max
    }

    /// The most sessions this process holds.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Records that `subject` opened session `id` (from the `initialize` response).
    pub fn opened_by(&self, id: &str, subject: &str) {
        self.owners().insert(Arc::from(id), Arc::from(subject));
    }

    /// Whether `subject` may use session `id`.
    pub fn owner(&self, id: &str, subject: &str) -> Owner {
        match self.owners().get(id) {
            Some(owner) if &**owner != subject => Owner::Other,
            _ => Owner::Caller,
        }
    }

    fn closed(&self, id: &SessionId) {
        self.owners().remove(id);
        self.subscriptions.forget(&format!("session:{id}"));
    }
}

impl SessionManager for Sessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        // The gate refuses first with a 503; this holds when two initializations race past it.
        {
            let live = self.local.sessions.read().await;
            if live.len() >= self.max {
                return Err(SessionsError::Full(self.max));
            }
            // An owner whose session never completed its handshake is dropped here, so
            // the table stays within the cap too.
            self.owners().retain(|id, _| live.contains_key(id));
        }
        Ok(self.local.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.local.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        // rmcp calls this on DELETE and when a session's worker ends (idle, shutdown).
        self.closed(id);
        Ok(self.local.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.resume(id, last_event_id).await?)
    }
}
