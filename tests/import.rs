//! `charter import openapi`: the contracts it writes (snapshots), what it refuses and why, `--into`
//! and `--out`, and GitHub's real description (installed by scripts/setup-tools).

mod common;

use std::path::{Path, PathBuf};

use common::{charter, root};

const PETSTORE: &str = "tests/fixtures/openapi/petstore-3.0.yaml";
const INVENTORY: &str = "tests/fixtures/openapi/inventory-3.1.json";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn snapshot(name: &str, value: &str) {
    insta::with_settings!({ snapshot_path => "snapshots/import", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(name, value);
    });
}

/// Checks a contract file with the charter binary; its exit status and report.
fn check(path: &Path) -> (i32, String) {
    let out = charter(&["check", path.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

fn write_temp(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn imports_openapi_3_0_yaml_into_a_contract_that_passes() {
    let out = charter(&[
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--tag",
        "pets",
        "--effect",
        "updatePet=draft",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    snapshot("petstore-3.0", &text(&out.stdout));
    assert!(text(&out.stderr).contains("imported 5 tools"), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "pets.yaml", &out.stdout);
    let (code, report) = check(&path);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn imports_openapi_3_1_json_into_a_contract_that_passes() {
    let out = charter(&[
        "import",
        "openapi",
        INVENTORY,
        "--downstream",
        "inventory",
        "--operation",
        "items.list",
        "--operation",
        "items.replace",
        "--operation",
        "items.count.check",
        "--operation",
        "itemsCountGet",
        "--operation",
        "a-very-long-operation-identifier-that-names-the-move-of-an-item-between-two-locations",
        "--name",
        "stock",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let contract = text(&out.stdout);
    snapshot("inventory-3.1", &contract);
    // The overlong operationId is shortened with a hash; the path/query/body `sku`s get distinct names.
    assert!(contract.contains("  a_very_long_operation_identifier_that_names_the_move_of_56bcdcfc:\n"));
    assert!(contract.contains("query_sku: { in: query, name: sku }"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "stock.yaml", &out.stdout);
    let (code, report) = check(&path);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn output_is_deterministic() {
    let args = ["import", "openapi", PETSTORE, "--downstream", "pets", "--tag", "pets"];
    assert_eq!(charter(&args).stdout, charter(&args).stdout);
}

#[test]
fn descriptions_are_cleaned_and_their_findings_reported() {
    let out = charter(&[
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--operation",
        "listPetNotes",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    snapshot("findings", &stderr);
    let contract = text(&out.stdout);
    assert!(
        !contract.contains('\u{200B}') && !contract.contains("evil.example"),
        "{contract}"
    );
    // The instruction is imported as written, and `charter check` refuses it until someone rewrites it.
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "notes.yaml", &out.stdout);
    let (code, report) = check(&path);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("error[instruction-in-description]"), "{report}");
}

#[test]
fn unsupported_operations_are_refused_with_every_reason() {
    let out = charter(&[
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--tag",
        "uploads",
        "--tag",
        "refused",
        "--operation",
        "getPet",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    snapshot("refused", &text(&out.stderr));
}

#[test]
fn selections_must_be_named_and_small() {
    let none = charter(&["import", "openapi", PETSTORE, "--downstream", "pets"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none.stderr).contains("name the operations to import"));

    let typo = charter(&[
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--operation",
        "listPet",
        "--tag",
        "pet",
    ]);
    assert_eq!(typo.status.code(), Some(2));
    snapshot("unknown-selection", &text(&typo.stderr));

    // 26 operations need --all-selected.
    let mut doc = String::from("openapi: 3.0.3\ninfo: { title: Many, version: '1' }\npaths:\n");
    for i in 0..26 {
        doc.push_str(&format!(
            "  /r{i}:\n    get:\n      operationId: op{i}\n      tags: [all]\n      responses:\n        '200': {{ description: ok }}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = write_temp(&dir, "many.yaml", doc.as_bytes());
    let spec = spec.to_str().unwrap();
    let many = charter(&["import", "openapi", spec, "--downstream", "many", "--tag", "all"]);
    assert_eq!(many.status.code(), Some(2));
    let stderr = text(&many.stderr);
    assert!(
        stderr.contains("26 operations, more than 25") && stderr.contains("--all-selected"),
        "{stderr}"
    );
    let all = charter(&[
        "import",
        "openapi",
        spec,
        "--downstream",
        "many",
        "--tag",
        "all",
        "--all-selected",
    ]);
    assert_eq!(all.status.code(), Some(0), "{}", text(&all.stderr));
}

#[test]
fn effects_are_never_understated() {
    for (args, expect) in [
        (
            vec!["--operation", "getPet", "--effect", "getPet=draft"],
            "already `read`",
        ),
        (
            vec!["--operation", "deletePet", "--effect", "deletePet=read"],
            "only `draft` can be given",
        ),
        (
            vec!["--operation", "deletePet", "--effect", "createPet=draft"],
            "not among the selected",
        ),
    ] {
        let mut all = vec!["import", "openapi", PETSTORE, "--downstream", "pets"];
        all.extend(args);
        let out = charter(&all);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains(expect), "{}", text(&out.stderr));
    }
}

#[test]
fn malformed_documents_get_located_diagnostics() {
    let mut all = String::new();
    for file in ["broken.json", "broken.yaml", "swagger.json"] {
        let path = format!("tests/fixtures/openapi/{file}");
        let out = charter(&["import", "openapi", &path, "--downstream", "x1", "--operation", "a"]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        all.push_str(&text(&out.stderr));
    }
    snapshot("malformed", &all);
}

#[test]
fn into_adds_to_an_existing_contract_keeping_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let init = charter(&["init", "--name", "shop"]);
    let contract = write_temp(&dir, "shop.yaml", &init.stdout);
    let before = text(&init.stdout);
    let c = contract.to_str().unwrap();
    let out = charter(&[
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--operation",
        "getPet",
        "--operation",
        "createPet",
        "--into",
        c,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let after = std::fs::read_to_string(&contract).unwrap();
    // Every line of the original is still there, in order, comments included.
    let mut rest = after.as_str();
    for line in before.lines() {
        let at = rest.find(line).unwrap_or_else(|| panic!("lost line {line:?}\n{after}"));
        rest = &rest[at + line.len()..];
    }
    let diff = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(1)
        .to_string();
    snapshot("into", &diff);
    let (code, report) = check(&contract);
    assert_eq!(code, 0, "{report}");

    // An existing tool is never replaced; nothing is written.
    let again = charter(&[
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--operation",
        "getPet",
        "--into",
        c,
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already has a tool `get_pet`"));
    assert_eq!(std::fs::read_to_string(&contract).unwrap(), after);

    // Identical definitions are shared; a different one of the same name is refused.
    let more = charter(&[
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--operation",
        "listPets",
        "--into",
        c,
    ]);
    assert_eq!(more.status.code(), Some(0), "{}", text(&more.stderr));
    let (code, report) = check(&contract);
    assert_eq!(code, 0, "{report}");
    let edited = std::fs::read_to_string(&contract).unwrap().replace(
        "enum: [available, pending, sold, null]",
        "enum: [available, sold, null]",
    );
    std::fs::write(&contract, &edited).unwrap();
    let clash = charter(&[
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--operation",
        "deletePet",
        "--operation",
        "updatePet",
        "--into",
        c,
    ]);
    assert_eq!(clash.status.code(), Some(2));
    assert!(
        text(&clash.stderr).contains("already defines `$defs.Status`"),
        "{}",
        text(&clash.stderr)
    );
    assert_eq!(std::fs::read_to_string(&contract).unwrap(), edited);
}

#[test]
fn out_writes_a_new_file_and_never_replaces_one() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pets.yaml");
    let t = target.to_str().unwrap();
    let args = [
        "import",
        "openapi",
        PETSTORE,
        "--downstream",
        "pets",
        "--operation",
        "getPet",
        "--out",
        t,
    ];
    let first = charter(&args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(written.contains("get_pet:"));
    let second = charter(&args);
    assert_eq!(second.status.code(), Some(2));
    assert!(text(&second.stderr).contains("never replaces a file"));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), written);
}

/// The twenty GitHub operations the release-notes example is built from.
pub const GITHUB_OPERATIONS: &[&str] = &[
    "repos/get",
    "repos/list-releases",
    "repos/get-release",
    "repos/get-release-by-tag",
    "repos/get-latest-release",
    "repos/list-tags",
    "repos/compare-commits",
    "pulls/list",
    "pulls/get",
    "pulls/list-commits",
    "pulls/list-files",
    "pulls/list-reviews",
    "issues/list-labels-for-repo",
    "issues/get",
    "repos/list-commits",
    "repos/get-commit",
    "repos/generate-release-notes",
    "repos/list-branches",
    "repos/get-branch",
    "repos/create-release",
];

const GITHUB: &str = ".tools/octokit-openapi/node_modules/@octokit/openapi/generated/api.github.com.json";

#[test]
fn imports_twenty_operations_from_githubs_description() {
    let spec = root().join(GITHUB);
    assert!(
        spec.is_file(),
        "{} is missing: run scripts/setup-tools, which installs @octokit/openapi into .tools/",
        spec.display()
    );
    let mut args = vec![
        "import",
        "openapi",
        GITHUB,
        "--downstream",
        "github",
        "--name",
        "release-notes",
    ];
    for op in GITHUB_OPERATIONS {
        args.extend(["--operation", op]);
    }
    args.extend(["--effect", "repos/generate-release-notes=draft"]);
    let out = charter(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let contract = text(&out.stdout);
    assert_eq!(contract.matches("  # operationId `").count(), 20);
    assert!(contract.contains("  # operationId `pulls/list`: GET /repos/{owner}/{repo}/pulls\n  pulls_list:\n"));
    assert!(contract.contains("    effect: write\n"), "create-release is a write");
    assert!(contract.contains("    approval: { mode: user }\n"));

    // GitHub's texts hold two "you must ..." sentences (access notes that read like orders to the
    // model) and `repos/list-commits` takes any `path`: the import reports the first, and
    // `charter check` refuses all three until a reviewer decides. Everything else passes.
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("warning[instruction-in-description]").count(),
        2,
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "release-notes.yaml", contract.as_bytes());
    let (code, report) = check(&path);
    assert_eq!(code, 1, "{report}");
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("error[")).collect();
    assert_eq!(errors.len(), 3, "{report}");
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.starts_with("error[instruction-in-description]"))
            .count(),
        2
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("error[unbounded-discovery]: tool `repos_list_commits` takes any `path`"))
    );

    // The reviewer's edits: the access notes rewritten, `path` constrained. Then it passes.
    let must = regex::Regex::new(r"(?i)\byou(\s+)must(\s+)have\b").unwrap();
    let reviewed = must.replace_all(&contract, "callers${1}need${2}").into_owned();
    let reviewed = pin_path(&reviewed);
    let path = write_temp(&dir, "reviewed.yaml", reviewed.as_bytes());
    let (code, report) = check(&path);
    assert_eq!(code, 0, "{report}");
}

/// Adds a `pattern` to `repos_list_commits`'s `path` input, as a reviewer would.
fn pin_path(contract: &str) -> String {
    let tool = contract.find("  repos_list_commits:\n").expect("the tool");
    let at = tool + contract[tool..].find("        path:\n").expect("its path input") + "        path:\n".len();
    format!(
        "{}          pattern: \"^[A-Za-z0-9._/-]{{1,200}}$\"\n{}",
        &contract[..at],
        &contract[at..]
    )
}

/// The operations `specs/github-releases.yaml` imports, in its command line's order.
const GITHUB_RELEASES_OPERATIONS: &[&str] = &[
    "repos/list-releases",
    "repos/get-release",
    "repos/get-release-by-tag",
    "repos/get-latest-release",
    "repos/list-tags",
    "repos/compare-commits",
    "pulls/list",
    "pulls/get",
    "pulls/list-commits",
    "pulls/list-files",
    "pulls/list-reviews",
    "issues/list-labels-for-repo",
    "issues/get",
    "issues/list-milestones",
    "repos/list-contributors",
    "repos/list-languages",
    "repos/generate-release-notes",
    "repos/list-branches",
    "repos/get-branch",
    "repos/create-release",
];

/// `specs/github-releases.yaml` is exactly its hand-written part
/// (tests/fixtures/github-releases.base.yaml) with this import added `--into` it: re-running the
/// import must reproduce the committed contract byte for byte.
#[test]
fn the_committed_github_releases_contract_is_what_its_import_writes() {
    let spec = root().join(GITHUB);
    assert!(
        spec.is_file(),
        "{} is missing: run scripts/setup-tools, which installs @octokit/openapi into .tools/",
        spec.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read(root().join("tests/fixtures/github-releases.base.yaml")).unwrap();
    let into = write_temp(&dir, "github-releases.yaml", &base);
    let mut args = vec!["import", "openapi", GITHUB, "--downstream", "github"];
    args.extend(["--effect", "repos/generate-release-notes=draft"]);
    for op in GITHUB_RELEASES_OPERATIONS {
        args.extend(["--operation", op]);
    }
    args.extend(["--into", into.to_str().unwrap()]);
    let out = charter(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let imported = std::fs::read_to_string(&into).unwrap();
    let committed = std::fs::read_to_string(root().join("specs/github-releases.yaml")).unwrap();
    assert!(
        imported == committed,
        "specs/github-releases.yaml differs from what its import writes now; re-run:\n  cp tests/fixtures/github-releases.base.yaml specs/github-releases.yaml && charter {} \
         (with --into specs/github-releases.yaml)",
        args[..args.len() - 2].join(" ")
    );
}
