//! Talking back to the client during a call: progress, log messages,
//! sampling and elicitation. Each is available only to tools whose contract
//! declares it; an undeclared use is refused, so what reviewers approved is
//! what the handler can do.
//!
//! Logging and sampling are deprecated in the 2026-07-28 revision (SEP-2577)
//! but still spoken by 2025-11-25 clients, hence the `allow(deprecated)`.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rmcp::RoleServer;
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, LoggingLevel, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken,
};
use rmcp::service::Peer;
use serde_json::Value;

use super::error::ToolError;

/// What the contract lets one tool do towards the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed {
    pub progress: bool,
    pub logging: bool,
    pub sampling: bool,
    pub elicitation: bool,
}

/// The connection back to the client for one request.
#[derive(Clone)]
pub struct ClientLink {
    peer: Option<Peer<RoleServer>>,
    progress_token: Option<ProgressToken>,
    allowed: Allowed,
    min_level: Arc<AtomicU8>,
    /// The client declared the elicitation capability for this request (its
    /// `initialize`, or the request's own `_meta` on 2026-07-28). Stateless
    /// HTTP keeps no handshake: a legacy request there declares nothing and
    /// cannot answer a request from the server at all.
    can_elicit: bool,
}

impl std::fmt::Debug for ClientLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLink")
            .field("connected", &self.peer.is_some())
            .field("progress_token", &self.progress_token)
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl ClientLink {
    /// No client: every call is a no-op or an error.
    pub fn detached() -> ClientLink {
        ClientLink {
            peer: None,
            progress_token: None,
            allowed: Allowed::default(),
            min_level: Arc::new(AtomicU8::new(level_rank(LoggingLevel::Info))),
            can_elicit: false,
        }
    }

    pub fn new(
        peer: Peer<RoleServer>,
        progress_token: Option<ProgressToken>,
        allowed: Allowed,
        min_level: Arc<AtomicU8>,
    ) -> ClientLink {
        ClientLink {
            peer: Some(peer),
            progress_token,
            allowed,
            min_level,
            can_elicit: true,
        }
    }

    /// Records whether the client declared elicitation; [`ClientLink::confirm`]
    /// never asks a client that did not (it could not answer, and the call
    /// would wait for ever).
    pub fn declaring_elicitation(mut self, declared: bool) -> ClientLink {
        self.can_elicit = declared;
        self
    }

    /// Reports progress if the client asked for it (sent a progress token).
    pub async fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) -> Result<(), ToolError> {
        if !self.allowed.progress {
            return Err(undeclared("progress"));
        }
        let (Some(peer), Some(token)) = (&self.peer, &self.progress_token) else {
            return Ok(());
        };
        let mut param = ProgressNotificationParam::new(token.clone(), progress);
        param.total = total;
        param.message = message.map(String::from);
        peer.notify_progress(param)
            .await
            .map_err(|e| ToolError::unavailable(format!("the client went away: {e}")))
    }

    /// Sends a log message to the client if its level passes the client's filter.
    #[allow(deprecated)]
    pub async fn log(&self, level: LoggingLevel, data: Value) -> Result<(), ToolError> {
        if !self.allowed.logging {
            return Err(undeclared("client logging"));
        }
        let Some(peer) = &self.peer else { return Ok(()) };
        if level_rank(level) < self.min_level.load(Ordering::Relaxed) {
            return Ok(());
        }
        peer.notify_logging_message(LoggingMessageNotificationParam::new(level, data))
            .await
            .map_err(|e| ToolError::unavailable(format!("the client went away: {e}")))
    }

    /// Asks the client's model for a completion.
    #[allow(deprecated)]
    pub async fn sample(&self, request: CreateMessageRequestParams) -> Result<CreateMessageResult, ToolError> {
        if !self.allowed.sampling {
            return Err(undeclared("sampling"));
        }
        let Some(peer) = &self.peer else {
            return Err(ToolError::unavailable("no client connection to sample from"));
        };
        peer.create_message(request)
            .await
            .map_err(|e| ToolError::unavailable(format!("the client could not sample: {e}")))
    }

    /// Asks the user for input through the client.
    #[cfg(feature = "elicitation")]
    pub async fn elicit(
        &self,
        request: rmcp::model::ElicitRequestParams,
    ) -> Result<rmcp::model::ElicitResult, ToolError> {
        if !self.allowed.elicitation {
            return Err(undeclared("elicitation"));
        }
        let Some(peer) = &self.peer else {
            return Err(ToolError::unavailable("no client connection to ask"));
        };
        peer.create_elicitation(request)
            .await
            .map_err(|e| ToolError::unavailable(format!("the client could not ask the user: {e}")))
    }
}

impl ClientLink {
    /// Asks the user to confirm an operation (the runtime's approval step for
    /// `approval: user`, which does not depend on what the handler may ask).
    /// `Ok(true)` only for an explicit acceptance with `confirm: true`.
    #[cfg(feature = "elicitation")]
    pub async fn confirm(&self, message: &str) -> Result<bool, String> {
        let Some(peer) = &self.peer else {
            return Err("no client connection to ask".into());
        };
        if !self.can_elicit {
            return Err("the client did not declare the elicitation capability".into());
        }
        let request: rmcp::model::ElicitRequestParams = serde_json::from_value(serde_json::json!({
            "mode": "form",
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "confirm": {
                        "type": "boolean",
                        "title": "Run this operation",
                        "description": "Yes runs exactly the operation shown; anything else cancels it.",
                    }
                },
                "required": ["confirm"],
            },
        }))
        .map_err(|e| format!("cannot build the confirmation request: {e}"))?;
        let answer = peer.create_elicitation(request).await.map_err(|e| e.to_string())?;
        let accepted = answer.action == rmcp::model::ElicitationAction::Accept;
        let confirmed = answer
            .content
            .as_ref()
            .and_then(|c| c.get("confirm"))
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        Ok(accepted && confirmed)
    }
}

fn undeclared(what: &str) -> ToolError {
    ToolError::internal(format!("the handler used {what}, which its contract does not declare"))
}

/// `info`: what clients receive until they call `logging/setLevel`.
pub const DEFAULT_LEVEL: u8 = 1;

/// Severity order of MCP log levels (RFC 5424, lowest first).
pub fn level_rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}
