//! The contract between the runtime and generated code.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use rmcp::model::{ContentBlock, PromptMessage};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub use super::client::ClientLink;
pub use super::controls::Identity;
pub use super::error::{ErrorKind, ToolError};

/// A boxed future, so the dispatch trait stays object-safe without extra crates.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is calling, how to notice that they gave up, and (for tools whose
/// contract allows it) how to talk back to the client while working.
#[derive(Debug, Clone)]
pub struct Context {
    /// The authenticated caller's subject; on stdio, the local user running the server.
    pub caller: String,
    /// Who is calling in full: subject, OAuth client and scopes (shared, not copied, per request).
    pub identity: std::sync::Arc<Identity>,
    /// The JSON-RPC request id, for correlating logs.
    pub request_id: String,
    /// The W3C trace id (from the `traceparent` header when the client sent one).
    pub trace_id: String,
    /// Cancelled when the client cancels the request or the server shuts down.
    pub cancel: CancellationToken,
    /// Set by the HTTP layer when it already counted this request against the rate limit.
    pub rate_counted: bool,
    /// The connection back to the client: progress, logs, sampling, elicitation.
    pub client: ClientLink,
    /// Tells subscribed clients that a subscribable resource changed:
    /// `context.resources.updated(uri).await`. Clone it to report changes later.
    pub resources: super::subscriptions::ResourceUpdates,
    /// The downstream clients this tool or resource may use (set by the runtime).
    #[cfg(feature = "egress")]
    pub(crate) downstreams: super::egress::BoundDownstreams,
    /// The HTTP caller's verified bearer token, for downstreams that exchange
    /// it (RFC 8693). Crate-private: handlers never see it, and only a token
    /// endpoint ever receives it.
    #[cfg(feature = "egress")]
    pub(crate) caller_token: Option<super::egress::CallerToken>,
}

impl Context {
    /// A context with no client connection (for tests and background work).
    pub fn new(caller: impl Into<String>, request_id: impl Into<String>) -> Context {
        let caller = caller.into();
        Context {
            identity: std::sync::Arc::new(Identity::local_user(caller.clone())),
            caller,
            request_id: request_id.into(),
            trace_id: String::new(),
            cancel: CancellationToken::new(),
            rate_counted: false,
            client: ClientLink::detached(),
            resources: Default::default(),
            #[cfg(feature = "egress")]
            downstreams: Default::default(),
            #[cfg(feature = "egress")]
            caller_token: None,
        }
    }

    /// When this call must have answered: the contract's `timeout_ms` from
    /// the moment the handler started (after any approval). Past it the call
    /// ends as `timeout` and the handler's future is dropped. Downstream
    /// requests made through [`Context::downstream`] already give up just
    /// before it; use it to bound other work (a database statement, a retry).
    /// `None` outside a handler, and in a task the handler spawned: pass the
    /// value along to such a task.
    pub fn deadline(&self) -> Option<Instant> {
        super::deadline::of_call()
    }

    /// The client for downstream `name`, if the contract lists it for this
    /// tool or resource. Any other name is an error: a handler reaches only
    /// what reviewers approved for it. The client acts for this call's
    /// caller: a downstream with token exchange gets a token exchanged for
    /// theirs.
    #[cfg(feature = "egress")]
    pub fn downstream(&self, name: &str) -> Result<super::egress::Downstream, ToolError> {
        Ok(self.downstreams.get(name)?.for_caller(self.caller_token.clone()))
    }
}

/// What a tool returns.
#[derive(Debug, Clone)]
pub enum ToolOutput {
    /// Checked against the tool's output schema, sent as `structuredContent`
    /// with its JSON text mirrored in `content` for clients that predate it.
    Structured(Value),
    /// Content blocks for a tool without an output schema.
    Content(Vec<ContentBlock>),
}

/// A resource's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceBody {
    Text(String),
    Blob(Vec<u8>),
}

/// Implemented by generated code: decode validated JSON into the typed
/// inputs, call the team's handler, encode its typed output. The context is
/// lent, not given: the runtime's audit trail reads the same one while the
/// handler runs, so no call copies it.
pub trait Dispatch: Send + Sync + 'static {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        arguments: Value,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;

    fn read_resource<'a>(
        &'a self,
        resource: &'a str,
        uri: &'a str,
        variables: Map<String, Value>,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<ResourceBody, ToolError>>;

    /// Messages of a prompt bound to a handler (prompts with `text` never get here).
    fn get_prompt<'a>(
        &'a self,
        prompt: &'a str,
        arguments: BTreeMap<String, String>,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<Vec<PromptMessage>, ToolError>>;
}

/// Decodes validated arguments into a handler's input type. Validation ran
/// first, so a failure here means the schema and the type disagree: a bug in
/// the generator, reported as such.
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, value: Value) -> Result<T, ToolError> {
    serde_json::from_value(value)
        .map_err(|e| ToolError::internal(format!("{what}: arguments do not fit the generated type: {e}")))
}

/// Encodes a handler's output.
pub fn encode<T: serde::Serialize>(what: &str, value: &T) -> Result<ToolOutput, ToolError> {
    serde_json::to_value(value)
        .map(ToolOutput::Structured)
        .map_err(|e| ToolError::internal(format!("{what}: output cannot be encoded: {e}")))
}
