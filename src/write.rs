//! Stage 4, WRITE: put a FileTree on disk without losing anyone's work.
//!
//! Ownership decides what may be written. Generated files are rewritten only
//! when the disk still holds what charter wrote last time (the manifest
//! records each file's hash); a hand edit is refused unless forced. Scaffolded
//! files are written once, when missing. Files charter no longer generates are
//! removed only if unmodified. Every check runs before the first write, new
//! contents are staged next to their targets and renamed into place, and the
//! manifest is written last, so a failed run leaves the previous crate intact.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::atomic::stage;
use crate::digest::sha256_hex;
use crate::emit::{FileTree, Ownership, RuntimeSource};

/// The manifest's path in the crate.
pub const MANIFEST: &str = "charter.manifest.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `"charter"`: marks the directory as charter's output.
    pub generator: String,
    /// Where the server's runtime comes from; the next run keeps it unless told otherwise.
    /// Absent in manifests older than the runtime crate (they carried it in `src/runtime/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeSource>,
    /// Each generated file (not scaffolds) with the SHA-256 of what was written.
    pub files: BTreeMap<String, String>,
}

/// What one run does to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        path: String,
        contents: String,
    },
    Update {
        path: String,
        old: String,
        contents: String,
    },
    Unchanged {
        path: String,
    },
    /// A scaffold already there: the team's file.
    KeepScaffold {
        path: String,
    },
    /// Generated before, not any more, unmodified: deleted.
    Remove {
        path: String,
        old: String,
    },
    /// Generated before, not any more, but edited by hand: left alone.
    KeepOrphan {
        path: String,
    },
    /// A generated file whose disk contents are not what charter wrote.
    Conflict {
        path: String,
        old: String,
        contents: String,
        reason: String,
    },
}

#[derive(Debug, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    manifest: Manifest,
}

impl Plan {
    pub fn conflicts(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| matches!(a, Action::Conflict { .. }))
    }

    /// Whether the disk differs from the generated output (for `--check`).
    pub fn is_stale(&self) -> bool {
        self.actions.iter().any(|a| {
            matches!(
                a,
                Action::Create { .. } | Action::Update { .. } | Action::Remove { .. } | Action::Conflict { .. }
            )
        })
    }
}

/// Reads the manifest of a previous run, if any.
pub fn read_manifest(out: &Path) -> Result<Option<Manifest>, String> {
    let path = out.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            format!(
                "{} is not a charter manifest ({e}); restore it from version control",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn read_existing(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Decides every action without writing anything. `force` turns conflicts into updates.
pub fn plan(out: &Path, tree: &FileTree, runtime: &RuntimeSource, force: bool) -> Result<Plan, String> {
    let previous = read_manifest(out)?;
    let known = previous.as_ref().map(|m| &m.files);
    let mut actions = Vec::new();
    let mut manifest = Manifest {
        generator: "charter".into(),
        runtime: Some(runtime.clone()),
        files: BTreeMap::new(),
    };
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    for (path, file) in tree {
        let target = out.join(path);
        let existing = read_existing(&target)?;
        if file.ownership == Ownership::Scaffold {
            actions.push(match existing {
                Some(_) => Action::KeepScaffold { path: path.clone() },
                None => Action::Create {
                    path: path.clone(),
                    contents: in_team_style(path, &file.contents, out, &rustfmt),
                },
            });
            continue;
        }
        manifest
            .files
            .insert(path.clone(), sha256_hex(file.contents.as_bytes()));
        let Some(old) = existing else {
            actions.push(Action::Create {
                path: path.clone(),
                contents: file.contents.clone(),
            });
            continue;
        };
        if old == file.contents {
            actions.push(Action::Unchanged { path: path.clone() });
            continue;
        }
        let recorded = known.and_then(|files| files.get(path));
        let ours = recorded.is_some_and(|hash| *hash == sha256_hex(old.as_bytes()));
        if ours || force {
            actions.push(Action::Update {
                path: path.clone(),
                old,
                contents: file.contents.clone(),
            });
        } else {
            let reason = match recorded {
                Some(_) => "was edited by hand since charter wrote it".to_string(),
                None => "exists but was not written by charter".to_string(),
            };
            actions.push(Action::Conflict {
                path: path.clone(),
                old,
                contents: file.contents.clone(),
                reason,
            });
        }
    }
    let generated: BTreeSet<&String> = tree.keys().collect();
    for (path, hash) in known.into_iter().flatten() {
        if generated.contains(path) || !is_safe_relative(path) {
            continue;
        }
        match read_existing(&out.join(path))? {
            Some(old) if sha256_hex(old.as_bytes()) == *hash => actions.push(Action::Remove {
                path: path.clone(),
                old,
            }),
            Some(_) => actions.push(Action::KeepOrphan { path: path.clone() }),
            None => {}
        }
    }
    Ok(Plan { actions, manifest })
}

/// A new scaffold in the team's own style. The team owns it from now on and
/// formats it with `cargo fmt`, whose layout differs from prettyplease's (import
/// order, where lines break), so `rustfmt` formats it first, run where the crate
/// goes so it reads the team's `rustfmt.toml`: their first `cargo fmt --check`
/// passes. Generated files are not formatted this way: their bytes must not
/// depend on the tools installed. Without a working `rustfmt` (or `$RUSTFMT`)
/// the scaffold is written as emitted; it compiles the same.
fn in_team_style(path: &str, contents: &str, out: &Path, rustfmt: &OsString) -> String {
    if !path.ends_with(".rs") {
        return contents.to_owned();
    }
    let dir = out.ancestors().find(|dir| dir.is_dir()).unwrap_or(Path::new("."));
    let run = || -> std::io::Result<Option<String>> {
        let mut child = Command::new(rustfmt)
            .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        // rustfmt reads all of its input before it writes, so this cannot block on a full pipe.
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(contents.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8(output.stdout).ok())
            .flatten()
            .filter(|formatted| !formatted.trim().is_empty()))
    };
    run().ok().flatten().unwrap_or_else(|| contents.to_owned())
}

/// A manifest path that stays inside the crate (a tampered manifest must not
/// make charter delete files elsewhere).
fn is_safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.is_relative() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Carries out a plan with no conflicts: stage, rename, remove, then the manifest.
pub fn apply(out: &Path, plan: &Plan) -> Result<(), String> {
    if let Some(Action::Conflict { path, .. }) = plan.conflicts().next() {
        return Err(format!("refusing to write: {path} is in conflict"));
    }
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let cleanup = |staged: &[(PathBuf, PathBuf)]| {
        for (temp, _) in staged {
            let _ = std::fs::remove_file(temp);
        }
    };
    for action in &plan.actions {
        let (path, contents) = match action {
            Action::Create { path, contents } | Action::Update { path, contents, .. } => (path, contents),
            _ => continue,
        };
        let target = out.join(path);
        match stage(&target, contents) {
            Ok(temp) => staged.push((temp, target)),
            Err(e) => {
                cleanup(&staged);
                return Err(e);
            }
        }
    }
    let manifest_text = format!(
        "{}\n",
        serde_json::to_string_pretty(&plan.manifest).expect("the manifest always serializes")
    );
    let manifest_target = out.join(MANIFEST);
    let manifest_temp = match stage(&manifest_target, &manifest_text) {
        Ok(temp) => temp,
        Err(e) => {
            cleanup(&staged);
            return Err(e);
        }
    };
    for (temp, target) in &staged {
        std::fs::rename(temp, target).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    for action in &plan.actions {
        if let Action::Remove { path, .. } = action {
            let target = out.join(path);
            std::fs::remove_file(&target).map_err(|e| format!("cannot remove {}: {e}", target.display()))?;
            remove_empty_parents(out, &target);
        }
    }
    std::fs::rename(&manifest_temp, &manifest_target)
        .map_err(|e| format!("cannot write {}: {e}", manifest_target.display()))?;
    Ok(())
}

fn remove_empty_parents(out: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == out || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// A unified diff of `old` and `new`, as `--check` and conflicts show it.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::File;

    fn tree(files: &[(&str, &str, Ownership)]) -> FileTree {
        files
            .iter()
            .map(|(p, c, o)| {
                (
                    p.to_string(),
                    File {
                        contents: c.to_string(),
                        ownership: *o,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_new_scaffold_is_written_as_rustfmt_lays_it_out_or_as_emitted() {
        let dir = tempfile::tempdir().unwrap();
        let emitted =
            "use charter_runtime::codegen::Config;\nuse crate::generated::handler::Handler;\nfn f() { let _ = 1; }\n";
        let rustfmt = OsString::from("rustfmt");
        assert_eq!(
            in_team_style("src/handlers/mod.rs", emitted, dir.path(), &rustfmt),
            "use crate::generated::handler::Handler;\nuse charter_runtime::codegen::Config;\nfn f() {\n    let _ = 1;\n}\n"
        );
        // The crate's directory need not exist yet: rustfmt runs in its nearest parent.
        let formatted = in_team_style("src/handlers/mod.rs", emitted, &dir.path().join("new/crate"), &rustfmt);
        assert!(formatted.starts_with("use crate::"), "{formatted}");
        // Not Rust, or no rustfmt, or input rustfmt refuses: as emitted.
        assert_eq!(in_team_style("data/seed.sql", emitted, dir.path(), &rustfmt), emitted);
        let missing = OsString::from("/nonexistent/rustfmt");
        assert_eq!(
            in_team_style("src/handlers/mod.rs", emitted, dir.path(), &missing),
            emitted
        );
        assert_eq!(
            in_team_style("src/handlers/mod.rs", "fn (", dir.path(), &rustfmt),
            "fn ("
        );
    }

    #[test]
    fn regeneration_keeps_hand_work() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let first = tree(&[
            ("src/a.rs", "a1", Ownership::Generated),
            ("src/old.rs", "old", Ownership::Generated),
            ("src/handlers/mod.rs", "scaffold", Ownership::Scaffold),
        ]);
        apply(out, &plan(out, &first, &RuntimeSource::Vendored, false).unwrap()).unwrap();
        std::fs::write(out.join("src/handlers/mod.rs"), "team code").unwrap();

        let second = tree(&[
            ("src/a.rs", "a2", Ownership::Generated),
            ("src/handlers/mod.rs", "scaffold v2", Ownership::Scaffold),
        ]);
        let p = plan(out, &second, &RuntimeSource::Vendored, false).unwrap();
        assert!(p.conflicts().next().is_none());
        apply(out, &p).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("src/a.rs")).unwrap(), "a2");
        assert_eq!(
            std::fs::read_to_string(out.join("src/handlers/mod.rs")).unwrap(),
            "team code"
        );
        assert!(!out.join("src/old.rs").exists());

        std::fs::write(out.join("src/a.rs"), "hand edit").unwrap();
        let third = tree(&[("src/a.rs", "a3", Ownership::Generated)]);
        let p = plan(out, &third, &RuntimeSource::Vendored, false).unwrap();
        assert_eq!(p.conflicts().count(), 1);
        assert!(apply(out, &p).is_err());
        assert_eq!(std::fs::read_to_string(out.join("src/a.rs")).unwrap(), "hand edit");
        apply(out, &plan(out, &third, &RuntimeSource::Vendored, true).unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("src/a.rs")).unwrap(), "a3");
    }

    #[test]
    fn foreign_files_and_edited_orphans_survive() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::write(out.join("README.md"), "mine").unwrap();
        let t = tree(&[("README.md", "generated", Ownership::Generated)]);
        let p = plan(out, &t, &RuntimeSource::Vendored, false).unwrap();
        assert!(matches!(&p.actions[0], Action::Conflict { reason, .. } if reason.contains("not written by charter")));

        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        apply(
            out,
            &plan(
                out,
                &tree(&[("x.rs", "x", Ownership::Generated)]),
                &RuntimeSource::Vendored,
                false,
            )
            .unwrap(),
        )
        .unwrap();
        std::fs::write(out.join("x.rs"), "edited").unwrap();
        let p = plan(out, &tree(&[]), &RuntimeSource::Vendored, false).unwrap();
        assert_eq!(p.actions, [Action::KeepOrphan { path: "x.rs".into() }]);
    }

    #[test]
    fn a_tampered_manifest_cannot_reach_outside() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("crate");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(dir.path().join("victim"), "v").unwrap();
        let manifest = format!(
            r#"{{"generator":"charter","files":{{"../victim":"{}","/etc/passwd":"x"}}}}"#,
            sha256_hex(b"v")
        );
        std::fs::write(out.join(MANIFEST), manifest).unwrap();
        let p = plan(&out, &tree(&[]), &RuntimeSource::Vendored, false).unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
    }
}
