//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The date every test checks against, so review deadlines do not move under snapshots.
pub const TODAY: &str = "2026-11-23";

pub fn today() -> jiff::civil::Date {
    TODAY.parse().unwrap()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Contract files in a folder of the repository, sorted.
pub fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Runs the charter binary from the repository root.
pub fn charter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(args)
        .current_dir(root())
        .env("CHARTER_TODAY", TODAY)
        .env("NO_COLOR", "1")
        .output()
        .expect("charter runs")
}

/// The path relative to the repository root, with forward slashes, for stable snapshots.
pub fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// A YAML file as JSON, read with the YAML parser directly (not through charter).
pub fn yaml_as_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_saphyr::from_str::<serde_json::Value>(&text).ok()
}
