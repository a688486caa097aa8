//! The part of JSON Schema 2020-12 the runtime validates with its own code,
//! without the `jsonschema` crate: types, `enum` and `const`, string lengths,
//! `pattern`s in plain ASCII syntax (below), the `date`, `time`, `date-time`,
//! `uuid` and `uri` formats, numeric bounds, arrays by `items`, their counts
//! and `uniqueItems`, objects by `properties`, `required`,
//! `additionalProperties` and their counts, local `$ref`s to `#/$defs/...`,
//! `allOf`, `anyOf` and `oneOf`, boolean schemas, and annotations.
//!
//! A `pattern` is inside the subset when its syntax means the same in
//! ECMA-262 and in Rust's regex syntax: printable ASCII; escapes only of
//! punctuation; no `.`, no `(?`, no `\d`-style classes; braces only as
//! `{n}`, `{n,}`, `{n,m}`; no `[`, `&&`, `--` or `~~` inside a class.
//!
//! It lives in the seam because both sides decide with it: the generator
//! turns the runtime's `json-schema` feature on only for a contract with a
//! schema outside this subset ([`SimpleSchema::compile`] returns `None`), and
//! the runtime compiles every schema inside it with this code. Anything not
//! understood here (a `pattern` with `\d`, `format: email`, `if`/`then`, `not`,
//! an unknown keyword, a recursive `$ref`) is outside the subset, never ignored. The runtime's
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
    pattern: Option<(String, Pattern)>,
    format: Option<Format>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    exclusive_minimum: Option<Number>,
    exclusive_maximum: Option<Number>,
    items: Option<Node>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    /// For each of `properties`, whether it is required; and how many are.
    property_required: Vec<bool>,
    required_declared: usize,
    /// Required names with no schema in `properties`.
    required_undeclared: Vec<String>,
    /// `None`: any other property is allowed.
    additional: Option<Node>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    /// Resolved `$ref`s and `allOf`'s schemas, which apply beside the other keywords.
    refs: Vec<Node>,
    /// `anyOf`: at least one must hold.
    any_of: Vec<Node>,
    /// `oneOf`: exactly one must hold.
    one_of: Vec<Node>,
}

/// The formats checked here, each by its RFC's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Date,
    Time,
    DateTime,
    Uuid,
    Uri,
}

impl Format {
    fn named(name: &str) -> Option<Format> {
        Some(match name {
            "date" => Format::Date,
            "time" => Format::Time,
            "date-time" => Format::DateTime,
            "uuid" => Format::Uuid,
            "uri" => Format::Uri,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Format::Date => "date",
            Format::Time => "time",
            Format::DateTime => "date-time",
            Format::Uuid => "uuid",
            Format::Uri => "uri",
        }
    }

    fn accepts(self, text: &str) -> bool {
        match self {
            Format::Date => formats::date(text),
            Format::Time => formats::time(text),
            Format::DateTime => formats::date_time(text),
            Format::Uuid => formats::uuid(text),
            Format::Uri => formats::uri(text),
        }
    }
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
                "pattern" => {
                    let pattern = value.as_str()?;
                    checks.pattern = Some((pattern.to_owned(), plain_pattern(pattern)?));
                }
                "format" => checks.format = Some(Format::named(value.as_str()?)?),
                "uniqueItems" => checks.unique_items = value.as_bool()?,
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
                "allOf" => {
                    for schema in nonempty(value)? {
                        let node = self.node(schema, false)?;
                        checks.refs.push(node);
                    }
                }
                "anyOf" => checks.any_of = self.each(nonempty(value)?)?,
                "oneOf" => checks.one_of = self.each(nonempty(value)?)?,
                "$schema" if root => {}
                _ if ANNOTATIONS.contains(&keyword.as_str()) || keyword.starts_with("x-") => {}
                _ => return None,
            }
        }
        // One pass over an instance's properties checks `required` too: count the required
        // ones among the declared properties it has.
        checks.property_required = checks
            .properties
            .iter()
            .map(|(name, _)| checks.required.contains(name))
            .collect();
        checks.required_declared = checks.property_required.iter().filter(|r| **r).count();
        checks.required_undeclared = checks
            .required
            .iter()
            .filter(|name| !checks.properties.iter().any(|(p, _)| p == *name))
            .cloned()
            .collect();
        checks.required_undeclared.dedup();
        Some(Node::Checks(Box::new(checks)))
    }

    fn each(&mut self, schemas: &[Value]) -> Option<Vec<Node>> {
        schemas.iter().map(|schema| self.node(schema, false)).collect()
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

/// A compiled `pattern` (feature `patterns`).
#[cfg(feature = "patterns")]
type Pattern = regex::Regex;

/// Without the `patterns` feature no pattern compiles, so none is ever checked here.
#[cfg(not(feature = "patterns"))]
#[derive(Debug, Clone)]
enum Pattern {}

#[cfg(not(feature = "patterns"))]
impl Pattern {
    fn is_match(&self, _: &str) -> bool {
        match *self {}
    }
}

/// `pattern` compiled, when its syntax means the same in ECMA-262 as in Rust's regex syntax
/// and this build checks patterns (feature `patterns`).
fn plain_pattern(pattern: &str) -> Option<Pattern> {
    let bytes = pattern.as_bytes();
    let mut in_class = false;
    // The previous token outside a class was a quantifier (`*`, `+`, `?`, `{n,m}`), or a
    // quantifier made lazy: another quantifier after it means different things in the two
    // syntaxes (Rust repeats the repetition), so it is outside the subset. Found by the
    // schema_subset fuzz target (`]{1,4}{0,4}`).
    let mut quantified = false;
    let mut lazy = false;
    // Something a quantifier may follow: a literal, an escape, a class or a group. Not the
    // start, `^`, `$`, `(` or `|`, which ECMA-262 refuses to repeat and Rust may not.
    let mut atom = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..0x7f).contains(&b) {
            return None;
        }
        if in_class {
            match b {
                b'\\' => {
                    if !bytes.get(i + 1)?.is_ascii_punctuation() {
                        return None;
                    }
                    i += 2;
                    continue;
                }
                b'[' => return None,
                b']' => in_class = false,
                b'&' | b'-' | b'~' if bytes.get(i + 1) == Some(&b) => return None,
                _ => {}
            }
            i += 1;
            continue;
        }
        let quantifier = matches!(b, b'*' | b'+' | b'{') || (b == b'?' && !quantified);
        if b == b'?' && quantified {
            // `*?`: lazy in both; nothing may follow it as a quantifier.
            if lazy {
                return None;
            }
            lazy = true;
            i += 1;
            continue;
        }
        if quantifier && (quantified || lazy || !atom) {
            return None;
        }
        match b {
            b'\\' => {
                // Only escaped punctuation: `\d`, `\w`, `\b`, `\u...` differ between the two.
                if !bytes.get(i + 1)?.is_ascii_punctuation() {
                    return None;
                }
                i += 2;
                quantified = false;
                lazy = false;
                atom = true;
                continue;
            }
            b'[' => {
                // `[]` and `[^]` are an empty and a full class in ECMA-262, a `]` in Rust.
                let first = if bytes.get(i + 1) == Some(&b'^') { i + 2 } else { i + 1 };
                if bytes.get(first) == Some(&b']') {
                    return None;
                }
                in_class = true;
                i = first;
                quantified = false;
                lazy = false;
                atom = true;
                continue;
            }
            b']' | b'}' | b'.' => return None,
            b'(' if bytes.get(i + 1) == Some(&b'?') => return None,
            b'{' => {
                let close = i + pattern[i..].find('}')?;
                let inside = &pattern[i + 1..close];
                let (low, high) = inside.split_once(',').unwrap_or((inside, "0"));
                if low.is_empty()
                    || !low.bytes().all(|c| c.is_ascii_digit())
                    || !high.bytes().all(|c| c.is_ascii_digit())
                {
                    return None;
                }
                i = close + 1;
                quantified = true;
                continue;
            }
            _ => {}
        }
        quantified = quantifier;
        if !quantifier {
            lazy = false;
            atom = !matches!(b, b'^' | b'$' | b'(' | b'|');
        }
        i += 1;
    }
    if in_class {
        return None;
    }
    #[cfg(feature = "patterns")]
    return regex::Regex::new(pattern).ok();
    #[cfg(not(feature = "patterns"))]
    None
}

/// Whether any schema object in `schema` has a `pattern` (the generator turns the runtime's
/// `patterns` feature on for those).
pub fn has_pattern(schema: &Value) -> bool {
    match schema {
        Value::Object(object) => {
            object.get("pattern").is_some_and(Value::is_string)
                || object.iter().any(|(key, value)| {
                    !matches!(key.as_str(), "enum" | "const" | "default" | "examples") && has_pattern(value)
                })
        }
        Value::Array(items) => items.iter().any(has_pattern),
        _ => false,
    }
}

/// The schemas of `allOf`, `anyOf` or `oneOf`: a non-empty array (an empty one is not a schema).
fn nonempty(value: &Value) -> Option<&[Value]> {
    value
        .as_array()
        .map(Vec::as_slice)
        .filter(|schemas| !schemas.is_empty())
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

/// Whether a string's length in code points is within bounds, counting only when the byte
/// length leaves it open (a string has at most as many code points as bytes).
fn length_within(text: &str, min: Option<u64>, max: Option<u64>) -> bool {
    let bytes = text.len() as u64;
    let fits_max = max.is_none_or(|max| bytes <= max);
    // UTF-8 takes at most four bytes a code point.
    let fits_min = min.is_none_or(|min| bytes.div_ceil(4) >= min);
    if fits_max && fits_min {
        return true;
    }
    if min.is_some_and(|min| bytes < min) {
        return false;
    }
    let chars = text.chars().count() as u64;
    min.is_none_or(|min| chars >= min) && max.is_none_or(|max| chars <= max)
}

/// Whether no two items are equal (as [`equal`] says), in one pass over canonical forms.
fn unique(items: &[Value]) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items.iter().all(|item| {
        let mut key = String::new();
        canonical(item, &mut key);
        seen.insert(key)
    })
}

/// A form equal values share: numbers by value, object keys sorted.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Number(n) => {
            let integral = n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 1.7e38)
                        .map(|f| f as i128)
                });
            match integral {
                Some(i) => out.push_str(&format!("n{i}")),
                None => out.push_str(&format!("f{}", n.as_f64().unwrap_or(0.0))),
            }
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for key in keys {
                out.push_str(&shown(&Value::String(key.clone())));
                out.push(':');
                canonical(&map[key], out);
                out.push(',');
            }
            out.push('}');
        }
        other => out.push_str(&shown(other)),
    }
}

fn shown(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `minItems`/`maxItems` or `minProperties`/`maxProperties` broken by a count of `n`.
fn count_violations(
    (n, min, max): (usize, Option<u64>, Option<u64>),
    (one, many): (&str, &str),
    instance: &Value,
) -> Vec<String> {
    let n = n as u64;
    let mut found = Vec::new();
    if let Some(min) = min.filter(|min| n < *min) {
        found.push(format!("{} has less than {}", shown(instance), plural(min, one, many)));
    }
    if let Some(max) = max.filter(|max| n > *max) {
        found.push(format!("{} has more than {}", shown(instance), plural(max, one, many)));
    }
    found
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
    /// The verdict alone: no places, no messages, no allocation.
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
    fn declared(&self, name: &str) -> Option<&(String, Node)> {
        // Linear: a contract's objects have few properties, and `==` rejects most by length.
        self.properties.iter().find(|(p, _)| p == name)
    }

    fn is_valid(&self, instance: &Value) -> bool {
        if let Some(types) = self.types
            && kind_of(instance) & types == 0
        {
            return false;
        }
        if let Some(options) = &self.enumeration
            && !options.iter().any(|o| equal(o, instance))
        {
            return false;
        }
        if let Some(expected) = &self.constant
            && !equal(expected, instance)
        {
            return false;
        }
        let valid = match instance {
            Value::String(text) => {
                self.pattern.as_ref().is_none_or(|(_, pattern)| pattern.is_match(text))
                    && self.format.is_none_or(|format| format.accepts(text))
                    && length_within(text, self.min_length, self.max_length)
            }
            Value::Number(n) => {
                self.minimum
                    .as_ref()
                    .is_none_or(|min| compare(n, min) != Ordering::Less)
                    && self
                        .maximum
                        .as_ref()
                        .is_none_or(|max| compare(n, max) != Ordering::Greater)
                    && self
                        .exclusive_minimum
                        .as_ref()
                        .is_none_or(|min| compare(n, min) == Ordering::Greater)
                    && self
                        .exclusive_maximum
                        .as_ref()
                        .is_none_or(|max| compare(n, max) == Ordering::Less)
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                self.min_items.is_none_or(|min| n >= min)
                    && self.max_items.is_none_or(|max| n <= max)
                    && (!self.unique_items || unique(items))
                    && self
                        .items
                        .as_ref()
                        .is_none_or(|schema| items.iter().all(|item| schema.is_valid(item)))
            }
            Value::Object(object) => {
                let n = object.len() as u64;
                if self.min_properties.is_some_and(|min| n < min) || self.max_properties.is_some_and(|max| n > max) {
                    return false;
                }
                let mut required_seen = 0;
                for (name, value) in object {
                    let valid = match self.properties.iter().position(|(p, _)| p == name) {
                        Some(at) => {
                            required_seen += usize::from(self.property_required[at]);
                            self.properties[at].1.is_valid(value)
                        }
                        None => self.additional.as_ref().is_none_or(|schema| schema.is_valid(value)),
                    };
                    if !valid {
                        return false;
                    }
                }
                required_seen == self.required_declared
                    && self.required_undeclared.iter().all(|name| object.contains_key(name))
            }
            Value::Null | Value::Bool(_) => true,
        };
        valid
            && self.refs.iter().all(|reference| reference.is_valid(instance))
            && (self.any_of.is_empty() || self.any_of.iter().any(|schema| schema.is_valid(instance)))
            && (self.one_of.is_empty() || self.holding_one_of(instance) == 1)
    }

    /// How many of `oneOf`'s schemas hold, counting to two at most.
    fn holding_one_of(&self, instance: &Value) -> usize {
        self.one_of
            .iter()
            .filter(|schema| schema.is_valid(instance))
            .take(2)
            .count()
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
                if let Some((source, pattern)) = &self.pattern
                    && !pattern.is_match(text)
                {
                    fail(out, path, format!("{} does not match \"{source}\"", shown(instance)));
                }
                if let Some(format) = self.format
                    && !format.accepts(text)
                {
                    fail(out, path, format!("{} is not a \"{}\"", shown(instance), format.name()));
                }
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
                let counted = (items.len(), self.min_items, self.max_items);
                for message in count_violations(counted, ("item", "items"), instance) {
                    fail(out, path, message);
                }
                if self.unique_items && !unique(items) {
                    fail(out, path, format!("{} has non-unique elements", shown(instance)));
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
                let counted = (object.len(), self.min_properties, self.max_properties);
                for message in count_violations(counted, ("property", "properties"), instance) {
                    fail(out, path, message);
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
                    let declared = self.declared(name);
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
        // Like jsonschema: one violation at the instance, not each alternative's.
        if !self.any_of.is_empty() && !self.any_of.iter().any(|schema| schema.is_valid(instance)) {
            let message = format!(
                "{} is not valid under any of the schemas listed in the 'anyOf' keyword",
                shown(instance)
            );
            fail(out, path, message);
        }
        if !self.one_of.is_empty() {
            match self.holding_one_of(instance) {
                0 => fail(
                    out,
                    path,
                    format!(
                        "{} is not valid under any of the schemas listed in the 'oneOf' keyword",
                        shown(instance)
                    ),
                ),
                1 => {}
                _ => fail(
                    out,
                    path,
                    format!(
                        "{} is valid under more than one of the schemas listed in the 'oneOf' keyword",
                        shown(instance)
                    ),
                ),
            }
        }
    }
}

/// The formats, each by the grammar of its RFC.
mod formats {
    fn digits(bytes: &[u8]) -> Option<u32> {
        if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(bytes.iter().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
    }

    /// RFC 3339 `full-date`: `YYYY-MM-DD`, a day that exists.
    pub fn date(text: &str) -> bool {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return false;
        }
        let (Some(year), Some(month), Some(day)) = (digits(&b[..4]), digits(&b[5..7]), digits(&b[8..])) else {
            return false;
        };
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let last = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        (1..=last).contains(&day)
    }

    /// RFC 3339 `full-time`: `HH:MM:SS[.frac](Z|±HH:MM)`; a leap second only at 23:59 UTC.
    pub fn time(text: &str) -> bool {
        let b = text.as_bytes();
        if b.len() < 9 || b[2] != b':' || b[5] != b':' {
            return false;
        }
        let (Some(hour), Some(minute), Some(second)) = (digits(&b[..2]), digits(&b[3..5]), digits(&b[6..8])) else {
            return false;
        };
        if hour > 23 || minute > 59 || second > 60 {
            return false;
        }
        let mut at = 8;
        if b[at] == b'.' {
            let start = at + 1;
            at = start;
            while at < b.len() && b[at].is_ascii_digit() {
                at += 1;
            }
            if at == start {
                return false;
            }
        }
        let (utc_hour, utc_minute) = match b.get(at) {
            Some(b'Z' | b'z') if at + 1 == b.len() => (hour as i32, minute as i32),
            Some(sign @ (b'+' | b'-')) if b.len() - at == 6 && b[at + 3] == b':' => {
                let (Some(oh), Some(om)) = (digits(&b[at + 1..at + 3]), digits(&b[at + 4..])) else {
                    return false;
                };
                if oh > 23 || om > 59 {
                    return false;
                }
                let offset = (oh * 60 + om) as i32 * if *sign == b'+' { 1 } else { -1 };
                let utc = (hour * 60 + minute) as i32 - offset;
                let utc = utc.rem_euclid(24 * 60);
                (utc / 60, utc % 60)
            }
            _ => return false,
        };
        second != 60 || (utc_hour == 23 && utc_minute == 59)
    }

    /// RFC 3339 `date-time`: a date, `T` (or `t`), a time.
    pub fn date_time(text: &str) -> bool {
        match text.find(['T', 't']) {
            Some(at) => date(&text[..at]) && time(&text[at + 1..]),
            None => false,
        }
    }

    /// RFC 4122's hyphenated form: 8-4-4-4-12 hexadecimal digits.
    pub fn uuid(text: &str) -> bool {
        let b = text.as_bytes();
        b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    }

    /// RFC 3986 `unreserved` and `sub-delims`, by byte.
    const UNRESERVED_OR_SUB_DELIM: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                );
            b += 1;
        }
        table
    };

    fn unreserved_or_sub_delim(b: u8) -> bool {
        UNRESERVED_OR_SUB_DELIM[b as usize]
    }

    /// The end of a run of `allowed` bytes and percent-encodings from `at`; `None` on a broken `%`.
    fn run(b: &[u8], mut at: usize, allowed: impl Fn(u8) -> bool) -> Option<usize> {
        while let Some(&c) = b.get(at) {
            if c == b'%' {
                if !b.get(at + 1..at + 3)?.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                at += 3;
            } else if allowed(c) {
                at += 1;
            } else {
                break;
            }
        }
        Some(at)
    }

    /// RFC 3986 `IP-literal` without its brackets: an IPv6 address or `v<hex>.<text>`.
    fn ip_literal(inside: &str) -> bool {
        if let Some(rest) = inside.strip_prefix(['v', 'V']) {
            let Some((version, text)) = rest.split_once('.') else {
                return false;
            };
            return !version.is_empty()
                && version.bytes().all(|c| c.is_ascii_hexdigit())
                && !text.is_empty()
                && text.bytes().all(|c| unreserved_or_sub_delim(c) || c == b':');
        }
        inside.parse::<std::net::Ipv6Addr>().is_ok() && !inside.contains('%')
    }

    /// RFC 3986 `URI`: `scheme ":" hier-part [ "?" query ] [ "#" fragment ]`.
    pub fn uri(text: &str) -> bool {
        let b = text.as_bytes();
        if !b.first().is_some_and(u8::is_ascii_alphabetic) {
            return false;
        }
        let Some(colon) = b
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || b"+-.".contains(c)))
        else {
            return false;
        };
        if b[colon] != b':' {
            return false;
        }
        let mut at = colon + 1;
        if b[at..].starts_with(b"//") {
            let start = at + 2;
            let end = b[start..]
                .iter()
                .position(|&c| matches!(c, b'/' | b'?' | b'#'))
                .map_or(b.len(), |n| start + n);
            if !authority(&text[start..end]) {
                return false;
            }
            at = end;
        }
        let pchar = |c: u8| unreserved_or_sub_delim(c) || c == b':' || c == b'@';
        let Some(end) = run(b, at, |c| pchar(c) || c == b'/') else {
            return false;
        };
        at = end;
        for delimiter in [b'?', b'#'] {
            if b.get(at) == Some(&delimiter) {
                let Some(end) = run(b, at + 1, |c| pchar(c) || c == b'/' || c == b'?') else {
                    return false;
                };
                at = end;
            }
        }
        at == b.len()
    }

    /// `[ userinfo "@" ] host [ ":" port ]`.
    fn authority(text: &str) -> bool {
        let b = text.as_bytes();
        let host_start = match b.iter().position(|&c| c == b'@') {
            Some(at) => {
                if run(b, 0, |c| unreserved_or_sub_delim(c) || c == b':') != Some(at) {
                    return false;
                }
                at + 1
            }
            None => 0,
        };
        let host_end = if b.get(host_start) == Some(&b'[') {
            let Some(close) = text[host_start..].find(']').map(|n| host_start + n) else {
                return false;
            };
            if !ip_literal(&text[host_start + 1..close]) {
                return false;
            }
            close + 1
        } else {
            match run(b, host_start, unreserved_or_sub_delim) {
                Some(end) => end,
                None => return false,
            }
        };
        match b.get(host_end) {
            None => true,
            Some(b':') => b[host_end + 1..].iter().all(u8::is_ascii_digit),
            Some(_) => false,
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
        let combined = json!({"allOf": [{"type": "object"}], "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
            "oneOf": [{"properties": {"a": {"const": 1}}}, {"$ref": "#/$defs/A"}], "$defs": {"A": true}});
        assert!(SimpleSchema::fits(&combined));
        // Without the `patterns` feature no pattern is inside the subset.
        for pattern in [
            "^[0-9a-f]{64}$",
            "^[A-Za-z0-9._-]{1,64}$",
            "^v[0-9]{1,4}\\.[0-9]{1,4}(-[0-9A-Za-z.]{1,20})?$",
            "a|b",
        ] {
            assert_eq!(
                SimpleSchema::fits(&json!({"type": "string", "pattern": pattern})),
                cfg!(feature = "patterns"),
                "{pattern}"
            );
        }
        for outside in [
            json!({"type": "string", "pattern": "^a.b$"}),
            json!({"type": "string", "pattern": "^\\d+$"}),
            json!({"type": "string", "pattern": "^a{,3}$"}),
            json!({"type": "string", "pattern": "^]{1,4}{0,4}$"}),
            json!({"type": "string", "pattern": "^a+*$"}),
            json!({"type": "string", "pattern": "^[]a]$"}),
            json!({"type": "string", "pattern": "^*a$"}),
            json!({"type": "string", "pattern": "^[[:alpha:]]$"}),
            json!({"type": "string", "pattern": "^(?i)a$"}),
            json!({"type": "string", "pattern": "^ü$"}),
            json!({"type": "string", "format": "email"}),
            json!({"oneOf": []}),
            json!({"anyOf": {"type": "string"}}),
            json!({"not": {"type": "string"}}),
            json!({"if": {"type": "string"}, "then": {"minLength": 1}}),
            json!({"anyOf": [{"type": "string", "format": "email"}]}),
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
