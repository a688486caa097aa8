//! What the runtime's controls cost per `tools/call`, measured side by side.
//!
//! `cargo run --release -p control-overhead [-- --case echo|policy-search|all
//! --requests N --warmup N --rounds N --concurrency N --no-pin]`
//!
//! For each case (the `echo` example, whose handler costs nothing, and the
//! policy-search example's `search_policies`, whose handler is most of a
//! call), three servers of the same tool run as child processes, so each
//! one's CPU time and peak memory can be read from `/proc`:
//!
//! - `on`: the generated server's own release binary (`target/release/echo`,
//!   `target/release/policy-search`: build them first with `cargo build
//!   --release -p echo -p policy-search`... one package at a time, so each has
//!   only its own features), `http`: OAuth bearer tokens checked against a
//!   JWKS this binary serves on loopback, input and output validation, the
//!   audit log, per-caller rate limits, kill switch, metrics;
//! - `off`: the same surface and handlers in the runtime's `McpServer` without
//!   controls, served by the same `serve::http` with no token checks (this binary);
//! - `bare`: the same tool on a plain rmcp server (rmcp's
//!   `StreamableHttpService`, stateless, JSON responses): for echo the
//!   standalone `bare-rmcp-hello` binary (bench/bare-rmcp-hello), on the
//!   system allocator, for search_policies this binary with the example's
//!   handler code (on mimalloc, as `on` and `off` are).
//!
//! Servers are pinned to one core and this client to the other, so the
//! client's work does not land on the servers' CPU figures. Each round runs
//! the modes in turn (bare, off, on) with a warm-up and a measured batch, so
//! machine noise hits all three alike. After the rounds the `on` server takes
//! one call per freshly minted token (the first-call cost: the signature is
//! verified). Peak RSS is read after the rounds and, for `on`, again after the
//! new tokens, each of which adds a subject to the token cache and the rate
//! limiter. The summary, Markdown tables, goes to stdout; progress to stderr.

mod idp;
mod load;
mod serve;
mod workload;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::load::{Outcome, Target};
use crate::workload::Workload;

/// A token's claims name a scope no tool needs: the `on` server must answer 403.
const UNRELATED_SCOPE: &str = "unrelated.scope";

/// The targets for the echo case, every control on against bare rmcp.
const TARGET_CPU: f64 = 1.25;
const TARGET_P99: f64 = 1.5;
const TARGET_RATE: f64 = 0.8;
const TARGET_RSS_MIB: f64 = 20.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bare,
    Off,
    On,
}

/// Measured in this order each round.
const MODES: [Mode; 3] = [Mode::Bare, Mode::Off, Mode::On];

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
            Mode::On => {
                "the generated server's release binary: OAuth (ES256, verified token cached), validation, audit, rate limits"
            }
            Mode::Off => "charter runtime without controls (validation on; no auth, audit or limits)",
            Mode::Bare => "rmcp `StreamableHttpService` and the same tool, no charter runtime",
        }
    }
}

struct Settings {
    cases: Vec<Workload>,
    /// Measured calls per mode per round; the workload's default when not given.
    requests: Option<usize>,
    warmup: Option<usize>,
    rounds: usize,
    concurrency: usize,
    pin: bool,
}

/// The generated servers' allocator, so `off` differs from `on` by the controls alone. It also
/// serves policy-search's `bare` (this binary); echo's `bare` is bare-rmcp-hello, on the system
/// allocator as a hand-written server would be unless built with `--features mimalloc`.
#[global_allocator]
static ALLOCATOR: charter_runtime::Allocator = charter_runtime::Allocator;

fn main() -> ExitCode {
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

const USAGE: &str = "usage: control-overhead [--case echo|policy-search|all (all)] [--requests N (echo 20000, policy-search 3000)] \
[--warmup N (requests/10)] [--rounds N (3)] [--concurrency N (8)] [--no-pin]";

fn parse_settings(args: &[String]) -> Result<Settings, String> {
    let mut settings = Settings {
        cases: Workload::ALL.to_vec(),
        requests: None,
        warmup: None,
        rounds: 3,
        concurrency: 8,
        pin: true,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let number = |value: Option<&String>| {
            value
                .and_then(|v| v.parse().ok())
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| format!("{flag} needs a positive number"))
        };
        match flag.as_str() {
            "--case" => {
                let value = args.next().map(String::as_str).unwrap_or_default();
                settings.cases = match value {
                    "all" => Workload::ALL.to_vec(),
                    name => vec![
                        Workload::parse(name)
                            .ok_or_else(|| format!("--case `{name}`: expected echo, policy-search or all"))?,
                    ],
                };
            }
            "--requests" => settings.requests = Some(number(args.next())?),
            "--warmup" => settings.warmup = Some(number(args.next())?),
            "--rounds" => settings.rounds = number(args.next())?,
            "--concurrency" => settings.concurrency = number(args.next())?,
            "--no-pin" => settings.pin = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(settings)
}

/// `serve --workload W --mode off|bare --listen ADDR`: one server, until killed.
fn serve_child(args: &[String]) -> Result<(), String> {
    let (mut workload, mut mode, mut listen) = (None, None, "127.0.0.1:0".to_string());
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--workload", Some(value)) => workload = Workload::parse(value),
            ("--mode", Some(value)) => mode = Some(value.clone()),
            ("--listen", Some(value)) => listen = value.clone(),
            _ => return Err(format!("serve: unexpected `{flag}`")),
        }
    }
    let workload = workload.ok_or("serve: --workload echo|policy-search")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        match mode.as_deref() {
            Some("off") => serve::off(workload, &listen).await,
            Some("bare") => serve::bare(workload, &listen).await,
            _ => Err("serve: --mode off|bare (`on` is the example's own command line)".into()),
        }
    })
}

/// The cores this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// A binary built beside this one (`target/release/NAME`).
fn sibling(exe: &Path, name: &str) -> Result<PathBuf, String> {
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it first with `cargo build --release -p {name}` (on its own, so it has only its own features)",
            path.display()
        ))
    }
}

/// Runs this process (and the threads it starts afterwards) on one core.
fn pin_to(cpu: usize) -> Result<(), String> {
    // SAFETY: as above; sched_setaffinity reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!("cannot pin to CPU {cpu}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

struct Server {
    mode: Mode,
    child: std::process::Child,
    url: String,
    /// The last lines the server wrote to stderr, for when something goes wrong.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    fn spawn(
        workload: Workload,
        mode: Mode,
        exe: &Path,
        env: &[(String, String)],
        cpu: Option<usize>,
    ) -> Result<Server, String> {
        let mut command = match (mode, workload) {
            (Mode::On, _) => {
                let mut command = Command::new(sibling(exe, workload.binary())?);
                command.args(["http", "--listen", "127.0.0.1:0"]);
                command
            }
            (Mode::Bare, Workload::Echo) => {
                let mut command = Command::new(sibling(exe, "bare-rmcp-hello")?);
                command.arg("127.0.0.1:0");
                command
            }
            (Mode::Off | Mode::Bare, _) => {
                let mut command = Command::new(exe);
                command.args([
                    "serve",
                    "--workload",
                    workload.name(),
                    "--mode",
                    mode.name(),
                    "--listen",
                    "127.0.0.1:0",
                ]);
                command
            }
        };
        // Only the settings given here: nothing inherited switches a control off or on.
        for (name, _) in std::env::vars() {
            if name.starts_with(workload.env_prefix()) || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        if mode == Mode::On {
            command.envs(env.iter().map(|(k, v)| (k, v)));
        }
        // In the child before it runs: it dies with the bench (even a killed
        // one), and every thread it starts runs on the servers' core.
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt as _;
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if let Some(cpu) = cpu {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
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

    /// The most memory the process has held resident (VmHWM), in MiB.
    fn peak_rss_mib(&self) -> Result<f64, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .ok_or_else(|| format!("no VmHWM in {path}"))
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

/// What one case measured, per mode (in [`MODES`] order).
struct Measured {
    phases: Vec<Vec<Phase>>,
    /// Each server's peak RSS over the rounds, read before the new-token phase.
    peak_rss_mib: Vec<f64>,
    subjects: usize,
    /// One call per new token, on the `on` server.
    fresh: Phase,
    /// The `on` server's peak RSS after the new-token phase: each new subject
    /// adds a verified-token cache entry and a rate-limiter key.
    fresh_peak_rss_mib: f64,
    /// Calls the `on` server took, every kind.
    calls_on: usize,
}

fn bench(settings: Settings) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    // Servers on the first core, this client on the second: each side's CPU stays its own.
    let cpus = allowed_cpus();
    let server_cpu = match (settings.pin, cpus.as_slice()) {
        (true, [server, client, ..]) => {
            pin_to(*client)?;
            Some(*server)
        }
        _ => None,
    };
    let scratch = std::env::temp_dir().join(format!("control-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    println!(
        "{}, {} rounds, concurrency {} (keep-alive connections), {}.\n",
        std::env::consts::ARCH,
        settings.rounds,
        settings.concurrency,
        match server_cpu {
            Some(cpu) => format!("servers pinned to CPU {cpu}, the client to CPU {}", cpus[1]),
            None => "not pinned".into(),
        }
    );
    let mut result = Ok(());
    for &workload in &settings.cases {
        let audit_path = scratch.join(format!("{}-audit.jsonl", workload.name()));
        let measured = runtime.block_on(measure(&settings, workload, &exe, &audit_path, server_cpu));
        let measured = match measured {
            Ok(measured) => measured,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        println!("{}", report(&settings, workload, &measured));
        match audit_check(&exe, workload, &audit_path, measured.calls_on) {
            Ok(summary) => println!("{summary}\n"),
            Err(e) => {
                result = Err(format!("the {} audit log: {e}", workload.name()));
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Runs one case's servers and rounds.
async fn measure(
    settings: &Settings,
    workload: Workload,
    exe: &Path,
    audit_path: &Path,
    server_cpu: Option<usize>,
) -> Result<Measured, String> {
    let idp = idp::Idp::start().await?;
    let prefix = workload.env_prefix();
    let env = [
        (format!("{prefix}OAUTH_ISSUER"), idp.issuer.clone()),
        (format!("{prefix}OAUTH_AUDIENCE"), workload.audience().to_string()),
        (format!("{prefix}OAUTH_JWKS_URI"), idp.jwks_uri()),
        (format!("{prefix}AUDIT_PATH"), audit_path.display().to_string()),
    ];
    let mut servers = Vec::new();
    for mode in MODES {
        eprintln!("{}: starting the {} server", workload.name(), mode.name());
        servers.push(Server::spawn(workload, mode, exe, &env, server_cpu)?);
    }
    let outcome = run_rounds(settings, workload, &servers, &idp).await;
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
    workload: Workload,
    servers: &[Server],
    idp: &idp::Idp,
) -> Result<Measured, String> {
    let client = load::client();
    let concurrency = settings.concurrency;
    let requests = settings.requests.unwrap_or(workload.default_requests());
    let warmup = settings.warmup.unwrap_or(requests / 10).max(1);
    let (audience, name) = (workload.audience(), workload.name());
    let on = &servers[2];

    // The `on` server must really check tokens: a call without one gets 401, one without the scope 403.
    let status = load::status_of(&client, workload, &on.url, None).await?;
    if status != 401 {
        return Err(format!(
            "the {name} on server answered {status} to a call without a token, not 401"
        ));
    }
    let wrong_scope = idp.mint(audience, "bench-no-scope", UNRELATED_SCOPE)?;
    let status = load::status_of(&client, workload, &on.url, Some(&wrong_scope)).await?;
    if status != 403 {
        return Err(format!(
            "the {name} on server answered {status} to a token without `{}`, not 403",
            workload.scope()
        ));
    }

    // Enough subjects that none exceeds its rate limit over the whole run, yet
    // every call is counted against one.
    let calls = settings.rounds * (warmup + requests);
    let subjects = calls.div_ceil(workload.calls_per_subject() - 1).max(1);
    let tokens = (0..subjects)
        .map(|i| idp.mint(audience, &format!("bench-user-{i:05}"), workload.scope()))
        .collect::<Result<Vec<_>, _>>()?;
    let target = |server: &Server, tokens: Vec<String>| {
        Arc::new(Target {
            url: server.url.clone(),
            workload,
            tokens,
            next: AtomicUsize::new(0),
        })
    };
    let targets: Vec<Arc<Target>> = servers
        .iter()
        .map(|server| {
            target(
                server,
                if server.mode == Mode::On {
                    tokens.clone()
                } else {
                    Vec::new()
                },
            )
        })
        .collect();

    // Each token's first call: the signature is verified, and the result cached.
    let first = load::run(&client, &targets[2], tokens.len(), concurrency).await;
    check(Mode::On, &first)?;
    let mut calls_on = 2 + first.requests();

    let mut phases: Vec<Vec<Phase>> = MODES.iter().map(|_| Vec::new()).collect();
    for round in 1..=settings.rounds {
        for (i, server) in servers.iter().enumerate() {
            let warm = load::run(&client, &targets[i], warmup, concurrency).await;
            check(server.mode, &warm)?;
            // Profilers attach on this line: `perf record -p PID` for the measured batch.
            eprintln!(
                "{name} round {round} {:>4}: measuring (server pid {})",
                server.mode.name(),
                server.child.id()
            );
            let before = server.cpu_seconds()?;
            let outcome = load::run(&client, &targets[i], requests, concurrency).await;
            let cpu = server.cpu_seconds()? - before;
            check(server.mode, &outcome)?;
            if server.mode == Mode::On {
                calls_on += warm.requests() + outcome.requests();
            }
            eprintln!(
                "{name} round {round} {:>4}: {:>7.0} req/s, p50 {:.3} ms, p99 {:.3} ms, CPU {:.1} us/req, peak RSS so far {:.1} MiB",
                server.mode.name(),
                outcome.latencies_us.len() as f64 / outcome.wall.as_secs_f64(),
                percentile(&outcome.latencies_us, 50.0) / 1000.0,
                percentile(&outcome.latencies_us, 99.0) / 1000.0,
                cpu * 1e6 / outcome.requests() as f64,
                server.peak_rss_mib()?,
            );
            phases[i].push(Phase { outcome, cpu });
        }
    }

    // Under load means the rounds: the new-token phase below grows the token
    // cache and the rate limiter by one subject per call, reported on its own.
    let peak_rss_mib = servers
        .iter()
        .map(Server::peak_rss_mib)
        .collect::<Result<Vec<_>, _>>()?;
    // Last, so the new tokens' cache entries cannot displace the rounds' tokens.
    let fresh_tokens = (0..(requests / 10).max(50))
        .map(|i| idp.mint(audience, &format!("bench-new-{i:05}"), workload.scope()))
        .collect::<Result<Vec<_>, _>>()?;
    let fresh_target = target(on, fresh_tokens);
    let before = on.cpu_seconds()?;
    let outcome = load::run(&client, &fresh_target, fresh_target.tokens.len(), concurrency).await;
    let cpu = on.cpu_seconds()? - before;
    check(Mode::On, &outcome)?;
    calls_on += outcome.requests();
    Ok(Measured {
        phases,
        peak_rss_mib,
        subjects,
        fresh: Phase { outcome, cpu },
        fresh_peak_rss_mib: on.peak_rss_mib()?,
        calls_on,
    })
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

/// The figures of one batch, or of several pooled.
struct Figures {
    rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    cpu_us: f64,
    throttled: usize,
}

impl Figures {
    fn of(phases: &[&Phase]) -> Figures {
        let requests: usize = phases.iter().map(|p| p.outcome.requests()).sum();
        let latencies: Vec<u32> = phases
            .iter()
            .flat_map(|p| p.outcome.latencies_us.iter().copied())
            .collect();
        let wall: f64 = phases.iter().map(|p| p.outcome.wall.as_secs_f64()).sum();
        let cpu: f64 = phases.iter().map(|p| p.cpu).sum();
        Figures {
            rate: requests as f64 / wall,
            p50: percentile(&latencies, 50.0) / 1000.0,
            p99: percentile(&latencies, 99.0) / 1000.0,
            p999: percentile(&latencies, 99.9) / 1000.0,
            cpu_us: cpu * 1e6 / requests.max(1) as f64,
            throttled: phases.iter().map(|p| p.outcome.throttled).sum(),
        }
    }
}

fn report(settings: &Settings, workload: Workload, measured: &Measured) -> String {
    let requests = settings.requests.unwrap_or(workload.default_requests());
    let warmup = settings.warmup.unwrap_or(requests / 10).max(1);
    let pooled: Vec<Figures> = measured
        .phases
        .iter()
        .map(|phases| Figures::of(&phases.iter().collect::<Vec<_>>()))
        .collect();
    let rounds: Vec<Vec<Figures>> = measured
        .phases
        .iter()
        .map(|phases| phases.iter().map(|p| Figures::of(&[p])).collect())
        .collect();
    let fresh = Figures::of(&[&measured.fresh]);
    let bare = &pooled[0];
    let mut out = format!(
        "### `{}`: `tools/call` `{}` {}\n\n{} rounds x {requests} measured calls per mode (after {warmup} warm-up calls each round)\n\n",
        workload.name(),
        workload.tool(),
        workload.arguments(),
        settings.rounds,
    );
    out.push_str(
        "| mode | what serves the call | requests/s | p50 | p99 | p99.9 | server CPU per request | peak RSS | CPU vs bare | p99 vs bare | req/s vs bare |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let row = |name: &str, what: &str, f: &Figures, rss: f64| {
        format!(
            "| `{name}` | {what} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} µs | {rss:.1} MiB | {:.2}x | {:.2}x | {:.2}x |\n",
            f.rate,
            f.p50,
            f.p99,
            f.p999,
            f.cpu_us,
            f.cpu_us / bare.cpu_us,
            f.p99 / bare.p99,
            f.rate / bare.rate,
        )
    };
    for (i, mode) in MODES.iter().enumerate() {
        out.push_str(&row(mode.name(), mode.what(), &pooled[i], measured.peak_rss_mib[i]));
    }
    out.push_str(&row(
        "on, new token per call",
        &format!(
            "as `on`, each call with a token never seen (ES256 signature verified); peak RSS after these {} new subjects",
            measured.fresh.outcome.requests()
        ),
        &fresh,
        measured.fresh_peak_rss_mib,
    ));
    // Each round's modes ran back to back, so a round's ratio compares like with like
    // even when the machine's load drifts between rounds.
    let ratio = |mode: usize, value: fn(&Figures) -> f64| -> Vec<f64> {
        rounds[mode]
            .iter()
            .zip(&rounds[0])
            .map(|(m, b)| value(m) / value(b))
            .collect()
    };
    let show = |ratios: &[f64]| {
        format!(
            "{} (median {:.2})",
            ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" / "),
            median(ratios)
        )
    };
    out.push_str("\nBy round (each round measures bare, off and on back to back):\n\n");
    for (i, mode) in MODES.iter().enumerate() {
        let cpu: Vec<String> = rounds[i].iter().map(|f| format!("{:.1}", f.cpu_us)).collect();
        let p99: Vec<String> = rounds[i].iter().map(|f| format!("{:.2}", f.p99)).collect();
        let rate: Vec<String> = rounds[i].iter().map(|f| format!("{:.0}", f.rate)).collect();
        out.push_str(&format!(
            "- `{}`: CPU {} µs; p99 {} ms; {} req/s\n",
            mode.name(),
            cpu.join(" / "),
            p99.join(" / "),
            rate.join(" / ")
        ));
    }
    for (i, mode) in MODES.iter().enumerate().skip(1) {
        out.push_str(&format!(
            "- {}/bare: CPU {}; p99 {}; req/s {}\n",
            mode.name(),
            show(&ratio(i, |f| f.cpu_us)),
            show(&ratio(i, |f| f.p99)),
            show(&ratio(i, |f| f.rate)),
        ));
    }
    let on = &pooled[2];
    if workload == Workload::Echo {
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        let rss = measured.peak_rss_mib[2];
        out.push_str(&format!(
            "\nTargets, every control on against bare rmcp over all rounds: CPU per request {:.2}x (at most {TARGET_CPU}x: {}), \
             p99 {:.2}x (at most {TARGET_P99}x: {}), throughput {:.2}x (at least {TARGET_RATE}x: {}), peak RSS {rss:.1} MiB \
             (at most {TARGET_RSS_MIB} MiB: {}).\n",
            on.cpu_us / bare.cpu_us,
            verdict(on.cpu_us / bare.cpu_us <= TARGET_CPU),
            on.p99 / bare.p99,
            verdict(on.p99 / bare.p99 <= TARGET_P99),
            on.rate / bare.rate,
            verdict(on.rate / bare.rate >= TARGET_RATE),
            verdict(rss <= TARGET_RSS_MIB),
        ));
    }
    out.push_str(&format!(
        "\nRate limits: {} token subjects, at most {} calls each; throttled calls: bare {}, off {}, on {}.\n",
        measured.subjects,
        workload.calls_per_subject(),
        pooled[0].throttled,
        pooled[1].throttled,
        on.throttled,
    ));
    out
}

/// Checks the `on` server's audit log: its chain, with the example's own
/// `audit verify`, and one record per call the server took.
fn audit_check(exe: &Path, workload: Workload, path: &Path, calls: usize) -> Result<String, String> {
    let output = Command::new(sibling(exe, workload.binary())?)
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    if !output.status.success() {
        return Err(format!("{} {}", text(&output.stdout), text(&output.stderr)));
    }
    let log = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut events: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines() {
        let record: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        *events
            .entry(record["event"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let per_call = events.get("outcome").copied().unwrap_or(0) + events.get("denied").copied().unwrap_or(0);
    if per_call != calls {
        return Err(format!(
            "{per_call} outcome and denied records for {calls} calls the server took ({events:?})"
        ));
    }
    let counts: Vec<String> = events.iter().map(|(event, n)| format!("{n} {event}")).collect();
    Ok(format!(
        "Audit log of the `on` server: `audit verify` passes; {} records ({}), one outcome or denied record for each of the {calls} calls it took (2 refused on purpose).",
        log.lines().count(),
        counts.join(", "),
    ))
}
