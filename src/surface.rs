//! The tool surface: each tool, resource and prompt exactly as an MCP client
//! sees it in `tools/list`, `resources/list`, `resources/templates/list` and
//! `prompts/list`.
//!
//! One function per kind builds that JSON from the model. The generator embeds
//! these definitions verbatim in the generated server, the lock file hashes
//! them, and `charter diff` compares them, so what was reviewed, what is
//! served and what is pinned cannot drift apart.

use serde_json::{Map, Value, json};

use crate::digest::sha256_hex;
use crate::model::{Model, Prompt, Resource, ResourceTarget, Tool};

/// The `_meta` key under which a generated server publishes each definition's hash.
pub const HASH_META_KEY: &str = "dev.charter/definition-sha256";

/// A tool as `tools/list` returns it (without `_meta`).
pub fn tool(tool: &Tool) -> Value {
    let mut def = Map::new();
    def.insert("name".into(), json!(tool.name.original));
    if let Some(title) = &tool.title {
        def.insert("title".into(), json!(title));
    }
    def.insert("description".into(), json!(tool.description));
    def.insert("inputSchema".into(), tool.input.value.clone());
    if let Some(output) = &tool.output {
        def.insert("outputSchema".into(), output.value.clone());
    }
    let a = &tool.annotations;
    let mut annotations = Map::new();
    if let Some(title) = &tool.title {
        annotations.insert("title".into(), json!(title));
    }
    annotations.insert("readOnlyHint".into(), json!(a.read_only_hint));
    annotations.insert("destructiveHint".into(), json!(a.destructive_hint));
    annotations.insert("idempotentHint".into(), json!(a.idempotent_hint));
    annotations.insert("openWorldHint".into(), json!(a.open_world_hint));
    def.insert("annotations".into(), Value::Object(annotations));
    Value::Object(def)
}

/// A resource as `resources/list` (static) or `resources/templates/list` (template) returns it.
pub fn resource(resource: &Resource) -> Value {
    let mut def = Map::new();
    match &resource.target {
        ResourceTarget::Static { uri } => def.insert("uri".into(), json!(uri)),
        ResourceTarget::Template { uri_template, .. } => def.insert("uriTemplate".into(), json!(uri_template)),
    };
    def.insert("name".into(), json!(resource.name.original));
    if let Some(title) = &resource.title {
        def.insert("title".into(), json!(title));
    }
    def.insert("description".into(), json!(resource.description));
    def.insert("mimeType".into(), json!(resource.mime_type));
    Value::Object(def)
}

/// A prompt as `prompts/list` returns it.
pub fn prompt(prompt: &Prompt) -> Value {
    let mut def = Map::new();
    def.insert("name".into(), json!(prompt.name.original));
    if let Some(title) = &prompt.title {
        def.insert("title".into(), json!(title));
    }
    def.insert("description".into(), json!(prompt.description));
    let arguments: Vec<Value> = prompt
        .arguments
        .iter()
        .map(|a| json!({"name": a.name.original, "description": a.description, "required": a.required}))
        .collect();
    def.insert("arguments".into(), Value::Array(arguments));
    Value::Object(def)
}

/// The hash a host pins: SHA-256 over the canonical JSON (keys sorted, no
/// whitespace) of a definition, as lowercase hex.
pub fn definition_hash(definition: &Value) -> String {
    sha256_hex(canonical_json(definition).as_bytes())
}

/// JSON with object keys sorted at every level and no insignificant
/// whitespace, so equal definitions hash equally whatever order the contract
/// wrote their keys in.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(value)).expect("JSON values always serialize")
}

/// Every definition of a model, in contract order, tagged by kind.
pub fn all(model: &Model) -> Vec<(Kind, Value)> {
    let tools = model.tools.iter().map(|t| (Kind::Tool, tool(t)));
    let resources = model.resources.iter().map(|r| {
        let kind = match r.target {
            ResourceTarget::Static { .. } => Kind::Resource,
            ResourceTarget::Template { .. } => Kind::ResourceTemplate,
        };
        (kind, resource(r))
    });
    let prompts = model.prompts.iter().map(|p| (Kind::Prompt, prompt(p)));
    tools.chain(resources).chain(prompts).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Tool,
    Resource,
    ResourceTemplate,
    Prompt,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::ResourceTemplate => "resource_template",
            Kind::Prompt => "prompt",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": null}});
        let b = json!({"a": {"c": null, "d": [1, {"y": 1, "z": 0}]}, "b": 1});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}"#);
        assert_eq!(definition_hash(&a), definition_hash(&b));
        assert_ne!(definition_hash(&a), definition_hash(&json!({"b": 2})));
    }
}
