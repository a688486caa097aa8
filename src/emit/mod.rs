//! Stage 3, GENERATE: model -> FileTree, every output file with its owner.
//!
//! Rust is built as token streams (`quote!`) in small builders and formatted
//! once with prettyplease; everything else comes from the minijinja templates
//! in `templates/`. Nothing here touches the disk (that is `write`), and the
//! output depends on the model alone: no timestamps, no versions, no paths of
//! the machine that ran it.

mod runtime;
pub mod rust;
mod text;
pub mod types;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{Approval, Credentials, Downstream, Model, ResourceTarget, SecretRef};
use crate::surface;

/// Who owns a file once it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// charter's: rewritten on every run, refused if edited by hand (unless `--force`).
    Generated,
    /// The team's: written once when missing, never touched again.
    Scaffold,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub contents: String,
    pub ownership: Ownership,
}

/// Every output file by its `/`-separated path in the crate.
pub type FileTree = BTreeMap<String, File>;

/// Inputs that are not part of the model.
pub struct Options<'a> {
    /// The contract's file name, as the headers and README name it.
    pub contract_name: &'a str,
}

/// Generates the whole crate for a contract that passed `charter check`.
pub fn emit(model: &Model, options: &Options) -> Result<FileTree, String> {
    let mut tree = FileTree::new();
    let mut generated = |path: &str, contents: String| {
        tree.insert(
            path.to_string(),
            File {
                contents,
                ownership: Ownership::Generated,
            },
        );
    };
    let surface_json = surface_json(model);
    let header = rust::header(options.contract_name);
    let crate_ident = model.server.name.snake.clone();

    generated("src/generated/surface.json", surface_json);
    generated("src/lib.rs", rust::format(&header, rust::lib_rs())?);
    generated("src/main.rs", rust::format(&header, rust::main_rs(&crate_ident))?);
    generated("src/generated/mod.rs", rust::format(&header, rust::generated_mod())?);
    generated("src/generated/types.rs", rust::format(&header, rust::types_rs(model))?);
    generated(
        "src/generated/handler.rs",
        rust::format(&header, rust::handler_rs(model))?,
    );
    generated(
        "src/generated/dispatch.rs",
        rust::format(&header, rust::dispatch_rs(model))?,
    );
    generated(
        "tests/contract.rs",
        rust::format(&header, rust::contract_tests(model, &crate_ident))?,
    );
    for (path, contents) in runtime::SOURCES {
        generated(
            &format!("src/runtime/{}", runtime::destination(path)),
            contents.to_string(),
        );
    }
    let texts = text::Texts::new(model, options)?;
    generated("Cargo.toml", texts.render("Cargo.toml.j2")?);
    generated("README.md", texts.render("README.md.j2")?);
    generated("REVIEW.md", texts.render("REVIEW.md.j2")?);
    generated("config.example.toml", texts.render("config.example.toml.j2")?);
    generated("deploy/Dockerfile", texts.render("Dockerfile.j2")?);
    generated("deploy/kubernetes.yaml", texts.render("kubernetes.yaml.j2")?);
    generated("charter.lock.json", lock_json(model));

    tree.insert(
        "src/handlers/mod.rs".into(),
        File {
            contents: rust::format("", rust::handlers_scaffold(model))?,
            ownership: Ownership::Scaffold,
        },
    );
    Ok(tree)
}

/// The surface the generated server embeds (`src/generated/surface.json`):
/// definitions exactly as `charter::surface` builds them, with hashes and limits.
pub fn surface_json(model: &Model) -> String {
    let limits = |l: &crate::model::Limits| {
        json!({
            "timeout_ms": l.timeout.as_millis() as u64,
            "max_request_bytes": l.max_request_bytes,
            "max_response_bytes": l.max_response_bytes,
            "rate": { "count": l.rate.count, "period_ms": l.rate.period.as_millis() as u64 },
            "concurrency": l.concurrency,
        })
    };
    let tools: Vec<Value> = model
        .tools
        .iter()
        .map(|t| {
            let definition = surface::tool(t);
            json!({
                "definition": definition,
                "hash": surface::definition_hash(&definition),
                "effect": t.effect,
                "scopes": t.scopes,
                "data_class": t.data_class,
                "approval": approval_json(&t.approval),
                "audit": { "arguments": t.audit.arguments, "results": t.audit.results },
                "limits": limits(&t.limits),
                "content": t.content,
                "progress": t.progress,
                "client_logging": t.client_logging,
                "asks_client": t.asks_client,
            })
        })
        .collect();
    let resources: Vec<Value> = model
        .resources
        .iter()
        .map(|r| {
            let definition = surface::resource(r);
            let variables = match &r.target {
                ResourceTarget::Static { .. } => Value::Null,
                ResourceTarget::Template { variables, .. } => Value::Object(
                    variables
                        .iter()
                        .map(|v| (v.name.original.clone(), v.schema.value.clone()))
                        .collect(),
                ),
            };
            json!({
                "definition": definition,
                "hash": surface::definition_hash(&definition),
                "variables": variables,
                "scopes": r.scopes,
                "data_class": r.data_class,
                "limits": limits(&r.limits),
            })
        })
        .collect();
    let prompts: Vec<Value> = model
        .prompts
        .iter()
        .map(|p| {
            let definition = surface::prompt(p);
            let max_lengths: serde_json::Map<String, Value> = p
                .arguments
                .iter()
                .map(|a| (a.name.original.clone(), json!(a.max_length)))
                .collect();
            let completions: serde_json::Map<String, Value> = p
                .arguments
                .iter()
                .filter(|a| !a.completions.is_empty())
                .map(|a| (a.name.original.clone(), json!(a.completions)))
                .collect();
            json!({
                "definition": definition,
                "hash": surface::definition_hash(&definition),
                "text": p.text,
                "handler": p.handler.is_some(),
                "max_lengths": max_lengths,
                "completions": completions,
                "scopes": p.scopes,
                "data_class": p.data_class,
            })
        })
        .collect();
    let server = &model.server;
    let value = json!({
        "server": {
            "name": server.name.original,
            "title": server.title,
            "version": server.version.to_string(),
            "description": server.description,
            "env_prefix": env_prefix(model),
            "disable": {
                "env": server.retirement.disable.as_ref().and_then(|d| d.env.clone()),
                "file": server.retirement.disable.as_ref().and_then(|d| d.file.clone()),
            },
        },
        "http": {
            "origins": model.access.origins,
            "max_request_bytes": model.limits.max_request_bytes,
        },
        "oauth": model.access.oauth.as_ref().map(|o| json!({
            "issuer": o.issuer,
            "audience": o.audience,
            "jwks_uri": o.jwks_uri,
            "algorithms": o.algorithms,
            "leeway_ms": o.leeway.as_millis() as u64,
        })),
        "scopes": model.access.scopes.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "data_classes": model
            .data_classes
            .iter()
            .map(|c| (c.name.clone(), json!(c.logs)))
            .collect::<serde_json::Map<_, _>>(),
        "downstreams": model.downstreams.iter().map(downstream_json).collect::<Vec<_>>(),
        "tools": tools,
        "resources": resources,
        "prompts": prompts,
    });
    let mut text = serde_json::to_string_pretty(&value).expect("JSON values always serialize");
    text.push('\n');
    text
}

fn approval_json(approval: &Approval) -> Value {
    match approval {
        Approval::None => json!({ "mode": "none" }),
        Approval::User => json!({ "mode": "user" }),
        Approval::Reviewer { scope, expires } => json!({
            "mode": "reviewer",
            "scope": scope,
            "expires_ms": expires.as_millis() as u64,
        }),
    }
}

/// A downstream as the runtime's egress control needs it: where it is, which
/// hosts it may reach, and where (never what) its credential is.
fn downstream_json(downstream: &Downstream) -> Value {
    let secret = |secret: &SecretRef| match secret {
        SecretRef::Env(name) => json!({ "env": name }),
        SecretRef::File(path) => json!({ "file": path }),
    };
    let credentials = match &downstream.credentials {
        Credentials::None | Credentials::CallerToken => json!({ "kind": "none" }),
        Credentials::ServiceToken { secret: s } => {
            let mut v = secret(s);
            v["kind"] = json!("service_token");
            v
        }
        Credentials::ClientCredentials {
            token_url,
            client_id,
            client_secret,
        } => json!({
            "kind": "client_credentials",
            "token_url": token_url,
            "client_id": client_id,
            "client_secret": secret(client_secret),
            "scopes": downstream.credential_scopes,
        }),
        Credentials::TokenExchange {
            token_url,
            audience,
            client_id,
            client_secret,
        } => json!({
            "kind": "token_exchange",
            "token_url": token_url,
            "audience": audience,
            "client_id": client_id,
            "client_secret": secret(client_secret),
            "scopes": downstream.credential_scopes,
        }),
    };
    json!({
        "name": downstream.name.original,
        "base_url": downstream.base_url,
        "egress": downstream.egress.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "timeout_ms": downstream.timeout.map(|t| t.as_millis() as u64),
        "credentials": credentials,
    })
}

/// The tool-surface lock (`charter lock`'s format): a hash per definition, so
/// hosts and reviewers can pin exactly what clients see.
pub fn lock_json(model: &Model) -> String {
    crate::lock::Lock::from_model(model).to_json_pretty()
}

/// Prefix of the generated server's environment overrides: `POLICY_SEARCH`.
pub fn env_prefix(model: &Model) -> String {
    env_name(&model.server.name.original)
}

/// A contract name as the runtime spells it in environment variables
/// (`config.rs`'s `screaming`): ASCII letters and digits upper-cased, the rest `_`.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
