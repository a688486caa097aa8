//! `--into CONTRACT`: the import added to an existing contract's text.
//!
//! The contract is not re-serialized: its comments, key order, quoting and
//! layout stay as the team wrote them. The contract parser's spanned tree
//! tells where each mapping's last entry ends and how deep its keys are
//! indented; new entries are inserted there as text, at that indentation.
//! A mapping the contract does not have yet is added at the end of its parent.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::render;
use crate::contract::yaml::{self, Entry, Node, NodeKind};
use crate::model::names::Name;

/// What the import adds.
pub struct Plan<'a> {
    pub downstream: &'a str,
    /// The downstream's entry, rendered at two spaces.
    pub downstream_block: &'a str,
    pub scopes: &'a Map<String, Value>,
    pub data_class: &'a str,
    pub defs: &'a BTreeMap<String, Value>,
    /// The tools, rendered at `Existing::tools_indent`.
    pub tools_text: &'a str,
}

/// The contract being added to.
pub struct Existing<'t> {
    shown: String,
    text: &'t str,
    root: Node,
}

/// One edit of the text: `text` replaces `start..end` (empty for an insertion).
struct Edit {
    start: usize,
    end: usize,
    text: String,
    /// At the same place, continuations of existing mappings come before new top-level keys.
    new_key: bool,
    seq: usize,
}

impl<'t> Existing<'t> {
    pub fn read(path: &Path, text: &'t str) -> Result<Existing<'t>, String> {
        let shown = path.display().to_string();
        let root = match yaml::parse(text) {
            Ok(Some(root)) if matches!(root.kind, NodeKind::Map(_)) => root,
            Ok(_) => {
                return Err(format!(
                    "error: {shown} is not a contract (a YAML mapping)\n  help: start one with `charter import openapi` without --into, or `charter init`"
                ));
            }
            Err(e) => {
                let at = e.span.map(|s| format!(":{}:{}", s.line, s.column)).unwrap_or_default();
                return Err(format!(
                    "error: {shown}{at}: {}\n  help: `charter check {shown}` shows the problem; fix it before importing into the contract",
                    e.message
                ));
            }
        };
        Ok(Existing { shown, text, root })
    }

    fn entry(&self, path: &[&str]) -> Option<&Entry> {
        let mut node = &self.root;
        let mut found = None;
        for key in path {
            let NodeKind::Map(entries) = &node.kind else {
                return None;
            };
            let e = entries.iter().find(|e| e.key == *key)?;
            node = &e.value;
            found = Some(e);
        }
        found
    }

    /// An existing tool the name would clash with (the same name, or the same Rust name).
    pub fn tool_clash(&self, name: &str) -> Option<String> {
        let Some(Entry {
            value: Node {
                kind: NodeKind::Map(tools),
                ..
            },
            ..
        }) = self.entry(&["tools"])
        else {
            return None;
        };
        let snake = Name::new(name).snake;
        tools
            .iter()
            .find(|t| t.key == name || Name::new(&t.key).snake == snake)
            .map(|t| t.key.clone())
    }

    /// How deep the contract indents its tools (two spaces when it has none).
    pub fn tools_indent(&self) -> usize {
        self.entries_indent(&["tools"]).unwrap_or(2)
    }

    fn entries_indent(&self, path: &[&str]) -> Option<usize> {
        match &self.entry(path)?.value.kind {
            NodeKind::Map(entries) if !self.is_flow(&self.entry(path)?.value) => {
                entries.first().map(|e| e.key_span.column - 1)
            }
            _ => None,
        }
    }

    fn is_flow(&self, node: &Node) -> bool {
        matches!(self.text.as_bytes().get(node.span.start), Some(b'{' | b'['))
    }

    /// Adds the plan; the new text and what was added besides the tools.
    pub fn insert(&self, plan: &Plan) -> Result<(String, Vec<String>), String> {
        let mut edits = Vec::new();
        let mut added = Vec::new();

        // The downstream, unless the contract already declares one of that name.
        if self.entry(&["downstreams", plan.downstream]).is_none() {
            edits.push(self.add(&["downstreams"], &|indent| reindent(plan.downstream_block, 2, indent))?);
            added.push(format!("downstream `{}`", plan.downstream));
        }
        // The import's scopes and data class, where missing.
        for (scope, meaning) in plan.scopes {
            if self.entry(&["access", "scopes", scope]).is_none() {
                edits.push(self.add(&["access", "scopes"], &|indent| {
                    let mut s = String::new();
                    render::entry(&mut s, scope, meaning, indent);
                    s
                })?);
                added.push(format!("scope `{scope}`"));
            }
        }
        if self.entry(&["data_classes", plan.data_class]).is_none() {
            edits.push(self.add(&["data_classes"], &|indent| {
                let mut s = String::new();
                render::entry(
                    &mut s,
                    plan.data_class,
                    &json!({
                        "description": "What the imported operations send and return.",
                        "sensitivity": "internal",
                        "logs": "full",
                    }),
                    indent,
                );
                s
            })?);
            added.push(format!("data class `{}`", plan.data_class));
        }
        // Definitions: an identical one is shared, a different one of the same name refused.
        let mut new_defs = Map::new();
        for (name, def) in plan.defs {
            match self.entry(&["$defs", name]) {
                Some(e) if &e.value.to_json() == def => {}
                Some(e) => {
                    return Err(format!(
                        "error: {}:{}:{}: the contract already defines `$defs.{name}`, differently from what the import needs\n  help: charter never replaces a definition: rename or remove the existing one, or leave out the operations that use it",
                        self.shown, e.key_span.line, e.key_span.column
                    ));
                }
                None => {
                    new_defs.insert(name.clone(), def.clone());
                }
            }
        }
        if !new_defs.is_empty() {
            added.push(format!("{} definition(s) under `$defs`", new_defs.len()));
            edits.push(self.add(&["$defs"], &|indent| {
                let mut s = String::new();
                for (name, def) in &new_defs {
                    render::entry(&mut s, name, def, indent);
                }
                s
            })?);
        }
        let tools_indent = self.tools_indent();
        edits.push(self.add(&["tools"], &|indent| reindent(plan.tools_text, tools_indent, indent))?);

        let mut text = self.text.to_owned();
        for (seq, e) in edits.iter_mut().enumerate() {
            e.seq = seq;
        }
        // Applied from the end backwards, so earlier offsets stay valid; at one offset the edit
        // that must come last in the text is applied first.
        edits.sort_by_key(|e| std::cmp::Reverse((e.start, e.new_key, e.seq)));
        for e in &edits {
            text.replace_range(e.start..e.end, &e.text);
        }
        match yaml::parse(&text) {
            Ok(Some(_)) => Ok((text, added)),
            _ => Err(format!(
                "error: adding the import to {} did not give valid YAML; nothing was written\n  help: this is a bug in charter: please report it with the contract",
                self.shown
            )),
        }
    }

    /// An edit adding entries (rendered by `content` at an indentation) to the mapping at `path`,
    /// creating the mapping (and its parents) at the end of its parent when missing.
    fn add(&self, path: &[&str], content: &dyn Fn(usize) -> String) -> Result<Edit, String> {
        let name = path.join(".");
        match self.entry(path) {
            Some(e) => {
                let key_indent = e.key_span.column - 1;
                match &e.value.kind {
                    NodeKind::Map(entries) if !entries.is_empty() && !self.is_flow(&e.value) => {
                        let indent = entries[0].key_span.column - 1;
                        let at = self.line_end(self.content_end(&e.value));
                        Ok(self.insertion(at, content(indent)))
                    }
                    NodeKind::Map(entries) if entries.is_empty() => {
                        // `key: {}`: the braces give way to a block.
                        let body = content(key_indent + 2);
                        Ok(Edit {
                            start: e.key_span.end,
                            end: e.value.span.end,
                            text: format!(":\n{}", body.trim_end_matches('\n')),
                            new_key: false,
                            seq: 0,
                        })
                    }
                    NodeKind::Null => {
                        let written = self.text.get(e.value.span.start..e.value.span.end).unwrap_or("");
                        if matches!(written.trim(), "~" | "null" | "Null" | "NULL") {
                            let body = content(key_indent + 2);
                            Ok(Edit {
                                start: e.key_span.end,
                                end: e.value.span.end,
                                text: format!(":\n{}", body.trim_end_matches('\n')),
                                new_key: false,
                                seq: 0,
                            })
                        } else {
                            Ok(self.insertion(self.line_end(e.key_span.end), content(key_indent + 2)))
                        }
                    }
                    NodeKind::Map(_) => Err(format!(
                        "error: {}:{}:{}: `{name}` is written in flow style (`{{ ... }}`); write it as a block mapping to import into it",
                        self.shown, e.key_span.line, e.key_span.column
                    )),
                    _ => Err(format!(
                        "error: {}:{}:{}: `{name}` is not a mapping",
                        self.shown, e.key_span.line, e.key_span.column
                    )),
                }
            }
            None => {
                let (last, parents) = path.split_last().expect("a path");
                if parents.is_empty() {
                    let key = render::scalar_str(last, false);
                    let mut edit = self.insertion(self.text.len(), format!("\n{key}:\n{}", content(2)));
                    edit.new_key = true;
                    Ok(edit)
                } else {
                    let last = (*last).to_owned();
                    self.add(parents, &move |indent| {
                        format!(
                            "{}{}:\n{}",
                            " ".repeat(indent),
                            render::scalar_str(&last, false),
                            content(indent + 2)
                        )
                    })
                }
            }
        }
    }

    /// An insertion at `at`, on a line of its own even at the end of a text without a final newline.
    fn insertion(&self, at: usize, mut text: String) -> Edit {
        if at == self.text.len() && !self.text.is_empty() && !self.text.ends_with('\n') {
            text.insert(0, '\n');
        }
        Edit {
            start: at,
            end: at,
            text,
            new_key: false,
            seq: 0,
        }
    }

    /// Where a node's written content ends (its last scalar, or its closing bracket).
    fn content_end(&self, node: &Node) -> usize {
        if self.is_flow(node) {
            return node.span.end;
        }
        match &node.kind {
            NodeKind::Map(entries) => match entries.last() {
                Some(e) if matches!(e.value.kind, NodeKind::Null) && e.value.span.start <= e.key_span.end + 2 => {
                    e.key_span.end.max(self.content_end(&e.value).min(e.key_span.end))
                }
                Some(e) => self.content_end(&e.value).max(e.key_span.end),
                None => node.span.end,
            },
            NodeKind::Seq(items) => items.last().map(|i| self.content_end(i)).unwrap_or(node.span.end),
            _ => node.span.end,
        }
    }

    /// Just past the end of the line holding the content that ends at `end`.
    fn line_end(&self, end: usize) -> usize {
        let bytes = self.text.as_bytes();
        let mut p = end.min(bytes.len());
        while p > 0 && matches!(bytes[p - 1], b' ' | b'\t' | b'\n' | b'\r') {
            p -= 1;
        }
        match self.text[p..].find('\n') {
            Some(i) => p + i + 1,
            None => bytes.len(),
        }
    }
}

/// Text rendered at `from` spaces moved to `to` spaces.
fn reindent(text: &str, from: usize, to: usize) -> String {
    if from == to {
        return text.to_owned();
    }
    text.lines()
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else if to > from {
                format!("{}{line}", " ".repeat(to - from))
            } else {
                let strip = line.len() - line.trim_start_matches(' ').len();
                line[strip.min(from - to)..].to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect()
}
