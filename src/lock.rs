//! The tool-surface lock, `charter.lock.json`: each tool, resource and prompt
//! definition exactly as clients see it, with its SHA-256, so hosts can pin
//! definitions and `charter diff` can say what moved since the lock was taken.
//!
//! The file is deterministic (definitions sorted by kind and name, keys of each
//! definition sorted) and ends with a newline.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use std::path::Path;

use crate::digest::sha256_hex;
use crate::model::Model;
use crate::surface::{self, Kind};

/// The version of the lock format this charter reads and writes.
pub const LOCK_FORMAT: u64 = 1;

/// The key that marks a JSON file as a charter lock.
pub const FORMAT_KEY: &str = "charter_lock";

#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    pub server: String,
    pub version: semver::Version,
    /// Sorted by kind, then name.
    pub definitions: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: Kind,
    pub name: String,
    /// `surface::definition_hash` of `definition`: what a generated server publishes in `_meta`.
    pub sha256: String,
    /// The definition as `tools/list`, `resources/list`, `resources/templates/list` or `prompts/list` returns it.
    pub definition: Value,
    /// For prompts: the SHA-256 of the prompt text, which `prompts/get` returns.
    pub text_sha256: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    charter_lock: u64,
    server: FileServer,
    /// SHA-256 over the canonical JSON of every entry's kind, name and hashes: one value to pin the whole surface.
    surface_sha256: String,
    definitions: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    name: String,
    version: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    kind: String,
    name: String,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text_sha256: Option<String>,
    definition: Value,
}

fn kind_from(text: &str) -> Option<Kind> {
    [Kind::Tool, Kind::Resource, Kind::ResourceTemplate, Kind::Prompt]
        .into_iter()
        .find(|k| k.as_str() == text)
}

/// A value with the keys of every object sorted, so the file is the same whatever order the contract wrote.
fn sorted(value: &Value) -> Value {
    serde_json::from_str(&surface::canonical_json(value)).expect("canonical JSON parses")
}

impl Lock {
    /// The lock of a model's surface.
    pub fn from_model(model: &Model) -> Lock {
        let mut definitions: Vec<Entry> = surface::all(model)
            .into_iter()
            .map(|(kind, definition)| {
                let name = definition
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let text_sha256 = match kind {
                    Kind::Prompt => model
                        .prompts
                        .iter()
                        .find(|p| p.name.original == name)
                        .map(|p| prompt_text_hash(&p.text)),
                    _ => None,
                };
                Entry {
                    kind,
                    sha256: surface::definition_hash(&definition),
                    definition: sorted(&definition),
                    name,
                    text_sha256,
                }
            })
            .collect();
        definitions.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        Lock {
            server: model.server.name.original.clone(),
            version: model.server.version.clone(),
            definitions,
        }
    }

    /// The SHA-256 of the whole surface: over each entry's kind, name, hash and text hash.
    pub fn surface_sha256(&self) -> String {
        let entries: Vec<Value> = self
            .definitions
            .iter()
            .map(|e| json!({"kind": e.kind.as_str(), "name": e.name, "sha256": e.sha256, "text_sha256": e.text_sha256}))
            .collect();
        surface::definition_hash(&Value::Array(entries))
    }

    /// The lock file's text: pretty JSON, deterministic, with a trailing newline.
    pub fn to_json_pretty(&self) -> String {
        let file = File {
            charter_lock: LOCK_FORMAT,
            server: FileServer {
                name: self.server.clone(),
                version: self.version.to_string(),
            },
            surface_sha256: self.surface_sha256(),
            definitions: self
                .definitions
                .iter()
                .map(|e| FileEntry {
                    kind: e.kind.as_str().to_owned(),
                    name: e.name.clone(),
                    sha256: e.sha256.clone(),
                    text_sha256: e.text_sha256.clone(),
                    definition: e.definition.clone(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file).expect("locks serialize") + "\n"
    }

    /// Reads a lock file, checking that every hash matches its definition.
    pub fn parse(text: &str) -> Result<Lock, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if !is_lock(&value) {
            return Err(format!("not a charter lock (no `{FORMAT_KEY}` key)"));
        }
        let file: File = serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("at `{path}`: {}", e.inner()),
        })?;
        if file.charter_lock != LOCK_FORMAT {
            return Err(format!(
                "lock format {} is not supported (this charter reads format {LOCK_FORMAT})",
                file.charter_lock
            ));
        }
        let version = semver::Version::parse(&file.server.version)
            .map_err(|e| format!("server version `{}` is not semver: {e}", file.server.version))?;
        let mut definitions = Vec::new();
        for (i, e) in file.definitions.into_iter().enumerate() {
            let kind = kind_from(&e.kind).ok_or_else(|| {
                format!(
                    "definitions[{i}]: unknown kind `{}` (expected tool, resource, resource_template or prompt)",
                    e.kind
                )
            })?;
            let actual = surface::definition_hash(&e.definition);
            if actual != e.sha256 {
                return Err(format!(
                    "definitions[{i}] ({} `{}`): the recorded sha256 does not match the definition; the lock was edited by hand (regenerate it with `charter lock`)",
                    e.kind, e.name
                ));
            }
            if e.definition.get("name").and_then(Value::as_str) != Some(e.name.as_str()) {
                return Err(format!(
                    "definitions[{i}]: the name `{}` does not match the definition's name",
                    e.name
                ));
            }
            definitions.push(Entry {
                kind,
                name: e.name,
                sha256: e.sha256,
                definition: e.definition,
                text_sha256: e.text_sha256,
            });
        }
        let lock = Lock {
            server: file.server.name,
            version,
            definitions,
        };
        if lock.surface_sha256() != file.surface_sha256 {
            return Err("the recorded surface_sha256 does not match the definitions; the lock was edited by hand (regenerate it with `charter lock`)".into());
        }
        Ok(lock)
    }
}

/// A JSON value is a charter lock when it is an object with the format key.
pub fn is_lock(value: &Value) -> bool {
    value.get(FORMAT_KEY).is_some()
}

/// The SHA-256 a lock records for a prompt's text.
pub fn prompt_text_hash(text: &str) -> String {
    sha256_hex(text.as_bytes())
}

/// Writes atomically (a temporary file in the same directory, then a rename),
/// refusing to replace a file that is not a charter lock.
pub fn write_lock(path: &Path, text: &str) -> Result<(), String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let is_charter_lock = serde_json::from_str::<Value>(&existing).is_ok_and(|v| is_lock(&v));
        if !is_charter_lock {
            return Err(format!(
                "{} exists and is not a charter lock; refusing to overwrite it",
                path.display()
            ));
        }
        if existing == text {
            return Ok(());
        }
    } else if path.exists() {
        return Err(format!("{} exists and cannot be read", path.display()));
    }
    crate::atomic::write_atomically(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_tampering_and_other_files() {
        assert!(Lock::parse("{}").unwrap_err().contains("not a charter lock"));
        assert!(Lock::parse("not json").unwrap_err().contains("not JSON"));
        let lock = Lock {
            server: "demo".into(),
            version: semver::Version::new(1, 0, 0),
            definitions: vec![Entry {
                kind: Kind::Tool,
                name: "t".into(),
                sha256: surface::definition_hash(&json!({"name": "t"})),
                definition: json!({"name": "t"}),
                text_sha256: None,
            }],
        };
        let text = lock.to_json_pretty();
        assert!(text.ends_with("}\n"));
        assert_eq!(Lock::parse(&text).unwrap(), lock);
        let edited = text.replace(
            r#""name": "t"
      }"#,
            r#""name": "t", "description": "x"
      }"#,
        );
        assert_ne!(edited, text);
        assert!(Lock::parse(&edited).unwrap_err().contains("edited by hand"));
        let future = text.replace(r#""charter_lock": 1"#, r#""charter_lock": 9"#);
        assert!(Lock::parse(&future).unwrap_err().contains("not supported"));
    }
}
