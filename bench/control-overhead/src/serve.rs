//! The server side, run in child processes so each server's CPU time and
//! memory can be read from `/proc`: the `off` and `bare` modes here; `on` is
//! the example's own command line (`charter_runtime::cli::run`), see `main.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use charter_runtime::config::Config;
use charter_runtime::dispatch::{Context, Dispatch};
use charter_runtime::serve::HttpGate;
use charter_runtime::server::McpServer;
use charter_runtime::surface::Surface;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;

use crate::workload::Workload;

/// `off`: the example's surface and handlers in the charter runtime without
/// controls (no token checks, audit, rate limits or kill switch), served by
/// the same `serve::http` (input and output validation, size and depth caps,
/// Host and Origin checks stay on).
pub async fn off(workload: Workload, listen: &str) -> Result<(), String> {
    match workload {
        Workload::Echo => {
            serve_off(workload, listen, |config| {
                echo::handlers::Handlers::new(config).map(echo::generated::dispatch::Dispatcher::new)
            })
            .await
        }
        Workload::PolicySearch => {
            serve_off(workload, listen, |config| {
                policy_search::handlers::Handlers::new(config).map(policy_search::generated::dispatch::Dispatcher::new)
            })
            .await
        }
    }
}

async fn serve_off<D: Dispatch>(
    workload: Workload,
    listen: &str,
    dispatch: impl FnOnce(&Config) -> Result<D, String>,
) -> Result<(), String> {
    let surface = Surface::parse(workload.surface())?;
    let config = Config::load(None, &surface.server.env_prefix)?;
    init_logging(&config.log.filter);
    let server = McpServer::new(surface, dispatch(&config)?)?.with_default_caller("anonymous".into());
    charter_runtime::serve::http(server, &config, listen, HttpGate::default()).await
}

type Answer = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
/// The tool's code as a bare rmcp server would call it: typed input in, typed output out.
type Call = dyn Fn(Value, Context) -> Answer + Send + Sync;

/// `bare`: the same tool (name, definition, handler code) on a plain rmcp
/// server: rmcp's `StreamableHttpService`, stateless, JSON responses, and no
/// charter runtime in the request path.
pub async fn bare(workload: Workload, listen: &str) -> Result<(), String> {
    use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

    let config = Config::default();
    init_logging(&config.log.filter);
    let surface: Value = serde_json::from_str(workload.surface()).map_err(|e| e.to_string())?;
    let definition = surface["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["definition"]["name"] == workload.tool()))
        .map(|t| t["definition"].clone())
        .ok_or_else(|| format!("the surface has no {}", workload.tool()))?;
    let tool: Tool = serde_json::from_value(definition).map_err(|e| e.to_string())?;
    let call = handler(workload, &config)?;
    let bare = Bare {
        name: workload.tool(),
        call,
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

/// The workload's handler behind serde: what a hand-written rmcp tool does.
fn handler(workload: Workload, config: &Config) -> Result<Arc<Call>, String> {
    use echo::generated::handler::Handler as _;
    use policy_search::generated::handler::Handler as _;

    fn typed<I: serde::de::DeserializeOwned>(arguments: Value) -> Result<I, String> {
        serde_json::from_value(arguments).map_err(|e| e.to_string())
    }
    fn value<O: serde::Serialize, E: std::fmt::Display>(output: Result<O, E>) -> Result<Value, String> {
        output
            .map_err(|e| e.to_string())
            .and_then(|o| serde_json::to_value(o).map_err(|e| e.to_string()))
    }
    Ok(match workload {
        Workload::Echo => {
            let handlers = Arc::new(echo::handlers::Handlers::new(config)?);
            Arc::new(move |arguments, ctx| {
                let handlers = handlers.clone();
                Box::pin(async move {
                    let input = typed(arguments)?;
                    value(handlers.echo(&ctx, input).await.map_err(|e| e.message))
                })
            })
        }
        Workload::PolicySearch => {
            let handlers = Arc::new(policy_search::handlers::Handlers::new(config)?);
            Arc::new(move |arguments, ctx| {
                let handlers = handlers.clone();
                Box::pin(async move {
                    let input = typed(arguments)?;
                    value(handlers.search_policies(&ctx, input).await.map_err(|e| e.message))
                })
            })
        }
    })
}

#[derive(Clone)]
struct Bare {
    name: &'static str,
    call: Arc<Call>,
    tool: Arc<Tool>,
}

impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = Some(Default::default());
        let mut config = ServerConfig::new(capabilities);
        config.server_info = Implementation::new("control-overhead-bare", "1.0.0");
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
        (name == self.name).then(|| (*self.tool).clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != self.name {
            return Err(McpError::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        }
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        // The handler's signature takes the runtime's context; a detached one costs a few allocations.
        let ctx = Context::new("anonymous", context.id.to_string());
        let result = match (self.call)(arguments, ctx).await {
            Ok(value) => CallToolResult::structured(value),
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
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
