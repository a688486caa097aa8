//! Places in the OpenAPI document's text, for diagnostics.
//!
//! The document is read into a `serde_json::Value`, which keeps no positions.
//! A diagnostic names its place by JSON pointer; only when one is rendered is
//! the pointer found in the text: in JSON by a small scanner that skips
//! every value it does not descend into (linear, no allocation, a few
//! milliseconds on GitHub's 13 MB description), in YAML through the
//! contract parser's spanned tree (built on demand, within its node budget).
//! Diagnostics are rendered from a window of a few lines around the place,
//! so a finding in a 13 MB file costs what one in a small file does.

use std::cell::OnceCell;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use super::document::{Format, unescape};
use crate::contract::yaml::{self, Node, Span};
use crate::diagnostic::{Diagnostic, Severity};

/// The document's text, and how to find places in it.
pub struct SourceText {
    pub path: String,
    pub text: String,
    pub format: Format,
    yaml: OnceCell<Option<Node>>,
}

impl SourceText {
    pub fn new(path: String, text: String, format: Format) -> SourceText {
        SourceText {
            path,
            text,
            format,
            yaml: OnceCell::new(),
        }
    }

    /// The span of the value (or with `key`, the mapping key) at a JSON pointer.
    pub fn locate(&self, pointer: &str, key: bool) -> Option<Span> {
        match self.format {
            Format::Json => {
                let (start, end) = locate_json(&self.text, pointer, key)?;
                Some(self.span_of(start, end))
            }
            Format::Yaml => {
                let root = self
                    .yaml
                    .get_or_init(|| yaml::parse(&self.text).ok().flatten())
                    .as_ref()?;
                Some(root.locate(pointer, key))
            }
        }
    }

    /// The span of a byte range.
    pub fn span_of(&self, start: usize, end: usize) -> Span {
        let before = &self.text.as_bytes()[..start];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
        let column = self.text[line_start..start].chars().count() + 1;
        Span {
            line,
            column,
            start,
            end,
        }
    }

    /// The span of a 1-based line and column.
    pub fn at(&self, line: usize, column: usize) -> Span {
        Span::at(&self.text, line, column)
    }

    /// Fills in spans from places, then renders like rustc, each with a window of the text.
    pub fn render(&self, diagnostics: &mut [Diagnostic]) -> String {
        for d in diagnostics.iter_mut() {
            if d.span.is_none() && (d.place.key || !d.place.pointer.is_empty()) {
                d.span = self.locate(&d.place.pointer, d.place.key);
                if let (Some(span), Some(needle)) = (d.span, &d.place.needle) {
                    let window_end = floor_char(&self.text, (span.start + 8192).min(self.text.len()));
                    if let Some(i) = self.text[span.start..window_end].find(needle.as_str()) {
                        d.span = Some(self.span_of(span.start + i, span.start + i + needle.len()));
                    }
                }
            }
        }
        let renderer = Renderer::plain();
        let mut out = String::new();
        for d in diagnostics.iter() {
            let level = match d.severity {
                Severity::Error => Level::ERROR,
                Severity::Warning => Level::WARNING,
            };
            let title = level.primary_title(d.message.as_str()).id(d.id);
            let mut groups = Vec::new();
            let window;
            let group = match d.span {
                Some(span) => {
                    window = Window::around(&self.text, span);
                    let mut annotation = AnnotationKind::Primary.span(window.range.clone());
                    if let Some(label) = &d.label {
                        annotation = annotation.label(label.as_str());
                    }
                    title.element(
                        Snippet::source(window.text)
                            .line_start(window.first_line)
                            .path(self.path.as_str())
                            .annotation(annotation),
                    )
                }
                None => title.element(annotate_snippets::Origin::path(self.path.as_str())),
            };
            groups.push(group);
            if let Some(help) = &d.help {
                groups.push(Group::with_title(Level::HELP.secondary_title(help.as_str())));
            }
            out.push_str(&renderer.render(&groups));
            out.push_str("\n\n");
        }
        out
    }
}

/// The line a span starts on, as a small source for the renderer.
struct Window<'t> {
    text: &'t str,
    first_line: usize,
    range: std::ops::Range<usize>,
}

impl<'t> Window<'t> {
    fn around(text: &'t str, span: Span) -> Window<'t> {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = text[start..].find('\n').map(|i| start + i).unwrap_or(text.len());
        // Very long lines (minified JSON) are cut to a window around the place.
        let (from, to) = if line_end - line_start > 400 {
            let from = floor_char(text, start.saturating_sub(80).max(line_start));
            let to = floor_char(text, (start + 240).min(line_end));
            (from, to)
        } else {
            (line_start, line_end)
        };
        let end = span.end.clamp(start, to.max(start));
        Window {
            text: &text[from..to],
            first_line: span.line,
            range: (start - from)..(end - from).max(start - from),
        }
    }
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The byte range of the value (or key) at a JSON pointer in JSON text, or of the
/// deepest value on the way when the pointer leads past what exists.
pub fn locate_json(text: &str, pointer: &str, key: bool) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut at = skip_ws(b, 0);
    let mut key_range = None;
    for token in pointer.split('/').skip(1) {
        let token = unescape(token);
        let found = match b.get(at)? {
            b'{' => find_member(b, at, &token),
            b'[' => token
                .parse::<usize>()
                .ok()
                .and_then(|i| find_item(b, at, i).map(|v| (None, v))),
            _ => None,
        };
        match found {
            Some((k, value)) => {
                key_range = k;
                at = value;
            }
            None => break,
        }
    }
    if key && let Some(range) = key_range {
        return Some(range);
    }
    let end = skip_value(b, at)?;
    // The underline covers the value's first line only.
    let end = b[at..end]
        .iter()
        .position(|c| *c == b'\n')
        .map(|i| at + i)
        .unwrap_or(end);
    Some((at, end.max(at + 1).min(b.len())))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// The end of the string starting at `i` (just past its closing quote).
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                j += 1;
            }
            Some(j)
        }
    }
}

/// In the object at `i`: the key's range and the start of the value of member `name`.
fn find_member(b: &[u8], i: usize, name: &str) -> Option<(Option<(usize, usize)>, usize)> {
    let mut j = skip_ws(b, i + 1);
    while j < b.len() && b[j] == b'"' {
        let key_end = skip_string(b, j)?;
        let raw = std::str::from_utf8(&b[j..key_end]).ok()?;
        let matches = if raw.contains('\\') {
            serde_json::from_str::<String>(raw).ok().as_deref() == Some(name)
        } else {
            &raw[1..raw.len() - 1] == name
        };
        let colon = skip_ws(b, key_end);
        let value = skip_ws(b, colon + 1);
        if matches {
            return Some((Some((j, key_end)), value));
        }
        let after = skip_ws(b, skip_value(b, value)?);
        if b.get(after) != Some(&b',') {
            return None;
        }
        j = skip_ws(b, after + 1);
    }
    None
}

/// In the array at `i`: the start of item `index`.
fn find_item(b: &[u8], i: usize, index: usize) -> Option<usize> {
    let mut j = skip_ws(b, i + 1);
    for _ in 0..index {
        let after = skip_ws(b, skip_value(b, j)?);
        if b.get(after) != Some(&b',') {
            return None;
        }
        j = skip_ws(b, after + 1);
    }
    (b.get(j) != Some(&b']')).then_some(j)
}

#[cfg(test)]
mod tests {
    use super::locate_json;

    #[test]
    fn finds_values_and_keys_by_pointer() {
        let text = "{\n  \"paths\": {\n    \"/a/{b}\": { \"get\": {\"x\": [1, {\"y\": \"z\\\"\"}]} }\n  }\n}";
        let (s, e) = locate_json(text, "/paths/~1a~1{b}/get/x/1/y", false).unwrap();
        assert_eq!(&text[s..e], "\"z\\\"\"");
        let (s, e) = locate_json(text, "/paths/~1a~1{b}/get", true).unwrap();
        assert_eq!(&text[s..e], "\"get\"");
        // Past what exists: the deepest value found.
        let (s, _) = locate_json(text, "/paths/~1a~1{b}/post", false).unwrap();
        assert_eq!(&text[s..s + 1], "{");
    }
}
