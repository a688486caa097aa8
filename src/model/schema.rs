//! JSON Schema 2020-12 fragments in the contract: checked, made self-contained and closed,
//! then read once into a typed tree ([`SchemaTree`]) that every later reader uses.
//!
//! JSON Schema ignores keywords it does not know, so a misspelt `maxLenght`
//! silently drops a bound; here it is an error with a suggestion. References
//! must be local: `#/$defs/X` resolves first in the fragment's own `$defs`,
//! then in the contract's top-level `$defs`, whose definitions are copied in so
//! each schema stands alone as MCP requires. Objects are closed
//! (`additionalProperties: false`) unless the contract opens them explicitly.

use std::borrow::Cow;

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
    // MCP (SEP-2243): the property's value is mirrored into the `Mcp-Param-NAME` HTTP header;
    // checked by `check_header_parameters`.
    HEADER_KEYWORD,
];
const HEADER_KEYWORD: &str = "x-mcp-header";
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
    /// A tool's input: the root is an object, whose properties may be mirrored
    /// into HTTP headers (`x-mcp-header`).
    Input,
    /// A tool's output: the root is an object.
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
    let mut patterns = Vec::new();
    let mut refs = References {
        local_defs,
        shared_defs,
        needed: &mut needed,
    };
    check_node(value, pointer, &mut refs, &mut patterns, diags);
    check_header_parameters(value, pointer, role == Role::Input, diags);

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

    let root_type = root_type(&SchemaTree::read(&normalized));
    match role {
        Role::Input | Role::Object => {
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
            if root_type.as_deref() != Some("string") {
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
    for (pattern, at) in patterns {
        if let Err(e) = check_pattern(pattern) {
            diags.push(
                Diagnostic::error(
                    "invalid-schema",
                    format!("`{pattern}` is not a valid regular expression: {e}"),
                    Place::value(at),
                )
                .with_help("JSON Schema patterns are ECMA-262 regular expressions; anchor them with `^` and `$`"),
            );
        }
    }
    if diags.len() > before {
        return None;
    }
    Some(Schema::new(normalized, pointer.to_owned()))
}

/// Where `$ref`s of one schema may point, and the shared definitions they need copied in.
struct References<'a> {
    local_defs: Option<&'a Map<String, Value>>,
    shared_defs: &'a IndexMap<String, Value>,
    needed: &'a mut Vec<String>,
}

/// The `type` written at a schema's root or, without one, at the definition a root `$ref` names.
fn root_type(tree: &SchemaTree) -> Option<String> {
    let root = &tree.root;
    let typed = if root.has_keyword("type") {
        Cow::Borrowed(root)
    } else {
        tree.resolve(root).0
    };
    typed.keyword("type")?.as_str().map(str::to_owned)
}

/// `x-mcp-header` (SEP-2243) marks a property of a tool's input whose value the client also sends
/// as the `Mcp-Param-NAME` header, so gateways can route on it without reading the body. Clients
/// drop a tool whose annotations break the rules, so they are errors here: a non-empty HTTP
/// token, unique regardless of case, on a `string`, `integer` or `boolean` property reached from
/// the root through `properties` alone, and only in a tool's input.
fn check_header_parameters(schema: &Value, pointer: &str, is_input: bool, diags: &mut Vec<Diagnostic>) {
    let mut on_chain = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    // The `properties` chain from the root: each annotation here is a header parameter.
    fn chain<'v>(node: &'v Value, at: String, out: &mut Vec<(String, &'v Value)>) {
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, property) in properties {
            let here = format!("{at}/properties/{}", escape(name));
            if property.get(HEADER_KEYWORD).is_some() {
                out.push((here.clone(), property));
            }
            chain(property, here, out);
        }
    }
    if is_input {
        chain(schema, pointer.to_string(), &mut on_chain);
    }
    let mut everywhere = Vec::new();
    annotated(schema, pointer.to_string(), &mut everywhere);
    for at in everywhere {
        if on_chain.iter().any(|(p, _)| *p == at) {
            continue;
        }
        let message = if is_input {
            "`x-mcp-header` marks a property reached from the input's root through `properties` alone"
        } else {
            "`x-mcp-header` marks a property of a tool's input, and only there"
        };
        diags.push(
            Diagnostic::error("invalid-schema", message, Place::key(format!("{at}/{HEADER_KEYWORD}"))).with_help(
                "move it onto a top-level (or nested `properties`) field of the tool's `input`, or remove it",
            ),
        );
    }
    for (at, property) in on_chain {
        let place = Place::value(format!("{at}/{HEADER_KEYWORD}"));
        let header = property.get(HEADER_KEYWORD).and_then(Value::as_str).unwrap_or_default();
        let token = !header.is_empty()
            && header
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            diags.push(
                Diagnostic::error(
                    "invalid-schema",
                    format!("`x-mcp-header` must be a header name, not {}", property[HEADER_KEYWORD]),
                    place,
                )
                .with_help("use letters, digits and `-`, e.g. `Region`: the client sends it as `Mcp-Param-Region`"),
            );
            continue;
        }
        if seen.iter().any(|s| s.eq_ignore_ascii_case(header)) {
            diags.push(
                Diagnostic::error(
                    "invalid-schema",
                    format!("two properties map to the header `Mcp-Param-{header}`"),
                    place,
                )
                .with_help("header names ignore case: give each property its own name"),
            );
            continue;
        }
        seen.push(header.to_string());
        if !matches!(
            property.get("type").and_then(Value::as_str),
            Some("string" | "integer" | "boolean")
        ) {
            diags.push(
                Diagnostic::error(
                    "invalid-schema",
                    "a header parameter must be a `string`, `integer` or `boolean`",
                    place,
                )
                .with_help("a header carries one primitive value: map only such properties"),
            );
        }
    }
}

/// The pointer of every subschema that carries `x-mcp-header`, wherever it is.
fn annotated(node: &Value, at: String, out: &mut Vec<String>) {
    match node {
        Value::Object(obj) => {
            if obj.contains_key(HEADER_KEYWORD) {
                out.push(at.clone());
            }
            // Instance values (`default`, `enum`, ...) may hold anything; only subschemas count.
            for (key, value) in obj {
                if ![HEADER_KEYWORD, "default", "examples", "enum", "const"].contains(&key.as_str()) {
                    annotated(value, format!("{at}/{}", escape(key)), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                annotated(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Checks one subschema and those under it; collects each `pattern` with its pointer, for
/// compiling once the schema is known to be well-formed.
fn check_node<'v>(
    node: &'v Value,
    pointer: &str,
    refs: &mut References,
    patterns: &mut Vec<(&'v str, String)>,
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
            "$ref" => check_ref(value, &at, refs, diags),
            "pattern" => {
                if let Some(pattern) = value.as_str() {
                    patterns.push((pattern, at));
                }
            }
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
                        check_node(sub, &format!("{at}/{}", escape(name)), refs, patterns, diags);
                    }
                }
                None => diags.push(Diagnostic::error(
                    "invalid-schema",
                    format!("`{key}` must be a mapping of schemas"),
                    Place::value(&at),
                )),
            },
            k if SCHEMA_SINGLE.contains(&k) => check_node(value, &at, refs, patterns, diags),
            k if SCHEMA_LISTS.contains(&k) => match value.as_array() {
                Some(list) => {
                    for (i, sub) in list.iter().enumerate() {
                        check_node(sub, &format!("{at}/{i}"), refs, patterns, diags);
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

fn check_ref(value: &Value, at: &str, refs: &mut References, diags: &mut Vec<Diagnostic>) {
    let References {
        local_defs,
        shared_defs,
        needed,
    } = refs;
    let local_defs = *local_defs;
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
    let name = definition_name(name);
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
                out.push(definition_name(name));
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
fn is_object_schema(obj: &Map<String, Value>) -> bool {
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

/// The name a `#/$defs/NAME` reference points at, with JSON Pointer escapes undone.
fn definition_name(escaped: &str) -> String {
    escaped.replace("~1", "/").replace("~0", "~")
}

/// The most `$ref`s followed in a row: a chain of plain references that loops ends here.
const MAX_REFERENCE_CHAIN: usize = 16;

/// A JSON Schema read once into typed form. Every `$ref` it holds names one of
/// its root's `$defs` (lowering copies shared definitions in), so references
/// resolve here and nowhere else.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaTree {
    pub root: SchemaNode,
}

impl SchemaTree {
    pub fn read(json: &Value) -> SchemaTree {
        SchemaTree {
            root: SchemaNode::read(json),
        }
    }

    /// The definition `node`'s `$ref` names, with its name; `None` without a `$ref` or when
    /// it does not resolve (only schemas read from outside the model, e.g. a lock, can dangle).
    pub fn target<'a>(&'a self, node: &SchemaNode) -> Option<(&'a str, &'a SchemaNode)> {
        let name = node.reference.as_deref()?;
        self.root.entries("$defs").find(|(key, _)| *key == name)
    }

    /// `node` with its chain of `$ref`s followed, and the first definition it named. Keywords
    /// written beside a `$ref` apply over the target's, as a reader comparing shapes expects.
    pub fn resolve<'a>(&'a self, node: &'a SchemaNode) -> (Cow<'a, SchemaNode>, Option<&'a str>) {
        let mut current = Cow::Borrowed(node);
        let mut first = None;
        for _ in 0..MAX_REFERENCE_CHAIN {
            let Some((name, target)) = self.target(&current) else {
                break;
            };
            first.get_or_insert(name);
            let siblings: Vec<(&String, &Value)> = current
                .json
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(key, _)| *key != "$ref")
                .collect();
            current = match (&target.json, siblings.is_empty()) {
                (Value::Object(fields), false) => {
                    let mut merged = fields.clone();
                    merged.extend(siblings.into_iter().map(|(k, v)| (k.clone(), v.clone())));
                    Cow::Owned(SchemaNode::read(&Value::Object(merged)))
                }
                _ => Cow::Borrowed(target),
            };
            if target.boolean.is_some() {
                break;
            }
        }
        (current, first)
    }
}

/// A JSON type, as `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JsonType {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

impl JsonType {
    fn parse(name: &str) -> Option<JsonType> {
        Some(match name {
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "boolean" => JsonType::Boolean,
            "null" => JsonType::Null,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Null => "null",
        }
    }
}

/// The numeric limits a schema sets on lengths, counts and values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: Option<f64>,
    pub exclusive_maximum: Option<f64>,
    pub multiple_of: Option<f64>,
    pub unique_items: bool,
}

impl Bounds {
    fn read(obj: &Map<String, Value>) -> Bounds {
        let count = |key: &str| obj.get(key).and_then(Value::as_u64);
        let number = |key: &str| obj.get(key).and_then(Value::as_f64);
        Bounds {
            min_length: count("minLength"),
            max_length: count("maxLength"),
            min_items: count("minItems"),
            max_items: count("maxItems"),
            min_properties: count("minProperties"),
            max_properties: count("maxProperties"),
            minimum: number("minimum"),
            maximum: number("maximum"),
            exclusive_minimum: number("exclusiveMinimum"),
            exclusive_maximum: number("exclusiveMaximum"),
            multiple_of: number("multipleOf"),
            unique_items: obj.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    /// Each upper bound with its keyword: a smaller value admits less.
    pub fn upper(&self) -> [(&'static str, Option<f64>); 5] {
        [
            ("maximum", self.maximum),
            ("exclusiveMaximum", self.exclusive_maximum),
            ("maxLength", self.max_length.map(|n| n as f64)),
            ("maxItems", self.max_items.map(|n| n as f64)),
            ("maxProperties", self.max_properties.map(|n| n as f64)),
        ]
    }

    /// Each lower bound with its keyword: a larger value admits less.
    pub fn lower(&self) -> [(&'static str, Option<f64>); 5] {
        [
            ("minimum", self.minimum),
            ("exclusiveMinimum", self.exclusive_minimum),
            ("minLength", self.min_length.map(|n| n as f64)),
            ("minItems", self.min_items.map(|n| n as f64)),
            ("minProperties", self.min_properties.map(|n| n as f64)),
        ]
    }
}

/// One subschema in typed form.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaNode {
    /// The subschema as written: quoted by diff findings, and the source of keywords no
    /// reader interprets (they are compared whole).
    pub json: Value,
    /// The whole schema written as `true` (anything) or `false` (nothing).
    pub boolean: Option<bool>,
    /// `type`; `None` when the schema does not say.
    pub types: Option<Vec<JsonType>>,
    /// `type: object`, or `properties` without a `type`.
    pub object: bool,
    /// The `$defs` name a `$ref` points at.
    pub reference: Option<String>,
    /// `enum`.
    pub values: Option<Vec<Value>>,
    pub constant: Option<Value>,
    pub required: Vec<String>,
    pub bounds: Bounds,
    pub pattern: Option<String>,
    pub format: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Every subschema in the order written (properties, items, `$defs`, `anyOf`, ...).
    pub subschemas: Vec<Subschema>,
}

/// A subschema and where it sits in its parent.
#[derive(Debug, Clone, PartialEq)]
pub struct Subschema {
    /// The keyword holding it, e.g. `properties` or `items`.
    pub keyword: &'static str,
    /// The property or definition name, or the list index, under keywords that hold several.
    pub key: Option<String>,
    pub node: SchemaNode,
}

impl Subschema {
    /// Its JSON pointer, given its parent's.
    pub fn pointer(&self, parent: &str) -> String {
        match &self.key {
            Some(key) => format!("{parent}/{}/{}", self.keyword, escape(key)),
            None => format!("{parent}/{}", self.keyword),
        }
    }
}

impl SchemaNode {
    pub fn read(json: &Value) -> SchemaNode {
        let Value::Object(obj) = json else {
            return SchemaNode::opaque(json);
        };
        let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_owned);
        let types = match obj.get("type") {
            Some(Value::String(name)) => JsonType::parse(name).map(|t| vec![t]),
            Some(Value::Array(names)) => Some(
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(JsonType::parse)
                    .collect(),
            ),
            _ => None,
        };
        let mut subschemas = Vec::new();
        for (key, value) in obj {
            let entry = |keyword: &'static str, key: Option<String>, sub: &Value| Subschema {
                keyword,
                key,
                node: SchemaNode::read(sub),
            };
            if let Some(keyword) = SCHEMA_MAPS.iter().copied().find(|k| *k == key.as_str()) {
                if let Value::Object(map) = value {
                    subschemas.extend(map.iter().map(|(name, sub)| entry(keyword, Some(name.clone()), sub)));
                }
            } else if let Some(keyword) = SCHEMA_SINGLE.iter().copied().find(|k| *k == key.as_str()) {
                subschemas.push(entry(keyword, None, value));
            } else if let Some(keyword) = SCHEMA_LISTS.iter().copied().find(|k| *k == key.as_str())
                && let Value::Array(list) = value
            {
                subschemas.extend(
                    list.iter()
                        .enumerate()
                        .map(|(i, sub)| entry(keyword, Some(i.to_string()), sub)),
                );
            }
        }
        SchemaNode {
            json: json.clone(),
            boolean: None,
            types,
            object: is_object_schema(obj),
            reference: obj
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map(definition_name),
            values: obj.get("enum").and_then(Value::as_array).cloned(),
            constant: obj.get("const").cloned(),
            required: obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            bounds: Bounds::read(obj),
            pattern: text("pattern"),
            format: text("format"),
            title: text("title"),
            description: text("description"),
            subschemas,
        }
    }

    /// `true`, `false`, or a value that is no schema at all: nothing to interpret.
    fn opaque(json: &Value) -> SchemaNode {
        SchemaNode {
            json: json.clone(),
            boolean: json.as_bool(),
            types: None,
            object: false,
            reference: None,
            values: None,
            constant: None,
            required: Vec::new(),
            bounds: Bounds::default(),
            pattern: None,
            format: None,
            title: None,
            description: None,
            subschemas: Vec::new(),
        }
    }

    /// Whether the schema is a mapping of keywords (not `true`, `false` or malformed).
    pub fn has_keywords(&self) -> bool {
        self.json.is_object()
    }

    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keyword(keyword).is_some()
    }

    /// A keyword's value as written.
    pub fn keyword(&self, keyword: &str) -> Option<&Value> {
        self.json.get(keyword)
    }

    /// Whether `type` is exactly `ty`, not a list of types.
    pub fn is_only(&self, ty: JsonType) -> bool {
        self.json.get("type").is_some_and(Value::is_string) && self.types.as_deref() == Some(&[ty])
    }

    pub fn admits(&self, ty: JsonType) -> bool {
        self.types.as_ref().is_some_and(|types| types.contains(&ty))
    }

    /// The one type besides `null` of a `type: [X, "null"]` schema.
    pub fn nullable_type(&self) -> Option<JsonType> {
        match self.types.as_deref()? {
            [JsonType::Null, other] | [other, JsonType::Null] if *other != JsonType::Null => Some(*other),
            _ => None,
        }
    }

    /// The subschema under a keyword holding one, e.g. `items`.
    pub fn subschema(&self, keyword: &str) -> Option<&SchemaNode> {
        self.subschemas
            .iter()
            .find(|s| s.keyword == keyword && s.key.is_none())
            .map(|s| &s.node)
    }

    /// The named or numbered subschemas under a keyword, e.g. `properties`, in the order written.
    pub fn entries<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = (&'a str, &'a SchemaNode)> + 'a {
        self.subschemas
            .iter()
            .filter(move |s| s.keyword == keyword)
            .filter_map(|s| Some((s.key.as_deref()?, &s.node)))
    }

    pub fn properties(&self) -> impl Iterator<Item = (&str, &SchemaNode)> {
        self.entries("properties")
    }

    pub fn property(&self, name: &str) -> Option<&SchemaNode> {
        self.properties().find(|(key, _)| *key == name).map(|(_, node)| node)
    }

    pub fn items(&self) -> Option<&SchemaNode> {
        self.subschema("items")
    }

    /// `additionalProperties`.
    pub fn additional(&self) -> Option<&SchemaNode> {
        self.subschema("additionalProperties")
    }

    /// Whether `additionalProperties: false` refuses properties not named.
    pub fn is_closed(&self) -> bool {
        self.additional().is_some_and(|a| a.boolean == Some(false))
    }

    /// Visits this schema and every subschema that is a mapping of keywords, with its JSON
    /// pointer (`pointer` is this schema's), parents before children, in the order written.
    pub fn walk<'a>(&'a self, pointer: &str, visit: &mut dyn FnMut(&'a SchemaNode, &str)) {
        if !self.has_keywords() {
            return;
        }
        visit(self, pointer);
        for sub in &self.subschemas {
            sub.node.walk(&sub.pointer(pointer), visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The `invalid-schema` messages `lower_schema` gives a schema in `role`, with their pointers.
    fn header_findings(schema: Value, role: Role) -> Vec<(String, String)> {
        let mut diags = Vec::new();
        lower_schema(&schema, "/tools/t/input", role, &IndexMap::new(), &mut diags);
        diags
            .iter()
            .map(|d| (d.message.clone(), format!("{:?}", d.place)))
            .collect()
    }

    #[test]
    fn header_parameters_follow_sep_2243() {
        let good = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "filter": {"type": "object", "properties": {"tenant": {"type": "integer", "x-mcp-header": "Tenant-Id"}}}
        }});
        assert!(header_findings(good.clone(), Role::Input).is_empty());

        let findings = header_findings(good, Role::Object);
        assert_eq!(findings.len(), 2, "an output schema maps no headers: {findings:?}");
        assert!(findings[0].0.contains("only there"), "{findings:?}");

        for (schema, expected) in [
            (
                json!({"type": "object", "x-mcp-header": "Root"}),
                "through `properties` alone",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}}),
                "through `properties` alone",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "Bad Name"}}}),
                "must be a header name",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
                "must be a header name",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": 5}}}),
                "must be a header name",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "X"}, "b": {"type": "string", "x-mcp-header": "x"}}}),
                "two properties map to the header",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
                "`string`, `integer` or `boolean`",
            ),
        ] {
            let findings = header_findings(schema.clone(), Role::Input);
            assert!(
                findings.iter().any(|(m, _)| m.contains(expected)),
                "{schema}: {findings:?}"
            );
        }
        // A default that happens to hold the keyword is data, not an annotation.
        let data = json!({"type": "object", "properties": {"a": {"type": "object", "default": {"x-mcp-header": "A"}}}});
        assert!(header_findings(data, Role::Input).is_empty());
    }

    #[test]
    fn reads_keywords_into_typed_fields() {
        let tree = SchemaTree::read(&json!({
            "type": "object",
            "required": ["note"],
            "properties": {
                "note": {"type": ["string", "null"], "maxLength": 20, "format": "email"},
                "tags": {"type": "array", "items": {"const": 1}, "maxItems": 3}
            },
            "additionalProperties": false
        }));
        let root = &tree.root;
        assert!(root.object && root.is_closed());
        assert_eq!(root.required, ["note"]);
        let note = root.property("note").unwrap();
        assert_eq!(note.nullable_type(), Some(JsonType::String));
        assert!(!note.is_only(JsonType::String) && note.admits(JsonType::String));
        assert_eq!(
            (note.bounds.max_length, note.format.as_deref()),
            (Some(20), Some("email"))
        );
        let tags = root.property("tags").unwrap();
        assert_eq!(tags.items().unwrap().constant, Some(json!(1)));
        assert_eq!(tags.bounds.upper()[3], ("maxItems", Some(3.0)));
    }

    #[test]
    fn references_resolve_with_their_siblings() {
        let tree = SchemaTree::read(&json!({
            "$ref": "#/$defs/A",
            "description": "Outer.",
            "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"type": "string", "description": "Inner."}}
        }));
        let (resolved, first) = tree.resolve(&tree.root);
        assert_eq!(first, Some("A"));
        assert_eq!(resolved.types, Some(vec![JsonType::String]));
        assert_eq!(resolved.description.as_deref(), Some("Outer."));
        let (name, target) = tree.target(&tree.root).unwrap();
        assert_eq!((name, target.reference.as_deref()), ("A", Some("B")));
    }

    #[test]
    fn walks_in_written_order_with_pointers() {
        let tree = SchemaTree::read(&json!({
            "properties": {"a/b": {"type": "string"}, "c": true},
            "anyOf": [{"required": ["a/b"]}],
            "$defs": {"D": {"type": "integer"}}
        }));
        let mut seen = Vec::new();
        tree.root.walk("/in", &mut |_, at| seen.push(at.to_owned()));
        assert_eq!(seen, ["/in", "/in/properties/a~1b", "/in/anyOf/0", "/in/$defs/D"]);
    }
}
