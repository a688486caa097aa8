//! `charter generate`: check -> emit -> plan -> write (or compare, with `--check`).

use std::path::{Path, PathBuf};

use crate::check::{self, Checked, Outcome};
use crate::emit::{self, Options, RuntimeSource};
use crate::model::Model;
use crate::write::{self, Action, Plan};

/// What `charter generate` was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The contract to generate from; it must pass `charter check`.
    pub contract: &'a Path,
    /// The crate's directory (created if missing).
    pub out: &'a Path,
    /// Write nothing; only compare the disk with what would be generated.
    pub check: bool,
    /// Overwrite generated files that were edited by hand.
    pub force: bool,
    /// The date review deadlines are measured against.
    pub today: jiff::civil::Date,
    /// Where the server's runtime comes from; `None` keeps what the crate's
    /// manifest recorded (vendored for a new crate).
    pub runtime: Option<&'a RuntimeSource>,
}

/// How a run of `charter generate` ended, when its input could be read.
#[derive(Debug)]
pub enum Generated {
    /// The contract does not pass `charter check`; nothing was generated.
    NotPassing(Box<Checked>),
    /// `--check`: the disk holds what would be generated.
    UpToDate,
    /// `--check`: the disk differs from what would be generated.
    Stale(Plan),
    /// Generated files were edited by hand; nothing was written.
    Refused(Plan),
    /// The crate was written.
    Written { plan: Plan, handlers: Handlers },
}

impl Generated {
    /// Exit status: 0 written (or up to date), 1 refused (hand edits, stale with
    /// `--check`, a contract that fails `charter check`); 2, unreadable input or a
    /// failed write, is the `Err` of [`generate`].
    pub fn exit_code(&self) -> u8 {
        match self {
            Generated::NotPassing(checked) => checked.outcome.exit_code(),
            Generated::UpToDate | Generated::Written { .. } => 0,
            Generated::Stale(_) | Generated::Refused(_) => 1,
        }
    }
}

/// The team's handler impl against the trait the contract asks for.
#[derive(Debug, Default)]
pub struct Handlers {
    /// Trait methods with no implementation yet: the method and what it handles.
    pub missing: Vec<(String, String)>,
    /// Implemented methods the contract no longer has: method, file and line.
    pub leftover: Vec<(String, String, usize)>,
}

/// Checks the contract, emits the crate and writes it (or, with `check`, compares it).
pub fn generate(request: &Request) -> Result<Generated, String> {
    let checked = check::check_file(request.contract, request.today);
    let model = match (&checked.model, checked.outcome) {
        (Some(model), Outcome::Passed) => model,
        _ => return Ok(Generated::NotPassing(Box::new(checked))),
    };
    let contract_name = request
        .contract
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "contract".into());
    let runtime = match request.runtime {
        Some(runtime) => runtime.clone(),
        None => write::read_manifest(request.out)?
            .and_then(|m| m.runtime)
            .unwrap_or_default(),
    };
    let tree = emit::emit(
        model,
        &Options {
            contract_name: &contract_name,
            runtime: &runtime,
        },
    )?;
    let plan = write::plan(request.out, &tree, &runtime, request.force)?;
    if request.check {
        return Ok(if plan.is_stale() {
            Generated::Stale(plan)
        } else {
            Generated::UpToDate
        });
    }
    if plan.conflicts().next().is_some() {
        return Ok(Generated::Refused(plan));
    }
    write::apply(request.out, &plan)?;
    let handlers = compare_handlers(request.out, model);
    Ok(Generated::Written { plan, handlers })
}

/// The unified diff of every file `--check` found stale.
pub fn stale_diff(plan: &Plan) -> String {
    let mut text = String::new();
    for action in &plan.actions {
        match action {
            Action::Create { path, contents } => text.push_str(&write::unified_diff(path, "", contents)),
            Action::Update { path, old, contents }
            | Action::Conflict {
                path, old, contents, ..
            } => text.push_str(&write::unified_diff(path, old, contents)),
            Action::Remove { path, old } => text.push_str(&write::unified_diff(path, old, "")),
            _ => {}
        }
    }
    text
}

/// Each hand-edited generated file: why it was refused, and what charter would write instead.
pub fn conflicts_text(out: &Path, plan: &Plan) -> String {
    let out = out.display();
    let mut text = String::new();
    for action in plan.conflicts() {
        if let Action::Conflict {
            path,
            old,
            contents,
            reason,
        } = action
        {
            text.push_str(&format!("error: {out}/{path} {reason}; charter would write:\n"));
            text.push_str(&write::unified_diff(path, old, contents));
        }
    }
    text
}

/// What a written run did: counts per action, then removed and orphaned files.
pub fn summary(out: &Path, plan: &Plan) -> String {
    let count = |f: fn(&Action) -> bool| plan.actions.iter().filter(|a| f(a)).count();
    let created = count(|a| matches!(a, Action::Create { .. }));
    let updated = count(|a| matches!(a, Action::Update { .. }));
    let unchanged = count(|a| matches!(a, Action::Unchanged { .. } | Action::KeepScaffold { .. }));
    let removed = count(|a| matches!(a, Action::Remove { .. }));
    let mut text = format!(
        "generated {}: {created} created, {updated} updated, {unchanged} unchanged, {removed} removed\n",
        out.display()
    );
    for action in &plan.actions {
        match action {
            Action::Remove { path, .. } => text.push_str(&format!("  removed {path} (no longer generated)\n")),
            Action::KeepOrphan { path } => text.push_str(&format!(
                "warning: {path} is no longer generated but was edited by hand; kept it: delete it or move it into src/handlers/\n"
            )),
            _ => {}
        }
    }
    text
}

/// What to write for new tools and what is left over from removed ones.
pub fn handlers_text(handlers: &Handlers) -> String {
    let mut text = String::new();
    for (method, what) in &handlers.missing {
        text.push_str(&format!(
            "todo: implement `Handler::{method}` for {what} in src/handlers/ (`cargo build` names it until you do)\n"
        ));
    }
    for (method, file, line) in &handlers.leftover {
        text.push_str(&format!(
            "warning: {file}:{line}: `{method}` handles something that is no longer in the contract; delete it (`cargo build` refuses it)\n"
        ));
    }
    text
}

/// Compares the team's handler impl with the trait.
fn compare_handlers(out: &Path, model: &Model) -> Handlers {
    let expected = emit::rust::handler_methods(model);
    let found = handler_impl_methods(&out.join("src/handlers"));
    let missing = expected
        .iter()
        .filter(|(method, _)| !found.iter().any(|(m, _, _)| m == method))
        .cloned()
        .collect();
    let leftover = found
        .into_iter()
        .filter(|(method, _, _)| !expected.iter().any(|(m, _)| m == method))
        .collect();
    Handlers { missing, leftover }
}

/// Methods of every `impl Handler for ...` under `dir`, with file and line.
pub fn handler_impl_methods(dir: &Path) -> Vec<(String, String, usize)> {
    let mut found = Vec::new();
    let mut files = Vec::new();
    collect_rs(dir, &mut files);
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(parsed) = syn::parse_file(&text) else { continue };
        let shown = file
            .strip_prefix(dir.parent().and_then(Path::parent).unwrap_or(dir))
            .unwrap_or(&file)
            .display()
            .to_string();
        for item in parsed.items {
            let syn::Item::Impl(imp) = item else { continue };
            let is_handler = imp
                .trait_
                .as_ref()
                .and_then(|(_, path, _)| path.segments.last())
                .is_some_and(|s| s.ident == "Handler");
            if !is_handler {
                continue;
            }
            for impl_item in imp.items {
                if let syn::ImplItem::Fn(f) = impl_item {
                    let line = f.sig.ident.span().start().line;
                    found.push((f.sig.ident.to_string(), shown.clone(), line));
                }
            }
        }
    }
    found
}

fn collect_rs(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}
