//! OpenAPI schemas to the contract's JSON Schema 2020-12 dialect.
//!
//! `#/components/schemas/X` references become `#/$defs/X'` (a name valid for
//! the contract) and X is converted once, the first time an operation reaches
//! it; recursion stays a reference. Other local references are resolved in
//! place. 3.0's `nullable` becomes a type list with `"null"`, its boolean
//! `exclusiveMinimum`/`exclusiveMaximum` the 2020-12 numbers; keywords the
//! contract refuses (`discriminator`, `xml`, `externalDocs`, `example`,
//! `readOnly`, `writeOnly`, `x-*`, unknown formats, ...) are dropped.

use std::collections::{BTreeMap, HashSet};

use heck::ToUpperCamelCase;
use serde_json::{Map, Value, json};

use super::document::{Document, Version, escape, local_pointer, unescape};
use super::text;

/// Schemas nest at most this deep (references do not count: they are not expanded).
const MAX_DEPTH: usize = 64;

const SUBSCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "dependentSchemas"];
const SUBSCHEMA_ONE: &[&str] = &[
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
const SUBSCHEMA_LISTS: &[&str] = &["prefixItems", "allOf", "anyOf", "oneOf"];
/// Kept as written.
const PLAIN: &[&str] = &[
    "type",
    "enum",
    "const",
    "default",
    "deprecated",
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
    "contentEncoding",
    "contentMediaType",
];
const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean", "null"];
/// The formats `charter check` accepts.
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

/// The conversion of one document's schemas: the definitions reached so far.
pub struct Converter<'d> {
    doc: &'d Document,
    /// Component name -> definition name, for every component reached (or being converted).
    names: BTreeMap<String, String>,
    taken: HashSet<String>,
    /// Definition name -> converted schema, once done.
    pub defs: BTreeMap<String, Value>,
    /// Findings on texts, keyed by pointer so a shared component is reported once.
    pub texts: BTreeMap<String, text::Notes>,
    /// Local references being resolved in place (not to components): a cycle among them is refused.
    inline_stack: Vec<String>,
}

impl<'d> Converter<'d> {
    pub fn new(doc: &'d Document) -> Converter<'d> {
        Converter {
            doc,
            names: BTreeMap::new(),
            taken: HashSet::new(),
            defs: BTreeMap::new(),
            texts: BTreeMap::new(),
            inline_stack: Vec::new(),
        }
    }

    /// The definition name of a component: UpperCamelCase, unique.
    fn def_name(&mut self, component: &str) -> String {
        if let Some(name) = self.names.get(component) {
            return name.clone();
        }
        let mut base = component.to_upper_camel_case();
        if !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
            base = format!("Schema{base}");
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        self.names.insert(component.to_owned(), name.clone());
        name
    }

    /// Forgets a component whose conversion failed, so every operation reaching it is refused.
    fn forget(&mut self, component: &str) {
        if let Some(name) = self.names.remove(component) {
            self.taken.remove(&name);
            self.defs.remove(&name);
        }
    }

    /// Converts the schema at `pointer`; the error says why it cannot be.
    pub fn convert(&mut self, schema: &Value, pointer: &str) -> Result<Value, String> {
        self.schema(schema, pointer, 0)
    }

    /// A description or title cleaned, its findings recorded.
    pub fn text(&mut self, text: &str, pointer: &str, max: usize) -> String {
        let (clean, notes) = text::clean(text, max);
        if !notes.is_empty() {
            self.texts.insert(pointer.to_owned(), notes);
        }
        clean
    }

    fn schema(&mut self, schema: &Value, pointer: &str, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("the schema at {pointer} nests deeper than {MAX_DEPTH} levels"));
        }
        let obj = match schema {
            Value::Bool(b) => return Ok(Value::Bool(*b)),
            Value::Object(obj) => obj,
            _ => return Err(format!("the schema at {pointer} is not an object")),
        };
        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            let target = self.reference(reference, pointer, depth)?;
            // 3.0 ignores a reference's siblings; 3.1 applies them.
            if self.doc.version == Version::V30 || obj.len() == 1 {
                return Ok(target);
            }
            let mut rest = obj.clone();
            rest.remove("$ref");
            let rest = self.schema(&Value::Object(rest), pointer, depth + 1)?;
            return Ok(match rest {
                Value::Object(m) if m.is_empty() => target,
                rest => json!({ "allOf": [target, rest] }),
            });
        }
        for unsupported in ["$id", "$dynamicRef", "$dynamicAnchor", "$defs", "definitions"] {
            if obj.contains_key(unsupported) {
                return Err(format!(
                    "the schema at {pointer} uses `{unsupported}`, which charter cannot carry into a contract"
                ));
            }
        }
        let mut out = Map::new();
        for (key, value) in obj {
            let at = format!("{pointer}/{}", escape(key));
            match key.as_str() {
                "title" => {
                    if let Some(t) = value.as_str() {
                        out.insert(key.clone(), Value::String(self.text(t, &at, 200)));
                    }
                }
                "description" => {
                    if let Some(t) = value.as_str() {
                        let t = self.text(t, &at, text::MAX_DESCRIPTION);
                        if !t.is_empty() {
                            out.insert(key.clone(), Value::String(t));
                        }
                    }
                }
                "format" => match value.as_str() {
                    Some(f) if FORMATS.contains(&f) => {
                        out.insert(key.clone(), value.clone());
                    }
                    Some("byte") => {
                        out.insert("contentEncoding".into(), Value::String("base64".into()));
                    }
                    _ => {}
                },
                "type" => match value {
                    Value::String(t) if TYPES.contains(&t.as_str()) => {
                        out.insert(key.clone(), value.clone());
                    }
                    Value::Array(ts) => {
                        let ts: Vec<Value> = ts
                            .iter()
                            .filter(|t| t.as_str().is_some_and(|t| TYPES.contains(&t)))
                            .cloned()
                            .collect();
                        if !ts.is_empty() {
                            out.insert(key.clone(), Value::Array(ts));
                        }
                    }
                    _ => {}
                },
                "exclusiveMinimum" | "exclusiveMaximum" if value.is_boolean() => {
                    // 3.0: a flag on `minimum`/`maximum`; 2020-12: the bound itself.
                    let bound = if key == "exclusiveMinimum" {
                        "minimum"
                    } else {
                        "maximum"
                    };
                    if value == &Value::Bool(true)
                        && let Some(b) = obj.get(bound)
                    {
                        out.insert(key.clone(), b.clone());
                    }
                }
                k if SUBSCHEMA_MAPS.contains(&k) => {
                    let Some(map) = value.as_object() else { continue };
                    let mut converted = Map::new();
                    for (name, sub) in map {
                        converted.insert(
                            name.clone(),
                            self.schema(sub, &format!("{at}/{}", escape(name)), depth + 1)?,
                        );
                    }
                    out.insert(key.clone(), Value::Object(converted));
                }
                k if SUBSCHEMA_ONE.contains(&k) => {
                    out.insert(key.clone(), self.schema(value, &at, depth + 1)?);
                }
                k if SUBSCHEMA_LISTS.contains(&k) => {
                    let Some(items) = value.as_array() else { continue };
                    let mut converted = Vec::new();
                    for (i, sub) in items.iter().enumerate() {
                        converted.push(self.schema(sub, &format!("{at}/{i}"), depth + 1)?);
                    }
                    out.insert(key.clone(), Value::Array(converted));
                }
                k if PLAIN.contains(&k) => {
                    out.insert(key.clone(), value.clone());
                }
                // nullable, example(s), readOnly, writeOnly, discriminator, xml, externalDocs, x-*, ...
                _ => {}
            }
        }
        // A bound only meaningful next to its 3.0 exclusive flag stays; drop the duplicate.
        for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
            if obj.get(flag) == Some(&Value::Bool(true)) && out.contains_key(flag) {
                out.remove(bound);
            }
        }
        // `required` names only properties the schema lists (charter refuses the rest).
        if let Some(Value::Array(required)) = out.get("required") {
            let props = out.get("properties").and_then(Value::as_object);
            let kept: Vec<Value> = required
                .iter()
                .filter(|r| r.as_str().is_some_and(|r| props.is_some_and(|p| p.contains_key(r))))
                .cloned()
                .collect();
            if kept.is_empty() {
                out.remove("required");
            } else {
                out.insert("required".into(), Value::Array(kept));
            }
        }
        if self.doc.version == Version::V30 && obj.get("nullable") == Some(&Value::Bool(true)) {
            return Ok(nullable(out));
        }
        Ok(Value::Object(out))
    }

    /// A `$ref`: a component becomes a definition; any other local target is converted in place.
    fn reference(&mut self, reference: &str, pointer: &str, depth: usize) -> Result<Value, String> {
        let target = local_pointer(reference)?;
        if let Some(component) = target.strip_prefix("/components/schemas/").filter(|c| !c.contains('/')) {
            let component = unescape(component);
            if let Some(name) = self.names.get(&component) {
                return Ok(json!({ "$ref": format!("#/$defs/{name}") }));
            }
            let schema = self
                .doc
                .root
                .pointer(&target)
                .ok_or_else(|| format!("`$ref: {reference}` at {pointer} points at nothing in the document"))?;
            let name = self.def_name(&component);
            match self.schema(schema, &target, 0) {
                Ok(converted) => {
                    self.defs.insert(name.clone(), converted);
                    Ok(json!({ "$ref": format!("#/$defs/{name}") }))
                }
                Err(e) => {
                    self.forget(&component);
                    Err(e)
                }
            }
        } else {
            if self.inline_stack.contains(&target) {
                return Err(format!(
                    "`$ref: {reference}` at {pointer} is recursive outside `#/components/schemas`; charter keeps recursion only through components"
                ));
            }
            let schema = self
                .doc
                .root
                .pointer(&target)
                .ok_or_else(|| format!("`$ref: {reference}` at {pointer} points at nothing in the document"))?;
            self.inline_stack.push(target.clone());
            let converted = self.schema(schema, &target, depth + 1);
            self.inline_stack.pop();
            converted
        }
    }
}

/// A 3.0 `nullable: true` schema in 2020-12: `"null"` added to its type (and enum), or an `anyOf`.
fn nullable(mut out: Map<String, Value>) -> Value {
    if let Some(Value::Array(values)) = out.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    match out.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            if t != "null" {
                out.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(out)
        }
        Some(Value::Array(ts)) => {
            if !ts.contains(&json!("null")) {
                ts.push(json!("null"));
            }
            Value::Object(out)
        }
        _ => {
            let mut outer = Map::new();
            for k in ["title", "description"] {
                if let Some(v) = out.remove(k) {
                    outer.insert(k.into(), v);
                }
            }
            outer.insert("anyOf".into(), json!([Value::Object(out), { "type": "null" }]));
            Value::Object(outer)
        }
    }
}
