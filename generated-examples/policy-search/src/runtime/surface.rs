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
    /// The contract requires OAuth bearer tokens on HTTP.
    pub oauth: Option<OAuthSpec>,
    /// Every scope the contract defines.
    pub scopes: Vec<String>,
    /// How each data class appears in logs: `full`, `hash`, `redact` or `omit`.
    pub data_classes: BTreeMap<String, String>,
    /// Downstream systems, for the egress control (raw, read by `egress` when built in).
    pub downstreams: Vec<Value>,
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
    /// The contract's kill switch.
    pub disable: DisableSpec,
}

/// Where the contract's kill switch is: an environment variable read at
/// start-up, and a file watched while running.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableSpec {
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    pub issuer: String,
    /// This server's resource URL: tokens must name it in `aud`.
    pub audience: String,
    pub jwks_uri: Option<String>,
    pub algorithms: Vec<String>,
    pub leeway_ms: u64,
}

/// Transport defaults from the contract; configuration may narrow or extend them per environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDefaults {
    pub origins: Vec<String>,
    pub max_request_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub timeout_ms: u64,
    pub max_request_bytes: u64,
    pub max_response_bytes: u64,
    /// Calls allowed per caller within `period_ms`.
    pub rate: Rate,
    /// Calls that may run at once (all callers).
    pub concurrency: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub count: u32,
    pub period_ms: u64,
}

/// Who must approve a `write` before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "mode")]
pub enum ApprovalSpec {
    None,
    /// The calling user confirms the exact operation through the client (elicitation).
    User,
    /// A second person holding `scope` approves the stored operation within `expires_ms`.
    Reviewer {
        scope: String,
        expires_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    pub arguments: bool,
    pub results: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// The MCP `Tool` object, verbatim.
    pub definition: Value,
    pub hash: String,
    pub effect: String,
    pub scopes: Vec<String>,
    pub data_class: Option<String>,
    pub approval: ApprovalSpec,
    pub audit: AuditSpec,
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
    pub data_class: Option<String>,
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
    pub data_class: Option<String>,
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
