//! Diagnostics: what every stage reports, located in the contract's text.
//!
//! Stages name a place by JSON pointer into the document (`/tools/x/input`);
//! `Source::resolve` turns that into a line, column and byte range through the
//! spanned YAML tree, so the parse, model and lint stages never handle
//! positions themselves.

use std::fmt;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

use crate::contract::yaml::{Node, Span};

/// How serious a finding is. Errors fail `charter check`; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// Where in the contract a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Place {
    /// JSON pointer into the document; empty for the document as a whole.
    pub pointer: String,
    /// Point at the mapping key rather than its value (e.g. for unknown fields).
    #[serde(skip)]
    pub key: bool,
    /// Narrow the underline to this text inside the located value, where it appears verbatim.
    #[serde(skip)]
    pub needle: Option<String>,
}

impl Place {
    pub fn value(pointer: impl Into<String>) -> Place {
        Place {
            pointer: pointer.into(),
            key: false,
            needle: None,
        }
    }
    pub fn key(pointer: impl Into<String>) -> Place {
        Place {
            pointer: pointer.into(),
            key: true,
            needle: None,
        }
    }
    /// The same place, underlining `needle` where it appears in the value.
    pub fn within(mut self, needle: impl Into<String>) -> Place {
        self.needle = Some(needle.into());
        self
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    /// A stable id: a production rule's id or a parse/validation check's id.
    pub id: &'static str,
    pub severity: Severity,
    pub message: String,
    pub place: Place,
    /// Resolved from `place` by `Source::resolve`.
    #[serde(skip)]
    pub span: Option<Span>,
    /// The text under the primary underline.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// Other places that explain the finding (e.g. where a duplicate key first appeared).
    #[serde(skip)]
    pub related: Vec<(Span, String)>,
    /// Set when the contract suppressed the rule here; the reason is shown, the finding does not count.
    pub suppressed: Option<String>,
}

impl Diagnostic {
    pub fn error(id: &'static str, message: impl Into<String>, place: Place) -> Diagnostic {
        Diagnostic::new(id, Severity::Error, message, place)
    }

    pub fn new(id: &'static str, severity: Severity, message: impl Into<String>, place: Place) -> Diagnostic {
        Diagnostic {
            id,
            severity,
            message: message.into(),
            place,
            span: None,
            label: None,
            help: None,
            related: Vec::new(),
            suppressed: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_span(mut self, span: Span) -> Diagnostic {
        self.span = Some(span);
        self
    }

    /// Counts toward the exit status: an unsuppressed error.
    pub fn is_failing(&self) -> bool {
        self.severity == Severity::Error && self.suppressed.is_none()
    }
}

/// A contract's text, its path as the user gave it, and its spanned tree once parsed.
#[derive(Debug)]
pub struct Source {
    pub path: String,
    pub text: String,
    pub root: Option<Node>,
}

impl Source {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            path: path.into(),
            text: text.into(),
            root: None,
        }
    }

    /// Fills in the span of each diagnostic from its place, and orders them by position.
    pub fn resolve(&self, diagnostics: &mut [Diagnostic]) {
        for d in diagnostics.iter_mut() {
            if d.span.is_none() {
                d.span = self
                    .root
                    .as_ref()
                    .map(|root| root.locate(&d.place.pointer, d.place.key));
                if let (Some(span), Some(needle)) = (d.span, &d.place.needle) {
                    d.span = Some(self.find_within(span, needle).unwrap_or(span));
                }
            }
        }
        diagnostics.sort_by_key(|d| {
            (
                d.span.map(|s| s.start).unwrap_or(0),
                std::cmp::Reverse(d.severity),
                d.id,
            )
        });
    }

    /// The span of `needle` inside (or right after the start of) a value, if it is written verbatim.
    fn find_within(&self, span: Span, needle: &str) -> Option<Span> {
        let window_end = (span.end.max(span.start + needle.len()) + 4096).min(self.text.len());
        let window = self.text.get(span.start..window_end)?;
        let offset = window.find(needle)?;
        Some(self.span_of(span.start + offset, span.start + offset + needle.len()))
    }

    /// The span of a byte range of the text.
    pub fn span_of(&self, start: usize, end: usize) -> Span {
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = self.text[line_start..start].chars().count() + 1;
        Span {
            line,
            column,
            start,
            end,
        }
    }

    /// Renders diagnostics as rustc does, with the source line and an underline.
    pub fn render(&self, diagnostics: &[Diagnostic], color: bool) -> String {
        let renderer = if color { Renderer::styled() } else { Renderer::plain() };
        let mut out = String::new();
        for d in diagnostics {
            let level = match (d.suppressed.is_some(), d.severity) {
                (true, _) => Level::NOTE,
                (false, Severity::Error) => Level::ERROR,
                (false, Severity::Warning) => Level::WARNING,
            };
            let title = match &d.suppressed {
                Some(_) => format!("suppressed: {}", d.message),
                None => d.message.clone(),
            };
            let mut groups = Vec::new();
            let title = level.primary_title(title).id(d.id);
            let group = match d.span {
                Some(span) => {
                    let mut snippet = Snippet::source(self.text.as_str())
                        .line_start(1)
                        .path(self.path.as_str());
                    let mut annotation = AnnotationKind::Primary.span(clamp(span, &self.text));
                    if let Some(label) = &d.label {
                        annotation = annotation.label(label.as_str());
                    }
                    snippet = snippet.annotation(annotation);
                    for (span, label) in &d.related {
                        snippet = snippet.annotation(
                            AnnotationKind::Context
                                .span(clamp(*span, &self.text))
                                .label(label.as_str()),
                        );
                    }
                    title.element(snippet)
                }
                None => title.element(annotate_snippets::Origin::path(self.path.as_str())),
            };
            groups.push(group);
            if let Some(help) = &d.help {
                groups.push(Group::with_title(Level::HELP.secondary_title(help.as_str())));
            }
            if let Some(reason) = &d.suppressed {
                groups.push(Group::with_title(
                    Level::NOTE.secondary_title(format!("reason given: {reason}")),
                ));
            }
            out.push_str(&renderer.render(&groups));
            out.push_str("\n\n");
        }
        out
    }
}

/// The underline: the span's first line only, so a block value does not drag in what follows.
pub(crate) fn clamp(span: Span, text: &str) -> std::ops::Range<usize> {
    let start = span.start.min(text.len());
    let mut end = span.end.max(start).min(text.len());
    if let Some(newline) = text[start..end].find('\n') {
        end = if newline == 0 { start } else { start + newline };
    }
    start..end
}
