//! The audit log: chain, verifier, durability, failure and crash behaviour, redaction.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use charter_runtime::audit::{self, AuditError, AuditLog, Decision, Entry, Event, Problem, Record, Redaction};
use serde_json::{Value, json};

fn intent(request_id: &str) -> Record {
    Record {
        request_id: Some(request_id.into()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        transport: Some("http".into()),
        subject: Some("alice".into()),
        client: Some("claude".into()),
        kind: Some("tool".into()),
        name: Some("refund_payment".into()),
        effect: Some("write".into()),
        arguments: Some(json!({"payment_id": "pay_123", "amount": 1250})),
        decision: Some(Decision::Allow),
        contract_version: Some("1.4.0".into()),
        definition_hash: Some("sha256:abc".into()),
        ..Record::new(Event::Intent)
    }
}

fn outcome(request_id: &str) -> Record {
    Record {
        request_id: Some(request_id.into()),
        kind: Some("tool".into()),
        name: Some("search".into()),
        effect: Some("read".into()),
        outcome: Some("ok".into()),
        latency_ms: Some(12),
        ..Record::new(Event::Outcome)
    }
}

/// The log's complete lines (a record a crash cut off mid-write has no newline).
fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    lines.pop();
    lines
}

fn entries(path: &Path) -> Vec<Entry> {
    lines(path).iter().map(|l| Entry::parse(l).unwrap()).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// A log of `n` records, closed.
async fn log_of(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for i in 0..n {
        if i % 2 == 0 {
            log.intent(intent(&format!("r{i}"))).await.unwrap();
        } else {
            log.record(outcome(&format!("r{i}")));
        }
    }
    log.close().await;
    path
}

#[tokio::test]
async fn records_are_chained_and_carry_what_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_of(dir.path(), 4).await;
    let found = entries(&path);
    assert_eq!(found.len(), 4);
    assert_eq!(found[0].prev, audit::GENESIS);
    for (i, entry) in found.iter().enumerate() {
        assert_eq!(entry.seq, i as u64 + 1);
        if i > 0 {
            assert_eq!(entry.prev, found[i - 1].hash);
        }
        // RFC 3339, UTC, milliseconds: 2026-05-01T12:00:00.123Z
        assert_eq!(entry.time.len(), 24, "{}", entry.time);
        assert!(entry.time.ends_with('Z') && entry.time.as_bytes()[19] == b'.');
    }
    assert_eq!(found[0].record, intent("r0"));
    assert_eq!(found[1].record, outcome("r1"));
    // Fields that do not apply are left out; keys are in byte order, `hash` last.
    let first = &lines(&path)[0];
    assert!(!first.contains("null"), "{first}");
    assert!(
        first
            .starts_with(r#"{"arguments":{"amount":1250,"payment_id":"pay_123"},"client":"claude","contract_version""#),
        "{first}"
    );
    assert!(first.ends_with(&format!(r#","hash":"{}"}}"#, found[0].hash)));
    let summary = audit::verify(&path).unwrap();
    assert_eq!(summary.records, 4);
    assert_eq!((summary.first_seq, summary.last_seq), (Some(1), Some(4)));
    assert_eq!(summary.last_hash, found[3].hash);
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_log_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = log_of(dir.path(), 1).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn the_chain_continues_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_of(dir.path(), 3).await;
    let log = AuditLog::open(&path).unwrap();
    log.intent(intent("again")).await.unwrap();
    log.record(outcome("again"));
    log.close().await;
    let found = entries(&path);
    assert_eq!(found.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(found[3].prev, found[2].hash);
    assert_eq!(audit::verify(&path).unwrap().records, 5);
}

#[tokio::test]
async fn an_empty_file_starts_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, "").unwrap();
    assert_eq!(audit::verify(&path).unwrap().records, 0);
    assert_eq!(audit::verify(&path).unwrap().last_hash, audit::GENESIS);
    let log = AuditLog::open(&path).unwrap();
    log.intent(intent("first")).await.unwrap();
    log.close().await;
    assert_eq!(entries(&path)[0].seq, 1);
}

#[tokio::test]
async fn a_log_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let error = AuditLog::open(&path).unwrap_err();
    assert!(error.contains("in use"), "{error}");
    log.close().await;
    AuditLog::open(&path).unwrap().close().await;
}

#[tokio::test]
async fn an_interrupted_last_write_is_cut_off_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_of(dir.path(), 3).await;
    let whole = std::fs::read(&path).unwrap();
    let third = whole[..whole.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let mut bytes = whole.clone();
    bytes.truncate(whole.len() - 10);
    std::fs::write(&path, &bytes).unwrap();
    // The verifier reports it, and the chain before it holds.
    let summary = audit::verify(&path).unwrap();
    assert_eq!(summary.records, 2);
    assert_eq!(summary.incomplete_tail, Some((bytes.len() - third) as u64));
    assert!(summary.to_string().contains("incomplete record"), "{summary}");
    // Opening cuts it off and continues the chain from record 2.
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.cut_on_open(), (bytes.len() - third) as u64);
    log.intent(intent("after-crash")).await.unwrap();
    log.close().await;
    assert_eq!(&std::fs::read(&path).unwrap()[..third], &whole[..third]);
    let found = entries(&path);
    assert_eq!(found[2].seq, 3);
    assert_eq!(found[2].record.request_id.as_deref(), Some("after-crash"));
    let summary = audit::verify(&path).unwrap();
    assert_eq!((summary.records, summary.incomplete_tail), (3, None));
}

#[tokio::test]
async fn a_damaged_tail_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_of(dir.path(), 3).await;
    let mut all = lines(&path);
    all[2] = all[2].replace("\"r2\"", "\"r9\"");
    write_lines(&path, &all);
    let before = std::fs::read(&path).unwrap();
    let error = AuditLog::open(&path).unwrap_err();
    assert!(
        error.contains("damaged last record") && error.contains("verify"),
        "{error}"
    );
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file was changed");

    // Something other than a record after the last newline.
    let path = dir.path().join("other.jsonl");
    let log = AuditLog::open(&path).unwrap();
    log.intent(intent("x")).await.unwrap();
    log.close().await;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"hello");
    std::fs::write(&path, &bytes).unwrap();
    let error = AuditLog::open(&path).unwrap_err();
    assert!(error.contains("not a record"), "{error}");
    let broken = audit::verify(&path).unwrap_err();
    assert_eq!((broken.line, broken.problem), (2, Problem::Malformed), "{broken}");

    // A file that is not an audit log at all is never cut.
    let path = dir.path().join("config.json");
    std::fs::write(&path, br#"{"a": 1}"#).unwrap();
    assert!(AuditLog::open(&path).unwrap_err().contains("no complete record"));
    assert_eq!(std::fs::read(&path).unwrap(), br#"{"a": 1}"#);
}

#[cfg(target_os = "linux")]
#[test]
fn only_regular_files() {
    let error = AuditLog::open(Path::new("/dev/full")).unwrap_err();
    assert!(error.contains("not a regular file"), "{error}");
    let dir = tempfile::tempdir().unwrap();
    assert!(AuditLog::open(dir.path()).is_err());
}

/// Edits the log at `path` and returns what the verifier says.
fn tamper(path: &Path, edit: impl FnOnce(&mut Vec<String>)) -> audit::Broken {
    let original = lines(path);
    let mut edited = original.clone();
    edit(&mut edited);
    write_lines(path, &edited);
    let broken = audit::verify(path).unwrap_err();
    write_lines(path, &original);
    broken
}

#[tokio::test]
async fn verify_names_the_first_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_of(dir.path(), 6).await;
    assert_eq!(audit::verify(&path).unwrap().records, 6);

    // An edited field.
    let broken = tamper(&path, |l| l[2] = l[2].replace("alice", "mallory"));
    assert_eq!((broken.line, broken.problem), (3, Problem::Edited), "{broken}");
    assert_eq!(broken.verified, 2);
    assert!(
        broken.to_string().starts_with("line 3: record 3 was changed"),
        "{broken}"
    );

    // A deleted record.
    let broken = tamper(&path, |l| {
        l.remove(3);
    });
    assert_eq!((broken.line, broken.problem), (4, Problem::Missing), "{broken}");
    assert!(broken.message.contains("expected record 4, found 5"), "{broken}");

    // The first record deleted.
    let broken = tamper(&path, |l| {
        l.remove(0);
    });
    assert_eq!((broken.line, broken.problem), (1, Problem::Missing), "{broken}");

    // Two records swapped.
    let broken = tamper(&path, |l| l.swap(1, 2));
    assert_eq!((broken.line, broken.problem), (2, Problem::Missing), "{broken}");

    // A record repeated.
    let broken = tamper(&path, |l| {
        let copy = l[4].clone();
        l.insert(5, copy);
    });
    assert_eq!((broken.line, broken.problem), (6, Problem::OutOfOrder), "{broken}");

    // A prev changed and the record's hash recomputed to match: the link breaks.
    let broken = tamper(&path, |l| {
        let entry = Entry::parse(&l[3]).unwrap();
        l[3] = rehash(&l[3].replace(&entry.prev, &"1".repeat(64)), &"1".repeat(64));
    });
    assert_eq!((broken.line, broken.problem), (4, Problem::Unlinked), "{broken}");

    // A record rewritten with a fresh hash: the next one no longer links.
    let broken = tamper(&path, |l| {
        let entry = Entry::parse(&l[1]).unwrap();
        l[1] = rehash(&l[1].replace("\"ok\"", "\"error\""), &entry.prev);
    });
    assert_eq!((broken.line, broken.problem), (3, Problem::Unlinked), "{broken}");

    // Not JSON.
    let broken = tamper(&path, |l| l[4] = "hello".into());
    assert_eq!((broken.line, broken.problem), (5, Problem::Malformed), "{broken}");

    // An empty line.
    let broken = tamper(&path, |l| l.insert(2, String::new()));
    assert_eq!((broken.line, broken.problem), (3, Problem::Malformed), "{broken}");

    let broken = audit::verify(&dir.path().join("missing.jsonl")).unwrap_err();
    assert_eq!((broken.line, broken.problem), (0, Problem::Unreadable), "{broken}");
}

/// Recomputes a line's hash the way the format defines it (what a forger would do).
fn rehash(line: &str, prev: &str) -> String {
    use sha2::{Digest, Sha256};
    let cut = line.rfind(",\"hash\":\"").unwrap();
    let body = format!("{}}}", &line[..cut]);
    let hash = Sha256::new()
        .chain_update(prev.as_bytes())
        .chain_update(body.as_bytes())
        .finalize();
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{},\"hash\":\"{hex}\"}}", &line[..cut])
}

#[test]
fn the_hash_is_reproducible_from_the_line_alone() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = rt.block_on(log_of(dir.path(), 3));
    for line in lines(&path) {
        let entry = Entry::parse(&line).unwrap();
        assert_eq!(rehash(&line, &entry.prev), line);
    }
}

#[tokio::test]
async fn an_intent_is_on_disk_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for i in 0..20 {
        let id = format!("w{i}");
        log.intent(intent(&id)).await.unwrap();
        // Read through a separate handle right away: the line is there, whole.
        let found = entries(&path);
        assert_eq!(found.last().unwrap().record.request_id.as_deref(), Some(id.as_str()));
    }
    assert!(log.healthy());
    assert_eq!(log.failures(), 0);
    log.close().await;
}

#[tokio::test]
async fn records_not_waited_for_arrive_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let started = Instant::now();
    log.record(outcome("read-1"));
    loop {
        if std::fs::read_to_string(&path).unwrap().contains("read-1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the record never reached the file"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    log.record(outcome("read-2"));
    log.flush().await;
    assert!(std::fs::read_to_string(&path).unwrap().contains("read-2"));
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_make_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let id = format!("t{task}-{i}");
                if i % 3 == 0 {
                    log.intent(intent(&id)).await.unwrap();
                } else if i % 3 == 1 {
                    log.durable(Record::new(Event::ApprovalDecided)).await.unwrap();
                } else {
                    log.record(outcome(&id));
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    log.close().await;
    let summary = audit::verify(&path).unwrap();
    assert_eq!(summary.records, 16 * 25);
    let found = entries(&path);
    for task in 0..16 {
        for i in (0..25).filter(|i| i % 3 != 1) {
            let id = format!("t{task}-{i}");
            assert!(
                found
                    .iter()
                    .any(|e| e.record.request_id.as_deref() == Some(id.as_str())),
                "{id} missing"
            );
        }
    }
}

#[tokio::test]
async fn after_close_durable_records_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let other = log.clone();
    log.record(outcome("before"));
    log.close().await;
    assert!(lines(&path)[0].contains("before"), "close syncs what was queued");
    assert_eq!(other.intent(intent("late")).await, Err(AuditError::Closed));
    let failures = other.failures();
    other.record(outcome("late"));
    assert_eq!(other.failures(), failures + 1);
    other.flush().await; // returns at once
}

#[test]
fn injected_text_stays_inside_one_record() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let nasty = "x\"}\n{\"event\":\"intent\",\"seq\":99,\"hash\":\"00\"}\r\n\u{1b}[31mred\u{1b}[0m\u{2028}\u{0}";
    let record = Record {
        arguments: Some(json!({ "note": nasty, "nested": [nasty, {"k": nasty}] })),
        name: Some(nasty.into()),
        reason: Some(nasty.into()),
        ..intent("inject")
    };
    rt.block_on(async {
        let log = AuditLog::open(&path).unwrap();
        log.intent(record.clone()).await.unwrap();
        log.intent(intent("next")).await.unwrap();
        log.close().await;
    });
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches('\n').count(), 2, "{text}");
    assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\0'));
    let found = entries(&path);
    assert_eq!(found[0].record, record);
    assert_eq!(found[1].seq, 2);
    assert_eq!(audit::verify(&path).unwrap().records, 2);
}

#[test]
fn redaction_by_data_class() {
    let arguments = json!({
        "email": "ann@example.com",
        "amount": 12.5,
        "count": 3,
        "confirmed": true,
        "memo": null,
        "tags": ["a", "b"],
        "address": {"city": "Oslo", "lines": []}
    });
    assert_eq!(audit::redact(&arguments, Redaction::Full), Some(arguments.clone()));
    assert_eq!(audit::redact(&arguments, Redaction::Omit), None);
    assert_eq!(
        audit::redact(&arguments, Redaction::Redact),
        Some(json!({
            "email": "[redacted]",
            "amount": "[redacted]",
            "count": "[redacted]",
            "confirmed": "[redacted]",
            "memo": "[redacted]",
            "tags": ["[redacted]", "[redacted]"],
            "address": {"city": "[redacted]", "lines": []}
        }))
    );
    let hashed = audit::redact(&arguments, Redaction::Hash).unwrap();
    let sha = |text: &str| {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(text.as_bytes());
        format!(
            "sha256:{}",
            digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    };
    assert_eq!(hashed["email"], sha("\"ann@example.com\""));
    assert_eq!(hashed["amount"], sha("12.5"));
    assert_eq!(hashed["count"], sha("3"));
    assert_ne!(hashed["count"], sha("\"3\""), "a number and a string differ");
    assert_eq!(hashed["confirmed"], true);
    assert_eq!(hashed["memo"], Value::Null);
    assert_eq!(hashed["tags"][1], sha("\"b\""));
    assert_eq!(hashed["address"]["lines"], json!([]));
    assert!(!hashed.to_string().contains("ann@") && !hashed.to_string().contains("Oslo"));
    // The same value hashes the same wherever it appears.
    assert_eq!(
        audit::redact(&json!({"x": "ann@example.com"}), Redaction::Hash).unwrap()["x"],
        hashed["email"]
    );

    for how in [Redaction::Full, Redaction::Hash, Redaction::Redact, Redaction::Omit] {
        assert_eq!(serde_json::from_value::<Redaction>(json!(how.as_str())).unwrap(), how);
        assert_eq!(serde_json::to_value(how).unwrap(), how.as_str());
    }
    // An unknown mode is an error where the surface is read, never a silent default.
    let unknown = serde_json::from_value::<Redaction>(json!("secret"))
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown variant `secret`"), "{unknown}");
}

// --- Child processes: a failing disk (RLIMIT_FSIZE) and a SIGKILL mid-write. ---

const CHILD: &str = "CHARTER_AUDIT_TEST_CHILD";
const CHILD_LOG: &str = "CHARTER_AUDIT_TEST_LOG";

/// Runs `test` of this binary in a child process with `mode`, returning the child.
fn spawn_child(test: &str, mode: &str, log: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .env(CHILD_LOG, log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The child side; a no-op in an ordinary test run.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD) else { return };
    let path = PathBuf::from(std::env::var(CHILD_LOG).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match mode.as_str() {
        "crash" => rt.block_on(crash_child(&path)),
        #[cfg(unix)]
        "full" => rt.block_on(full_disk_child(&path)),
        #[cfg(unix)]
        "full-concurrent" => rt.block_on(full_disk_concurrent_child(&path)),
        other => panic!("unknown child mode {other}"),
    }
}

/// Writes intents from several tasks until killed, printing each acknowledged id.
async fn crash_child(path: &Path) {
    use std::io::Write as _;
    let log = AuditLog::open(path).unwrap();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("c{task}-{i}");
                log.record(outcome(&format!("{id}-read")));
                // Long lines: batches span pages, where a kill can cut a write short.
                let record = Record {
                    reason: Some("x".repeat(3000)),
                    ..intent(&id)
                };
                log.intent(record).await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "acked {id}").unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[cfg(unix)]
#[test]
fn a_killed_writer_loses_no_acknowledged_intent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut acked = Vec::new();
    for round in 0..3 {
        let mut child = spawn_child("child_process", "crash", &path);
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let wanted = acked.len() + 150 + round * 37;
        while acked.len() < wanted {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the child stopped early");
            if let Some(id) = line.trim().strip_prefix("acked ") {
                acked.push(id.to_string());
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements printed before the kill landed count too.
        for line in stdout.lines() {
            if let Some(id) = line.unwrap().trim().strip_prefix("acked ") {
                acked.push(id.to_string());
            }
        }
        // The chain holds; at most the record being written when the kill
        // landed is cut off (never acknowledged), and reopening removes it.
        let summary = audit::verify(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let found: std::collections::HashSet<String> = entries(&path)
            .into_iter()
            .filter(|e| e.record.event == Event::Intent)
            .filter_map(|e| e.record.request_id)
            .collect();
        for id in &acked {
            assert!(
                found.contains(id),
                "round {round}: acknowledged intent {id} is not in the log"
            );
        }
        assert!(summary.records as usize >= acked.len());
    }
    // The log stays usable after the crashes.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let log = AuditLog::open(&path).unwrap();
        log.intent(intent("after")).await.unwrap();
        log.close().await;
    });
    audit::verify(&path).unwrap();
}

/// With the file size capped (`ulimit -f`), writes fail with EFBIG part-way:
/// intents are refused, the log turns unhealthy, and once the cap is lifted
/// the chain continues whole, with the records nobody waited for written again.
#[cfg(unix)]
async fn full_disk_child(path: &Path) {
    let log = AuditLog::open(path).unwrap();
    log.intent(intent("fits")).await.unwrap();
    let size = std::fs::metadata(path).unwrap().len();
    cap_file_size(Some(size + 100));

    log.record(outcome("queued-while-full"));
    let refused = log.intent(intent("refused")).await;
    assert!(matches!(refused, Err(AuditError::Write(_))), "{refused:?}");
    assert!(!log.healthy());
    assert!(log.failures() >= 1);
    assert_eq!(log.intent(intent("refused-again")).await.map_err(|_| ()), Err(()));
    // The failed write was cut back: the file holds only whole, chained records.
    assert_eq!(std::fs::metadata(path).unwrap().len(), size);
    audit::verify(path).unwrap();

    cap_file_size(None);
    log.intent(intent("recovered")).await.unwrap();
    assert!(log.healthy());
    // Callers chained the refused intents, which were never written: the writer linked what
    // followed them again, and callers link to its end from here on.
    log.record(outcome("after-recovery"));
    log.intent(intent("after-recovery-intent")).await.unwrap();
    log.close().await;
    println!("child done");
}

/// Sets the file size cap of this (child) process, ignoring SIGXFSZ so a write past it fails
/// with EFBIG instead of killing the process.
#[cfg(unix)]
fn cap_file_size(bytes: Option<u64>) {
    // SAFETY: plain libc calls on this (child) process; no memory is shared.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.map_or(limit.rlim_max, |b| b as libc::rlim_t);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// Callers chain records on their own threads; here four tasks do so while the disk fills
/// part-way through, so the writer must link again what follows the refused intents, with
/// callers still chaining to the old end. Prints each intent's fate.
#[cfg(unix)]
async fn full_disk_concurrent_child(path: &Path) {
    let log = AuditLog::open(path).unwrap();
    log.intent(intent("fits")).await.unwrap();
    let size = std::fs::metadata(path).unwrap().len();
    cap_file_size(Some(size + 3000));
    let mut tasks = Vec::new();
    for task in 0..4 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut fates = Vec::new();
            for i in 0..300 {
                log.record(outcome(&format!("t{task}-{i}")));
                if i % 60 == 0 {
                    let id = format!("i{task}-{i}");
                    let fate = if log.intent(intent(&id)).await.is_ok() {
                        "acknowledged"
                    } else {
                        "refused"
                    };
                    fates.push(format!("{fate} {id}"));
                }
                tokio::task::yield_now().await;
            }
            fates
        }));
    }
    for task in tasks {
        for fate in task.await.unwrap() {
            println!("{fate}");
        }
    }
    cap_file_size(None);
    log.flush().await;
    log.intent(intent("recovered")).await.unwrap();
    log.close().await;
    println!("child done");
}

/// Every record nobody waited for is written once the disk has room again, in one whole chain;
/// every acknowledged intent is in it and no refused one.
#[cfg(unix)]
#[test]
fn a_disk_filling_under_concurrent_callers_keeps_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let child = spawn_child("child_process", "full-concurrent", &path)
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success() && stdout.contains("child done"), "{stdout}");
    audit::verify(&path).unwrap();
    let ids: Vec<String> = entries(&path).into_iter().filter_map(|e| e.record.request_id).collect();
    let outcomes = ids.iter().filter(|id| id.starts_with('t')).count();
    assert_eq!(outcomes, 4 * 300, "records nobody waited for were lost");
    let mut refused = 0;
    for line in stdout.lines() {
        if let Some(id) = line.strip_prefix("acknowledged ") {
            assert!(
                ids.iter().any(|i| i == id),
                "acknowledged intent {id} is not in the log"
            );
        } else if let Some(id) = line.strip_prefix("refused ") {
            assert!(!ids.iter().any(|i| i == id), "refused intent {id} is in the log");
            refused += 1;
        }
    }
    assert!(refused > 0, "the disk never filled: {stdout}");
    assert_eq!(ids.last().map(String::as_str), Some("recovered"));
}

#[cfg(unix)]
#[test]
fn a_failing_disk_fails_intents_closed_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let child = spawn_child("child_process", "full", &path).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success() && stdout.contains("child done"), "{stdout}");
    audit::verify(&path).unwrap();
    let ids: Vec<String> = entries(&path).into_iter().filter_map(|e| e.record.request_id).collect();
    assert_eq!(
        ids,
        [
            "fits",
            "queued-while-full",
            "recovered",
            "after-recovery",
            "after-recovery-intent"
        ]
    );
}
