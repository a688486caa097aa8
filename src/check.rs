//! `charter check`: parse, lower and lint one contract, collecting every diagnostic.

use std::path::Path;

use crate::diagnostic::{Diagnostic, Place, Source};
use crate::model::Model;
use crate::{contract, lint, model};

/// Contracts larger than this are refused before parsing.
pub const MAX_CONTRACT_BYTES: usize = 8 << 20;

/// How far a contract got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Passed, possibly with warnings or suppressed findings.
    Passed,
    /// Read and understood, but a production rule failed.
    Failed,
    /// Could not be read, parsed or validated.
    Unreadable,
}

impl Outcome {
    /// The process exit status `charter check` uses.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::Unreadable => 2,
        }
    }
}

/// One contract's result.
#[derive(Debug)]
pub struct Checked {
    pub source: Source,
    pub model: Option<Model>,
    pub diagnostics: Vec<Diagnostic>,
    pub outcome: Outcome,
}

/// Reads and checks a contract file.
pub fn check_file(path: &Path, today: jiff::civil::Date) -> Checked {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() > MAX_CONTRACT_BYTES => unreadable(
            &shown,
            format!(
                "{shown} is {} bytes; contracts are at most {MAX_CONTRACT_BYTES}",
                bytes.len()
            ),
            "split the server: a contract this large cannot be reviewed",
        ),
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => check_text(&shown, text, today),
            Err(e) => unreadable(
                &shown,
                format!(
                    "{shown} is not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
                "save the contract as UTF-8",
            ),
        },
        Err(e) => unreadable(&shown, format!("cannot read {shown}: {e}"), "check the path"),
    }
}

fn unreadable(path: &str, message: String, help: &str) -> Checked {
    Checked {
        source: Source::new(path, ""),
        model: None,
        diagnostics: vec![Diagnostic::error("unreadable", message, Place::default()).with_help(help)],
        outcome: Outcome::Unreadable,
    }
}

/// Checks contract text; `path` is how reports name it, `today` is the date
/// review deadlines are measured against.
pub fn check_text(path: &str, text: String, today: jiff::civil::Date) -> Checked {
    let mut source = Source::new(path, text);
    let (model, mut diagnostics, outcome) = match contract::parse(&mut source) {
        Err(diags) => (None, diags, Outcome::Unreadable),
        Ok(raw) => match model::lower(&raw) {
            Err(diags) => (None, diags, Outcome::Unreadable),
            Ok(model) => {
                let diags = lint::lint(&model, &source, today);
                let outcome = if diags.iter().any(Diagnostic::is_failing) {
                    Outcome::Failed
                } else {
                    Outcome::Passed
                };
                (Some(model), diags, outcome)
            }
        },
    };
    source.resolve(&mut diagnostics);
    Checked {
        source,
        model,
        diagnostics,
        outcome,
    }
}
