//! Text files of the generated crate (Cargo.toml, README, REVIEW, config,
//! deploy manifests), rendered from the minijinja templates in `templates/`.

use minijinja::{Environment, UndefinedBehavior, context};
use serde::Serialize;

use super::Options;
use super::runtime::MANIFEST;
use crate::model::{Approval, Credentials, Model, ResourceTarget, SecretRef, Transport};

/// The templates, embedded so the binary is self-contained.
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml.j2", include_str!("../../templates/generate/Cargo.toml.j2")),
    ("README.md.j2", include_str!("../../templates/generate/README.md.j2")),
    ("REVIEW.md.j2", include_str!("../../templates/generate/REVIEW.md.j2")),
    (
        "config.example.toml.j2",
        include_str!("../../templates/generate/config.example.toml.j2"),
    ),
    ("Dockerfile.j2", include_str!("../../templates/generate/Dockerfile.j2")),
    (
        "dockerignore.j2",
        include_str!("../../templates/generate/dockerignore.j2"),
    ),
    (
        "kubernetes.yaml.j2",
        include_str!("../../templates/generate/kubernetes.yaml.j2"),
    ),
    (
        "network-policy.yaml.j2",
        include_str!("../../templates/generate/network-policy.yaml.j2"),
    ),
    (
        "network-policy-fqdn.yaml.j2",
        include_str!("../../templates/generate/network-policy-fqdn.yaml.j2"),
    ),
    (
        "alerts.yaml.j2",
        include_str!("../../templates/generate/alerts.yaml.j2"),
    ),
    (
        "alerts.test.yaml.j2",
        include_str!("../../templates/generate/alerts.test.yaml.j2"),
    ),
    (
        "audit-shipping.yaml.j2",
        include_str!("../../templates/generate/audit-shipping.yaml.j2"),
    ),
    (
        "audit-shipping.patch.yaml.j2",
        include_str!("../../templates/generate/audit-shipping.patch.yaml.j2"),
    ),
];

pub struct Texts {
    env: Environment<'static>,
    ctx: minijinja::Value,
}

/// A line of Cargo.toml: `name = <TOML value>`.
#[derive(Serialize)]
struct DependencyLine {
    name: String,
    spec: String,
}

#[derive(Serialize)]
struct Row {
    kind: &'static str,
    name: String,
    effect: String,
    scopes: String,
    data_class: String,
    approval: String,
    downstreams: String,
    limits: String,
    description: String,
}

/// A bound tool's HTTP operation, as REVIEW.md lists it.
#[derive(Serialize)]
struct BindingRow {
    tool: String,
    method: &'static str,
    path: String,
    downstream: String,
    /// Each input property and where it goes, e.g. `owner → path`, `api_version → header X-Api-Version`.
    parameters: String,
    success: String,
    response: String,
}

#[derive(Serialize)]
struct DownstreamRow {
    name: String,
    env_name: String,
    base_url: String,
    egress: Vec<String>,
    egress_hosts: Vec<String>,
    egress_ports: Vec<u16>,
    credentials: String,
    credential_scopes: String,
    timeout: String,
}

impl Texts {
    pub fn new(model: &Model, options: &Options) -> Result<Texts, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.add_filter("cell", cell);
        env.add_filter("clause", clause);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        // Decided once: it compiles every schema of the surface to see which the subset holds.
        let features = runtime_features(model);
        let (dependencies, dev_dependencies) = dependency_lines(model, options.runtime, &features)?;
        let http = model.access.transports.contains(&Transport::Http);
        let ctx = context! {
            contract => options.contract_name,
            server => &model.server,
            package => &model.server.name.original,
            crate_ident => &model.server.name.snake,
            version => model.server.version.to_string(),
            env_prefix => super::env_prefix(model),
            http => http,
            runtime_features => &features,
            enforcement => enforcement(model, &features),
            vendored => *options.runtime == super::RuntimeSource::Vendored,
            runtime_path => options.runtime.dependency_path(),
            stdio => model.access.transports.contains(&Transport::Stdio),
            oauth => &model.access.oauth,
            origins => &model.access.origins,
            scopes => &model.access.scopes,
            data_classes => &model.data_classes,
            dependencies => dependencies,
            dev_dependencies => dev_dependencies,
            rows => rows(model),
            downstreams => downstream_rows(model),
            bindings => binding_rows(model),
            limits => &model.limits,
            rate => format!("{}", model.limits.rate),
            timeout => crate::model::units::format_duration(model.limits.timeout),
            audit => &model.audit,
            retention => crate::model::units::format_duration(model.audit.retention),
            deploy => &model.deploy,
            plan => super::deploy::DeployPlan::new(model),
            reviewers => model.tools.iter().any(|t| matches!(t.approval, Approval::Reviewer { .. })),
            writes => model.tools.iter().filter(|t| t.approval != Approval::None).map(|t| &t.name.original).collect::<Vec<_>>(),
        };
        Ok(Texts { env, ctx })
    }

    pub fn render(&self, name: &str) -> Result<String, String> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| format!("template {name}: {e}"))?;
        template
            .render(&self.ctx)
            .map_err(|e| format!("template {name}: {e:#}"))
    }
}

/// The runtime feature of the global allocator every generated `main.rs` declares: on in every
/// server, so it is not among the contract's features.
const ALLOCATOR_FEATURE: &str = "mimalloc";

/// The runtime features a contract needs, and only those: each one is a
/// dependency tree that a server without the control does not compile. The
/// generator decides them; they are not the team's toggles.
fn runtime_features(model: &Model) -> Vec<&'static str> {
    let http = model.access.transports.contains(&Transport::Http);
    let mut features = Vec::new();
    if http {
        features.push("http");
    }
    if http && let Some(oauth) = &model.access.oauth {
        features.push("oauth");
        // Only the signature families the contract accepts are compiled in.
        use charter_surface::{OAUTH_ALGORITHM_FEATURES, oauth_algorithm_feature};
        for &family in OAUTH_ALGORITHM_FEATURES {
            if oauth
                .algorithms
                .iter()
                .any(|alg| oauth_algorithm_feature(alg) == Some(family))
            {
                features.push(family);
            }
        }
    }
    let user_approval = model.tools.iter().any(|t| t.approval == Approval::User);
    let elicitation = crate::model::ClientRequest::Elicitation;
    let elicits = model.tools.iter().any(|t| t.asks_client.contains(&elicitation))
        || model.prompts.iter().any(|p| p.asks_client.contains(&elicitation));
    if elicits || user_approval {
        features.push("elicitation");
    }
    if model
        .tools
        .iter()
        .any(|t| matches!(t.approval, Approval::Reviewer { .. }))
    {
        features.push("approvals");
    }
    if !model.downstreams.is_empty() {
        features.push("egress");
    }
    // A schema beyond the runtime's built-in subset (a `format: email`, `not`, a `pattern` with
    // `\d`, ...) needs the `jsonschema` crate.
    // Plain patterns are in the subset, on the regex crate (feature `patterns`), compiled only
    // for schemas that have one.
    let surface = super::seam::surface(model).ok();
    let schemas = surface
        .as_ref()
        .map(charter_surface::simple_schema::surface_schemas)
        .unwrap_or_default();
    use charter_surface::simple_schema::{SimpleSchema, has_pattern};
    if surface.is_none() || schemas.iter().any(|schema| !SimpleSchema::fits(schema)) {
        features.push("json-schema");
    }
    // The reviewer-approval tools take an operation hash by `pattern` too.
    if features.contains(&"approvals") || schemas.iter().any(|schema| has_pattern(schema)) {
        features.push("patterns");
    }
    // More than one replica: limits are shared through Redis and pending approvals through
    // PostgreSQL, so they hold across replicas.
    if http && model.deploy.replicas_max > 1 {
        if features.contains(&"approvals") {
            features.push("postgres");
        }
        features.push("redis");
    }
    features
}

/// Text that continues a sentence inside a table cell: as `cell`, without a
/// final full stop (the sentence goes on after it).
fn clause(text: String) -> String {
    cell(text).trim_end_matches('.').to_string()
}

/// One row of REVIEW.md's enforcement table.
#[derive(Serialize)]
struct Control {
    what: String,
    status: String,
}

/// What this crate enforces, row by row, from the contract and the runtime
/// features it turns on: a control this build leaves out says so and why.
fn enforcement(model: &Model, features: &[&str]) -> Vec<Control> {
    let on = |feature: &str| features.contains(&feature);
    let http = model.access.transports.contains(&Transport::Http);
    let writes: Vec<String> = model
        .tools
        .iter()
        .filter(|t| t.approval != Approval::None)
        .map(|t| format!("`{}`", t.name.original))
        .collect();
    let reviewers = model
        .tools
        .iter()
        .any(|t| matches!(t.approval, Approval::Reviewer { .. }));
    let row = |what: &str, status: String| Control {
        what: what.into(),
        status,
    };
    let yes = || "yes".to_string();
    let mut rows = vec![
        row(
            "Arguments validated against the contract's schemas before any handler runs; outputs validated before they leave",
            yes(),
        ),
        row("Request and response size caps, per-call timeouts, cancellation", yes()),
        row(
            "Content kinds, progress, client logging, sampling and elicitation only where the contract declares them",
            yes(),
        ),
        row(
            "Scopes per tool, resource and prompt on every call; lists show each caller only what it may use",
            yes(),
        ),
        row(
            "Rate limits per caller and capability, concurrency caps",
            if http && model.deploy.replicas_max > 1 {
                format!(
                    "yes (429 with `Retry-After` on HTTP), shared by the {} to {} replicas through Redis (`rate_limits.redis_url_env`); without Redis each replica limits on its own, so a limit admits up to {}x its rate",
                    model.deploy.replicas_min, model.deploy.replicas_max, model.deploy.replicas_max
                )
            } else if http {
                "yes (429 with `Retry-After` on HTTP); one replica".into()
            } else {
                yes()
            },
        ),
        row(
            "Audit log: a hash-chained JSON-lines record per decision and outcome, arguments redacted by data class; draft and write calls have their intent on disk first and fail closed without it",
            yes(),
        ),
        row(
            "Kill switch for the whole server and per tool (the environment variable at start-up; the file, a mounted ConfigMap in the cluster, re-read every second)",
            yes(),
        ),
    ];
    rows.push(row(
        "Host and Origin allowlists, JSON nesting cap, `/healthz`, `/readyz` and `/metrics`",
        if on("http") {
            yes()
        } else {
            "not built: the contract serves stdio only".into()
        },
    ));
    rows.push(row(
        "OAuth 2.1 bearer tokens (issuer, audience, expiry, asymmetric algorithms, JWKS); RFC 9728 metadata; 401 with `WWW-Authenticate`",
        if on("oauth") {
            yes()
        } else if http {
            "not built: the contract has no `access.oauth`, so HTTP serves only on loopback or with `--dev-no-auth`".into()
        } else {
            "not built: stdio runs as the local user".into()
        },
    ));
    rows.push(row(
        "Human approval for state changes, bound to the exact operation's hash, run once",
        match (writes.is_empty(), reviewers) {
            (true, _) => "not needed: no tool requires approval".into(),
            (false, false) => format!("yes, the calling user confirms: {}", writes.join(", ")),
            (false, true) => format!(
                "yes, for {}; pending approvals are stored {}",
                writes.join(", "),
                if http && model.deploy.replicas_max > 1 {
                    "in PostgreSQL (`approvals.postgres_url_env`), shared by every replica: an approval decided on one runs once on any; over stdio, in SQLite (`approvals.path`)"
                } else {
                    "in SQLite (`approvals.path`) on the server's own volume (one replica)"
                }
            ),
        },
    ));
    if http {
        let plan = super::deploy::DeployPlan::new(model);
        rows.push(row(
            "Network (deploy/network-policy.yaml): ingress to the MCP port only, metrics from the monitoring namespace; egress to cluster DNS and the contract's `deploy.egress_cidrs` only",
            if plan.unaddressed.is_empty() {
                "yes".into()
            } else {
                format!(
                    "yes; blocked until their addresses are listed (or the FQDN policy is used): {}",
                    plan.unaddressed.join(", ")
                )
            },
        ));
    }
    rows.push(row(
        "Egress: each tool reaches only the downstreams it lists, and only their declared hosts; private, loopback and metadata addresses and redirects off the list refused",
        if on("egress") {
            "yes, for calls through `Context::downstream`; a handler that opens its own connections bypasses it, so review `src/handlers/` and `handlers.dependencies` for other HTTP clients".into()
        } else {
            "not built: the contract declares no downstreams".into()
        },
    ));
    rows
}

/// Escapes text for a Markdown table cell.
fn cell(text: String) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The server's own dependencies: the runtime (by path, with the features the
/// contract needs), what the generated code uses, and the handlers' crates
/// from the contract; a crate named twice is one line with both sides' features.
/// The dev-dependencies run the generated tests.
fn dependency_lines(
    model: &Model,
    runtime: &super::RuntimeSource,
    runtime_features: &[&str],
) -> Result<(Vec<DependencyLine>, Vec<DependencyLine>), String> {
    let manifest: toml::Table = toml::from_str(MANIFEST).map_err(|e| format!("runtime/Cargo.toml: {e}"))?;
    let runtime_deps = manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .ok_or("runtime/Cargo.toml has no [dependencies]")?;
    let version_of = |name: &str| -> Result<toml::Value, String> {
        runtime_deps
            .get(name)
            .and_then(|d| {
                d.as_str()
                    .map(String::from)
                    .or_else(|| d.get("version")?.as_str().map(String::from))
            })
            .map(toml::Value::String)
            .ok_or_else(|| format!("runtime/Cargo.toml does not depend on {name}"))
    };
    let mut deps: std::collections::BTreeMap<String, toml::Table> = std::collections::BTreeMap::new();
    // The generated types derive serde's traits and hold JSON values.
    let mut serde = toml::Table::new();
    serde.insert("version".into(), version_of("serde")?);
    serde.insert(
        "features".into(),
        toml::Value::Array(vec![toml::Value::String("derive".into())]),
    );
    deps.insert("serde".into(), serde);
    let mut serde_json = toml::Table::new();
    serde_json.insert("version".into(), version_of("serde_json")?);
    deps.insert("serde_json".into(), serde_json);
    for dep in &model.handler_dependencies {
        let spec = deps.entry(dep.name.clone()).or_default();
        spec.insert("version".into(), toml::Value::String(dep.version.clone()));
        if !dep.default_features && !spec.contains_key("features") {
            spec.insert("default-features".into(), toml::Value::Boolean(false));
        }
        let mut features: Vec<String> = spec
            .get("features")
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(String::from))
            .collect();
        for f in &dep.features {
            if !features.contains(f) {
                features.push(f.clone());
            }
        }
        if !features.is_empty() {
            spec.insert(
                "features".into(),
                toml::Value::Array(features.into_iter().map(toml::Value::String).collect()),
            );
        }
    }
    let line = |(name, spec): (String, toml::Table)| DependencyLine {
        name,
        spec: toml::Value::Table(spec).to_string(),
    };
    // The runtime first, its keys in the order a person reads them: where, then what.
    // The allocator the generated main.rs declares, whatever the contract, then the contract's features.
    let features: Vec<String> = std::iter::once(&ALLOCATOR_FEATURE)
        .chain(runtime_features)
        .map(|f| format!("\"{f}\""))
        .collect();
    let mut dependencies = vec![DependencyLine {
        name: "charter-runtime".into(),
        spec: format!(
            "{{ path = {}, default-features = false, features = [{}] }}",
            toml::Value::String(runtime.dependency_path().into()),
            features.join(", ")
        ),
    }];
    dependencies.extend(deps.into_iter().map(line));
    // `#[tokio::test]` in tests/contract.rs.
    let mut tokio = toml::Table::new();
    tokio.insert("version".into(), version_of("tokio")?);
    tokio.insert(
        "features".into(),
        toml::Value::Array(vec![
            toml::Value::String("macros".into()),
            toml::Value::String("rt-multi-thread".into()),
        ]),
    );
    let dev_dependencies = vec![line(("tokio".into(), tokio))];
    Ok((dependencies, dev_dependencies))
}

fn rows(model: &Model) -> Vec<Row> {
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    let limits = |l: &crate::model::Limits| {
        format!(
            "{}, {} timeout, {} concurrent",
            l.rate,
            crate::model::units::format_duration(l.timeout),
            l.concurrency
        )
    };
    let mut rows: Vec<Row> = model
        .tools
        .iter()
        .map(|t| Row {
            kind: "tool",
            name: t.name.original.clone(),
            effect: t.effect.as_str().into(),
            scopes: list(&t.scopes),
            data_class: t.data_class.clone().unwrap_or_else(|| "none".into()),
            approval: match &t.approval {
                Approval::None => "none".into(),
                Approval::User => "the caller confirms the exact operation".into(),
                Approval::Reviewer { scope, expires } => format!(
                    "a second person with `{scope}`, within {}",
                    crate::model::units::format_duration(*expires)
                ),
            },
            downstreams: list(&t.downstreams),
            limits: limits(&t.limits),
            description: t.description.clone(),
        })
        .collect();
    rows.extend(model.resources.iter().map(|r| Row {
        kind: match r.target {
            ResourceTarget::Static { .. } => "resource",
            ResourceTarget::Template { .. } => "resource template",
        },
        name: r.name.original.clone(),
        effect: if r.subscribable { "read, subscribable" } else { "read" }.into(),
        scopes: list(&r.scopes),
        data_class: r.data_class.clone().unwrap_or_else(|| "none".into()),
        approval: "none".into(),
        downstreams: list(&r.downstreams),
        limits: limits(&r.limits),
        description: r.description.clone(),
    }));
    rows.extend(model.prompts.iter().map(|p| Row {
        kind: "prompt",
        name: format!("{} v{}", p.name.original, p.version),
        effect: "none".into(),
        scopes: list(&p.scopes),
        data_class: p.data_class.clone().unwrap_or_else(|| "none".into()),
        approval: "none".into(),
        downstreams: if p.resources.is_empty() {
            "none".into()
        } else {
            format!("resources: {}", p.resources.join(", "))
        },
        limits: "-".into(),
        description: p.description.clone(),
    }));
    rows
}

fn binding_rows(model: &Model) -> Vec<BindingRow> {
    model
        .tools
        .iter()
        .filter_map(|t| {
            let b = t.binding.as_ref()?;
            let parameters: Vec<String> = b
                .parameters
                .iter()
                .map(|p| {
                    let wire = if p.name == p.property {
                        String::new()
                    } else {
                        format!(" `{}`", p.name)
                    };
                    let joined = if p.location == crate::model::ParameterLocation::Query && !p.explode {
                        " (comma-joined)"
                    } else {
                        ""
                    };
                    format!("`{}` → {}{wire}{joined}", p.property, p.location)
                })
                .collect();
            Some(BindingRow {
                tool: t.name.original.clone(),
                method: b.method.as_str(),
                path: b.path.clone(),
                downstream: b.downstream.clone(),
                parameters: if parameters.is_empty() {
                    "none".into()
                } else {
                    parameters.join(", ")
                },
                success: b.success.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
                response: match &b.response_field {
                    Some(field) => format!("the JSON body, as `{field}`"),
                    None => "the JSON body".into(),
                },
            })
        })
        .collect()
}

fn downstream_rows(model: &Model) -> Vec<DownstreamRow> {
    let secret = |s: &SecretRef| match s {
        SecretRef::Env(name) => format!("env {name}"),
        SecretRef::File(path) => format!("file {path}"),
    };
    model
        .downstreams
        .iter()
        .map(|d| DownstreamRow {
            name: d.name.original.clone(),
            env_name: super::env_name(&d.name.original),
            base_url: d.base_url.clone(),
            egress: d.egress.iter().map(ToString::to_string).collect(),
            egress_hosts: d.egress.iter().map(|e| e.host.clone()).collect(),
            egress_ports: d.egress.iter().map(|e| e.port).collect(),
            credentials: match &d.credentials {
                Credentials::None => "none".into(),
                Credentials::ServiceToken { secret: s } => format!("service token ({})", secret(s)),
                Credentials::ClientCredentials {
                    client_id,
                    client_secret,
                    ..
                } => {
                    format!("client credentials for `{client_id}` ({})", secret(client_secret))
                }
                Credentials::TokenExchange {
                    audience,
                    client_secret,
                    ..
                } => {
                    format!("token exchange for audience `{audience}` ({})", secret(client_secret))
                }
                Credentials::CallerToken => "the caller's token (refused by charter check)".into(),
            },
            credential_scopes: if d.credential_scopes.is_empty() {
                "none".into()
            } else {
                d.credential_scopes.join(", ")
            },
            timeout: d
                .timeout
                .map(crate::model::units::format_duration)
                .unwrap_or_else(|| "tool timeout".into()),
        })
        .collect()
}
