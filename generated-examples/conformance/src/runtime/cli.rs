//! The generated server's command line:
//! `SERVER [--config FILE] stdio` and `SERVER [--config FILE] http [--listen ADDR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use super::config::Config;
use super::dispatch::Dispatch;
use super::server::McpServer;
use super::surface::Surface;

#[derive(Debug, Parser)]
struct Cli {
    /// Environment-specific settings (TOML); environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one client over stdin/stdout (logs go to stderr).
    Stdio,
    /// Serve Streamable HTTP.
    #[cfg(feature = "http")]
    Http {
        /// Address to listen on (overrides the configuration's `http.listen`).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Print each tool, resource and prompt with the hash hosts can pin.
    Surface,
}

/// Runs the server: parses the command line, loads configuration, builds the
/// team's handlers with `handlers`, and serves until told to stop.
pub fn run<D: Dispatch>(surface_json: &str, handlers: impl FnOnce(&Config) -> Result<D, String>) -> ExitCode {
    let surface = match Surface::parse(surface_json) {
        Ok(surface) => surface,
        Err(e) => return fail(&e),
    };
    let name: &'static str = Box::leak(surface.server.name.clone().into_boxed_str());
    let version: &'static str = Box::leak(surface.server.version.clone().into_boxed_str());
    let about: &'static str = Box::leak(surface.server.description.clone().into_boxed_str());
    let matches = Cli::command()
        .name(name)
        .bin_name(name)
        .version(version)
        .about(about)
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let config = match Config::load(cli.config.as_deref(), &surface.server.env_prefix) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    init_logging(&config);
    if let Command::Surface = cli.command {
        print_surface(&surface);
        return ExitCode::SUCCESS;
    }
    let dispatch = match handlers(&config) {
        Ok(dispatch) => dispatch,
        Err(e) => return fail(&format!("the handlers could not start: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Stdio => {
                let server = McpServer::new(surface, dispatch)?.with_default_caller(local_user());
                super::serve::stdio(server, &config).await
            }
            #[cfg(feature = "http")]
            Command::Http { listen } => {
                let server = McpServer::new(surface, dispatch)?.with_default_caller("anonymous".into());
                let listen = listen.unwrap_or_else(|| config.http.listen.clone());
                super::serve::http(server, &config, &listen).await
            }
            Command::Surface => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn print_surface(surface: &Surface) {
    let tools = surface.tools.iter().map(|t| ("tool", t.name(), &t.hash));
    let resources = surface.resources.iter().map(|r| ("resource", r.name(), &r.hash));
    let prompts = surface.prompts.iter().map(|p| ("prompt", p.name(), &p.hash));
    for (kind, name, hash) in tools.chain(resources).chain(prompts) {
        println!("{kind:<9} {name:<32} sha256:{hash}");
    }
}

/// Logs go to stderr, always: on stdio, stdout belongs to the protocol.
fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// The operating-system user, which is who a stdio caller is.
fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "local".into())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
