//! YAML to a span-annotated tree.
//!
//! serde-saphyr parses the text (YAML 1.2, panic-free, with alias-expansion
//! budgets against "billion laughs" documents) and hands every node to the
//! visitor below wrapped in `Spanned`, so each value and each mapping key keeps
//! its line, column and byte offset. Everything after this stage works on the
//! tree or on JSON values derived from it, and finds its way back to the
//! source through JSON pointers (`Node::locate`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};
use serde_json::Value;

/// A region of the source text. Lines and columns are 1-based characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    /// Byte range in the source text.
    pub start: usize,
    pub end: usize,
}

impl Span {
    fn from_location(loc: serde_saphyr::Location, text: &str) -> Span {
        let line = loc.line() as usize;
        let column = loc.column() as usize;
        let span = loc.span();
        let start = span
            .byte_offset()
            .map(|b| b as usize)
            .unwrap_or_else(|| byte_offset_of(text, line, column));
        let len = span.byte_len().map(|b| b as usize).unwrap_or(0);
        let start = start.min(text.len());
        Span { line, column, start, end: (start + len).min(text.len()) }
    }

    /// The span of the first `len` bytes from a line and column (for parser errors).
    pub fn at(text: &str, line: usize, column: usize) -> Span {
        let start = byte_offset_of(text, line, column);
        let end = text[start..].char_indices().nth(1).map(|(i, _)| start + i).unwrap_or(text.len());
        Span { line, column, start, end }
    }
}

/// The byte offset of a 1-based line and character column.
fn byte_offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let rest = &text[line_start.min(text.len())..];
    rest.char_indices().nth(column.saturating_sub(1)).map(|(i, _)| line_start + i).unwrap_or(text.len())
}

/// A YAML node with its location.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One mapping entry; the key keeps its own span so "unknown field" points at it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

/// Why a document could not be read as YAML.
#[derive(Debug)]
pub struct YamlError {
    pub message: String,
    pub span: Option<Span>,
    /// For duplicate keys: where the key first appeared.
    pub first: Option<Span>,
}

/// Parses one YAML document into a spanned tree.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    // A 200-tool contract is ~20,000 nodes; far beyond that is an alias bomb.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 100_000;
    budget.max_aliases = 1_000;
    let options = serde_saphyr::options! {
        // Duplicates reach the visitor, which reports both places.
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        budget: Some(budget),
    };
    let raw: Result<Spanned<RawNode>, _> = serde_saphyr::from_str_with_options(text, options);
    match raw {
        Ok(root) => {
            let node = build(root, text);
            match find_duplicate(&node) {
                Some((key, first, second)) => Err(YamlError {
                    message: format!("duplicate key `{key}`"),
                    span: Some(second),
                    first: Some(first),
                }),
                None => Ok(node),
            }
        }
        Err(err) => Err(YamlError {
            message: yaml_message(&err),
            span: err.location().map(|loc| Span::from_location(loc, text)).filter(|s| s.line > 0),
            first: None,
        }),
    }
}

/// The parser's message without its own location suffix or snippet: ours renders those.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    if first.contains("budget breached") {
        return "the document is too large or expands too far through aliases (over 100,000 nodes)".into();
    }
    let first = first.strip_prefix("error:").unwrap_or(first).trim();
    // "line 2 column 9: message": the position is rendered from the span instead.
    let first = match first.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, message)) if position.contains("column") => message,
        _ => first,
    };
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    first.trim_end_matches(':').to_string()
}

fn find_duplicate(node: &Node) -> Option<(String, Span, Span)> {
    match &node.kind {
        NodeKind::Map(entries) => {
            let mut seen: std::collections::HashMap<&str, Span> = std::collections::HashMap::new();
            for entry in entries {
                if let Some(first) = seen.get(entry.key.as_str()) {
                    return Some((entry.key.clone(), *first, entry.key_span));
                }
                seen.insert(&entry.key, entry.key_span);
            }
            entries.iter().find_map(|e| find_duplicate(&e.value))
        }
        NodeKind::Seq(items) => items.iter().find_map(find_duplicate),
        _ => None,
    }
}

impl Node {
    /// The JSON value of the node, which the schema and serde stages read.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::UInt(u) => Value::from(*u),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                Value::Object(entries.iter().map(|e| (e.key.clone(), e.value.to_json())).collect())
            }
        }
    }

    /// The span of the node at a JSON pointer (`/tools/x/input`), or of the
    /// deepest node on the way when the pointer leads past what exists. With
    /// `key` the span of the last mapping key rather than its value.
    pub fn locate(&self, pointer: &str, key: bool) -> Span {
        let mut node = self;
        let mut key_span = None;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match &node.kind {
                NodeKind::Map(entries) => entries.iter().find(|e| e.key == token).map(|e| (Some(e.key_span), &e.value)),
                NodeKind::Seq(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)).map(|n| (None, n)),
                _ => None,
            };
            match next {
                Some((k, n)) => {
                    key_span = k;
                    node = n;
                }
                None => return key_span.filter(|_| key).unwrap_or(node.span),
            }
        }
        match (key, key_span) {
            (true, Some(span)) => span,
            _ => node.span,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn build(spanned: Spanned<RawNode>, text: &str) -> Node {
    let span = Span::from_location(spanned.referenced, text);
    let kind = match spanned.value {
        RawNode::Null => NodeKind::Null,
        RawNode::Bool(b) => NodeKind::Bool(b),
        RawNode::Int(i) => NodeKind::Int(i),
        RawNode::UInt(u) => NodeKind::UInt(u),
        RawNode::Float(f) => NodeKind::Float(f),
        RawNode::Str(s) => NodeKind::Str(s),
        RawNode::Seq(items) => NodeKind::Seq(items.into_iter().map(|n| build(n, text)).collect()),
        RawNode::Map(entries) => NodeKind::Map(
            entries
                .into_iter()
                .map(|(k, v)| Entry {
                    key: k.value,
                    key_span: Span::from_location(k.referenced, text),
                    value: build(v, text),
                })
                .collect(),
        ),
    };
    // A mapping or sequence is located where its first character is; make the
    // span cover at least that character so snippets underline something.
    let span = if span.end <= span.start { Span::at(text, span.line.max(1), span.column.max(1)) } else { span };
    Node { span, kind }
}

/// The tree as serde-saphyr hands it over, before spans are converted.
enum RawNode {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<String>, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawNodeVisitor)
    }
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawNode, E> {
        i64::try_from(v).map(RawNode::Int).map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawNode, E> {
        u64::try_from(v).map(RawNode::UInt).map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Spanned<RawNode>>()?;
            entries.push((Spanned::new(key.value.0, key.referenced, key.defined), value));
        }
        Ok(RawNode::Map(entries))
    }
}

/// A mapping key: any scalar, kept as text (`200:` and `"200":` are the same key).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}
