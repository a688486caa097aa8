//! Reports of `charter check`: text (rustc-style), JSON and SARIF 2.1.0.

use serde::Serialize;
use serde_sarif::sarif;

use crate::check::{Checked, Outcome};
use crate::diagnostic::{Diagnostic, Severity};
use crate::lint::{CHECKS, RULES};

/// rustc-style text: each diagnostic with its snippet, then one summary line per file.
pub fn text(results: &[Checked], color: bool) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(&r.source.render(&r.diagnostics, color));
    }
    for r in results {
        out.push_str(&summary_line(r));
        out.push('\n');
    }
    out
}

fn summary_line(r: &Checked) -> String {
    let count = |sev: Severity| {
        r.diagnostics
            .iter()
            .filter(|d| d.severity == sev && d.suppressed.is_none())
            .count()
    };
    let suppressed = r.diagnostics.iter().filter(|d| d.suppressed.is_some()).count();
    let verdict = match r.outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Unreadable => "could not be checked",
    };
    let mut line = format!(
        "{}: {verdict}: {} error(s), {} warning(s)",
        r.source.path,
        count(Severity::Error),
        count(Severity::Warning)
    );
    if suppressed > 0 {
        line.push_str(&format!(", {suppressed} suppressed"));
    }
    line
}

#[derive(Serialize)]
struct JsonReport<'a> {
    files: Vec<JsonFile<'a>>,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    path: &'a str,
    outcome: &'static str,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    #[serde(flatten)]
    diagnostic: &'a Diagnostic,
    line: Option<usize>,
    column: Option<usize>,
}

/// Machine-readable: every diagnostic with its id, severity, place, line and column.
pub fn json(results: &[Checked]) -> String {
    let report = JsonReport {
        files: results
            .iter()
            .map(|r| JsonFile {
                path: &r.source.path,
                outcome: match r.outcome {
                    Outcome::Passed => "passed",
                    Outcome::Failed => "failed",
                    Outcome::Unreadable => "unreadable",
                },
                diagnostics: r
                    .diagnostics
                    .iter()
                    .map(|d| JsonDiagnostic {
                        diagnostic: d,
                        line: d.span.map(|s| s.line),
                        column: d.span.map(|s| s.column),
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&report).expect("reports serialize") + "\n"
}

/// SARIF 2.1.0 for code-scanning upload: one run, every rule described, suppressions kept.
pub fn sarif(results: &[Checked]) -> String {
    let descriptors: Vec<(&str, &str, &str)> = RULES
        .iter()
        .map(|r| (r.id, r.summary, r.explain))
        .chain(CHECKS.iter().map(|(id, explain)| (*id, *explain, *explain)))
        .chain(std::iter::once((
            "unreadable",
            "the contract file could not be read",
            "The file does not exist, cannot be opened or is not UTF-8 text.",
        )))
        .collect();
    let rules: Vec<sarif::ReportingDescriptor> = descriptors
        .iter()
        .map(|(id, summary, explain)| {
            sarif::ReportingDescriptor::builder()
                .id(id.to_string())
                .name(id.to_string())
                .short_description(
                    sarif::MultiformatMessageString::builder()
                        .text(summary.to_string())
                        .build(),
                )
                .full_description(
                    sarif::MultiformatMessageString::builder()
                        .text(explain.to_string())
                        .build(),
                )
                .help(
                    sarif::MultiformatMessageString::builder()
                        .text(format!("charter explain {id}"))
                        .build(),
                )
                .build()
        })
        .collect();
    let mut sarif_results = Vec::new();
    for r in results {
        for d in &r.diagnostics {
            let index = descriptors.iter().position(|(id, ..)| *id == d.id).unwrap_or(0) as i64;
            let mut text = d.message.clone();
            if let Some(help) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(help);
            }
            let region = match d.span {
                Some(s) => sarif::Region::builder()
                    .start_line(s.line.max(1) as i64)
                    .start_column(s.column.max(1) as i64)
                    .build(),
                None => sarif::Region::builder().start_line(1).build(),
            };
            let location = sarif::Location::builder()
                .physical_location(
                    sarif::PhysicalLocation::builder()
                        .artifact_location(
                            sarif::ArtifactLocation::builder()
                                .uri(r.source.path.replace('\\', "/"))
                                .build(),
                        )
                        .region(region)
                        .build(),
                )
                .build();
            let level = match d.severity {
                Severity::Error => sarif::ResultLevel::Error,
                Severity::Warning => sarif::ResultLevel::Warning,
            };
            let suppressions: Vec<sarif::Suppression> = d
                .suppressed
                .iter()
                .map(|reason| {
                    sarif::Suppression::builder()
                        .kind(serde_json::json!("inSource"))
                        .justification(reason.clone())
                        .build()
                })
                .collect();
            let result = sarif::Result::builder()
                .rule_id(d.id.to_string())
                .rule_index(index)
                .level(level)
                .message(sarif::Message::builder().text(text).build())
                .locations(vec![location]);
            sarif_results.push(if suppressions.is_empty() {
                result.build()
            } else {
                result.suppressions(suppressions).build()
            });
        }
    }
    let driver = sarif::ToolComponent::builder()
        .name("charter")
        .version(env!("CARGO_PKG_VERSION").to_string())
        .information_uri("https://github.com/charter-dev/charter".to_string())
        .rules(rules)
        .build();
    // Columns count characters, as in the text report.
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .column_kind(serde_json::json!("unicodeCodePoints"))
        .results(sarif_results)
        .build();
    let log = sarif::Sarif::builder()
        .schema("https://json.schemastore.org/sarif-2.1.0.json".to_string())
        .version(serde_json::to_value(sarif::Version::V2_1_0).expect("version serializes"))
        .runs(vec![run])
        .build();
    serde_json::to_string_pretty(&log).expect("SARIF serializes") + "\n"
}
