//! The outputs of `charter diff`: text (rustc-style, like `charter check`),
//! Markdown (a pull-request comment), JSON and GitHub workflow annotations.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde_json::{Value, json};

use super::git::split_revision;
use super::{Class, Finding, Report, Side};
use crate::contract::yaml::Span;
use crate::diagnostic::clamp;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
    Github,
}

/// The report in `format`; `color` applies to text only.
pub fn render(format: Format, report: &Report, old: &Side, new: &Side, color: bool) -> String {
    match format {
        Format::Text => text(report, old, new, color),
        Format::Markdown => markdown(report, old, new),
        Format::Json => json(report, old, new),
        Format::Github => github(report, old, new),
    }
}

const CLASSES: [Class; 3] = [Class::Breaking, Class::Review, Class::Compatible];

fn heading(class: Class) -> &'static str {
    match class {
        Class::Breaking => "Breaking for clients",
        Class::Review => "Needs re-review",
        Class::Compatible => "Compatible",
    }
}

/// A value on one line: strings as JSON strings, everything else as compact JSON, cut at `max` characters.
pub fn show_value(value: &Value, max: usize) -> String {
    let text = value.to_string();
    truncate(&text, max)
}

/// Old and new values for display, each cut to `max` characters. Two long
/// strings are cut down to where they differ, with a little context, so a
/// one-word change in a long description shows the word. With `quote`,
/// strings are shown as JSON strings (newlines visible as `\n`).
pub fn show_pair(
    old: Option<&Value>,
    new: Option<&Value>,
    max: usize,
    quote: bool,
) -> (Option<String>, Option<String>) {
    let string = |s: &str| if quote { json!(s).to_string() } else { s.to_owned() };
    if let (Some(Value::String(a)), Some(Value::String(b))) = (old, new)
        && (string(a).chars().count() > max || string(b).chars().count() > max)
    {
        let (x, y) = excerpts(a, b, 24);
        return (Some(truncate(&string(&x), max)), Some(truncate(&string(&y), max)));
    }
    let one = |v: &Value| match v {
        Value::String(s) => truncate(&string(s), max),
        other => show_value(other, max),
    };
    (old.map(one), new.map(one))
}

/// The differing middle of two strings, with `context` characters either side.
fn excerpts(a: &str, b: &str, context: usize) -> (String, String) {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    let cut = |s: &[char]| {
        let start = prefix.saturating_sub(context);
        let end = (s.len() - suffix + context).min(s.len());
        let mut out = String::new();
        if start > 0 {
            out.push('…');
        }
        out.extend(&s[start..end]);
        if end < s.len() {
            out.push('…');
        }
        out
    };
    (cut(&a), cut(&b))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

fn counts(report: &Report) -> String {
    format!(
        "{} breaking, {} need re-review, {} compatible",
        report.count(Class::Breaking),
        report.count(Class::Review),
        report.count(Class::Compatible)
    )
}

fn version_line(report: &Report) -> String {
    let v = &report.version;
    let declared = if v.old == v.new {
        format!("version unchanged ({})", v.new)
    } else {
        format!("{} -> {} ({} bump)", v.old, v.new, v.declared.as_str())
    };
    let required = match v.required {
        super::Bump::None => "no bump needed".to_owned(),
        r => format!("needs a {} bump", r.as_str()),
    };
    let verdict = if v.ok { "ok" } else { "too small" };
    format!("{required}; {declared}: {verdict}")
}

/// rustc-style text: each finding with its place and snippet, old and new values, then a summary.
pub fn text(report: &Report, old: &Side, new: &Side, color: bool) -> String {
    let renderer = if color { Renderer::styled() } else { Renderer::plain() };
    let mut out = String::new();
    let mut render = |level: Level<'static>,
                      id: &'static str,
                      message: String,
                      side: &Side,
                      span: Option<Span>,
                      notes: Vec<String>| {
        let title = level.primary_title(message).id(id);
        let group = match (side, span) {
            (Side::Contract { source, .. }, Some(span)) => {
                let text = source.text.as_str();
                let snippet = Snippet::source(text)
                    .line_start(1)
                    .path(source.path.as_str())
                    .annotation(AnnotationKind::Primary.span(clamp(span, text)));
                title.element(snippet)
            }
            _ => title.element(annotate_snippets::Origin::path(side.path())),
        };
        let mut groups = vec![group];
        for note in notes {
            groups.push(Group::with_title(Level::NOTE.secondary_title(note)));
        }
        out.push_str(&renderer.render(&groups));
        out.push_str("\n\n");
    };
    if let (false, Some(problem)) = (report.version.ok, &report.version.problem) {
        render(
            Level::ERROR,
            "version-bump-too-small",
            problem.clone(),
            new,
            report.version.span,
            vec![format!(
                "declared {}, required {}",
                report.version.declared.as_str(),
                report.version.required.as_str()
            )],
        );
    }
    for f in &report.findings {
        let level = match f.class {
            Class::Breaking => Level::ERROR,
            Class::Review => Level::WARNING,
            Class::Compatible => Level::NOTE,
        };
        let (in_old, span) = f.primary_span();
        let side = if in_old { old } else { new };
        let mut notes = vec![format!("{} at `{}`", f.class.as_str(), f.pointer)];
        let (a, b) = show_pair(f.old.as_ref(), f.new.as_ref(), 240, true);
        notes.extend(a.map(|v| format!("old: {v}")));
        notes.extend(b.map(|v| format!("new: {v}")));
        render(level, f.rule.as_str(), f.message.clone(), side, span, notes);
    }
    out.push_str(&format!(
        "{} -> {}: {}; {}\n",
        report.old_path,
        report.new_path,
        counts(report),
        version_line(report)
    ));
    out
}

/// A Markdown table cell: one line, pipes escaped, cut to `max` characters.
fn cell(text: &str, max: usize) -> String {
    let one_line = text.replace("\r\n", "\n").replace('\n', " ⏎ ");
    truncate(&one_line, max).replace('|', "\\|")
}

/// A code span in a table cell, or plain text when the value holds a backtick.
fn code_cell(text: &str, max: usize) -> String {
    let c = cell(text, max);
    if c.contains('`') { c } else { format!("`{c}`") }
}

fn value_cells(old: Option<&Value>, new: Option<&Value>) -> (String, String) {
    let (a, b) = show_pair(old, new, 80, false);
    let cell = |shown: Option<String>| shown.map(|s| code_cell(&s, 80)).unwrap_or_default();
    (cell(a), cell(b))
}

/// Markdown for a pull-request comment: a summary, then one table per class.
pub fn markdown(report: &Report, old: &Side, new: &Side) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "### charter diff: {} → {}\n\n",
        code_cell(&report.old_path, 200),
        code_cell(&report.new_path, 200)
    ));
    let counts = CLASSES
        .iter()
        .map(|c| {
            let n = report.count(*c);
            let label = match c {
                Class::Breaking => "breaking",
                Class::Review => "need re-review",
                Class::Compatible => "compatible",
            };
            if n > 0 && *c != Class::Compatible {
                format!("**{n} {label}**")
            } else {
                format!("{n} {label}")
            }
        })
        .collect::<Vec<_>>()
        .join(" · ");
    out.push_str(&format!("{counts}\n\n"));
    let v = &report.version;
    let required = match v.required {
        super::Bump::None => "no version bump".to_owned(),
        r => format!("a **{}** version bump", r.as_str()),
    };
    let declared = if v.old == v.new {
        format!("the version stays `{}`", v.new)
    } else {
        format!("`{}` → `{}` is a {} bump", v.old, v.new, v.declared.as_str())
    };
    let verdict = if v.ok {
        "OK".to_owned()
    } else {
        format!("**too small**: {}", v.problem.as_deref().unwrap_or_default())
    };
    out.push_str(&format!("The changes need {required}; {declared}. {verdict}\n"));
    if old.kind() == "lock" || new.kind() == "lock" {
        out.push_str("\nOne side is a tool-surface lock: only what clients see was compared.\n");
    }
    for class in CLASSES {
        let findings: Vec<&Finding> = report.findings.iter().filter(|f| f.class == class).collect();
        if findings.is_empty() {
            continue;
        }
        out.push_str(&format!("\n#### {} ({})\n\n", heading(class), findings.len()));
        out.push_str("| rule | what | path | old | new |\n| --- | --- | --- | --- | --- |\n");
        for f in findings {
            let (in_old, span) = f.primary_span();
            let place = match span {
                Some(s) => format!(" ({}line {})", if in_old { "old, " } else { "" }, s.line),
                None => String::new(),
            };
            let (a, b) = value_cells(f.old.as_ref(), f.new.as_ref());
            out.push_str(&format!(
                "| `{}` | {} | {}{} | {a} | {b} |\n",
                f.rule,
                cell(&f.message, 200),
                code_cell(&f.pointer, 120),
                place,
            ));
        }
    }
    if report.findings.is_empty() {
        out.push_str("\nNo changes.\n");
    }
    out
}

/// Machine-readable: every finding with its rule, class, pointer, place and values.
pub fn json(report: &Report, old: &Side, new: &Side) -> String {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let (in_old, span) = f.primary_span();
            let file = if in_old { old.path() } else { new.path() };
            json!({
                "rule": f.rule,
                "class": f.class,
                "message": f.message,
                "pointer": f.pointer,
                "file": file,
                "line": span.map(|s| s.line),
                "column": span.map(|s| s.column),
                "old": f.old,
                "new": f.new,
            })
        })
        .collect();
    let value = json!({
        "old": {"path": report.old_path, "kind": report.old_kind},
        "new": {"path": report.new_path, "kind": report.new_kind},
        "summary": {
            "breaking": report.count(Class::Breaking),
            "review": report.count(Class::Review),
            "compatible": report.count(Class::Compatible),
        },
        "version": report.version,
        "findings": findings,
    });
    serde_json::to_string_pretty(&value).expect("reports serialize") + "\n"
}

/// GitHub Actions workflow commands: breaking changes and a too-small bump as
/// errors, re-review as warnings, compatible changes as notices. Each is placed
/// in the new contract where possible, where the pull request shows it.
pub fn github(report: &Report, old: &Side, new: &Side) -> String {
    let file_of = |side: &Side| {
        let path = side.path();
        split_revision(path)
            .map(|(_, p)| p.to_owned())
            .unwrap_or_else(|| path.to_owned())
    };
    let mut out = String::new();
    let mut line = |level: &str, file: Option<String>, span: Option<Span>, title: String, message: String| {
        let mut props = Vec::new();
        if let Some(file) = file {
            props.push(format!("file={}", escape_property(&file)));
        }
        if let Some(s) = span {
            props.push(format!("line={}", s.line));
            props.push(format!("col={}", s.column));
        }
        props.push(format!("title={}", escape_property(&title)));
        out.push_str(&format!("::{level} {}::{}\n", props.join(","), escape_data(&message)));
    };
    if let (false, Some(problem)) = (report.version.ok, &report.version.problem) {
        line(
            "error",
            Some(file_of(new)),
            report.version.span,
            "charter diff: version-bump-too-small".into(),
            problem.clone(),
        );
    }
    for f in &report.findings {
        let level = match f.class {
            Class::Breaking => "error",
            Class::Review => "warning",
            Class::Compatible => "notice",
        };
        let (file, span) = match (new, old) {
            (Side::Contract { .. }, _) => (file_of(new), f.new_span),
            (_, Side::Contract { .. }) => (file_of(old), f.old_span),
            _ => (file_of(new), None),
        };
        let mut message = format!("{} ({} at {})", f.message, f.class.as_str(), f.pointer);
        let (a, b) = show_pair(f.old.as_ref(), f.new.as_ref(), 400, true);
        if let Some(v) = a {
            message.push_str(&format!("\nold: {v}"));
        }
        if let Some(v) = b {
            message.push_str(&format!("\nnew: {v}"));
        }
        line(
            level,
            Some(file),
            span,
            format!("charter diff: {} ({})", f.rule, f.class.as_str()),
            message,
        );
    }
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_one_line_with_pipes_escaped() {
        assert_eq!(cell("a|b\nc", 100), "a\\|b ⏎ c");
        assert_eq!(code_cell("x`y", 100), "x`y");
        assert_eq!(code_cell("xy", 100), "`xy`");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn long_strings_show_where_they_differ() {
        let a = json!(format!("{} old ending", "x".repeat(100)));
        let b = json!(format!("{} new ending", "x".repeat(100)));
        let (x, y) = show_pair(Some(&a), Some(&b), 60, false);
        assert_eq!(x.unwrap(), format!("…{} old ending", "x".repeat(23)));
        assert_eq!(y.unwrap(), format!("…{} new ending", "x".repeat(23)));
    }

    #[test]
    fn github_commands_are_escaped() {
        assert_eq!(escape_data("50%\nnext"), "50%25%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
