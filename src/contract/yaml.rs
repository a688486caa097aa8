//! YAML to a span-annotated tree.
//!
//! serde-saphyr's YAML 1.2 parser (granit-parser, through serde-saphyr's
//! re-export) emits events with their source positions; this module builds a
//! small tree from them in which every value and every mapping key keeps its
//! line, column and byte range. Building the tree from events rather than
//! through serde's `Spanned` keeps parsing linear and fast (a 200-tool
//! contract parses in a few milliseconds), and lets us report duplicate keys
//! with both places, bound alias expansion and nesting, and resolve scalars by
//! the YAML 1.2 core schema (so `2027-05-01` and `1.4.0` stay strings).
//! Everything after this stage works on the tree, or on JSON values derived
//! from it, and finds its way back to the source through JSON pointers
//! (`Node::locate`).

use std::collections::HashMap;

use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle, Span as EventSpan};

/// Nodes a document may expand to, aliases included: a 200-tool contract is
/// about 20,000; far beyond that is an alias bomb.
const MAX_NODES: usize = 100_000;
/// How deeply collections may nest.
const MAX_DEPTH: usize = 64;

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
    /// The span of the character at a line and column (for parser errors).
    pub fn at(text: &str, line: usize, column: usize) -> Span {
        let start = byte_offset_of(text, line, column);
        let end = text[start..]
            .char_indices()
            .nth(1)
            .map(|(i, _)| start + i)
            .unwrap_or(text.len());
        Span {
            line: line.max(1),
            column: column.max(1),
            start,
            end,
        }
    }
}

/// The byte offset of a 1-based line and character column.
fn byte_offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    rest.char_indices()
        .nth(column.saturating_sub(1))
        .map(|(i, _)| line_start + i)
        .unwrap_or(text.len())
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

/// Parses one YAML document into a spanned tree; `None` for a document with no content.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    Builder {
        text,
        lines: LineIndex::new(text),
        anchors: HashMap::new(),
        nodes: 0,
    }
    .document()
}

/// Line starts, to turn a marker's line and column into a byte offset.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        LineIndex(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }
}

/// A collection being built.
enum Open {
    Seq {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Span,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<(String, Span)>,
        seen: HashMap<String, Span>,
    },
}

struct Builder<'t> {
    text: &'t str,
    lines: LineIndex,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl Builder<'_> {
    fn document(mut self) -> Result<Option<Node>, YamlError> {
        let mut stack: Vec<Open> = Vec::new();
        let mut root: Option<Node> = None;
        let mut documents = 0;
        for event in Parser::new_from_str(self.text) {
            let (event, span) = event.map_err(|e| YamlError {
                message: e.info(),
                span: Some(self.marker_span(e.marker(), e.marker())),
                first: None,
            })?;
            let here = self.span(&span);
            let complete = match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(self.error(
                            "a contract is a single YAML document; remove the second `---` and what follows",
                            here,
                        ));
                    }
                    None
                }
                Event::Scalar(value, style, anchor, tag) => {
                    // `!!str` and the other core tags; `!` alone forces a string; others are refused.
                    let tag = tag.map(|t| match t.core_suffix() {
                        Some(core) => format!("!!{core}"),
                        None if t.handle() == "!" && t.suffix().is_empty() => "!".to_owned(),
                        None => t.to_string(),
                    });
                    let kind = self.scalar(&value, style, tag.as_deref(), here)?;
                    Some((Node { span: here, kind }, anchor))
                }
                Event::Alias(id) => match self.anchors.get(&id).cloned() {
                    Some(mut node) => {
                        self.count(&node, here)?;
                        node.span = here;
                        Some((node, 0))
                    }
                    None => return Err(self.error("this alias names no anchor", here)),
                },
                Event::SequenceStart(_, anchor, _) => {
                    self.open(&stack, here)?;
                    stack.push(Open::Seq {
                        start: here,
                        anchor,
                        items: Vec::new(),
                    });
                    None
                }
                Event::MappingStart(_, anchor, _) => {
                    self.open(&stack, here)?;
                    stack.push(Open::Map {
                        start: here,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        seen: HashMap::new(),
                    });
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                    Some(Open::Seq { start, anchor, items }) => Some((
                        Node {
                            span: self.through(start, here),
                            kind: NodeKind::Seq(items),
                        },
                        anchor,
                    )),
                    Some(Open::Map {
                        start, anchor, entries, ..
                    }) => Some((
                        Node {
                            span: self.through(start, here),
                            kind: NodeKind::Map(entries),
                        },
                        anchor,
                    )),
                    None => None,
                },
                _ => None,
            };
            let Some((node, anchor)) = complete else { continue };
            if anchor != 0 {
                self.anchors.insert(anchor, node.clone());
            }
            match stack.last_mut() {
                None => root = Some(node),
                Some(Open::Seq { items, .. }) => items.push(node),
                Some(Open::Map { entries, key, seen, .. }) => match key.take() {
                    None => {
                        let text = match &node.kind {
                            NodeKind::Str(s) => s.clone(),
                            NodeKind::Null => "null".into(),
                            NodeKind::Bool(b) => b.to_string(),
                            NodeKind::Int(i) => i.to_string(),
                            NodeKind::UInt(u) => u.to_string(),
                            NodeKind::Float(f) => f.to_string(),
                            NodeKind::Seq(_) | NodeKind::Map(_) => {
                                return Err(
                                    self.error("mapping keys must be plain text, not lists or mappings", node.span)
                                );
                            }
                        };
                        if let Some(first) = seen.get(&text) {
                            return Err(YamlError {
                                message: format!("duplicate key `{text}`"),
                                span: Some(node.span),
                                first: Some(*first),
                            });
                        }
                        seen.insert(text.clone(), node.span);
                        *key = Some((text, node.span));
                    }
                    Some((key, key_span)) => entries.push(Entry {
                        key,
                        key_span,
                        value: node,
                    }),
                },
            }
        }
        Ok(root.filter(|r| !matches!(r.kind, NodeKind::Null)))
    }

    fn open(&mut self, stack: &[Open], here: Span) -> Result<(), YamlError> {
        if stack.len() >= MAX_DEPTH {
            return Err(self.error(&format!("the document nests deeper than {MAX_DEPTH} levels"), here));
        }
        self.nodes += 1;
        Ok(())
    }

    /// Counts the nodes an alias expands to against the budget.
    fn count(&mut self, node: &Node, here: Span) -> Result<(), YamlError> {
        fn size(node: &Node) -> usize {
            1 + match &node.kind {
                NodeKind::Seq(items) => items.iter().map(size).sum(),
                NodeKind::Map(entries) => entries.iter().map(|e| 1 + size(&e.value)).sum(),
                _ => 0,
            }
        }
        self.nodes += size(node);
        if self.nodes > MAX_NODES {
            return Err(self.error(
                "the document is too large or expands too far through aliases (over 100,000 nodes)",
                here,
            ));
        }
        Ok(())
    }

    /// Resolves a scalar by the YAML 1.2 core schema.
    fn scalar(
        &mut self,
        value: &str,
        style: ScalarStyle,
        tag: Option<&str>,
        here: Span,
    ) -> Result<NodeKind, YamlError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.error("the document is too large (over 100,000 nodes)", here));
        }
        match tag {
            None | Some("!!int" | "!!float" | "!!bool" | "!!null" | "!") => {}
            Some("!!str") => return Ok(NodeKind::Str(value.to_owned())),
            Some(other) => {
                return Err(self.error(
                    &format!("the YAML tag `{other}` is not supported in contracts; remove it"),
                    here,
                ));
            }
        }
        if style != ScalarStyle::Plain || tag == Some("!") {
            return Ok(NodeKind::Str(value.to_owned()));
        }
        Ok(match value {
            "" | "~" | "null" | "Null" | "NULL" => NodeKind::Null,
            "true" | "True" | "TRUE" => NodeKind::Bool(true),
            "false" | "False" | "FALSE" => NodeKind::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => NodeKind::Float(f64::INFINITY),
            "-.inf" | "-.Inf" | "-.INF" => NodeKind::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => NodeKind::Float(f64::NAN),
            v => parse_number(v).unwrap_or_else(|| NodeKind::Str(v.to_owned())),
        })
    }

    fn error(&self, message: &str, span: Span) -> YamlError {
        YamlError {
            message: message.to_owned(),
            span: Some(span),
            first: None,
        }
    }

    fn span(&self, span: &EventSpan) -> Span {
        self.marker_span(&span.start, &span.end)
    }

    fn marker_span(&self, start: &Marker, end: &Marker) -> Span {
        let start_byte = self.byte(start);
        let end_byte = self.byte(end).max(start_byte);
        let mut span = Span {
            line: start.line().max(1),
            column: start.col() + 1,
            start: start_byte,
            end: end_byte,
        };
        if span.end == span.start {
            // Zero-width (e.g. an error position or an empty scalar): cover one character.
            span.end = self.text[span.start..]
                .char_indices()
                .nth(1)
                .map(|(i, _)| span.start + i)
                .unwrap_or(self.text.len());
        }
        span
    }

    fn byte(&self, marker: &Marker) -> usize {
        if let Some(b) = marker.byte_offset() {
            return b.min(self.text.len());
        }
        let line_start = self
            .lines
            .0
            .get(marker.line().saturating_sub(1))
            .copied()
            .unwrap_or(self.text.len());
        let rest = &self.text[line_start..];
        rest.char_indices()
            .nth(marker.col())
            .map(|(i, _)| line_start + i)
            .unwrap_or(self.text.len())
    }

    /// From the start of one span to the end of another.
    fn through(&self, start: Span, end: Span) -> Span {
        Span {
            end: end.end.max(start.end),
            ..start
        }
    }
}

/// YAML 1.2 core-schema integers and floats.
fn parse_number(v: &str) -> Option<NodeKind> {
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = v.strip_prefix("0x") {
        return digits(hex, 16)
            .then(|| u64::from_str_radix(hex, 16).ok().map(NodeKind::UInt))
            .flatten();
    }
    if let Some(oct) = v.strip_prefix("0o") {
        return digits(oct, 8)
            .then(|| u64::from_str_radix(oct, 8).ok().map(NodeKind::UInt))
            .flatten();
    }
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    if digits(unsigned, 10) {
        return v
            .parse::<i64>()
            .map(NodeKind::Int)
            .ok()
            .or_else(|| v.parse::<u64>().ok().map(NodeKind::UInt));
    }
    let float_like = unsigned.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.')
        && unsigned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && unsigned.chars().any(|c| c.is_ascii_digit());
    if float_like {
        v.parse::<f64>().ok().map(NodeKind::Float)
    } else {
        None
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
            NodeKind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
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
                NodeKind::Map(entries) => entries
                    .iter()
                    .find(|e| e.key == token)
                    .map(|e| (Some(e.key_span), &e.value)),
                NodeKind::Seq(items) => token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|n| (None, n)),
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
}

/// The flow collection (`[` or `{`) opened at or before `limit` (a byte
/// offset) and still open there: a parser that runs into the next key
/// reports that key, while the mistake is the bracket never closed. A
/// bracket counts only where YAML reads it as an indicator: at the start of a
/// value (after `:`, `-`, `?` or the indentation) or inside another flow
/// collection; brackets inside quotes, comments and plain words do not.
pub fn unclosed_flow(text: &str, limit: usize) -> Option<(char, Span)> {
    let mut open: Vec<(char, usize)> = Vec::new();
    let (mut quote, mut comment) = (None::<char>, false);
    // The last character that was not a space, on this line or in the flow.
    let mut before = '\n';
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if at >= limit {
            break;
        }
        if comment {
            if c == '\n' {
                comment = false;
                before = '\n';
            }
            continue;
        }
        if let Some(q) = quote {
            match c {
                '\\' if q == '"' => {
                    chars.next();
                }
                '\'' if q == '\'' && chars.peek().map(|(_, n)| *n) == Some('\'') => {
                    chars.next();
                }
                _ if c == q => {
                    quote = None;
                    before = c;
                }
                _ => {}
            }
            continue;
        }
        let starts_value = matches!(before, '\n' | ':' | '-' | '?' | ',' | '[' | '{');
        match c {
            '#' if before == '\n' || text[..at].ends_with([' ', '\t']) => comment = true,
            '"' | '\'' if starts_value || !open.is_empty() && matches!(before, ',' | '[' | '{' | ':') => {
                quote = Some(c);
            }
            '[' | '{' if starts_value || !open.is_empty() => {
                open.push((c, at));
                before = c;
            }
            ']' | '}' if !open.is_empty() => {
                open.pop();
                before = c;
            }
            '\n' => {
                if open.is_empty() {
                    before = '\n';
                }
            }
            ' ' | '\t' | '\r' => {}
            _ => before = c,
        }
    }
    let (bracket, at) = *open.first()?;
    let line = text[..at].matches('\n').count() + 1;
    let column = text[..at].rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((bracket, Span::at(text, line, column)))
}

#[cfg(test)]
mod flow_tests {
    use super::unclosed_flow;

    #[test]
    fn an_unclosed_bracket_is_found_where_it_opens() {
        let text = "access:\n  transports: [stdio, http   # both\n  scopes:\n    a: b\n";
        let (bracket, span) = unclosed_flow(text, text.len()).expect("found");
        assert_eq!((bracket, span.line, span.column), ('[', 2, 15));
        let text = "a: {b: 1, c: [1, 2]\nd: 2\n";
        let (bracket, span) = unclosed_flow(text, text.len()).expect("found");
        assert_eq!((bracket, span.line, span.column), ('{', 1, 4));
    }

    #[test]
    fn closed_quoted_and_plain_brackets_are_not_unclosed() {
        for text in [
            "a: [1, 2]\nb: {c: [d]}\n",
            "a: \"[not flow\"\nb: '{nor this'\n",
            "a: x[0] and y{1}\n",
            "a: [1, # a comment ]\n  2]\n",
            "# [a comment\na: 1\n",
            "a: \"esc \\\" [\"\n",
            "a: 'it''s ['\n",
        ] {
            assert_eq!(
                unclosed_flow(text, text.len()).map(|(c, s)| (c, s.line)),
                None,
                "{text}"
            );
        }
    }
}
