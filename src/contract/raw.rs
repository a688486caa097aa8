//! The contract language, version 1, as it is written in YAML.
//!
//! These types mirror the document one to one. They are deliberately plain:
//! no cross-references are resolved and no defaults are applied here; that is
//! the model's job (`crate::model`). The same types derive the JSON Schema
//! that `charter schema` prints and that `charter check` validates every
//! document against before decoding, so the schema can never drift from what
//! the parser accepts.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A charter contract: the reviewed description of one MCP server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "charter contract, version 1")]
pub struct Contract {
    /// The contract language version. Always `1` for this release.
    #[schemars(range(min = 1, max = 1))]
    pub charter: u32,
    /// Identity, ownership, lifecycle and retirement of the server.
    pub server: Server,
    /// The kinds of data the server handles and how each is treated in logs.
    #[serde(default)]
    pub data_classes: IndexMap<String, DataClass>,
    /// Who may connect, over which transports, and with which scopes.
    pub access: Access,
    /// The systems the server calls, with the server's own credentials for them.
    #[serde(default)]
    pub downstreams: IndexMap<String, Downstream>,
    /// Tools: operations the model may call.
    #[serde(default)]
    pub tools: IndexMap<String, Tool>,
    /// Resources: data the host may read, at a fixed URI or a URI template.
    #[serde(default)]
    pub resources: IndexMap<String, Resource>,
    /// Prompts: versioned text templates the user may pick.
    #[serde(default)]
    pub prompts: IndexMap<String, Prompt>,
    /// Default limits for every tool, resource and prompt.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// How calls are recorded.
    #[serde(default)]
    pub audit: Option<Audit>,
    /// How the server is deployed.
    #[serde(default)]
    pub deploy: Option<Deploy>,
    /// What the team's hand-written handlers need beyond the generated code.
    #[serde(default)]
    pub handlers: Option<Handlers>,
    /// Shared JSON Schema definitions, referred to from any schema as `#/$defs/Name`.
    #[serde(default, rename = "$defs")]
    pub defs: IndexMap<String, Value>,
    /// Production rules switched off for the whole contract, each with a written reason.
    #[serde(default)]
    pub suppress: Vec<Suppression>,
}

/// Identity, ownership, lifecycle and retirement.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// The server's name: lowercase letters, digits and dashes, e.g. `release-notes`.
    pub name: String,
    /// A human-readable title shown by hosts.
    #[serde(default)]
    pub title: Option<String>,
    /// The contract's semantic version, e.g. `1.4.0`. `charter diff` says which bump a change needs.
    pub version: String,
    /// What the server is for, in one or two sentences a reviewer can check.
    pub description: String,
    /// The team accountable for code, scopes, incidents and deprecation.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// Lifecycle status.
    pub status: Status,
    /// When the contract was last reviewed and when it must be reviewed again.
    #[serde(default)]
    pub review: Option<Review>,
    /// How the server is turned off, and when it should be retired.
    #[serde(default)]
    pub retirement: Option<Retirement>,
}

/// The accountable team.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// Team name, e.g. `developer-experience`.
    pub team: String,
    /// How to reach the team: an email address, a chat channel or a URL.
    pub contact: String,
    /// Where incidents go, e.g. `pagerduty:devex` or an on-call URL.
    #[serde(default)]
    pub escalation: Option<String>,
}

/// Lifecycle status of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Local or sandbox use only; production rules report warnings where they would fail a production server.
    Experimental,
    /// Used by a limited audience ahead of production.
    Preview,
    /// Serving real users and real data.
    Production,
    /// Still running; a replacement exists and new clients should not connect.
    Deprecated,
}

/// Review dates, as `YYYY-MM-DD`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// The date of the last approval.
    #[serde(default)]
    pub last: Option<String>,
    /// The date by which the contract must be reviewed again.
    pub next: String,
}

/// Retirement: the disable path and the conditions for retiring the server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retirement {
    /// The kill switch: where operators flip it without a deploy.
    #[serde(default)]
    pub disable: Option<DisablePath>,
    /// The conditions under which the server is disabled, replaced or narrowed.
    #[serde(default)]
    pub when: Option<String>,
    /// What replaces the server once retired.
    #[serde(default)]
    pub replacement: Option<String>,
}

/// A kill switch. Either source disables the server while it is set; both may be given.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisablePath {
    /// An environment variable; the server refuses calls while it is set to a non-empty value other than `0` or `false`.
    #[serde(default)]
    pub env: Option<String>,
    /// A file path; the server refuses calls while the file exists. Checked on every call, no restart needed.
    #[serde(default)]
    pub file: Option<String>,
}

/// A class of data and how it is treated.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataClass {
    /// What data belongs to the class.
    pub description: String,
    /// How sensitive the data is.
    pub sensitivity: Sensitivity,
    /// How values of this class appear in audit records and logs.
    pub logs: Redaction,
}

/// Sensitivity levels, from least to most sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    /// Published or publishable.
    Public,
    /// Internal to the organisation.
    Internal,
    /// Personal data, customer data, credentials-adjacent data: need-to-know.
    Confidential,
    /// Regulated or secret data: the narrowest access.
    Restricted,
}

/// How values appear in audit records and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Redaction {
    /// Logged as given.
    Full,
    /// Replaced by a SHA-256 digest, so equal values can be correlated without being revealed.
    Hash,
    /// Replaced by `[redacted]` with the value's type and length.
    Redact,
    /// Left out of the record entirely.
    Omit,
}

/// Who may connect and with which rights.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// The transports the server offers.
    pub transports: Vec<Transport>,
    /// OAuth 2.1 resource-server settings for HTTP. Values that differ per environment are defaults here.
    #[serde(default)]
    pub oauth: Option<OAuth>,
    /// Browser origins allowed to connect over HTTP (default: none, so only non-browser clients).
    #[serde(default)]
    pub origins: Vec<String>,
    /// The scopes the server defines, each with its meaning.
    #[serde(default)]
    pub scopes: IndexMap<String, String>,
    /// Legacy (2025-11-25) Streamable HTTP sessions, for clients that need them (resource
    /// subscriptions, the standalone GET stream). Off by default: HTTP is served statelessly.
    #[serde(default)]
    pub sessions: Option<Sessions>,
}

/// Opt-in legacy sessions on Streamable HTTP, bounded per process.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    /// Sessions one process holds at once, 1 to 100000. Default 1000.
    #[serde(default)]
    pub max: Option<u32>,
    /// A session with no request for this long is closed, e.g. `5m`. Default `5m`, at most `24h`.
    #[serde(default)]
    pub idle: Option<String>,
}

/// A transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Standard input and output, for a local client; runs as the local OS user.
    Stdio,
    /// Streamable HTTP, for remote clients; requires `oauth` in production.
    Http,
}

/// OAuth 2.1 resource-server policy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// The authorization server's issuer identifier (an `https` URL).
    pub issuer: String,
    /// This server's resource URL: tokens must name it as their audience.
    pub audience: String,
    /// Where the signing keys are published (default: discovered from the issuer's metadata).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Accepted signature algorithms; asymmetric only (default: `[RS256, ES256]`).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, e.g. `30s` (default `30s`, at most `5m`).
    #[serde(default)]
    pub leeway: Option<String>,
}

/// A system the server calls.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Downstream {
    /// What the system is.
    pub description: String,
    /// The default base URL (set per environment in the runtime configuration).
    pub base_url: String,
    /// The hosts the server may reach for this system, as `host` or `host:port`. Nothing else is reachable.
    #[serde(default)]
    pub egress: Vec<String>,
    /// Timeout for one downstream request, e.g. `10s` (default: the tool's timeout).
    #[serde(default)]
    pub timeout: Option<String>,
    /// The server's own credentials for the system: never a secret value, never the caller's token.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// The egress hosts may resolve to private addresses (RFC 1918, ULA, CGNAT): for a system inside
    /// the cluster or VPC. Loopback, link-local and cloud metadata addresses stay refused unless an
    /// egress entry names the address itself.
    #[serde(default)]
    pub private_network: bool,
    /// Production rules switched off for this downstream, each with a written reason.
    #[serde(default)]
    pub suppress: Vec<Suppression>,
}

/// The server's own credentials for a downstream. Exactly one kind is given.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// A service token read from a secret reference and sent as a bearer token.
    #[serde(default)]
    pub service_token: Option<SecretRef>,
    /// OAuth 2.0 client credentials: the server authenticates as itself.
    #[serde(default)]
    pub client_credentials: Option<ClientCredentials>,
    /// RFC 8693 token exchange: the caller's token is exchanged for one issued for this downstream's audience.
    #[serde(default)]
    pub token_exchange: Option<TokenExchange>,
    /// Forward the caller's own token. Always refused: it is written here only so the refusal can be explained.
    #[serde(default)]
    pub caller_token: Option<bool>,
    /// The permissions the credential carries in the downstream system, e.g. `pull_requests:read`.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Where a secret comes from at run time. The value itself never sits in the contract.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// An environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the secret, e.g. a mounted Kubernetes secret.
    #[serde(default)]
    pub file: Option<String>,
}

/// OAuth 2.0 client-credentials settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentials {
    /// The token endpoint.
    pub token_url: String,
    /// The client id (not a secret).
    pub client_id: String,
    /// Where the client secret comes from.
    pub client_secret: SecretRef,
}

/// RFC 8693 token-exchange settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenExchange {
    /// The token endpoint that performs the exchange.
    pub token_url: String,
    /// The audience the exchanged token is issued for.
    pub audience: String,
    /// The client id the server authenticates with.
    pub client_id: String,
    /// Where the client secret comes from.
    pub client_secret: SecretRef,
}

/// What a tool does to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Reads only; no state changes anywhere.
    Read,
    /// Creates a draft or proposal that a person reviews before anything durable happens.
    Draft,
    /// Changes durable state; needs human approval.
    Write,
}

impl Effect {
    /// The name the contract uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Draft => "draft",
            Effect::Write => "write",
        }
    }
}

/// A tool.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{ "required": ["handler"] }, { "required": ["binding"] }]))]
pub struct Tool {
    /// A human-readable title shown by hosts.
    #[serde(default)]
    pub title: Option<String>,
    /// What the tool does, for the model and for reviewers. Descriptive, never instructions to the model.
    pub description: String,
    /// What the tool does to the world.
    pub effect: Effect,
    /// For `write`: the change can be undone, so the tool is not marked destructive.
    #[serde(default)]
    pub reversible: Option<bool>,
    /// Calling the tool twice with the same input has the same effect as once (default: true for `read`).
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// Scopes the caller must hold (all of them).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The most sensitive class of data the tool's input or output carries.
    #[serde(default)]
    pub data_class: Option<String>,
    /// The downstreams the tool calls.
    #[serde(default)]
    pub downstreams: Vec<String>,
    /// The input: a JSON Schema 2020-12 object schema, closed unless it says otherwise.
    pub input: Value,
    /// The structured output: a JSON Schema 2020-12 object schema.
    #[serde(default)]
    pub output: Option<Value>,
    /// Limits for this tool, over the contract's defaults.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Human approval; required for `write`.
    #[serde(default)]
    pub approval: Option<Approval>,
    /// Audit settings for this tool, over the contract's defaults.
    #[serde(default)]
    pub audit: Option<ToolAudit>,
    /// For a tool without `output`: the kinds of content it returns (default `[text]`). Binary
    /// kinds are declared so reviewers see them; anything else a handler returns is refused.
    #[serde(default)]
    pub content: Option<Vec<ContentKind>>,
    /// The tool reports progress to the client while it runs.
    #[serde(default)]
    pub progress: Option<bool>,
    /// The tool sends log messages to the client while it runs.
    #[serde(default)]
    pub client_logging: Option<bool>,
    /// Requests the tool sends to the client while it runs (legacy protocol): `sampling`, `elicitation`.
    #[serde(default)]
    pub asks_client: Vec<ClientRequest>,
    /// How the tool is implemented: `rust` (a method the team writes). A tool with a `binding`
    /// has no handler.
    #[serde(default)]
    pub handler: Option<Handler>,
    /// The HTTP operation of a downstream this tool calls; the generated server makes the call,
    /// so nothing is written by hand. Exactly one of `handler` and `binding` is given.
    #[serde(default)]
    pub binding: Option<Binding>,
    /// Production rules switched off for this tool, each with a written reason.
    #[serde(default)]
    pub suppress: Vec<Suppression>,
}

/// A tool bound to one operation of a downstream HTTP API, e.g. as `charter import openapi`
/// writes it. The contract holds everything the call needs; the OpenAPI document is not read again.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The downstream called; it must be listed in the tool's `downstreams`.
    pub downstream: String,
    /// The HTTP method. Only `GET` and `HEAD` may be bound by a `read` tool.
    pub method: HttpMethod,
    /// The path relative to the downstream's base URL, with `{name}` for each path parameter,
    /// e.g. `/repos/{owner}/{repo}/pulls`.
    pub path: String,
    /// Where each input property goes: `path`, `query`, `header`, `cookie` or `body`, or
    /// `{ in: LOCATION, name: WIRE_NAME, explode: BOOL }` when the name on the wire differs.
    /// Every input property is listed exactly once.
    #[serde(default)]
    pub parameters: IndexMap<String, BoundParameter>,
    /// The 2xx statuses that mean success, e.g. `[200]` or `[201]`.
    pub success: Vec<u16>,
    /// How the response body becomes the structured output.
    #[serde(default)]
    pub response: Option<BindingResponse>,
}

/// An HTTP method a binding may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

/// Where one input property goes in the request.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum BoundParameter {
    /// The location; the name on the wire is the property's name.
    Location(ParameterLocation),
    Detailed(DetailedParameter),
}

/// A bound parameter whose wire name differs from its property, or whose array encoding is not
/// the default.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailedParameter {
    /// The location: `path`, `query`, `header`, `cookie` or `body`.
    #[serde(rename = "in")]
    pub location: ParameterLocation,
    /// The name on the wire (default: the property's name).
    #[serde(default)]
    pub name: Option<String>,
    /// For an array in the query: one `name=item` pair per item (`true`, the default) or one
    /// pair with the items joined by commas (`false`).
    #[serde(default)]
    pub explode: Option<bool>,
}

/// Where a bound parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParameterLocation {
    Path,
    Query,
    Header,
    Cookie,
    /// A field of the JSON request body.
    Body,
}

/// How a successful response becomes the tool's structured output.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingResponse {
    /// The output property that holds the decoded body, for a body that is not an object (e.g.
    /// a list). Without it, the body is the output object itself.
    #[serde(default)]
    pub field: Option<String>,
}

/// A kind of MCP content block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    Text,
    Image,
    Audio,
    /// An embedded resource.
    Resource,
    ResourceLink,
}

/// A request a tool may send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientRequest {
    /// Ask the client's model for a completion.
    Sampling,
    /// Ask the user for input.
    Elicitation,
    /// Ask which filesystem roots the client exposes.
    Roots,
}

/// How a tool, resource or prompt is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Handler {
    /// A method of the generated handler trait, written by the team.
    Rust,
}

/// Human approval for a state change.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Who approves.
    pub mode: ApprovalMode,
    /// For `reviewer`: the scope an approver must hold. Must be one of the contract's scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// For `reviewer`: how long a pending operation waits for approval, e.g. `24h` (default `24h`).
    #[serde(default)]
    pub expires: Option<String>,
}

/// Approval modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// No approval. Refused for `write` effects unless suppressed with a reason.
    None,
    /// The calling user confirms the exact operation through the client (elicitation).
    User,
    /// A second person holding the approval scope approves the stored operation.
    Reviewer,
}

/// A resource: a fixed URI or a URI template.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// A human-readable title shown by hosts.
    #[serde(default)]
    pub title: Option<String>,
    /// What the resource holds.
    pub description: String,
    /// A fixed URI, e.g. `policy://approved/index`. Give `uri` or `uri_template`.
    #[serde(default)]
    pub uri: Option<String>,
    /// An RFC 6570 level-1 template, e.g. `policy://approved/{policy_id}`; each variable is typed in `parameters`.
    #[serde(default)]
    pub uri_template: Option<String>,
    /// A schema for each template variable (strings, so `type: string` with a pattern or enum).
    #[serde(default)]
    pub parameters: IndexMap<String, Value>,
    /// The MIME type of the contents, e.g. `application/json` or `text/markdown`.
    pub mime_type: String,
    /// For JSON contents: their schema.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Scopes the caller must hold.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The most sensitive class of data the resource carries.
    #[serde(default)]
    pub data_class: Option<String>,
    /// The downstreams read to produce the resource.
    #[serde(default)]
    pub downstreams: Vec<String>,
    /// Limits for this resource, over the contract's defaults.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// How the resource is implemented.
    pub handler: Handler,
    /// Clients may subscribe to it and are notified when its handler reports a change (default false).
    #[serde(default)]
    pub subscribable: bool,
    /// Production rules switched off for this resource, each with a written reason.
    #[serde(default)]
    pub suppress: Vec<Suppression>,
}

/// A prompt: versioned text with arguments.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// A human-readable title shown by hosts.
    #[serde(default)]
    pub title: Option<String>,
    /// What the prompt is for.
    pub description: String,
    /// The prompt text's own semantic version; bump it whenever the text changes.
    pub version: String,
    /// The arguments, each substituted where the text says `{{name}}`.
    #[serde(default)]
    pub arguments: IndexMap<String, PromptArgument>,
    /// The text of the user message, with `{{argument}}` placeholders.
    #[serde(default)]
    pub text: Option<String>,
    /// Instead of `text`: the messages come from a handler method (for images, embedded
    /// resources, or several messages).
    #[serde(default)]
    pub handler: Option<Handler>,
    /// Requests the prompt's handler may send the client while building the messages.
    #[serde(default)]
    pub asks_client: Vec<ClientRequest>,
    /// Resources the prompt embeds or relies on.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Scopes the caller must hold.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The most sensitive class of data the prompt carries.
    #[serde(default)]
    pub data_class: Option<String>,
    /// Production rules switched off for this prompt, each with a written reason.
    #[serde(default)]
    pub suppress: Vec<Suppression>,
}

/// A prompt argument.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptArgument {
    /// What the argument means.
    pub description: String,
    /// Whether the argument must be given (default true).
    #[serde(default)]
    pub required: Option<bool>,
    /// The longest accepted value in characters (default 1000).
    #[serde(default, rename = "maxLength")]
    pub max_length: Option<u64>,
    /// Values offered when the client asks for completions of this argument.
    #[serde(default)]
    pub completions: Vec<String>,
}

/// Limits. Every field is optional; unset fields fall back to the contract's defaults, then charter's.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Calls per caller, e.g. `60/minute` (units: second, minute, hour, day). Default `120/minute`.
    #[serde(default)]
    pub rate: Option<String>,
    /// Time allowed for one call, e.g. `10s`. Default `30s`, at most `15m`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Calls handled at once. Default 16.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Largest request body, e.g. `64KiB`. Default `1MiB`.
    #[serde(default)]
    pub max_request: Option<String>,
    /// Largest result, e.g. `1MiB`. Default `4MiB`.
    #[serde(default)]
    pub max_response: Option<String>,
}

/// Audit settings for the whole server.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Record each call's arguments, redacted by data class (default true).
    #[serde(default)]
    pub arguments: Option<bool>,
    /// Record each call's results, redacted by data class (default false: only the outcome).
    #[serde(default)]
    pub results: Option<bool>,
    /// How long records are kept, e.g. `400d` (default `400d`).
    #[serde(default)]
    pub retention: Option<String>,
}

/// Audit settings for one tool.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolAudit {
    /// Record this tool's arguments.
    #[serde(default)]
    pub arguments: Option<bool>,
    /// Record this tool's results.
    #[serde(default)]
    pub results: Option<bool>,
}

/// Deployment settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// The Kubernetes namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Replica bounds for the autoscaler.
    #[serde(default)]
    pub replicas: Option<Replicas>,
    /// CPU request per replica, e.g. `250m`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory limit per replica, e.g. `256Mi`.
    #[serde(default)]
    pub memory: Option<String>,
    /// The addresses each host the server reaches resolves to, as CIDRs (`10.20.0.0/16`,
    /// `203.0.113.7/32`), by host name: every downstream egress host and the identity provider.
    /// The generated NetworkPolicy opens egress to these addresses only; a host without CIDRs is
    /// reachable only through the FQDN policy variant (`deploy/network-policy-fqdn.yaml`).
    #[serde(default)]
    pub egress_cidrs: IndexMap<String, Vec<String>>,
    /// The namespace Prometheus scrapes from; only it may reach the metrics port (default
    /// `monitoring`).
    #[serde(default)]
    pub monitoring_namespace: Option<String>,
}

/// What the hand-written handlers need.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Handlers {
    /// Crates from crates.io the handlers use, added to the generated Cargo.toml. Listed in the
    /// contract so reviewers see every crate that runs in front of the data.
    #[serde(default)]
    pub dependencies: IndexMap<String, Dependency>,
}

/// A crate dependency: a version requirement, or one with features.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Dependency {
    /// A version requirement, e.g. `"0.37"`.
    Version(String),
    Detailed(DetailedDependency),
}

/// A crate dependency with features.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailedDependency {
    /// A version requirement, e.g. `"0.37"`.
    pub version: String,
    /// Cargo features to enable.
    #[serde(default)]
    pub features: Vec<String>,
    /// Whether the crate's default features stay on (default true).
    #[serde(default)]
    pub default_features: Option<bool>,
}

/// Replica bounds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replicas {
    /// The fewest replicas (default 2).
    pub min: u32,
    /// The most replicas (default 4).
    pub max: u32,
}

/// A production rule switched off, with the reason a reviewer reads.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// The rule's id, e.g. `unbounded-string`.
    pub rule: String,
    /// Why the rule does not apply here; shown in every report.
    pub reason: String,
}
