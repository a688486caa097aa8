//! Raw contract -> model, with every semantic error collected.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;

use super::schema::{Role, lower_schema};
use super::units::{parse_duration, parse_rate, parse_size};
use super::*;
use crate::contract::raw;
use crate::contract::structure::escape;
use crate::diagnostic::{Diagnostic, Place};
use crate::suggest::did_you_mean;

/// Crates a generated server's own manifest already names, with what the
/// handlers use instead of declaring them again.
pub const GENERATED_CRATE_DEPENDENCIES: &[(&str, &str)] = &[
    (
        "charter-runtime",
        "it is the server's runtime; charter decides its source and features",
    ),
    (
        "charter-surface",
        "it comes with charter-runtime; use `charter_runtime::surface`",
    ),
    ("serde", "the handlers can use it as it is"),
    ("serde_json", "the handlers can use it as it is"),
    (
        "rmcp",
        "use `charter_runtime::rmcp`, so the server has one MCP SDK at the version the runtime pins",
    ),
];

/// Headers the runtime sets itself (credentials, framing, routing); a binding cannot place an input there.
const FORBIDDEN_BOUND_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "expect",
];

fn http_method(m: raw::HttpMethod) -> HttpMethod {
    match m {
        raw::HttpMethod::Get => HttpMethod::Get,
        raw::HttpMethod::Head => HttpMethod::Head,
        raw::HttpMethod::Post => HttpMethod::Post,
        raw::HttpMethod::Put => HttpMethod::Put,
        raw::HttpMethod::Patch => HttpMethod::Patch,
        raw::HttpMethod::Delete => HttpMethod::Delete,
    }
}

fn parameter_location(l: raw::ParameterLocation) -> ParameterLocation {
    match l {
        raw::ParameterLocation::Path => ParameterLocation::Path,
        raw::ParameterLocation::Query => ParameterLocation::Query,
        raw::ParameterLocation::Header => ParameterLocation::Header,
        raw::ParameterLocation::Cookie => ParameterLocation::Cookie,
        raw::ParameterLocation::Body => ParameterLocation::Body,
    }
}

/// Algorithms a token may be signed with: asymmetric only.
pub const ASYMMETRIC_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];
const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "ES256"];
const MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
const DEFAULT_MAX_SESSIONS: u32 = 1000;
const MAX_SESSIONS: u32 = 100_000;
const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(5 * 60);
const MAX_SESSION_IDLE: Duration = Duration::from_secs(24 * 60 * 60);

/// Charter's own defaults, under the contract's `limits`.
pub fn default_limits() -> Limits {
    Limits {
        rate: Rate {
            count: 120,
            period: Duration::from_secs(60),
        },
        timeout: Duration::from_secs(30),
        concurrency: 16,
        max_request_bytes: 1 << 20,
        max_response_bytes: 4 << 20,
    }
}

/// Lowers a parsed contract into the model, or returns every error found.
pub fn lower(contract: &raw::Contract) -> Result<Model, Vec<Diagnostic>> {
    let mut cx = Lowering {
        contract,
        diags: Vec::new(),
    };
    let model = cx.model();
    if cx.diags.is_empty() { Ok(model) } else { Err(cx.diags) }
}

struct Lowering<'a> {
    contract: &'a raw::Contract,
    diags: Vec<Diagnostic>,
}

impl Lowering<'_> {
    fn model(&mut self) -> Model {
        let c = self.contract;
        let server = self.server(&c.server);
        let data_classes = c
            .data_classes
            .iter()
            .map(|(name, dc)| {
                let pointer = format!("/data_classes/{}", escape(name));
                self.plain_name(name, &pointer, "data class");
                DataClass {
                    name: name.clone(),
                    description: dc.description.clone(),
                    sensitivity: dc.sensitivity,
                    logs: dc.logs,
                    pointer,
                }
            })
            .collect();
        let access = self.access(&c.access);
        self.shared_defs();
        let limits = self.limits(c.limits.as_ref(), &default_limits(), "/limits");
        let downstreams = c.downstreams.iter().map(|(name, d)| self.downstream(name, d)).collect();
        let tools = c.tools.iter().map(|(name, t)| self.tool(name, t, &limits)).collect();
        let resources = c
            .resources
            .iter()
            .map(|(name, r)| self.resource(name, r, &limits))
            .collect();
        let prompts = c.prompts.iter().map(|(name, p)| self.prompt(name, p)).collect();
        self.collisions();
        let audit = self.audit(c.audit.as_ref());
        let deploy = self.deploy(c.deploy.as_ref(), &server.name);
        let handler_dependencies = self.handler_dependencies(c.handlers.as_ref());
        let model = Model {
            server,
            data_classes,
            access,
            downstreams,
            tools,
            resources,
            prompts,
            limits,
            audit,
            deploy,
            handler_dependencies,
            suppressions: suppressions(&c.suppress, ""),
        };
        self.egress_cidr_hosts(&model);
        model
    }

    /// Legacy Streamable HTTP sessions: HTTP only, with a bounded count and idle life.
    fn sessions(&mut self, s: &raw::Sessions, transports: &BTreeSet<Transport>) -> Sessions {
        if !transports.contains(&Transport::Http) {
            self.error(
                "invalid-value",
                "`sessions` are a Streamable HTTP mode, and this server does not serve `http`",
                Place::key("/access/sessions"),
            )
            .help = Some("add `http` to `access.transports`, or remove `sessions`".into());
        }
        let max = s.max.unwrap_or(DEFAULT_MAX_SESSIONS);
        if !(1..=MAX_SESSIONS).contains(&max) {
            self.error(
                "invalid-value",
                format!("`{max}` sessions is outside 1 to {MAX_SESSIONS}"),
                Place::value("/access/sessions/max"),
            )
            .help = Some(format!(
                "each session holds state in one process's memory; size it to the clients one replica serves (default {DEFAULT_MAX_SESSIONS})"
            ));
        }
        let idle = match &s.idle {
            Some(idle) => self.duration(idle, "/access/sessions/idle", MAX_SESSION_IDLE),
            None => DEFAULT_SESSION_IDLE,
        };
        Sessions { max, idle }
    }

    /// CIDRs are for hosts the server reaches: one for any other host would open the network
    /// policy to addresses no downstream needs.
    fn egress_cidr_hosts(&mut self, model: &Model) {
        let hosts = model.network_hosts();
        for host in model.deploy.egress_cidrs.keys() {
            if !hosts.iter().any(|h| &h.host == host) {
                let known: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
                let hint = match crate::suggest::did_you_mean(host, known.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None if known.is_empty() => {
                        "this server reaches no host over the network: remove `egress_cidrs`".into()
                    }
                    None => format!(
                        "the hosts it reaches are {}",
                        known.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
                    ),
                };
                self.error(
                    "invalid-value",
                    format!(
                        "`{host}` has CIDRs, but it is neither a downstream's egress host nor the identity provider's"
                    ),
                    Place::key(format!("/deploy/egress_cidrs/{}", escape(host))),
                )
                .help = Some(hint);
            }
        }
    }

    fn error(&mut self, id: &'static str, message: impl Into<String>, place: Place) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(id, message, place));
        self.diags.last_mut().expect("just pushed")
    }

    fn server(&mut self, s: &raw::Server) -> Server {
        if !names::is_server_name(&s.name) {
            self.error(
                "invalid-name",
                format!("server name `{}` is not a valid package name", s.name),
                Place::value("/server/name"),
            )
            .help = Some("use lowercase letters, digits and dashes, e.g. `release-notes`".into());
        }
        let version = self.semver(&s.version, "/server/version");
        let review = s.review.as_ref().map(|r| Review {
            last: r.last.as_ref().and_then(|d| self.date(d, "/server/review/last")),
            next: self.date(&r.next, "/server/review/next").unwrap_or_default(),
        });
        let disable = s.retirement.as_ref().and_then(|r| r.disable.as_ref()).map(|d| {
            if d.env.is_none() && d.file.is_none() {
                self.error(
                    "invalid-value",
                    "the disable path names neither an environment variable nor a file",
                    Place::value("/server/retirement/disable"),
                )
                .help = Some("add `env: SERVER_DISABLED` or `file: /run/server/disabled`".into());
            }
            if let Some(env) = &d.env {
                self.env_name(env, "/server/retirement/disable/env");
            }
            DisablePath {
                env: d.env.clone(),
                file: d.file.clone(),
            }
        });
        Server {
            name: Name::new(&s.name),
            title: s.title.clone(),
            version,
            description: s.description.trim().to_owned(),
            owner: s.owner.as_ref().map(|o| Owner {
                team: o.team.trim().to_owned(),
                contact: o.contact.trim().to_owned(),
                escalation: o.escalation.clone(),
            }),
            status: s.status,
            review,
            retirement: Retirement {
                disable,
                when: s.retirement.as_ref().and_then(|r| r.when.clone()),
                replacement: s.retirement.as_ref().and_then(|r| r.replacement.clone()),
            },
        }
    }

    fn access(&mut self, a: &raw::Access) -> Access {
        if a.transports.is_empty() {
            self.error(
                "invalid-value",
                "`access.transports` is empty: the server could not be reached",
                Place::value("/access/transports"),
            )
            .help = Some("list `stdio`, `http` or both".into());
        }
        let transports: BTreeSet<Transport> = a.transports.iter().copied().collect();
        for (name, meaning) in &a.scopes {
            let pointer = format!("/access/scopes/{}", escape(name));
            if !names::is_scope_name(name) {
                self.error(
                    "invalid-name",
                    format!("scope `{name}` is not a valid scope name"),
                    Place::key(&pointer),
                )
                .help = Some("use lowercase letters, digits and `.`, `:`, `_` or `-`, e.g. `pulls.read`".into());
            }
            if meaning.trim().is_empty() {
                self.error(
                    "invalid-value",
                    format!("scope `{name}` has no meaning"),
                    Place::value(&pointer),
                )
                .help = Some("say in a sentence what holding the scope allows".into());
            }
        }
        let oauth = a.oauth.as_ref().map(|o| {
            self.url(&o.issuer, "/access/oauth/issuer", true);
            self.url(&o.audience, "/access/oauth/audience", true);
            if let Some(jwks) = &o.jwks_uri {
                self.url(jwks, "/access/oauth/jwks_uri", true);
            }
            for (i, alg) in o.algorithms.iter().enumerate() {
                if !ASYMMETRIC_ALGORITHMS.contains(&alg.as_str()) {
                    let why = if alg.eq_ignore_ascii_case("none") {
                        "unsigned tokens would be accepted"
                    } else if alg.starts_with("HS") {
                        "an HMAC key shared with the identity provider lets anyone holding it mint tokens, and HMAC-with-a-public-key is a known forgery"
                    } else {
                        "it is not a JWS algorithm charter supports"
                    };
                    self.error("invalid-value", format!("algorithm `{alg}` is not accepted: {why}"), Place::value(format!("/access/oauth/algorithms/{i}")))
                        .help = Some(format!("use asymmetric algorithms: {}", ASYMMETRIC_ALGORITHMS.join(", ")));
                }
            }
            let leeway = match &o.leeway {
                Some(l) => self.duration(l, "/access/oauth/leeway", MAX_LEEWAY),
                None => Duration::from_secs(30),
            };
            OAuth {
                issuer: o.issuer.clone(),
                audience: o.audience.clone(),
                jwks_uri: o.jwks_uri.clone(),
                algorithms: if o.algorithms.is_empty() {
                    DEFAULT_ALGORITHMS.iter().map(|s| s.to_string()).collect()
                } else {
                    o.algorithms.clone()
                },
                leeway,
            }
        });
        for (i, origin) in a.origins.iter().enumerate() {
            let pointer = format!("/access/origins/{i}");
            match url::Url::parse(origin) {
                Ok(u)
                    if u.path() == "/"
                        && u.query().is_none()
                        && origin.trim_end_matches('/') == u.origin().ascii_serialization() => {}
                _ => {
                    self.error(
                        "invalid-value",
                        format!("`{origin}` is not an origin"),
                        Place::value(&pointer),
                    )
                    .help =
                        Some("an origin is a scheme, host and optional port, e.g. `https://app.example.com`".into());
                }
            }
        }
        let sessions = a.sessions.as_ref().map(|s| self.sessions(s, &transports));
        Access {
            transports: transports.into_iter().collect(),
            oauth,
            sessions,
            origins: a.origins.clone(),
            scopes: a
                .scopes
                .iter()
                .map(|(name, meaning)| Scope {
                    name: name.clone(),
                    description: meaning.trim().to_owned(),
                    pointer: format!("/access/scopes/{}", escape(name)),
                })
                .collect(),
        }
    }

    fn shared_defs(&mut self) {
        let mut diags = Vec::new();
        for (name, def) in &self.contract.defs {
            let pointer = format!("/$defs/{}", escape(name));
            lower_schema(def, &pointer, Role::Any, &self.contract.defs, &mut diags);
        }
        self.diags.extend(diags);
    }

    fn downstream(&mut self, name: &str, d: &raw::Downstream) -> Downstream {
        let pointer = format!("/downstreams/{}", escape(name));
        self.plain_name(name, &pointer, "downstream");
        let base = self.url(&d.base_url, &format!("{pointer}/base_url"), false);
        let default_port = base.as_ref().and_then(|u| u.port_or_known_default()).unwrap_or(443);
        let egress = d
            .egress
            .iter()
            .enumerate()
            .filter_map(|(i, host)| self.egress_host(host, default_port, &format!("{pointer}/egress/{i}")))
            .collect();
        let timeout = d
            .timeout
            .as_ref()
            .map(|t| self.duration(t, &format!("{pointer}/timeout"), MAX_TIMEOUT));
        let (credentials, credential_scopes) = match &d.credentials {
            None => (Credentials::None, Vec::new()),
            Some(c) => (self.credentials(c, &format!("{pointer}/credentials")), c.scopes.clone()),
        };
        Downstream {
            name: Name::new(name),
            description: d.description.trim().to_owned(),
            base_url: d.base_url.clone(),
            egress,
            timeout,
            credentials,
            credential_scopes,
            private_network: d.private_network,
            suppressions: suppressions(&d.suppress, &pointer),
            pointer,
        }
    }

    fn credentials(&mut self, c: &raw::Credentials, pointer: &str) -> Credentials {
        let mut kinds = Vec::new();
        if let Some(secret) = &c.service_token {
            kinds.push(Credentials::ServiceToken {
                secret: self.secret(secret, &format!("{pointer}/service_token")),
            });
        }
        if let Some(cc) = &c.client_credentials {
            let at = format!("{pointer}/client_credentials");
            self.url(&cc.token_url, &format!("{at}/token_url"), true);
            kinds.push(Credentials::ClientCredentials {
                token_url: cc.token_url.clone(),
                client_id: cc.client_id.clone(),
                client_secret: self.secret(&cc.client_secret, &format!("{at}/client_secret")),
            });
        }
        if let Some(te) = &c.token_exchange {
            let at = format!("{pointer}/token_exchange");
            self.url(&te.token_url, &format!("{at}/token_url"), true);
            kinds.push(Credentials::TokenExchange {
                token_url: te.token_url.clone(),
                audience: te.audience.clone(),
                client_id: te.client_id.clone(),
                client_secret: self.secret(&te.client_secret, &format!("{at}/client_secret")),
            });
        }
        if c.caller_token == Some(true) {
            kinds.push(Credentials::CallerToken);
        }
        match kinds.len() {
            0 => {
                self.error("invalid-value", "the credentials name no kind", Place::value(pointer)).help = Some(
                    "give one of `service_token`, `client_credentials` or `token_exchange`, or remove `credentials` if the downstream needs none".into(),
                );
                Credentials::None
            }
            1 => kinds.pop().expect("one"),
            _ => {
                self.error(
                    "invalid-value",
                    "the credentials name more than one kind",
                    Place::value(pointer),
                )
                .help = Some("a downstream is called with exactly one credential; keep one of them".into());
                kinds.swap_remove(0)
            }
        }
    }

    fn secret(&mut self, s: &raw::SecretRef, pointer: &str) -> SecretRef {
        match (&s.env, &s.file) {
            (Some(env), None) => {
                self.env_name(env, &format!("{pointer}/env"));
                SecretRef::Env(env.clone())
            }
            (None, Some(file)) => SecretRef::File(file.clone()),
            _ => {
                self.error(
                    "invalid-value",
                    "a secret reference names exactly one source",
                    Place::value(pointer),
                )
                .help = Some(
                    "write `{ env: NAME }` or `{ file: /path }`; the secret itself never goes in the contract".into(),
                );
                SecretRef::Env(String::new())
            }
        }
    }

    fn tool(&mut self, name: &str, t: &raw::Tool, defaults: &Limits) -> Tool {
        let pointer = format!("/tools/{}", escape(name));
        self.capability_name(name, &pointer, "tool");
        self.scopes_exist(&t.scopes, &pointer);
        self.data_class_exists(t.data_class.as_deref(), &pointer);
        self.downstreams_exist(&t.downstreams, &pointer);
        let mut schema_diags = Vec::new();
        let input = lower_schema(
            &t.input,
            &format!("{pointer}/input"),
            Role::Input,
            &self.contract.defs,
            &mut schema_diags,
        );
        let output = t.output.as_ref().and_then(|o| {
            lower_schema(
                o,
                &format!("{pointer}/output"),
                Role::Object,
                &self.contract.defs,
                &mut schema_diags,
            )
        });
        self.diags.extend(schema_diags);
        let binding = self.implementation(t, input.as_ref(), output.as_ref(), &pointer);
        let mut downstreams = t.downstreams.clone();
        if let Some(b) = &binding
            && downstreams.is_empty()
        {
            // A bound tool calls its binding's downstream; listing it again adds nothing.
            downstreams.push(b.downstream.clone());
        }
        if t.reversible.is_some() && t.effect != Effect::Write {
            self.error(
                "invalid-value",
                "`reversible` applies only to tools whose effect is `write`",
                Place::key(format!("{pointer}/reversible")),
            )
            .help = Some("remove it: read and draft tools are never destructive".into());
        }
        if t.effect == Effect::Read && t.approval.as_ref().is_some_and(|a| a.mode != ApprovalMode::None) {
            self.error(
                "invalid-value",
                "approval applies to tools that draft or change something; this tool only reads",
                Place::key(format!("{pointer}/approval")),
            )
            .help = Some("remove `approval`, or correct `effect` if the tool does change state".into());
        }
        let approval = self.approval(t.approval.as_ref(), &format!("{pointer}/approval"));
        let annotations = Annotations {
            read_only_hint: t.effect == Effect::Read,
            destructive_hint: t.effect == Effect::Write && !t.reversible.unwrap_or(false),
            idempotent_hint: t.idempotent.unwrap_or(t.effect == Effect::Read),
            open_world_hint: !downstreams.is_empty(),
        };
        let audit_defaults = self.contract.audit.clone().unwrap_or_default();
        let audit = ToolAudit {
            arguments: t
                .audit
                .as_ref()
                .and_then(|a| a.arguments)
                .or(audit_defaults.arguments)
                .unwrap_or(true),
            results: t
                .audit
                .as_ref()
                .and_then(|a| a.results)
                .or(audit_defaults.results)
                .unwrap_or(false),
        };
        Tool {
            name: Name::new(name),
            title: t.title.clone(),
            description: t.description.trim().to_owned(),
            effect: t.effect,
            annotations,
            scopes: t.scopes.clone(),
            data_class: t.data_class.clone(),
            downstreams,
            input: input.unwrap_or_else(|| Schema::new(Value::Null, format!("{pointer}/input"))),
            output,
            limits: self.limits(t.limits.as_ref(), defaults, &format!("{pointer}/limits")),
            approval,
            audit,
            content: self.content_kinds(t, &pointer),
            progress: t.progress.unwrap_or(false),
            client_logging: t.client_logging.unwrap_or(false),
            asks_client: {
                let mut asks = t.asks_client.clone();
                asks.sort();
                asks.dedup();
                asks
            },
            handler: t.handler,
            binding,
            suppressions: suppressions(&t.suppress, &pointer),
            pointer,
        }
    }

    /// Exactly one of `handler` and `binding`; a binding checked against the tool's schemas.
    fn implementation(
        &mut self,
        t: &raw::Tool,
        input: Option<&Schema>,
        output: Option<&Schema>,
        pointer: &str,
    ) -> Option<Binding> {
        match (&t.handler, &t.binding) {
            (Some(_), Some(_)) => {
                self.error(
                    "invalid-binding",
                    "a tool has either `handler` or `binding`, not both",
                    Place::key(format!("{pointer}/handler")),
                )
                .help = Some("remove `handler: rust`: the generated server makes a bound tool's call itself".into());
                None
            }
            (None, None) => {
                self.error(
                    "missing-field",
                    "the tool says neither how it is implemented (`handler`) nor which HTTP operation it calls (`binding`)",
                    Place::key(pointer.to_owned()),
                )
                .help = Some(
                    "add `handler: rust` to write it in Rust, or a `binding` (see `charter import openapi`)".into(),
                );
                None
            }
            (Some(_), None) => None,
            (None, Some(b)) => self.binding(b, t, input, output, &format!("{pointer}/binding")),
        }
    }

    fn binding(
        &mut self,
        b: &raw::Binding,
        t: &raw::Tool,
        input: Option<&Schema>,
        output: Option<&Schema>,
        pointer: &str,
    ) -> Option<Binding> {
        let errors_before = self.diags.len();
        if !self.contract.downstreams.contains_key(&b.downstream) {
            self.unknown_reference(
                "downstream",
                &b.downstream,
                self.contract.downstreams.keys(),
                Place::value(format!("{pointer}/downstream")),
            );
        } else if !t.downstreams.is_empty() && !t.downstreams.contains(&b.downstream) {
            self.error(
                "invalid-binding",
                format!(
                    "the binding calls `{}`, which the tool's `downstreams` does not list",
                    b.downstream
                ),
                Place::value(format!("{pointer}/downstream")),
            )
            .help = Some(format!("add `{}` to the tool's `downstreams`", b.downstream));
        }

        let variables = match path_variables(&b.path) {
            Ok(v) => v,
            Err(e) => {
                self.error(
                    "invalid-binding",
                    format!("the path template `{}` is malformed: {e}", b.path),
                    Place::value(format!("{pointer}/path")),
                );
                Vec::new()
            }
        };
        if !b.path.starts_with('/') || b.path.contains("//") || b.path.contains(['?', '#', '\\']) {
            self.error(
                "invalid-binding",
                format!("`{}` is not a path relative to the downstream's base URL", b.path),
                Place::value(format!("{pointer}/path")),
            )
            .help = Some(
                "start it with `/`, without a query, fragment, `//` or backslash, e.g. `/repos/{owner}/{repo}`; query parameters go under `parameters`".into(),
            );
        }
        if b.path.split('/').any(|segment| segment == "." || segment == "..") {
            self.error(
                "invalid-binding",
                format!("the path `{}` has a `.` or `..` segment", b.path),
                Place::value(format!("{pointer}/path")),
            );
        }

        let method = http_method(b.method);
        let root = input.map(|i| (&i.tree, &i.tree.root));
        let mut parameters = Vec::new();
        let mut wire_names: BTreeSet<(ParameterLocation, String)> = BTreeSet::new();
        for (property, spec) in &b.parameters {
            let place = Place::key(format!("{pointer}/parameters/{}", escape(property)));
            let (location, name, explode) = match spec {
                raw::BoundParameter::Location(l) => (parameter_location(*l), property.clone(), None),
                raw::BoundParameter::Detailed(d) => (
                    parameter_location(d.location),
                    d.name.clone().unwrap_or_else(|| property.clone()),
                    d.explode,
                ),
            };
            let Some((tree, node)) = root else { continue };
            let Some(schema) = node.property(property) else {
                let known: Vec<&str> = node.properties().map(|(k, _)| k).collect();
                let d = self.error(
                    "invalid-binding",
                    format!("the binding places `{property}`, which is not a property of the tool's input"),
                    place,
                );
                d.help = Some(match did_you_mean(property, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "bind only the input's properties; each goes to exactly one place".into(),
                });
                continue;
            };
            let (schema, _) = tree.resolve(schema);
            let scalar = |n: &SchemaNode| {
                [JsonType::String, JsonType::Integer, JsonType::Number, JsonType::Boolean]
                    .iter()
                    .any(|ty| n.is_only(*ty))
                    || n.keyword("enum").is_some_and(|v| {
                        v.as_array()
                            .is_some_and(|items| items.iter().all(|i| !i.is_object() && !i.is_array() && !i.is_null()))
                    })
            };
            let scalar_list = |n: &SchemaNode| {
                n.is_only(JsonType::Array) && n.items().is_some_and(|items| scalar(&tree.resolve(items).0))
            };
            let fits = match location {
                ParameterLocation::Path | ParameterLocation::Cookie => scalar(&schema),
                ParameterLocation::Query | ParameterLocation::Header => scalar(&schema) || scalar_list(&schema),
                ParameterLocation::Body => true,
            };
            if !fits {
                self.error(
                    "invalid-binding",
                    format!(
                        "`{property}` goes in the {location}, which carries {}; its schema is not one",
                        match location {
                            ParameterLocation::Path | ParameterLocation::Cookie => "a single string, number or boolean",
                            _ => "a string, number or boolean, or a list of them",
                        }
                    ),
                    place.clone(),
                )
                .help = Some("give the property a scalar `type`, or send it in the body".into());
            }
            if explode.is_some() && !(location == ParameterLocation::Query && scalar_list(&schema)) {
                self.error(
                    "invalid-binding",
                    format!("`explode` applies only to a list sent in the query; `{property}` is not one"),
                    place.clone(),
                );
            }
            if location == ParameterLocation::Path && !node.required.iter().any(|r| r == property) {
                self.error(
                    "invalid-binding",
                    format!(
                        "path parameter `{property}` is optional in the input, but every path variable needs a value"
                    ),
                    place.clone(),
                )
                .help = Some(format!("add `{property}` to the input's `required`"));
            }
            if location == ParameterLocation::Header {
                let lower = name.to_ascii_lowercase();
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    self.error(
                        "invalid-binding",
                        format!("`{name}` is not a valid HTTP header name"),
                        place.clone(),
                    );
                } else if FORBIDDEN_BOUND_HEADERS.contains(&lower.as_str()) {
                    self.error(
                        "invalid-binding",
                        format!("a binding cannot set the `{name}` header"),
                        place.clone(),
                    )
                    .help = Some(
                        "the runtime sends the downstream's declared credential and framing headers itself; the caller never sets them".into(),
                    );
                }
            }
            if location == ParameterLocation::Path && !variables.contains(&name.as_str()) {
                self.error(
                    "invalid-binding",
                    format!("path parameter `{name}` does not appear in the path `{}`", b.path),
                    place.clone(),
                )
                .help = Some(format!("add `{{{name}}}` to the path, or send `{property}` elsewhere"));
            }
            let key_name = if location == ParameterLocation::Header {
                name.to_ascii_lowercase()
            } else {
                name.clone()
            };
            if !wire_names.insert((location, key_name)) {
                self.error(
                    "invalid-binding",
                    format!("two properties are sent as {location} `{name}`"),
                    place.clone(),
                );
            }
            parameters.push(BoundParameter {
                property: property.clone(),
                location,
                name,
                explode: explode.unwrap_or(true),
            });
        }
        if let Some((_, node)) = root {
            for (property, _) in node.properties() {
                if !b.parameters.contains_key(property) {
                    self.error(
                        "invalid-binding",
                        format!("input property `{property}` is not placed in the request"),
                        Place::key(format!("{pointer}/parameters")),
                    )
                    .help = Some(format!(
                        "add `{property}: query` (or path, header, cookie, body) under the binding's `parameters`, or remove the property"
                    ));
                }
            }
        }
        for variable in &variables {
            if !parameters
                .iter()
                .any(|p| p.location == ParameterLocation::Path && p.name == *variable)
            {
                self.error(
                    "invalid-binding",
                    format!("path variable `{{{variable}}}` has no parameter"),
                    Place::value(format!("{pointer}/path")),
                )
                .help = Some(format!("add `{variable}: path` under the binding's `parameters`"));
            }
        }
        if method.is_read() && parameters.iter().any(|p| p.location == ParameterLocation::Body) {
            self.error(
                "invalid-binding",
                format!("a {method} request has no body, but the binding sends properties in it"),
                Place::key(format!("{pointer}/parameters")),
            );
        }

        let mut seen = BTreeSet::new();
        for (i, status) in b.success.iter().enumerate() {
            if !(200..=299).contains(status) || !seen.insert(*status) {
                self.error(
                    "invalid-binding",
                    format!("success status {status} is not a distinct 2xx status"),
                    Place::value(format!("{pointer}/success/{i}")),
                )
                .help = Some("list the 2xx statuses the operation answers on success, e.g. `[200]` or `[201]`; every other status is an error result".into());
            }
        }
        if b.success.is_empty() {
            self.error(
                "invalid-binding",
                "the binding lists no success status",
                Place::key(format!("{pointer}/success")),
            );
        }

        let response_field = b.response.as_ref().and_then(|r| r.field.clone());
        match output {
            None if t.output.is_none() => {
                self.error(
                    "invalid-binding",
                    "a bound tool needs an `output` schema: the response is checked against it before it leaves",
                    Place::key(format!("{pointer}/..")),
                );
            }
            Some(out) => {
                if let Some(field) = &response_field
                    && out.tree.root.property(field).is_none()
                {
                    self.error(
                        "invalid-binding",
                        format!("`response.field` names `{field}`, which is not a property of the tool's output"),
                        Place::value(format!("{pointer}/response/field")),
                    );
                }
            }
            None => {}
        }
        if self.diags.len() > errors_before {
            return None;
        }
        Some(Binding {
            downstream: b.downstream.clone(),
            method,
            path: b.path.clone(),
            parameters,
            success: b.success.clone(),
            response_field,
            pointer: pointer.to_owned(),
        })
    }

    /// What a tool without an output schema returns; tools with one return structured content.
    fn content_kinds(&mut self, t: &raw::Tool, pointer: &str) -> Vec<ContentKind> {
        match (&t.content, &t.output) {
            (Some(_), Some(_)) => {
                self.invalid(
                    "`content` is for tools without `output`: a tool with an output schema returns structured content"
                        .into(),
                    Place::key(format!("{pointer}/content")),
                );
                Vec::new()
            }
            (Some(kinds), None) if kinds.is_empty() => {
                self.invalid(
                    "`content` lists no kinds: the tool could return nothing".into(),
                    Place::value(format!("{pointer}/content")),
                );
                Vec::new()
            }
            (Some(kinds), None) => {
                let mut kinds = kinds.clone();
                kinds.sort();
                kinds.dedup();
                kinds
            }
            (None, Some(_)) => Vec::new(),
            (None, None) => vec![ContentKind::Text],
        }
    }

    fn approval(&mut self, a: Option<&raw::Approval>, pointer: &str) -> Approval {
        let Some(a) = a else { return Approval::None };
        if a.mode != ApprovalMode::Reviewer && a.scope.is_some() {
            self.error(
                "invalid-value",
                "`scope` applies only to reviewer approval",
                Place::key(format!("{pointer}/scope")),
            )
            .help = Some("remove it, or use `mode: reviewer` so a second person holding the scope approves".into());
        }
        match a.mode {
            ApprovalMode::None => Approval::None,
            ApprovalMode::User => Approval::User,
            ApprovalMode::Reviewer => {
                let scope = match &a.scope {
                    Some(scope) => {
                        self.scopes_exist(std::slice::from_ref(scope), pointer);
                        scope.clone()
                    }
                    None => {
                        self.error(
                            "missing-field",
                            "reviewer approval names no approval scope",
                            Place::key(pointer),
                        )
                        .help =
                            Some("add `scope:` with the scope an approver must hold, e.g. `changes.approve`".into());
                        String::new()
                    }
                };
                let expires = match &a.expires {
                    Some(e) => self.duration(e, &format!("{pointer}/expires"), Duration::from_secs(30 * 86_400)),
                    None => Duration::from_secs(86_400),
                };
                Approval::Reviewer { scope, expires }
            }
        }
    }

    fn resource(&mut self, name: &str, r: &raw::Resource, defaults: &Limits) -> Resource {
        let pointer = format!("/resources/{}", escape(name));
        self.capability_name(name, &pointer, "resource");
        self.scopes_exist(&r.scopes, &pointer);
        self.data_class_exists(r.data_class.as_deref(), &pointer);
        self.downstreams_exist(&r.downstreams, &pointer);
        let mut schema_diags = Vec::new();
        let target = match (&r.uri, &r.uri_template) {
            (Some(uri), None) => {
                if !is_absolute_uri(uri) {
                    self.error(
                        "invalid-value",
                        format!("`{uri}` is not an absolute URI"),
                        Place::value(format!("{pointer}/uri")),
                    )
                    .help = Some("write a scheme and a path, e.g. `policy://approved/index`".into());
                }
                if !r.parameters.is_empty() {
                    self.error(
                        "invalid-value",
                        "`parameters` type the variables of a `uri_template`; this resource has a fixed `uri`",
                        Place::key(format!("{pointer}/parameters")),
                    );
                }
                ResourceTarget::Static { uri: uri.clone() }
            }
            (None, Some(template)) => {
                let at = format!("{pointer}/uri_template");
                let variables = self.template_variables(template, &at);
                let mut typed = Vec::new();
                for variable in &variables {
                    match r.parameters.get(variable) {
                        Some(schema) => {
                            let sp = format!("{pointer}/parameters/{}", escape(variable));
                            if let Some(schema) =
                                lower_schema(schema, &sp, Role::String, &self.contract.defs, &mut schema_diags)
                            {
                                typed.push(TemplateVariable {
                                    name: Name::new(variable),
                                    schema,
                                });
                            }
                        }
                        None => {
                            self.error(
                                "untyped-template-variable",
                                format!("template variable `{variable}` has no schema in `parameters`"),
                                Place::value(&at),
                            )
                            .help = Some(format!(
                                "add `parameters: {{ {variable}: {{ type: string, pattern: \"...\" }} }}` so only intended values are served"
                            ));
                        }
                    }
                }
                for param in r.parameters.keys() {
                    if !variables.contains(param) {
                        self.error(
                            "invalid-value",
                            format!("parameter `{param}` is not a variable of the URI template"),
                            Place::key(format!("{pointer}/parameters/{}", escape(param))),
                        );
                    }
                }
                ResourceTarget::Template {
                    uri_template: template.clone(),
                    variables: typed,
                }
            }
            _ => {
                self.error(
                    "invalid-value",
                    "a resource has either a `uri` or a `uri_template`",
                    Place::key(&pointer),
                )
                .help = Some("give `uri` for one fixed resource, or `uri_template` for a family of them".into());
                ResourceTarget::Static { uri: String::new() }
            }
        };
        if !is_mime_type(&r.mime_type) {
            self.error(
                "invalid-value",
                format!("`{}` is not a MIME type", r.mime_type),
                Place::value(format!("{pointer}/mime_type")),
            )
            .help = Some("write `type/subtype`, e.g. `application/json` or `text/markdown`".into());
        }
        let schema = r.schema.as_ref().and_then(|s| {
            lower_schema(
                s,
                &format!("{pointer}/schema"),
                Role::Any,
                &self.contract.defs,
                &mut schema_diags,
            )
        });
        self.diags.extend(schema_diags);
        Resource {
            name: Name::new(name),
            title: r.title.clone(),
            description: r.description.trim().to_owned(),
            target,
            mime_type: r.mime_type.clone(),
            schema,
            scopes: r.scopes.clone(),
            data_class: r.data_class.clone(),
            downstreams: r.downstreams.clone(),
            limits: self.limits(r.limits.as_ref(), defaults, &format!("{pointer}/limits")),
            handler: r.handler,
            subscribable: r.subscribable,
            suppressions: suppressions(&r.suppress, &pointer),
            pointer,
        }
    }

    /// The variables of an RFC 6570 level-1 template; other levels are refused.
    fn template_variables(&mut self, template: &str, pointer: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = template;
        if !is_absolute_uri(template) {
            self.error(
                "invalid-value",
                format!("`{template}` is not an absolute URI template"),
                Place::value(pointer),
            );
        }
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                self.error(
                    "invalid-value",
                    "unclosed `{` in the URI template",
                    Place::value(pointer),
                );
                break;
            };
            let variable = &rest[open + 1..open + close];
            if variable.is_empty() || !variable.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.error("invalid-value", format!("`{{{variable}}}` is not a simple template variable"), Place::value(pointer))
                    .help = Some("only `{name}` variables (RFC 6570 level 1) are supported: reserved and multi-segment expansions would let a caller reach paths the contract does not name".into());
            } else if out.iter().any(|v| v == variable) {
                self.error(
                    "invalid-value",
                    format!("template variable `{variable}` appears twice"),
                    Place::value(pointer),
                );
            } else {
                out.push(variable.to_owned());
            }
            rest = &rest[open + close + 1..];
        }
        if out.is_empty() {
            self.error(
                "invalid-value",
                "the URI template has no variables",
                Place::value(pointer),
            )
            .help = Some("use `uri` for a fixed resource".into());
        }
        out
    }

    fn prompt(&mut self, name: &str, p: &raw::Prompt) -> Prompt {
        let pointer = format!("/prompts/{}", escape(name));
        self.capability_name(name, &pointer, "prompt");
        self.scopes_exist(&p.scopes, &pointer);
        self.data_class_exists(p.data_class.as_deref(), &pointer);
        let version = self.semver(&p.version, &format!("{pointer}/version"));
        for (i, resource) in p.resources.iter().enumerate() {
            if !self.contract.resources.contains_key(resource) {
                self.unknown_reference(
                    "resource",
                    resource,
                    self.contract.resources.keys(),
                    Place::value(format!("{pointer}/resources/{i}")),
                );
            }
        }
        let text = match (&p.text, p.handler) {
            (Some(text), None) => text.clone(),
            (None, Some(_)) => String::new(),
            (Some(_), Some(_)) => {
                self.invalid(
                    "a prompt has either `text` or `handler`, not both".into(),
                    Place::key(format!("{pointer}/handler")),
                );
                String::new()
            }
            (None, None) => {
                self.error("missing-field", "the prompt has no `text`", Place::key(&pointer))
                    .help =
                    Some("write the message text with `{{argument}}` placeholders, or bind `handler: rust`".into());
                String::new()
            }
        };
        if !p.asks_client.is_empty() && p.handler.is_none() {
            self.error(
                "prompt-asks-without-handler",
                "only a prompt with a handler can ask the client for anything",
                Place::key(format!("{pointer}/asks_client")),
            )
            .help = Some("bind `handler: rust`, whose method asks, or remove `asks_client`".into());
        }
        let placeholders = placeholders(&text);
        for used in &placeholders {
            if !p.arguments.contains_key(used) {
                let mut d = Diagnostic::error(
                    "prompt-unknown-argument",
                    format!("the text uses `{{{{{used}}}}}`, which is not an argument"),
                    Place::value(format!("{pointer}/text")),
                );
                d = match did_you_mean(used, p.arguments.keys().map(String::as_str)) {
                    Some(k) => d.with_help(format!("did you mean `{{{{{k}}}}}`?")),
                    None => d.with_help(format!("declare `{used}` under `arguments`")),
                };
                self.diags.push(d);
            }
        }
        let arguments = p
            .arguments
            .iter()
            .map(|(arg, a)| {
                let at = format!("{pointer}/arguments/{}", escape(arg));
                self.capability_name(arg, &at, "prompt argument");
                if p.handler.is_none() && !placeholders.contains(arg) {
                    self.error(
                        "prompt-unused-argument",
                        format!("argument `{arg}` is never used in the text"),
                        Place::key(&at),
                    )
                    .help = Some(format!(
                        "write `{{{{{arg}}}}}` where it belongs in the text, or remove the argument"
                    ));
                }
                PromptArgument {
                    name: Name::new(arg),
                    description: a.description.trim().to_owned(),
                    required: a.required.unwrap_or(true),
                    max_length: a.max_length.unwrap_or(1000),
                    completions: a.completions.clone(),
                }
            })
            .collect();
        Prompt {
            name: Name::new(name),
            title: p.title.clone(),
            description: p.description.trim().to_owned(),
            version,
            arguments,
            text,
            handler: p.handler,
            asks_client: {
                let mut asks = p.asks_client.clone();
                asks.sort();
                asks.dedup();
                asks
            },
            resources: p.resources.clone(),
            scopes: p.scopes.clone(),
            data_class: p.data_class.clone(),
            suppressions: suppressions(&p.suppress, &pointer),
            pointer,
        }
    }

    fn limits(&mut self, l: Option<&raw::Limits>, defaults: &Limits, pointer: &str) -> Limits {
        let Some(l) = l else { return defaults.clone() };
        let mut out = defaults.clone();
        if let Some(rate) = &l.rate {
            match parse_rate(rate) {
                Ok(r) => out.rate = r,
                Err(e) => self.invalid(e, Place::value(format!("{pointer}/rate"))),
            }
        }
        if let Some(t) = &l.timeout {
            out.timeout = self.duration(t, &format!("{pointer}/timeout"), MAX_TIMEOUT);
        }
        if let Some(c) = l.concurrency {
            if c == 0 {
                self.invalid(
                    "a concurrency of 0 refuses every call".into(),
                    Place::value(format!("{pointer}/concurrency")),
                );
            }
            out.concurrency = c;
        }
        for (field, value, slot) in [
            ("max_request", &l.max_request, &mut out.max_request_bytes),
            ("max_response", &l.max_response, &mut out.max_response_bytes),
        ] {
            if let Some(v) = value {
                match parse_size(v) {
                    Ok(0) => self.diags.push(Diagnostic::error(
                        "invalid-value",
                        "a size of 0 refuses every call",
                        Place::value(format!("{pointer}/{field}")),
                    )),
                    Ok(n) => *slot = n,
                    Err(e) => self.diags.push(Diagnostic::error(
                        "invalid-value",
                        e,
                        Place::value(format!("{pointer}/{field}")),
                    )),
                }
            }
        }
        out
    }

    fn audit(&mut self, a: Option<&raw::Audit>) -> Audit {
        let a = a.cloned().unwrap_or_default();
        Audit {
            arguments: a.arguments.unwrap_or(true),
            results: a.results.unwrap_or(false),
            retention: match &a.retention {
                Some(r) => self.duration(r, "/audit/retention", Duration::from_secs(10 * 365 * 86_400)),
                None => Duration::from_secs(400 * 86_400),
            },
        }
    }

    fn deploy(&mut self, d: Option<&raw::Deploy>, server: &Name) -> Deploy {
        let d = d.cloned().unwrap_or_default();
        let (min, max) = d.replicas.as_ref().map(|r| (r.min, r.max)).unwrap_or((2, 4));
        if min == 0 || min > max {
            self.invalid(
                format!("replicas run from {min} to {max}: the minimum must be at least 1 and at most the maximum"),
                Place::value("/deploy/replicas"),
            );
        }
        let mut egress_cidrs = BTreeMap::new();
        for (host, cidrs) in &d.egress_cidrs {
            let pointer = format!("/deploy/egress_cidrs/{}", escape(host));
            for (i, cidr) in cidrs.iter().enumerate() {
                if let Err(why) = check_cidr(cidr) {
                    self.invalid(
                        format!("`{cidr}` is not a CIDR: {why}; write an address and prefix length, e.g. `203.0.113.0/24` or `2001:db8::/32`"),
                        Place::value(format!("{pointer}/{i}")),
                    );
                }
            }
            egress_cidrs.insert(host.clone(), cidrs.clone());
        }
        Deploy {
            namespace: d.namespace.unwrap_or_else(|| server.original.clone()),
            replicas_min: min,
            replicas_max: max,
            cpu: d.cpu.unwrap_or_else(|| "250m".into()),
            memory: d.memory.unwrap_or_else(|| "256Mi".into()),
            egress_cidrs,
            monitoring_namespace: d.monitoring_namespace.unwrap_or_else(|| "monitoring".into()),
        }
    }

    fn handler_dependencies(&mut self, h: Option<&raw::Handlers>) -> Vec<HandlerDependency> {
        let Some(h) = h else { return Vec::new() };
        let mut out = Vec::new();
        for (name, dep) in &h.dependencies {
            let pointer = format!("/handlers/dependencies/{}", escape(name));
            let (version, features, default_features) = match dep {
                raw::Dependency::Version(v) => (v.clone(), Vec::new(), true),
                raw::Dependency::Detailed(d) => (
                    d.version.clone(),
                    d.features.clone(),
                    d.default_features.unwrap_or(true),
                ),
            };
            let valid_name = !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                self.invalid(format!("`{name}` is not a crates.io crate name"), Place::key(&pointer));
                continue;
            }
            if let Some((_, instead)) = GENERATED_CRATE_DEPENDENCIES
                .iter()
                .find(|(crate_name, _)| crate_name == name)
            {
                self.error(
                    "invalid-value",
                    format!("`{name}` is already a dependency of every generated server"),
                    Place::key(&pointer),
                )
                .help = Some(format!("remove it here; {instead}"));
                continue;
            }
            if semver::VersionReq::parse(&version).is_err() || version.trim() == "*" {
                let version_pointer = match dep {
                    raw::Dependency::Version(_) => pointer.clone(),
                    raw::Dependency::Detailed(_) => format!("{pointer}/version"),
                };
                self.error(
                    "invalid-value",
                    format!("`{version}` is not a version requirement for `{name}`"),
                    Place::value(&version_pointer),
                )
                .help = Some("write a bounded requirement such as \"0.37\" or \"1.2.3\"".into());
                continue;
            }
            out.push(HandlerDependency {
                name: name.clone(),
                version,
                features,
                default_features,
                pointer,
            });
        }
        out
    }

    /// Two capabilities whose Rust names would collide in generated code.
    fn collisions(&mut self) {
        let c = self.contract;
        for (kind, names) in [
            (
                "tool",
                c.tools
                    .keys()
                    .map(|k| (k, format!("/tools/{}", escape(k))))
                    .collect::<Vec<_>>(),
            ),
            (
                "resource",
                c.resources
                    .keys()
                    .map(|k| (k, format!("/resources/{}", escape(k))))
                    .collect(),
            ),
            (
                "prompt",
                c.prompts
                    .keys()
                    .map(|k| (k, format!("/prompts/{}", escape(k))))
                    .collect(),
            ),
        ] {
            let mut seen: HashMap<String, &str> = HashMap::new();
            for (name, pointer) in names {
                let snake = Name::new(name).snake;
                if let Some(first) = seen.get(&snake) {
                    self.error("name-collision", format!("{kind} `{name}` and {kind} `{first}` have the same Rust name `{snake}`"), Place::key(pointer))
                        .help = Some("rename one of them; names that differ only in `-`, `.`, `_` or case are hard to tell apart for people too".into());
                } else {
                    seen.insert(snake, name);
                }
            }
        }
    }

    // ----- references -----

    fn scopes_exist(&mut self, scopes: &[String], pointer: &str) {
        for (i, scope) in scopes.iter().enumerate() {
            if !self.contract.access.scopes.contains_key(scope) {
                let at = if pointer.ends_with("/approval") {
                    format!("{pointer}/scope")
                } else {
                    format!("{pointer}/scopes/{i}")
                };
                self.unknown_reference("scope", scope, self.contract.access.scopes.keys(), Place::value(at));
            }
        }
    }

    fn data_class_exists(&mut self, class: Option<&str>, pointer: &str) {
        if let Some(class) = class
            && !self.contract.data_classes.contains_key(class)
        {
            self.unknown_reference(
                "data class",
                class,
                self.contract.data_classes.keys(),
                Place::value(format!("{pointer}/data_class")),
            );
        }
    }

    fn downstreams_exist(&mut self, downstreams: &[String], pointer: &str) {
        for (i, d) in downstreams.iter().enumerate() {
            if !self.contract.downstreams.contains_key(d) {
                self.unknown_reference(
                    "downstream",
                    d,
                    self.contract.downstreams.keys(),
                    Place::value(format!("{pointer}/downstreams/{i}")),
                );
            }
        }
    }

    fn unknown_reference<'k>(
        &mut self,
        kind: &str,
        name: &str,
        known: impl Iterator<Item = &'k String> + Clone,
        place: Place,
    ) {
        let section = match kind {
            "scope" => "access.scopes",
            "data class" => "data_classes",
            "downstream" => "downstreams",
            _ => "resources",
        };
        let mut d = Diagnostic::error("unknown-reference", format!("no {kind} named `{name}`"), place)
            .with_label(format!("not declared in `{section}`"));
        d = match did_you_mean(name, known.clone().map(String::as_str)) {
            Some(k) => d.with_help(format!("did you mean `{k}`?")),
            None => d.with_help(format!("declare it under `{section}`")),
        };
        self.diags.push(d);
    }

    // ----- scalar values -----

    fn invalid(&mut self, message: String, place: Place) {
        self.diags.push(Diagnostic::error("invalid-value", message, place));
    }

    fn capability_name(&mut self, name: &str, pointer: &str, kind: &str) {
        if !names::is_capability_name(name) {
            self.error(
                "invalid-name",
                format!("{kind} name `{name}` is not valid"),
                Place::key(pointer),
            )
            .help = Some("start with a letter; use letters, digits, `_`, `-` or `.`; at most 64 characters".into());
        }
    }

    fn plain_name(&mut self, name: &str, pointer: &str, kind: &str) {
        if !names::is_plain_name(name) {
            self.error(
                "invalid-name",
                format!("{kind} name `{name}` is not valid"),
                Place::key(pointer),
            )
            .help = Some("start with a lowercase letter; use lowercase letters, digits, `_` or `-`".into());
        }
    }

    fn env_name(&mut self, name: &str, pointer: &str) {
        if !names::is_env_name(name) {
            self.error("invalid-name", format!("`{name}` is not an environment variable name"), Place::value(pointer)).help =
                Some("use uppercase letters, digits and `_`, e.g. `GITHUB_TOKEN`; the value itself never goes in the contract".into());
        }
    }

    fn semver(&mut self, text: &str, pointer: &str) -> semver::Version {
        semver::Version::parse(text).unwrap_or_else(|e| {
            self.error(
                "invalid-value",
                format!("`{text}` is not a semantic version: {e}"),
                Place::value(pointer),
            )
            .help = Some("write MAJOR.MINOR.PATCH, e.g. `1.4.0`".into());
            semver::Version::new(0, 0, 0)
        })
    }

    fn date(&mut self, text: &str, pointer: &str) -> Option<jiff::civil::Date> {
        match text.parse::<jiff::civil::Date>() {
            Ok(d) if text.len() == 10 => Some(d),
            _ => {
                self.error(
                    "invalid-value",
                    format!("`{text}` is not a date"),
                    Place::value(pointer),
                )
                .help = Some("write YYYY-MM-DD, e.g. `2027-05-01`".into());
                None
            }
        }
    }

    fn duration(&mut self, text: &str, pointer: &str, max: Duration) -> Duration {
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.invalid(format!("`{text}` is zero"), Place::value(pointer));
                d
            }
            Ok(d) if d > max => {
                self.invalid(
                    format!(
                        "`{text}` is longer than the {} allowed here",
                        humantime::format_duration(max)
                    ),
                    Place::value(pointer),
                );
                d
            }
            Ok(d) => d,
            Err(e) => {
                self.invalid(e, Place::value(pointer));
                Duration::from_secs(1)
            }
        }
    }

    /// Parses a URL. `https_only` refuses plain HTTP except on loopback (local test identity providers).
    fn url(&mut self, text: &str, pointer: &str, https_only: bool) -> Option<url::Url> {
        match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
                if https_only && u.scheme() == "http" && !is_loopback(&u) {
                    self.error("invalid-value", format!("`{text}` is not an https URL"), Place::value(pointer)).help =
                        Some("identity and token endpoints must use https (plain http is accepted only on loopback, for tests)".into());
                }
                if !u.username().is_empty() || u.password().is_some() {
                    self.error(
                        "invalid-value",
                        "a URL in the contract carries credentials",
                        Place::value(pointer),
                    )
                    .help = Some("remove the user and password; credentials come from secret references".into());
                }
                Some(u)
            }
            _ => {
                self.error(
                    "invalid-value",
                    format!("`{text}` is not an http(s) URL"),
                    Place::value(pointer),
                )
                .help = Some("write an absolute URL, e.g. `https://api.example.com`".into());
                None
            }
        }
    }

    fn egress_host(&mut self, text: &str, default_port: u16, pointer: &str) -> Option<EgressHost> {
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(']') || h.ends_with(']') => match p.parse::<u16>() {
                Ok(port) if port > 0 => (h, port),
                _ => {
                    self.invalid(format!("`{p}` is not a port number"), Place::value(pointer));
                    return None;
                }
            },
            _ => (text, default_port),
        };
        let valid = !host.is_empty()
            && !host.contains("://")
            && !host.contains('/')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | '[' | ']' | ':'));
        if !valid {
            self.error(
                "invalid-value",
                format!("`{text}` is not a host"),
                Place::value(pointer),
            )
            .help = Some("write a host name with an optional port, e.g. `api.github.com:443`".into());
            return None;
        }
        Some(EgressHost {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

fn suppressions(list: &[raw::Suppression], element: &str) -> Vec<Suppression> {
    list.iter()
        .enumerate()
        .map(|(i, s)| Suppression {
            rule: s.rule.clone(),
            reason: s.reason.trim().to_owned(),
            pointer: format!("{element}/suppress/{i}"),
        })
        .collect()
}

/// The `{{name}}` placeholders of a prompt text, in order of first use.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let name = after[..close].trim();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
        rest = &after[close + 2..];
    }
    out
}

fn is_absolute_uri(uri: &str) -> bool {
    match uri.split_once(':') {
        Some((scheme, rest)) => {
            scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !rest.is_empty()
                && !uri.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn is_mime_type(text: &str) -> bool {
    let token = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c));
    let essence = text.split(';').next().unwrap_or_default().trim();
    essence.split_once('/').is_some_and(|(t, s)| token(t) && token(s))
}

pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks `text` is `ADDRESS/PREFIX` with the prefix within the address family's bits and no host
/// bits set (`10.0.0.1/8` is refused: it reads as one host but opens a whole network).
fn check_cidr(text: &str) -> Result<(), String> {
    let (address, prefix) = text.split_once('/').ok_or("it has no `/PREFIX`")?;
    let address: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("`{address}` is not an IP address"))?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= bits)
        .ok_or_else(|| format!("the prefix length must be 0 to {bits}"))?;
    let value = match address {
        std::net::IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        std::net::IpAddr::V6(a) => u128::from(a),
    };
    let host_bits = value.checked_shl(prefix).unwrap_or(0);
    if host_bits != 0 {
        return Err(format!("its address has bits set past the /{prefix} prefix"));
    }
    if prefix == 0 {
        return Err("a /0 prefix opens every address".into());
    }
    Ok(())
}

#[cfg(test)]
mod cidr_tests {
    use super::check_cidr;

    #[test]
    fn networks_pass_and_hosts_with_prefixes_do_not() {
        for ok in [
            "203.0.113.10/32",
            "10.20.0.0/16",
            "140.82.112.0/20",
            "2606:50c0::/32",
            "2001:db8::1/128",
        ] {
            assert_eq!(check_cidr(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("10.0.0.1/8", "bits set past the /8"),
            ("0.0.0.0/0", "opens every address"),
            ("::/0", "opens every address"),
            ("10.0.0.0", "no `/PREFIX`"),
            ("10.0.0.0/33", "0 to 32"),
            ("example.com/32", "not an IP address"),
            ("2001:db8::1/64", "bits set past the /64"),
        ] {
            let err = check_cidr(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
