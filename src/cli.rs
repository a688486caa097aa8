//! The command line: a thin layer over the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::check::{self, Outcome};
use crate::lint::{CHECKS, RULES};
use crate::model::names::is_server_name;
use crate::{contract, init, report};

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
    Generate(crate::generate::GenerateArgs),
    /// Compare two versions of a contract: what changed, whether it needs re-review, and the version bump it needs.
    ///
    /// Each side is a contract, a `charter.lock.json`, or `REV:path` read from git. Exit status: 0
    /// when nothing fails, 1 when a change meets `--fail-on` or the version bump is too small, 2 when
    /// a side cannot be read or is not a valid contract.
    Diff(crate::diff::command::DiffArgs),
    /// Print (or write with `--out`) the tool-surface lock of a contract: a SHA-256 of each tool,
    /// resource and prompt definition as clients see it.
    Lock(crate::diff::command::LockArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Clone, Copy, ValueEnum)]
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
        Command::Check {
            contracts,
            format,
            explain_model,
            color,
        } => check_command(&contracts, format, explain_model, color),
        Command::Explain { id } => explain_command(id.as_deref()),
        Command::Schema => {
            let schema =
                serde_json::to_string_pretty(contract::structure::contract_schema()).expect("schema serializes");
            emit(&format!("{schema}\n"))
        }
        Command::Init { name } => init_command(&name),
        Command::Generate(args) => crate::generate::run(&args),
        Command::Diff(args) => crate::diff::command::diff(&args),
        Command::Lock(args) => crate::diff::command::lock(&args),
    }
}

fn check_command(paths: &[PathBuf], format: Format, explain_model: bool, color: Color) -> ExitCode {
    let today = crate::lint::today();
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
    let code = emit(&text);
    if code != ExitCode::SUCCESS {
        return code;
    }
    ExitCode::from(worst.exit_code())
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

fn init_command(name: &str) -> ExitCode {
    if !is_server_name(name) {
        eprintln!(
            "error: `{name}` is not a valid server name\n  help: use lowercase letters, digits and dashes, e.g. `release-notes`"
        );
        return ExitCode::from(2);
    }
    match init::starter(name, crate::lint::today()) {
        Ok(text) => emit(&text),
        Err(e) => {
            eprintln!("error: cannot render the starter contract: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes to stdout; a closed pipe (`charter ... | head`) is not an error worth a panic.
pub(crate) fn emit(text: &str) -> ExitCode {
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
