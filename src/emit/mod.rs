//! Stage 3, GENERATE: model -> FileTree, every output file with its owner.
//!
//! Rust is built as token streams (`quote!`) in small builders and formatted
//! once with prettyplease; everything else comes from the minijinja templates
//! in `templates/`. Nothing here touches the disk (that is `write`), and the
//! output depends on the model alone: no timestamps, no versions, no paths of
//! the machine that ran it.

mod deploy;
pub mod runtime;
pub mod rust;
mod seam;
mod text;
pub mod types;

use std::collections::BTreeMap;

use crate::model::Model;
pub use runtime::RuntimeSource;

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
    /// Where the server's runtime comes from.
    pub runtime: &'a RuntimeSource,
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
    let surface_json = surface_json(model)?;
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
    if *options.runtime == RuntimeSource::Vendored {
        for (path, contents) in runtime::SOURCES {
            generated(&format!("{}/{path}", runtime::VENDORED_DIR), contents.to_string());
        }
    }
    let texts = text::Texts::new(model, options)?;
    generated("Cargo.toml", texts.render("Cargo.toml.j2")?);
    generated("README.md", texts.render("README.md.j2")?);
    generated("REVIEW.md", texts.render("REVIEW.md.j2")?);
    generated("config.example.toml", texts.render("config.example.toml.j2")?);
    generated("deploy/Dockerfile", texts.render("Dockerfile.j2")?);
    generated(".dockerignore", texts.render("dockerignore.j2")?);
    // A stdio-only server runs as its client's child process: it has no cluster deployment.
    if model.access.transports.contains(&crate::model::Transport::Http) {
        for (path, template) in [
            ("deploy/kubernetes.yaml", "kubernetes.yaml.j2"),
            ("deploy/network-policy.yaml", "network-policy.yaml.j2"),
            ("deploy/network-policy-fqdn.yaml", "network-policy-fqdn.yaml.j2"),
            ("deploy/alerts.yaml", "alerts.yaml.j2"),
            ("deploy/alerts.test.yaml", "alerts.test.yaml.j2"),
            ("deploy/audit-shipping.yaml", "audit-shipping.yaml.j2"),
            ("deploy/audit-shipping.patch.yaml", "audit-shipping.patch.yaml.j2"),
        ] {
            generated(path, texts.render(template)?);
        }
    }
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
/// definitions exactly as `charter::surface` builds them, with hashes and the
/// policy around each, as the typed values the runtime reads back.
pub fn surface_json(model: &Model) -> Result<String, String> {
    Ok(seam::surface(model)?.to_json_pretty())
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
