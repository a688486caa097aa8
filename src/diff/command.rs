//! The `charter diff` and `charter lock` commands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::git::{LoadError, load};
use super::lock::Lock;
use super::render::{self, Format};
use super::{FailOn, Side, compare};
use crate::cli::emit;

/// Colour in text output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The old contract, a `charter.lock.json`, or `REV:path` read with `git show` (e.g. `origin/main:specs/x.yaml`).
    pub old: String,
    /// The new contract (or lock, or `REV:path`).
    pub new: String,
    /// Output format: text, markdown (a pull-request comment), json, or github (workflow annotations).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit with status 1 on changes of this class or worse. A version bump that is too small always fails.
    #[arg(long, value_enum, default_value_t = FailOn::None)]
    pub fail_on: FailOn,
    /// Colour in text output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The contract.
    pub contract: String,
    /// Write the lock to this file (atomically) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn use_color(choice: Color, terminal: bool) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Loads a side, or prints why not (the same diagnostics as `charter check`) and gives exit status 2.
fn load_or_report(arg: &str, color: Color) -> Result<Side, ExitCode> {
    match load(arg, crate::lint::today()) {
        Ok(side) => Ok(side),
        Err(LoadError::Unreadable(message)) => {
            eprintln!("error: {message}");
            Err(ExitCode::from(2))
        }
        Err(LoadError::Invalid(checked)) => {
            let color = use_color(color, std::io::stderr().is_terminal());
            eprint!("{}", crate::report::text(std::slice::from_ref(&*checked), color));
            Err(ExitCode::from(2))
        }
    }
}

/// `charter diff OLD NEW`: 0 when nothing fails, 1 when `--fail-on` is met or the bump is too small, 2 on bad input.
pub fn diff(args: &DiffArgs) -> ExitCode {
    let old = load_or_report(&args.old, args.color);
    let new = load_or_report(&args.new, args.color);
    let (old, new) = match (old, new) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let report = compare(&old, &new);
    let text = match args.format {
        Format::Text => render::text(
            &report,
            &old,
            &new,
            use_color(args.color, std::io::stdout().is_terminal()),
        ),
        Format::Markdown => render::markdown(&report, &old, &new),
        Format::Json => render::json(&report, &old, &new),
        Format::Github => render::github(&report, &old, &new),
    };
    let code = emit(&text);
    if code != ExitCode::SUCCESS {
        return code;
    }
    ExitCode::from(if report.fails(args.fail_on) { 1 } else { 0 })
}

/// `charter lock CONTRACT [--out FILE]`.
pub fn lock(args: &LockArgs) -> ExitCode {
    let side = match load_or_report(&args.contract, Color::Auto) {
        Ok(side) => side,
        Err(code) => return code,
    };
    let Side::Contract { model, .. } = side else {
        eprintln!("error: {} is already a lock; give the contract", args.contract);
        return ExitCode::from(2);
    };
    let text = Lock::from_model(&model).to_json_pretty();
    let Some(out) = &args.out else {
        return emit(&text);
    };
    match write_lock(out, &text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Writes atomically (a temporary file in the same directory, then a rename),
/// refusing to replace a file that is not a charter lock.
pub fn write_lock(path: &Path, text: &str) -> Result<(), String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let is_lock = serde_json::from_str::<serde_json::Value>(&existing).is_ok_and(|v| super::lock::is_lock(&v));
        if !is_lock {
            return Err(format!(
                "{} exists and is not a charter lock; refusing to overwrite it",
                path.display()
            ));
        }
        if existing == text {
            return Ok(());
        }
    } else if path.exists() {
        return Err(format!("{} exists and cannot be read", path.display()));
    }
    crate::write::write_atomically(path, text)
}
