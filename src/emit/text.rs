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
        let (dependencies, http_dependencies) = dependency_lines(model)?;
        let http = model.access.transports.contains(&Transport::Http);
        let mut default_features = Vec::new();
        if http {
            default_features.push("http");
        }
        if model
            .tools
            .iter()
            .any(|t| t.asks_client.contains(&crate::model::ClientRequest::Elicitation))
        {
            default_features.push("elicitation");
        }
        let ctx = context! {
            contract => options.contract_name,
            server => &model.server,
            package => &model.server.name.original,
            crate_ident => &model.server.name.snake,
            version => model.server.version.to_string(),
            env_prefix => super::env_prefix(model),
            http => http,
            default_features => default_features,
            stdio => model.access.transports.contains(&Transport::Stdio),
            oauth => &model.access.oauth,
            origins => &model.access.origins,
            scopes => &model.access.scopes,
            data_classes => &model.data_classes,
            dependencies => dependencies,
            http_dependencies => http_dependencies,
            rows => rows(model),
            downstreams => downstream_rows(model),
            limits => &model.limits,
            rate => format!("{}", model.limits.rate),
            timeout => crate::model::units::format_duration(model.limits.timeout),
            audit => &model.audit,
            retention => crate::model::units::format_duration(model.audit.retention),
            deploy => &model.deploy,
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
    let mut http = Vec::new();
    for (name, spec) in deps {
        let line = DependencyLine {
            name: name.clone(),
            spec: spec.to_string(),
        };
        let optional = spec.get("optional").and_then(|o| o.as_bool()).unwrap_or(false);
        if optional { http.push(line) } else { always.push(line) }
    }
    for dep in &model.handler_dependencies {
        let mut spec = toml::Table::new();
        spec.insert("version".into(), toml::Value::String(dep.version.clone()));
        if !dep.default_features {
            spec.insert("default-features".into(), toml::Value::Boolean(false));
        }
        if !dep.features.is_empty() {
            let features = dep.features.iter().cloned().map(toml::Value::String).collect();
            spec.insert("features".into(), toml::Value::Array(features));
        }
        always.push(DependencyLine {
            name: dep.name.clone(),
            spec: toml::Value::Table(spec).to_string(),
        });
    }
    always.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((always, http))
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
