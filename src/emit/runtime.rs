//! Where a generated server's runtime comes from.
//!
//! The server depends on `charter-runtime` as a crate of its own, by path.
//! Vendored (the default), charter writes the runtime beside the server in
//! `charter-runtime/`, byte for byte as it is in this repository, so the
//! server builds from crates.io alone and a reviewer reads every line that
//! runs; the runtime still compiles once, keeps its own version and its own
//! tests. With a path (this repository's examples use `../../runtime`),
//! nothing is copied.

use serde::{Deserialize, Serialize};

/// The runtime's directory inside a crate generated in vendored mode.
pub const VENDORED_DIR: &str = "charter-runtime";

/// Where the runtime comes from; recorded in `charter.manifest.json`, so a
/// later `charter generate` (and `--check`) keeps the same choice unless told otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuntimeSource {
    /// Copied into `charter-runtime/` beside the server.
    #[default]
    Vendored,
    /// A path to the runtime's directory, relative to the generated crate.
    Path(String),
}

impl RuntimeSource {
    /// Reads the command line's form: `vendored`, or `path:DIR`.
    pub fn parse(text: &str) -> Result<RuntimeSource, String> {
        match text.strip_prefix("path:") {
            Some("") => Err("`--runtime path:` needs a directory, e.g. `--runtime path:../charter/runtime`".into()),
            Some(dir) if dir.contains(['"', '\\', '\n']) => Err(format!(
                "`--runtime path:{dir}`: the path may not contain quotes, backslashes or newlines (write it with `/`)"
            )),
            Some(dir) => Ok(RuntimeSource::Path(dir.trim_end_matches('/').to_string())),
            None if text == "vendored" => Ok(RuntimeSource::Vendored),
            None => Err(format!(
                "unknown runtime source `{text}`: use `vendored` (copy the runtime beside the server) or `path:DIR`"
            )),
        }
    }

    /// The directory the server's Cargo.toml names in its path dependency.
    pub fn dependency_path(&self) -> &str {
        match self {
            RuntimeSource::Vendored => VENDORED_DIR,
            RuntimeSource::Path(dir) => dir,
        }
    }
}

/// Every file of the runtime a vendored crate carries (its manifest, its
/// sources and the typed seam it shares with the generator), by path inside
/// `runtime/`. The runtime's own integration tests stay in this repository,
/// except the token signer its unit tests share with them.
/// A test checks this list against the directory.
pub const SOURCES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../runtime/Cargo.toml")),
    ("src/lib.rs", include_str!("../../runtime/src/lib.rs")),
    ("src/approval.rs", include_str!("../../runtime/src/approval.rs")),
    ("src/approval_pg.rs", include_str!("../../runtime/src/approval_pg.rs")),
    ("src/approvals.rs", include_str!("../../runtime/src/approvals.rs")),
    ("src/audit.rs", include_str!("../../runtime/src/audit.rs")),
    ("src/auth.rs", include_str!("../../runtime/src/auth.rs")),
    ("src/binding.rs", include_str!("../../runtime/src/binding.rs")),
    ("src/cli.rs", include_str!("../../runtime/src/cli.rs")),
    ("src/client.rs", include_str!("../../runtime/src/client.rs")),
    ("src/config.rs", include_str!("../../runtime/src/config.rs")),
    ("src/controls.rs", include_str!("../../runtime/src/controls.rs")),
    ("src/deadline.rs", include_str!("../../runtime/src/deadline.rs")),
    ("src/dispatch.rs", include_str!("../../runtime/src/dispatch.rs")),
    ("src/egress.rs", include_str!("../../runtime/src/egress.rs")),
    ("src/error.rs", include_str!("../../runtime/src/error.rs")),
    ("src/fetch.rs", include_str!("../../runtime/src/fetch.rs")),
    ("src/guard.rs", include_str!("../../runtime/src/guard.rs")),
    ("src/jws.rs", include_str!("../../runtime/src/jws.rs")),
    ("src/metrics.rs", include_str!("../../runtime/src/metrics.rs")),
    ("src/pipeline.rs", include_str!("../../runtime/src/pipeline.rs")),
    ("src/prompt.rs", include_str!("../../runtime/src/prompt.rs")),
    ("src/report.rs", include_str!("../../runtime/src/report.rs")),
    ("src/rounds.rs", include_str!("../../runtime/src/rounds.rs")),
    ("src/selftest.rs", include_str!("../../runtime/src/selftest.rs")),
    ("src/serve.rs", include_str!("../../runtime/src/serve.rs")),
    ("src/server.rs", include_str!("../../runtime/src/server.rs")),
    ("src/sessions.rs", include_str!("../../runtime/src/sessions.rs")),
    (
        "src/shared_limits.rs",
        include_str!("../../runtime/src/shared_limits.rs"),
    ),
    (
        "src/subscriptions.rs",
        include_str!("../../runtime/src/subscriptions.rs"),
    ),
    ("src/surface.rs", include_str!("../../runtime/src/surface.rs")),
    ("src/template.rs", include_str!("../../runtime/src/template.rs")),
    ("src/tls.rs", include_str!("../../runtime/src/tls.rs")),
    ("src/validate.rs", include_str!("../../runtime/src/validate.rs")),
    // The token signer of serve.rs's unit test, shared with the integration tests.
    (
        "tests/support/jwt.rs",
        include_str!("../../runtime/tests/support/jwt.rs"),
    ),
    ("surface/Cargo.toml", include_str!("../../runtime/surface/Cargo.toml")),
    ("surface/src/lib.rs", include_str!("../../runtime/surface/src/lib.rs")),
    (
        "surface/src/simple_schema.rs",
        include_str!("../../runtime/surface/src/simple_schema.rs"),
    ),
];

/// The runtime's Cargo.toml: its features are what the generator turns on.
pub const MANIFEST: &str = include_str!("../../runtime/Cargo.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_and_runtime_agree_on_names() {
        assert_eq!(charter_surface::HASH_META_KEY, crate::surface::HASH_META_KEY);
        // The runtime's own test pins `policy-store` -> `..._POLICY_STORE_...` the same way.
        assert_eq!(super::super::env_name("policy-store"), "POLICY_STORE");
        assert_eq!(super::super::env_name("policy-search.v2"), "POLICY_SEARCH_V2");
    }

    #[test]
    fn every_runtime_source_is_vendored() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/runtime");
        let mut on_disk = vec!["Cargo.toml".to_string(), "surface/Cargo.toml".to_string()];
        for dir in ["src", "surface/src", "tests/support"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                on_disk.push(format!("{dir}/{name}"));
            }
        }
        on_disk.sort();
        let mut vendored: Vec<String> = SOURCES.iter().map(|(p, _)| p.to_string()).collect();
        vendored.sort();
        assert_eq!(on_disk, vendored, "runtime/ and emit::runtime::SOURCES differ");
    }

    #[test]
    fn runtime_sources_parse() {
        assert_eq!(RuntimeSource::parse("vendored"), Ok(RuntimeSource::Vendored));
        assert_eq!(
            RuntimeSource::parse("path:../../runtime/"),
            Ok(RuntimeSource::Path("../../runtime".into()))
        );
        assert!(RuntimeSource::parse("path:").unwrap_err().contains("needs a directory"));
        assert!(
            RuntimeSource::parse("crates.io")
                .unwrap_err()
                .contains("unknown runtime source")
        );
        assert!(RuntimeSource::parse("path:a\"b").is_err());
    }
}
