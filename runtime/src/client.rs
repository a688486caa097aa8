//! Talking back to the client during a call: progress, log messages,
//! sampling and elicitation. Each is available only to tools whose contract
//! declares it; an undeclared use is refused, so what reviewers approved is
//! what the handler can do.
//!
//! Requests to the client go one of two ways, and handlers do not choose:
//! on the 2026-07-28 wire the call ends with an `input_required` result and
//! the client retries with the answers (SEP-2322, see `rounds`), which works
//! on stateless HTTP across replicas; for older clients the server sends the
//! request on the open connection and waits.
//!
//! Logging and sampling are deprecated in the 2026-07-28 revision (SEP-2577)
//! but still spoken by 2025-11-25 clients, hence the `allow(deprecated)`.
#![allow(deprecated)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rmcp::RoleServer;
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, LoggingLevel, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken,
};
use rmcp::service::Peer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::ToolError;
use super::rounds::Round;
#[cfg(feature = "elicitation")]
use super::rounds::Spent;

/// What the contract lets one tool do towards the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed {
    pub progress: bool,
    pub logging: bool,
    pub sampling: bool,
    pub elicitation: bool,
    pub roots: bool,
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
    /// Set when the request speaks the 2026-07-28 wire: the answers so far,
    /// and what is missing ends the call with `input_required`.
    round: Option<Arc<Round>>,
    /// The capabilities a 2026-07-28 request declares in its `_meta`.
    declared: Option<Value>,
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
            round: None,
            declared: None,
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
            round: None,
            declared: None,
        }
    }

    /// Requests to the client are answered by retrying (SEP-2322) with the
    /// answers in `round`; `declared` is what the request's `_meta` says the
    /// client can answer.
    pub(crate) fn in_rounds(mut self, round: Arc<Round>, declared: Option<Value>) -> ClientLink {
        self.round = Some(round);
        self.declared = declared;
        self
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
        if self.round.is_some() {
            let params = serde_json::to_value(&request).map_err(|e| ToolError::internal(e.to_string()))?;
            let key = derived_key("sampling", &params);
            let answers = self.ask([(key.as_str(), Ask::Sampling(params))]).await?;
            return answers.decode(&key);
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
        if self.round.is_some() {
            let params = serde_json::to_value(&request).map_err(|e| ToolError::internal(e.to_string()))?;
            let key = derived_key("elicitation", &params);
            let answers = self.ask([(key.as_str(), Ask::Elicitation(params))]).await?;
            return answers.decode(&key);
        }
        let Some(peer) = &self.peer else {
            return Err(ToolError::unavailable("no client connection to ask"));
        };
        peer.create_elicitation(request)
            .await
            .map_err(|e| ToolError::unavailable(format!("the client could not ask the user: {e}")))
    }

    /// Whether the client can answer requests of this kind: on the 2026-07-28
    /// wire, what the request's `_meta` declares (all kinds when it declares
    /// nothing); on older wires, a connected client is asked and may refuse.
    pub fn declares(&self, kind: AskKind) -> bool {
        match &self.declared {
            Some(declared) => declared.get(kind.capability()).is_some(),
            None => self.round.is_some() || self.peer.is_some(),
        }
    }

    /// Asks the client several things at once, each under a key the handler
    /// chooses and keeps the same on every round. On the 2026-07-28 wire the
    /// first call returns `Err` with the requests (the runtime answers
    /// `input_required`; this is not a failure) and the retry carries the
    /// answers; older clients are asked on the open connection, one by one.
    ///
    /// Handlers are re-run on each round: everything before the last `ask`
    /// runs again, so it must not change state (the contract's `draft` and
    /// `write` effects are recorded before the handler runs, each time).
    pub async fn ask<'k>(&self, asks: impl IntoIterator<Item = (&'k str, Ask)>) -> Result<Answers, ToolError> {
        let asks: Vec<(&str, Ask)> = asks.into_iter().collect();
        for (_, ask) in &asks {
            if !ask.kind().allowed(self.allowed) {
                return Err(undeclared(ask.kind().capability()));
            }
            if !self.declares(ask.kind()) {
                return Err(ToolError::missing_capability(ask.kind().capability()));
            }
        }
        let mut answers = BTreeMap::new();
        if let Some(round) = &self.round {
            let mut missing = BTreeMap::new();
            for (key, ask) in asks {
                match round.answer(key) {
                    Some(answer) => {
                        ask.kind().check(key, answer)?;
                        answers.insert(key.to_string(), answer.clone());
                    }
                    None => {
                        missing.insert(key.to_string(), ask.into_request());
                    }
                }
            }
            if !missing.is_empty() {
                return Err(ToolError::input_required(missing));
            }
            return Ok(Answers(answers));
        }
        let Some(peer) = &self.peer else {
            return Err(ToolError::unavailable("no client connection to ask"));
        };
        for (key, ask) in asks {
            let kind = ask.kind();
            let answer = ask_on_connection(peer, ask)
                .await
                .map_err(|e| ToolError::unavailable(format!("the client could not answer `{key}`: {e}")))?;
            kind.check(key, &answer)?;
            answers.insert(key.to_string(), answer);
        }
        Ok(Answers(answers))
    }
}

/// Sends one request on the open connection (clients before 2026-07-28).
async fn ask_on_connection(peer: &Peer<RoleServer>, ask: Ask) -> Result<Value, String> {
    let encode = |v: Result<Value, serde_json::Error>| v.map_err(|e| e.to_string());
    match ask {
        Ask::Sampling(params) => {
            let params: CreateMessageRequestParams = serde_json::from_value(params).map_err(|e| e.to_string())?;
            let result = peer.create_message(params).await.map_err(|e| e.to_string())?;
            encode(serde_json::to_value(result))
        }
        #[cfg(feature = "elicitation")]
        Ask::Elicitation(params) => {
            let params: rmcp::model::ElicitRequestParams = serde_json::from_value(params).map_err(|e| e.to_string())?;
            let result = peer.create_elicitation(params).await.map_err(|e| e.to_string())?;
            encode(serde_json::to_value(result))
        }
        #[cfg(not(feature = "elicitation"))]
        Ask::Elicitation(_) => Err("this build cannot ask the user (feature `elicitation`)".into()),
        Ask::Roots => {
            let result = peer.list_roots().await.map_err(|e| e.to_string())?;
            encode(serde_json::to_value(result))
        }
    }
}

/// A request to the client: the `params` of its JSON-RPC request.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// `elicitation/create`: a form (`message`, `requestedSchema`) or a URL.
    Elicitation(Value),
    /// `sampling/createMessage`: `messages`, `maxTokens`, ...
    Sampling(Value),
    /// `roots/list`.
    Roots,
}

impl Ask {
    /// A form for the user: `schema` is the flat object schema of the answer.
    pub fn form(message: impl Into<String>, schema: Value) -> Ask {
        Ask::Elicitation(json!({"mode": "form", "message": message.into(), "requestedSchema": schema}))
    }

    /// One question to the client's model.
    pub fn question(text: impl Into<String>, max_tokens: u32) -> Ask {
        Ask::Sampling(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": text.into()}}],
            "maxTokens": max_tokens,
        }))
    }

    pub fn kind(&self) -> AskKind {
        match self {
            Ask::Elicitation(_) => AskKind::Elicitation,
            Ask::Sampling(_) => AskKind::Sampling,
            Ask::Roots => AskKind::Roots,
        }
    }

    /// As it goes into `inputRequests`.
    fn into_request(self) -> Value {
        let method = self.kind().method();
        let params = match self {
            Ask::Elicitation(params) | Ask::Sampling(params) => params,
            Ask::Roots => json!({}),
        };
        json!({"method": method, "params": params})
    }
}

/// The kinds of request a contract may let a tool or prompt send (`asks_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskKind {
    Elicitation,
    Sampling,
    Roots,
}

impl AskKind {
    fn method(self) -> &'static str {
        match self {
            AskKind::Elicitation => "elicitation/create",
            AskKind::Sampling => "sampling/createMessage",
            AskKind::Roots => "roots/list",
        }
    }

    /// The client capability that answers it.
    pub fn capability(self) -> &'static str {
        match self {
            AskKind::Elicitation => "elicitation",
            AskKind::Sampling => "sampling",
            AskKind::Roots => "roots",
        }
    }

    fn allowed(self, allowed: Allowed) -> bool {
        match self {
            AskKind::Elicitation => allowed.elicitation,
            AskKind::Sampling => allowed.sampling,
            AskKind::Roots => allowed.roots,
        }
    }

    /// An answer has the shape of this request's result, or the handler never sees it.
    fn check(self, key: &str, answer: &Value) -> Result<(), ToolError> {
        let fits = match self {
            AskKind::Elicitation => {
                matches!(
                    answer.get("action").and_then(Value::as_str),
                    Some("accept" | "decline" | "cancel")
                ) && answer.get("content").is_none_or(Value::is_object)
            }
            AskKind::Sampling => answer.get("role").is_some() && answer.get("content").is_some(),
            AskKind::Roots => answer.get("roots").is_some_and(Value::is_array),
        };
        if fits {
            Ok(())
        } else {
            Err(ToolError::invalid(format!(
                "the answer to `{key}` is not a {} result",
                self.method()
            )))
        }
    }
}

/// The client's answers, by the keys the handler asked with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers(BTreeMap<String, Value>);

impl Answers {
    /// The answer as the client sent it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The form's content, when the user accepted it.
    pub fn accepted(&self, key: &str) -> Option<&serde_json::Map<String, Value>> {
        let answer = self.0.get(key)?;
        (answer.get("action").and_then(Value::as_str) == Some("accept"))
            .then(|| answer.get("content").and_then(Value::as_object))
            .flatten()
    }

    /// The text a sampling answer carries.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.get("content")?.get("text")?.as_str()
    }

    /// The answer decoded into an rmcp result type.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T, ToolError> {
        let answer = self.0.get(key).cloned().unwrap_or(Value::Null);
        serde_json::from_value(answer)
            .map_err(|e| ToolError::invalid(format!("the answer to `{key}` does not fit: {e}")))
    }
}

/// A key for a request the handler made without naming one: the same request
/// gets the same key on every round.
fn derived_key(kind: &str, params: &Value) -> String {
    let digest = Sha256::digest(serde_json::to_vec(params).unwrap_or_default());
    format!("{kind}-{}", &super::audit::hex(&digest)[..16])
}

/// The key of the runtime's own confirmation request in `inputRequests`.
pub const CONFIRMATION_KEY: &str = "charter_confirmation";

/// What the user said to a confirmation request.
#[derive(Debug)]
pub enum Confirmation {
    /// Accepted with `confirm: true`. `nonce` is the spent request state's,
    /// when the answer came by retry (SEP-2322).
    Confirmed { nonce: Option<String> },
    /// Declined, cancelled, or accepted without `confirm: true`.
    Declined,
    /// The answer is still to come: the call ends `input_required` (this error
    /// carries the request) and the client retries with it.
    Asking(ToolError),
    /// This retry carries a confirmation that already ran its operation once.
    Replayed,
    /// The client cannot be asked; the message says why.
    Unavailable(String),
}

impl ClientLink {
    /// Asks the user to confirm an operation (the runtime's approval step for
    /// `approval: user`, which does not depend on what the handler may ask).
    /// Only an explicit acceptance with `confirm: true` confirms. On the
    /// 2026-07-28 wire the answer must come with the request state the
    /// question was issued with, and each state confirms one run.
    #[cfg(feature = "elicitation")]
    pub async fn confirm(&self, message: &str) -> Confirmation {
        let params = json!({
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
        });
        let confirmed = |answer: &Value| {
            answer.get("action").and_then(Value::as_str) == Some("accept")
                && answer
                    .get("content")
                    .and_then(|c| c.get("confirm"))
                    .and_then(Value::as_bool)
                    == Some(true)
        };
        if let Some(round) = &self.round {
            if self.declared.as_ref().is_some_and(|d| d.get("elicitation").is_none()) {
                return Confirmation::Unavailable("the request does not declare the elicitation capability".into());
            }
            // An answer without the state it was asked under (or with a state
            // from a round that did not ask) is not an answer to this question.
            let answer = match (round.nonce(), round.answer(CONFIRMATION_KEY)) {
                (Some(_), Some(answer)) if round.asked(CONFIRMATION_KEY) => answer,
                _ => {
                    let request = Ask::Elicitation(params).into_request();
                    return Confirmation::Asking(ToolError::input_required(BTreeMap::from([(
                        CONFIRMATION_KEY.to_string(),
                        request,
                    )])));
                }
            };
            if !confirmed(answer) {
                return Confirmation::Declined;
            }
            return match round.spend().await {
                Spent::Now(nonce) => Confirmation::Confirmed { nonce: Some(nonce) },
                Spent::Before => Confirmation::Replayed,
                Spent::Unknown(e) => {
                    Confirmation::Unavailable(format!("the confirmation cannot be checked against replays: {e}"))
                }
            };
        }
        let Some(peer) = &self.peer else {
            return Confirmation::Unavailable("no client connection to ask".into());
        };
        if !self.can_elicit {
            return Confirmation::Unavailable("the client did not declare the elicitation capability".into());
        }
        match ask_on_connection(peer, Ask::Elicitation(params)).await {
            Ok(answer) if confirmed(&answer) => Confirmation::Confirmed { nonce: None },
            Ok(_) => Confirmation::Declined,
            Err(e) => Confirmation::Unavailable(e),
        }
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
