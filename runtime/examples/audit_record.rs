//! What one audit record costs: the request path's part and the whole process's.
//!
//! `cargo run --release -p charter-runtime --example audit_record [-- RECORDS_PER_BATCH BATCHES]`
//!
//! (An example, not a `[[bench]]`: generated crates vendor the runtime's
//! manifest verbatim, without this directory.)
//!
//! The end-to-end bench (bench/control-overhead) cannot resolve a change below
//! about 1 µs a call: its spread is wider than that. This one times the audit
//! log alone, with the `outcome` record of an echo call as `Trail` makes it,
//! written to a real file in the system's temporary directory:
//!
//! - the caller's CPU per record (`CLOCK_THREAD_CPUTIME_ID`): encoding, linking,
//!   hashing and queueing, what a request thread spends;
//! - the process's CPU per record (`getrusage`), which adds the writer thread:
//!   its `write` and `fdatasync` calls, and parking.
//!
//! Records are sent at a steady rate, close to the echo server's (about
//! 30,000 a second), so the writer batches as it does under load. Prints the
//! median over the batches, and checks the log with `audit verify`.

use std::time::{Duration, Instant};

use charter_runtime::audit::{AuditLog, Decision, Event, Fields};
use serde_json::json;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: charter_runtime::Allocator = charter_runtime::Allocator;

/// Records a second, about the echo server's rate under load.
const RATE: u64 = 30_000;
/// Records sent back to back between pauses (about 2 ms of them at [`RATE`]).
const CHUNK: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let per_batch = count(args.next(), "RECORDS_PER_BATCH", 30_000) as u64;
    let batches = count(args.next(), "BATCHES", 7);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.jsonl");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let log = AuditLog::open(&path).expect("the audit log opens");

    let arguments = json!({"text": "[redacted]"});
    let request_ids: Vec<String> = (0..per_batch).map(|n| n.to_string()).collect();
    let mut caller = Vec::new();
    let mut process = Vec::new();
    for batch in 0..=batches {
        let process_before = process_cpu();
        let mut caller_time = Duration::ZERO;
        let started = Instant::now();
        for (chunk, ids) in request_ids.chunks(CHUNK).enumerate() {
            // The caller's clock is read around each chunk, not each record: a
            // read is a system call, and the sleeps between chunks are not the
            // request path's.
            let before = thread_cpu();
            for request_id in ids {
                log.record_fields(Fields {
                    request_id: Some(request_id),
                    trace_id: Some("96b7c37318bfbd82b3bf721cf5bb203e"),
                    transport: Some("http"),
                    subject: Some("bench-subject-17"),
                    kind: Some("tool"),
                    name: Some("echo"),
                    effect: Some("read"),
                    arguments: Some(&arguments),
                    contract_version: Some("1.0.0"),
                    definition_hash: Some("ecc6875f98e1105a6528c0e55cd5f08a910cd549f49799463b034cc403762b69"),
                    decision: Some(Decision::Allow),
                    outcome: Some("ok"),
                    latency_ms: Some(0),
                    ..Fields::new(Event::Outcome)
                });
            }
            caller_time += thread_cpu() - before;
            pace(started, ((chunk + 1) * CHUNK) as u64);
        }
        runtime.block_on(log.flush());
        let process_after = process_cpu();
        // The first batch warms the allocator, the file and the page cache.
        if batch > 0 {
            caller.push(caller_time.as_nanos() as f64 / per_batch as f64);
            process.push((process_after - process_before).as_nanos() as f64 / per_batch as f64);
        }
    }
    runtime.block_on(log.close());
    let summary = charter_runtime::audit::verify(&path).expect("the log verifies");
    assert_eq!(summary.records, (batches as u64 + 1) * per_batch, "one record per call");
    assert_eq!(log.failures(), 0, "no record failed or was dropped");

    println!(
        "{batches} batches x {per_batch} `outcome` records at {RATE} a second, after one warm-up batch; \
         {} records verified",
        summary.records
    );
    println!("| per record | median | batches |");
    println!("|---|---|---|");
    println!(
        "| caller's CPU (encode, link, hash, queue) | {:.0} ns | {} |",
        median(&caller),
        list(&caller)
    );
    println!(
        "| process CPU (adds the writer: write, fdatasync, parking) | {:.0} ns | {} |",
        median(&process),
        list(&process)
    );
}

/// A positive whole number from the command line, or `default` when absent;
/// anything else ends the run with the usage.
fn count(arg: Option<String>, name: &str, default: usize) -> usize {
    let Some(arg) = arg else { return default };
    match arg.parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!(
                "audit_record: {name} must be a whole number above 0, not {arg:?}\n\
                 usage: cargo run --release -p charter-runtime --example audit_record [-- RECORDS_PER_BATCH BATCHES]"
            );
            std::process::exit(2);
        }
    }
}

/// Sleeps until record `sent` is due, so records arrive at [`RATE`].
fn pace(started: Instant, sent: u64) {
    let due = started + Duration::from_nanos(sent * 1_000_000_000 / RATE);
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

fn thread_cpu() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn process_cpu() -> Duration {
    // SAFETY: getrusage writes the rusage it is given; zeroed is a valid start.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn list(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(" / ")
}
