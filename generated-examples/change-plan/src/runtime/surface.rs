//! The server's surface as the contract fixed it: definitions exactly as
//! clients see them, each with its hash and the limits the runtime enforces.
//! Generated crates embed it as `src/generated/surface.json`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Surface {
    pub server: ServerInfo,
    pub http: HttpDefaults,
    pub tools: Vec<ToolSpec>,
    pub resources: Vec<ResourceSpec>,
    pub prompts: Vec<PromptSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerInfo {
    pub name: String,
    pub title: Option<String>,
    pub version: String,
    pub description: String,
    /// Prefix of the environment variables that override configuration.
    pub env_prefix: String,
}

/// Transport defaults from the contract; configuration may narrow or extend them per environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDefaults {
    pub origins: Vec<String>,
    pub max_request_bytes: u64,
    /// The contract requires OAuth bearer tokens on HTTP.
    pub oauth: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub timeout_ms: u64,
    pub max_request_bytes: u64,
    pub max_response_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// The MCP `Tool` object, verbatim.
    pub definition: Value,
    pub hash: String,
    pub effect: String,
    pub scopes: Vec<String>,
    pub limits: Limits,
    /// For tools without an output schema: the content kinds the handler may return.
    pub content: Vec<String>,
    pub progress: bool,
    pub client_logging: bool,
    /// `sampling`, `elicitation`.
    pub asks_client: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// The MCP `Resource` or `ResourceTemplate` object, verbatim.
    pub definition: Value,
    pub hash: String,
    /// For templates: each variable's JSON Schema.
    pub variables: Option<BTreeMap<String, Value>>,
    pub scopes: Vec<String>,
    pub limits: Limits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// The MCP `Prompt` object, verbatim.
    pub definition: Value,
    pub hash: String,
    /// The message text; empty when `handler` builds the messages.
    pub text: String,
    pub handler: bool,
    /// Longest accepted value per argument, in characters.
    pub max_lengths: BTreeMap<String, u64>,
    /// Values offered for completion, per argument.
    pub completions: BTreeMap<String, Vec<String>>,
    pub scopes: Vec<String>,
}

impl Surface {
    pub fn parse(json: &str) -> Result<Surface, String> {
        serde_json::from_str(json).map_err(|e| format!("the embedded surface is malformed: {e}"))
    }
}

impl ToolSpec {
    pub fn name(&self) -> &str {
        self.definition["name"].as_str().unwrap_or_default()
    }
}

impl ResourceSpec {
    pub fn name(&self) -> &str {
        self.definition["name"].as_str().unwrap_or_default()
    }
    pub fn uri_template(&self) -> Option<&str> {
        self.definition["uriTemplate"].as_str()
    }
    pub fn uri(&self) -> Option<&str> {
        self.definition["uri"].as_str()
    }
    pub fn mime_type(&self) -> Option<&str> {
        self.definition["mimeType"].as_str()
    }
}

impl PromptSpec {
    pub fn name(&self) -> &str {
        self.definition["name"].as_str().unwrap_or_default()
    }
}
