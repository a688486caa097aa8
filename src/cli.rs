//! The command line: a thin layer over the library. It owns the arguments,
//! the environment (`CHARTER_TODAY`, `NO_COLOR`) and every write to stdout and
//! stderr; the library returns values and renders text.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};

use crate::check::{self, Outcome};
use crate::diff::git::{LoadError, load};
use crate::diff::render::{self, Format as DiffFormat};
use crate::diff::{FailOn, Side};
use crate::emit::RuntimeSource;
use crate::generate::{self, Generated};
use crate::lint::{CHECKS, RULES};
use crate::lock::{self, Lock};
use crate::model::names::is_server_name;
use crate::{contract, init, openapi, report};

#[derive(Parser)]
#[command(
    name = "charter",
    version,
    about = "Check MCP server contracts against production rules and generate governed Rust servers from them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check contracts against the contract language and the production rules.
    ///
    /// Exit status: 0 when every contract passes (warnings allowed), 1 when a
    /// production rule fails, 2 when a contract cannot be read or is invalid.
    Check {
        /// Contract files.
        #[arg(required = true)]
        contracts: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Print the validated model (the generator's input) as JSON instead of the report.
        #[arg(long)]
        explain_model: bool,
        /// Colour in text output.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Explain a production rule or check by id; without an id, list them all.
    Explain {
        /// A rule id, e.g. `write-without-approval`.
        id: Option<String>,
    },
    /// Print the JSON Schema of the contract language, for editors.
    Schema,
    /// Print a commented starter contract that passes `charter check`.
    Init {
        /// The server's name: lowercase letters, digits and dashes.
        #[arg(long, default_value = "my-server")]
        name: String,
    },
    /// Generate (or regenerate) the Rust MCP server crate for a contract.
    ///
    /// Generated files are rewritten; a generated file edited by hand is refused unless
    /// `--force`; `src/handlers/` is written once and never touched again. Exit status: 0 written
    /// or up to date, 1 refused or stale (`--check`), 2 unreadable input or a failed write.
    Generate(GenerateArgs),
    /// Compare two versions of a contract: what changed, whether it needs re-review, and the version bump it needs.
    ///
    /// Each side is a contract, a `charter.lock.json`, or `REV:path` read from git. Exit status: 0
    /// when nothing fails, 1 when a change meets `--fail-on` or the version bump is too small, 2 when
    /// a side cannot be read or is not a valid contract.
    Diff(DiffArgs),
    /// Print (or write with `--out`) the tool-surface lock of a contract: a SHA-256 of each tool,
    /// resource and prompt definition as clients see it.
    Lock(LockArgs),
    /// Import operations from another description into a contract.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Named operations of an OpenAPI 3.0 or 3.1 description (JSON or YAML) as tools bound to them.
    ///
    /// Without --into, prints (or writes with --out) a complete starter contract; with --into,
    /// adds the downstream, definitions and tools to an existing contract, keeping its comments.
    /// GET and HEAD operations become `read` tools; every other method becomes `write` with
    /// approval unless named with `--effect ID=draft`. Exit status: 0 imported, 2 refused (an
    /// unknown or unsupported operation, a malformed description, or a wrong command line).
    Openapi(ImportOpenapiArgs),
}

#[derive(Debug, clap::Args)]
struct ImportOpenapiArgs {
    /// The OpenAPI description, a local JSON or YAML file.
    spec: PathBuf,
    /// The name of the downstream the tools call, e.g. `github`.
    #[arg(long, value_name = "NAME")]
    downstream: String,
    /// An operation to import, by operationId; repeat for each.
    #[arg(long = "operation", value_name = "ID")]
    operations: Vec<String>,
    /// Import every operation with this tag; repeat for each.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Make a selected state-changing operation a `draft` instead of a `write`.
    #[arg(long = "effect", value_name = "ID=draft")]
    effects: Vec<String>,
    /// Allow a selection of more than 25 operations.
    #[arg(long)]
    all_selected: bool,
    /// The server's name in a new contract (default: the downstream's name).
    #[arg(long, value_name = "SERVER", conflicts_with = "into")]
    name: Option<String>,
    /// Write the new contract to this file (atomically; an existing file is never replaced).
    #[arg(long, value_name = "FILE", conflicts_with = "into")]
    out: Option<PathBuf>,
    /// Add the import to this existing contract, in place (atomically).
    #[arg(long, value_name = "CONTRACT")]
    into: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// The contract to generate from; it must pass `charter check`.
    contract: PathBuf,
    /// The crate's directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write nothing; exit 1 with a diff when the files on disk differ from what would be generated.
    #[arg(long, conflicts_with = "force")]
    check: bool,
    /// Overwrite generated files that were edited by hand.
    #[arg(long)]
    force: bool,
    /// Where the server's runtime comes from: `vendored` (copied into `charter-runtime/` beside
    /// the server; the default) or `path:DIR` (a path dependency, relative to the crate).
    /// Recorded in charter.manifest.json; later runs keep it unless this is given.
    #[arg(long, value_name = "SOURCE", value_parser = RuntimeSource::parse)]
    runtime: Option<RuntimeSource>,
}

#[derive(Debug, clap::Args)]
struct DiffArgs {
    /// The old contract, a `charter.lock.json`, or `REV:path` read with `git show` (e.g. `origin/main:specs/x.yaml`).
    old: String,
    /// The new contract (or lock, or `REV:path`).
    new: String,
    /// Output format: text, markdown (a pull-request comment), json, or github (workflow annotations).
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    format: DiffFormat,
    /// Exit with status 1 on changes of this class or worse. A version bump that is too small always fails.
    #[arg(long, value_enum, default_value_t = FailOn::None)]
    fail_on: FailOn,
    /// Colour in text output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Debug, clap::Args)]
struct LockArgs {
    /// The contract.
    contract: String,
    /// Write the lock to this file (atomically) instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// Runs the command line and returns the exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Explain { id } => explain_command(id.as_deref()),
        Command::Schema => {
            let schema =
                serde_json::to_string_pretty(contract::structure::contract_schema()).expect("schema serializes");
            emit(&format!("{schema}\n"))
        }
        Command::Check {
            contracts,
            format,
            explain_model,
            color,
        } => with_today(|today| check_command(&contracts, format, explain_model, color, today)),
        Command::Init { name } => with_today(|today| init_command(&name, today)),
        Command::Generate(args) => with_today(|today| generate_command(&args, today)),
        Command::Diff(args) => with_today(|today| diff_command(&args, today)),
        Command::Lock(args) => with_today(|today| lock_command(&args, today)),
        Command::Import(ImportCommand::Openapi(args)) => with_today(|today| import_command(&args, today)),
    }
}

/// Runs a command that checks review dates, or exits 2 when `CHARTER_TODAY` is malformed.
fn with_today(command: impl FnOnce(jiff::civil::Date) -> ExitCode) -> ExitCode {
    match today() {
        Ok(today) => command(today),
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// Today's date in UTC, or `CHARTER_TODAY` for reproducible runs. Read only by
/// the commands that check review dates, so a bad value cannot break `charter schema`.
fn today() -> Result<jiff::civil::Date, String> {
    const HELP: &str =
        "help: set it to a date like `CHARTER_TODAY=2026-11-23` (YYYY-MM-DD), or unset it to use today's date";
    match std::env::var("CHARTER_TODAY") {
        Ok(text) if !text.is_empty() => text
            .parse()
            .map_err(|e| format!("error: CHARTER_TODAY is `{text}`, which is not a date ({e})\n  {HELP}")),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("error: CHARTER_TODAY is not UTF-8 text\n  {HELP}")),
        _ => Ok(jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC).date()),
    }
}

fn check_command(
    paths: &[PathBuf],
    format: Format,
    explain_model: bool,
    color: Color,
    today: jiff::civil::Date,
) -> ExitCode {
    let results: Vec<_> = paths.iter().map(|p| check::check_file(p, today)).collect();
    let worst = results.iter().map(|r| r.outcome).max().unwrap_or(Outcome::Passed);
    if explain_model {
        let stderr_color = use_color(color, std::io::stderr().is_terminal());
        eprint!("{}", report::text(&results, stderr_color));
        let models: Vec<_> = results.iter().filter_map(|r| r.model.as_ref()).collect();
        let json = match models.as_slice() {
            [one] => serde_json::to_string_pretty(one),
            many => serde_json::to_string_pretty(many),
        }
        .expect("the model serializes");
        if !models.is_empty() {
            let code = emit(&format!("{json}\n"));
            if code != ExitCode::SUCCESS {
                return code;
            }
        }
        return ExitCode::from(worst.exit_code());
    }
    let text = match format {
        Format::Text => {
            let color = use_color(color, std::io::stdout().is_terminal());
            report::text(&results, color)
        }
        Format::Json => report::json(&results),
        Format::Sarif => report::sarif(&results),
    };
    emit_then(&text, worst.exit_code())
}

fn explain_command(id: Option<&str>) -> ExitCode {
    let Some(id) = id else {
        let mut out = String::from("Production rules (suppressible with a reason unless marked):\n\n");
        for r in RULES {
            let mark = if r.suppressible { "" } else { "  [no suppression]" };
            out.push_str(&format!(
                "  {:<32} {:<8} {}{mark}\n",
                r.id,
                r.severity.to_string(),
                r.summary
            ));
        }
        out.push_str("\nContract checks (what makes a contract unreadable, and the checks of suppressions):\n\n");
        for (id, _) in CHECKS {
            out.push_str(&format!("  {id}\n"));
        }
        out.push_str("\nRun `charter explain ID` for one in full.\n");
        return emit(&out);
    };
    if let Some(r) = RULES.iter().find(|r| r.id == id) {
        let mut out = format!(
            "{} ({})\n\n{}.\n\n{}\n",
            r.id,
            r.severity,
            capitalize(r.summary),
            r.explain
        );
        if !r.suppressible {
            out.push_str("\nThis rule cannot be suppressed.\n");
        } else {
            out.push_str(&format!(
                "\nTo suppress it where it does not apply, write the reason in the contract:\n\n  suppress:\n    - rule: {}\n      reason: <why this does not apply here>\n",
                r.id
            ));
        }
        if r.relaxed_when_experimental {
            out.push_str("\nFor servers with `status: experimental` it is reported as a warning.\n");
        }
        return emit(&out);
    }
    if let Some((id, text)) = CHECKS.iter().find(|(c, _)| *c == id) {
        return emit(&format!("{id} (error)\n\n{text}\n"));
    }
    let ids = RULES.iter().map(|r| r.id).chain(CHECKS.iter().map(|(c, _)| *c));
    let hint = match crate::suggest::did_you_mean(id, ids) {
        Some(s) => format!("did you mean `{s}`?"),
        None => "run `charter explain` for the list".into(),
    };
    eprintln!("error: no rule or check is named `{id}`\n  help: {hint}");
    ExitCode::from(2)
}

fn init_command(name: &str, today: jiff::civil::Date) -> ExitCode {
    if !is_server_name(name) {
        eprintln!(
            "error: `{name}` is not a valid server name\n  help: use lowercase letters, digits and dashes, e.g. `release-notes`"
        );
        return ExitCode::from(2);
    }
    match init::starter(name, today) {
        Ok(text) => emit(&text),
        Err(e) => {
            eprintln!("error: cannot render the starter contract: {e}");
            ExitCode::from(2)
        }
    }
}

/// `charter generate`: prints what the library did, and why not when it did nothing.
fn generate_command(args: &GenerateArgs, today: jiff::civil::Date) -> ExitCode {
    let request = generate::Request {
        contract: &args.contract,
        out: &args.out,
        check: args.check,
        force: args.force,
        today,
        runtime: args.runtime.as_ref(),
    };
    if let Some(RuntimeSource::Path(dir)) = &args.runtime
        && !args.out.join(dir).join("Cargo.toml").is_file()
    {
        eprintln!(
            "warning: {} has no Cargo.toml: the server's path dependency on charter-runtime will not build from there",
            args.out.join(dir).display()
        );
    }
    let generated = match generate::generate(&request) {
        Ok(generated) => generated,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let (contract, out) = (args.contract.display(), args.out.display());
    let code = generated.exit_code();
    match &generated {
        Generated::NotPassing(checked) => {
            eprint!("{}", report::text(std::slice::from_ref(&**checked), false));
            eprintln!("error: {contract} does not pass `charter check`; nothing was generated");
            ExitCode::from(code)
        }
        Generated::UpToDate => emit_then(&format!("{out} is up to date with {contract}\n"), code),
        Generated::Stale(plan) => {
            let written = emit(&generate::stale_diff(plan));
            eprintln!("error: {out} is not what `charter generate {contract}` produces; run it and commit the result");
            if written == ExitCode::SUCCESS {
                ExitCode::from(code)
            } else {
                written
            }
        }
        Generated::Refused(plan) => {
            eprint!("{}", generate::conflicts_text(&args.out, plan));
            eprintln!(
                "help: move hand-written code into src/handlers/ (charter never touches it), \
                 or run again with --force to overwrite; nothing was written"
            );
            ExitCode::from(code)
        }
        Generated::Written { plan, handlers } => {
            let text = generate::summary(&args.out, plan) + &generate::handlers_text(handlers);
            emit_then(&text, code)
        }
    }
}

/// Loads a side, or prints why not (the same diagnostics as `charter check`) and gives exit status 2.
fn load_or_report(arg: &str, color: Color, today: jiff::civil::Date) -> Result<Side, ExitCode> {
    match load(arg, today) {
        Ok(side) => Ok(side),
        Err(LoadError::Unreadable(message)) => {
            eprintln!("error: {message}");
            Err(ExitCode::from(2))
        }
        Err(LoadError::Invalid(checked)) => {
            let color = use_color(color, std::io::stderr().is_terminal());
            eprint!("{}", report::text(std::slice::from_ref(&*checked), color));
            Err(ExitCode::from(2))
        }
    }
}

/// `charter diff OLD NEW`: 0 when nothing fails, 1 when `--fail-on` is met or the bump is too small, 2 on bad input.
fn diff_command(args: &DiffArgs, today: jiff::civil::Date) -> ExitCode {
    let old = load_or_report(&args.old, args.color, today);
    let new = load_or_report(&args.new, args.color, today);
    let (old, new) = match (old, new) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let report = crate::diff::compare(&old, &new);
    let color = use_color(args.color, std::io::stdout().is_terminal());
    let text = render::render(args.format, &report, &old, &new, color);
    emit_then(&text, if report.fails(args.fail_on) { 1 } else { 0 })
}

/// `charter lock CONTRACT [--out FILE]`.
fn lock_command(args: &LockArgs, today: jiff::civil::Date) -> ExitCode {
    let side = match load_or_report(&args.contract, Color::Auto, today) {
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
    match lock::write_lock(out, &text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// `charter import openapi`: the contract to stdout, `--out` or `--into`; findings to stderr.
fn import_command(args: &ImportOpenapiArgs, today: jiff::civil::Date) -> ExitCode {
    let into_text = match &args.into {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if let Some(out) = &args.out
        && out.exists()
    {
        eprintln!(
            "error: {} exists; charter import never replaces a file\n  help: choose another --out, or add the import to it with --into {}",
            out.display(),
            out.display()
        );
        return ExitCode::from(2);
    }
    let request = openapi::Request {
        spec: &args.spec,
        downstream: &args.downstream,
        operations: &args.operations,
        tags: &args.tags,
        effects: &args.effects,
        all_selected: args.all_selected,
        name: args.name.as_deref(),
        into: args.into.as_deref().zip(into_text.as_deref()),
        today,
    };
    let imported = match openapi::import(&request) {
        Ok(imported) => imported,
        Err(failure) => {
            let text = failure.text();
            eprint!("{text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
            return ExitCode::from(2);
        }
    };
    eprint!("{}", imported.report);
    let count = imported.tools.len();
    let summary = format!(
        "imported {count} tool{} from {} ({} warning{})",
        if count == 1 { "" } else { "s" },
        args.spec.display(),
        imported.warnings,
        if imported.warnings == 1 { "" } else { "s" }
    );
    let written = match (&args.into, &args.out) {
        (Some(path), _) => crate::atomic::write_atomically(path, &imported.contract).map(|()| {
            let mut also = String::new();
            if !imported.added.is_empty() {
                also = format!("; also added {}", imported.added.join(", "));
            }
            eprintln!("{summary} into {}{also}", path.display());
            path.display().to_string()
        }),
        (None, Some(path)) => write_new(path, &imported.contract).map(|()| {
            eprintln!("{summary}: wrote {}", path.display());
            path.display().to_string()
        }),
        (None, None) => {
            let code = emit(&imported.contract);
            if code != ExitCode::SUCCESS {
                return code;
            }
            eprintln!("{summary}");
            return ExitCode::SUCCESS;
        }
    };
    match written {
        Ok(path) => {
            eprintln!("next: review each tool, then `charter check {path}`");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Writes a new file atomically, never replacing one that exists (even one created meanwhile).
fn write_new(path: &std::path::Path, text: &str) -> Result<(), String> {
    let temp = crate::atomic::stage(path, text)?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(format!(
            "{} exists; charter import never replaces a file",
            path.display()
        )),
        Err(e) => Err(format!("cannot write {}: {e}", path.display())),
    }
}

/// Writes to stdout, then exits with `code` unless the write failed.
fn emit_then(text: &str, code: u8) -> ExitCode {
    let written = emit(text);
    if written == ExitCode::SUCCESS {
        ExitCode::from(code)
    } else {
        written
    }
}

/// Writes to stdout; a closed pipe (`charter ... | head`) is not an error worth a panic.
fn emit(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::from(2)
        }
    }
}

/// Colour when asked, or when writing to a terminal and `NO_COLOR` is unset (https://no-color.org).
fn use_color(choice: Color, terminal: bool) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

// The library's diff enums carry no clap derive: what they are called on the
// command line, and the help for each value, belong to the command line.

impl ValueEnum for DiffFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            DiffFormat::Text,
            DiffFormat::Markdown,
            DiffFormat::Json,
            DiffFormat::Github,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            DiffFormat::Text => "text",
            DiffFormat::Markdown => "markdown",
            DiffFormat::Json => "json",
            DiffFormat::Github => "github",
        }))
    }
}

impl ValueEnum for FailOn {
    fn value_variants<'a>() -> &'a [Self] {
        &[FailOn::None, FailOn::Breaking, FailOn::Review, FailOn::Any]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let (name, help) = match self {
            FailOn::None => ("none", "Fail only when the declared version bump is too small"),
            FailOn::Breaking => ("breaking", "Also fail on any breaking change"),
            FailOn::Review => (
                "review",
                "Also fail on any change that needs re-review (or is breaking)",
            ),
            FailOn::Any => ("any", "Also fail on any change at all"),
        };
        Some(PossibleValue::new(name).help(help))
    }
}
