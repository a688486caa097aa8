//! A hand-written MCP server on bare rmcp: one `echo` tool over stateless
//! Streamable HTTP with JSON responses. What a team would write without
//! charter; scripts/bench-build compares a generated server's build and
//! binary against it.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Echo {
    tool: Arc<Tool>,
}

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = Some(Default::default());
        let mut config = ServerConfig::new(capabilities);
        config.server_info = Implementation::new("bare-rmcp-hello", "0.1.0");
        config
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![(*self.tool).clone()]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != "echo" {
            return Err(McpError::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        }
        let text = match request.arguments.as_ref().and_then(|a| a.get("text")) {
            Some(Value::String(text)) => text.clone(),
            _ => {
                return Ok(CallToolResponse::from(CallToolResult::error(vec![ContentBlock::text(
                    "`text` must be a string",
                )])));
            }
        };
        let length = text.chars().count();
        Ok(CallToolResponse::from(CallToolResult::structured(
            json!({ "text": text, "length": length }),
        )))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tool: Tool = serde_json::from_value(json!({
        "name": "echo",
        "description": "Returns the given text unchanged, with its length in characters.",
        "inputSchema": {
            "type": "object",
            "required": ["text"],
            "properties": { "text": { "type": "string", "minLength": 1, "maxLength": 1000 } },
        },
    }))?;
    let echo = Echo { tool: Arc::new(tool) };
    let service = StreamableHttpService::new(
        move || Ok(echo.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    );
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("listening on http://{}/mcp", listener.local_addr()?);
    axum::serve(listener, axum::Router::new().route_service("/mcp", service))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
