//! Structural comparison of two JSON Schemas (2020-12, as the model normalizes
//! them): required sets, types, enums, bounds, patterns, closedness, properties
//! and items. For an input a narrowing breaks clients; for an output a widening does.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value, json};

use super::esc;
use super::rules::Diff;

/// Keywords whose value is an upper bound: a smaller value is tighter.
const MAX_KEYWORDS: &[&str] = &["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"];
/// Keywords whose value is a lower bound: a larger value is tighter.
const MIN_KEYWORDS: &[&str] = &["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"];
/// Keywords only people and models read.
const TEXT_KEYWORDS: &[&str] = &["description", "title", "examples"];
/// Keywords compared by their own rules, or that carry no meaning of their own.
const HANDLED: &[&str] = &[
    "type",
    "enum",
    "const",
    "pattern",
    "format",
    "multipleOf",
    "uniqueItems",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "default",
    "$ref",
    "$defs",
    "$schema",
    "$comment",
    "$id",
];

/// How deep a walk goes before it stops (recursive schemas).
const MAX_DEPTH: usize = 48;

struct Walk<'a, 'd> {
    d: &'d mut Diff,
    old_root: &'a Value,
    new_root: &'a Value,
    input: bool,
    /// `tool \`x\``, for messages.
    what: &'a str,
    /// Pairs of `$ref`s already compared, so recursive schemas end.
    seen: HashSet<(String, String)>,
}

/// Compares two schemas; `base` is the contract pointer of the schema (`/tools/x/input`).
pub(crate) fn walk(d: &mut Diff, old: &Value, new: &Value, input: bool, base: &str, what: &str) {
    let mut w = Walk {
        d,
        old_root: old,
        new_root: new,
        input,
        what,
        seen: HashSet::new(),
    };
    w.schema(old, new, base, "", 0);
}

/// A schema with its `$ref` (to `#/...` of its root) replaced by the target, sibling keywords kept.
fn resolve(root: &Value, schema: &Value) -> (Value, Option<String>) {
    let mut current = schema.clone();
    let mut first_ref = None;
    for _ in 0..16 {
        let Some(reference) = current.get("$ref").and_then(Value::as_str).map(str::to_owned) else {
            break;
        };
        let Some(target) = reference.strip_prefix('#').and_then(|p| root.pointer(p)) else {
            break;
        };
        first_ref.get_or_insert_with(|| reference.clone());
        let mut merged: Map<String, Value> = match target {
            Value::Object(m) => m.clone(),
            other => return (other.clone(), first_ref),
        };
        if let Value::Object(siblings) = &current {
            for (k, v) in siblings {
                if k != "$ref" {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        current = Value::Object(merged);
    }
    (current, first_ref)
}

fn types(s: &Map<String, Value>) -> Option<BTreeSet<String>> {
    match s.get("type")? {
        Value::String(t) => Some(BTreeSet::from([t.clone()])),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
        _ => None,
    }
}

/// Every type of `inner` is accepted by `outer` (an integer is a number).
fn covers(outer: &BTreeSet<String>, inner: &BTreeSet<String>) -> bool {
    inner
        .iter()
        .all(|t| outer.contains(t) || (t == "integer" && outer.contains("number")))
}

fn enum_values(s: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(Value::Array(values)) = s.get("enum") {
        return Some(values.clone());
    }
    s.get("const").map(|c| vec![c.clone()])
}

fn show_values(values: &[&Value]) -> String {
    values
        .iter()
        .map(|v| format!("`{}`", v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a keyword change makes the schema accept less (tighter) or more (looser), or both.
#[derive(PartialEq, Eq)]
enum Direction {
    Tighter,
    Looser,
    Both,
}

impl Walk<'_, '_> {
    fn field(&self, path: &str) -> String {
        let side = if self.input { "input" } else { "output" };
        if path.is_empty() {
            format!("{}: {side}", self.what)
        } else {
            format!("{}: {side} `{path}`", self.what)
        }
    }

    fn rule(&self, input: &'static str, output: &'static str) -> &'static str {
        if self.input { input } else { output }
    }

    fn schema(&mut self, old: &Value, new: &Value, pointer: &str, path: &str, depth: usize) {
        if depth > MAX_DEPTH || old == new {
            return;
        }
        let (o, oref) = resolve(self.old_root, old);
        let (n, nref) = resolve(self.new_root, new);
        if (oref.is_some() || nref.is_some()) && !self.seen.insert((oref.unwrap_or_default(), nref.unwrap_or_default()))
        {
            return;
        }
        if o == n {
            return;
        }
        let (Some(om), Some(nm)) = (o.as_object(), n.as_object()) else {
            let rule = self.rule("input-schema-changed", "output-schema-changed");
            let message = format!(
                "{}: the schema changed (charter cannot classify this change)",
                self.field(path)
            );
            self.d
                .add(rule, pointer.to_owned(), Some(o.clone()), Some(n.clone()), message);
            return;
        };
        if !self.types(om, nm, pointer, path) {
            return;
        }
        self.enums(om, nm, pointer, path);
        self.bounds(om, nm, pointer, path);
        self.required(om, nm, pointer, path);
        self.properties(om, nm, pointer, path, depth);
        self.additional(om, nm, pointer, path, depth);
        match (om.get("items"), nm.get("items")) {
            (Some(a), Some(b)) => self.schema(a, b, &format!("{pointer}/items"), &format!("{path}[]"), depth + 1),
            (None, None) => {}
            (a, b) => {
                let rule = self.rule("input-schema-changed", "output-schema-changed");
                let message = format!(
                    "{}: the item schema was {}",
                    self.field(path),
                    if b.is_some() { "added" } else { "removed" }
                );
                self.d
                    .add(rule, format!("{pointer}/items"), a.cloned(), b.cloned(), message);
            }
        }
        for key in TEXT_KEYWORDS {
            if om.get(*key) != nm.get(*key) {
                let message = format!(
                    "{}: the {} changed (the model reads it)",
                    self.field(path),
                    key.trim_end_matches('s')
                );
                self.d.add(
                    "description-changed",
                    format!("{pointer}/{key}"),
                    om.get(*key).cloned(),
                    nm.get(*key).cloned(),
                    message,
                );
            }
        }
        if om.get("default") != nm.get("default") {
            let message = format!("{}: the default changed", self.field(path));
            self.d.add(
                "schema-default-changed",
                format!("{pointer}/default"),
                om.get("default").cloned(),
                nm.get("default").cloned(),
                message,
            );
        }
        let keys: BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
        for key in keys {
            let known = HANDLED.contains(&key.as_str())
                || TEXT_KEYWORDS.contains(&key.as_str())
                || MAX_KEYWORDS.contains(&key.as_str())
                || MIN_KEYWORDS.contains(&key.as_str());
            if !known && om.get(key) != nm.get(key) {
                let rule = self.rule("input-schema-changed", "output-schema-changed");
                let class = if self.input { "breaking" } else { "needing re-review" };
                let message = format!(
                    "{}: `{key}` changed; charter does not classify this keyword, so it is reported as {class}",
                    self.field(path)
                );
                self.d.add(
                    rule,
                    format!("{pointer}/{}", esc(key)),
                    om.get(key).cloned(),
                    nm.get(key).cloned(),
                    message,
                );
            }
        }
    }

    /// Compares `type`; false when the types no longer overlap (nothing deeper is worth comparing).
    fn types(&mut self, om: &Map<String, Value>, nm: &Map<String, Value>, pointer: &str, path: &str) -> bool {
        let (a, b) = (types(om), types(nm));
        if a == b {
            return true;
        }
        let wider = match (&a, &b) {
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(x), Some(y)) if covers(y, x) => Some(true),
            (Some(x), Some(y)) if covers(x, y) => Some(false),
            _ => None,
        };
        let rule = match (self.input, wider) {
            (true, Some(true)) => "input-type-widened",
            (true, _) => "input-type-changed",
            (false, Some(false)) => "output-type-narrowed",
            (false, _) => "output-type-changed",
        };
        let show = |t: &Option<BTreeSet<String>>| match t {
            Some(t) => t.iter().cloned().collect::<Vec<_>>().join(" | "),
            None => "any".into(),
        };
        let message = format!("{}: type changed from {} to {}", self.field(path), show(&a), show(&b));
        self.d.add(
            rule,
            format!("{pointer}/type"),
            om.get("type").cloned(),
            nm.get("type").cloned(),
            message,
        );
        match (a, b) {
            (Some(x), Some(y)) => covers(&x, &y) || covers(&y, &x) || x.iter().any(|t| y.contains(t)),
            _ => true,
        }
    }

    fn enums(&mut self, om: &Map<String, Value>, nm: &Map<String, Value>, pointer: &str, path: &str) {
        let (a, b) = (enum_values(om), enum_values(nm));
        if a == b {
            return;
        }
        let key = if om.contains_key("const") || nm.contains_key("const") {
            "const"
        } else {
            "enum"
        };
        let old = om.get("enum").or_else(|| om.get("const")).cloned();
        let new = nm.get("enum").or_else(|| nm.get("const")).cloned();
        let field = self.field(path);
        match (&a, &b) {
            (Some(x), Some(y)) => {
                let removed: Vec<&Value> = x.iter().filter(|v| !y.contains(v)).collect();
                let added: Vec<&Value> = y.iter().filter(|v| !x.contains(v)).collect();
                if !removed.is_empty() {
                    let rule = self.rule("input-enum-narrowed", "output-enum-narrowed");
                    let message = format!("{field}: value(s) {} no longer allowed", show_values(&removed));
                    self.d
                        .add(rule, format!("{pointer}/{key}"), old.clone(), new.clone(), message);
                }
                if !added.is_empty() {
                    let rule = self.rule("input-enum-widened", "output-enum-widened");
                    let message = format!("{field}: new value(s) {}", show_values(&added));
                    self.d.add(rule, format!("{pointer}/{key}"), old, new, message);
                }
            }
            (None, Some(_)) => {
                let rule = self.rule("input-enum-narrowed", "output-enum-narrowed");
                let message = format!("{field}: now restricted to a list of values");
                self.d.add(rule, format!("{pointer}/{key}"), None, new, message);
            }
            (Some(_), None) => {
                let rule = self.rule("input-enum-widened", "output-enum-widened");
                let message = format!("{field}: no longer restricted to a list of values");
                self.d.add(rule, format!("{pointer}/{key}"), old, None, message);
            }
            (None, None) => {}
        }
    }

    fn bounds(&mut self, om: &Map<String, Value>, nm: &Map<String, Value>, pointer: &str, path: &str) {
        let number = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_f64);
        let mut changes: Vec<(&str, Direction)> = Vec::new();
        for key in MAX_KEYWORDS.iter().chain(MIN_KEYWORDS) {
            let upper = MAX_KEYWORDS.contains(key);
            let direction = match (number(om, key), number(nm, key)) {
                (None, Some(_)) => Direction::Tighter,
                (Some(_), None) => Direction::Looser,
                (Some(a), Some(b)) if a != b => {
                    if (b < a) == upper {
                        Direction::Tighter
                    } else {
                        Direction::Looser
                    }
                }
                _ => continue,
            };
            changes.push((key, direction));
        }
        let unique = |m: &Map<String, Value>| m.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false);
        if unique(om) != unique(nm) {
            let direction = if unique(nm) {
                Direction::Tighter
            } else {
                Direction::Looser
            };
            changes.push(("uniqueItems", direction));
        }
        for key in ["multipleOf", "pattern", "format"] {
            let direction = match (om.get(key), nm.get(key)) {
                (None, Some(_)) => Direction::Tighter,
                (Some(_), None) => Direction::Looser,
                (Some(a), Some(b)) if a != b => Direction::Both,
                _ => continue,
            };
            changes.push((key, direction));
        }
        for (key, direction) in changes {
            let textual = key == "pattern" || key == "format";
            let rule = match (self.input, &direction, textual) {
                (true, Direction::Looser, _) => "input-bounds-loosened",
                (true, _, true) => "input-pattern-changed",
                (true, _, false) => "input-bounds-tightened",
                (false, Direction::Tighter, _) => "output-bounds-tightened",
                (false, _, true) => "output-pattern-changed",
                (false, _, false) => "output-bounds-loosened",
            };
            let how = match direction {
                Direction::Tighter if om.contains_key(key) => "tightened",
                Direction::Tighter => "added",
                Direction::Looser if nm.contains_key(key) => "loosened",
                Direction::Looser => "removed",
                Direction::Both => "changed",
            };
            let message = format!("{}: `{key}` {how}", self.field(path));
            self.d.add(
                rule,
                format!("{pointer}/{key}"),
                om.get(key).cloned(),
                nm.get(key).cloned(),
                message,
            );
        }
    }

    fn required(&mut self, om: &Map<String, Value>, nm: &Map<String, Value>, pointer: &str, path: &str) {
        let set = |m: &Map<String, Value>| -> Vec<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let (a, b) = (set(om), set(nm));
        let had = |name: &str| om.get("properties").and_then(|p| p.get(name)).is_some();
        for name in b.iter().filter(|n| !a.contains(n)) {
            let sub = join(path, name);
            let (rule, message) = if self.input {
                let what = if had(name) {
                    "is now required"
                } else {
                    "is a new required field"
                };
                (
                    "input-required-added",
                    format!(
                        "{}: `{sub}` {what}; clients that do not send it break",
                        self.what_side()
                    ),
                )
            } else {
                (
                    "output-required-added",
                    format!("{}: `{sub}` is now always present", self.what_side()),
                )
            };
            self.d.add(
                rule,
                format!("{pointer}/required"),
                Some(json!(a)),
                Some(json!(b)),
                message,
            );
        }
        for name in a.iter().filter(|n| !b.contains(n)) {
            let sub = join(path, name);
            let still = nm.get("properties").and_then(|p| p.get(name)).is_some();
            if !still && !self.input {
                // Reported as a removed field.
                continue;
            }
            let (rule, message) = if self.input {
                (
                    "input-required-removed",
                    format!("{}: `{sub}` is no longer required", self.what_side()),
                )
            } else {
                (
                    "output-required-removed",
                    format!(
                        "{}: `{sub}` may now be absent; clients that rely on it break",
                        self.what_side()
                    ),
                )
            };
            self.d.add(
                rule,
                format!("{pointer}/required"),
                Some(json!(a)),
                Some(json!(b)),
                message,
            );
        }
    }

    fn what_side(&self) -> String {
        format!("{}: {}", self.what, if self.input { "input" } else { "output" })
    }

    fn properties(
        &mut self,
        om: &Map<String, Value>,
        nm: &Map<String, Value>,
        pointer: &str,
        path: &str,
        depth: usize,
    ) {
        let empty = Map::new();
        let props = |m: &Map<String, Value>| m.get("properties").and_then(Value::as_object).cloned();
        let (a, b) = (props(om), props(nm));
        let (a, b) = (a.as_ref().unwrap_or(&empty), b.as_ref().unwrap_or(&empty));
        let required_new: Vec<&str> = nm
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, schema) in b {
            let at = format!("{pointer}/properties/{}", esc(name));
            let sub = join(path, name);
            match a.get(name) {
                Some(old) => self.schema(old, schema, &at, &sub, depth + 1),
                None if self.input && required_new.contains(&name.as_str()) => {
                    // Reported as a new required field.
                }
                None => {
                    let (rule, message) = if self.input {
                        (
                            "input-field-added",
                            format!("{}: new optional field `{sub}`", self.what_side()),
                        )
                    } else {
                        ("output-field-added", format!("{}: new field `{sub}`", self.what_side()))
                    };
                    self.d.add(rule, at, None, Some(schema.clone()), message);
                }
            }
        }
        for (name, schema) in a {
            if !b.contains_key(name) {
                let sub = join(path, name);
                let (rule, message) = if self.input {
                    (
                        "input-field-removed",
                        format!(
                            "{}: field `{sub}` was removed; clients that send it break",
                            self.what_side()
                        ),
                    )
                } else {
                    (
                        "output-field-removed",
                        format!(
                            "{}: field `{sub}` was removed; clients that read it break",
                            self.what_side()
                        ),
                    )
                };
                self.d.removed(
                    rule,
                    format!("{pointer}/properties/{}", esc(name)),
                    Some(schema.clone()),
                    message,
                );
            }
        }
    }

    fn additional(
        &mut self,
        om: &Map<String, Value>,
        nm: &Map<String, Value>,
        pointer: &str,
        path: &str,
        depth: usize,
    ) {
        let (a, b) = (om.get("additionalProperties"), nm.get("additionalProperties"));
        if a == b {
            return;
        }
        let closed = |v: Option<&Value>| v == Some(&Value::Bool(false));
        let open = |v: Option<&Value>| v.is_none() || v == Some(&Value::Bool(true));
        let at = format!("{pointer}/additionalProperties");
        let field = self.field(path);
        if closed(b) && !closed(a) {
            let (rule, message) = if self.input {
                (
                    "input-closed",
                    format!("{field}: no longer accepts additional properties; clients that send them break"),
                )
            } else {
                (
                    "output-closed",
                    format!("{field}: no longer carries additional properties"),
                )
            };
            self.d.add(rule, at, a.cloned(), b.cloned(), message);
        } else if closed(a) && !closed(b) {
            let (rule, message) = if self.input {
                ("input-opened", format!("{field}: now accepts additional properties"))
            } else {
                (
                    "output-schema-changed",
                    format!("{field}: may now carry additional properties"),
                )
            };
            self.d.add(rule, at, a.cloned(), b.cloned(), message);
        } else if let (Some(x), Some(y)) = (a, b)
            && x.is_object()
            && y.is_object()
        {
            self.schema(x, y, &at, &format!("{path}{{*}}"), depth + 1);
        } else if !(open(a) && open(b)) {
            let rule = self.rule("input-schema-changed", "output-schema-changed");
            self.d.add(
                rule,
                at,
                a.cloned(),
                b.cloned(),
                format!("{field}: `additionalProperties` changed"),
            );
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(old: Value, new: Value, input: bool) -> Vec<&'static str> {
        let mut d = Diff::default();
        walk(&mut d, &old, &new, input, "/tools/t/input", "tool `t`");
        d.findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn recursive_schemas_end() {
        let tree = |max: u64| {
            json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
                "name": {"type": "string", "maxLength": max},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}})
        };
        assert_eq!(rules(tree(10), tree(5), true), ["input-bounds-tightened"]);
        assert_eq!(rules(tree(10), tree(10), true), Vec::<&str>::new());
    }

    #[test]
    fn direction_depends_on_the_side() {
        let a = json!({"type": "string", "enum": ["a", "b"]});
        let b = json!({"type": "string", "enum": ["a"]});
        assert_eq!(rules(a.clone(), b.clone(), true), ["input-enum-narrowed"]);
        assert_eq!(rules(a.clone(), b.clone(), false), ["output-enum-narrowed"]);
        assert_eq!(rules(b.clone(), a.clone(), true), ["input-enum-widened"]);
        assert_eq!(rules(b, a, false), ["output-enum-widened"]);
        let int = json!({"type": "integer"});
        let num = json!({"type": "number"});
        assert_eq!(rules(int.clone(), num.clone(), true), ["input-type-widened"]);
        assert_eq!(rules(int.clone(), num.clone(), false), ["output-type-changed"]);
        assert_eq!(rules(num, int, false), ["output-type-narrowed"]);
    }

    #[test]
    fn unclassified_keywords_are_conservative() {
        let a = json!({"type": "string"});
        let b = json!({"type": "string", "not": {"const": "x"}});
        assert_eq!(rules(a.clone(), b.clone(), true), ["input-schema-changed"]);
        assert_eq!(rules(a, b, false), ["output-schema-changed"]);
    }
}
