//! The server side, run in child processes so each server's CPU time can be
//! read from `/proc`: the `off` and `bare` modes here; `on` is the example's
//! own command line (`charter_runtime::cli::run`), see `main.rs`.

use std::sync::Arc;

use charter_runtime::config::Config;
use charter_runtime::dispatch::Context;
use charter_runtime::serve::HttpGate;
use charter_runtime::server::McpServer;
use charter_runtime::surface::Surface;
use policy_search::generated::dispatch::Dispatcher;
use policy_search::generated::handler::Handler as _;
use policy_search::generated::types::SearchPoliciesInput;
use policy_search::handlers::Handlers;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;

use crate::TOOL;

/// `off`: the example's surface and handlers in the charter runtime without
/// controls (no token checks, audit, rate limits or kill switch), served by
/// the same `serve::http` (input and output validation, size and depth caps,
/// Host and Origin checks stay on).
pub async fn off(listen: &str) -> Result<(), String> {
    let surface = Surface::parse(policy_search::generated::SURFACE)?;
    let config = Config::load(None, &surface.server.env_prefix)?;
    init_logging(&config.log.filter);
    let dispatch = Dispatcher::new(Handlers::new(&config)?);
    let server = McpServer::new(surface, dispatch)?.with_default_caller("anonymous".into());
    charter_runtime::serve::http(server, &config, listen, HttpGate::default()).await
}

/// `bare`: the same tool (name, definition, handler code) on a plain rmcp
/// server: rmcp's `StreamableHttpService`, stateless, JSON responses, and no
/// charter runtime in the request path.
pub async fn bare(listen: &str) -> Result<(), String> {
    use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

    let config = Config::default();
    init_logging(&config.log.filter);
    let surface: Value = serde_json::from_str(policy_search::generated::SURFACE).map_err(|e| e.to_string())?;
    let definition = surface["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["definition"]["name"] == TOOL))
        .map(|t| t["definition"].clone())
        .ok_or("the surface has no search_policies")?;
    let tool: Tool = serde_json::from_value(definition).map_err(|e| e.to_string())?;
    let bare = Bare {
        handlers: Arc::new(Handlers::new(&config)?),
        tool: Arc::new(tool),
    };
    let http_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let service = StreamableHttpService::new(
        move || Ok(bare.clone()),
        Arc::new(NeverSessionManager::default()),
        http_config,
    );
    let router = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    // The runtime turns Nagle off too; without it the two would differ in
    // latency for a reason that has nothing to do with the controls.
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    eprintln!("listening on http://{bound}/mcp");
    axum::serve(listener, router).await.map_err(|e| e.to_string())
}

#[derive(Clone)]
struct Bare {
    handlers: Arc<Handlers>,
    tool: Arc<Tool>,
}

impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = Some(Default::default());
        let mut config = ServerConfig::new(capabilities);
        config.server_info = Implementation::new("policy-search-bare", "2.1.0");
        config
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![(*self.tool).clone()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == TOOL).then(|| (*self.tool).clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != TOOL {
            return Err(McpError::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        }
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let input: SearchPoliciesInput =
            serde_json::from_value(arguments).map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        // The handler's signature takes the runtime's context; a detached one costs a few allocations.
        let ctx = Context::new("anonymous", context.id.to_string());
        let result = match self.handlers.search_policies(&ctx, input).await {
            Ok(output) => match serde_json::to_value(output) {
                Ok(value) => CallToolResult::structured(value),
                Err(e) => return Err(McpError::internal_error(e.to_string(), None)),
            },
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.message)]),
        };
        Ok(CallToolResponse::from(result))
    }
}

/// The same log setup in every mode (the CLI's, with its default filter), so logging costs alike.
fn init_logging(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}
