//! The part of JSON Schema 2020-12 the runtime validates with its own code,
//! without the `jsonschema` crate: types, `enum` and `const`, string lengths,
//! numeric bounds, arrays by `items` and their counts, objects by
//! `properties`, `required`, `additionalProperties` and their counts, local
//! `$ref`s to `#/$defs/...`, boolean schemas, and annotations.
//!
//! It lives in the seam because both sides decide with it: the generator
//! turns the runtime's `json-schema` feature on only for a contract with a
//! schema outside this subset ([`SimpleSchema::compile`] returns `None`), and
//! the runtime compiles every schema inside it with this code. Anything not
//! understood here (a `pattern`, a `format`, `oneOf`, an unknown keyword, a
//! recursive `$ref`) is outside the subset, never ignored. The runtime's
//! tests check it against `jsonschema` on the same schemas and instances.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

/// Keywords that only describe: they never change whether an instance is valid.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$defs",
];

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// A schema compiled for validation.
#[derive(Debug, Clone)]
pub struct SimpleSchema {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    /// `true` or `{}`.
    Any,
    /// `false`.
    Never,
    Checks(Box<Checks>),
}

#[derive(Debug, Clone, Default)]
struct Checks {
    /// Bit set of [`Kind`]s; `None` for any type.
    types: Option<u8>,
    type_names: Vec<String>,
    enumeration: Option<Vec<Value>>,
    constant: Option<Value>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    exclusive_minimum: Option<Number>,
    exclusive_maximum: Option<Number>,
    items: Option<Node>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    /// `None`: any other property is allowed.
    additional: Option<Node>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    /// Resolved `$ref`s, which apply beside the other keywords.
    refs: Vec<Node>,
}

#[derive(Clone, Copy)]
enum Kind {
    Null = 1,
    Boolean = 2,
    Object = 4,
    Array = 8,
    Number = 16,
    Integer = 32,
    String = 64,
}

impl Kind {
    fn named(name: &str) -> Option<Kind> {
        Some(match name {
            "null" => Kind::Null,
            "boolean" => Kind::Boolean,
            "object" => Kind::Object,
            "array" => Kind::Array,
            "number" => Kind::Number,
            "integer" => Kind::Integer,
            "string" => Kind::String,
            _ => return None,
        })
    }
}

struct Compiler<'a> {
    defs: Option<&'a Map<String, Value>>,
    /// `$ref` targets being compiled, to refuse cycles.
    resolving: Vec<String>,
}

impl SimpleSchema {
    /// The schema compiled, or `None` when it uses anything outside the subset.
    pub fn compile(schema: &Value) -> Option<SimpleSchema> {
        let defs = schema.get("$defs").and_then(Value::as_object);
        let mut compiler = Compiler {
            defs,
            resolving: Vec::new(),
        };
        if let Some(uri) = schema.get("$schema")
            && uri.as_str().map(|u| u.trim_end_matches('#')) != Some(DRAFT_2020_12)
        {
            return None;
        }
        Some(SimpleSchema {
            root: compiler.node(schema, true)?,
        })
    }

    /// Whether `schema` is within the subset.
    pub fn fits(schema: &Value) -> bool {
        SimpleSchema::compile(schema).is_some()
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        self.root.is_valid(instance)
    }

    /// Up to `limit` violations, each as (JSON pointer of the instance, message).
    pub fn violations(&self, instance: &Value, limit: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut path = String::new();
        self.root.collect(instance, &mut path, &mut out, limit);
        out
    }
}

impl Compiler<'_> {
    fn node(&mut self, schema: &Value, root: bool) -> Option<Node> {
        let object = match schema {
            Value::Bool(true) => return Some(Node::Any),
            Value::Bool(false) => return Some(Node::Never),
            Value::Object(object) => object,
            _ => return None,
        };
        let mut checks = Checks::default();
        for (keyword, value) in object {
            match keyword.as_str() {
                "type" => {
                    let names: Vec<&str> = match value {
                        Value::String(name) => vec![name.as_str()],
                        Value::Array(names) => names.iter().map(Value::as_str).collect::<Option<_>>()?,
                        _ => return None,
                    };
                    let mut bits = 0;
                    for name in &names {
                        bits |= Kind::named(name)? as u8;
                    }
                    checks.types = Some(bits);
                    checks.type_names = names.iter().map(|n| n.to_string()).collect();
                }
                "enum" => checks.enumeration = Some(value.as_array()?.clone()),
                "const" => checks.constant = Some(value.clone()),
                "minLength" => checks.min_length = Some(count(value)?),
                "maxLength" => checks.max_length = Some(count(value)?),
                "minimum" => checks.minimum = Some(number(value)?),
                "maximum" => checks.maximum = Some(number(value)?),
                "exclusiveMinimum" => checks.exclusive_minimum = Some(number(value)?),
                "exclusiveMaximum" => checks.exclusive_maximum = Some(number(value)?),
                "items" => checks.items = Some(self.node(value, false)?),
                "minItems" => checks.min_items = Some(count(value)?),
                "maxItems" => checks.max_items = Some(count(value)?),
                "properties" => {
                    for (name, schema) in value.as_object()? {
                        let node = self.node(schema, false)?;
                        checks.properties.push((name.clone(), node));
                    }
                }
                "required" => {
                    checks.required = value
                        .as_array()?
                        .iter()
                        .map(|v| v.as_str().map(String::from))
                        .collect::<Option<_>>()?;
                }
                "additionalProperties" => checks.additional = Some(self.node(value, false)?),
                "minProperties" => checks.min_properties = Some(count(value)?),
                "maxProperties" => checks.max_properties = Some(count(value)?),
                "$ref" => checks.refs.push(self.reference(value.as_str()?)?),
                "$schema" if root => {}
                _ if ANNOTATIONS.contains(&keyword.as_str()) || keyword.starts_with("x-") => {}
                _ => return None,
            }
        }
        Some(Node::Checks(Box::new(checks)))
    }

    /// A `$ref` to `#/$defs/Name`, compiled in place; a cycle is outside the subset.
    fn reference(&mut self, reference: &str) -> Option<Node> {
        let name = reference.strip_prefix("#/$defs/")?;
        if name.contains('/') {
            return None;
        }
        let name = name.replace("~1", "/").replace("~0", "~");
        if self.resolving.contains(&name) || self.resolving.len() > 32 {
            return None;
        }
        let target = self.defs?.get(&name)?;
        self.resolving.push(name);
        let node = self.node(target, false);
        self.resolving.pop();
        node
    }
}

/// A non-negative integer keyword value (`minLength`, `maxItems`, ...).
fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e18)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

fn number(value: &Value) -> Option<Number> {
    match value {
        Value::Number(n) => Some(n.clone()),
        _ => None,
    }
}

fn kind_of(instance: &Value) -> u8 {
    match instance {
        Value::Null => Kind::Null as u8,
        Value::Bool(_) => Kind::Boolean as u8,
        Value::Object(_) => Kind::Object as u8,
        Value::Array(_) => Kind::Array as u8,
        Value::String(_) => Kind::String as u8,
        Value::Number(n) => {
            let integral = n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0);
            Kind::Number as u8 | if integral { Kind::Integer as u8 } else { 0 }
        }
    }
}

/// Exact order of two JSON numbers (integers beyond 2^53 included).
fn compare(a: &Number, b: &Number) -> Ordering {
    fn integer(n: &Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    fn int_float(i: i128, f: f64) -> Ordering {
        if f >= 1.7e38 {
            return Ordering::Less;
        }
        if f <= -1.7e38 {
            return Ordering::Greater;
        }
        let whole = f.trunc();
        match i.cmp(&(whole as i128)) {
            Ordering::Equal => 0.0_f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
            order => order,
        }
    }
    match (integer(a), integer(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => int_float(x, b.as_f64().unwrap_or(0.0)),
        (None, Some(y)) => int_float(y, a.as_f64().unwrap_or(0.0)).reverse(),
        (None, None) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

/// JSON Schema equality: numbers by value (`1` equals `1.0`), the rest structurally.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn shown(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn push_pointer(path: &mut String, token: &str) {
    path.push('/');
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

impl Node {
    fn is_valid(&self, instance: &Value) -> bool {
        match self {
            Node::Any => true,
            Node::Never => false,
            Node::Checks(checks) => checks.is_valid(instance),
        }
    }

    fn collect(&self, instance: &Value, path: &mut String, out: &mut Vec<(String, String)>, limit: usize) {
        if out.len() >= limit {
            return;
        }
        match self {
            Node::Any => {}
            Node::Never => out.push((path.clone(), format!("False schema does not allow {}", shown(instance)))),
            Node::Checks(checks) => checks.collect(instance, path, out, limit),
        }
    }
}

impl Checks {
    fn is_valid(&self, instance: &Value) -> bool {
        let mut out = Vec::new();
        self.collect(instance, &mut String::new(), &mut out, 1);
        out.is_empty()
    }

    fn collect(&self, instance: &Value, path: &mut String, out: &mut Vec<(String, String)>, limit: usize) {
        let fail = |out: &mut Vec<(String, String)>, path: &str, message: String| {
            if out.len() < limit {
                out.push((path.to_string(), message));
            }
        };
        if let Some(types) = self.types
            && kind_of(instance) & types == 0
        {
            let message = match self.type_names.as_slice() {
                [one] => format!("{} is not of type \"{one}\"", shown(instance)),
                many => format!(
                    "{} is not of types {}",
                    shown(instance),
                    many.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
                ),
            };
            fail(out, path, message);
        }
        if let Some(options) = &self.enumeration
            && !options.iter().any(|o| equal(o, instance))
        {
            fail(
                out,
                path,
                format!(
                    "{} is not one of {}",
                    shown(instance),
                    shown(&Value::Array(options.clone()))
                ),
            );
        }
        if let Some(expected) = &self.constant
            && !equal(expected, instance)
        {
            fail(out, path, format!("{} was expected", shown(expected)));
        }
        match instance {
            Value::String(text) => {
                if self.min_length.is_some() || self.max_length.is_some() {
                    let length = text.chars().count() as u64;
                    if let Some(min) = self.min_length
                        && length < min
                    {
                        let what = plural(min, "character", "characters");
                        fail(out, path, format!("{} is shorter than {what}", shown(instance)));
                    }
                    if let Some(max) = self.max_length
                        && length > max
                    {
                        let what = plural(max, "character", "characters");
                        fail(out, path, format!("{} is longer than {what}", shown(instance)));
                    }
                }
            }
            Value::Number(n) => {
                if let Some(min) = &self.minimum
                    && compare(n, min) == Ordering::Less
                {
                    fail(out, path, format!("{n} is less than the minimum of {min}"));
                }
                if let Some(max) = &self.maximum
                    && compare(n, max) == Ordering::Greater
                {
                    fail(out, path, format!("{n} is greater than the maximum of {max}"));
                }
                if let Some(min) = &self.exclusive_minimum
                    && compare(n, min) != Ordering::Greater
                {
                    fail(out, path, format!("{n} is less than or equal to the minimum of {min}"));
                }
                if let Some(max) = &self.exclusive_maximum
                    && compare(n, max) != Ordering::Less
                {
                    fail(
                        out,
                        path,
                        format!("{n} is greater than or equal to the maximum of {max}"),
                    );
                }
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                if let Some(min) = self.min_items
                    && n < min
                {
                    let what = plural(min, "item", "items");
                    fail(out, path, format!("{} has less than {what}", shown(instance)));
                }
                if let Some(max) = self.max_items
                    && n > max
                {
                    let what = plural(max, "item", "items");
                    fail(out, path, format!("{} has more than {what}", shown(instance)));
                }
                if let Some(schema) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        if out.len() >= limit {
                            break;
                        }
                        let at = path.len();
                        path.push('/');
                        path.push_str(&i.to_string());
                        schema.collect(item, path, out, limit);
                        path.truncate(at);
                    }
                }
            }
            Value::Object(object) => {
                let n = object.len() as u64;
                if let Some(min) = self.min_properties
                    && n < min
                {
                    let what = plural(min, "property", "properties");
                    fail(out, path, format!("{} has less than {what}", shown(instance)));
                }
                if let Some(max) = self.max_properties
                    && n > max
                {
                    let what = plural(max, "property", "properties");
                    fail(out, path, format!("{} has more than {what}", shown(instance)));
                }
                for name in &self.required {
                    if !object.contains_key(name) {
                        fail(
                            out,
                            path,
                            format!("{} is a required property", shown(&Value::String(name.clone()))),
                        );
                    }
                }
                let mut unexpected = Vec::new();
                for (name, value) in object {
                    if out.len() >= limit {
                        break;
                    }
                    let declared = self.properties.iter().find(|(p, _)| p == name);
                    let schema = match (declared, &self.additional) {
                        (Some((_, schema)), _) => schema,
                        (None, Some(Node::Never)) => {
                            unexpected.push(format!("'{name}'"));
                            continue;
                        }
                        (None, Some(schema)) => schema,
                        (None, None) => continue,
                    };
                    let at = path.len();
                    push_pointer(path, name);
                    schema.collect(value, path, out, limit);
                    path.truncate(at);
                }
                if !unexpected.is_empty() {
                    let verb = if unexpected.len() == 1 { "was" } else { "were" };
                    fail(
                        out,
                        path,
                        format!(
                            "Additional properties are not allowed ({} {verb} unexpected)",
                            unexpected.join(", ")
                        ),
                    );
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
        for reference in &self.refs {
            reference.collect(instance, path, out, limit);
        }
    }
}

/// Every schema the runtime compiles for a surface: tool inputs and outputs, template variables.
pub fn surface_schemas(surface: &crate::Surface) -> Vec<&Value> {
    let mut schemas = Vec::new();
    for tool in &surface.tools {
        schemas.extend(tool.definition.get("inputSchema"));
        schemas.extend(tool.definition.get("outputSchema"));
    }
    for resource in &surface.resources {
        schemas.extend(resource.variables.iter().flat_map(BTreeMap::values));
    }
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_subset_is_exactly_what_is_understood() {
        let inside = json!({"type": "object", "required": ["a"], "additionalProperties": false,
            "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"type": ["integer", "null"], "maximum": 3}},
            "$defs": {"A": {"type": "string", "maxLength": 2, "description": "d", "x-mcp-header": "A"}}});
        assert!(SimpleSchema::fits(&inside));
        for outside in [
            json!({"type": "string", "pattern": "^a$"}),
            json!({"type": "string", "format": "date"}),
            json!({"oneOf": [{"type": "string"}]}),
            json!({"type": "strnig"}),
            json!({"maxLenght": 3}),
            json!({"$ref": "#/$defs/A", "$defs": {"A": {"$ref": "#/$defs/A"}}}),
            json!({"$ref": "https://example.com/schema"}),
            json!({"items": [{"type": "string"}]}),
            json!({"$schema": "http://json-schema.org/draft-07/schema#"}),
        ] {
            assert!(!SimpleSchema::fits(&outside), "{outside}");
        }
    }

    #[test]
    fn numbers_compare_exactly() {
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        assert_eq!(compare(&n(json!(1)), &n(json!(1.0))), Ordering::Equal);
        assert_eq!(compare(&n(json!(1)), &n(json!(1.5))), Ordering::Less);
        assert_eq!(compare(&n(json!(-2)), &n(json!(-1.5))), Ordering::Less);
        assert_eq!(compare(&n(json!(u64::MAX)), &n(json!(i64::MIN))), Ordering::Greater);
        assert_eq!(
            compare(&n(json!(9007199254740993_u64)), &n(json!(9007199254740992.0))),
            Ordering::Greater
        );
        assert!(equal(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
    }
}
