//! JSON values as contract YAML, the way a person writes it: block mappings,
//! short leaf collections in flow style (`{ type: string, maxLength: 39 }`,
//! `required: [owner, repo]`), long text folded (`>-`), and quotes only where
//! a plain scalar would be read back differently. Deterministic: key order as
//! given, one spelling per value.

use serde_json::{Map, Value};

/// Lines are kept within this width where the structure allows.
const WIDTH: usize = 100;

/// `key: value` lines for each entry of a mapping, at `indent` spaces.
pub fn entries(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (key, value) in map {
        entry(out, key, value, indent);
    }
}

/// One `key: value` entry at `indent` spaces, with its block below when it has one.
pub fn entry(out: &mut String, key: &str, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    let key = scalar_str(key, false);
    let room = WIDTH.saturating_sub(indent + key.len() + 2);
    match value {
        Value::String(s) => {
            let plain = scalar_str(s, false);
            if plain.chars().count() <= room || !foldable(s) {
                out.push_str(&format!("{pad}{key}: {plain}\n"));
            } else {
                out.push_str(&format!("{pad}{key}: >-\n"));
                fold(out, s, indent + 2);
            }
        }
        Value::Object(m) if !m.is_empty() => match flow(value).filter(|f| f.chars().count() <= room && leafy(value)) {
            Some(f) => out.push_str(&format!("{pad}{key}: {f}\n")),
            None => {
                out.push_str(&format!("{pad}{key}:\n"));
                entries(out, m, indent + 2);
            }
        },
        Value::Array(items) if !items.is_empty() => match flow(value).filter(|f| f.chars().count() <= room) {
            Some(f) if leafy(value) => out.push_str(&format!("{pad}{key}: {f}\n")),
            _ => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in items {
                    list_item(out, item, indent + 2);
                }
            }
        },
        other => out.push_str(&format!("{pad}{key}: {}\n", flow(other).unwrap_or_default())),
    }
}

/// `- item` at `indent` spaces; a mapping item continues at `indent + 2`.
fn list_item(out: &mut String, item: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match item {
        Value::Object(m) if !m.is_empty() => {
            let mut block = String::new();
            entries(&mut block, m, indent + 2);
            // The first entry's indentation becomes the dash.
            out.push_str(&pad);
            out.push_str("- ");
            out.push_str(&block[indent + 2..]);
        }
        other => out.push_str(&format!("{pad}- {}\n", flow(other).unwrap_or_default())),
    }
}

/// A collection whose members are scalars or small collections of scalars: fit for one line.
fn leafy(value: &Value) -> bool {
    fn depth(v: &Value) -> usize {
        match v {
            Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    depth(value) <= 2
        && match value {
            Value::Object(m) => m.values().filter(|v| v.is_object() || v.is_array()).count() <= 1,
            _ => true,
        }
}

/// The value in flow style (always possible: JSON is flow YAML).
pub fn flow(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_str(s, true),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(|i| flow(i).unwrap_or_default()).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar_str(k, true), flow(v).unwrap_or_default()))
                .collect();
            format!("{{ {} }}", inner.join(", "))
        }
    })
}

/// A string as a YAML scalar: plain when it reads back as the same string, double-quoted otherwise.
pub fn scalar_str(s: &str, in_flow: bool) -> String {
    if plain_ok(s, in_flow) {
        s.to_owned()
    } else {
        double_quoted(s)
    }
}

/// Whether YAML reads `c` as it is anywhere, comments included: its printable set (YAML 1.2,
/// production 1) without the line breaks, which end a comment or fold a scalar, without the BOM,
/// and without tab, which this writer always escapes.
pub fn yaml_plain_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{2027}' | '\u{202a}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}' | '\u{ff00}'..='\u{fffd}' | '\u{10000}'..)
}

/// A YAML double-quoted scalar. JSON's escaping is YAML's, except that JSON leaves DEL, the C1
/// controls and U+FFFE/U+FFFF as they are, which YAML refuses to read even quoted (found by
/// fuzzing the importer): each of those is written as a `\u` escape with four hex digits.
fn double_quoted(s: &str) -> String {
    let json = serde_json::to_string(s).expect("strings serialize");
    json.chars().fold(String::with_capacity(json.len()), |mut out, c| {
        if yaml_plain_char(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{:04x}", c as u32));
        }
        out
    })
}

fn plain_ok(s: &str, in_flow: bool) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if s.trim() != s
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || (in_flow && s.contains([',', '[', ']', '{', '}']))
        || !s.chars().all(yaml_plain_char)
    {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "null" | "~" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | ".inf" | ".nan"
    ) {
        return false;
    }
    // Anything that starts like a number (or a date) is quoted, whatever the reader's YAML version.
    let mut chars = s.chars();
    let c0 = chars.next().unwrap_or(' ');
    let c1 = chars.next().unwrap_or(' ');
    !(c0.is_ascii_digit() || (matches!(c0, '+' | '.') && (c1.is_ascii_digit() || c1 == '.')))
}

/// Text that can be written as a folded block scalar and read back unchanged.
fn foldable(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && !s.contains("  ") && s.chars().all(yaml_plain_char)
}

/// Folded lines of at most `WIDTH` characters (a longer word stands alone), at `indent` spaces.
fn fold(out: &mut String, s: &str, indent: usize) {
    let pad = " ".repeat(indent);
    let mut line = String::new();
    for word in s.split(' ') {
        if !line.is_empty() && indent + line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&format!("{pad}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&format!("{pad}{line}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_are_quoted_only_when_needed() {
        assert_eq!(scalar_str("owner", false), "owner");
        assert_eq!(scalar_str("#/$defs/Release", false), "\"#/$defs/Release\"");
        assert_eq!(scalar_str("2022-11-28", false), "\"2022-11-28\"");
        assert_eq!(scalar_str("+1", false), "\"+1\"");
        assert_eq!(scalar_str("yes", false), "\"yes\"");
        assert_eq!(scalar_str("a, b", true), "\"a, b\"");
        assert_eq!(scalar_str("a, b", false), "a, b");
        assert_eq!(scalar_str("key: value", false), "\"key: value\"");
        assert_eq!(scalar_str("", false), "\"\"");
    }

    #[test]
    fn renders_block_and_flow_and_reads_back() {
        let value = json!({
            "type": "object",
            "required": ["owner", "repo"],
            "properties": {
                "owner": {"type": "string", "description": "The account owner of the repository. The name is not case sensitive."},
                "labels": {"type": "array", "items": {"type": "string"}},
                "long": {"type": "string", "description": "word ".repeat(40).trim()},
            },
            "allOf": [{"required": ["a"]}, {"properties": {"b": {"type": ["string", "null"]}}}],
        });
        let mut out = String::new();
        entry(&mut out, "input", &value, 4);
        let back: Value = serde_saphyr::from_str(&out).unwrap();
        assert_eq!(back["input"], value, "{out}");
        assert!(out.contains("required: [owner, repo]"), "{out}");
        assert!(out.contains(">-"), "{out}");
    }
}
