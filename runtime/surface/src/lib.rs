//! The seam between charter's generator and charter-runtime.
//!
//! The generator lowers a contract into a [`Surface`] and writes it as
//! `src/generated/surface.json`; the runtime reads the same types back at
//! start-up. Both sides use this crate, so the policy has one definition:
//! every closed set (effect, redaction, content kind, credential kind,
//! approval mode, ...) is an enum, every struct refuses unknown fields, and a
//! value the runtime does not know is an error at start-up, never a default.

use std::collections::BTreeMap;
use std::fmt;

pub mod simple_schema;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `_meta` key under which each definition's SHA-256 is published, so hosts can pin it.
pub const HASH_META_KEY: &str = "dev.charter/definition-sha256";

/// charter-runtime's token-signature features, one per family, in the order manifests list them.
pub const OAUTH_ALGORITHM_FEATURES: &[&str] = &["oauth-rsa", "oauth-es256", "oauth-es384", "oauth-eddsa"];

/// The charter-runtime feature that checks tokens signed with the JWS algorithm `alg` (one of
/// `access.oauth.algorithms`): the generator turns it on, and the runtime names it when a build
/// lacks it. `None` for an algorithm no feature checks (`none`, the HMAC ones, unknown names).
pub fn oauth_algorithm_feature(alg: &str) -> Option<&'static str> {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => Some("oauth-rsa"),
        "ES256" => Some("oauth-es256"),
        "ES384" => Some("oauth-es384"),
        "EdDSA" => Some("oauth-eddsa"),
        _ => None,
    }
}

/// Every tool, resource and prompt exactly as clients see them, with the
/// policy the runtime enforces around each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Surface {
    pub server: ServerInfo,
    pub http: HttpDefaults,
    /// The contract requires OAuth bearer tokens on HTTP.
    pub oauth: Option<OAuthSpec>,
    /// Every scope the contract defines.
    pub scopes: Vec<String>,
    /// How each data class appears in logs.
    pub data_classes: BTreeMap<String, Redaction>,
    /// The systems handlers may call, for the egress control.
    pub downstreams: Vec<DownstreamSpec>,
    pub tools: Vec<ToolSpec>,
    pub resources: Vec<ResourceSpec>,
    pub prompts: Vec<PromptSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableSpec {
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDefaults {
    pub origins: Vec<String>,
    pub max_request_bytes: u64,
    /// Legacy (2025-11-25) Streamable HTTP sessions, when the contract opts in
    /// (`access.sessions`); 2026-07-28 requests are stateless either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionsSpec>,
}

/// Bounds on legacy Streamable HTTP sessions: each holds a connection's
/// state in one process's memory, so their number and idle life are capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsSpec {
    /// Sessions one process holds at once; an `initialize` past it is refused (503).
    pub max: u32,
    /// A session with no request for this long is closed.
    pub idle_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub count: u32,
    pub period_ms: u64,
}

/// What a tool does to the world: it decides annotations, approval and the intent record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Reads only.
    Read,
    /// Creates something a person reviews before anything durable happens.
    Draft,
    /// Changes durable state.
    Write,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Draft => "draft",
            Effect::Write => "write",
        }
    }

    /// Draft and write calls get an intent record on disk before the handler runs.
    pub fn changes_state(self) -> bool {
        self != Effect::Read
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How values of a data class appear in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Redaction {
    /// Recorded as given.
    Full,
    /// Each string and number replaced by a SHA-256 of its JSON text.
    Hash,
    /// Every value replaced by `"[redacted]"`; keys and array lengths stay.
    Redact,
    /// Left out entirely.
    Omit,
}

impl Redaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Redaction::Full => "full",
            Redaction::Hash => "hash",
            Redaction::Redact => "redact",
            Redaction::Omit => "omit",
        }
    }
}

impl fmt::Display for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of content block a tool without an output schema may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    Text,
    Image,
    Audio,
    /// An embedded resource.
    Resource,
    ResourceLink,
}

impl ContentKind {
    /// The block's `type` as MCP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::Text => "text",
            ContentKind::Image => "image",
            ContentKind::Audio => "audio",
            ContentKind::Resource => "resource",
            ContentKind::ResourceLink => "resource_link",
        }
    }
}

/// A request a tool may send back to the client while it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRequest {
    Sampling,
    Elicitation,
    Roots,
}

/// Who must approve a `write` before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// What the audit log records of a tool's calls besides the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    pub arguments: bool,
    pub results: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// The MCP `Tool` object, verbatim.
    pub definition: Value,
    pub hash: String,
    pub effect: Effect,
    pub scopes: Vec<String>,
    pub data_class: Option<String>,
    pub approval: ApprovalSpec,
    pub audit: AuditSpec,
    pub limits: Limits,
    /// For tools without an output schema: the content kinds the handler may return.
    pub content: Vec<ContentKind>,
    pub progress: bool,
    pub client_logging: bool,
    pub asks_client: Vec<ClientRequest>,
    /// The downstreams this tool's handler may call, and no others.
    pub downstreams: Vec<String>,
    /// For a tool bound to an HTTP operation: how the runtime calls it. A
    /// bound tool has no handler; the runtime builds the request from the
    /// validated input.
    pub binding: Option<BindingSpec>,
}

/// A tool bound to one operation of a downstream HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// The downstream called; always one of the tool's `downstreams`.
    pub downstream: String,
    pub method: HttpMethod,
    /// The path relative to the downstream's base URL, e.g.
    /// `/repos/{owner}/{repo}/pulls`. Each `{name}` is filled with the path
    /// parameter whose wire `name` it is, percent-encoded as exactly one segment.
    pub path: String,
    /// Where each input property goes. Every input property is listed once.
    pub parameters: Vec<BoundParameter>,
    /// The statuses that mean success (all 2xx); any other is an error result.
    pub success: Vec<u16>,
    pub response: ResponseSpec,
}

/// An HTTP method a binding may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    /// GET and HEAD only read: the one kind of call the runtime retries, and
    /// the only methods a `read` tool may be bound to.
    pub fn is_read(self) -> bool {
        matches!(self, HttpMethod::Get | HttpMethod::Head)
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input property of a bound tool and where it goes in the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundParameter {
    /// The input property.
    pub property: String,
    #[serde(rename = "in")]
    pub location: ParameterLocation,
    /// The name on the wire: path variable, query key, header or cookie name,
    /// or field of the JSON body object.
    pub name: String,
    /// For an array in the query: one `name=item` pair per item (`true`,
    /// OpenAPI's default `form` style) or one pair with the items joined by
    /// commas (`false`). Arrays in headers are always joined by commas.
    pub explode: bool,
}

/// Where a bound parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParameterLocation {
    Path,
    Query,
    Header,
    Cookie,
    /// A field of the JSON request body (an object).
    Body,
}

impl ParameterLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterLocation::Path => "path",
            ParameterLocation::Query => "query",
            ParameterLocation::Header => "header",
            ParameterLocation::Cookie => "cookie",
            ParameterLocation::Body => "body",
        }
    }
}

impl fmt::Display for ParameterLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a successful response becomes the tool's structured output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// The output property that holds the decoded JSON body (for a body that
    /// is not an object, e.g. a list). `None`: the body is the output object
    /// itself; an empty body is `{}`.
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The downstreams this resource's handler may call, and no others.
    pub downstreams: Vec<String>,
    /// Clients may subscribe to it (`resources/subscribe`) and are told when it changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub subscribable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// The MCP `Prompt` object, verbatim.
    pub definition: Value,
    pub hash: String,
    /// The message text; empty when `handler` builds the messages.
    pub text: String,
    pub handler: bool,
    /// What the handler may ask the client (SEP-2322 rounds, or requests on
    /// the connection for older clients).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asks_client: Vec<ClientRequest>,
    /// Longest accepted value per argument, in characters.
    pub max_lengths: BTreeMap<String, u64>,
    /// Values offered for completion, per argument.
    pub completions: BTreeMap<String, Vec<String>>,
    pub scopes: Vec<String>,
    pub data_class: Option<String>,
    pub limits: Limits,
}

/// A downstream system as the contract declares it: where it is, which hosts
/// it may reach, and where (never what) its credential is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamSpec {
    pub name: String,
    pub base_url: String,
    /// `host:port` entries the downstream may reach besides its base URL's host.
    pub egress: Vec<String>,
    /// The whole-request timeout; `None` leaves the runtime's default.
    pub timeout_ms: Option<u64>,
    pub credentials: CredentialSpec,
    /// The downstream's declared names may resolve to private addresses
    /// (RFC 1918, ULA, CGNAT): for services inside the cluster or VPC.
    pub private_network: bool,
}

/// The server's own credential for a downstream. Forwarding the caller's
/// token has no variant: it is never passed on (token exchange sends it only
/// to the identity provider).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "kind")]
pub enum CredentialSpec {
    /// The downstream needs none.
    None,
    /// A static bearer token.
    ServiceToken { secret: SecretRef },
    /// OAuth 2.0 client credentials grant.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: SecretRef,
        scopes: Vec<String>,
    },
    /// RFC 8693 token exchange: the caller's validated token is exchanged at
    /// the identity provider for one issued to `audience` with `scopes`. The
    /// caller's token itself is never sent to the downstream.
    TokenExchange {
        token_url: String,
        client_id: String,
        client_secret: SecretRef,
        audience: String,
        scopes: Vec<String>,
    },
}

/// Where a secret is read from at use time: an environment variable or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretRef {
    Env(String),
    File(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "environment variable `{name}`"),
            SecretRef::File(path) => write!(f, "file `{path}`"),
        }
    }
}

impl Surface {
    /// Reads the surface a generated crate embeds. Any field or value this
    /// version does not know is an error: the runtime must not guess policy.
    pub fn parse(json: &str) -> Result<Surface, String> {
        serde_json::from_str(json).map_err(|e| format!("the embedded surface is malformed: {e}"))
    }

    /// The form the generator writes: pretty JSON ending in a newline.
    pub fn to_json_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a surface always serializes");
        text.push('\n');
        text
    }
}

fn definition_str<'a>(definition: &'a Value, key: &str) -> Option<&'a str> {
    definition.get(key).and_then(Value::as_str)
}

impl ToolSpec {
    pub fn name(&self) -> &str {
        definition_str(&self.definition, "name").unwrap_or_default()
    }
}

impl ResourceSpec {
    pub fn name(&self) -> &str {
        definition_str(&self.definition, "name").unwrap_or_default()
    }
    pub fn uri_template(&self) -> Option<&str> {
        definition_str(&self.definition, "uriTemplate")
    }
    pub fn uri(&self) -> Option<&str> {
        definition_str(&self.definition, "uri")
    }
    pub fn mime_type(&self) -> Option<&str> {
        definition_str(&self.definition, "mimeType")
    }
}

impl PromptSpec {
    pub fn name(&self) -> &str {
        definition_str(&self.definition, "name").unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_are_errors_not_defaults() {
        for (json, wanted) in [
            (r#""reda""#, "unknown variant `reda`"),
            (r#""Redact""#, "unknown variant `Redact`"),
        ] {
            let err = serde_json::from_str::<Redaction>(json).unwrap_err().to_string();
            assert!(err.contains(wanted), "{err}");
        }
        let err = serde_json::from_str::<Effect>(r#""delete""#).unwrap_err().to_string();
        assert!(err.contains("unknown variant `delete`"), "{err}");
        let err = serde_json::from_str::<CredentialSpec>(r#"{"kind":"caller_token"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `caller_token`"), "{err}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = serde_json::from_str::<Rate>(r#"{"count":1,"period_ms":1000,"burst":5}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `burst`"), "{err}");
    }

    #[test]
    fn a_secret_is_in_exactly_one_place() {
        let secret: SecretRef = serde_json::from_str(r#"{"env":"TOKEN"}"#).unwrap();
        assert_eq!(secret, SecretRef::Env("TOKEN".into()));
        assert!(serde_json::from_str::<SecretRef>(r#"{"env":"A","file":"/b"}"#).is_err());
        assert!(serde_json::from_str::<SecretRef>("{}").is_err());
    }

    #[test]
    fn bindings_round_trip_in_their_wire_spelling() {
        let spec = BindingSpec {
            downstream: "github".into(),
            method: HttpMethod::Get,
            path: "/repos/{owner}/{repo}/pulls".into(),
            parameters: vec![BoundParameter {
                property: "owner".into(),
                location: ParameterLocation::Path,
                name: "owner".into(),
                explode: true,
            }],
            success: vec![200],
            response: ResponseSpec {
                field: Some("pull_requests".into()),
            },
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["method"], "GET");
        assert_eq!(json["parameters"][0]["in"], "path");
        assert_eq!(serde_json::from_value::<BindingSpec>(json).unwrap(), spec);
        assert!(serde_json::from_str::<HttpMethod>(r#""TRACE""#).is_err());
        assert!(HttpMethod::Head.is_read() && !HttpMethod::Post.is_read());
    }

    #[test]
    fn credentials_round_trip() {
        let spec = CredentialSpec::ClientCredentials {
            token_url: "https://id.example.com/token".into(),
            client_id: "svc".into(),
            client_secret: SecretRef::File("/run/secret".into()),
            scopes: vec!["read".into()],
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["kind"], "client_credentials");
        assert_eq!(json["client_secret"]["file"], "/run/secret");
        assert_eq!(serde_json::from_value::<CredentialSpec>(json).unwrap(), spec);
    }
}
