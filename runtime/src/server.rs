//! The MCP server: rmcp's `ServerHandler` over the contract's surface and the
//! generated dispatch. Tool calls, resource reads and prompts all go through
//! one gate pipeline (`pipeline.rs`), whatever the handler does: the caller's
//! identity (established by the transport), scopes, kill switch and rate
//! limit, validation, the concurrency cap, approval, the intent record, the
//! handler under its deadline and the caller's cancellation, then the output
//! checks and the outcome record. Each of `call`, `read` and `prompt` resolves
//! its name, describes the request as a `Call`, supplies its validation and
//! output checks, and maps the pipeline's typed refusals and outcomes to its
//! protocol form: `isError` results for tools, JSON-RPC errors for resources
//! and prompts.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use std::sync::atomic::{AtomicU8, Ordering};

#[allow(deprecated)] // logging/setLevel: deprecated in 2026-07-28, still spoken by 2025-11-25 clients
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult, CompletionInfo,
    ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, InputRequests,
    InputRequiredResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, Prompt, PromptMessage, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities, ServerConfig,
    SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

use super::client::{Allowed, ClientLink, level_rank};
use super::controls::Denial;
use super::dispatch::{Context, Dispatch, ErrorKind, Identity, ResourceBody, ToolError, ToolOutput};
use super::error::Detail;
use super::guard::{Controls, Trail, denial_error};
use super::pipeline::{Call, Invalid, Outcome, Pipeline, Refusal, human};
use super::rounds::{Operation, Round, Rounds};
use super::subscriptions::{ResourceUpdates, Subscriptions, TooMany};
use super::surface::{ClientRequest, Effect, PromptSpec, ResourceSpec, Surface, ToolSpec};
use super::template::UriTemplate;
use super::validate::Validator;

use super::validate::MAX_VIOLATIONS;

/// The `_meta` key that carries each definition's hash, so hosts can pin it.
pub use super::surface::HASH_META_KEY;

/// The protocol revisions served: the current one and the last with an `initialize` handshake.
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28];

/// A server for one contract. Cheap to clone: everything is shared.
pub struct McpServer {
    inner: Arc<Inner>,
}

impl Clone for McpServer {
    fn clone(&self) -> Self {
        McpServer {
            inner: self.inner.clone(),
        }
    }
}

struct Inner {
    surface: Surface,
    dispatch: Box<dyn Dispatch>,
    tools: BTreeMap<String, CompiledTool>,
    /// Each listed definition with the scopes a caller needs to see it.
    listed_tools: Vec<(Vec<String>, Tool)>,
    listed_resources: Vec<(Vec<String>, Resource)>,
    listed_templates: Vec<(Vec<String>, ResourceTemplate)>,
    listed_prompts: Vec<(Vec<String>, Prompt)>,
    /// The approval tools, shown to approvers only.
    listed_builtins: Vec<Tool>,
    /// Tools with header-mapped parameters (`x-mcp-header`, SEP-2243), whose
    /// `Mcp-Param-*` headers rmcp's HTTP service checks against the body.
    header_tools: BTreeMap<String, Tool>,
    templates: Vec<CompiledTemplate>,
    /// Who a request is from when the transport authenticated no one (stdio: the local user).
    default_caller: String,
    /// The lowest log level the client asked to receive (`logging/setLevel`).
    min_log_level: Arc<AtomicU8>,
    /// What `initialize` answers (and stateless HTTP asks for on every request).
    info: std::sync::OnceLock<ServerConfig>,
    /// Authorization, limits, kill switch, audit, approvals and metrics;
    /// `None` only where a test or benchmark measures the bare protocol layer.
    controls: Option<Controls>,
    /// Each tool's and resource's downstream clients, by kind and name:
    /// only those its contract lists.
    #[cfg(feature = "egress")]
    downstreams: BTreeMap<(&'static str, String), super::egress::BoundDownstreams>,
    /// Seals and opens the state of multi-round requests (SEP-2322).
    rounds: Arc<Rounds>,
    /// Which connection subscribed to which resource (2025-11-25 `resources/subscribe`).
    subscriptions: Arc<Subscriptions>,
}

/// A 2026-07-28 request's operation (what its next state is bound to) and answers so far.
type InRounds = Option<(Operation, Arc<Round>)>;

/// Whether any property of an input schema is mirrored into an HTTP header.
fn maps_headers(schema: &serde_json::Map<String, Value>) -> bool {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|properties| {
            properties
                .values()
                .any(|p| p.get("x-mcp-header").is_some() || p.as_object().is_some_and(maps_headers))
        })
}

/// How long a client has to answer an `input_required` result by default.
pub const DEFAULT_ROUND_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// What a 2026-07-28 request brings besides its arguments: the answers to
/// an earlier `input_required` result and the state it carried, and the
/// capabilities the client declares in `_meta`.
#[derive(Debug, Default)]
pub struct Retry {
    pub responses: Option<BTreeMap<String, Value>>,
    pub state: Option<String>,
    pub declared: Option<Value>,
}

impl Retry {
    /// `Some` for a request on the 2026-07-28 wire (its `_meta` names the
    /// protocol version), which takes requests to the client by retry.
    fn of(
        context: &RequestContext<RoleServer>,
        responses: Option<BTreeMap<String, Value>>,
        state: Option<String>,
    ) -> Option<Retry> {
        context.meta.protocol_version()?;
        let declared = context
            .meta
            .client_capabilities()
            .and_then(|c| serde_json::to_value(c).ok());
        Some(Retry {
            responses,
            state,
            declared,
        })
    }
}

struct CompiledTool {
    spec: ToolSpec,
    input: Validator,
    output: Option<Validator>,
}

struct CompiledTemplate {
    index: usize,
    template: UriTemplate,
    variables: BTreeMap<String, Validator>,
}

impl McpServer {
    /// Compiles every schema of the surface; fails at start-up, never mid-request.
    pub fn new(surface: Surface, dispatch: impl Dispatch) -> Result<McpServer, String> {
        McpServer::new_boxed(surface, Box::new(dispatch))
    }

    /// [`McpServer::new`] for handlers already boxed.
    pub fn new_boxed(surface: Surface, dispatch: Box<dyn Dispatch>) -> Result<McpServer, String> {
        let mut tools = BTreeMap::new();
        let mut listed_tools = Vec::new();
        for spec in &surface.tools {
            let name = spec.name().to_string();
            #[cfg(feature = "egress")]
            super::binding::check(spec)?;
            #[cfg(not(feature = "egress"))]
            if spec.binding.is_some() {
                return Err(format!(
                    "tool `{name}` is bound to an HTTP operation, but this runtime is built without the `egress` feature"
                ));
            }
            let input = Validator::new(&format!("tool `{name}` input"), &spec.definition["inputSchema"])?;
            let output = match spec.definition.get("outputSchema") {
                Some(schema) => Some(Validator::new(&format!("tool `{name}` output"), schema)?),
                None => None,
            };
            listed_tools.push((spec.scopes.clone(), with_hash::<Tool>(&spec.definition, &spec.hash)?));
            tools.insert(
                name,
                CompiledTool {
                    spec: spec.clone(),
                    input,
                    output,
                },
            );
        }
        let mut listed_resources = Vec::new();
        let mut listed_templates = Vec::new();
        let mut templates = Vec::new();
        for (index, spec) in surface.resources.iter().enumerate() {
            match spec.uri_template() {
                Some(uri_template) => {
                    let mut variables = BTreeMap::new();
                    for (name, schema) in spec.variables.iter().flatten() {
                        let what = format!("resource `{}` variable `{name}`", spec.name());
                        variables.insert(name.clone(), Validator::new(&what, schema)?);
                    }
                    templates.push(CompiledTemplate {
                        index,
                        template: UriTemplate::parse(uri_template)?,
                        variables,
                    });
                    listed_templates.push((
                        spec.scopes.clone(),
                        with_hash::<ResourceTemplate>(&spec.definition, &spec.hash)?,
                    ));
                }
                None => listed_resources.push((
                    spec.scopes.clone(),
                    with_hash::<Resource>(&spec.definition, &spec.hash)?,
                )),
            }
        }
        let listed_prompts = surface
            .prompts
            .iter()
            .map(|spec| Ok((spec.scopes.clone(), with_hash::<Prompt>(&spec.definition, &spec.hash)?)))
            .collect::<Result<_, String>>()?;
        Ok(McpServer {
            inner: Arc::new(Inner {
                surface,
                dispatch,
                tools,
                header_tools: listed_tools
                    .iter()
                    .filter(|(_, tool)| maps_headers(&tool.input_schema))
                    .map(|(_, tool)| (tool.name.to_string(), tool.clone()))
                    .collect(),
                listed_tools,
                listed_resources,
                listed_templates,
                listed_prompts,
                listed_builtins: Vec::new(),
                templates,
                default_caller: "anonymous".into(),
                min_log_level: Arc::new(AtomicU8::new(super::client::DEFAULT_LEVEL)),
                info: std::sync::OnceLock::new(),
                controls: None,
                #[cfg(feature = "egress")]
                downstreams: BTreeMap::new(),
                rounds: Arc::new(Rounds::new(None, DEFAULT_ROUND_TTL)?),
                subscriptions: Arc::default(),
            }),
        })
    }

    /// Sets the key and lifetime of multi-round request states (every replica
    /// needs the same key). Call before serving.
    pub fn with_rounds(mut self, rounds: Rounds) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.rounds = Arc::new(rounds);
        }
        self
    }

    /// Sets who unauthenticated requests are attributed to. Call before serving.
    pub fn with_default_caller(mut self, caller: String) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.default_caller = caller;
        }
        self
    }

    /// Puts the contract's controls in front of every handler. Call before serving.
    pub fn with_controls(mut self, controls: Controls) -> Result<Self, String> {
        let inner = Arc::get_mut(&mut self.inner).ok_or("controls must be set before the server is shared")?;
        inner.listed_builtins = controls
            .builtin_definitions()
            .into_iter()
            .map(|d| serde_json::from_value(d).map_err(|e| format!("an approval tool does not fit the protocol: {e}")))
            .collect::<Result<_, _>>()?;
        inner.controls = Some(controls);
        Ok(self)
    }

    /// Gives each tool and resource the clients of the downstreams its
    /// contract lists, and no others. Call before serving.
    #[cfg(feature = "egress")]
    pub fn with_egress(mut self, egress: &super::egress::Egress) -> Result<Self, String> {
        let inner = Arc::get_mut(&mut self.inner).ok_or("egress must be set before the server is shared")?;
        for tool in &inner.surface.tools {
            let bound = egress.bind(tool.name(), &tool.downstreams)?;
            inner.downstreams.insert(("tool", tool.name().to_string()), bound);
        }
        for resource in &inner.surface.resources {
            let bound = egress.bind(resource.name(), &resource.downstreams)?;
            inner
                .downstreams
                .insert(("resource", resource.name().to_string()), bound);
        }
        Ok(self)
    }

    /// The context a handler gets: the caller's, with the downstream clients
    /// this tool or resource may use.
    fn handler_context(&self, kind: &'static str, name: &str, mut context: Context) -> Context {
        #[cfg(feature = "egress")]
        if let Some(bound) = self.inner.downstreams.get(&(kind, name.to_string())) {
            context.downstreams = bound.clone();
        }
        #[cfg(not(feature = "egress"))]
        let _ = (kind, name);
        context.resources = self.resource_updates();
        context
    }

    /// The handle that tells subscribed clients a resource changed (also in
    /// every handler's [`Context`]).
    pub fn resource_updates(&self) -> ResourceUpdates {
        ResourceUpdates::new(self.inner.subscriptions.clone())
    }

    /// Every connection's resource subscriptions (sessions drop theirs on close).
    pub fn subscriptions(&self) -> Arc<Subscriptions> {
        self.inner.subscriptions.clone()
    }

    /// Whether the tool's data class is logged as given (so a bound call's filled URL may be too).
    #[cfg(feature = "egress")]
    fn logs_in_full(&self, spec: &ToolSpec) -> bool {
        spec.data_class
            .as_ref()
            .and_then(|class| self.inner.surface.data_classes.get(class))
            .is_some_and(|r| *r == super::surface::Redaction::Full)
    }

    pub fn surface(&self) -> &Surface {
        &self.inner.surface
    }

    pub fn controls(&self) -> Option<&Controls> {
        self.inner.controls.as_ref()
    }

    /// Runs one tool call through every gate. Failures the caller can act on
    /// come back as `isError` results naming what was wrong.
    pub async fn call(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: Context,
    ) -> Result<CallToolResult, McpError> {
        match self.call_in_rounds(name, arguments, context, None).await? {
            CallToolResponse::Complete(result) => Ok(result),
            _ => Err(McpError::internal_error(
                format!("`{name}` needs the client's input, which only a 2026-07-28 request can give"),
                None,
            )),
        }
    }

    /// A tool call; `retry` is set for a 2026-07-28 request, whose handler
    /// may end the call `input_required` and see the answers on the retry.
    pub async fn call_in_rounds(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: Context,
        retry: Option<Retry>,
    ) -> Result<CallToolResponse, McpError> {
        if let Some(controls) = &self.inner.controls
            && let Some(result) = controls.builtin_tool(name, arguments.as_ref(), &context).await
        {
            return result.map(CallToolResponse::from);
        }
        let Some(tool) = self.inner.tools.get(name) else {
            return Err(McpError::invalid_params(format!("unknown tool `{name}`"), None));
        };
        let arguments = Value::Object(arguments.unwrap_or_default());
        // On the 2026-07-28 wire: the operation a request state is bound to, and the answers so far.
        let (context, rounds) =
            self.enter_rounds("tools/call", Call::tool(&tool.spec), context, &arguments, retry, true)?;
        let context = self.handler_context("tool", name, context);
        let pipeline =
            Pipeline::new(self.inner.controls.as_ref(), Call::tool(&tool.spec), &context).with_arguments(&arguments);
        let admission = match pipeline
            .admit(Some(&arguments), || check_arguments(tool, &arguments))
            .await
        {
            Ok((admission, ())) => admission,
            Err(Refusal::Asking(request)) => return self.suspend(rounds.as_ref(), request),
            Err(refusal) => return Ok(error_result(tool_refusal(name, refusal)).into()),
        };
        #[cfg(feature = "egress")]
        let record = super::binding::CallRecord::default();
        let handler = match &tool.spec.binding {
            // A bound tool has no handler: the runtime makes its call.
            #[cfg(feature = "egress")]
            Some(binding) => Box::pin(super::binding::call(
                &tool.spec,
                binding,
                arguments,
                context.clone(),
                record.clone(),
                self.logs_in_full(&tool.spec),
            )),
            _ => self.inner.dispatch.call_tool(name, arguments, &context),
        };
        let ran = pipeline.run(admission, handler).await;
        let ran_outcome = match ran.outcome {
            Outcome::Failed(error) if error.kind == ErrorKind::InputRequired => {
                pipeline.finish("input_required", Some(&error.message), ran.evidence.as_ref(), None);
                return self.suspend(rounds.as_ref(), error);
            }
            Outcome::Failed(error) if error.kind == ErrorKind::MissingCapability => {
                pipeline.finish("error", Some(&error.message), ran.evidence.as_ref(), None);
                return Err(missing_capability(&error));
            }
            other => other,
        };
        let (result, outcome, detail) = self.tool_result(tool, name, ran_outcome.into_result());
        let shown = pipeline.audited_result(result.structured_content.as_ref());
        #[cfg(feature = "egress")]
        let downstream = record.lock().unwrap_or_else(|e| e.into_inner()).take();
        #[cfg(not(feature = "egress"))]
        let downstream = None;
        pipeline.finish_with_downstream(
            outcome,
            detail.as_deref(),
            ran.evidence.as_ref(),
            shown.as_ref(),
            downstream,
        );
        Ok(result.into())
    }

    /// For a 2026-07-28 request: opens the retry's state and answers into the
    /// context's client link, with the operation the next state is bound to.
    /// A state that does not open is refused (-32602) and audited.
    fn enter_rounds(
        &self,
        method: &'static str,
        call: Call<'_>,
        context: Context,
        arguments: &Value,
        retry: Option<Retry>,
        audits_arguments: bool,
    ) -> Result<(Context, InRounds), McpError> {
        let Some(retry) = retry else {
            return Ok((context, None));
        };
        let operation = Operation::new(method, call.name, &context.identity.subject, arguments);
        match self
            .inner
            .rounds
            .open(&operation, retry.responses, retry.state.as_deref())
        {
            Ok(round) => {
                let round = Arc::new(round);
                let mut context = context;
                context.client = context.client.in_rounds(round.clone(), retry.declared);
                Ok((context, Some((operation, round))))
            }
            Err(refused) => {
                let pipeline = Pipeline::new(self.inner.controls.as_ref(), call, &context);
                let pipeline = if audits_arguments {
                    pipeline.with_arguments(arguments)
                } else {
                    pipeline
                };
                pipeline.denied(refused.reason(), refused.message());
                Err(McpError::invalid_params(refused.message().to_string(), None))
            }
        }
    }

    /// The `input_required` answer for `request` (an `InputRequired` error),
    /// with the state the retry must bring back.
    fn suspend<T: From<InputRequiredResult>>(
        &self,
        rounds: Option<&(Operation, Arc<Round>)>,
        request: ToolError,
    ) -> Result<T, McpError> {
        let Some((operation, round)) = rounds else {
            return Err(McpError::internal_error(
                "the client's input was asked for outside a 2026-07-28 request",
                None,
            ));
        };
        let asked = match request.detail.map(|d| *d) {
            Some(Detail::InputRequests(asked)) => asked,
            _ => BTreeMap::new(),
        };
        let requests: InputRequests = serde_json::from_value(Value::Object(asked.into_iter().collect()))
            .map_err(|e| McpError::internal_error(format!("the client was asked something malformed: {e}"), None))?;
        self.inner
            .rounds
            .suspend(operation, round, requests)
            .map(T::from)
            .map_err(|e| McpError::internal_error(e, None))
    }

    /// Checks a handler's outcome against the contract: the output schema,
    /// the declared content kinds and the response size.
    fn tool_result(
        &self,
        tool: &CompiledTool,
        name: &str,
        outcome: Result<ToolOutput, ToolError>,
    ) -> (CallToolResult, &'static str, Option<String>) {
        let violation = |message: String| {
            if let Some(controls) = &self.inner.controls {
                controls.metrics.output_violation("tool", name);
            }
            (error_result(message.clone()), "output_violation", Some(message))
        };
        let output = match outcome {
            Ok(output) => output,
            Err(error) => {
                let outcome = match error.kind {
                    ErrorKind::Unavailable if error.message.starts_with("timed out") => "timeout",
                    ErrorKind::Unavailable if error.message == "cancelled" => "cancelled",
                    _ => "error",
                };
                return (tool_error_result(name, &error), outcome, Some(error.message));
            }
        };
        let result = match output {
            ToolOutput::Structured(value) => {
                if let Some(validator) = &tool.output {
                    let violations = validator.violations(&value, MAX_VIOLATIONS);
                    if !violations.is_empty() {
                        tracing::error!(tool = name, ?violations, "handler output breaks the output schema");
                        return violation(format!(
                            "`{name}` produced a result that breaks its contract; the operator has been told"
                        ));
                    }
                }
                CallToolResult::structured(value)
            }
            ToolOutput::Content(content) => {
                if tool.output.is_some() {
                    tracing::error!(tool = name, "handler returned content for a tool with an output schema");
                    return violation(format!("`{name}` produced no structured result"));
                }
                if let Some(kind) = content
                    .iter()
                    .map(content_kind)
                    .find(|k| !tool.spec.content.iter().any(|c| c.as_str() == *k))
                {
                    tracing::error!(
                        tool = name,
                        kind,
                        "handler returned a content kind its contract does not declare"
                    );
                    return violation(format!(
                        "`{name}` produced {kind} content, which its contract does not declare"
                    ));
                }
                CallToolResult::success(content)
            }
        };
        let size = result_size(&result);
        if size > tool.spec.limits.max_response_bytes {
            tracing::warn!(tool = name, size, "result over the response size limit");
            let message = format!(
                "the result of `{name}` is {size} bytes, over its limit of {}; narrow the request",
                tool.spec.limits.max_response_bytes
            );
            return (error_result(message.clone()), "response_too_large", Some(message));
        }
        let outcome = if result.is_error == Some(true) { "error" } else { "ok" };
        (result, outcome, None)
    }

    /// The resource a URI names (a fixed URI, or a template it matches) with the template's
    /// variables typed and validated. SEP-2164: an unknown resource is invalid params, with
    /// the URI in `data`.
    fn resolve(&self, uri: &str) -> Result<(&ResourceSpec, Map<String, Value>), McpError> {
        let inner = &self.inner;
        if let Some(spec) = inner.surface.resources.iter().find(|r| r.uri() == Some(uri)) {
            return Ok((spec, Map::new()));
        }
        let Some((compiled, variables)) = inner
            .templates
            .iter()
            .find_map(|t| t.template.matches(uri).map(|vars| (t, vars)))
        else {
            return Err(McpError::invalid_params(
                format!("no resource matches `{}`", super::validate::truncate(uri, 200)),
                Some(json!({ "uri": uri })),
            ));
        };
        let variables = typed_variables(compiled, variables)?;
        Ok((&inner.surface.resources[compiled.index], variables))
    }

    /// Reads a static resource or one matched by a template.
    pub async fn read(&self, uri: &str, context: Context) -> Result<ReadResourceResult, McpError> {
        let inner = &self.inner;
        let (spec, variables) = self.resolve(uri)?;
        let context = self.handler_context("resource", spec.name(), context);
        let pipeline = Pipeline::new(inner.controls.as_ref(), Call::resource(spec), &context);
        // A template's variables were typed and validated while resolving the URI.
        let admission = match pipeline.admit(None, || Ok::<_, Invalid<McpError>>(())).await {
            Ok((admission, ())) => admission,
            Err(refusal) => return Err(protocol_refusal("resource", spec.name(), refusal)),
        };
        let read = inner.dispatch.read_resource(spec.name(), uri, variables, &context);
        let body = match pipeline.run(admission, read).await.outcome.into_result() {
            Ok(body) => body,
            Err(e) => {
                pipeline.finish("error", Some(&e.message), None, None);
                return Err(resource_error(spec, &e));
            }
        };
        let size = match &body {
            ResourceBody::Text(text) => text.len(),
            ResourceBody::Blob(bytes) => bytes.len(),
        } as u64;
        if size > spec.limits.max_response_bytes {
            pipeline.finish("response_too_large", None, None, None);
            return Err(McpError::internal_error(
                format!("resource `{}` is over its size limit", spec.name()),
                None,
            ));
        }
        pipeline.finish("ok", None, None, None);
        let mime_type = spec.mime_type().map(String::from);
        let contents = match body {
            ResourceBody::Text(text) => ResourceContents::TextResourceContents {
                uri: uri.to_string(),
                mime_type,
                text,
                meta: None,
            },
            ResourceBody::Blob(bytes) => ResourceContents::BlobResourceContents {
                uri: uri.to_string(),
                mime_type,
                blob: base64::engine::general_purpose::STANDARD.encode(bytes),
                meta: None,
            },
        };
        Ok(ReadResourceResult::new(vec![contents]))
    }

    /// Renders a prompt from the contract's text, or asks its handler for the messages.
    pub async fn prompt(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: Context,
    ) -> Result<GetPromptResult, McpError> {
        match self.prompt_in_rounds(name, arguments, context, None).await? {
            GetPromptResponse::Complete(result) => Ok(result),
            _ => Err(McpError::internal_error(
                format!("prompt `{name}` needs the client's input, which only a 2026-07-28 request can give"),
                None,
            )),
        }
    }

    /// A prompt; `retry` as for [`McpServer::call_in_rounds`].
    pub async fn prompt_in_rounds(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: Context,
        retry: Option<Retry>,
    ) -> Result<GetPromptResponse, McpError> {
        let Some(spec) = self.inner.surface.prompts.iter().find(|p| p.name() == name) else {
            return Err(McpError::invalid_params(format!("unknown prompt `{name}`"), None));
        };
        let given = arguments.unwrap_or_default();
        let (context, rounds) = match &retry {
            None => (context, None),
            Some(_) => {
                let bound = Value::Object(given.clone());
                self.enter_rounds("prompts/get", Call::prompt(spec), context, &bound, retry, false)?
            }
        };
        let pipeline = Pipeline::new(self.inner.controls.as_ref(), Call::prompt(spec), &context);
        let validate = || {
            prompt_arguments(spec, given).map_err(|reply| Invalid {
                reply: Box::new(reply),
                // Prompts have never audited their argument errors.
                audit: None,
            })
        };
        let (admission, arguments) = match pipeline.admit(None, validate).await {
            Ok(admitted) => admitted,
            Err(refusal) => return Err(protocol_refusal("prompt", name, refusal)),
        };
        let messages = async {
            if spec.handler {
                self.inner.dispatch.get_prompt(name, arguments, &context).await
            } else {
                Ok(vec![PromptMessage::new_text(
                    Role::User,
                    super::prompt::render(&spec.text, &arguments),
                )])
            }
        };
        let messages = match pipeline.run(admission, messages).await.outcome {
            Outcome::Done(messages) => messages,
            Outcome::Failed(e) if e.kind == ErrorKind::InputRequired => {
                pipeline.finish("input_required", Some(&e.message), None, None);
                return self.suspend(rounds.as_ref(), e);
            }
            Outcome::Failed(e) if e.kind == ErrorKind::MissingCapability => {
                pipeline.finish("error", Some(&e.message), None, None);
                return Err(missing_capability(&e));
            }
            // Every admitted call ends in an outcome record, as for tools and resources.
            Outcome::Failed(e) => {
                pipeline.finish("error", Some(&e.message), None, None);
                return Err(match e.kind {
                    ErrorKind::Invalid | ErrorKind::NotFound => McpError::invalid_params(e.message, None),
                    _ => {
                        tracing::error!(prompt = name, error = %e.message, "prompt handler failed");
                        McpError::internal_error(format!("prompt `{name}` failed"), None)
                    }
                });
            }
            Outcome::TimedOut(deadline) => {
                let message = format!("prompt `{name}` timed out after {}", human(deadline));
                pipeline.finish("timeout", Some(&message), None, None);
                return Err(McpError::internal_error(message, None));
            }
            Outcome::Cancelled => {
                pipeline.finish("cancelled", Some("cancelled"), None, None);
                return Err(McpError::internal_error(format!("prompt `{name}` was cancelled"), None));
            }
        };
        pipeline.finish("ok", None, None, None);
        let mut result = GetPromptResult::new(messages);
        if let Some(description) = spec.definition["description"].as_str() {
            result = result.with_description(description);
        }
        Ok(result.into())
    }
}

/// The fields of a JSON-RPC request the HTTP gate needs.
/// Strings are borrowed from the body where they need no unescaping.
#[derive(Debug, serde::Deserialize)]
pub struct Peek<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    id: Option<Value>,
    #[serde(borrow)]
    params: Option<PeekParams<'a>>,
}

#[derive(Debug, serde::Deserialize, Default)]
pub struct PeekParams<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<std::borrow::Cow<'a, str>>,
}

impl Peek<'_> {
    /// The JSON-RPC method, for a request or notification.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }
}

/// The method, id and tool name or URI of a JSON-RPC request body: the rest
/// is skipped, not built. `Err` for a body that is not JSON or not a single
/// request object.
pub fn peek(body: &[u8]) -> Result<Peek<'_>, Unpeekable> {
    // UTF-8 first: serde_json skips the strings of fields it ignores without
    // checking them, so a body that is not JSON could otherwise pass the peek
    // (found by fuzzing, fuzz/regressions/http_body/).
    let text = std::str::from_utf8(body)
        .map_err(|e| Unpeekable::NotJson(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            return Unpeekable::NotJson(e.to_string());
        }
        // The shape was wrong before the syntax was: a batch or a bare value stops the peek at
        // its first byte, so read it through to tell JSON from what is not (found by fuzzing).
        match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) if e.is_syntax() || e.is_eof() => Unpeekable::NotJson(e.to_string()),
            _ => Unpeekable::NotOneRequest,
        }
    })
}

/// Why a body has no request to peek at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpeekable {
    /// Not JSON text at all: a JSON-RPC parse error (-32700); the message says where.
    NotJson(String),
    /// JSON, but not one request object (a batch, a bare value): left to the protocol layer.
    NotOneRequest,
}

/// The HTTP layer's view of a request, before the protocol layer parses it.
impl McpServer {
    /// Applies scopes and the rate limit to the call a request body carries,
    /// so HTTP can answer 403 or 429. `Ok(true)` when the rate limit was
    /// counted here (the protocol layer then does not count it again).
    /// Bodies that are not a single well-formed call pass unchanged: the
    /// protocol layer refuses them, and applies the same gates itself.
    pub async fn precheck(&self, identity: &Identity, message: Option<Peek<'_>>) -> Result<bool, (Denial, String)> {
        let Some(controls) = &self.inner.controls else {
            return Ok(false);
        };
        let Some(message) = message else {
            return Ok(false);
        };
        let params = message.params.unwrap_or_default();
        let (kind, name, hash, effect, scopes): (&'static str, &str, &str, Effect, &[String]) =
            match message.method.as_deref() {
                Some("tools/call") => match params.name.as_deref() {
                    Some(n) => match self.inner.tools.get(n) {
                        Some(tool) => (
                            "tool",
                            tool.spec.name(),
                            &tool.spec.hash,
                            tool.spec.effect,
                            &tool.spec.scopes,
                        ),
                        // The approval tools are limited here too (their scope, any one of the
                        // approver scopes, is checked by the protocol layer).
                        None => match controls.builtin_effect(n) {
                            Some(effect) => ("tool", n, "", effect, &[]),
                            None => return Ok(false),
                        },
                    },
                    None => return Ok(false),
                },
                // A subscription is authorized and limited as a read of what it watches.
                Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
                    match params.uri.as_deref().and_then(|uri| self.resource_for(uri)) {
                        Some(spec) => ("resource", spec.name(), &spec.hash, Effect::Read, &spec.scopes),
                        None => return Ok(false),
                    }
                }
                Some("prompts/get") => {
                    match params
                        .name
                        .as_deref()
                        .and_then(|n| self.inner.surface.prompts.iter().find(|p| p.name() == n))
                    {
                        Some(spec) => ("prompt", spec.name(), &spec.hash, Effect::Read, &spec.scopes),
                        None => return Ok(false),
                    }
                }
                _ => return Ok(false),
            };
        let missing = identity.missing_scopes(scopes);
        let denial = if !missing.is_empty() {
            Denial::InsufficientScope(missing.into_iter().map(String::from).collect())
        } else if kind == "prompt" {
            return Ok(false);
        } else {
            match controls.limiter.check_rate(kind, name, &identity.subject).await {
                Ok(()) => return Ok(true),
                Err(denial) => denial,
            }
        };
        let mut context = Context::new(
            identity.subject.clone(),
            message.id.map(|id| id.to_string()).unwrap_or_default(),
        );
        context.identity = Arc::new(identity.clone());
        let message = denial.message(kind, name);
        Trail::new(controls, kind, name, effect, hash, &context).denied(denial.reason(), &message);
        Err((denial, message))
    }

    /// Audits a request the HTTP layer refused before reading what it asked for.
    pub fn refuse_request(&self, identity: &Identity, reason: &'static str) {
        if let Some(controls) = &self.inner.controls {
            controls.refused_request(Some(identity), reason, reason);
        }
    }

    /// Audits a request refused for its missing or invalid token (never the token itself).
    pub fn refuse_unauthenticated(&self, reason: &'static str, message: &str) {
        if let Some(controls) = &self.inner.controls {
            controls.refused_request(None, reason, message);
        }
    }

    /// `resources/subscribe` and `resources/unsubscribe`: the URI must name a
    /// subscribable resource (a template's variables are checked as for a
    /// read), the caller must hold its scopes, and both are audited.
    async fn subscription(
        &self,
        uri: &str,
        context: &Context,
        outcome: &'static str,
        change: impl FnOnce() -> Result<(), McpError>,
    ) -> Result<(), McpError> {
        let inner = &self.inner;
        let (spec, _) = self.resolve(uri)?;
        if !spec.subscribable {
            return Err(McpError::invalid_params(
                format!(
                    "resource `{}` cannot be subscribed to: its contract does not mark it `subscribable`",
                    spec.name()
                ),
                Some(json!({ "uri": uri })),
            ));
        }
        let pipeline = Pipeline::new(inner.controls.as_ref(), Call::resource(spec), context);
        let admission = match pipeline.admit(None, || Ok::<_, Invalid<McpError>>(())).await {
            Ok((admission, ())) => admission,
            Err(refusal) => return Err(protocol_refusal("resource", spec.name(), refusal)),
        };
        drop(admission);
        match change() {
            Ok(()) => {
                pipeline.finish(outcome, None, None, None);
                Ok(())
            }
            Err(e) => {
                pipeline.denied("too_many_subscriptions", &e.message);
                Err(e)
            }
        }
    }

    fn resource_for(&self, uri: &str) -> Option<&ResourceSpec> {
        let inner = &self.inner;
        inner
            .surface
            .resources
            .iter()
            .find(|r| r.uri() == Some(uri))
            .or_else(|| {
                inner
                    .templates
                    .iter()
                    .find(|t| t.template.matches(uri).is_some())
                    .map(|t| &inner.surface.resources[t.index])
            })
    }
}

impl McpServer {
    fn has_client_logging(&self) -> bool {
        self.inner.surface.tools.iter().any(|t| t.client_logging)
    }
}

/// A tool that asks the client for sampling, elicitation or roots can only
/// run for a client that can answer at least one of them: otherwise `-32021`
/// names what is missing. A handler that may ask for several kinds sees what
/// the client declared (`ClientLink::declares`) and asks only for that; a
/// request for an undeclared kind ends the call with `-32021` too.
fn missing_client_capabilities(context: &RequestContext<RoleServer>, allowed: Allowed) -> Result<(), McpError> {
    let kinds: Vec<&str> = [
        (allowed.sampling, "sampling"),
        (allowed.elicitation, "elicitation"),
        (allowed.roots, "roots"),
    ]
    .into_iter()
    .filter_map(|(on, kind)| on.then_some(kind))
    .collect();
    if kinds.is_empty() {
        return Ok(());
    }
    // Only 2026-07-28 requests carry the client's capabilities; a legacy client
    // refuses unsupported requests itself (stateless HTTP keeps no handshake).
    if context.meta.protocol_version().is_none() {
        return Ok(());
    }
    let declared = context
        .meta
        .client_capabilities()
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or(Value::Null);
    if kinds.iter().any(|kind| declared.get(kind).is_some()) {
        return Ok(());
    }
    let missing: serde_json::Map<String, Value> = kinds.iter().map(|k| (k.to_string(), json!({}))).collect();
    let required =
        serde_json::from_value(Value::Object(missing)).map_err(|e| McpError::internal_error(e.to_string(), None))?;
    Err(McpError::missing_required_client_capability(required))
}

fn allowed_for(spec: &ToolSpec) -> Allowed {
    Allowed {
        progress: spec.progress,
        logging: spec.client_logging,
        ..allowed_to_ask(&spec.asks_client)
    }
}

fn allowed_to_ask(asks: &[ClientRequest]) -> Allowed {
    Allowed {
        sampling: asks.contains(&ClientRequest::Sampling),
        elicitation: asks.contains(&ClientRequest::Elicitation),
        roots: asks.contains(&ClientRequest::Roots),
        ..Allowed::default()
    }
}

/// The size of a result on the wire, without serializing it a second time:
/// the structured value's JSON is already in the mirrored text block, so the
/// text and binary payloads plus a margin for the envelope bound it.
fn result_size(result: &CallToolResult) -> u64 {
    const ENVELOPE: u64 = 256;
    let payload: u64 = result
        .content
        .iter()
        .map(|block| {
            let bytes = if let Some(text) = block.as_text() {
                text.text.len()
            } else if let Some(image) = block.as_image() {
                image.data.len()
            } else if let Some(audio) = block.as_audio() {
                audio.data.len()
            } else {
                // Embedded resources and links are rare: measure them exactly.
                serde_json::to_vec(block).map_or(usize::MAX / 4, |v| v.len())
            };
            bytes as u64 + ENVELOPE
        })
        .sum();
    // structuredContent repeats the mirrored text.
    let structured = result
        .structured_content
        .as_ref()
        .and_then(|_| result.content.first())
        .and_then(|block| block.as_text())
        .map_or(0, |text| text.text.len() as u64);
    payload + structured + ENVELOPE
}

/// The contract's name for a content block's kind.
fn content_kind(block: &ContentBlock) -> &'static str {
    match serde_json::to_value(block)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(String::from))
        .as_deref()
    {
        Some("text") => "text",
        Some("image") => "image",
        Some("audio") => "audio",
        Some("resource") => "resource",
        Some("resource_link") => "resource_link",
        _ => "unknown",
    }
}

/// The definitions whose scopes pass `shown`.
fn visible<T: Clone>(listed: &[(Vec<String>, T)], shown: impl Fn(&[String]) -> bool) -> Vec<T> {
    listed
        .iter()
        .filter(|(scopes, _)| shown(scopes))
        .map(|(_, item)| item.clone())
        .collect()
}

/// Parses a definition into its rmcp type, with the hash in `_meta`.
fn with_hash<T: serde::de::DeserializeOwned>(definition: &Value, hash: &str) -> Result<T, String> {
    let mut definition = definition.clone();
    definition["_meta"] = json!({ HASH_META_KEY: hash });
    serde_json::from_value(definition).map_err(|e| format!("a definition does not fit the protocol: {e}"))
}

/// A tool's validation stage: the request size, then the input schema.
fn check_arguments(tool: &CompiledTool, arguments: &Value) -> Result<(), Invalid<String>> {
    super::validate::check_input(
        tool.spec.name(),
        &tool.spec.definition["inputSchema"],
        &tool.input,
        tool.spec.limits.max_request_bytes,
        arguments,
    )
    .map_err(|refused| Invalid {
        audit: Some((refused.reason, refused.audit)),
        reply: Box::new(refused.reply),
    })
}

/// A refusal as the text of a tool's `isError` result.
fn tool_refusal(name: &str, refusal: Refusal<String>) -> String {
    match refusal {
        Refusal::Denied(denial) => denial.message("tool", name),
        Refusal::Invalid(message) | Refusal::NotApproved(message) | Refusal::Pending(message) => message,
        // Answered as `input_required` before it gets here.
        Refusal::Asking(request) => request.message,
        Refusal::IntentUnrecorded => format!(
            "`{name}` changes state and the audit log cannot be written, so it was not run; \
             the operator has been told"
        ),
    }
}

/// A refusal as the JSON-RPC error resources and prompts answer with.
fn protocol_refusal(kind: &str, name: &str, refusal: Refusal<McpError>) -> McpError {
    match refusal {
        Refusal::Denied(denial) => denial_error(&denial, kind, name),
        Refusal::Invalid(error) => error,
        // Only tools ask for approval or change state.
        Refusal::NotApproved(message) | Refusal::Pending(message) => McpError::invalid_request(message, None),
        Refusal::Asking(request) => McpError::invalid_request(request.message, None),
        Refusal::IntentUnrecorded => McpError::internal_error(format!("{kind} `{name}` was not run"), None),
    }
}

/// JSON-RPC -32021: the handler needs a request the client cannot answer.
fn missing_capability(error: &ToolError) -> McpError {
    let capability = match error.detail.as_deref() {
        Some(Detail::Capability(capability)) => *capability,
        _ => "elicitation",
    };
    match serde_json::from_value(json!({ capability: {} })) {
        Ok(required) => McpError::missing_required_client_capability(required),
        Err(e) => McpError::internal_error(e.to_string(), None),
    }
}

fn error_result(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn tool_error_result(tool: &str, error: &ToolError) -> CallToolResult {
    match error.kind {
        ErrorKind::Internal => {
            tracing::error!(tool, error = %error.message, "handler failed");
            error_result(format!("`{tool}` failed; the operator has been told"))
        }
        _ => error_result(error.message.clone()),
    }
}

fn resource_error(spec: &ResourceSpec, error: &ToolError) -> McpError {
    match error.kind {
        ErrorKind::NotFound => McpError::resource_not_found(error.message.clone(), None),
        ErrorKind::Invalid => McpError::invalid_params(error.message.clone(), None),
        ErrorKind::Internal => {
            tracing::error!(resource = spec.name(), error = %error.message, "handler failed");
            McpError::internal_error(format!("reading `{}` failed", spec.name()), None)
        }
        _ => McpError::internal_error(error.message.clone(), None),
    }
}

/// Template variables arrive as strings; the contract types them. Numbers and
/// booleans are parsed before validation so `{id}` can be an integer.
fn typed_variables(compiled: &CompiledTemplate, raw: Map<String, Value>) -> Result<Map<String, Value>, McpError> {
    let mut typed = Map::new();
    for (name, value) in raw {
        let text = value.as_str().unwrap_or_default().to_string();
        let Some(validator) = compiled.variables.get(&name) else {
            typed.insert(name, Value::String(text));
            continue;
        };
        let candidates = [
            text.parse::<i64>().ok().map(Value::from),
            text.parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number)),
            text.parse::<bool>().ok().map(Value::Bool),
            Some(Value::String(text.clone())),
        ];
        let accepted = candidates.into_iter().flatten().find(|v| validator.is_valid(v));
        match accepted {
            Some(value) => {
                typed.insert(name, value);
            }
            None => {
                let violations = validator.violations(&Value::String(text), 5);
                return Err(McpError::invalid_params(
                    format!("URI variable `{name}` is invalid: {}", violations.join("; ")),
                    None,
                ));
            }
        }
    }
    Ok(typed)
}

fn prompt_arguments(spec: &PromptSpec, given: Map<String, Value>) -> Result<BTreeMap<String, String>, McpError> {
    let declared: Vec<&Value> = spec.definition["arguments"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut arguments = BTreeMap::new();
    for (name, value) in given {
        if !declared.iter().any(|d| d["name"] == name.as_str()) {
            return Err(McpError::invalid_params(
                format!("prompt `{}` has no argument `{name}`", spec.name()),
                None,
            ));
        }
        let Value::String(text) = value else {
            return Err(McpError::invalid_params(
                format!("argument `{name}` must be a string"),
                None,
            ));
        };
        let max = spec.max_lengths.get(&name).copied().unwrap_or(u64::MAX);
        if text.chars().count() as u64 > max {
            return Err(McpError::invalid_params(
                format!("argument `{name}` is longer than {max} characters"),
                None,
            ));
        }
        arguments.insert(name, text);
    }
    for argument in declared {
        let name = argument["name"].as_str().unwrap_or_default();
        if argument["required"] == true && !arguments.contains_key(name) {
            return Err(McpError::invalid_params(
                format!("prompt `{}` needs the argument `{name}`", spec.name()),
                None,
            ));
        }
    }
    Ok(arguments)
}

/// The log level for one request: on 2026-07-28 each request carries its own
/// (`_meta.io.modelcontextprotocol/logLevel`), and no level means no logs; before,
/// the connection's `logging/setLevel` applies.
#[allow(deprecated)]
fn request_log_level(request: &RequestContext<RoleServer>, connection: &Arc<AtomicU8>) -> Arc<AtomicU8> {
    match (request.meta.log_level(), request.meta.protocol_version()) {
        (Some(level), _) => Arc::new(AtomicU8::new(level_rank(level))),
        (None, Some(_)) => Arc::new(AtomicU8::new(u8::MAX)),
        (None, None) => connection.clone(),
    }
}

fn context_of(
    request: &RequestContext<RoleServer>,
    default_caller: &str,
    allowed: Allowed,
    min_level: &Arc<AtomicU8>,
) -> Context {
    let admitted = admitted(request);
    let identity = admitted
        .as_ref()
        .map(|a| a.identity.clone())
        .unwrap_or_else(|| Arc::new(Identity::local_user(default_caller.to_string())));
    let trace_id = request
        .meta
        .get_traceparent()
        .and_then(trace_id_of)
        .or_else(|| {
            admitted
                .as_ref()
                .and_then(|a| a.traceparent.as_deref())
                .and_then(trace_id_of)
        })
        .unwrap_or_else(new_trace_id);
    Context {
        client: ClientLink::new(
            request.peer.clone(),
            request.meta.get_progress_token(),
            allowed,
            request_log_level(request, min_level),
        )
        .declaring_elicitation(request.client_capabilities().is_some_and(|c| c.elicitation.is_some())),
        caller: identity.subject.clone(),
        identity,
        request_id: request.id.to_string(),
        trace_id,
        cancel: request.ct.clone(),
        rate_counted: admitted.as_ref().is_some_and(|a| a.rate_counted),
        resources: Default::default(),
        #[cfg(feature = "egress")]
        downstreams: Default::default(),
        #[cfg(feature = "egress")]
        caller_token: admitted.and_then(|a| a.caller_token),
    }
}

/// What the HTTP layer established about a request before the protocol layer saw it.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub identity: Arc<Identity>,
    /// The request was already counted against its rate limit.
    pub rate_counted: bool,
    /// The client's W3C `traceparent` header.
    pub traceparent: Option<String>,
    /// The verified bearer token, for token-exchange downstreams.
    #[cfg(feature = "egress")]
    pub(crate) caller_token: Option<super::egress::CallerToken>,
}

/// The connection a subscription belongs to: the legacy HTTP session, or the
/// stdio process. Stateless HTTP has none, so nothing could be delivered.
fn connection_of(request: &RequestContext<RoleServer>) -> Result<String, McpError> {
    #[cfg(feature = "http")]
    if let Some(parts) = request.extensions.get::<axum::http::request::Parts>() {
        return parts
            .headers
            .get(super::sessions::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|id| format!("session:{id}"))
            .ok_or_else(|| {
                McpError::invalid_request(
                    "resources/subscribe needs a session: this request came without `Mcp-Session-Id`, and a stateless request has no connection to tell of changes",
                    None,
                )
            });
    }
    let _ = request;
    Ok("stdio".into())
}

#[cfg(feature = "http")]
fn admitted(request: &RequestContext<RoleServer>) -> Option<Admitted> {
    request
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Admitted>())
        .cloned()
}

#[cfg(not(feature = "http"))]
fn admitted(_request: &RequestContext<RoleServer>) -> Option<Admitted> {
    None
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if well-formed.
fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    let valid = trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()) && trace != "0".repeat(32);
    valid.then(|| trace.to_ascii_lowercase())
}

/// A fresh trace id for requests that came without one.
fn new_trace_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = std::collections::hash_map::RandomState::new();
    let mut high = state.build_hasher();
    high.write_u64(n);
    let mut low = state.build_hasher();
    low.write_u64(n ^ 0x9e37_79b9_7f4a_7c15);
    format!("{:016x}{:016x}", high.finish(), low.finish())
}

impl McpServer {
    /// The handler context of a request that asks the client nothing.
    fn context_for(&self, request: &RequestContext<RoleServer>) -> Context {
        context_of(
            request,
            &self.inner.default_caller,
            Allowed::default(),
            &self.inner.min_log_level,
        )
    }

    fn visible(&self, scopes: &[String], context: &Context) -> bool {
        self.inner.controls.as_ref().is_none_or(|c| c.visible(scopes, context))
    }
}

impl McpServer {
    fn server_info(&self) -> ServerConfig {
        let surface = &self.inner.surface;
        let server = &surface.server;
        let mut capabilities = serde_json::Map::new();
        if !surface.tools.is_empty() {
            capabilities.insert("tools".into(), json!({}));
        }
        if !surface.resources.is_empty() {
            // `subscribe` only when a resource can be subscribed to; `listChanged` never: the list is the contract's.
            let subscribe = surface.resources.iter().any(|r| r.subscribable);
            capabilities.insert(
                "resources".into(),
                if subscribe {
                    json!({ "subscribe": true })
                } else {
                    json!({})
                },
            );
        }
        if !surface.prompts.is_empty() {
            capabilities.insert("prompts".into(), json!({}));
        }
        if self.has_client_logging() {
            capabilities.insert("logging".into(), json!({}));
        }
        if surface.prompts.iter().any(|p| !p.completions.is_empty()) {
            capabilities.insert("completions".into(), json!({}));
        }
        let capabilities: ServerCapabilities =
            serde_json::from_value(Value::Object(capabilities)).expect("capability objects are well-formed");
        let mut implementation = Implementation::new(server.name.clone(), server.version.clone());
        implementation.title = server.title.clone();
        implementation.description = Some(server.description.clone());
        let mut config = ServerConfig::new(capabilities);
        config.server_info = implementation;
        config.protocol_version = ProtocolVersion::LATEST;
        config.instructions = Some(server.description.clone());
        config
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        // Stateless HTTP asks for it on every request: built once.
        self.inner.info.get_or_init(|| self.server_info()).clone()
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    /// rmcp's HTTP service asks for the called tool to check its `Mcp-Param-*`
    /// headers against the arguments (400, -32020 on a mismatch). Only tools
    /// with header-mapped parameters are given: for the rest there is nothing
    /// to check, and the lookup stays off the hot path.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.header_tools.get(name).cloned()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let ctx = self.context_for(&context);
        let mut tools: Vec<Tool> = self
            .inner
            .listed_tools
            .iter()
            .filter(|(scopes, _)| self.visible(scopes, &ctx))
            .map(|(_, tool)| tool.clone())
            .collect();
        if self.inner.controls.as_ref().is_some_and(|c| c.is_approver(&ctx)) {
            tools.extend(self.inner.listed_builtins.iter().cloned());
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let allowed = self
            .inner
            .tools
            .get(request.name.as_ref())
            .map(|t| allowed_for(&t.spec))
            .unwrap_or_default();
        missing_client_capabilities(&context, allowed)?;
        let ctx = context_of(&context, &self.inner.default_caller, allowed, &self.inner.min_log_level);
        let retry = Retry::of(&context, request.input_responses, request.request_state);
        self.call_in_rounds(&request.name, request.arguments, ctx, retry).await
    }

    #[allow(deprecated)] // legacy-only (2025-11-25), which is what sessions serve
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let connection = connection_of(&context)?;
        let ctx = self.context_for(&context);
        self.subscription(&request.uri, &ctx, "subscribed", || {
            self.inner
                .subscriptions
                .subscribe(&connection, &context.peer, &request.uri)
                .map_err(|TooMany| {
                    McpError::invalid_request(
                        format!(
                            "this connection already holds {} subscriptions; unsubscribe from one first",
                            super::subscriptions::MAX_PER_CONNECTION
                        ),
                        None,
                    )
                })
        })
        .await
    }

    /// 2026-07-28 subscriptions: the URIs of subscribable resources, and no
    /// list changes (the lists are the contract's and do not change while serving).
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        if !self.inner.surface.resources.iter().any(|r| r.subscribable) {
            return None;
        }
        let uris: Vec<String> = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| self.resource_for(uri).is_some_and(|spec| spec.subscribable))
            .take(super::subscriptions::MAX_PER_CONNECTION)
            .cloned()
            .collect();
        let mut accepted = SubscriptionFilter::new();
        accepted.resource_subscriptions = (!uris.is_empty()).then_some(uris);
        Some(accepted)
    }

    /// A `subscriptions/listen` stream: each accepted URI is authorized and
    /// audited as a subscription, then the stream carries its updates until
    /// the client cancels it or the server shuts down.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let request = context.request_context();
        let ctx = self.context_for(request);
        let uris = context.accepted().resource_subscriptions.clone().unwrap_or_default();
        for uri in &uris {
            self.subscription(uri, &ctx, "subscribed", || Ok(())).await?;
        }
        let key = self
            .inner
            .subscriptions
            .listen(context.sink().clone(), uris)
            .map_err(|TooMany| {
                McpError::invalid_request(
                    format!(
                        "this server holds {} listen streams already; retry later",
                        super::subscriptions::MAX_LISTENERS
                    ),
                    None,
                )
            })?;
        context.cancelled().await;
        self.inner.subscriptions.forget(&key);
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let connection = connection_of(&context)?;
        let ctx = self.context_for(&context);
        self.subscription(&request.uri, &ctx, "unsubscribed", || {
            self.inner.subscriptions.unsubscribe(&connection, &request.uri);
            Ok(())
        })
        .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let ctx = self.context_for(&context);
        Ok(ListResourcesResult::with_all_items(visible(
            &self.inner.listed_resources,
            |s| self.visible(s, &ctx),
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let ctx = self.context_for(&context);
        Ok(ListResourceTemplatesResult::with_all_items(visible(
            &self.inner.listed_templates,
            |s| self.visible(s, &ctx),
        )))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let ctx = self.context_for(&context);
        self.read(&request.uri, ctx).await.map(ReadResourceResponse::from)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let ctx = self.context_for(&context);
        Ok(ListPromptsResult::with_all_items(visible(
            &self.inner.listed_prompts,
            |s| self.visible(s, &ctx),
        )))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let allowed = self
            .inner
            .surface
            .prompts
            .iter()
            .find(|p| p.name() == request.name)
            .map(|p| allowed_to_ask(&p.asks_client))
            .unwrap_or_default();
        missing_client_capabilities(&context, allowed)?;
        let ctx = context_of(&context, &self.inner.default_caller, allowed, &self.inner.min_log_level);
        let retry = Retry::of(&context, request.input_responses, request.request_state);
        self.prompt_in_rounds(&request.name, request.arguments, ctx, retry)
            .await
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if !self.has_client_logging() {
            return Err(McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "logging/setLevel",
                None,
            ));
        }
        self.inner
            .min_log_level
            .store(level_rank(request.level), Ordering::Relaxed);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let values: Vec<String> = request
            .r#ref
            .as_prompt_name()
            .and_then(|name| self.inner.surface.prompts.iter().find(|p| p.name() == name))
            .and_then(|p| p.completions.get(&request.argument.name))
            .map(|values| {
                values
                    .iter()
                    .filter(|v| v.starts_with(&request.argument.value))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let values: Vec<String> = values.into_iter().take(CompletionInfo::MAX_VALUES).collect();
        let info = CompletionInfo::new(values).map_err(|e| McpError::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }
}

/// A tool reaches exactly the downstreams its contract lists: through the
/// server's real call path, against a real HTTP server on loopback.
#[cfg(all(test, feature = "egress"))]
mod downstream_binding {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::config::Config;
    use crate::dispatch::BoxFuture;
    use crate::egress::Egress;

    /// Answers every request with `{"ok":true}` until the test ends.
    fn loopback_api() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let body = r#"{"ok":true}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{address}/")
    }

    /// Each tool's handler asks for the downstream named in its arguments.
    struct Caller;

    impl Dispatch for Caller {
        fn call_tool<'a>(
            &'a self,
            _tool: &'a str,
            arguments: Value,
            context: &'a Context,
        ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
            Box::pin(async move {
                let name = arguments["downstream"].as_str().unwrap_or_default().to_string();
                let response = context.downstream(&name)?.get("ping").await?;
                Ok(ToolOutput::Content(vec![ContentBlock::text(
                    response.text()?.to_string(),
                )]))
            })
        }
        fn read_resource<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: Map<String, Value>,
            _: &'a Context,
        ) -> BoxFuture<'a, Result<ResourceBody, ToolError>> {
            Box::pin(async { Err(ToolError::internal("no resources here")) })
        }
        fn get_prompt<'a>(
            &'a self,
            _: &'a str,
            _: BTreeMap<String, String>,
            _: &'a Context,
        ) -> BoxFuture<'a, Result<Vec<PromptMessage>, ToolError>> {
            Box::pin(async { Err(ToolError::internal("no prompts here")) })
        }
    }

    fn tool(name: &str, downstreams: &[&str]) -> Value {
        json!({
            "definition": {
                "name": name,
                "description": "Calls a downstream.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"downstream": {"type": "string", "maxLength": 20}},
                    "required": ["downstream"],
                    "additionalProperties": false
                }
            },
            "hash": "0".repeat(64),
            "effect": "read",
            "scopes": [],
            "data_class": null,
            "approval": {"mode": "none"},
            "audit": {"arguments": true, "results": false},
            "limits": {
                "timeout_ms": 5000, "max_request_bytes": 4096, "max_response_bytes": 65536,
                "rate": {"count": 100, "period_ms": 1000}, "concurrency": 4
            },
            "content": ["text"],
            "progress": false,
            "client_logging": false,
            "asks_client": [],
            "downstreams": downstreams,
        })
    }

    fn downstream(name: &str, base_url: &str) -> Value {
        json!({
            "name": name,
            "base_url": base_url,
            "egress": [],
            "timeout_ms": 5000,
            "credentials": {"kind": "none"},
            "private_network": false,
        })
    }

    fn server() -> McpServer {
        let surface = json!({
            "server": {
                "name": "binding-test", "title": null, "version": "1.0.0",
                "description": "Tests downstream binding.", "env_prefix": "BINDING_TEST",
                "disable": {"env": null, "file": null}
            },
            "http": {"origins": [], "max_request_bytes": 65536},
            "oauth": null,
            "scopes": [],
            "data_classes": {},
            "downstreams": [downstream("tickets", &loopback_api()), downstream("billing", &loopback_api())],
            "tools": [tool("read_ticket", &["tickets"]), tool("no_downstreams", &[])],
            "resources": [],
            "prompts": [],
        });
        let surface = Surface::parse(&surface.to_string()).unwrap();
        let egress = Egress::from_config(&surface.downstreams, &Config::default()).unwrap();
        McpServer::new(surface, Caller).unwrap().with_egress(&egress).unwrap()
    }

    async fn call(server: &McpServer, tool: &str, downstream: &str) -> CallToolResult {
        let mut arguments = Map::new();
        arguments.insert("downstream".into(), json!(downstream));
        server
            .call(tool, Some(arguments), Context::new("tester", "1"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_tool_reaches_only_the_downstreams_it_lists() {
        let server = server();
        let listed = call(&server, "read_ticket", "tickets").await;
        assert_ne!(listed.is_error, Some(true), "{listed:?}");
        assert!(serde_json::to_string(&listed.content).unwrap().contains("ok"));

        // Declared by the contract, but not for this tool: refused before any connection.
        for (tool, name) in [
            ("read_ticket", "billing"),
            ("no_downstreams", "tickets"),
            ("read_ticket", "nowhere"),
        ] {
            let refused = call(&server, tool, name).await;
            assert_eq!(refused.is_error, Some(true), "`{tool}` reached `{name}`: {refused:?}");
        }
    }

    #[test]
    fn a_binding_to_an_undeclared_downstream_fails_at_start() {
        let egress = Egress::from_config(&[], &Config::default()).unwrap();
        let err = egress.bind("read_ticket", &["tickets".into()]).unwrap_err();
        assert!(err.contains("`read_ticket` lists downstream `tickets`"), "{err}");
    }

    #[test]
    fn the_refusal_names_the_tool_the_downstream_and_the_fix() {
        let egress = Egress::from_config(&[], &Config::default()).unwrap();
        let bound = egress.bind("read_ticket", &[]).unwrap();
        let err = bound.get("billing").unwrap_err();
        assert!(
            err.message.contains("`read_ticket` may not call downstream `billing`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("`downstreams`"), "{}", err.message);
    }
}

/// Bound tools through the server's real entry point against a real HTTP
/// server on loopback: what reaches the wire, and what comes back.
#[cfg(all(test, feature = "egress"))]
mod bound_tools {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::dispatch::BoxFuture;
    use crate::egress::Egress;
    use crate::selftest::MustNotRun;

    const TOKEN_ENV: &str = "CHARTER_BOUND_TEST_TOKEN";
    const SERVICE_TOKEN: &str = "canary-service-token-5f1d";

    /// What the API saw: each request's line and headers, raw.
    #[derive(Default)]
    struct Seen {
        requests: Mutex<Vec<String>>,
        flaky: AtomicUsize,
    }

    fn api(seen: Arc<Seen>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut head = String::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        head.push_str(&line);
                    }
                    let mut body = vec![0u8; length];
                    let _ = reader.read_exact(&mut body);
                    head.push_str(&String::from_utf8_lossy(&body));
                    seen.requests.lock().unwrap().push(head.clone());
                    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                    let (status, extra, body): (&str, &str, String) = match path.split('?').next().unwrap() {
                        p if p.starts_with("/echo/") => ("200 OK", "", json!({ "name": p }).to_string()),
                        "/list" => ("200 OK", "", "[1,2,3]".into()),
                        "/problem" => (
                            "422 Unprocessable Entity",
                            "content-type: application/problem+json\r\nx-internal: secret-header\r\n",
                            json!({ "title": "Validation failed", "detail": "tag_name already exists" }).to_string(),
                        ),
                        "/boom" => (
                            "500 Internal Server Error",
                            "",
                            "stack trace\r\n\u{1b}[31m at line 3".into(),
                        ),
                        "/flaky" => {
                            if seen.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                                ("503 Service Unavailable", "retry-after: 0\r\n", String::new())
                            } else {
                                ("200 OK", "", json!({ "name": "second try" }).to_string())
                            }
                        }
                        "/slow" => {
                            std::thread::sleep(Duration::from_secs(3));
                            ("200 OK", "", json!({ "name": "late" }).to_string())
                        }
                        "/big" => ("200 OK", "", json!({ "name": "x".repeat(100_000) }).to_string()),
                        "/redirect" => ("302 Found", "location: http://evil.example/steal\r\n", String::new()),
                        "/bad-shape" => ("200 OK", "", json!({ "name": 5 }).to_string()),
                        _ => ("404 Not Found", "", "{}".into()),
                    };
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        format!("http://{address}/")
    }

    fn tool(name: &str, method: &str, path: &str, field: Option<&str>) -> Value {
        let output = match field {
            Some(f) => json!({ "type": "object", "properties": { f: { "type": "array" } } }),
            None => json!({ "type": "object", "properties": { "name": { "type": "string" } } }),
        };
        let parameters = if path.contains("{id}") {
            json!([
                { "property": "id", "in": "path", "name": "id", "explode": true },
                { "property": "trace", "in": "header", "name": "X-Trace", "explode": true }
            ])
        } else {
            json!([])
        };
        json!({
            "definition": {
                "name": name,
                "description": "A bound operation.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"id": {"type": "string", "maxLength": 200}, "trace": {"type": "string", "maxLength": 100}},
                    "additionalProperties": false
                },
                "outputSchema": output,
            },
            "hash": "0".repeat(64),
            "effect": if method == "GET" { "read" } else { "draft" },
            "scopes": [],
            "data_class": null,
            "approval": {"mode": "none"},
            "audit": {"arguments": true, "results": false},
            "limits": {
                "timeout_ms": 1500, "max_request_bytes": 4096, "max_response_bytes": 65536,
                "rate": {"count": 1000, "period_ms": 1000}, "concurrency": 8
            },
            "content": [],
            "progress": false,
            "client_logging": false,
            "asks_client": [],
            "downstreams": ["api"],
            "binding": {
                "downstream": "api", "method": method, "path": path, "parameters": parameters,
                "success": [200], "response": { "field": field }
            }
        })
    }

    fn server(seen: Arc<Seen>) -> McpServer {
        server_auditing(seen, None)
    }

    /// A surface whose one downstream, `api`, is the loopback API `seen` records.
    fn surface(seen: Arc<Seen>, tools: Vec<Value>) -> Surface {
        // SAFETY: set once, before any thread of this test reads it; no other test reads it.
        unsafe { std::env::set_var(TOKEN_ENV, SERVICE_TOKEN) };
        let surface = json!({
            "server": {
                "name": "bound-test", "title": null, "version": "1.0.0",
                "description": "Tests bound tools.", "env_prefix": "BOUND_TEST",
                "disable": {"env": null, "file": null}
            },
            "http": {"origins": [], "max_request_bytes": 65536},
            "oauth": null,
            "scopes": [],
            "data_classes": {},
            "downstreams": [{
                "name": "api", "base_url": api(seen), "egress": [], "timeout_ms": 5000,
                "credentials": {"kind": "service_token", "secret": {"env": TOKEN_ENV}},
                "private_network": false,
            }],
            "tools": tools,
            "resources": [],
            "prompts": [],
        });
        Surface::parse(&surface.to_string()).unwrap()
    }

    /// [`server`], with every control on and its audit log at `audit` when given.
    fn server_auditing(seen: Arc<Seen>, audit: Option<&std::path::Path>) -> McpServer {
        let surface = surface(
            seen,
            vec![
                tool("echo", "GET", "/echo/{id}", None),
                tool("list", "GET", "/list", Some("items")),
                tool("list_unwrapped", "GET", "/list", None),
                tool("problem", "POST", "/problem", None),
                tool("boom", "GET", "/boom", None),
                tool("flaky_get", "GET", "/flaky", None),
                tool("flaky_post", "POST", "/flaky", None),
                tool("slow", "GET", "/slow", None),
                tool("big", "GET", "/big", None),
                tool("redirect", "GET", "/redirect", None),
                tool("bad_shape", "GET", "/bad-shape", None),
            ],
        );
        let egress = Egress::from_config(&surface.downstreams, &Config::default()).unwrap();
        let controls = audit.map(|path| {
            Controls::new(
                &surface,
                crate::controls::KillSwitch::new(None, None),
                crate::audit::AuditLog::open(path).unwrap(),
            )
        });
        // Bound tools never reach the dispatcher.
        let server = McpServer::new(surface, MustNotRun).unwrap();
        let server = match controls {
            Some(controls) => server.with_controls(controls).unwrap(),
            None => server,
        };
        server.with_egress(&egress).unwrap()
    }

    async fn call(server: &McpServer, tool: &str, arguments: Value) -> (bool, String, Option<Value>) {
        let result = server
            .call(tool, arguments.as_object().cloned(), Context::new("tester", "1"))
            .await
            .unwrap();
        let text = serde_json::to_string(&result.content).unwrap();
        assert!(
            !text.contains(SERVICE_TOKEN),
            "`{tool}` showed the service token: {text}"
        );
        (result.is_error == Some(true), text, result.structured_content)
    }

    /// A hand-written handler that calls `api`'s slow endpoint, and keeps the
    /// deadline it was told.
    struct CallsSlow {
        told: Arc<Mutex<Option<Duration>>>,
    }

    impl Dispatch for CallsSlow {
        fn call_tool<'a>(
            &'a self,
            _: &'a str,
            _: Value,
            context: &'a Context,
        ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
            Box::pin(async move {
                let left = context
                    .deadline()
                    .map(|deadline| deadline.saturating_duration_since(std::time::Instant::now()));
                *self.told.lock().unwrap() = left;
                let response = context.downstream("api")?.get("slow").await?;
                Ok(ToolOutput::Structured(response.json()?))
            })
        }
        fn read_resource<'a>(
            &'a self,
            resource: &'a str,
            uri: &'a str,
            arguments: Map<String, Value>,
            context: &'a Context,
        ) -> BoxFuture<'a, Result<ResourceBody, ToolError>> {
            MustNotRun.read_resource(resource, uri, arguments, context)
        }
        fn get_prompt<'a>(
            &'a self,
            prompt: &'a str,
            arguments: BTreeMap<String, String>,
            context: &'a Context,
        ) -> BoxFuture<'a, Result<Vec<PromptMessage>, ToolError>> {
            MustNotRun.get_prompt(prompt, arguments, context)
        }
    }

    /// A handler is told its call's deadline, and the downstream requests it
    /// makes give up just before it: a slow downstream is reported by name,
    /// as for a bound tool, not as the call's anonymous timeout.
    #[tokio::test]
    async fn a_handlers_downstream_requests_end_by_the_calls_deadline() {
        assert_eq!(
            Context::new("tester", "1").deadline(),
            None,
            "no deadline outside a call"
        );
        let mut handled = tool("handled_slow", "GET", "/slow", None);
        handled.as_object_mut().unwrap().remove("binding");
        let surface = surface(Arc::new(Seen::default()), vec![handled]);
        let egress = Egress::from_config(&surface.downstreams, &Config::default()).unwrap();
        let told = Arc::new(Mutex::new(None));
        let handlers = CallsSlow {
            told: Arc::clone(&told),
        };
        let server = McpServer::new(surface, handlers).unwrap().with_egress(&egress).unwrap();

        let started = std::time::Instant::now();
        let (error, text, _) = call(&server, "handled_slow", json!({})).await;
        assert!(error, "{text}");
        assert!(text.contains("no complete answer to GET /slow within"), "{text}");
        assert!(!text.contains("timed out after"), "{text}");
        // The contract's 1500 ms, not the downstream's 5 s (the API answers after 3 s).
        assert!(
            started.elapsed() < Duration::from_millis(2900),
            "{:?}",
            started.elapsed()
        );
        let told = told.lock().unwrap().expect("the handler was told its deadline");
        assert!(
            told <= Duration::from_millis(1500) && told > Duration::from_millis(1000),
            "{told:?}"
        );
    }

    #[tokio::test]
    async fn bound_calls_hold_their_guarantees_on_the_wire() {
        let seen = Arc::new(Seen::default());
        let server = server(Arc::clone(&seen));

        let (error, text, output) = call(&server, "echo", json!({ "id": "../../admin?x=#f", "trace": "t-1" })).await;
        assert!(!error, "{text}");
        assert_eq!(output.unwrap()["name"], "/echo/..%2F..%2Fadmin%3Fx%3D%23f");
        let (error, _, output) = call(&server, "echo", json!({ "id": "%2e%2e%2f" })).await;
        assert!(!error);
        assert_eq!(output.unwrap()["name"], "/echo/%252e%252e%252f");
        let (error, _, output) = call(&server, "echo", json!({ "id": "https://evil.example/x" })).await;
        assert!(!error);
        assert_eq!(output.unwrap()["name"], "/echo/https%3A%2F%2Fevil.example%2Fx");
        let sent_before = seen.requests.lock().unwrap().len();
        for id in ["..", "."] {
            let (error, text, _) = call(&server, "echo", json!({ "id": id })).await;
            assert!(error && text.contains("`id`"), "{text}");
        }
        let (error, text, _) = call(&server, "echo", json!({ "id": "a", "trace": "x\r\nX-Injected: 1" })).await;
        assert!(
            error && text.contains("control character") && !text.contains("X-Injected"),
            "{text}"
        );
        assert_eq!(
            seen.requests.lock().unwrap().len(),
            sent_before,
            "refused calls send nothing"
        );

        let (error, _, output) = call(&server, "list", json!({})).await;
        assert!(!error);
        assert_eq!(output.unwrap()["items"], json!([1, 2, 3]));
        let (error, text, _) = call(&server, "list_unwrapped", json!({})).await;
        assert!(
            error && text.contains("failed"),
            "a list is not an object output: {text}"
        );

        let (error, text, _) = call(&server, "problem", json!({})).await;
        assert!(
            error && text.contains("422") && text.contains("tag_name already exists"),
            "{text}"
        );
        assert!(
            text.contains("POST /problem") && !text.contains("secret-header"),
            "{text}"
        );
        let (error, text, _) = call(&server, "boom", json!({})).await;
        assert!(error && text.contains("500") && !text.contains('\u{1b}'), "{text}");

        let (error, text, output) = call(&server, "flaky_get", json!({})).await;
        assert!(!error, "a GET is retried after 503: {text}");
        assert_eq!(output.unwrap()["name"], "second try");
        seen.flaky.store(0, Ordering::SeqCst);
        let (error, text, _) = call(&server, "flaky_post", json!({})).await;
        assert!(error && text.contains("503"), "a POST is never retried: {text}");

        let (error, text, _) = call(&server, "slow", json!({})).await;
        assert!(error && text.contains("GET /slow within"), "{text}");
        let (error, text, _) = call(&server, "big", json!({})).await;
        assert!(error, "over max_response: {text}");
        let (error, _, _) = call(&server, "redirect", json!({})).await;
        assert!(error, "a redirect to an undeclared host is refused");
        let (error, text, _) = call(&server, "bad_shape", json!({})).await;
        assert!(error && text.contains("breaks its contract"), "{text}");

        let requests = seen.requests.lock().unwrap();
        assert!(!requests.iter().any(|r| r.contains("X-Injected")));
        for request in requests.iter() {
            assert!(
                request.contains(&format!("authorization: Bearer {SERVICE_TOKEN}")),
                "every request carries the server's own credential: {request}"
            );
        }
        assert!(
            requests.iter().any(|r| r.contains("x-trace: t-1")),
            "the header parameter is sent"
        );
    }

    /// The outcome record names the request a bound tool sent, also when the
    /// call ends before its answer: a cancelled call's future is dropped
    /// mid-request, and the request may still have reached the downstream.
    #[tokio::test]
    async fn the_outcome_record_names_the_request_however_the_call_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let seen = Arc::new(Seen::default());
        let server = server_auditing(Arc::clone(&seen), Some(&path));

        let (error, _, _) = call(&server, "echo", json!({ "id": "a" })).await;
        assert!(!error);
        let (error, _, _) = call(&server, "flaky_post", json!({})).await;
        assert!(error, "the 503 is the answer: a POST is never retried");
        let cancelled = Context::new("tester", "cancelled");
        let cancel = cancelled.cancel.clone();
        let sent_before = seen.requests.lock().unwrap().len();
        let (_, result) = tokio::join!(
            async {
                // Cancel once the request is on the wire, before its answer.
                while seen.requests.lock().unwrap().len() == sent_before {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                cancel.cancel();
            },
            server.call("slow", None, cancelled),
        );
        let text = serde_json::to_string(&result.unwrap().content).unwrap();
        assert!(text.contains("cancel"), "{text}");

        server.controls().unwrap().audit.flush().await;
        let log = std::fs::read_to_string(&path).unwrap();
        let outcomes: Vec<_> = log
            .lines()
            .map(|line| crate::audit::Entry::parse(line).unwrap().record)
            .filter(|r| r.event == crate::audit::Event::Outcome)
            .map(|r| {
                let sent = r.downstream.expect("every bound call's outcome names its request");
                (
                    r.name.unwrap(),
                    r.outcome.unwrap(),
                    sent.method,
                    sent.path,
                    sent.status,
                    sent.attempts,
                )
            })
            .collect();
        let expected = |name: &str, outcome: &str, method: &str, path: &str, status: Option<u16>| {
            (
                name.to_owned(),
                outcome.to_owned(),
                method.to_owned(),
                path.to_owned(),
                status,
                1,
            )
        };
        assert_eq!(
            outcomes,
            [
                expected("echo", "ok", "GET", "/echo/{id}", Some(200)),
                expected("flaky_post", "error", "POST", "/flaky", Some(503)),
                expected("slow", "cancelled", "GET", "/slow", None),
            ]
        );
    }
}
