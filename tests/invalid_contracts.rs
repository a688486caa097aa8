//! Every contract in specs/invalid/ fails with the diagnostic its header
//! announces (`# expect: ID LINE:COLUMN`), at that place, with the right exit
//! status, and its rendered diagnostics match the committed snapshot.

mod common;

use charter::check::{Outcome, check_file};
use charter::lint::RULES;
use common::{charter, relative, today, yaml_files};

/// Checks that run with the production rules, on a contract that was read and understood.
const LINT_STAGE_CHECKS: &[&str] = &["unknown-rule", "suppression-not-allowed", "suppression-without-reason"];

struct Expectation {
    id: String,
    line: usize,
    column: usize,
}

fn expectations(text: &str) -> Vec<Expectation> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let (id, place) = rest.trim().split_once(' ').expect("`# expect: ID LINE:COL`");
            let (line, column) = place.trim().split_once(':').expect("LINE:COL");
            Expectation {
                id: id.into(),
                line: line.parse().unwrap(),
                column: column.parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn every_invalid_contract_fails_where_it_says() {
    let files = yaml_files("specs/invalid");
    assert!(
        files.len() >= 20,
        "specs/invalid/ holds {} contracts, want at least 20",
        files.len()
    );
    let mut ids_covered = std::collections::BTreeSet::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut expected = expectations(&text);
        if text.is_empty() {
            expected.push(Expectation {
                id: "empty-contract".into(),
                line: 1,
                column: 1,
            });
        }
        assert!(!expected.is_empty(), "{}: no `# expect:` line", path.display());
        let checked = check_file(path, today());
        assert_ne!(checked.outcome, Outcome::Passed, "{} passed", path.display());
        for e in &expected {
            ids_covered.insert(e.id.clone());
            let found = checked
                .diagnostics
                .iter()
                .find(|d| d.id == e.id && d.suppressed.is_none());
            let Some(d) = found else {
                panic!(
                    "{}: no `{}` among {:?}",
                    path.display(),
                    e.id,
                    checked.diagnostics.iter().map(|d| d.id).collect::<Vec<_>>()
                );
            };
            let span = d.span.expect("located");
            assert_eq!(
                (span.line, span.column),
                (e.line, e.column),
                "{}: `{}` at the wrong place",
                path.display(),
                e.id
            );
            // Production rules and the checks of suppressions run on a valid model: exit 1.
            let is_rule = RULES.iter().any(|r| r.id == e.id) || LINT_STAGE_CHECKS.contains(&e.id.as_str());
            let want = if is_rule { Outcome::Failed } else { Outcome::Unreadable };
            assert_eq!(checked.outcome, want, "{}: outcome", path.display());
        }
        // Each file breaks one thing: no error beyond the ones it announces.
        for d in checked.diagnostics.iter().filter(|d| d.is_failing()) {
            assert!(
                expected.iter().any(|e| e.id == d.id),
                "{}: unexpected `{}`: {}",
                path.display(),
                d.id,
                d.message
            );
        }
    }
    // Every error-severity production rule has a contract that breaks it.
    for rule in RULES
        .iter()
        .filter(|r| r.severity == charter::diagnostic::Severity::Error)
    {
        assert!(
            ids_covered.contains(rule.id),
            "no invalid contract exercises `{}`",
            rule.id
        );
    }
}

#[test]
fn rendered_diagnostics_match_snapshots() {
    for path in yaml_files("specs/invalid") {
        let out = charter(&["check", &relative(&path)]);
        let code = out.status.code().expect("exited");
        assert!(code == 1 || code == 2, "{}: exit {code}", path.display());
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let rendered = format!("exit status: {code}\n\n{}", String::from_utf8_lossy(&out.stdout));
        insta::with_settings!({ snapshot_path => "snapshots/invalid", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name, rendered);
        });
    }
}
