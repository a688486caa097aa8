//! The runtime's sources, embedded at build time so every generated crate
//! carries a byte-identical copy of `runtime/src/`.

/// Each file of `runtime/src/` with its contents. A test checks this list
/// against the directory, so a new runtime file cannot be left out.
pub const SOURCES: &[(&str, &str)] = &[
    ("lib.rs", include_str!("../../runtime/src/lib.rs")),
    ("approval.rs", include_str!("../../runtime/src/approval.rs")),
    ("audit.rs", include_str!("../../runtime/src/audit.rs")),
    ("auth.rs", include_str!("../../runtime/src/auth.rs")),
    ("cli.rs", include_str!("../../runtime/src/cli.rs")),
    ("client.rs", include_str!("../../runtime/src/client.rs")),
    ("config.rs", include_str!("../../runtime/src/config.rs")),
    ("controls.rs", include_str!("../../runtime/src/controls.rs")),
    ("dispatch.rs", include_str!("../../runtime/src/dispatch.rs")),
    ("egress.rs", include_str!("../../runtime/src/egress.rs")),
    ("guard.rs", include_str!("../../runtime/src/guard.rs")),
    ("metrics.rs", include_str!("../../runtime/src/metrics.rs")),
    ("prompt.rs", include_str!("../../runtime/src/prompt.rs")),
    ("serve.rs", include_str!("../../runtime/src/serve.rs")),
    ("server.rs", include_str!("../../runtime/src/server.rs")),
    ("surface.rs", include_str!("../../runtime/src/surface.rs")),
    ("template.rs", include_str!("../../runtime/src/template.rs")),
    ("validate.rs", include_str!("../../runtime/src/validate.rs")),
];

/// The runtime's Cargo.toml, whose dependencies every generated crate repeats.
pub const MANIFEST: &str = include_str!("../../runtime/Cargo.toml");

/// Where a runtime file lands in `src/runtime/`: the crate root becomes the module root.
pub fn destination(path: &str) -> &str {
    if path == "lib.rs" { "mod.rs" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_and_runtime_agree_on_names() {
        let server = SOURCES.iter().find(|(p, _)| *p == "server.rs").unwrap().1;
        let key = format!("pub const HASH_META_KEY: &str = \"{}\";", crate::surface::HASH_META_KEY);
        assert!(
            server.contains(&key),
            "runtime/src/server.rs must publish hashes under the key the lock uses"
        );
        // The runtime's own test pins `policy-store` -> `..._POLICY_STORE_...` the same way.
        assert_eq!(super::super::env_name("policy-store"), "POLICY_STORE");
        assert_eq!(super::super::env_name("policy-search.v2"), "POLICY_SEARCH_V2");
    }

    #[test]
    fn every_runtime_source_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/runtime/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SOURCES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "runtime/src and emit::runtime::SOURCES differ");
    }
}
