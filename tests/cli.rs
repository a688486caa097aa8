//! The command line as a user runs it: init, check, explain, schema, formats and exit statuses.

mod common;

use charter::lint::{CHECKS, RULES};
use common::{charter, root};

#[test]
fn init_writes_a_contract_that_passes() {
    let out = charter(&["init", "--name", "demo"]);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = charter(&["check", path.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(report.contains("passed: 0 error(s), 0 warning(s)"), "{report}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: demo"));
}

#[test]
fn init_refuses_a_bad_name() {
    let out = charter(&["init", "--name", "Not Valid"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid server name"));
}

#[test]
fn check_reports_unreadable_files_with_status_2() {
    let out = charter(&["check", "specs/does-not-exist.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot read specs/does-not-exist.yaml"));
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let out = charter(&["check", binary.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not UTF-8"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(charter(&["check"]).status.code(), Some(2));
    assert_eq!(charter(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(charter(&["check", "--format", "xml", "x.yaml"]).status.code(), Some(2));
    assert_eq!(charter(&["--help"]).status.code(), Some(0));
}

#[test]
fn the_worst_outcome_decides_the_exit_status() {
    let out = charter(&[
        "check",
        "specs/release-notes.yaml",
        "specs/invalid/write-without-approval.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = charter(&[
        "check",
        "specs/invalid/write-without-approval.yaml",
        "specs/invalid/unknown-field.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn explain_covers_every_rule_and_check() {
    for rule in RULES {
        let out = charter(&["explain", rule.id]);
        assert_eq!(out.status.code(), Some(0), "{}", rule.id);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with(rule.id) && text.len() > 150, "{}: {text}", rule.id);
    }
    for (id, _) in CHECKS {
        assert_eq!(charter(&["explain", id]).status.code(), Some(0), "{id}");
    }
    let listing = String::from_utf8_lossy(&charter(&["explain"]).stdout).to_string();
    assert!(RULES.iter().all(|r| listing.contains(r.id)));
    let unknown = charter(&["explain", "write-without-aproval"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("did you mean `write-without-approval`?"));
}

#[test]
fn rule_ids_are_unique_and_stable_in_form() {
    let mut ids: Vec<&str> = RULES
        .iter()
        .map(|r| r.id)
        .chain(CHECKS.iter().map(|(id, _)| *id))
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate ids");
    assert!(
        ids.iter()
            .all(|id| id.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
    );
}

#[test]
fn json_report_locates_every_diagnostic() {
    let out = charter(&["check", "--format", "json", "specs/invalid/unknown-field.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diags = report["files"][0]["diagnostics"].as_array().unwrap();
    assert!(!diags.is_empty());
    for d in diags {
        assert!(
            d["line"].as_u64().unwrap() > 0 && d["column"].as_u64().unwrap() > 0,
            "{d}"
        );
        assert!(d["id"].is_string() && d["message"].is_string() && d["severity"].is_string());
    }
}

#[test]
fn sarif_report_validates_against_the_sarif_schema() {
    // The OASIS SARIF 2.1.0 schema (as shipped in serde-sarif), with one erratum
    // fixed: its `run.language` pattern has an unbalanced `]`, which strict
    // validators refuse to compile.
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/sarif-schema-2.1.0.json")).unwrap())
            .unwrap();
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let mut args = vec!["check", "--format", "sarif", "specs/release-notes.yaml"];
    let invalid: Vec<String> = common::yaml_files("specs/invalid")
        .iter()
        .map(|p| common::relative(p))
        .collect();
    args.extend(invalid.iter().map(String::as_str));
    let out = charter(&args);
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert!(results.len() >= invalid.len());
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            log["runs"][0]["tool"]["driver"]["rules"][index]["id"], r["ruleId"],
            "ruleIndex points at the rule"
        );
    }
}

#[test]
fn explain_model_prints_the_model() {
    let out = charter(&["check", "--explain-model", "specs/release-notes.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let model: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(model["server"]["name"]["original"], "release-notes");
    assert!(model["tools"].as_array().is_some_and(|t| !t.is_empty()));
}

#[test]
fn a_malformed_charter_today_is_an_error_that_says_how_to_fix_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(["check", "specs/policy-search.yaml"])
        .current_dir(root())
        .env("CHARTER_TODAY", "23/11/2026")
        .output()
        .expect("charter runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CHARTER_TODAY is `23/11/2026`, which is not a date"),
        "{stderr}"
    );
    assert!(stderr.contains("YYYY-MM-DD"), "{stderr}");
    assert!(out.stdout.is_empty());
    // Commands that read no dates do not care.
    let schema = std::process::Command::new(env!("CARGO_BIN_EXE_charter"))
        .arg("schema")
        .env("CHARTER_TODAY", "23/11/2026")
        .output()
        .expect("charter runs");
    assert_eq!(schema.status.code(), Some(0));
}

#[test]
fn wrong_egress_addresses_are_located_and_explained() {
    let out = charter(&["check", "tests/fixtures/egress-cidrs-wrong.yaml"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(
        report.contains("`10.0.0.1/8` is not a CIDR: its address has bits set past the /8 prefix")
            && report.contains("tests/fixtures/egress-cidrs-wrong.yaml:76:26"),
        "{report}"
    );
    assert!(
        report.contains("`ordres.example.com` has CIDRs, but it is neither")
            && report.contains("egress-cidrs-wrong.yaml:77:5")
            && report.contains("did you mean `orders.example.com`?"),
        "{report}"
    );
}
