//! The fuzz targets: each takes arbitrary bytes, runs one parser the way the
//! product runs it on untrusted input, and panics only on a bug. A parser that
//! refuses input returns normally; the fuzzer (fuzz/afl, `scripts/fuzz-parsers`)
//! reports a panic, an abort or a hang as a finding.
//!
//! Kept in the workspace, apart from the AFL harness, so `cargo test` replays
//! every seed and every saved finding (`fuzz/regressions/TARGET/`) on the
//! stable toolchain without AFL installed.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One fuzz target: arbitrary bytes in, a panic only on a bug.
pub type Target = fn(&[u8]);

/// The targets by name, as `scripts/fuzz-parsers` and the regression test call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("contract", contract),
    ("diff", diff),
    ("openapi", openapi),
    ("http_body", http_body),
    ("audit_verify", audit_verify),
    ("schema_subset", schema_subset),
];

/// Separates the two contracts of a `diff` input.
pub const DIFF_SEPARATOR: &[u8] = b"\n#----8<----\n";

fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 12, 3)
}

/// `charter check`: parse, lower, lint and render the diagnostics of contract text.
pub fn contract(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let checked = charter::check::check_text("fuzz.yaml", text.to_owned(), today());
    // Every diagnostic's place was resolved against the text; rendering must stay in bounds.
    let checked = [checked];
    let _ = charter::report::text(&checked, false);
    let _ = charter::report::json(&checked);
    let _ = charter::report::sarif(&checked);
}

/// `charter diff`: two contracts, checked and compared, the report rendered every way.
pub fn diff(data: &[u8]) {
    let Some(at) = data.windows(DIFF_SEPARATOR.len()).position(|w| w == DIFF_SEPARATOR) else {
        return;
    };
    let (old, new) = (&data[..at], &data[at + DIFF_SEPARATOR.len()..]);
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return;
    };
    let side = |name: &str, text: &str| {
        let checked = charter::check::check_text(name, text.to_owned(), today());
        let model = checked.model?;
        Some(charter::diff::Side::Contract {
            source: checked.source,
            model: Box::new(model),
        })
    };
    let (Some(old), Some(new)) = (side("old.yaml", old), side("new.yaml", new)) else {
        return;
    };
    let report = charter::diff::compare(&old, &new);
    for format in [
        charter::diff::render::Format::Text,
        charter::diff::render::Format::Markdown,
        charter::diff::render::Format::Json,
        charter::diff::render::Format::Github,
    ] {
        let _ = charter::diff::render::render(format, &report, &old, &new, false);
    }
}

/// `charter import`: an OpenAPI description, every operation selected; what it writes must check.
pub fn openapi(data: &[u8]) {
    let path = scratch().join(if data.first() == Some(&b'{') {
        "api.json"
    } else {
        "api.yaml"
    });
    if std::fs::write(&path, data).is_err() {
        return;
    }
    // Select every operation the description names (by operationId and by tag), as a team
    // importing all of it would; without a selection the importer stops before reading on.
    let (mut operations, mut tags) = (Vec::new(), Vec::new());
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok((root, _)) = charter::openapi::document::parse(text, data.first() == Some(&b'{'))
        && let Some(paths) = root.get("paths").and_then(serde_json::Value::as_object)
    {
        for operation in paths
            .values()
            .filter_map(serde_json::Value::as_object)
            .flat_map(|item| item.values())
        {
            if let Some(id) = operation.get("operationId").and_then(serde_json::Value::as_str) {
                operations.push(id.to_owned());
            }
            for tag in operation
                .get("tags")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(tag) = tag.as_str() {
                    tags.push(tag.to_owned());
                }
            }
        }
    }
    let request = charter::openapi::Request {
        spec: &path,
        downstream: "api",
        operations: &operations,
        tags: &tags,
        effects: &[],
        all_selected: true,
        name: Some("fuzzed"),
        into: None,
        today: today(),
    };
    if let Ok(imported) = charter::openapi::import(&request) {
        let checked = charter::check::check_text("imported.yaml", imported.contract, today());
        // An import may leave findings for the team to settle; it may not write what does not parse.
        assert!(
            checked.model.is_some() || !checked.diagnostics.iter().any(|d| d.id == "yaml-syntax"),
            "the import wrote a contract that does not parse"
        );
    }
}

/// The HTTP gate's body handling: the peek the gate takes (method, id, name), then the
/// JSON-RPC message rmcp builds from the same bytes.
pub fn http_body(data: &[u8]) {
    let peeked = charter_runtime::server::peek(data);
    // JSON by syntax (RFC 8259 sets no range on numbers; serde_json's `Value` refuses ones beyond
    // f64, which is a limit of the reader, not a syntax error).
    let json = std::str::from_utf8(data)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| e.to_string()));
    // The gate answers -32700 for what is not JSON: what it peeks into, or passes on as "JSON,
    // not one request", must be JSON.
    match &peeked {
        Ok(_) | Err(charter_runtime::server::Unpeekable::NotOneRequest) => {
            assert!(json.is_ok(), "the gate took a body that is not JSON: {peeked:?}")
        }
        // Refused as -32700: not JSON by syntax, or JSON no reader here can take (an unpaired
        // surrogate escape, a number beyond f64 in a field the gate reads), which rmcp could not
        // read either.
        Err(charter_runtime::server::Unpeekable::NotJson(why)) => assert!(
            json.is_err() || serde_json::from_slice::<serde_json::Value>(data).is_err(),
            "the gate refused JSON as not JSON: {why}"
        ),
    }
    // What rmcp builds from the bytes the gate passes on.
    let _ = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(data);
}

/// `audit verify` on a mangled log.
pub fn audit_verify(data: &[u8]) {
    if let Ok(summary) = charter_runtime::audit::verify_from(Cursor::new(data)) {
        assert!(summary.first_seq <= summary.last_seq);
    }
}

/// The runtime's built-in schema subset against `jsonschema`, differentially: for
/// `{"schema": S, "instance": I}` with S inside the subset and compiled by jsonschema too,
/// both must give the same verdict on I.
pub fn schema_subset(data: &[u8]) {
    let Ok(serde_json::Value::Object(input)) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let (Some(schema), Some(instance)) = (input.get("schema"), input.get("instance")) else {
        return;
    };
    let Some(simple) = charter_surface::simple_schema::SimpleSchema::compile(schema) else {
        return;
    };
    let Ok(full) = charter_runtime::validate::jsonschema_validator(schema) else {
        return;
    };
    assert_eq!(
        simple.is_valid(instance),
        full.is_valid(instance),
        "the built-in subset and jsonschema disagree: schema {schema}, instance {instance}"
    );
    // Every violation is reported with a place, and none when valid.
    assert_eq!(simple.violations(instance, 100).is_empty(), simple.is_valid(instance));
}

/// A directory of this process's own for targets that read files.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("charter-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory for the fuzz targets");
        dir
    })
}
