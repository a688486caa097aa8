//! The example contracts pass, their models are snapshotted, and the JSON
//! Schema that `charter schema` prints accepts them and refuses the
//! structurally invalid contracts.

mod common;

use charter::check::{Outcome, check_file};
use common::{charter, relative, today, yaml_as_json, yaml_files};

#[test]
fn every_spec_passes_check() {
    let specs = yaml_files("specs");
    assert!(specs.len() >= 4, "want the article's four servers in specs/");
    for path in &specs {
        let checked = check_file(path, today());
        let failing: Vec<_> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_failing())
            .map(|d| format!("{}: {}", d.id, d.message))
            .collect();
        assert_eq!(checked.outcome, Outcome::Passed, "{}: {failing:#?}", path.display());
    }
    let mut args = vec!["check".to_string()];
    args.extend(specs.iter().map(|p| relative(p)));
    let out = charter(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn models_match_snapshots() {
    for path in yaml_files("specs") {
        let checked = check_file(&path, today());
        let model = checked.model.expect("the spec lowers");
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        insta::with_settings!({ snapshot_path => "snapshots/model", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_json_snapshot!(name, model);
        });
    }
}

fn printed_schema() -> jsonschema::Validator {
    let out = charter(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("`charter schema` prints JSON");
    jsonschema::draft202012::new(&schema).expect("`charter schema` prints a valid JSON Schema")
}

#[test]
fn printed_schema_accepts_every_spec() {
    let validator = printed_schema();
    for path in yaml_files("specs") {
        let doc = yaml_as_json(&path).expect("spec is YAML");
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

/// Ids of diagnostics that say the document's structure is wrong.
const STRUCTURAL: &[&str] = &["unknown-field", "missing-field", "wrong-type", "unsupported-version"];

#[test]
fn printed_schema_rejects_structurally_invalid_contracts() {
    let validator = printed_schema();
    let mut rejected = 0;
    for path in yaml_files("specs/invalid") {
        let checked = check_file(&path, today());
        let structural = checked.diagnostics.iter().any(|d| STRUCTURAL.contains(&d.id))
            || (checked.diagnostics.iter().any(|d| d.id == "invalid-value")
                && checked.model.is_none()
                && is_schema_enum_error(&checked));
        if !structural {
            continue;
        }
        let Some(doc) = yaml_as_json(&path) else { continue };
        assert!(
            !validator.is_valid(&doc),
            "{}: the printed schema accepts a structurally invalid contract",
            path.display()
        );
        rejected += 1;
    }
    assert!(
        rejected >= 3,
        "only {rejected} structurally invalid contracts were tried"
    );
}

/// An `invalid-value` that the structure stage (not the model) reported: it names the accepted values.
fn is_schema_enum_error(checked: &charter::check::Checked) -> bool {
    checked
        .diagnostics
        .iter()
        .any(|d| d.id == "invalid-value" && d.message.contains("must be one of"))
}
