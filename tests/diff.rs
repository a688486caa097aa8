//! `charter diff` and `charter lock`: the corpus of contract pairs under
//! tests/diff/ (one case per rule, plus combined and version cases) with a
//! snapshot of each case's findings, and of the text, Markdown and JSON
//! outputs for the combined cases; exit statuses; git revisions; and the
//! tool-surface lock.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use charter::diff::git::load;
use charter::diff::render;
use charter::diff::{Class, RULES, Report, RuleId, Side, compare};
use charter::lock::Lock;
use common::{charter, root, today};

/// The cases: (name, old path, new path), paths relative to the repository root.
/// A case's old side is its own old.yaml, or tests/diff/base.yaml.
fn cases() -> Vec<(String, String, String)> {
    let mut cases: Vec<(String, String, String)> = std::fs::read_dir(root().join("tests/diff"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let old = if dir.join("old.yaml").exists() {
                format!("tests/diff/{name}/old.yaml")
            } else {
                "tests/diff/base.yaml".to_owned()
            };
            (name.clone(), old, format!("tests/diff/{name}/new.yaml"))
        })
        .collect();
    cases.sort();
    cases
}

fn side(path: &str) -> Side {
    load(path, today()).unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

/// The cases whose text, Markdown and JSON outputs are snapshotted in full;
/// every other case is snapshotted as its findings only.
const FULL_RENDER_CASES: &[&str] = &["combined", "combined-description-only"];

/// One `rule class pointer` line per finding, in report order.
fn findings(report: &Report) -> String {
    report
        .findings
        .iter()
        .map(|f| format!("{} {} {}\n", f.rule, f.class.as_str(), f.pointer))
        .collect()
}

/// The three outputs of one comparison, as one snapshot.
fn outputs(report: &Report, old: &Side, new: &Side) -> String {
    format!(
        "==== text ====\n{}\n==== markdown ====\n{}\n==== json ====\n{}",
        render::text(report, old, new, false),
        render::markdown(report, old, new),
        render::json(report, old, new)
    )
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({snapshot_path => "snapshots/diff", prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn every_case_reports_its_rule_and_matches_its_snapshot() {
    let cases = cases();
    assert!(
        cases.len() >= RULES.len(),
        "{} cases for {} rules",
        cases.len(),
        RULES.len()
    );
    for (name, old_path, new_path) in &cases {
        let (old, new) = (side(old_path), side(new_path));
        let report = compare(&old, &new);
        if let Some(rule) = RULES.iter().find(|r| r.id.as_str() == name) {
            let finding = report.findings.iter().find(|f| f.rule == rule.id);
            let finding = finding.unwrap_or_else(|| {
                panic!(
                    "{name}: no `{name}` finding among {:?}",
                    report.findings.iter().map(|f| f.rule).collect::<Vec<_>>()
                )
            });
            assert_eq!(finding.class, rule.class, "{name}");
            assert!(finding.old.is_some() || finding.new.is_some(), "{name}: no values");
            let (_, span) = finding.primary_span();
            assert!(span.is_some(), "{name}: not located");
        }
        // Every case declares the bump it needs, except the cases about the version itself.
        assert_eq!(
            report.version.ok,
            !name.starts_with("version-") || name == "version-zero-minor-breaks",
            "{name}: {:?}",
            report.version
        );
        if FULL_RENDER_CASES.contains(&name.as_str()) {
            snapshot(name, &outputs(&report, &old, &new));
        } else {
            snapshot(name, &findings(&report));
        }
    }
}

#[test]
fn every_rule_has_a_case_and_is_documented() {
    let docs = std::fs::read_to_string(root().join("docs/diff.md")).unwrap();
    for rule in RULES {
        assert!(
            root()
                .join("tests/diff")
                .join(rule.id.as_str())
                .join("new.yaml")
                .exists(),
            "no case tests/diff/{}/",
            rule.id
        );
        assert!(
            docs.contains(&format!("`{}`", rule.id)),
            "docs/diff.md does not describe `{}`",
            rule.id
        );
    }
    assert!(docs.contains("`version-bump-too-small`"));
    let mut ids: Vec<&str> = RULES.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), RULES.len(), "duplicate rule ids");
    for rule in RULES {
        assert_eq!(RuleId::parse(rule.id.as_str()), Some(rule.id));
        assert_eq!(rule.id.rule().id, rule.id, "RULES is not in the order of RuleId");
        assert_eq!(serde_json::json!(rule.id), serde_json::json!(rule.id.as_str()));
    }
}

#[test]
fn corpus_contracts_pass_check_except_the_open_input_cases() {
    // `input-closed` and `input-opened` need an open input schema on one side,
    // which `open-input-schema` refuses; diff needs only a valid model.
    let allowed_to_fail = ["tests/diff/input-closed/old.yaml", "tests/diff/input-opened/new.yaml"];
    for (_, old, new) in cases() {
        for path in [old, new] {
            let checked = charter::check::check_file(&root().join(&path), today());
            let passed = checked.outcome == charter::check::Outcome::Passed;
            assert_eq!(
                passed,
                !allowed_to_fail.contains(&path.as_str()),
                "{path}: {:?}",
                checked.diagnostics
            );
        }
    }
}

#[test]
fn description_and_prompt_text_changes_need_review() {
    for case in [
        "description-changed",
        "prompt-text-changed",
        "combined-description-only",
    ] {
        let report = compare(
            &side("tests/diff/base.yaml"),
            &side(&format!("tests/diff/{case}/new.yaml")),
        );
        assert!(!report.findings.is_empty(), "{case}");
        assert!(
            report.findings.iter().all(|f| f.class == Class::Review),
            "{case}: {:?}",
            report.findings
        );
        assert_eq!(report.version.required, charter::diff::Bump::Minor);
    }
    // The same description change with only a patch bump is an error.
    let out = charter(&[
        "diff",
        "tests/diff/base.yaml",
        "tests/diff/version-bump-too-small/new.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[version-bump-too-small]"), "{text}");
    assert!(text.contains("warning[description-changed]"), "{text}");
}

fn status(args: &[&str]) -> Option<i32> {
    charter(args).status.code()
}

#[test]
fn fail_on_sets_the_exit_status() {
    let base = "tests/diff/base.yaml";
    let review = "tests/diff/description-changed/new.yaml";
    let breaking = "tests/diff/input-bounds-tightened/new.yaml";
    let compatible = "tests/diff/input-field-added/new.yaml";
    let same = "tests/diff/no-change/new.yaml";
    for (new, fail_on, expected) in [
        (review, None, 0),
        (review, Some("none"), 0),
        (review, Some("breaking"), 0),
        (review, Some("review"), 1),
        (review, Some("any"), 1),
        (breaking, None, 0),
        (breaking, Some("breaking"), 1),
        (breaking, Some("review"), 1),
        (compatible, Some("review"), 0),
        (compatible, Some("any"), 1),
        (same, Some("any"), 0),
        ("tests/diff/version-bump-too-small/new.yaml", None, 1),
        ("tests/diff/version-unchanged/new.yaml", Some("none"), 1),
    ] {
        let mut args = vec!["diff", base, new];
        if let Some(f) = fail_on {
            args.extend(["--fail-on", f]);
        }
        assert_eq!(status(&args), Some(expected), "{args:?}");
    }
    for format in ["text", "markdown", "json", "github"] {
        assert_eq!(
            status(&["diff", base, breaking, "--format", format, "--fail-on", "breaking"]),
            Some(1)
        );
    }
    assert_eq!(status(&["diff", base, breaking, "--fail-on", "sometimes"]), Some(2));
    assert_eq!(status(&["diff", base]), Some(2));
}

#[test]
fn an_invalid_side_shows_the_check_diagnostics_and_exits_2() {
    for invalid in [
        "specs/invalid/unknown-field.yaml",
        "specs/invalid/duplicate-key.yaml",
        "specs/invalid/unknown-reference.yaml",
    ] {
        if !root().join(invalid).exists() {
            continue;
        }
        let check = charter(&["check", invalid]);
        for args in [
            ["diff", invalid, "tests/diff/base.yaml"],
            ["diff", "tests/diff/base.yaml", invalid],
        ] {
            let out = charter(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&check.stdout),
                "{args:?}"
            );
            assert!(out.stdout.is_empty());
        }
    }
    let out = charter(&["diff", "tests/diff/none.yaml", "tests/diff/base.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read tests/diff/none.yaml"));
    // A contract that fails a production rule still diffs: diff needs the model, not a passing check.
    let out = charter(&["diff", "tests/diff/base.yaml", "tests/diff/input-opened/new.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn github_annotations_land_in_the_new_file() {
    let out = charter(&[
        "diff",
        "tests/diff/base.yaml",
        "tests/diff/combined/new.yaml",
        "--format",
        "github",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in text.lines() {
        assert!(
            line.starts_with("::error file=tests/diff/combined/new.yaml,line=")
                || line.starts_with("::warning file=tests/diff/combined/new.yaml,line=")
                || line.starts_with("::notice file=tests/diff/combined/new.yaml,line="),
            "{line}"
        );
    }
    snapshot("github-combined", &text);
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn charter_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(args)
        .current_dir(dir)
        .env("CHARTER_TODAY", common::TODAY)
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("charter runs")
}

#[test]
fn diff_between_git_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["config", "user.email", "test@example.com"]);
    git(repo, &["config", "user.name", "test"]);
    std::fs::create_dir(repo.join("specs")).unwrap();
    let spec = repo.join("specs/orders.yaml");
    std::fs::copy(root().join("tests/diff/base.yaml"), &spec).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "v1"]);
    std::fs::copy(root().join("tests/diff/combined/new.yaml"), &spec).unwrap();
    git(repo, &["commit", "-q", "-am", "v2"]);

    let out = charter_in(
        repo,
        &[
            "diff",
            "HEAD~1:specs/orders.yaml",
            "HEAD:specs/orders.yaml",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["old"]["path"], "HEAD~1:specs/orders.yaml");
    assert_eq!(json["summary"]["breaking"], 2);
    assert_eq!(json["version"]["required"], "major");
    // A revision against the working tree, as in a pull request.
    let out = charter_in(
        repo,
        &[
            "diff",
            "main~1:specs/orders.yaml",
            "specs/orders.yaml",
            "--fail-on",
            "breaking",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[input-bounds-tightened]"), "{text}");
    assert!(text.contains("--> specs/orders.yaml:"), "{text}");
    // Removals are shown in the old revision's text.
    assert!(text.contains("--> main~1:specs/orders.yaml:"), "{text}");
    // GitHub annotations name the file, not the revision.
    let out = charter_in(
        repo,
        &[
            "diff",
            "main~1:specs/orders.yaml",
            "specs/orders.yaml",
            "--format",
            "github",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .all(|l| l.contains("file=specs/orders.yaml"))
    );

    for (args, message) in [
        (
            ["diff", "nosuchrev:specs/orders.yaml", "specs/orders.yaml"],
            "cannot read `nosuchrev:specs/orders.yaml` from git",
        ),
        (
            ["diff", "HEAD:specs/missing.yaml", "specs/orders.yaml"],
            "cannot read `HEAD:specs/missing.yaml` from git",
        ),
    ] {
        let out = charter_in(repo, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = charter_in(
        elsewhere.path(),
        &["diff", "HEAD:specs/orders.yaml", "HEAD:specs/orders.yaml"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("from git"));
    // An invalid contract in a revision gets the check diagnostics, named by revision.
    std::fs::write(&spec, "charter: 1\nserver: [\n").unwrap();
    git(repo, &["commit", "-q", "-am", "broken"]);
    let out = charter_in(repo, &["diff", "HEAD~1:specs/orders.yaml", "HEAD:specs/orders.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--> HEAD:specs/orders.yaml:"));
}

#[test]
fn lock_files_are_deterministic_and_round_trip() {
    let out = charter(&["lock", "tests/diff/base.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let Side::Contract { model, .. } = side("tests/diff/base.yaml") else {
        panic!("a contract")
    };
    let lock = Lock::from_model(&model);
    assert_eq!(text, lock.to_json_pretty());
    assert_eq!(Lock::parse(&text).unwrap(), lock);
    assert!(text.ends_with("}\n"));
    // Each hash is the one a generated server publishes.
    for (entry, (kind, definition)) in lock.definitions.iter().zip({
        let mut all = charter::surface::all(&model);
        all.sort_by(|a, b| (a.0, a.1["name"].as_str()).cmp(&(b.0, b.1["name"].as_str())));
        all
    }) {
        assert_eq!(entry.kind, kind);
        assert_eq!(entry.sha256, charter::surface::definition_hash(&definition));
    }
    // Key order and comments in the contract do not change the lock.
    let Side::Contract { model: same, .. } = side("tests/diff/no-change/new.yaml") else {
        panic!("a contract")
    };
    assert_eq!(Lock::from_model(&same).to_json_pretty(), text);
    snapshot("lock-base", &text);

    // --out writes atomically, replaces an older lock, and refuses other files.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("charter.lock.json");
    let path_str = path.to_str().unwrap();
    assert_eq!(status(&["lock", "tests/diff/base.yaml", "--out", path_str]), Some(0));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_eq!(
        status(&["lock", "tests/diff/combined/new.yaml", "--out", path_str]),
        Some(0)
    );
    assert_ne!(std::fs::read_to_string(&path).unwrap(), text);
    let other = dir.path().join("notes.json");
    std::fs::write(&other, "{\"keep\": true}").unwrap();
    let out = charter(&["lock", "tests/diff/base.yaml", "--out", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a charter lock"));
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "{\"keep\": true}");
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    assert_eq!(status(&["lock", "specs/invalid/unknown-field.yaml"]), Some(2));
}

#[test]
fn diff_against_a_lock_compares_the_surface() {
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("charter.lock.json");
    std::fs::write(&lock_path, charter(&["lock", "tests/diff/base.yaml"]).stdout).unwrap();
    let lock_arg = lock_path.to_str().unwrap();

    // The lock of a contract against the contract: nothing changed.
    let out = charter(&["diff", lock_arg, "tests/diff/base.yaml", "--fail-on", "any"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    let old = load(lock_arg, today()).unwrap();
    let new = side("tests/diff/combined/new.yaml");
    let report = compare(&old, &new);
    let rules: Vec<&str> = report.findings.iter().map(|f| f.rule.as_str()).collect();
    for expected in [
        "tool-added",
        "description-changed",
        "input-bounds-tightened",
        "output-field-removed",
        "prompt-text-changed",
    ] {
        assert!(rules.contains(&expected), "{expected} not in {rules:?}");
    }
    // What clients do not see is not in a lock.
    for unseen in [
        "egress-host-added",
        "data-class-widened",
        "approval-relaxed",
        "audit-increased",
    ] {
        assert!(!rules.contains(&unseen), "{unseen} in {rules:?}");
    }
    let text = outputs(&report, &old, &new).replace(lock_arg, "charter.lock.json");
    snapshot("lock-vs-combined", &text);

    // A hand-edited lock is refused.
    let edited = std::fs::read_to_string(&lock_path)
        .unwrap()
        .replacen("The status, items", "The status and items", 1);
    std::fs::write(&lock_path, edited).unwrap();
    let out = charter(&["diff", lock_arg, "tests/diff/base.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("edited by hand"));
}

#[test]
fn markdown_is_a_table_a_reviewer_can_read() {
    let old = side("tests/diff/base.yaml");
    let new = side("tests/diff/combined/new.yaml");
    let report = compare(&old, &new);
    let md = render::markdown(&report, &old, &new);
    let header = "| rule | what | path | old | new |";
    assert_eq!(md.matches(header).count(), 3, "{md}");
    for line in md.lines().filter(|l| l.starts_with("| `")) {
        // Five cells: six unescaped pipes.
        let pipes = line.replace("\\|", "").matches('|').count();
        assert_eq!(pipes, 6, "{line}");
    }
    assert!(md.contains("**2 breaking**"), "{md}");
}
