//! The generated server's command line:
//! `SERVER [--config FILE] stdio`, `SERVER [--config FILE] http [--listen ADDR]`,
//! `SERVER surface` and `SERVER audit verify FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use super::audit::AuditLog;
use super::config::Config;
use super::controls::KillSwitch;
use super::dispatch::Dispatch;
use super::guard::Controls;
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
        /// Development only: serve without bearer-token checks, every caller
        /// holding every scope. Refused unless the address is loopback.
        #[arg(long)]
        dev_no_auth: bool,
    },
    /// Print each tool, resource and prompt with the hash hosts can pin.
    Surface,
    /// Work with audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check a log's hash chain; prints the first broken link and exits 1 if there is one.
    Verify {
        /// The JSON-lines audit log.
        file: PathBuf,
        /// A chain head the server logged (`seq` and `hash` of an "audit chain head" line, as
        /// SEQ:HASH) that the file must still contain; repeatable. A missing one means records
        /// were cut off the end.
        #[arg(long = "expect-head", value_name = "SEQ:HASH")]
        expect_head: Vec<String>,
    },
    /// The weekly review: verifies each log, merges them by time and reports denied and failed
    /// calls, approvals and their time to decision, capabilities never called and callers
    /// repeatedly denied. Exits 1 if a chain is broken (the report is printed either way).
    Report {
        /// Audit logs, e.g. one per pod.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The period, back from now (e.g. `7d`, `24h`).
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Report as of this time (RFC 3339) instead of now, for reproducible reports.
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        now: Option<std::time::SystemTime>,
        /// `markdown` for reviewers, `json` for tools.
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
        format: String,
        /// Decisions faster than this are flagged as too fast to have read the operation.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        fast_decision: std::time::Duration,
    },
}

/// The team's handlers, built from the loaded configuration.
type MakeHandlers<'a> = Box<dyn FnOnce(&Config) -> Result<Box<dyn Dispatch>, String> + 'a>;

/// Runs the server: parses the command line, loads configuration, builds the
/// team's handlers with `handlers`, and serves until told to stop.
///
/// Only this wrapper is generic: it boxes the handlers so that the server and
/// everything under it are compiled once, in this crate, and not again in
/// each generated crate (which then rebuilds in seconds after a handler edit).
pub fn run<D: Dispatch>(surface_json: &str, handlers: impl FnOnce(&Config) -> Result<D, String>) -> ExitCode {
    run_boxed(
        surface_json,
        Box::new(move |config| handlers(config).map(|dispatch| Box::new(dispatch) as Box<dyn Dispatch>)),
    )
}

fn run_boxed(surface_json: &str, handlers: MakeHandlers<'_>) -> ExitCode {
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
    match &cli.command {
        Command::Surface => {
            print_surface(&surface);
            return ExitCode::SUCCESS;
        }
        Command::Audit(AuditCommand::Verify { file, expect_head }) => return verify_audit(file, expect_head),
        Command::Audit(AuditCommand::Report {
            files,
            since,
            now,
            format,
            fast_decision,
        }) => {
            let options = super::report::Options {
                files: files.clone(),
                since: *since,
                now: now.unwrap_or_else(std::time::SystemTime::now),
                fast_decision: *fast_decision,
            };
            let report = super::report::build(&surface, &options);
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", report.markdown(*fast_decision));
            }
            return if report.intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        _ => {}
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
        let controls = controls(&surface, &config).await?;
        let audit = controls.audit.clone();
        let outcome = match cli.command {
            Command::Stdio => {
                // Said at start-up rather than at the first call that fails.
                for downstream in &surface.downstreams {
                    if matches!(
                        downstream.credentials,
                        super::surface::CredentialSpec::TokenExchange { .. }
                    ) {
                        tracing::warn!(
                            downstream = %downstream.name,
                            "downstream `{}` uses token exchange, which needs an authenticated HTTP caller: \
                             over stdio its calls fail; serve over HTTP, or give it client_credentials or a \
                             service token in the contract",
                            downstream.name
                        );
                    }
                }
                let server = server(surface, dispatch, &config, local_user(), controls)?;
                watch(&server, config.audit.head_interval);
                super::serve::stdio(server, &config).await
            }
            #[cfg(feature = "http")]
            Command::Http { listen, dev_no_auth } => {
                let listen = listen.unwrap_or_else(|| config.http.listen.clone());
                let gate = http_gate(&surface, &config, dev_no_auth).await?;
                let server = server(surface, dispatch, &config, "anonymous".into(), controls)?;
                watch(&server, config.audit.head_interval);
                super::serve::http(server, &config, &listen, gate).await
            }
            Command::Surface | Command::Audit(_) => Ok(()),
        };
        // A log that ends without this record ended in a crash (or a SIGKILL).
        let mut stopped = super::audit::Record::new(super::audit::Event::Stopped);
        stopped.error = outcome.as_ref().err().cloned();
        if let Err(e) = audit.durable(stopped).await {
            tracing::error!(error = %e, "cannot record the shutdown in the audit log");
        }
        audit.close().await;
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The server with its controls and, for contracts with downstreams, each
/// tool's own downstream clients.
fn server(
    surface: Surface,
    dispatch: Box<dyn Dispatch>,
    config: &Config,
    default_caller: String,
    controls: Controls,
) -> Result<McpServer, String> {
    #[cfg(feature = "egress")]
    let egress = super::egress::Egress::from_config(&surface.downstreams, config)?;
    #[cfg(not(feature = "egress"))]
    if !surface.downstreams.is_empty() {
        let _ = config;
        return Err(
            "the contract declares downstreams but this server was built without the runtime's \
                    `egress` feature: regenerate it with `charter generate`"
                .into(),
        );
    }
    let rounds = super::rounds::Rounds::new(
        config.request_state.key()?,
        std::time::Duration::from_secs(config.request_state.ttl_secs),
    )?;
    #[cfg(feature = "redis")]
    let rounds = match controls.limiter.shared() {
        Some(shared) => rounds.share(shared),
        None => rounds,
    };
    let server = McpServer::new_boxed(surface, dispatch)?
        .with_default_caller(default_caller)
        .with_rounds(rounds)
        .with_controls(controls)?;
    #[cfg(feature = "egress")]
    let server = server.with_egress(&egress)?;
    Ok(server)
}

/// Opens the audit log, the kill switch and (when a tool needs a reviewer)
/// the approval store: a server that cannot keep its records does not start.
async fn controls(surface: &Surface, config: &Config) -> Result<Controls, String> {
    let audit = AuditLog::open(Path::new(&config.audit.path))?;
    let mut started = super::audit::Record::new(super::audit::Event::Started);
    started.contract_version = Some(surface.server.version.clone());
    if audit.cut_on_open() > 0 {
        started.reason = Some(format!(
            "cut an incomplete last record ({} bytes) left by a crash; it was never acknowledged",
            audit.cut_on_open()
        ));
    }
    audit.record(started);
    let env_value = surface
        .server
        .disable
        .env
        .as_ref()
        .and_then(|name| std::env::var(name).ok());
    let file = config
        .kill_switch
        .file
        .clone()
        .or_else(|| surface.server.disable.file.clone())
        .map(PathBuf::from);
    #[allow(unused_mut)] // changed only with feature `redis`
    let mut controls = Controls::new(surface, KillSwitch::new(env_value, file), audit);
    #[cfg(feature = "redis")]
    if let Some(shared) = super::shared_limits::SharedLimits::from_config(
        &config.rate_limits,
        &surface.server.name,
        controls.metrics.clone(),
    )? {
        tracing::info!("rate limits are shared by the replicas through Redis");
        controls.limiter.share(shared);
    }
    #[cfg(not(feature = "redis"))]
    if config.rate_limits.redis_url_env.is_some() || config.rate_limits.redis_url_file.is_some() {
        return Err(
            "the configuration shares rate limits through Redis ([rate_limits]), and this build has no Redis \
             support: regenerate the server from a contract with more than one replica, or remove [rate_limits]"
                .into(),
        );
    }
    if controls.needs_reviewers() {
        #[cfg(feature = "approvals")]
        {
            let store = super::approvals::Approvals::open(&config.approvals).await?;
            return Ok(controls.with_approvals(store));
        }
        #[cfg(not(feature = "approvals"))]
        return Err(
            "a tool needs a reviewer's approval and this build has no approval store (feature `approvals`)".into(),
        );
    }
    Ok(controls)
}

/// Background upkeep: the kill-switch file is re-read every second (and each
/// change audited), and idle callers' rate-limit state is dropped every minute.
fn watch(server: &McpServer, head_interval: std::time::Duration) {
    let server = server.clone();
    if !head_interval.is_zero()
        && let Some(controls) = server.controls()
    {
        let audit = controls.audit.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(head_interval);
            tick.tick().await; // the first tick is immediate: the `started` record just went
            loop {
                tick.tick().await;
                match audit.mark_head().await {
                    // Collected by the cluster's log pipeline, outside the pod: a file whose chain
                    // lacks a head logged here has lost its tail (`audit verify --expect-head`).
                    Ok((seq, hash)) => tracing::info!(
                        audit_log = %audit.path().display(),
                        seq,
                        hash = %hash,
                        "audit chain head"
                    ),
                    Err(e) => tracing::error!(error = %e, "cannot write the audit chain head"),
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut seconds = 0u64;
        loop {
            tick.tick().await;
            seconds += 1;
            let Some(controls) = server.controls() else { return };
            if let Some(state) = controls.kill.reload() {
                controls.kill_switch_changed(&state);
            }
            if seconds.is_multiple_of(60) {
                controls.limiter.forget_idle();
            }
        }
    });
}

/// Authentication for HTTP: the contract's OAuth settings, with this
/// environment's issuer, audience and key set from the configuration.
#[cfg(feature = "http")]
async fn http_gate(surface: &Surface, config: &Config, dev_no_auth: bool) -> Result<super::serve::HttpGate, String> {
    #[cfg_attr(not(feature = "oauth"), allow(unused_mut))]
    let mut gate = super::serve::HttpGate::default();
    let Some(oauth) = &surface.oauth else {
        return Ok(gate);
    };
    if dev_no_auth {
        // `serve::http` refuses this gate on any address but loopback.
        tracing::warn!(
            "--dev-no-auth: serving without bearer-token checks on loopback; every caller holds every scope"
        );
        return Ok(gate);
    }
    #[cfg(feature = "oauth")]
    {
        use std::time::Duration;
        let mut settings = super::auth::OAuthSettings::new(
            config.oauth.issuer.clone().unwrap_or_else(|| oauth.issuer.clone()),
            config.oauth.audience.clone().unwrap_or_else(|| oauth.audience.clone()),
        );
        settings.jwks_uri = config.oauth.jwks_uri.clone().or_else(|| oauth.jwks_uri.clone());
        settings.algorithms = oauth.algorithms.clone();
        settings.leeway = Duration::from_millis(oauth.leeway_ms);
        settings.refresh_min_interval = Duration::from_secs(config.oauth.refresh_min_interval_secs);
        settings.max_age = Duration::from_secs(config.oauth.max_age_secs);
        let audience = settings.audience.clone();
        let auth = super::auth::Authenticator::new(settings)?;
        // Not fatal: the provider may be briefly down; /readyz reports it and
        // the first token with an unknown key retries.
        if let Err(e) = auth.refresh().await {
            tracing::warn!(error = %e, "cannot load the identity provider's keys yet");
        }
        let title = surface
            .server
            .title
            .clone()
            .unwrap_or_else(|| surface.server.name.clone());
        gate.metadata = Some((auth.metadata(&surface.scopes, &title), auth.metadata_url()));
        gate.audience = Some(audience);
        gate.auth = Some(std::sync::Arc::new(auth));
        Ok(gate)
    }
    #[cfg(not(feature = "oauth"))]
    {
        let _ = (config, oauth);
        Err(
            "the contract requires OAuth and this build has no token checks (feature `oauth`); \
             rebuild with it, or use --dev-no-auth on loopback"
                .into(),
        )
    }
}

fn verify_audit(file: &Path, expect_heads: &[String]) -> ExitCode {
    match super::audit::verify(file) {
        Ok(summary) => {
            for head in expect_heads {
                let Some((seq, hash)) = head
                    .split_once(':')
                    .and_then(|(s, h)| Some((s.parse::<u64>().ok()?, h)))
                else {
                    eprintln!("--expect-head {head}: write it as SEQ:HASH, from an \"audit chain head\" log line");
                    return ExitCode::from(2);
                };
                match super::audit::hash_at(file, seq) {
                    Some(found) if found == hash => {}
                    Some(_) => {
                        eprintln!(
                            "{}: record {seq} is not the head the server logged ({hash}): the chain was rewritten",
                            file.display()
                        );
                        return ExitCode::FAILURE;
                    }
                    None => {
                        eprintln!(
                            "{}: the head the server logged at seq {seq} is missing: records were cut off the end \
                             (the file ends at seq {})",
                            file.display(),
                            summary.last_seq.unwrap_or(0)
                        );
                        return ExitCode::FAILURE;
                    }
                }
            }
            println!("{}: chain intact: {summary}", file.display());
            ExitCode::SUCCESS
        }
        Err(broken) => {
            eprintln!("{}: chain broken at {broken}", file.display());
            ExitCode::FAILURE
        }
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
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Checked when the configuration loaded; `Targets` filters by target and level without the
    // regex engine `EnvFilter` compiles in.
    let filter: tracing_subscriber::filter::Targets = config
        .log
        .filter
        .parse()
        .unwrap_or_else(|_| tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
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
