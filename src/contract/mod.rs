//! Stage 1, PARSE: contract text to raw types.
//!
//! YAML is read into a spanned tree, checked against the contract language's
//! JSON Schema (every structural error at once), then decoded into the raw
//! types. Nothing here interprets the contract: see `crate::model`.

pub mod raw;
pub mod structure;
pub mod yaml;

use crate::diagnostic::{Diagnostic, Place, Source};

/// Parses a contract. On success the source keeps its spanned tree, which
/// later stages use to locate their own diagnostics.
pub fn parse(source: &mut Source) -> Result<raw::Contract, Vec<Diagnostic>> {
    if source.text.trim().is_empty() {
        return Err(vec![
            Diagnostic::error("empty-contract", "the contract is empty", Place::default())
                .with_span(yaml::Span::at(&source.text, 1, 1))
                .with_help("run `charter init` for a commented starter contract"),
        ]);
    }
    let Some(root) = yaml::parse(&source.text).map_err(|e| vec![yaml_diagnostic(e, &source.text)])? else {
        return Err(vec![
            Diagnostic::error("empty-contract", "the contract has no content", Place::default())
                .with_span(yaml::Span::at(&source.text, 1, 1))
                .with_help("run `charter init` for a commented starter contract"),
        ]);
    };
    let document = root.to_json();
    source.root = Some(root);
    if !document.is_object() {
        return Err(vec![
            Diagnostic::error("wrong-type", "a contract must be a YAML mapping", Place::default())
                .with_help("start from `charter init`; the first line is `charter: 1`"),
        ]);
    }
    if let Some(version) = document.get("charter").filter(|v| v.is_u64() || v.is_i64())
        && version != 1
    {
        return Err(vec![
            Diagnostic::error(
                "unsupported-version",
                format!("contract language version {version} is not supported"),
                Place::value("/charter"),
            )
            .with_label("this charter reads version 1")
            .with_help("write `charter: 1`, or upgrade charter"),
        ]);
    }
    let structural = structure::check(&document);
    if !structural.is_empty() {
        return Err(structural);
    }
    // The schema accepted the document, so decoding fails only where the schema
    // is looser than the types; report that place too rather than panic.
    serde_path_to_error::deserialize(&document).map_err(|e| {
        let pointer = e.path().iter().fold(String::new(), |mut p, seg| {
            p.push('/');
            p.push_str(&structure::escape(&seg.to_string()));
            p
        });
        vec![Diagnostic::error(
            "invalid-value",
            e.inner().to_string(),
            Place::value(pointer),
        )]
    })
}

fn yaml_diagnostic(e: yaml::YamlError, text: &str) -> Diagnostic {
    let id = if e.first.is_some() {
        "duplicate-key"
    } else {
        "yaml-syntax"
    };
    let span = e.span.unwrap_or_else(|| yaml::Span::at(text, 1, 1));
    // The parser stumbles where the next key begins; the mistake is the bracket never closed.
    if e.first.is_none()
        && let Some((bracket, opened)) = yaml::unclosed_flow(text, text.len())
        && opened.start < span.start
    {
        let closer = if bracket == '[' { ']' } else { '}' };
        let mut d = Diagnostic::error("yaml-syntax", format!("unclosed `{bracket}`"), Place::default())
            .with_label(format!("this `{bracket}` is never closed"))
            .with_help(format!(
                "close it with `{closer}` where the list or map ends; the parser stopped at line {}, column {} ({})",
                span.line, span.column, e.message
            ));
        d.span = Some(opened);
        return d;
    }
    // A tab is reported after it: point at the tab itself.
    if e.first.is_none() && e.message.contains("tab") {
        let line_start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        let before = &text[line_start..span.start.min(text.len())];
        let tab_at = before.rfind('\t').or_else(|| {
            text[span.start.min(text.len())..]
                .starts_with('\t')
                .then_some(before.len())
        });
        if let Some(offset) = tab_at {
            let column = text[line_start..line_start + offset].chars().count() + 1;
            let mut d = Diagnostic::error("yaml-syntax", "a tab where YAML allows only spaces", Place::default())
                .with_label("this tab")
                .with_help(format!("indent with spaces; the parser said: {}", e.message));
            d.span = Some(yaml::Span::at(text, span.line, column));
            return d;
        }
    }
    let mut d = Diagnostic::error(id, e.message, Place::default());
    d.span = Some(span);
    if let Some(first) = e.first {
        d.related.push((first, "first defined here".into()));
        d = d
            .with_label("defined again here")
            .with_help("remove one of the two entries; YAML keys must be unique");
    } else {
        d = d.with_help("fix the YAML syntax here; the rest of the contract is checked once it parses");
    }
    d
}
