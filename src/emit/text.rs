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
        "kubernetes.yaml.j2",
        include_str!("../../templates/generate/kubernetes.yaml.j2"),
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
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        let (dependencies, optional_dependencies) = dependency_lines(model)?;
        let http = model.access.transports.contains(&Transport::Http);
        let default_features = default_features(model);
        let features = runtime_features(model)?;
        let ctx = context! {
            contract => options.contract_name,
            server => &model.server,
            package => &model.server.name.original,
            crate_ident => &model.server.name.snake,
            version => model.server.version.to_string(),
            env_prefix => super::env_prefix(model),
            http => http,
            default_features => default_features,
            features => features,
            stdio => model.access.transports.contains(&Transport::Stdio),
            oauth => &model.access.oauth,
            origins => &model.access.origins,
            scopes => &model.access.scopes,
            data_classes => &model.data_classes,
            dependencies => dependencies,
            optional_dependencies => optional_dependencies,
            rows => rows(model),
            downstreams => downstream_rows(model),
            limits => &model.limits,
            rate => format!("{}", model.limits.rate),
            timeout => crate::model::units::format_duration(model.limits.timeout),
            audit => &model.audit,
            retention => crate::model::units::format_duration(model.audit.retention),
            deploy => &model.deploy,
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

/// The runtime features a contract needs, and only those: each one is a
/// dependency tree that a server without the control does not compile.
fn default_features(model: &Model) -> Vec<&'static str> {
    let http = model.access.transports.contains(&Transport::Http);
    let mut features = Vec::new();
    if http {
        features.push("http");
    }
    if http && model.access.oauth.is_some() {
        features.push("oauth");
    }
    let user_approval = model.tools.iter().any(|t| t.approval == Approval::User);
    let elicits = model
        .tools
        .iter()
        .any(|t| t.asks_client.contains(&crate::model::ClientRequest::Elicitation));
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
    features
}

/// The runtime's features, repeated in the generated manifest with the
/// comments that explain them (`# ...` lines right above each feature).
fn runtime_features(model: &Model) -> Result<Vec<FeatureLine>, String> {
    let manifest: toml::Table = toml::from_str(MANIFEST).map_err(|e| format!("runtime/Cargo.toml: {e}"))?;
    let features = manifest
        .get("features")
        .and_then(|d| d.as_table())
        .ok_or("runtime/Cargo.toml has no [features]")?;
    let mut lines = Vec::new();
    for (name, value) in features {
        if name == "default" {
            continue;
        }
        let comment = MANIFEST
            .lines()
            .collect::<Vec<_>>()
            .windows(2)
            .find(|w| w[1].starts_with(&format!("{name} = ")))
            .map(|w| w[0])
            .filter(|line| line.starts_with('#'))
            .unwrap_or_default()
            .to_string();
        // `dep:X` only names optional dependencies; one the handlers use is always on.
        let value: Vec<toml::Value> = value
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| {
                let dep = v.as_str().and_then(|v| v.strip_prefix("dep:"));
                !dep.is_some_and(|dep| model.handler_dependencies.iter().any(|d| d.name == dep))
            })
            .cloned()
            .collect();
        lines.push(FeatureLine {
            name: name.clone(),
            value: toml::Value::Array(value).to_string(),
            comment,
        });
    }
    Ok(lines)
}

#[derive(Serialize)]
struct FeatureLine {
    name: String,
    value: String,
    comment: String,
}

/// Escapes text for a Markdown table cell.
fn cell(text: String) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The runtime's dependencies (from `runtime/Cargo.toml`, so the copy and its
/// manifest cannot disagree) plus the handlers' from the contract. The HTTP
/// stack is listed apart: it is optional and on only when the contract serves HTTP.
fn dependency_lines(model: &Model) -> Result<(Vec<DependencyLine>, Vec<DependencyLine>), String> {
    let manifest: toml::Table = toml::from_str(MANIFEST).map_err(|e| format!("runtime/Cargo.toml: {e}"))?;
    let deps = manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .ok_or("runtime/Cargo.toml has no [dependencies]")?;
    let mut always = Vec::new();
    let mut optional = Vec::new();
    for (name, spec) in deps {
        // A crate the handlers also use is one dependency: the runtime's
        // optional line gives way to the handlers' (always on), and the
        // features that named it drop their `dep:` entry (see `runtime_features`).
        if model.handler_dependencies.iter().any(|d| &d.name == name) {
            continue;
        }
        let line = DependencyLine {
            name: name.clone(),
            spec: spec.to_string(),
        };
        let is_optional = spec.get("optional").and_then(|o| o.as_bool()).unwrap_or(false);
        if is_optional {
            optional.push(line)
        } else {
            always.push(line)
        }
    }
    for dep in &model.handler_dependencies {
        let mut spec = toml::Table::new();
        spec.insert("version".into(), toml::Value::String(dep.version.clone()));
        let mut default_features = dep.default_features;
        let mut features = dep.features.clone();
        // The runtime's requirements for the same crate still hold.
        if let Some(runtime) = deps.get(&dep.name) {
            if runtime.get("default-features").and_then(|d| d.as_bool()) == Some(true) {
                default_features = true;
            }
            for f in runtime.get("features").and_then(|f| f.as_array()).into_iter().flatten() {
                if let Some(f) = f.as_str()
                    && !features.iter().any(|have| have == f)
                {
                    features.push(f.to_string());
                }
            }
        }
        if !default_features {
            spec.insert("default-features".into(), toml::Value::Boolean(false));
        }
        if !features.is_empty() {
            let features = features.into_iter().map(toml::Value::String).collect();
            spec.insert("features".into(), toml::Value::Array(features));
        }
        always.push(DependencyLine {
            name: dep.name.clone(),
            spec: toml::Value::Table(spec).to_string(),
        });
    }
    always.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((always, optional))
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
        effect: "read".into(),
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
