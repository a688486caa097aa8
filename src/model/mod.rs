//! Stage 2, LOWER + VALIDATE: the model (IR) every later stage reads.
//!
//! The model is the contract made exact: references resolved, units parsed,
//! defaults applied, schemas normalized (closed by default), effects mapped to
//! MCP tool annotations, and each name kept both as written and in the Rust
//! forms the generator needs. Each element remembers its JSON pointer in the
//! contract so lint and diff findings point at the right line.

mod lower;
pub mod names;
pub mod schema;
pub mod units;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use crate::contract::raw::{
    ApprovalMode, ClientRequest, ContentKind, Effect, Handler, Redaction, Sensitivity, Status, Transport,
};
pub use charter_surface::{BoundParameter, HttpMethod, ParameterLocation};
pub use lower::{ASYMMETRIC_ALGORITHMS, is_loopback, lower, placeholders};
pub use names::Name;
pub use schema::{JsonType, SchemaNode, SchemaTree};
pub use units::Rate;

/// A validated contract.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub server: Server,
    pub data_classes: Vec<DataClass>,
    pub access: Access,
    pub downstreams: Vec<Downstream>,
    pub tools: Vec<Tool>,
    pub resources: Vec<Resource>,
    pub prompts: Vec<Prompt>,
    /// The contract-wide defaults, already merged over charter's.
    pub limits: Limits,
    pub audit: Audit,
    pub deploy: Deploy,
    /// Crates the hand-written handlers use.
    pub handler_dependencies: Vec<HandlerDependency>,
    /// Rules suppressed for the whole contract.
    pub suppressions: Vec<Suppression>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    /// As written: lowercase letters, digits and dashes.
    pub name: Name,
    pub title: Option<String>,
    #[serde(serialize_with = "units::display")]
    pub version: semver::Version,
    pub description: String,
    pub owner: Option<Owner>,
    pub status: Status,
    pub review: Option<Review>,
    pub retirement: Retirement,
}

#[derive(Debug, Clone, Serialize)]
pub struct Owner {
    pub team: String,
    pub contact: String,
    pub escalation: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Review {
    #[serde(serialize_with = "units::display_opt")]
    pub last: Option<jiff::civil::Date>,
    #[serde(serialize_with = "units::display")]
    pub next: jiff::civil::Date,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retirement {
    pub disable: Option<DisablePath>,
    pub when: Option<String>,
    pub replacement: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DisablePath {
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataClass {
    pub name: String,
    pub description: String,
    pub sensitivity: Sensitivity,
    pub logs: Redaction,
    pub pointer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Access {
    pub transports: Vec<Transport>,
    pub oauth: Option<OAuth>,
    pub origins: Vec<String>,
    pub scopes: Vec<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Sessions>,
}

/// Legacy Streamable HTTP sessions, bounded per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sessions {
    pub max: u32,
    #[serde(serialize_with = "units::duration")]
    pub idle: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct OAuth {
    pub issuer: String,
    pub audience: String,
    pub jwks_uri: Option<String>,
    pub algorithms: Vec<String>,
    #[serde(serialize_with = "units::duration")]
    pub leeway: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scope {
    pub name: String,
    pub description: String,
    pub pointer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Downstream {
    pub name: Name,
    pub description: String,
    pub base_url: String,
    pub egress: Vec<EgressHost>,
    #[serde(serialize_with = "units::duration_opt")]
    pub timeout: Option<Duration>,
    pub credentials: Credentials,
    /// The permissions the credential carries downstream.
    pub credential_scopes: Vec<String>,
    /// Declared names may resolve to private addresses (shown only when set).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub private_network: bool,
    pub suppressions: Vec<Suppression>,
    pub pointer: String,
}

/// A host the server may reach, with its port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EgressHost {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for EgressHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The server's own credentials for a downstream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Credentials {
    /// The downstream needs none.
    None,
    ServiceToken {
        secret: SecretRef,
    },
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: SecretRef,
    },
    TokenExchange {
        token_url: String,
        audience: String,
        client_id: String,
        client_secret: SecretRef,
    },
    /// The caller's token forwarded: kept in the model only so lint can refuse it by rule.
    CallerToken,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    Env(String),
    File(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: Name,
    pub title: Option<String>,
    pub description: String,
    pub effect: Effect,
    pub annotations: Annotations,
    pub scopes: Vec<String>,
    pub data_class: Option<String>,
    pub downstreams: Vec<String>,
    pub input: Schema,
    pub output: Option<Schema>,
    pub limits: Limits,
    pub approval: Approval,
    pub audit: ToolAudit,
    /// For tools without `output`: the content kinds the handler may return.
    pub content: Vec<ContentKind>,
    pub progress: bool,
    pub client_logging: bool,
    pub asks_client: Vec<ClientRequest>,
    /// `Some` for a tool the team implements; `None` for a bound tool.
    pub handler: Option<Handler>,
    /// The downstream HTTP operation a bound tool calls.
    pub binding: Option<Binding>,
    pub suppressions: Vec<Suppression>,
    pub pointer: String,
}

impl Tool {
    /// The generated server makes this tool's call itself: there is no handler method.
    pub fn is_bound(&self) -> bool {
        self.binding.is_some()
    }
}

/// A tool's call to one operation of a downstream HTTP API.
#[derive(Debug, Clone, Serialize)]
pub struct Binding {
    pub downstream: String,
    pub method: HttpMethod,
    pub path: String,
    /// In the order the contract lists them.
    pub parameters: Vec<BoundParameter>,
    pub success: Vec<u16>,
    /// The output property holding the response body, when the body is not the output itself.
    pub response_field: Option<String>,
    pub pointer: String,
}

impl Binding {
    /// `{name}` variables of the path template, in order.
    pub fn path_variables(&self) -> Vec<&str> {
        path_variables(&self.path).unwrap_or_default()
    }
}

/// The `{name}` variables of a path template, or what is wrong with it.
pub fn path_variables(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!(
                "`}}` at byte {} closes nothing",
                template.len() - rest.len() + open
            ));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| "a `{` is never closed".to_string())?;
        let name = &after[..close];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(format!(
                "`{{{name}}}` is not a path variable: use letters, digits, `_`, `-` or `.`"
            ));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// MCP tool annotations, derived from the effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    pub read_only_hint: bool,
    pub destructive_hint: bool,
    pub idempotent_hint: bool,
    pub open_world_hint: bool,
}

/// A JSON Schema 2020-12 from the contract, normalized: objects are closed
/// unless the contract opened them explicitly.
#[derive(Debug, Clone, Serialize)]
pub struct Schema {
    /// The normalized JSON exactly as clients receive it and the runtime validates with it.
    pub value: Value,
    /// The same schema in typed form, references resolved: what lint and the generator read.
    #[serde(skip)]
    pub tree: SchemaTree,
    pub pointer: String,
}

impl Schema {
    pub fn new(value: Value, pointer: String) -> Schema {
        let tree = SchemaTree::read(&value);
        Schema { value, tree, pointer }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub rate: Rate,
    #[serde(serialize_with = "units::duration")]
    pub timeout: Duration,
    pub concurrency: u32,
    pub max_request_bytes: u64,
    pub max_response_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Approval {
    None,
    /// The caller confirms the exact operation through the client.
    User,
    /// A second person holding `scope` approves the stored operation before `expires` passes.
    Reviewer {
        scope: String,
        #[serde(serialize_with = "units::duration")]
        expires: Duration,
    },
}

impl Approval {
    pub fn mode(&self) -> ApprovalMode {
        match self {
            Approval::None => ApprovalMode::None,
            Approval::User => ApprovalMode::User,
            Approval::Reviewer { .. } => ApprovalMode::Reviewer,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ToolAudit {
    pub arguments: bool,
    pub results: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub name: Name,
    pub title: Option<String>,
    pub description: String,
    pub target: ResourceTarget,
    pub mime_type: String,
    pub schema: Option<Schema>,
    pub scopes: Vec<String>,
    pub data_class: Option<String>,
    pub downstreams: Vec<String>,
    pub limits: Limits,
    pub handler: Handler,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub subscribable: bool,
    pub suppressions: Vec<Suppression>,
    pub pointer: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceTarget {
    Static {
        uri: String,
    },
    Template {
        uri_template: String,
        variables: Vec<TemplateVariable>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateVariable {
    pub name: Name,
    pub schema: Schema,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prompt {
    pub name: Name,
    pub title: Option<String>,
    pub description: String,
    #[serde(serialize_with = "units::display")]
    pub version: semver::Version,
    pub arguments: Vec<PromptArgument>,
    /// The message text; empty when a handler builds the messages.
    pub text: String,
    pub handler: Option<Handler>,
    /// What the handler may ask the client (never set without a handler).
    pub asks_client: Vec<ClientRequest>,
    pub resources: Vec<String>,
    pub scopes: Vec<String>,
    pub data_class: Option<String>,
    pub suppressions: Vec<Suppression>,
    pub pointer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromptArgument {
    pub name: Name,
    pub description: String,
    pub required: bool,
    pub max_length: u64,
    pub completions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub arguments: bool,
    pub results: bool,
    #[serde(serialize_with = "units::duration")]
    pub retention: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deploy {
    pub namespace: String,
    pub replicas_min: u32,
    pub replicas_max: u32,
    pub cpu: String,
    pub memory: String,
    /// Addresses of the hosts the server reaches, by host (see [`Deploy::network_hosts`]).
    pub egress_cidrs: BTreeMap<String, Vec<String>>,
    pub monitoring_namespace: String,
}

/// A crate the handlers use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandlerDependency {
    pub name: String,
    pub version: String,
    pub features: Vec<String>,
    pub default_features: bool,
    pub pointer: String,
}

/// A rule switched off with a reason, where the contract wrote it.
#[derive(Debug, Clone, Serialize)]
pub struct Suppression {
    pub rule: String,
    pub reason: String,
    pub pointer: String,
}

impl Model {
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name.original == name)
    }

    pub fn data_class(&self, name: &str) -> Option<&DataClass> {
        self.data_classes.iter().find(|c| c.name == name)
    }

    pub fn downstream(&self, name: &str) -> Option<&Downstream> {
        self.downstreams.iter().find(|d| d.name.original == name)
    }
}

/// A host the deployed server must reach over the network, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NetworkHost {
    pub host: String,
    pub port: u16,
    /// `downstream NAME` or `identity provider`.
    pub purpose: String,
}

impl Model {
    /// Every host the server reaches: each downstream's egress hosts and the
    /// identity provider (issuer and JWKS), in a stable order.
    pub fn network_hosts(&self) -> Vec<NetworkHost> {
        let mut hosts = Vec::new();
        for d in &self.downstreams {
            for e in &d.egress {
                hosts.push(NetworkHost {
                    host: e.host.clone(),
                    port: e.port,
                    purpose: format!("downstream {}", d.name.original),
                });
            }
        }
        if let Some(oauth) = &self.access.oauth {
            let urls = std::iter::once(oauth.issuer.as_str()).chain(oauth.jwks_uri.as_deref());
            for url in urls.filter_map(|u| url::Url::parse(u).ok()) {
                if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
                    hosts.push(NetworkHost {
                        host: host.to_string(),
                        port,
                        purpose: "identity provider".into(),
                    });
                }
            }
        }
        hosts.sort();
        hosts.dedup_by(|a, b| a.host == b.host && a.port == b.port);
        hosts
    }
}
