//! JSON Schema -> Rust types for tool inputs and outputs and resource URI
//! variables. The runtime validates every value against the contract's exact
//! schema before these types see it, so the types carry shape (and docs), and
//! the validator carries the constraints (patterns, bounds, formats). What a
//! Rust type cannot say precisely (`oneOf`, `const`, mixed enums) becomes
//! `serde_json::Value`, never a looser check.

use std::collections::BTreeMap;

use heck::ToUpperCamelCase as _;
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};
use serde_json::{Map, Value};

use crate::model::Name;

/// Collects the type definitions of one generated module.
#[derive(Default)]
pub struct TypeSet {
    /// Definitions by Rust name, so output order never depends on discovery order.
    items: BTreeMap<String, TokenStream>,
    /// The schema each name was generated from, to tell reuse from collision.
    origins: BTreeMap<String, Value>,
}

/// Where a schema sits, for `$ref` resolution and naming.
struct Scope<'a> {
    root: &'a Value,
    /// Prefix for names of `$defs` that collide with another tool's.
    owner: &'a str,
}

impl TypeSet {
    /// The Rust type of `schema`, naming it `name` if it needs a definition.
    pub fn root(&mut self, name: &str, schema: &Value, owner: &str) -> TokenStream {
        let scope = Scope { root: schema, owner };
        self.type_of(name, schema, &scope)
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
        self.root(name, &schema, name)
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

    fn type_of(&mut self, name: &str, schema: &Value, scope: &Scope) -> TokenStream {
        let Value::Object(map) = schema else {
            return quote! { serde_json::Value };
        };
        if let Some(Value::String(reference)) = map.get("$ref") {
            return self.reference(reference, scope);
        }
        if map.contains_key("const")
            || map.contains_key("oneOf")
            || map.contains_key("anyOf")
            || map.contains_key("allOf")
        {
            return quote! { serde_json::Value };
        }
        match map.get("type") {
            Some(Value::String(ty)) => self.typed(ty, name, map, scope),
            Some(Value::Array(types)) => {
                let non_null: Vec<&str> = types
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "null")
                    .collect();
                if non_null.len() == 1 && types.len() == 2 {
                    let inner = self.typed(non_null[0], name, map, scope);
                    quote! { Option<#inner> }
                } else {
                    quote! { serde_json::Value }
                }
            }
            _ if map.contains_key("properties") => self.typed("object", name, map, scope),
            _ => quote! { serde_json::Value },
        }
    }

    fn typed(&mut self, ty: &str, name: &str, map: &Map<String, Value>, scope: &Scope) -> TokenStream {
        match ty {
            "string" => match string_enum(map) {
                Some(values) => self.define_enum(name, map, &values),
                None => quote! { String },
            },
            "integer" => quote! { i64 },
            "number" => quote! { f64 },
            "boolean" => quote! { bool },
            "null" => quote! { () },
            "array" => {
                let item = match map.get("items") {
                    Some(items) => self.type_of(&format!("{name}Item"), items, scope),
                    None => quote! { serde_json::Value },
                };
                quote! { Vec<#item> }
            }
            "object" => self.define_struct(name, map, scope),
            _ => quote! { serde_json::Value },
        }
    }

    fn reference(&mut self, reference: &str, scope: &Scope) -> TokenStream {
        let Some(def_name) = reference.strip_prefix("#/$defs/") else {
            return quote! { serde_json::Value };
        };
        let Some(target) = scope.root.get("$defs").and_then(|d| d.get(def_name)) else {
            return quote! { serde_json::Value };
        };
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
            self.origins.insert(name.clone(), target.clone());
            self.items.insert(name.clone(), quote! { #doc pub type #ident = #ty; });
        }
        let ident = ident(&name);
        quote! { #ident }
    }

    fn define_struct(&mut self, name: &str, map: &Map<String, Value>, scope: &Scope) -> TokenStream {
        let type_ident = ident(name);
        let schema = Value::Object(map.clone());
        if self.origins.get(name) == Some(&schema) {
            return quote! { #type_ident };
        }
        // Reserve the name first: recursive schemas refer to themselves.
        self.origins.insert(name.to_string(), schema.clone());
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        let mut used = std::collections::BTreeSet::new();
        if let Some(Value::Object(props)) = map.get("properties") {
            for (prop, prop_schema) in props {
                let rust = Name::new(prop);
                let mut field = rust.snake.clone();
                while !used.insert(field.clone()) {
                    field.push('_');
                }
                let field_ident = ident(&field);
                let ty = self.type_of(&format!("{name}{}", rust.pascal), prop_schema, scope);
                let doc = doc_attr(prop_schema);
                let rename = (field.trim_start_matches("r#") != prop).then(|| quote! { #[serde(rename = #prop)] });
                let boxed = if type_ident == ty.to_string() {
                    quote! { Box<#ty> }
                } else {
                    ty
                };
                if required.contains(&prop.as_str()) {
                    fields.push(quote! { #doc #rename pub #field_ident: #boxed, });
                } else {
                    fields.push(quote! {
                        #doc #rename
                        #[serde(default, skip_serializing_if = "Option::is_none")]
                        pub #field_ident: Option<#boxed>,
                    });
                }
            }
        }
        let closed = matches!(map.get("additionalProperties"), Some(Value::Bool(false)));
        let deny = closed.then(|| quote! { #[serde(deny_unknown_fields)] });
        if !closed {
            fields.push(quote! {
                /// Properties the schema leaves open.
                #[serde(flatten)]
                pub extra: serde_json::Map<String, serde_json::Value>,
            });
        }
        let doc = doc_attr(&schema);
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

    fn define_enum(&mut self, name: &str, map: &Map<String, Value>, values: &[String]) -> TokenStream {
        let type_ident = ident(name);
        let schema = Value::Object(map.clone());
        if self.origins.get(name) == Some(&schema) {
            return quote! { #type_ident };
        }
        self.origins.insert(name.to_string(), schema.clone());
        let mut used = std::collections::BTreeSet::new();
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
        let doc = doc_attr(&schema);
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
}

fn string_enum(map: &Map<String, Value>) -> Option<Vec<String>> {
    let values = map.get("enum")?.as_array()?;
    values.iter().map(|v| v.as_str().map(String::from)).collect()
}

/// `#[doc = ...]` from a schema's description, if any.
pub fn doc_attr(schema: &Value) -> TokenStream {
    match schema.get("description").and_then(Value::as_str) {
        Some(text) => doc_lines(text),
        None => quote! {},
    }
}

/// One `#[doc]` per line, each with the leading space rustdoc expects.
pub fn doc_lines(text: &str) -> TokenStream {
    let lines = text.trim().lines().map(|line| {
        let line = format!(" {}", line.trim_end());
        quote! { #[doc = #line] }
    });
    quote! { #(#lines)* }
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

    fn render(schema: Value) -> String {
        let mut set = TypeSet::default();
        let root = set.root("Input", &schema, "Tool");
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
