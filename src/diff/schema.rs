//! Structural comparison of two JSON Schemas (2020-12, as the model normalizes
//! them), read into the model's typed form: required sets, types, enums,
//! bounds, patterns, closedness, properties and items. For an input a narrowing
//! breaks clients; for an output a widening does. Findings quote the keywords as written.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};

use super::esc;
use crate::model::{SchemaNode, SchemaTree};

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
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];

/// How deep a walk goes before it stops (recursive schemas).
const MAX_DEPTH: usize = 48;

struct Walk<'a, 'd> {
    d: &'d mut Diff,
    old_tree: &'a SchemaTree,
    new_tree: &'a SchemaTree,
    input: bool,
    /// `tool \`x\``, for messages.
    what: &'a str,
    /// Pairs of definitions already compared, so recursive schemas end.
    seen: HashSet<(String, String)>,
}

/// Compares two schemas; `base` is the contract pointer of the schema (`/tools/x/input`).
pub(crate) fn walk(d: &mut Diff, old: &Value, new: &Value, input: bool, base: &str, what: &str) {
    let (old_tree, new_tree) = (SchemaTree::read(old), SchemaTree::read(new));
    let mut w = Walk {
        d,
        old_tree: &old_tree,
        new_tree: &new_tree,
        input,
        what,
        seen: HashSet::new(),
    };
    w.schema(&old_tree.root, &new_tree.root, base, "", 0);
}

fn types(s: &SchemaNode) -> Option<BTreeSet<&'static str>> {
    Some(s.types.as_ref()?.iter().map(|t| t.as_str()).collect())
}

/// Every type of `inner` is accepted by `outer` (an integer is a number).
fn covers(outer: &BTreeSet<&str>, inner: &BTreeSet<&str>) -> bool {
    inner
        .iter()
        .all(|t| outer.contains(t) || (*t == "integer" && outer.contains("number")))
}

fn enum_values(s: &SchemaNode) -> Option<Vec<Value>> {
    s.values.clone().or_else(|| s.constant.clone().map(|c| vec![c]))
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

/// How a keyword that restricts values in its own way (not an ordered bound) changed, if it did.
fn restriction<T: PartialEq>(key: &'static str, old: &Option<T>, new: &Option<T>) -> Option<(&'static str, Direction)> {
    let direction = match (old, new) {
        (None, Some(_)) => Direction::Tighter,
        (Some(_), None) => Direction::Looser,
        (Some(a), Some(b)) if a != b => Direction::Both,
        _ => return None,
    };
    Some((key, direction))
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

    fn schema(&mut self, old: &SchemaNode, new: &SchemaNode, pointer: &str, path: &str, depth: usize) {
        if depth > MAX_DEPTH || old == new {
            return;
        }
        let (old_tree, new_tree) = (self.old_tree, self.new_tree);
        let (o, oref) = old_tree.resolve(old);
        let (n, nref) = new_tree.resolve(new);
        if (oref.is_some() || nref.is_some())
            && !self
                .seen
                .insert((oref.unwrap_or_default().to_owned(), nref.unwrap_or_default().to_owned()))
        {
            return;
        }
        if o == n {
            return;
        }
        let (Some(om), Some(nm)) = (o.json.as_object(), n.json.as_object()) else {
            let rule = self.rule("input-schema-changed", "output-schema-changed");
            let message = format!(
                "{}: the schema changed (charter cannot classify this change)",
                self.field(path)
            );
            self.d.add(
                rule,
                pointer.to_owned(),
                Some(o.json.clone()),
                Some(n.json.clone()),
                message,
            );
            return;
        };
        if !self.types(&o, &n, pointer, path) {
            return;
        }
        self.enums(&o, &n, pointer, path);
        self.bounds(&o, &n, pointer, path);
        self.required(&o, &n, pointer, path);
        self.properties(&o, &n, pointer, path, depth);
        self.additional(&o, &n, pointer, path, depth);
        match (o.items(), n.items()) {
            (Some(a), Some(b)) => self.schema(a, b, &format!("{pointer}/items"), &format!("{path}[]"), depth + 1),
            (None, None) => {}
            (a, b) => {
                let rule = self.rule("input-schema-changed", "output-schema-changed");
                let message = format!(
                    "{}: the item schema was {}",
                    self.field(path),
                    if b.is_some() { "added" } else { "removed" }
                );
                self.d.add(
                    rule,
                    format!("{pointer}/items"),
                    a.map(|a| a.json.clone()),
                    b.map(|b| b.json.clone()),
                    message,
                );
            }
        }
        for key in TEXT_KEYWORDS {
            if o.keyword(key) != n.keyword(key) {
                let message = format!(
                    "{}: the {} changed (the model reads it)",
                    self.field(path),
                    key.trim_end_matches('s')
                );
                self.d.add(
                    "description-changed",
                    format!("{pointer}/{key}"),
                    o.keyword(key).cloned(),
                    n.keyword(key).cloned(),
                    message,
                );
            }
        }
        if o.keyword("default") != n.keyword("default") {
            let message = format!("{}: the default changed", self.field(path));
            self.d.add(
                "schema-default-changed",
                format!("{pointer}/default"),
                o.keyword("default").cloned(),
                n.keyword("default").cloned(),
                message,
            );
        }
        let keys: BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
        for key in keys {
            let known = HANDLED.contains(&key.as_str()) || TEXT_KEYWORDS.contains(&key.as_str());
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
    fn types(&mut self, o: &SchemaNode, n: &SchemaNode, pointer: &str, path: &str) -> bool {
        let (a, b) = (types(o), types(n));
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
        let show = |t: &Option<BTreeSet<&str>>| match t {
            Some(t) => t.iter().copied().collect::<Vec<_>>().join(" | "),
            None => "any".into(),
        };
        let message = format!("{}: type changed from {} to {}", self.field(path), show(&a), show(&b));
        self.d.add(
            rule,
            format!("{pointer}/type"),
            o.keyword("type").cloned(),
            n.keyword("type").cloned(),
            message,
        );
        match (a, b) {
            (Some(x), Some(y)) => covers(&x, &y) || covers(&y, &x) || x.iter().any(|t| y.contains(t)),
            _ => true,
        }
    }

    fn enums(&mut self, o: &SchemaNode, n: &SchemaNode, pointer: &str, path: &str) {
        let (a, b) = (enum_values(o), enum_values(n));
        if a == b {
            return;
        }
        let key = if o.constant.is_some() || n.constant.is_some() {
            "const"
        } else {
            "enum"
        };
        let old = o.keyword("enum").or_else(|| o.keyword("const")).cloned();
        let new = n.keyword("enum").or_else(|| n.keyword("const")).cloned();
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

    fn bounds(&mut self, o: &SchemaNode, n: &SchemaNode, pointer: &str, path: &str) {
        let limits = |s: &SchemaNode| {
            let upper = s.bounds.upper().map(|(key, value)| (key, value, true));
            let lower = s.bounds.lower().map(|(key, value)| (key, value, false));
            upper.into_iter().chain(lower)
        };
        let mut changes: Vec<(&str, Direction)> = Vec::new();
        for ((key, a, upper), (_, b, _)) in limits(o).zip(limits(n)) {
            let direction = match (a, b) {
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
        if o.bounds.unique_items != n.bounds.unique_items {
            let direction = if n.bounds.unique_items {
                Direction::Tighter
            } else {
                Direction::Looser
            };
            changes.push(("uniqueItems", direction));
        }
        changes.extend(
            [
                restriction("multipleOf", &o.bounds.multiple_of, &n.bounds.multiple_of),
                restriction("pattern", &o.pattern, &n.pattern),
                restriction("format", &o.format, &n.format),
            ]
            .into_iter()
            .flatten(),
        );
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
                Direction::Tighter if o.has_keyword(key) => "tightened",
                Direction::Tighter => "added",
                Direction::Looser if n.has_keyword(key) => "loosened",
                Direction::Looser => "removed",
                Direction::Both => "changed",
            };
            let message = format!("{}: `{key}` {how}", self.field(path));
            self.d.add(
                rule,
                format!("{pointer}/{key}"),
                o.keyword(key).cloned(),
                n.keyword(key).cloned(),
                message,
            );
        }
    }

    fn required(&mut self, o: &SchemaNode, n: &SchemaNode, pointer: &str, path: &str) {
        let (a, b) = (&o.required, &n.required);
        for name in b.iter().filter(|name| !a.contains(name)) {
            let sub = join(path, name);
            let (rule, message) = if self.input {
                let what = if o.property(name).is_some() {
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
        for name in a.iter().filter(|name| !b.contains(name)) {
            let sub = join(path, name);
            if n.property(name).is_none() && !self.input {
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

    fn properties(&mut self, o: &SchemaNode, n: &SchemaNode, pointer: &str, path: &str, depth: usize) {
        for (name, schema) in n.properties() {
            let at = format!("{pointer}/properties/{}", esc(name));
            let sub = join(path, name);
            match o.property(name) {
                Some(old) => self.schema(old, schema, &at, &sub, depth + 1),
                None if self.input && n.required.iter().any(|r| r == name) => {
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
                    self.d.add(rule, at, None, Some(schema.json.clone()), message);
                }
            }
        }
        for (name, schema) in o.properties() {
            if n.property(name).is_none() {
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
                    Some(schema.json.clone()),
                    message,
                );
            }
        }
    }

    fn additional(&mut self, o: &SchemaNode, n: &SchemaNode, pointer: &str, path: &str, depth: usize) {
        let (a, b) = (o.additional(), n.additional());
        if a == b {
            return;
        }
        let closed = |s: Option<&SchemaNode>| s.is_some_and(|s| s.boolean == Some(false));
        let open = |s: Option<&SchemaNode>| s.is_none_or(|s| s.boolean == Some(true));
        let quote = |s: Option<&SchemaNode>| s.map(|s| s.json.clone());
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
            self.d.add(rule, at, quote(a), quote(b), message);
        } else if closed(a) && !closed(b) {
            let (rule, message) = if self.input {
                ("input-opened", format!("{field}: now accepts additional properties"))
            } else {
                (
                    "output-schema-changed",
                    format!("{field}: may now carry additional properties"),
                )
            };
            self.d.add(rule, at, quote(a), quote(b), message);
        } else if let (Some(x), Some(y)) = (a, b)
            && x.has_keywords()
            && y.has_keywords()
        {
            self.schema(x, y, &at, &format!("{path}{{*}}"), depth + 1);
        } else if !(open(a) && open(b)) {
            let rule = self.rule("input-schema-changed", "output-schema-changed");
            self.d.add(
                rule,
                at,
                quote(a),
                quote(b),
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

/// What a schema walk found. The walk names its rules by id text, so it
/// collects here; `rules::Findings::schema` turns the ids into [`RuleId`]s.
#[derive(Default)]
pub(crate) struct Diff {
    pub findings: Vec<SchemaChange>,
}

/// One change a schema walk found.
pub(crate) struct SchemaChange {
    pub rule: &'static str,
    pub pointer: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub message: String,
    pub in_old: bool,
}

impl Diff {
    /// A change best shown in the new contract.
    pub fn add(
        &mut self,
        rule: &'static str,
        pointer: String,
        old: Option<Value>,
        new: Option<Value>,
        message: String,
    ) {
        self.findings.push(SchemaChange {
            rule,
            pointer,
            old,
            new,
            message,
            in_old: false,
        });
    }

    /// A removal, best shown in the old contract.
    pub fn removed(&mut self, rule: &'static str, pointer: String, old: Option<Value>, message: String) {
        self.findings.push(SchemaChange {
            rule,
            pointer,
            old,
            new: None,
            message,
            in_old: true,
        });
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
