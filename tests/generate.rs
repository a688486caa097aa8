//! `charter generate`: committed examples match the generator, output is
//! deterministic, and regeneration never loses the team's code.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{charter, root, yaml_files};

fn example_dir(spec: &Path) -> PathBuf {
    root().join("generated-examples").join(spec.file_stem().unwrap())
}

#[test]
fn every_example_is_exactly_what_the_generator_produces() {
    let specs = yaml_files("specs");
    assert!(specs.len() >= 4);
    for spec in specs {
        let dir = example_dir(&spec);
        assert!(
            dir.is_dir(),
            "{} has no generated example at {}",
            spec.display(),
            dir.display()
        );
        let out = charter(&[
            "generate",
            spec.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
            "--check",
        ]);
        assert!(
            out.status.success(),
            "{} is stale; run `charter generate {} --out {}`:\n{}{}",
            dir.display(),
            spec.display(),
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn output_is_byte_for_byte_deterministic() {
    let temp = tempfile::tempdir().unwrap();
    let spec = root().join("specs/release-notes.yaml");
    for name in ["a", "b"] {
        let out = charter(&[
            "generate",
            spec.to_str().unwrap(),
            "--out",
            temp.path().join(name).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let listing = |dir: &Path| {
        let mut files = Vec::new();
        walk(dir, dir, &mut files);
        files
    };
    assert_eq!(listing(&temp.path().join("a")), listing(&temp.path().join("b")));
}

fn walk(base: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(base, &path, files);
        } else {
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            files.push((rel, std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
fn a_contract_that_fails_check_generates_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let out_dir = temp.path().join("crate");
    let out = charter(&[
        "generate",
        "specs/invalid/write-without-approval.yaml",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("write-without-approval"), "{stderr}");
    assert!(stderr.contains("nothing was generated"), "{stderr}");
    assert!(!out_dir.exists());
}

/// The issue's regeneration story, end to end with cargo: edit a handler,
/// change the contract (add a tool, change an input type, remove a tool),
/// generate again, build.
#[test]
fn regeneration_keeps_team_code_and_names_what_to_write() {
    let temp = tempfile::tempdir().unwrap();
    let crate_dir = temp.path().join("regen-demo");
    let contract = temp.path().join("regen-demo.yaml");
    let v1 = std::fs::read_to_string(root().join("tests/fixtures/regenerate/v1.yaml")).unwrap();
    std::fs::write(&contract, &v1).unwrap();
    let generate = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            contract.to_str().unwrap(),
            "--out",
            crate_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        charter(&args)
    };

    let first = generate(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));

    // The team writes its handler.
    let handlers = crate_dir.join("src/handlers/mod.rs");
    let scaffold = std::fs::read_to_string(&handlers).unwrap();
    let written = scaffold.replace(
        "Err(ToolError::not_implemented(\"tool `get_order_status`\"))",
        "Err(ToolError::not_found(\"team code: no such order\"))",
    );
    assert_ne!(scaffold, written, "the scaffold has the expected stub");
    std::fs::write(&handlers, &written).unwrap();

    // The contract moves: a new tool, a changed input type, and the old tool removed.
    let v2 = v1.replace("  get_order_status:\n", "  get_order_summary:\n").replace(
        "        order_number:\n          type: string\n          pattern: \"^[A-Z]{2}-[0-9]{6}$\"",
        "        order_number:\n          type: integer\n          minimum: 1",
    );
    assert_ne!(v1, v2);
    std::fs::write(&contract, &v2).unwrap();
    let second = generate(&[]);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&handlers).unwrap(),
        written,
        "the team's handler survived"
    );
    assert!(
        stdout.contains("todo: implement `Handler::get_order_summary` for tool `get_order_summary`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("src/handlers/mod.rs:")
            && stdout.contains("`get_order_status` handles something that is no longer in the contract"),
        "{stdout}"
    );
    let trait_file = std::fs::read_to_string(crate_dir.join("src/generated/handler.rs")).unwrap();
    assert!(trait_file.contains("fn get_order_summary("), "{trait_file}");
    assert!(!trait_file.contains("fn get_order_status("), "{trait_file}");
    let types = std::fs::read_to_string(crate_dir.join("src/generated/types.rs")).unwrap();
    assert!(types.contains("pub order_number: i64,"), "{types}");

    // The compiler names what to write and what to delete.
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let build = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--offline"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", root().join("target/generated-crates"))
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&build.stderr);
    assert!(
        !build.status.success(),
        "the build must fail until the team writes the new handler"
    );
    assert!(errors.contains("get_order_summary"), "{errors}");
    assert!(errors.contains("E0046"), "missing trait item: {errors}");
    assert!(errors.contains("E0407"), "method not in trait: {errors}");

    // A hand edit to a generated file is refused, with the diff, unless forced.
    let types_path = crate_dir.join("src/generated/types.rs");
    std::fs::write(&types_path, format!("{types}\n// a hand edit\n")).unwrap();
    std::fs::write(&contract, v2.replace("version: 0.1.0", "version: 0.2.0")).unwrap();
    let refused = generate(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("src/generated/types.rs was edited by hand"), "{stderr}");
    assert!(stderr.contains("-// a hand edit"), "the diff shows the edit: {stderr}");
    assert!(std::fs::read_to_string(&types_path).unwrap().contains("// a hand edit"));
    let cargo_toml = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains("version = \"0.1.0\""),
        "nothing was written: {cargo_toml}"
    );

    let forced = generate(&["--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert!(!std::fs::read_to_string(&types_path).unwrap().contains("// a hand edit"));
    assert_eq!(
        std::fs::read_to_string(&handlers).unwrap(),
        written,
        "--force never touches handlers"
    );

    // `cargo fmt` on the crate must not turn generated files into hand edits.
    let fmt = Command::new(env!("CARGO"))
        .arg("fmt")
        .current_dir(&crate_dir)
        .output()
        .unwrap();
    assert!(fmt.status.success(), "{}", String::from_utf8_lossy(&fmt.stderr));
    let check = generate(&["--check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

/// The default for users: the runtime vendored beside the server. The crate
/// `charter init` suggests (one tool, stdio, one downstream), generated into an
/// empty directory, is clippy-clean with warnings denied and passes its own
/// tests, which start the server and hold what it lists to charter.lock.json.
#[test]
fn a_vendored_crate_builds_clippy_clean_and_passes_its_own_tests() {
    let temp = tempfile::tempdir().unwrap();
    let contract = temp.path().join("demo.yaml");
    let init = charter(&["init", "--name", "demo"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    std::fs::write(&contract, &init.stdout).unwrap();
    let crate_dir = temp.path().join("demo");
    let generated = charter(&[
        "generate",
        contract.to_str().unwrap(),
        "--out",
        crate_dir.to_str().unwrap(),
    ]);
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    // Everything the runtime needs is in the crate; nothing points back into this repository.
    let cargo_toml = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains(
            r#"charter-runtime = { path = "charter-runtime", default-features = false, features = ["mimalloc", "egress", "patterns"] }"#
        ),
        "{cargo_toml}"
    );
    for file in [
        "charter-runtime/Cargo.toml",
        "charter-runtime/src/lib.rs",
        "charter-runtime/surface/src/lib.rs",
    ] {
        assert!(crate_dir.join(file).is_file(), "{file} is not vendored");
    }
    let manifest = std::fs::read_to_string(crate_dir.join("charter.manifest.json")).unwrap();
    assert!(manifest.contains(r#""runtime": "vendored""#), "{manifest}");

    // The workspace's lock keeps versions fixed and the run offline.
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let cargo = |args: &[&str]| {
        Command::new(env!("CARGO"))
            .args(args)
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", root().join("target/generated-crates"))
            .env_remove("RUSTFLAGS")
            .output()
            .unwrap()
    };
    let clippy = cargo(&["clippy", "--offline", "--all-targets", "--", "-D", "warnings"]);
    assert!(clippy.status.success(), "{}", String::from_utf8_lossy(&clippy.stderr));
    // The team's first `cargo fmt --check` passes: the scaffold is laid out as rustfmt would.
    let fmt = cargo(&["fmt", "--check"]);
    assert!(
        fmt.status.success(),
        "{}{}",
        String::from_utf8_lossy(&fmt.stdout),
        String::from_utf8_lossy(&fmt.stderr)
    );
    let test = cargo(&["test", "--offline"]);
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(test.status.success(), "{output}");
    assert!(output.contains("clients_see_what_the_lock_pins ... ok"), "{output}");
    // The runtime's own tests are charter's, not the team's: only the three contract tests run.
    let passed: usize = output
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(passed, 3, "{output}");
}
