//! `charter generate`: check -> emit -> plan -> write (or compare, with `--check`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::check::{self, Outcome};
use crate::emit::{self, Options, RuntimeSource};
use crate::model::Model;
use crate::write::{self, Action};

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The contract to generate from; it must pass `charter check`.
    pub contract: PathBuf,
    /// The crate's directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write nothing; exit 1 with a diff when the files on disk differ from what would be generated.
    #[arg(long, conflicts_with = "force")]
    pub check: bool,
    /// Overwrite generated files that were edited by hand.
    #[arg(long)]
    pub force: bool,
    /// Where the server's runtime comes from: `vendored` (copied into `charter-runtime/` beside
    /// the server; the default) or `path:DIR` (a path dependency, relative to the crate).
    /// Recorded in charter.manifest.json; later runs keep it unless this is given.
    #[arg(long, value_name = "SOURCE")]
    pub runtime: Option<String>,
}

/// Exit status: 0 written (or up to date), 1 refused (hand edits, stale with
/// `--check`, a contract that fails `charter check`), 2 unreadable input or a failed write.
pub fn run(args: &GenerateArgs) -> ExitCode {
    match generate(args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn generate(args: &GenerateArgs) -> Result<u8, String> {
    let checked = check::check_file(&args.contract, crate::lint::today());
    let model = match (&checked.model, checked.outcome) {
        (Some(model), Outcome::Passed) => model,
        (_, outcome) => {
            let text = crate::report::text(std::slice::from_ref(&checked), false);
            eprint!("{text}");
            eprintln!(
                "error: {} does not pass `charter check`; nothing was generated",
                args.contract.display()
            );
            return Ok(outcome.exit_code());
        }
    };
    let contract_name = args
        .contract
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "contract".into());
    let runtime = match &args.runtime {
        Some(text) => RuntimeSource::parse(text)?,
        None => write::read_manifest(&args.out)?
            .and_then(|m| m.runtime)
            .unwrap_or_default(),
    };
    if let RuntimeSource::Path(dir) = &runtime
        && !args.out.join(dir).join("Cargo.toml").is_file()
    {
        eprintln!(
            "warning: {} has no Cargo.toml: the server's path dependency on charter-runtime will not build there",
            args.out.join(dir).display()
        );
    }
    let tree = emit::emit(
        model,
        &Options {
            contract_name: &contract_name,
            runtime: &runtime,
        },
    )?;
    let plan = write::plan(&args.out, &tree, &runtime, args.force)?;
    let out = args.out.display();

    if args.check {
        if !plan.is_stale() {
            println!("{out} is up to date with {}", args.contract.display());
            return Ok(0);
        }
        for action in &plan.actions {
            match action {
                Action::Create { path, contents } => print!("{}", write::unified_diff(path, "", contents)),
                Action::Update { path, old, contents }
                | Action::Conflict {
                    path, old, contents, ..
                } => {
                    print!("{}", write::unified_diff(path, old, contents))
                }
                Action::Remove { path, old } => print!("{}", write::unified_diff(path, old, "")),
                _ => {}
            }
        }
        eprintln!(
            "error: {out} is not what `charter generate {}` produces; run it and commit the result",
            args.contract.display()
        );
        return Ok(1);
    }

    let conflicts: Vec<&Action> = plan.conflicts().collect();
    if !conflicts.is_empty() {
        for action in &conflicts {
            if let Action::Conflict {
                path,
                old,
                contents,
                reason,
            } = action
            {
                eprintln!("error: {out}/{path} {reason}; charter would write:");
                eprint!("{}", write::unified_diff(path, old, contents));
            }
        }
        eprintln!(
            "help: move hand-written code into src/handlers/ (charter never touches it), \
             or run again with --force to overwrite; nothing was written"
        );
        return Ok(1);
    }
    write::apply(&args.out, &plan)?;
    summarize(&args.out, &plan);
    report_handlers(&args.out, model);
    Ok(0)
}

fn summarize(out: &Path, plan: &write::Plan) {
    let count = |f: fn(&Action) -> bool| plan.actions.iter().filter(|a| f(a)).count();
    let created = count(|a| matches!(a, Action::Create { .. }));
    let updated = count(|a| matches!(a, Action::Update { .. }));
    let unchanged = count(|a| matches!(a, Action::Unchanged { .. } | Action::KeepScaffold { .. }));
    let removed = count(|a| matches!(a, Action::Remove { .. }));
    println!(
        "generated {}: {created} created, {updated} updated, {unchanged} unchanged, {removed} removed",
        out.display()
    );
    for action in &plan.actions {
        match action {
            Action::Remove { path, .. } => println!("  removed {path} (no longer generated)"),
            Action::KeepOrphan { path } => println!(
                "warning: {path} is no longer generated but was edited by hand; kept it: delete it or move it into src/handlers/"
            ),
            _ => {}
        }
    }
}

/// Compares the team's handler impl with the trait: names what to write for
/// new tools and what is left over from removed ones.
fn report_handlers(out: &Path, model: &Model) {
    let expected = emit::rust::handler_methods(model);
    let found = handler_impl_methods(&out.join("src/handlers"));
    for (method, what) in &expected {
        if !found.iter().any(|(m, _, _)| m == method) {
            println!(
                "todo: implement `Handler::{method}` for {what} in src/handlers/ (`cargo build` names it until you do)"
            );
        }
    }
    for (method, file, line) in &found {
        if !expected.iter().any(|(m, _)| m == method) {
            println!(
                "warning: {file}:{line}: `{method}` handles something that is no longer in the contract; delete it (`cargo build` refuses it)"
            );
        }
    }
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
