//! JSON Schema -> Rust types for tool inputs and outputs and resource URI
//! variables, read from the model's typed schemas. The runtime validates every
//! value against the contract's exact schema before these types see it, so the
//! types carry shape (and docs), and the validator carries the constraints
//! (patterns, bounds, formats). What a Rust type cannot say precisely (`oneOf`,
//! `anyOf`, mixed enums) becomes `serde_json::Value`, never a looser check.

use std::collections::{BTreeMap, BTreeSet};

use heck::ToUpperCamelCase as _;
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};
use serde_json::{Map, Value};

use crate::model::{JsonType, Name, SchemaNode, SchemaTree};

/// Collects the type definitions of one generated module.
#[derive(Default)]
pub struct TypeSet {
    /// Definitions by Rust name, so output order never depends on discovery order.
    items: BTreeMap<String, TokenStream>,
    /// The schema each name was generated from, to tell reuse from collision.
    origins: BTreeMap<String, SchemaNode>,
}

/// The schema tree a type comes from, for `$ref` resolution and naming.
struct Scope<'a> {
    tree: &'a SchemaTree,
    /// Prefix for names of `$defs` that collide with another tool's.
    owner: &'a str,
}

/// A schema's Rust type without its null: `nullable` says whether JSON `null` is allowed too,
/// which a field or an item states with `Option`.
struct RustType {
    tokens: TokenStream,
    nullable: bool,
}

impl RustType {
    fn plain(tokens: TokenStream) -> RustType {
        RustType {
            tokens,
            nullable: false,
        }
    }

    /// The type holding every value the schema allows, `null` included.
    fn full(self) -> TokenStream {
        let tokens = self.tokens;
        if self.nullable {
            quote! { Option<#tokens> }
        } else {
            tokens
        }
    }
}

impl TypeSet {
    /// The Rust type of `schema`, naming it `name` if it needs a definition.
    pub fn root(&mut self, name: &str, schema: &SchemaTree, owner: &str) -> TokenStream {
        let scope = Scope { tree: schema, owner };
        self.type_of(name, &schema.root, &scope).full()
    }

    /// A struct for the variables of a resource template.
    pub fn params(&mut self, name: &str, doc: &str, variables: &[(Name, Value)]) -> TokenStream {
        let mut props = Map::new();
        for (var, schema) in variables {
            props.insert(var.original.clone(), schema.clone());
        }
        let schema = serde_json::json!({
            "type": "object",
            "description": doc,
            "properties": props,
            "required": variables.iter().map(|(n, _)| n.original.clone()).collect::<Vec<_>>(),
            "additionalProperties": false,
        });
        self.root(name, &SchemaTree::read(&schema), name)
    }

    /// An item that is not a schema's type, e.g. an alias naming a root type.
    pub fn extra(&mut self, item: TokenStream) {
        let key = format!("~{}", self.items.len());
        self.items.insert(key, item);
    }

    pub fn into_tokens(self) -> TokenStream {
        let items = self.items.into_values();
        quote! { #(#items)* }
    }

    fn type_of(&mut self, name: &str, schema: &SchemaNode, scope: &Scope) -> RustType {
        let json = RustType::plain(quote! { serde_json::Value });
        if !schema.has_keywords() {
            return json;
        }
        if schema.reference.is_some() {
            return self.reference(schema, scope).unwrap_or(json);
        }
        if let Some(value) = &schema.constant {
            return RustType::plain(self.define_const(name, schema, value));
        }
        if schema
            .subschemas
            .iter()
            .any(|s| matches!(s.keyword, "oneOf" | "anyOf" | "allOf"))
        {
            return json;
        }
        match schema.types.as_deref() {
            Some([ty]) => RustType::plain(self.typed(*ty, name, schema, scope)),
            Some(_) => match schema.nullable_type() {
                Some(ty) => RustType {
                    tokens: self.typed(ty, name, schema, scope),
                    nullable: true,
                },
                None => json,
            },
            None if schema.object => RustType::plain(self.typed(JsonType::Object, name, schema, scope)),
            None => json,
        }
    }

    fn typed(&mut self, ty: JsonType, name: &str, schema: &SchemaNode, scope: &Scope) -> TokenStream {
        match ty {
            JsonType::String => match string_enum(schema) {
                Some(values) => self.define_enum(name, schema, &values),
                None => quote! { String },
            },
            JsonType::Integer => quote! { i64 },
            JsonType::Number => quote! { f64 },
            JsonType::Boolean => quote! { bool },
            JsonType::Null => quote! { () },
            JsonType::Array => {
                let item = match schema.items() {
                    Some(items) => self.type_of(&format!("{name}Item"), items, scope).full(),
                    None => quote! { serde_json::Value },
                };
                quote! { Vec<#item> }
            }
            JsonType::Object => self.define_struct(name, schema, scope),
        }
    }

    /// The type of the definition a `$ref` names, called after it; `None` if it does not resolve.
    fn reference(&mut self, schema: &SchemaNode, scope: &Scope) -> Option<RustType> {
        let (def_name, target) = scope.tree.target(schema)?;
        let mut name = def_name.to_upper_camel_case();
        if self.origins.get(&name).is_some_and(|seen| seen != target) {
            name = format!("{}{name}", scope.owner);
        }
        let ty = self.type_of(&name, target, scope);
        // A named definition that became a plain type gets an alias, so the
        // contract's vocabulary (`PolicyId`) shows up in signatures.
        if !self.items.contains_key(&name) {
            let ident = ident(&name);
            let doc = doc_attr(target);
            let tokens = &ty.tokens;
            self.origins.insert(name.clone(), target.clone());
            self.items
                .insert(name.clone(), quote! { #doc pub type #ident = #tokens; });
        }
        let ident = ident(&name);
        Some(RustType {
            tokens: quote! { #ident },
            nullable: ty.nullable,
        })
    }

    fn define_struct(&mut self, name: &str, schema: &SchemaNode, scope: &Scope) -> TokenStream {
        let type_ident = ident(name);
        if self.origins.get(name) == Some(schema) {
            return quote! { #type_ident };
        }
        // Reserve the name first: recursive schemas refer to themselves.
        self.origins.insert(name.to_string(), schema.clone());
        let mut fields = Vec::new();
        let mut used = BTreeSet::new();
        for (prop, prop_schema) in schema.properties() {
            let rust = Name::new(prop);
            let mut field = rust.snake.clone();
            while !used.insert(field.clone()) {
                field.push('_');
            }
            let field_ident = ident(&field);
            let ty = self.type_of(&format!("{name}{}", rust.pascal), prop_schema, scope);
            let doc = doc_attr(prop_schema);
            let rename = (field.trim_start_matches("r#") != prop).then(|| quote! { #[serde(rename = #prop)] });
            let inner = &ty.tokens;
            let boxed = if type_ident == inner.to_string() {
                quote! { Box<#inner> }
            } else {
                quote! { #inner }
            };
            let required = schema.required.iter().any(|r| r == prop);
            // Absent and `null` both read as `None`; `None` is written as `null` where the
            // schema allows it, and left out where only absence is allowed.
            let (attrs, field_ty) = match (required, ty.nullable) {
                (true, false) => (quote! {}, boxed),
                (true, true) => (quote! {}, quote! { Option<#boxed> }),
                (false, true) => (quote! { #[serde(default)] }, quote! { Option<#boxed> }),
                (false, false) => (
                    quote! { #[serde(default, skip_serializing_if = "Option::is_none")] },
                    quote! { Option<#boxed> },
                ),
            };
            fields.push(quote! { #doc #rename #attrs pub #field_ident: #field_ty, });
        }
        let closed = schema.is_closed();
        let deny = closed.then(|| quote! { #[serde(deny_unknown_fields)] });
        if !closed {
            fields.push(quote! {
                /// Properties the schema leaves open.
                #[serde(flatten)]
                pub extra: serde_json::Map<String, serde_json::Value>,
            });
        }
        let doc = doc_attr(schema);
        self.items.insert(
            name.to_string(),
            quote! {
                #doc
                #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
                #deny
                pub struct #type_ident { #(#fields)* }
            },
        );
        quote! { #type_ident }
    }

    fn define_enum(&mut self, name: &str, schema: &SchemaNode, values: &[&str]) -> TokenStream {
        let type_ident = ident(name);
        if self.origins.get(name) == Some(schema) {
            return quote! { #type_ident };
        }
        self.origins.insert(name.to_string(), schema.clone());
        let mut used = BTreeSet::new();
        let variants = values.iter().map(|value| {
            let mut variant = value.to_upper_camel_case();
            if variant.is_empty() || variant.starts_with(|c: char| c.is_ascii_digit()) {
                variant = format!("V{variant}");
            }
            while !used.insert(variant.clone()) {
                variant.push('_');
            }
            let variant = ident(&variant);
            quote! { #[serde(rename = #value)] #variant, }
        });
        let doc = doc_attr(schema);
        self.items.insert(
            name.to_string(),
            quote! {
                #doc
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
                pub enum #type_ident { #(#variants)* }
            },
        );
        quote! { #type_ident }
    }

    /// A type that holds exactly the `const` value: a one-variant enum for a string, else a
    /// unit struct that writes the value and reads nothing but it.
    fn define_const(&mut self, name: &str, schema: &SchemaNode, value: &Value) -> TokenStream {
        if let Value::String(text) = value {
            return self.define_enum(name, schema, &[text]);
        }
        let type_ident = ident(name);
        if self.origins.get(name) == Some(schema) {
            return quote! { #type_ident };
        }
        self.origins.insert(name.to_string(), schema.clone());
        let json = value.to_string();
        let doc = doc_attr(schema);
        self.items.insert(
            name.to_string(),
            quote! {
                #doc
                #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
                pub struct #type_ident;

                impl #type_ident {
                    /// The one value this type holds, as JSON.
                    pub const JSON: &'static str = #json;
                }

                impl serde::Serialize for #type_ident {
                    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                        let value: serde_json::Value = serde_json::from_str(Self::JSON).map_err(serde::ser::Error::custom)?;
                        serde::Serialize::serialize(&value, serializer)
                    }
                }

                impl<'de> serde::Deserialize<'de> for #type_ident {
                    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                        let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
                        let expected: serde_json::Value = serde_json::from_str(Self::JSON).map_err(serde::de::Error::custom)?;
                        // JSON Schema compares numbers by value: `1` and `1.0` are the same.
                        let same = match (&value, &expected) {
                            (serde_json::Value::Number(a), serde_json::Value::Number(b)) => a.as_f64() == b.as_f64(),
                            _ => value == expected,
                        };
                        if same {
                            Ok(#type_ident)
                        } else {
                            Err(serde::de::Error::custom(format!("expected {}, found {value}", Self::JSON)))
                        }
                    }
                }
            },
        );
        quote! { #type_ident }
    }
}

/// The values of an `enum` of strings only.
fn string_enum(schema: &SchemaNode) -> Option<Vec<&str>> {
    schema.values.as_ref()?.iter().map(Value::as_str).collect()
}

/// `#[doc = ...]` from a schema's description, if any.
fn doc_attr(schema: &SchemaNode) -> TokenStream {
    match &schema.description {
        Some(text) => doc_lines(text),
        None => quote! {},
    }
}

/// One `#[doc]` per line, each with the leading space rustdoc expects.
pub fn doc_lines(text: &str) -> TokenStream {
    let lines = text.trim().lines().flat_map(wrap).map(|line| {
        let line = format!(" {line}");
        quote! { #[doc = #line] }
    });
    quote! { #(#lines)* }
}

/// The widest a doc comment's text runs before it wraps, so generated docs
/// read without scrolling; a longer word (a URL) stays whole.
const DOC_WIDTH: usize = 88;

/// One line of text broken at spaces into lines of at most `DOC_WIDTH`
/// characters; an empty line stays (it separates paragraphs).
fn wrap(line: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in line.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > DOC_WIDTH {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current);
    lines
}

/// An identifier; keywords arrive already escaped by `Name`.
pub fn ident(name: &str) -> Ident {
    match name.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => format_ident!("{}", name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn doc_comments_wrap_at_spaces_and_keep_paragraphs() {
        let text = format!(
            "{}\n\nEffect: read. https://example.com/{}",
            "word ".repeat(30).trim(),
            "x".repeat(100)
        );
        let docs = doc_lines(&text).to_string();
        let lines: Vec<&str> = docs
            .split("# [doc = \"")
            .skip(1)
            .map(|l| l.split("\"]").next().unwrap())
            .collect();
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() <= DOC_WIDTH + 1 || !l.trim().contains(' ')),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[2], " ", "{lines:?}");
    }

    fn render(schema: Value) -> String {
        let mut set = TypeSet::default();
        let root = set.root("Input", &SchemaTree::read(&schema), "Tool");
        let items = set.into_tokens();
        let file: syn::File = syn::parse2(quote! { #items type Root = #root; }).unwrap();
        prettyplease::unparse(&file)
    }

    #[test]
    fn objects_enums_options_and_refs() {
        let text = render(json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to search for."},
                "type": {"type": "string", "enum": ["policy", "standard-procedure"]},
                "limit": {"type": "integer"},
                "ids": {"type": "array", "items": {"$ref": "#/$defs/PolicyId"}}
            },
            "required": ["query"],
            "additionalProperties": false,
            "$defs": {"PolicyId": {"type": "string", "pattern": "^POL-[0-9]{4}$"}}
        }));
        assert!(text.contains("pub type PolicyId = String;"), "{text}");
        assert!(text.contains("#[serde(deny_unknown_fields)]"), "{text}");
        assert!(
            text.contains("/// What to search for.\n    pub query: String,"),
            "{text}"
        );
        assert!(text.contains("#[serde(rename = \"type\")]\n    #[serde(default, skip_serializing_if = \"Option::is_none\")]\n    pub type_: Option<InputType>,"), "{text}");
        assert!(
            text.contains("#[serde(rename = \"standard-procedure\")]\n    StandardProcedure,"),
            "{text}"
        );
        assert!(text.contains("pub ids: Option<Vec<PolicyId>>,"), "{text}");
    }

    #[test]
    fn consts_hold_one_value_and_nullable_fields_one_option() {
        let text = render(json!({
            "type": "object",
            "properties": {
                "state": {"const": "unsent_draft"},
                "version": {"const": 2},
                "note": {"type": ["string", "null"]},
                "owner": {"$ref": "#/$defs/Owner"},
                "label": {"type": "string"}
            },
            "required": ["state", "version", "owner"],
            "additionalProperties": false,
            "$defs": {"Owner": {"type": ["object", "null"], "properties": {"name": {"type": "string"}}}}
        }));
        assert!(text.contains("pub state: InputState,"), "{text}");
        assert!(
            text.contains("pub enum InputState {\n    #[serde(rename = \"unsent_draft\")]\n    UnsentDraft,\n}"),
            "{text}"
        );
        assert!(text.contains("pub struct InputVersion;"), "{text}");
        assert!(text.contains("pub const JSON: &'static str = \"2\";"), "{text}");
        // Optional and nullable: absent and null read as None, None written as null.
        assert!(
            text.contains("#[serde(default)]\n    pub note: Option<String>,"),
            "{text}"
        );
        // Required and nullable through a reference: present, possibly null.
        assert!(text.contains("pub owner: Option<Owner>,"), "{text}");
        assert!(text.contains("pub struct Owner {"), "{text}");
        // Optional, not nullable: None is left out, since the schema refuses null.
        assert!(
            text.contains(
                "#[serde(default, skip_serializing_if = \"Option::is_none\")]\n    pub label: Option<String>,"
            ),
            "{text}"
        );
        assert!(!text.contains("Option<Option"), "{text}");
    }

    #[test]
    fn what_types_cannot_say_stays_json() {
        let text = render(json!({
            "type": "object",
            "properties": {"either": {"oneOf": [{"type": "string"}, {"type": "integer"}]}, "n": {"type": ["integer", "null"]}},
            "required": ["either", "n"]
        }));
        assert!(text.contains("pub either: serde_json::Value,"), "{text}");
        assert!(text.contains("pub n: Option<i64>,"), "{text}");
        assert!(text.contains("#[serde(flatten)]"), "{text}");
    }
}
