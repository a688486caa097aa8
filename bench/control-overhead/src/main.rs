//! What the runtime's controls cost per `tools/call`, measured side by side.
//!
//! `cargo run --release -p control-overhead [-- --requests N --warmup N --rounds N --concurrency N]`
//!
//! Three servers of the policy-search example's `search_policies` tool run as
//! child processes of this binary (so each one's CPU time can be read from
//! `/proc/<pid>/stat`):
//!
//! - `on`: the example exactly as its command line builds it
//!   (`charter_runtime::cli::run`, `http`): OAuth bearer tokens checked
//!   against a JWKS this binary serves on loopback, input and output
//!   validation, the audit log, per-caller rate limits, kill switch, metrics;
//! - `off`: the same surface and handlers in the runtime's `McpServer` without
//!   controls, served by the same `serve::http` with no token checks;
//! - `bare`: the same tool and handler code on a plain rmcp server (rmcp's
//!   `StreamableHttpService`, stateless, JSON responses).
//!
//! Each round runs the modes in turn (on, off, bare) with a warm-up and a
//! measured batch, so machine noise hits all three alike. The summary, a
//! Markdown table, goes to stdout; progress goes to stderr.

mod idp;
mod load;
mod serve;

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use policy_search::generated::dispatch::Dispatcher;
use policy_search::handlers::Handlers;

use crate::load::{Outcome, Target};

/// The tool every mode serves and every call names.
pub const TOOL: &str = "search_policies";
/// The contract's resource URL, which tokens are issued for.
const AUDIENCE: &str = "https://mcp.example.com/policy-search";
/// The scope `search_policies` needs.
const SCOPE: &str = "policies.search";
/// Set in the environment of the `on` child: run the example's own command line.
const CLI_ENV: &str = "CONTROL_OVERHEAD_CLI";
/// Calls one subject makes over the whole run at most: under the contract's
/// 60/minute with a burst of 60, so no call is throttled however fast the run.
const CALLS_PER_SUBJECT: usize = 48;
/// The cost target: controls on may cost this much more CPU per request than bare.
const TARGET_RATIO: f64 = 1.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    On,
    Off,
    Bare,
}

const MODES: [Mode; 3] = [Mode::On, Mode::Off, Mode::Bare];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::On => "on",
            Mode::Off => "off",
            Mode::Bare => "bare",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Mode::On => "policy-search CLI: OAuth (ES256, cached), validation, audit, rate limits",
            Mode::Off => "charter runtime, no controls (validation on, no auth/audit/limits)",
            Mode::Bare => "rmcp StreamableHttpService + same handler, no charter runtime",
        }
    }
}

struct Settings {
    requests: usize,
    warmup: usize,
    rounds: usize,
    concurrency: usize,
}

fn main() -> ExitCode {
    if std::env::var_os(CLI_ENV).is_some() {
        die_with_parent();
        return charter_runtime::cli::run(policy_search::generated::SURFACE, |config| {
            Handlers::new(config).map(Dispatcher::new)
        });
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = if args.first().map(String::as_str) == Some("serve") {
        serve_child(&args[1..])
    } else {
        parse_settings(&args).and_then(bench)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_settings(args: &[String]) -> Result<Settings, String> {
    let mut settings = Settings {
        requests: 5000,
        warmup: 500,
        rounds: 5,
        concurrency: 4,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--requests" => &mut settings.requests,
            "--warmup" => &mut settings.warmup,
            "--rounds" => &mut settings.rounds,
            "--concurrency" => &mut settings.concurrency,
            "-h" | "--help" => {
                println!(
                    "usage: control-overhead [--requests N (5000)] [--warmup N (500)] [--rounds N (5)] [--concurrency N (4)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        };
        *slot = args
            .next()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .ok_or_else(|| format!("{flag} needs a positive number"))?;
    }
    Ok(settings)
}

/// `serve --mode off|bare --listen ADDR`: one server, until killed.
fn serve_child(args: &[String]) -> Result<(), String> {
    die_with_parent();
    let (mut mode, mut listen) = (None, "127.0.0.1:0".to_string());
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--mode", Some(value)) => mode = Some(value.clone()),
            ("--listen", Some(value)) => listen = value.clone(),
            _ => return Err(format!("serve: unexpected `{flag}`")),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        match mode.as_deref() {
            Some("off") => serve::off(&listen).await,
            Some("bare") => serve::bare(&listen).await,
            _ => Err("serve: --mode off|bare (`on` is the example's own command line)".into()),
        }
    })
}

/// A server child dies with the bench, even when the bench is killed.
fn die_with_parent() {
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

struct Server {
    mode: Mode,
    child: std::process::Child,
    url: String,
    /// The last lines the server wrote to stderr, for when something goes wrong.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    fn spawn(mode: Mode, exe: &Path, env: &[(&str, String)]) -> Result<Server, String> {
        let mut command = Command::new(exe);
        match mode {
            Mode::On => {
                command.args(["http", "--listen", "127.0.0.1:0"]).env(CLI_ENV, "1");
            }
            Mode::Off | Mode::Bare => {
                command.args(["serve", "--mode", mode.name(), "--listen", "127.0.0.1:0"]);
            }
        }
        // Only the settings given here: nothing inherited switches a control off or on.
        for (name, _) in std::env::vars() {
            if name.starts_with("POLICY_SEARCH_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        if mode == Mode::On {
            command.envs(env.iter().map(|(k, v)| (*k, v)));
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the {} server: {e}", mode.name()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (found, listening) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(url.trim().to_string());
                }
                let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() == 40 {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
        let url = match listening.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let log = log.lock().unwrap_or_else(|e| e.into_inner());
                return Err(format!(
                    "the {} server did not start:\n{}",
                    mode.name(),
                    log.iter().cloned().collect::<Vec<_>>().join("\n")
                ));
            }
        };
        Ok(Server { mode, child, url, log })
    }

    /// User plus system CPU time of the whole process (every thread), in seconds.
    fn cpu_seconds(&self) -> Result<f64, String> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // Fields after the parenthesised command name, from field 3 (state) on.
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or("odd /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Result<u64, String> {
            fields
                .get(n - 3)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("no field {n} in {path}"))
        };
        let ticks = field(14)? + field(15)?;
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Ok(ticks as f64 / per_second.max(1) as f64)
    }

    fn recent_log(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM (the servers shut down cleanly and the audit log is closed), then wait.
    fn stop(mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One measured batch of one mode.
struct Phase {
    outcome: Outcome,
    cpu: f64,
}

fn bench(settings: Settings) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let scratch = std::env::temp_dir().join(format!("control-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let audit_path = scratch.join("audit.jsonl");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = runtime.block_on(measure(&settings, &exe, &audit_path));
    let verified = if audit_path.exists() {
        verify_audit(&exe, &audit_path)
    } else {
        Ok("no audit log was written".into())
    };
    let _ = std::fs::remove_dir_all(&scratch);
    let (report, calls_on) = result?;
    println!("{report}");
    match verified {
        // `PATH: N records ...`: the scratch path is gone, the rest is the news.
        Ok(summary) => println!(
            "Audit log of the `on` server, which took {calls_on} calls (2 of them refused on purpose): {}",
            summary.rsplit_once(": ").map_or(summary.as_str(), |(_, news)| news)
        ),
        Err(e) => return Err(format!("the audit log does not verify: {e}")),
    }
    Ok(())
}

/// Runs the servers and the rounds; returns the report and how many calls the `on` server took.
async fn measure(settings: &Settings, exe: &Path, audit_path: &Path) -> Result<(String, usize), String> {
    let idp = idp::Idp::start().await?;
    let env = [
        ("POLICY_SEARCH_OAUTH_ISSUER", idp.issuer.clone()),
        ("POLICY_SEARCH_OAUTH_AUDIENCE", AUDIENCE.to_string()),
        ("POLICY_SEARCH_OAUTH_JWKS_URI", idp.jwks_uri()),
        ("POLICY_SEARCH_AUDIT_PATH", audit_path.display().to_string()),
    ];

    // Enough subjects that none exceeds its rate limit over the whole run, yet
    // every call is counted against one.
    let calls_on = settings.rounds * (settings.warmup + settings.requests);
    let subjects = calls_on.div_ceil(CALLS_PER_SUBJECT - 1).max(1);
    let tokens = (0..subjects)
        .map(|i| idp.mint(AUDIENCE, &format!("bench-user-{i:05}"), SCOPE))
        .collect::<Result<Vec<_>, _>>()?;

    let mut servers = Vec::new();
    for mode in MODES {
        eprintln!("starting the {} server", mode.name());
        servers.push(Server::spawn(mode, exe, &env)?);
    }
    let outcome = run_rounds(settings, &servers, &tokens, &idp)
        .await
        .map(|report| (report, 2 + tokens.len() + calls_on));
    if outcome.is_err() {
        for server in &servers {
            eprintln!(
                "--- {} server, last log lines ---\n{}",
                server.mode.name(),
                server.recent_log()
            );
        }
    }
    for server in servers {
        server.stop();
    }
    outcome
}

async fn run_rounds(
    settings: &Settings,
    servers: &[Server],
    tokens: &[String],
    idp: &idp::Idp,
) -> Result<String, String> {
    let client = load::client();
    let concurrency = settings.concurrency;
    let on = &servers[0];

    // The `on` server must really check tokens: a call without one gets 401, one without the scope 403.
    let status = load::status_of(&client, &on.url, None).await?;
    if status != 401 {
        return Err(format!(
            "the on server answered {status} to a call without a token, not 401"
        ));
    }
    let wrong_scope = idp.mint(AUDIENCE, "bench-no-scope", "policies.read")?;
    let status = load::status_of(&client, &on.url, Some(&wrong_scope)).await?;
    if status != 403 {
        return Err(format!(
            "the on server answered {status} to a token without `{SCOPE}`, not 403"
        ));
    }

    let targets: Vec<Arc<Target>> = servers
        .iter()
        .map(|server| {
            Arc::new(Target {
                url: server.url.clone(),
                tokens: if server.mode == Mode::On {
                    tokens.to_vec()
                } else {
                    Vec::new()
                },
                next: AtomicUsize::new(0),
            })
        })
        .collect();

    // Each token's first call: the signature is verified (and the result cached).
    let before = on.cpu_seconds()?;
    let first = load::run(&client, &targets[0], tokens.len(), concurrency).await;
    let first_cpu = on.cpu_seconds()? - before;
    check(Mode::On, &first)?;
    let first_calls = first.requests();

    let mut phases: Vec<Vec<Phase>> = MODES.iter().map(|_| Vec::new()).collect();
    for round in 1..=settings.rounds {
        for (i, server) in servers.iter().enumerate() {
            let warm = load::run(&client, &targets[i], settings.warmup, concurrency).await;
            check(server.mode, &warm)?;
            // Profilers attach on this line: `perf record -p PID` for the measured batch.
            eprintln!(
                "round {round} {:>4}: measuring (server pid {})",
                server.mode.name(),
                server.child.id()
            );
            let before = server.cpu_seconds()?;
            let outcome = load::run(&client, &targets[i], settings.requests, concurrency).await;
            let cpu = server.cpu_seconds()? - before;
            check(server.mode, &outcome)?;
            eprintln!(
                "round {round} {:>4}: {:>7.0} req/s, p50 {:.3} ms, CPU {:.1} us/req",
                server.mode.name(),
                outcome.latencies_us.len() as f64 / outcome.wall.as_secs_f64(),
                percentile(&outcome.latencies_us, 50.0) / 1000.0,
                cpu * 1e6 / outcome.requests() as f64,
            );
            phases[i].push(Phase { outcome, cpu });
        }
    }
    Ok(report(settings, &phases, tokens.len(), first_calls, first_cpu))
}

/// Any failure ends the run: numbers from a server that refuses calls mean nothing.
/// Throttled calls are counted and reported instead.
fn check(mode: Mode, outcome: &Outcome) -> Result<(), String> {
    if outcome.failed > 0 {
        return Err(format!(
            "{} of {} calls to the {} server failed; first: {}",
            outcome.failed,
            outcome.requests(),
            mode.name(),
            outcome.first_failure.as_deref().unwrap_or("?")
        ));
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn percentile(latencies_us: &[u32], p: f64) -> f64 {
    if latencies_us.is_empty() {
        return f64::NAN;
    }
    let mut sorted = latencies_us.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn report(settings: &Settings, phases: &[Vec<Phase>], subjects: usize, first_calls: usize, first_cpu: f64) -> String {
    struct Row {
        throttled: usize,
        rate: f64,
        p50: f64,
        p99: f64,
        cpu_us: f64,
        by_round: Vec<f64>,
    }
    let rows: Vec<Row> = phases
        .iter()
        .map(|phases| {
            let requests: usize = phases.iter().map(|p| p.outcome.requests()).sum();
            let latencies: Vec<u32> = phases
                .iter()
                .flat_map(|p| p.outcome.latencies_us.iter().copied())
                .collect();
            let wall: f64 = phases.iter().map(|p| p.outcome.wall.as_secs_f64()).sum();
            let cpu: f64 = phases.iter().map(|p| p.cpu).sum();
            Row {
                throttled: phases.iter().map(|p| p.outcome.throttled).sum(),
                rate: requests as f64 / wall,
                p50: percentile(&latencies, 50.0) / 1000.0,
                p99: percentile(&latencies, 99.0) / 1000.0,
                cpu_us: cpu * 1e6 / requests as f64,
                by_round: phases
                    .iter()
                    .map(|p| p.cpu * 1e6 / p.outcome.requests() as f64)
                    .collect(),
            }
        })
        .collect();
    let bare = rows[2].cpu_us;
    let mut out = String::new();
    out.push_str(&format!(
        "{} rounds x {} measured calls per mode (after {} warm-up calls each round), concurrency {}, keep-alive; \
         `tools/call` `{TOOL}` {{\"query\": \"password rotation\"}}\n\n",
        settings.rounds, settings.requests, settings.warmup, settings.concurrency
    ));
    out.push_str("| mode | what serves the call | requests/s | p50 | p99 | server CPU per request | CPU vs bare | CPU per request by round |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for (mode, row) in MODES.iter().zip(&rows) {
        let by_round: Vec<String> = row.by_round.iter().map(|c| format!("{c:.0}")).collect();
        out.push_str(&format!(
            "| `{}` | {} | {:.0} | {:.2} ms | {:.2} ms | {:.0} µs | {:.2}x | {} µs |\n",
            mode.name(),
            mode.what(),
            row.rate,
            row.p50,
            row.p99,
            row.cpu_us,
            row.cpu_us / bare,
            by_round.join(" / "),
        ));
    }
    let ratio = rows[0].cpu_us / bare;
    // Each round's modes ran back to back, so a round's ratio compares like with like
    // even when the machine's load drifts between rounds.
    let per_round = |mode: usize| -> Vec<f64> {
        rows[mode]
            .by_round
            .iter()
            .zip(&rows[2].by_round)
            .map(|(m, b)| m / b)
            .collect()
    };
    let show = |ratios: &[f64]| ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" / ");
    let (on_rounds, off_rounds) = (per_round(0), per_round(1));
    out.push_str(&format!(
        "\nTarget (controls on at most {:.0}% more CPU per request than bare rmcp): {} (on/bare {:.2}x over all rounds, \
         median of rounds {:.2}x; off/bare {:.2}x, median {:.2}x).\n",
        (TARGET_RATIO - 1.0) * 100.0,
        if ratio <= TARGET_RATIO { "met" } else { "NOT met" },
        ratio,
        median(&on_rounds),
        rows[1].cpu_us / bare,
        median(&off_rounds),
    ));
    out.push_str(&format!(
        "CPU ratio by round: on/bare {}; off/bare {}.\n",
        show(&on_rounds),
        show(&off_rounds)
    ));
    out.push_str(&format!(
        "Rate limits: {subjects} token subjects, at most {CALLS_PER_SUBJECT} calls each; throttled calls: on {}, off {}, bare {}.\n",
        rows[0].throttled, rows[1].throttled, rows[2].throttled,
    ));
    out.push_str(&format!(
        "First call with each token (ES256 signature verified, then cached): {:.0} µs server CPU per request over {first_calls} calls.\n",
        first_cpu * 1e6 / first_calls.max(1) as f64,
    ));
    out
}

/// Checks the `on` server's audit log with its own `audit verify`.
fn verify_audit(exe: &Path, path: &PathBuf) -> Result<String, String> {
    let output = Command::new(exe)
        .args(["audit", "verify"])
        .arg(path)
        .env(CLI_ENV, "1")
        .output()
        .map_err(|e| e.to_string())?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(format!("{} {}", text(&output.stdout), text(&output.stderr)))
    }
}
