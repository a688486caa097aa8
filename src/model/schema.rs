//! JSON Schema 2020-12 fragments in the contract: checked, made self-contained and closed.
//!
//! JSON Schema ignores keywords it does not know, so a misspelt `maxLenght`
//! silently drops a bound; here it is an error with a suggestion. References
//! must be local: `#/$defs/X` resolves first in the fragment's own `$defs`,
//! then in the contract's top-level `$defs`, whose definitions are copied in so
//! each schema stands alone as MCP requires. Objects are closed
//! (`additionalProperties: false`) unless the contract opens them explicitly.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::contract::structure::{describe_place, escape};
use crate::diagnostic::{Diagnostic, Place};
use crate::suggest::did_you_mean;

use super::Schema;

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Keywords whose value is a map of subschemas.
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "$defs", "dependentSchemas"];
/// Keywords whose value is one subschema.
const SCHEMA_SINGLE: &[&str] = &[
    "additionalProperties",
    "items",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
];
/// Keywords whose value is a list of subschemas.
const SCHEMA_LISTS: &[&str] = &["prefixItems", "allOf", "anyOf", "oneOf"];
/// Every other keyword charter accepts.
const PLAIN_KEYWORDS: &[&str] = &[
    "$schema",
    "$ref",
    "$anchor",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "required",
    "dependentRequired",
    "format",
    "contentEncoding",
    "contentMediaType",
];
const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean", "null"];
const FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// What a schema is for, which decides what its root must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A tool's input or output: the root is an object.
    Object,
    /// A resource's JSON contents: any schema.
    Any,
    /// A URI-template variable: a string.
    String,
}

/// Checks a schema and returns its normalized, self-contained form.
pub fn lower_schema(
    value: &Value,
    pointer: &str,
    role: Role,
    shared_defs: &IndexMap<String, Value>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Schema> {
    let before = diags.len();
    let Some(root) = value.as_object() else {
        diags.push(
            Diagnostic::error(
                "invalid-schema",
                format!("{} must be a JSON Schema object", describe_place(pointer)),
                Place::value(pointer),
            )
            .with_help("write a mapping such as `{ type: object, properties: { ... } }`"),
        );
        return None;
    };
    if let Some(dialect) = root.get("$schema")
        && dialect.as_str() != Some(DIALECT)
    {
        diags.push(
            Diagnostic::error(
                "invalid-schema",
                format!("schemas in a contract are JSON Schema 2020-12, not {dialect}"),
                Place::value(format!("{pointer}/$schema")),
            )
            .with_help(format!("remove `$schema` or set it to `{DIALECT}`")),
        );
    }
    let local_defs = root.get("$defs").and_then(Value::as_object);
    let mut needed = Vec::new();
    check_node(value, pointer, local_defs, shared_defs, &mut needed, diags);

    let mut normalized = value.clone();
    // Copy the shared definitions this schema uses, transitively, into its own `$defs`.
    let mut copied = Map::new();
    while let Some(name) = needed.pop() {
        if copied.contains_key(&name) || local_defs.is_some_and(|d| d.contains_key(&name)) {
            continue;
        }
        if let Some(def) = shared_defs.get(&name) {
            let mut refs = Vec::new();
            collect_refs(def, &mut refs);
            needed.extend(refs);
            copied.insert(name, def.clone());
        }
    }
    if !copied.is_empty() {
        let obj = normalized.as_object_mut().expect("checked above");
        let defs = obj.entry("$defs").or_insert_with(|| Value::Object(Map::new()));
        if let Some(defs) = defs.as_object_mut() {
            defs.extend(copied);
            defs.sort_keys();
        }
    }
    close_objects(&mut normalized);

    match role {
        Role::Object => {
            let root_type = root_type(&normalized);
            if root_type.as_deref() != Some("object") {
                diags.push(
                    Diagnostic::error("invalid-schema", format!("{} must describe an object", describe_place(pointer)), Place::value(pointer))
                        .with_label(match root_type {
                            Some(t) => format!("this schema is of type `{t}`"),
                            None => "this schema has no `type`".into(),
                        })
                        .with_help("MCP sends tool arguments and structured results as JSON objects: write `type: object` with `properties`"),
                );
            } else if normalized.get("type").is_none()
                && let Some(obj) = normalized.as_object_mut()
            {
                obj.insert("type".into(), Value::String("object".into()));
            }
        }
        Role::String => {
            if root_type(&normalized).as_deref() != Some("string") {
                diags.push(
                    Diagnostic::error(
                        "invalid-schema",
                        format!("{} must describe a string", describe_place(pointer)),
                        Place::value(pointer),
                    )
                    .with_help(
                        "URI template variables are strings: write `type: string` with a `pattern`, `enum` or `format`",
                    ),
                );
            }
        }
        Role::Any => {}
    }

    if diags.len() > before {
        return None;
    }
    // The keywords' values must be what JSON Schema 2020-12 says they are
    // (e.g. `enum` a list, `minimum` a number): the metaschema decides.
    let meta = jsonschema::draft202012::meta::validator();
    for error in meta.iter_errors(value) {
        let at = format!("{pointer}{}", error.instance_path().as_str());
        diags.push(
            Diagnostic::error(
                "invalid-schema",
                format!("not a valid JSON Schema 2020-12: {error}"),
                Place::value(at),
            )
            .with_help("see https://json-schema.org/draft/2020-12 for what each keyword takes"),
        );
    }
    // The generated server compiles every pattern at start-up: each must be a
    // regular expression its validator accepts (ECMA-262 flavoured).
    walk(value, pointer, &mut |obj: &Map<String, Value>, at: &str| {
        if let Some(Value::String(pattern)) = obj.get("pattern")
            && let Err(e) = check_pattern(pattern)
        {
            diags.push(
                Diagnostic::error(
                    "invalid-schema",
                    format!("`{pattern}` is not a valid regular expression: {e}"),
                    Place::value(format!("{at}/pattern")),
                )
                .with_help("JSON Schema patterns are ECMA-262 regular expressions; anchor them with `^` and `$`"),
            );
        }
    });
    if diags.len() > before {
        return None;
    }
    Some(Schema {
        value: normalized,
        pointer: pointer.to_owned(),
    })
}

/// The `type` of a schema's root, following a root `$ref` into `$defs`.
fn root_type(schema: &Value) -> Option<String> {
    if let Some(t) = schema.get("type") {
        return t.as_str().map(str::to_owned);
    }
    let name = schema.get("$ref")?.as_str()?.strip_prefix("#/$defs/")?;
    schema.get("$defs")?.get(name)?.get("type")?.as_str().map(str::to_owned)
}

fn check_node(
    node: &Value,
    pointer: &str,
    local_defs: Option<&Map<String, Value>>,
    shared_defs: &IndexMap<String, Value>,
    needed: &mut Vec<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let obj = match node {
        Value::Bool(_) => return,
        Value::Object(obj) => obj,
        _ => {
            diags.push(Diagnostic::error(
                "invalid-schema",
                format!("{} must be a schema (a mapping or true/false)", describe_place(pointer)),
                Place::value(pointer),
            ));
            return;
        }
    };
    let known = SCHEMA_MAPS
        .iter()
        .chain(SCHEMA_SINGLE)
        .chain(SCHEMA_LISTS)
        .chain(PLAIN_KEYWORDS);
    for (key, value) in obj {
        let at = format!("{pointer}/{}", escape(key));
        if !known.clone().any(|k| k == key) {
            let mut d = Diagnostic::error(
                "schema-unknown-keyword",
                format!("`{key}` is not a JSON Schema keyword"),
                Place::key(&at),
            )
            .with_label("JSON Schema would silently ignore this");
            if let Some(k) = did_you_mean(key, known.clone().copied()) {
                d = d.with_help(format!("did you mean `{k}`?"));
            } else if obj.contains_key("type") && !obj.contains_key("properties") {
                d = d.with_help("to describe an object's fields, put them under `properties`");
            }
            diags.push(d);
            continue;
        }
        match key.as_str() {
            "type" => check_type(value, &at, diags),
            "format" => {
                if let Some(f) = value.as_str()
                    && !FORMATS.contains(&f)
                {
                    let mut d = Diagnostic::error(
                        "schema-unknown-format",
                        format!("`{f}` is not a JSON Schema format"),
                        Place::value(&at),
                    )
                    .with_label("no validator checks this format");
                    if let Some(k) = did_you_mean(f, FORMATS.iter().copied()) {
                        d = d.with_help(format!("did you mean `{k}`?"));
                    } else {
                        d = d.with_help(format!("use a `pattern` instead, or one of: {}", FORMATS.join(", ")));
                    }
                    diags.push(d);
                }
            }
            "$ref" => check_ref(value, &at, local_defs, shared_defs, needed, diags),
            "required" => {
                if let (Some(required), Some(props)) =
                    (value.as_array(), obj.get("properties").and_then(Value::as_object))
                {
                    for (i, name) in required.iter().enumerate() {
                        if let Some(name) = name.as_str()
                            && !props.contains_key(name)
                        {
                            let mut d = Diagnostic::error(
                                "schema-required-unknown",
                                format!("required field `{name}` is not among the properties"),
                                Place::value(format!("{at}/{i}")),
                            )
                            .with_label("no property of this name");
                            if let Some(k) = did_you_mean(name, props.keys().map(String::as_str)) {
                                d = d.with_help(format!("did you mean `{k}`?"));
                            }
                            diags.push(d);
                        }
                    }
                }
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties" | "maxProperties"
                if value.as_u64().is_none() =>
            {
                diags.push(Diagnostic::error(
                    "invalid-schema",
                    format!("`{key}` must be a whole number, not {value}"),
                    Place::value(&at),
                ));
            }
            k if SCHEMA_MAPS.contains(&k) => match value.as_object() {
                Some(map) => {
                    for (name, sub) in map {
                        check_node(
                            sub,
                            &format!("{at}/{}", escape(name)),
                            local_defs,
                            shared_defs,
                            needed,
                            diags,
                        );
                    }
                }
                None => diags.push(Diagnostic::error(
                    "invalid-schema",
                    format!("`{key}` must be a mapping of schemas"),
                    Place::value(&at),
                )),
            },
            k if SCHEMA_SINGLE.contains(&k) => check_node(value, &at, local_defs, shared_defs, needed, diags),
            k if SCHEMA_LISTS.contains(&k) => match value.as_array() {
                Some(list) => {
                    for (i, sub) in list.iter().enumerate() {
                        check_node(sub, &format!("{at}/{i}"), local_defs, shared_defs, needed, diags);
                    }
                }
                None => diags.push(Diagnostic::error(
                    "invalid-schema",
                    format!("`{key}` must be a list of schemas"),
                    Place::value(&at),
                )),
            },
            _ => {}
        }
    }
    for (low, high) in [
        ("minLength", "maxLength"),
        ("minItems", "maxItems"),
        ("minimum", "maximum"),
    ] {
        if let (Some(lo), Some(hi)) = (
            obj.get(low).and_then(Value::as_f64),
            obj.get(high).and_then(Value::as_f64),
        ) && lo > hi
        {
            diags.push(Diagnostic::error(
                "invalid-schema",
                format!("`{low}` ({lo}) is greater than `{high}` ({hi}): no value can pass"),
                Place::value(format!("{pointer}/{low}")),
            ));
        }
    }
}

fn check_type(value: &Value, at: &str, diags: &mut Vec<Diagnostic>) {
    let names: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for name in names {
        match name.as_str() {
            Some(t) if TYPES.contains(&t) => {}
            Some(t) => {
                let mut d = Diagnostic::error(
                    "invalid-schema",
                    format!("`{t}` is not a JSON Schema type"),
                    Place::value(at),
                )
                .with_label(format!("expected one of {}", TYPES.join(", ")));
                let hint = match t {
                    "int" | "long" => Some("integer"),
                    "float" | "double" | "decimal" => Some("number"),
                    "bool" => Some("boolean"),
                    "str" | "text" => Some("string"),
                    "list" => Some("array"),
                    "map" | "dict" => Some("object"),
                    _ => did_you_mean(t, TYPES.iter().copied()),
                };
                if let Some(h) = hint {
                    d = d.with_help(format!("did you mean `{h}`?"));
                }
                diags.push(d);
            }
            None => diags.push(Diagnostic::error(
                "invalid-schema",
                "`type` must be a type name or a list of them",
                Place::value(at),
            )),
        }
    }
}

fn check_ref(
    value: &Value,
    at: &str,
    local_defs: Option<&Map<String, Value>>,
    shared_defs: &IndexMap<String, Value>,
    needed: &mut Vec<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(reference) = value.as_str() else {
        diags.push(Diagnostic::error(
            "schema-ref",
            "`$ref` must be a string",
            Place::value(at),
        ));
        return;
    };
    let Some(name) = reference.strip_prefix("#/$defs/") else {
        let help = if reference.contains("://") || !reference.starts_with('#') {
            "contracts are self-contained: define the schema under the contract's `$defs` and refer to it as `#/$defs/Name`"
        } else {
            "refer to definitions as `#/$defs/Name`"
        };
        diags.push(
            Diagnostic::error(
                "schema-ref",
                format!("`{reference}` is not a local definition reference"),
                Place::value(at),
            )
            .with_label("only `#/$defs/...` references are followed")
            .with_help(help),
        );
        return;
    };
    let name = name.replace("~1", "/").replace("~0", "~");
    let local = local_defs.is_some_and(|d| d.contains_key(&name));
    if local {
        return;
    }
    if shared_defs.contains_key(&name) {
        needed.push(name);
        return;
    }
    let candidates: Vec<&str> = local_defs
        .into_iter()
        .flat_map(|d| d.keys())
        .chain(shared_defs.keys())
        .map(String::as_str)
        .collect();
    let mut d = Diagnostic::error("schema-ref", format!("no definition named `{name}`"), Place::value(at))
        .with_label("this reference does not resolve");
    d = match did_you_mean(&name, candidates.iter().copied()) {
        Some(k) => d.with_help(format!("did you mean `#/$defs/{k}`?")),
        None => d.with_help("add it under the contract's top-level `$defs`"),
    };
    diags.push(d);
}

/// Names of the `#/$defs/` definitions a schema refers to.
fn collect_refs(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(obj) => {
            if let Some(name) = obj
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            {
                out.push(name.to_owned());
            }
            obj.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Compiles a pattern the way the generated server's validator will, once per distinct pattern.
fn check_pattern(pattern: &str) -> Result<(), String> {
    type Cache = std::sync::Mutex<std::collections::HashMap<String, Result<(), String>>>;
    static CHECKED: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(Default::default);
    let mut cache = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| {
            jsonschema::draft202012::new(&serde_json::json!({ "pattern": pattern }))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Whether a schema node describes an object.
pub fn is_object_schema(obj: &Map<String, Value>) -> bool {
    match obj.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => obj.contains_key("properties"),
    }
}

/// Adds `additionalProperties: false` to every object schema that says nothing about extra properties.
fn close_objects(node: &mut Value) {
    let Value::Object(obj) = node else { return };
    if is_object_schema(obj)
        && !obj.contains_key("additionalProperties")
        && !obj.contains_key("unevaluatedProperties")
        && !obj.contains_key("patternProperties")
    {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, value) in obj.iter_mut() {
        let key = key.as_str();
        if SCHEMA_MAPS.contains(&key) {
            if let Value::Object(map) = value {
                map.values_mut().for_each(close_objects);
            }
        } else if SCHEMA_SINGLE.contains(&key) {
            close_objects(value);
        } else if SCHEMA_LISTS.contains(&key)
            && let Value::Array(list) = value
        {
            list.iter_mut().for_each(close_objects);
        }
    }
}

/// Visits every subschema with its JSON pointer, for rules that inspect schemas.
pub fn walk<'a>(node: &'a Value, pointer: &str, visit: &mut dyn FnMut(&'a Map<String, Value>, &str)) {
    let Value::Object(obj) = node else { return };
    visit(obj, pointer);
    for (key, value) in obj {
        // Keywords are plain names: no pointer escaping needed, and no pointer built for non-schema keywords.
        let at = || format!("{pointer}/{key}");
        if SCHEMA_MAPS.contains(&key.as_str()) {
            if let Value::Object(map) = value {
                let at = at();
                for (name, sub) in map {
                    walk(sub, &format!("{at}/{}", escape(name)), visit);
                }
            }
        } else if SCHEMA_SINGLE.contains(&key.as_str()) {
            walk(value, &at(), visit);
        } else if SCHEMA_LISTS.contains(&key.as_str())
            && let Value::Array(list) = value
        {
            let at = at();
            for (i, sub) in list.iter().enumerate() {
                walk(sub, &format!("{at}/{i}"), visit);
            }
        }
    }
}
