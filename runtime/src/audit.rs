//! The audit log: one JSON line per request decision and outcome, appended to
//! a file, hash-chained so that an edited, deleted or reordered record shows,
//! and made durable before any call that changes something runs.
//!
//! Each line is one record: the caller's [`Record`] plus four fields the
//! writer adds, `seq` (1 for a file's first record, then consecutive: the
//! order written), `time` (when the record was made, RFC 3339 UTC,
//! milliseconds), `prev` (the previous record's `hash`, 64 zeros for the
//! first) and `hash`. A line is written as
//!
//! ```text
//! BODY without its closing `}`  +  ,"hash":"<64 hex>"}  +  \n
//! ```
//!
//! where BODY is the record without `hash` as compact JSON with every
//! object's keys in byte order, and `hash` is the hex SHA-256 of `prev`'s 64
//! ASCII characters followed by BODY's bytes. The verifier recomputes it from
//! the line's own bytes, so checking a log needs no JSON re-encoding and a
//! few lines of any language do it.
//!
//! A record is encoded and chained on the caller's thread: its canonical
//! bytes, then, under a lock on the chain's end that also covers queueing it,
//! its `seq`, `prev` and `hash`, so the queue's order is the chain's. One
//! thread owns the file and writes each batch of queued lines with one
//! `write` call from a buffer it reuses. It checks that each line follows the
//! last one it wrote; after a failed write was cut off, or a record dropped,
//! one that does not is linked again by the writer, and callers link to the
//! writer's end again once nothing is in flight. Records from [`AuditLog::intent`] and [`AuditLog::durable`]
//! are acknowledged only after `fdatasync`; [`AuditLog::record`] never waits,
//! and its records are synced with the next durable one or within a second.
//! A failed write or sync is rolled back (the file is cut back to the last
//! good record, so the chain stays whole), waiting callers get an error and
//! fail closed, and records that were not waited for are written again later.
//!
//! Records carry no headers, tokens or free-form request metadata: only the
//! fields below, and arguments after [`redact`].

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// `prev` of a file's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Records from [`AuditLog::record`] reach the disk within this long.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// ... or once this many bytes of them wait for a sync: the writer keeps
/// unsynced records to write again if the sync fails, and this bounds that
/// memory. Each sync costs the server's core about 0.13 ms (submitting the
/// I/O, the journal, freeing what was kept); at 256 KiB that was 64 syncs a
/// second at 30,000 calls a second, and a visible part of p99 (BENCHMARKS.md).
const SYNC_BYTES: usize = 1 << 20;
/// While records keep arriving, the writer collects them for this long
/// between batches instead of being woken by each one: a wake-up per record
/// was the largest cost of the audit log on the request path. Callers that
/// wait (intents, flushes) wake it at once.
const COALESCE: Duration = Duration::from_millis(5);
/// After a failed write, how long before records are written again unprompted.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// The writer thread's niceness (Linux), relative to the request threads' 0.
#[cfg(target_os = "linux")]
const WRITER_NICE: libc::c_int = 5;
/// Records waiting for the writer beyond which [`AuditLog::record`] drops (and counts) new ones.
const MAX_QUEUED: usize = 16_384;
/// Records kept to write again after failures; beyond it they are dropped and counted.
const MAX_RETRY: usize = 16_384;
/// Records written (and synced) together at most.
const MAX_BATCH: usize = 1024;
/// The longest last line [`AuditLog::open`] reads to continue a chain.
const MAX_TAIL: usize = 64 << 20;

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The server started with this log.
    Started,
    /// A draft or write call is about to run (durable before the handler starts).
    Intent,
    /// How a call ended.
    Outcome,
    /// A call refused before its handler ran.
    Denied,
    ApprovalRequested,
    ApprovalDecided,
    /// The kill switch was turned on or off.
    KillSwitch,
    /// The server shut down.
    Stopped,
    /// A periodic mark of the chain's head, also logged to stderr: shipped
    /// outside the pod, those heads show a tail cut off the file.
    ChainHead,
}

impl Event {
    /// The event's name in a record, as serde spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Intent => "intent",
            Event::Outcome => "outcome",
            Event::Denied => "denied",
            Event::ApprovalRequested => "approval_requested",
            Event::ApprovalDecided => "approval_decided",
            Event::KillSwitch => "kill_switch",
            Event::Stopped => "stopped",
            Event::ChainHead => "chain_head",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// One audit record as the caller fills it in; fields that do not apply stay
/// `None` and are left out of the line. There is deliberately no field for
/// headers, tokens or other request metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// `http` or `stdio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Who the call is for (the token's subject, or the local user on stdio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The client the call came through (the token's client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `tool`, `resource` or `prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The tool, resource or prompt name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `read`, `draft` or `write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// The arguments, already passed through [`redact`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Approval evidence: who approved what, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Value>,
    /// `ok`, `error`, `timeout`, `cancelled`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The structured result, already passed through [`redact`] (only for tools whose contract audits results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// A short error message (never a handler's internal detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_version: Option<String>,
    /// The hash of the tool, resource or prompt definition the call ran against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_hash: Option<String>,
    /// For a bound tool's outcome: the request it made to its downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<DownstreamCall>,
}

/// What the audit record says about a bound tool's request to its downstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownstreamCall {
    pub downstream: String,
    pub method: String,
    /// The path template, e.g. `/repos/{owner}/{repo}`.
    pub path: String,
    /// The last answer's status; absent when none came (refused, timed out, cancelled, unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The filled path and query, only for tools whose data class is logged in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub attempts: u32,
}

impl Record {
    /// A record with only its event set: `Record { name: ..., ..Record::new(Event::Intent) }`.
    pub fn new(event: Event) -> Record {
        Record {
            event,
            request_id: None,
            trace_id: None,
            transport: None,
            subject: None,
            client: None,
            kind: None,
            name: None,
            effect: None,
            arguments: None,
            decision: None,
            reason: None,
            approval: None,
            outcome: None,
            result: None,
            error: None,
            latency_ms: None,
            contract_version: None,
            definition_hash: None,
            downstream: None,
        }
    }
}

/// A record's fields, borrowed: what the request path fills in without
/// copying a string ([`Record`] owns the same fields, for records read back
/// and for callers off the hot path).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub event: Event,
    pub request_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub transport: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub client: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: Option<&'a str>,
    pub effect: Option<&'a str>,
    pub arguments: Option<&'a Value>,
    pub decision: Option<Decision>,
    pub reason: Option<&'a str>,
    pub approval: Option<&'a Value>,
    pub outcome: Option<&'a str>,
    pub result: Option<&'a Value>,
    pub error: Option<&'a str>,
    pub latency_ms: Option<u64>,
    pub contract_version: Option<&'a str>,
    pub definition_hash: Option<&'a str>,
    pub downstream: Option<&'a DownstreamCall>,
}

impl<'a> Fields<'a> {
    /// Fields with only the event set: `Fields { name: ..., ..Fields::new(Event::Outcome) }`.
    pub fn new(event: Event) -> Fields<'a> {
        Fields {
            event,
            request_id: None,
            trace_id: None,
            transport: None,
            subject: None,
            client: None,
            kind: None,
            name: None,
            effect: None,
            arguments: None,
            decision: None,
            reason: None,
            approval: None,
            outcome: None,
            result: None,
            error: None,
            latency_ms: None,
            contract_version: None,
            definition_hash: None,
            downstream: None,
        }
    }
}

impl Record {
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            event: self.event,
            request_id: self.request_id.as_deref(),
            trace_id: self.trace_id.as_deref(),
            transport: self.transport.as_deref(),
            subject: self.subject.as_deref(),
            client: self.client.as_deref(),
            kind: self.kind.as_deref(),
            name: self.name.as_deref(),
            effect: self.effect.as_deref(),
            arguments: self.arguments.as_ref(),
            decision: self.decision,
            reason: self.reason.as_deref(),
            approval: self.approval.as_ref(),
            outcome: self.outcome.as_deref(),
            result: self.result.as_ref(),
            error: self.error.as_deref(),
            latency_ms: self.latency_ms,
            contract_version: self.contract_version.as_deref(),
            definition_hash: self.definition_hash.as_deref(),
            downstream: self.downstream.as_ref(),
        }
    }
}

/// One line of the log read back: the record and the fields the writer added.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub time: String,
    pub prev: String,
    pub hash: String,
    #[serde(flatten)]
    pub record: Record,
}

impl Entry {
    pub fn parse(line: &str) -> Result<Entry, String> {
        serde_json::from_str(line).map_err(|e| format!("not an audit record: {e}"))
    }
}

/// Why a waited-for record is not on disk. Callers fail closed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditError {
    /// Writing or syncing the file failed.
    Write(String),
    /// The log was closed (or its writer is gone).
    Closed,
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::Write(e) => write!(f, "the audit log cannot be written: {e}"),
            AuditError::Closed => f.write_str("the audit log is closed"),
        }
    }
}

impl std::error::Error for AuditError {}

type Ack = oneshot::Sender<Result<(), AuditError>>;

struct Pending {
    /// The record's line, linked on the caller's thread ([`AuditLog::append`]).
    linked: Linked,
    /// Present for durable records: answered once the record is synced (or failed).
    ack: Option<Ack>,
}

/// A record's whole line as the caller chained it, at the place the chain's
/// end had when it was queued. The writer writes it as it is when it follows
/// the writer's own end, which is always so unless a failed write was cut off
/// or a record was dropped since; then the writer links it again itself
/// ([`Linked::unlinked`]).
struct Linked {
    seq: u64,
    line: Vec<u8>,
    /// Where the record's `prev` gap was ([`Encoded::prev_at`]).
    prev_at: usize,
    /// Where its `seq` gap was, in the record without `prev`.
    seq_at: usize,
}

/// `,"prev":"` + 64 hex + `"`, as [`Encoded::line`] writes it.
const PREV_FIELD: usize = 9 + 64 + 1;
/// `,"hash":"` + 64 hex + `"}\n`, as [`Encoded::line`] ends a line.
const HASH_FIELD: usize = 9 + 64 + 3;

impl Linked {
    fn prev(&self) -> &[u8] {
        &self.line[self.prev_at + 9..self.prev_at + 73]
    }

    fn hash(&self) -> &str {
        let end = self.line.len() - 3;
        // Written by `Encoded::line` from a hex string: ASCII.
        std::str::from_utf8(&self.line[end - 64..end]).unwrap_or_default()
    }

    /// The record as it was before it was linked: the line without `prev`,
    /// `seq` and `hash`.
    fn unlinked(&self) -> Encoded {
        let line = &self.line;
        let gap = self.seq_at - self.prev_at;
        let after_prev = self.prev_at + PREV_FIELD;
        let seq_field = 7 + self.seq.to_string().len(); // `,"seq":` and the digits
        let after_seq = after_prev + gap + seq_field;
        let mut bytes = Vec::with_capacity(line.len());
        bytes.extend_from_slice(&line[..self.prev_at]);
        bytes.extend_from_slice(&line[after_prev..after_prev + gap]);
        bytes.extend_from_slice(&line[after_seq..line.len() - HASH_FIELD]);
        bytes.push(b'}');
        Encoded {
            bytes,
            prev_at: self.prev_at,
            seq_at: self.seq_at,
        }
    }
}

enum Message {
    Append(Pending),
    /// Sync everything sent before, then answer.
    Flush(oneshot::Sender<()>),
    /// Sync, close the file (releasing its lock), answer and stop.
    Close(oneshot::Sender<()>),
}

struct Shared {
    healthy: AtomicBool,
    failures: AtomicU64,
    /// Records [`AuditLog::record`] dropped because the queue was full.
    dropped: AtomicU64,
    queued: AtomicUsize,
    /// The last record on disk (synced): its seq and hash.
    head: std::sync::Mutex<(u64, String)>,
    /// The last record queued: its seq and hash, which the next one links to.
    /// Held while a record is linked and sent, so the queue's order is the chain's.
    end: std::sync::Mutex<(u64, String)>,
}

/// The handle on an open audit log. Cheap to clone; every clone writes to the
/// same chain. The file is synced and closed when the last clone is dropped
/// (without waiting) or on [`AuditLog::close`].
#[derive(Clone)]
pub struct AuditLog {
    sender: Sender<Message>,
    /// The writer thread, unparked by callers that wait.
    writer: std::thread::Thread,
    shared: Arc<Shared>,
    path: Arc<Path>,
    cut: u64,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("healthy", &self.healthy())
            .field("failures", &self.failures())
            .finish()
    }
}

impl AuditLog {
    /// Opens `path` for appending, creating it (mode 0600) if needed, and
    /// continues the chain from its last record. Refuses a file that is not a
    /// regular file, is held by another process (an exclusive `flock` held
    /// while open), or whose last record is damaged; such a file is left as
    /// it is. An incomplete record after the last whole one (a write a crash
    /// cut short, never acknowledged) is cut off, with a warning and
    /// [`AuditLog::cut_on_open`]. Only the last record is checked here;
    /// [`verify`] checks the whole chain.
    pub fn open(path: &Path) -> Result<AuditLog, String> {
        let shown = path.display();
        let (mut file, created) = open_file(path).map_err(|e| format!("cannot open the audit log {shown}: {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot open the audit log {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("the audit log {shown} is not a regular file"));
        }
        lock(&file, path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %shown, "the audit log is readable by other users; 0600 is expected");
            }
        }
        let (tip, cut) = read_tip(&mut file, meta.len()).map_err(|e| {
            format!(
                "the audit log {shown} {e}; refusing to append to it. Run the server's audit verify \
                 subcommand on it to find the first broken record, then move the file aside to start a new log"
            )
        })?;
        if cut > 0 {
            tracing::warn!(
                path = %shown,
                bytes = cut,
                "cut off an incomplete last record: a crash interrupted its write, so it was never acknowledged"
            );
        }
        if created {
            sync_parent(path).map_err(|e| format!("cannot create the audit log {shown}: {e}"))?;
        }
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            head: std::sync::Mutex::new((tip.seq, tip.hash.clone())),
            end: std::sync::Mutex::new((tip.seq, tip.hash.clone())),
        });
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            file,
            path: path.to_path_buf(),
            receiver,
            shared: shared.clone(),
            written: tip.clone(),
            synced: tip,
            unsynced: Vec::new(),
            unsynced_bytes: 0,
            unsynced_since: None,
            buffer: Vec::new(),
            retry: Vec::new(),
            retry_at: None,
            repair: false,
            coalescing: false,
            relinked: false,
        };
        let handle = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                // A step below the request threads: on a busy core the writer's
                // batches wait for the requests in flight instead of stalling them
                // (its share, about a quarter when both want the core, is many
                // times what it uses, so it never falls behind for long).
                #[cfg(target_os = "linux")]
                // SAFETY: setpriority on this thread's own id only lowers its priority.
                unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, WRITER_NICE);
                }
                writer.run()
            })
            .map_err(|e| format!("cannot start the audit log writer: {e}"))?;
        Ok(AuditLog {
            sender,
            writer: handle.thread().clone(),
            shared,
            path: path.into(),
            cut,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of an incomplete last record that [`AuditLog::open`] cut off:
    /// a write a crash interrupted (never acknowledged). 0 normally.
    pub fn cut_on_open(&self) -> u64 {
        self.cut
    }

    /// Writes the intent record of a draft or write call and returns once it
    /// is on disk (fsynced). On `Err` the call must not run.
    pub async fn intent(&self, record: Record) -> Result<(), AuditError> {
        self.durable_fields(record.fields()).await
    }

    /// Writes any record and returns once it is on disk (fsynced). Dropping
    /// the future does not withdraw the record. Records waited for together
    /// share one sync.
    pub async fn durable(&self, record: Record) -> Result<(), AuditError> {
        self.durable_fields(record.fields()).await
    }

    /// [`AuditLog::durable`] for borrowed fields.
    pub async fn durable_fields(&self, fields: Fields<'_>) -> Result<(), AuditError> {
        let (ack, answer) = oneshot::channel();
        if self
            .append(Encoded::new(&fields, SystemTime::now()), Some(ack))
            .is_err()
        {
            self.shared.failures.fetch_add(1, Ordering::Relaxed);
            return Err(AuditError::Closed);
        }
        self.writer.unpark();
        answer.await.unwrap_or(Err(AuditError::Closed))
    }

    /// Queues a record without waiting: it reaches the disk within a second.
    /// Never waits for the disk (only, briefly, for another caller chaining a
    /// record). When the writer is more than 16384 records behind (the
    /// disk has stalled) the record is dropped and counted in
    /// [`AuditLog::failures`]; waiting callers are never dropped.
    pub fn record(&self, record: Record) {
        self.record_fields(record.fields());
    }

    /// [`AuditLog::record`] for borrowed fields: the request path's form.
    pub fn record_fields(&self, fields: Fields<'_>) {
        if self.shared.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
            self.shared.failures.fetch_add(1, Ordering::Relaxed);
            let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            if dropped.is_multiple_of(1024) {
                tracing::error!(
                    path = %self.path.display(),
                    dropped = dropped + 1,
                    "the audit log writer is too far behind; records are being dropped"
                );
            }
            return;
        }
        if self.append(Encoded::new(&fields, SystemTime::now()), None).is_err() {
            self.shared.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The last record on disk: its `seq` and `hash`.
    pub fn head(&self) -> (u64, String) {
        self.shared.head.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes a `chain_head` record, waits until it is on disk, and returns
    /// the head it made (its own seq and hash), which the caller logs outside
    /// the file.
    pub async fn mark_head(&self) -> Result<(u64, String), AuditError> {
        self.durable(Record::new(Event::ChainHead)).await?;
        Ok(self.head())
    }

    /// False from a failed write or sync until a later one succeeds.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// Failed writes and syncs, plus records dropped (queue full, log closed,
    /// too many waiting to be written again), since the log was opened.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Returns once every record sent before is on disk (or has failed: see
    /// [`AuditLog::healthy`]).
    pub async fn flush(&self) {
        let (ack, answer) = oneshot::channel();
        if self.send(Message::Flush(ack)).is_ok() {
            self.writer.unpark();
            let _ = answer.await;
        }
    }

    /// Syncs every record sent before and closes the file, releasing its
    /// lock. Records sent afterwards, through any clone, fail with
    /// [`AuditError::Closed`] or are counted as failures.
    pub async fn close(&self) {
        let (ack, answer) = oneshot::channel();
        if self.send(Message::Close(ack)).is_ok() {
            self.writer.unpark();
            let _ = answer.await;
        }
    }

    /// Links `record` to the end of the chain and queues it, in one step under
    /// the lock on the end, so records reach the writer in chain order. The
    /// SHA-256 of the line is computed here, on the caller's thread: a
    /// fraction of a microsecond per call, where the writer, chaining a
    /// burst of records at once, held a shared core for a tenth of a
    /// millisecond at a time (BENCHMARKS.md, "Where p99 goes").
    fn append(&self, record: Encoded, ack: Option<Ack>) -> Result<(), ()> {
        let mut end = self.shared.end.lock().unwrap_or_else(|e| e.into_inner());
        let seq = end.0 + 1;
        let linked = record.linked(seq, &end.1);
        end.0 = seq;
        end.1.clear();
        end.1.push_str(linked.hash());
        self.send(Message::Append(Pending { linked, ack }))
    }

    fn send(&self, message: Message) -> Result<(), ()> {
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        self.sender.send(message).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        })
    }
}

/// The end of the chain: the last record written and the file length after it.
#[derive(Debug, Clone)]
struct Tip {
    seq: u64,
    hash: String,
    len: u64,
}

struct Writer {
    file: File,
    path: PathBuf,
    receiver: Receiver<Message>,
    shared: Arc<Shared>,
    /// The last record written.
    written: Tip,
    /// The last record synced.
    synced: Tip,
    /// Records written but not yet synced that nobody waits for (to write again if the sync fails).
    unsynced: Vec<Pending>,
    /// Their encoded size: at [`SYNC_BYTES`] they are synced.
    unsynced_bytes: usize,
    unsynced_since: Option<Instant>,
    /// The lines of a batch, reused from batch to batch.
    buffer: Vec<u8>,
    /// Records nobody waits for whose write failed, oldest first.
    retry: Vec<Pending>,
    retry_at: Option<Instant>,
    /// The file may hold bytes past `written.len` (from a failed write or sync): cut them before appending.
    repair: bool,
    /// Records arrived last round: collect for [`COALESCE`] instead of blocking on the channel.
    coalescing: bool,
    /// Records were linked here again, so the chain's end callers link to is stale.
    relinked: bool,
}

impl Writer {
    fn run(mut self) {
        loop {
            let deadline = [self.unsynced_since.map(|t| t + SYNC_EVERY), self.retry_at]
                .into_iter()
                .flatten()
                .min();
            let first = if self.coalescing {
                // Parked, not blocked on the channel: senders that do not wait
                // do not wake this thread; those that wait unpark it.
                std::thread::park_timeout(COALESCE);
                match self.receiver.try_recv() {
                    Ok(message) => Ok(message),
                    Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
                    Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                }
            } else {
                match deadline {
                    Some(at) => self.receiver.recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => self.receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
                }
            };
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            let mut close = None;
            let mut gone = false;
            let mut received = 0;
            let mut next = match first {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    gone = true;
                    None
                }
            };
            // Take what else is queued, up to a batch, stopping at a close.
            while let Some(message) = next.take() {
                received += 1;
                match message {
                    Message::Append(pending) => batch.push(pending),
                    Message::Flush(ack) => flushes.push(ack),
                    Message::Close(ack) => {
                        close = Some(ack);
                        break;
                    }
                }
                if received >= MAX_BATCH {
                    break;
                }
                next = match self.receiver.try_recv() {
                    Ok(message) => Some(message),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        gone = true;
                        None
                    }
                };
            }
            self.shared.queued.fetch_sub(received, Ordering::Relaxed);
            // Busy: keep collecting between batches. Idle: block on the channel again.
            self.coalescing = received > 0;
            let force = !flushes.is_empty() || close.is_some() || gone;
            self.commit(batch, force);
            if self.relinked {
                self.rejoin();
            }
            for ack in flushes {
                let _ = ack.send(());
            }
            if close.is_some() || gone {
                // Records a failing disk still held back are lost now.
                let left = self.retry.len() + self.unsynced.len();
                self.shared.failures.fetch_add(left as u64, Ordering::Relaxed);
                drop(self);
                if let Some(ack) = close {
                    let _ = ack.send(());
                }
                return;
            }
        }
    }

    /// Writes `batch` (after any records waiting to be written again) and
    /// syncs when a record in it is durable, when `force`, or when unsynced
    /// records are a second old.
    fn commit(&mut self, batch: Vec<Pending>, force: bool) {
        let now = Instant::now();
        let retry_due = self.retry_at.is_some_and(|at| now >= at);
        let sync_due = self.unsynced_since.is_some_and(|since| now >= since + SYNC_EVERY);
        let mut records = Vec::new();
        if !batch.is_empty() || force || retry_due {
            self.retry_at = None;
            records.append(&mut self.retry);
        }
        records.extend(batch);
        if (!records.is_empty() || self.repair)
            && let Err(e) = self.append(&records)
        {
            self.fail(&e, records);
            return;
        }
        let mut waiting = Vec::new();
        for pending in records {
            if pending.ack.is_some() {
                waiting.push(pending);
            } else {
                self.unsynced_bytes += pending.linked.line.len();
                self.unsynced.push(pending);
            }
        }
        let healthy = self.shared.healthy.load(Ordering::Relaxed);
        let sync = !waiting.is_empty() || force || sync_due || retry_due || self.unsynced_bytes >= SYNC_BYTES;
        if !sync || (self.unsynced_since.is_none() && healthy) {
            return;
        }
        match self.file.sync_data() {
            Ok(()) => {
                self.synced = self.written.clone();
                *self.shared.head.lock().unwrap_or_else(|e| e.into_inner()) =
                    (self.synced.seq, self.synced.hash.clone());
                self.unsynced.clear();
                self.unsynced_bytes = 0;
                self.unsynced_since = None;
                if !healthy {
                    tracing::info!(path = %self.path.display(), "the audit log is writable again");
                    self.shared.healthy.store(true, Ordering::Relaxed);
                }
                for pending in waiting {
                    if let Some(ack) = pending.ack {
                        let _ = ack.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                // What was written since the last sync may or may not be on
                // disk: cut it off and write the records again (or fail them).
                self.written = self.synced.clone();
                self.unsynced_since = None;
                self.repair = self.file.set_len(self.written.len).is_err();
                let mut lost = std::mem::take(&mut self.unsynced);
                self.unsynced_bytes = 0;
                lost.extend(waiting);
                self.fail(&e, lost);
            }
        }
    }

    /// After records were linked here again: points callers at the end of
    /// what is written, once nothing they linked is still on its way and no
    /// failed record waits to be written again. Until then the writer links
    /// what does not follow its end itself, as it must.
    fn rejoin(&mut self) {
        if !self.retry.is_empty() || self.repair {
            return;
        }
        let mut end = self.shared.end.lock().unwrap_or_else(|e| e.into_inner());
        // Records are linked and counted under this lock: none is in flight now.
        if self.shared.queued.load(Ordering::Relaxed) == 0 {
            *end = (self.written.seq, self.written.hash.clone());
            self.relinked = false;
        }
    }

    /// Appends `records` in one write, after cutting off what a failure left.
    fn append(&mut self, records: &[Pending]) -> std::io::Result<()> {
        if self.repair {
            self.file.set_len(self.written.len)?;
            self.repair = false;
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut tip = self.written.clone();
        let buffer = &mut self.buffer;
        buffer.clear();
        for pending in records {
            tip.seq += 1;
            let linked = &pending.linked;
            if linked.seq == tip.seq && linked.prev() == tip.hash.as_bytes() {
                buffer.extend_from_slice(&linked.line);
                tip.hash.clear();
                tip.hash.push_str(linked.hash());
            } else {
                // A failed write was cut off, or a record dropped, since the caller linked it.
                tip.hash = linked.unlinked().line(tip.seq, &tip.hash, buffer);
                self.relinked = true;
            }
        }
        tip.len += buffer.len() as u64;
        let written = self.file.write_all(buffer);
        // A burst's buffer is not kept for the quiet that follows it.
        if buffer.capacity() > 4 * SYNC_BYTES {
            *buffer = Vec::new();
        }
        if let Err(e) = written {
            // Cut back whatever part of the batch reached the file, now if possible.
            self.repair = self.file.set_len(self.written.len).is_err();
            return Err(e);
        }
        self.written = tip;
        self.unsynced_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Counts a failed write or sync, answers the waiting records with the
    /// error and keeps the others to write again.
    fn fail(&mut self, error: &std::io::Error, records: Vec<Pending>) {
        self.shared.failures.fetch_add(1, Ordering::Relaxed);
        if self.shared.healthy.swap(false, Ordering::Relaxed) {
            tracing::error!(
                path = %self.path.display(),
                %error,
                "the audit log cannot be written; draft and write calls are refused until it can"
            );
        }
        let failure = AuditError::Write(error.to_string());
        for pending in records {
            match pending.ack {
                Some(ack) => {
                    let _ = ack.send(Err(failure.clone()));
                }
                None if self.retry.len() < MAX_RETRY => self.retry.push(pending),
                None => {
                    self.shared.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.retry_at = Some(Instant::now() + RETRY_EVERY);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.unsynced_since.is_some() {
            let _ = self.file.sync_data();
        }
    }
}

/// A record in its canonical form, made once on the caller's thread: every
/// field in byte order of its key, except `prev` and `seq`, filled in at
/// `prev_at` and `seq_at` when the record is given its place in the chain
/// (by the caller, or by the writer when it links the record again).
struct Encoded {
    bytes: Vec<u8>,
    prev_at: usize,
    seq_at: usize,
}

impl Encoded {
    fn new(fields: &Fields<'_>, time: SystemTime) -> Encoded {
        let mut object = Object::new(Vec::with_capacity(384));
        // Keys in byte order. `event` always comes before `prev`, so the
        // writer's two fields never open the object.
        object.value("approval", fields.approval);
        object.value("arguments", fields.arguments);
        object.string("client", fields.client);
        object.string("contract_version", fields.contract_version);
        object.string("decision", fields.decision.map(Decision::as_str));
        object.string("definition_hash", fields.definition_hash);
        if let Some(downstream) = fields.downstream {
            object.value("downstream", serde_json::to_value(downstream).ok().as_ref());
        }
        object.string("effect", fields.effect);
        object.string("error", fields.error);
        object.string("event", Some(fields.event.as_str()));
        object.string("kind", fields.kind);
        if let Some(latency) = fields.latency_ms {
            object.key("latency_ms");
            let _ = write!(object.out, "{latency}");
        }
        object.string("name", fields.name);
        object.string("outcome", fields.outcome);
        let prev_at = object.out.len();
        object.string("reason", fields.reason);
        object.string("request_id", fields.request_id);
        object.value("result", fields.result);
        let seq_at = object.out.len();
        object.string("subject", fields.subject);
        object.key("time");
        let _ = write!(object.out, "\"{}\"", humantime::format_rfc3339_millis(time));
        object.string("trace_id", fields.trace_id);
        object.string("transport", fields.transport);
        let mut bytes = object.out;
        bytes.push(b'}');
        Encoded { bytes, prev_at, seq_at }
    }

    /// Appends the record's line as number `seq` after the record whose hash
    /// is `prev` to `out`, and returns its hash.
    /// The record's line at `seq` after `prev`, in a buffer of its own.
    fn linked(&self, seq: u64, prev: &str) -> Linked {
        let mut line = Vec::with_capacity(self.bytes.len() + PREV_FIELD + HASH_FIELD + 28);
        self.line(seq, prev, &mut line);
        Linked {
            seq,
            line,
            prev_at: self.prev_at,
            seq_at: self.seq_at,
        }
    }

    fn line(&self, seq: u64, prev: &str, out: &mut Vec<u8>) -> String {
        let start = out.len();
        out.extend_from_slice(&self.bytes[..self.prev_at]);
        out.extend_from_slice(b",\"prev\":\"");
        out.extend_from_slice(prev.as_bytes());
        out.push(b'"');
        out.extend_from_slice(&self.bytes[self.prev_at..self.seq_at]);
        let _ = write!(out, ",\"seq\":{seq}");
        out.extend_from_slice(&self.bytes[self.seq_at..]);
        let hash = chain_hash(prev, &out[start..]);
        out.pop(); // the closing brace
        out.extend_from_slice(b",\"hash\":\"");
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(b"\"}\n");
        hash
    }
}

/// A JSON object written field by field, in the order given (the caller's
/// job to give keys in byte order).
struct Object {
    out: Vec<u8>,
    empty: bool,
}

impl Object {
    fn new(mut out: Vec<u8>) -> Object {
        out.push(b'{');
        Object { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        write_string(&mut self.out, key);
        self.out.push(b':');
    }

    fn string(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.key(key);
            write_string(&mut self.out, value);
        }
    }

    fn value(&mut self, key: &str, value: Option<&Value>) {
        if let Some(value) = value {
            self.key(key);
            canonical(value, &mut self.out);
        }
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn write_string(out: &mut Vec<u8>, text: &str) {
    // serde_json escapes only `"`, `\\` and control characters: a string
    // without them (nearly every field of a record) is copied as it is. The
    // check reads every byte, without stopping early, so it compiles to SIMD.
    let plain = !text
        .bytes()
        .fold(false, |escape, b| escape | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if plain {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// The line for `record` as number `seq` after the record whose hash is `prev`, and its hash.
#[cfg(test)]
fn encode(record: &Record, seq: u64, time: SystemTime, prev: &str) -> (String, String) {
    let mut line = Vec::new();
    let hash = Encoded::new(&record.fields(), time).line(seq, prev, &mut line);
    (String::from_utf8(line).expect("records are UTF-8"), hash)
}

/// Compact JSON with every object's keys in byte order: the form that is
/// hashed (audit chain, approval operations).
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    canonical(value, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Compact JSON with every object's keys in byte order, whatever order the
/// map keeps (serde_json's `preserve_order` may be on in a generated crate).
fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        leaf => {
            let _ = serde_json::to_writer(&mut *out, leaf);
        }
    }
}

fn chain_hash(prev: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(body);
    hex(&hasher.finalize())
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn open_file(path: &Path) -> std::io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.clone().create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((options.open(path)?, false)),
        Err(e) => Err(e),
    }
}

/// Makes a new file's directory entry durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Holds an exclusive lock on the file for as long as it is open, so two
/// processes cannot interleave two chains in one file. The lock belongs to
/// the open file, which a child process shares between `fork` and `exec`:
/// a held lock is tried again for a moment before giving up.
fn lock(file: &File, path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd as _;
        let mut tries = 0;
        loop {
            // SAFETY: flock on a file descriptor this function borrows; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if e.kind() != std::io::ErrorKind::WouldBlock {
                return Err(format!("cannot lock the audit log {}: {e}", path.display()));
            }
            tries += 1;
            if tries == 20 {
                return Err(format!(
                    "the audit log {} is in use by another process (or another log in this one)",
                    path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

/// Where the last newline of `file` before `end` is, if any.
fn last_newline(file: &mut File, end: u64) -> std::io::Result<Option<u64>> {
    let mut pos = end;
    let mut chunk = Vec::new();
    while pos > 0 {
        let start = pos.saturating_sub(8192);
        chunk.resize((pos - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        pos = start;
    }
    Ok(None)
}

/// Finds the end of the chain in a log `len` bytes long: checks its last
/// record on its own, and cuts off an incomplete last line (a record a crash
/// interrupted mid-write, so never acknowledged) when a whole record precedes
/// it. Returns the tip and how many bytes were cut.
fn read_tip(file: &mut File, len: u64) -> Result<(Tip, u64), String> {
    let io = |e: std::io::Error| format!("cannot be read: {e}");
    let end = last_newline(file, len).map_err(io)?.map_or(0, |p| p + 1);
    let cut = len - end;
    if end == 0 {
        if cut > 0 {
            return Err("holds no complete record".into());
        }
        let tip = Tip {
            seq: 0,
            hash: GENESIS.into(),
            len: 0,
        };
        return Ok((tip, 0));
    }
    if cut > 0 {
        let mut first = [0u8; 2];
        file.seek(SeekFrom::Start(end)).map_err(io)?;
        file.read_exact(&mut first).map_err(io)?;
        if cut > MAX_TAIL as u64 || &first != b"{\"" {
            return Err("ends in something that is not a record (no newline after it)".into());
        }
    }
    let start = last_newline(file, end - 1).map_err(io)?.map_or(0, |p| p + 1);
    if end - 1 - start > MAX_TAIL as u64 {
        return Err(format!("has a last line longer than {MAX_TAIL} bytes"));
    }
    let mut line = vec![0; (end - 1 - start) as usize];
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    file.read_exact(&mut line).map_err(io)?;
    let checked = check_line(&line).map_err(|(_, e)| format!("has a damaged last record: {e}"))?;
    if cut > 0 {
        file.set_len(end)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("ends in an incomplete record that cannot be cut off: {e}"))?;
    }
    let tip = Tip {
        seq: checked.seq,
        hash: checked.hash,
        len: end,
    };
    Ok((tip, cut))
}

/// What one line says about its place in the chain.
struct Line {
    seq: u64,
    prev: String,
    hash: String,
}

/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// Checks one line (without its newline) on its own: shape, fields, and that its hash matches its bytes.
fn check_line(line: &[u8]) -> Result<Line, (Problem, String)> {
    let malformed = |what: &str| (Problem::Malformed, format!("not an audit record: {what}"));
    if line.is_empty() {
        return Err(malformed("an empty line"));
    }
    if line.len() <= HASH_SUFFIX_LEN
        || !line.starts_with(b"{")
        || &line[line.len() - HASH_SUFFIX_LEN..line.len() - 66] != b",\"hash\":\""
        || !line.ends_with(b"\"}")
    {
        return Err(malformed("it does not end with its hash"));
    }
    let hash = std::str::from_utf8(&line[line.len() - 66..line.len() - 2])
        .ok()
        .filter(|h| is_hash(h))
        .ok_or_else(|| malformed("its hash is not 64 lowercase hex digits"))?
        .to_string();
    let mut body = line[..line.len() - HASH_SUFFIX_LEN].to_vec();
    body.push(b'}');
    let value: Value = serde_json::from_slice(&body).map_err(|e| malformed(&format!("invalid JSON ({e})")))?;
    let object = value.as_object().ok_or_else(|| malformed("not a JSON object"))?;
    if object.contains_key("hash") {
        return Err(malformed("`hash` appears twice"));
    }
    let seq = object
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed("no `seq` number"))?;
    let prev = object
        .get("prev")
        .and_then(Value::as_str)
        .filter(|p| is_hash(p))
        .ok_or_else(|| malformed("no `prev` hash"))?
        .to_string();
    if object.get("time").and_then(Value::as_str).is_none() || object.get("event").and_then(Value::as_str).is_none() {
        return Err(malformed("no `time` or `event`"));
    }
    if chain_hash(&prev, &body) != hash {
        return Err((
            Problem::Edited,
            format!("record {seq} was changed after it was written: its hash does not match its content"),
        ));
    }
    Ok(Line { seq, prev, hash })
}

/// A log whose chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    pub records: u64,
    /// `None` for an empty log.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The last record's hash ([`GENESIS`] for an empty log). Kept elsewhere,
    /// it also shows when records were cut off the end later.
    pub last_hash: String,
    /// Bytes after the last newline: a record a crash interrupted mid-write
    /// (one `write` can be cut short by SIGKILL or power loss). It was never
    /// acknowledged, so no call ran on it, and the chain before it holds;
    /// [`AuditLog::open`] cuts it off. Cutting bytes off the end is no more
    /// than cutting whole records off, which only a kept `last_hash` shows.
    pub incomplete_tail: Option<u64>,
}

impl std::fmt::Display for VerifySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => write!(
                f,
                "{} record{} (seq {first} to {last}) chained intact; last hash {}",
                self.records,
                if self.records == 1 { "" } else { "s" },
                self.last_hash
            )?,
            _ => f.write_str("no records")?,
        }
        if let Some(bytes) = self.incomplete_tail {
            write!(
                f,
                "; then an incomplete record ({bytes} bytes, no newline): a write interrupted by a crash, \
                 never acknowledged (the server cuts it off when it next opens the log)"
            )?;
        }
        Ok(())
    }
}

/// What is wrong at the first broken link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The file cannot be read.
    Unreadable,
    /// The line is not an audit record at all.
    Malformed,
    /// The line's hash does not match its content.
    Edited,
    /// `seq` skips ahead: records before this line were deleted (or moved).
    Missing,
    /// `seq` goes back or repeats: records were reordered or duplicated.
    OutOfOrder,
    /// `prev` is not the previous line's hash: the previous record was replaced, or this one.
    Unlinked,
}

/// The first broken link of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// 1-based line number (0 when the file cannot be opened).
    pub line: u64,
    pub problem: Problem,
    pub message: String,
    /// Records before this line, all verified.
    pub verified: u64,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            return f.write_str(&self.message);
        }
        write!(
            f,
            "line {}: {} ({} record{} before it verified)",
            self.line,
            self.message,
            self.verified,
            if self.verified == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Broken {}

/// Checks a whole log, streaming it: every line is a record whose hash
/// matches its bytes, `seq` counts up from 1 without gaps and each `prev` is
/// the hash of the line before. Returns the first broken link.
/// The hash of the record numbered `seq` in the log at `path`, if it holds one.
pub fn hash_at(path: &Path, seq: u64) -> Option<String> {
    let file = File::open(path).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| Entry::parse(&line).ok())
        .find(|entry| entry.seq == seq)
        .map(|entry| entry.hash)
}

pub fn verify(path: &Path) -> Result<VerifySummary, Broken> {
    let broken = |line: u64, problem: Problem, message: String| Broken {
        line,
        problem,
        message,
        verified: line.saturating_sub(1),
    };
    let file = File::open(path).map_err(|e| {
        broken(
            0,
            Problem::Unreadable,
            format!("cannot read the audit log {}: {e}", path.display()),
        )
    })?;
    verify_from(BufReader::with_capacity(1 << 16, file))
}

/// [`verify`] on the log's bytes from any reader (the fuzzer feeds it mangled logs).
pub fn verify_from(mut reader: impl BufRead) -> Result<VerifySummary, Broken> {
    let broken = |line: u64, problem: Problem, message: String| Broken {
        line,
        problem,
        message,
        verified: line.saturating_sub(1),
    };
    let mut buffer = Vec::new();
    let mut number = 0u64;
    let mut first_seq = None;
    let mut last_seq: Option<u64> = None;
    let mut last_hash = GENESIS.to_string();
    let mut incomplete_tail = None;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|e| broken(number + 1, Problem::Unreadable, format!("cannot be read: {e}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        if buffer.last() != Some(&b'\n') {
            // Only the last line can lack its newline.
            if !buffer.starts_with(b"{\"") {
                return Err(broken(
                    number,
                    Problem::Malformed,
                    "not an audit record: the last line is neither a record nor the start of one".into(),
                ));
            }
            incomplete_tail = Some(buffer.len() as u64);
            break;
        }
        buffer.pop();
        let line = check_line(&buffer).map_err(|(problem, message)| broken(number, problem, message))?;
        let expected = last_seq.map_or(1, |s| s + 1);
        if line.seq > expected {
            let gap = if line.seq - expected == 1 {
                format!("record {expected} is")
            } else {
                format!("records {expected} to {} are", line.seq - 1)
            };
            return Err(broken(
                number,
                Problem::Missing,
                format!(
                    "expected record {expected}, found {}: {gap} missing here (deleted or moved)",
                    line.seq
                ),
            ));
        }
        if line.seq < expected {
            return Err(broken(
                number,
                Problem::OutOfOrder,
                format!(
                    "expected record {expected}, found {}: records are out of order or repeated",
                    line.seq
                ),
            ));
        }
        if line.prev != last_hash {
            let before = if number == 1 {
                "the first record must have 64 zeros".to_string()
            } else {
                format!("the record before has hash {last_hash}")
            };
            return Err(broken(
                number,
                Problem::Unlinked,
                format!(
                    "record {} does not link to the one before: its prev is {}, but {before} (one of them was replaced)",
                    line.seq, line.prev
                ),
            ));
        }
        first_seq.get_or_insert(line.seq);
        last_seq = Some(line.seq);
        last_hash = line.hash;
    }
    Ok(VerifySummary {
        records: number - u64::from(incomplete_tail.is_some()),
        first_seq,
        last_seq,
        last_hash,
        incomplete_tail,
    })
}

/// How a data class appears in the log: the contract's `logs`, typed in the surface.
pub use super::surface::Redaction;

/// The arguments as the log shows them for a data class. Object keys are kept
/// as they are (they come from the contract's closed schemas); values are
/// replaced leaf by leaf.
pub fn redact(arguments: &Value, how: Redaction) -> Option<Value> {
    fn leaves(value: &Value, how: Redaction) -> Value {
        match value {
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), leaves(v, how))).collect()),
            Value::Array(items) => Value::Array(items.iter().map(|v| leaves(v, how)).collect()),
            Value::String(_) | Value::Number(_) if how == Redaction::Hash => {
                Value::String(format!("sha256:{}", hex(&Sha256::digest(value.to_string().as_bytes()))))
            }
            Value::Bool(_) | Value::Null if how == Redaction::Hash => value.clone(),
            _ => Value::String("[redacted]".into()),
        }
    }
    match how {
        Redaction::Full => Some(arguments.clone()),
        Redaction::Omit => None,
        Redaction::Hash | Redaction::Redact => Some(leaves(arguments, how)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_depth() {
        let out = canonical_json(&json!({"b": 1, "a": {"z": [true, null, {"y": "x", "x": 1.5}], "é": "\n"}}));
        assert_eq!(out, r#"{"a":{"z":[true,null,{"x":1.5,"y":"x"}],"é":"\n"},"b":1}"#);
    }

    #[test]
    fn a_line_checks_against_its_own_bytes() {
        let (line, hash) = encode(&Record::new(Event::Started), 1, SystemTime::UNIX_EPOCH, GENESIS);
        assert_eq!(
            line,
            format!(
                "{{\"event\":\"started\",\"prev\":\"{GENESIS}\",\"seq\":1,\"time\":\"1970-01-01T00:00:00.000Z\",\"hash\":\"{hash}\"}}\n"
            )
        );
        let checked = check_line(line.trim_end().as_bytes()).map_err(|e| e.1).unwrap();
        assert_eq!(
            (checked.seq, checked.prev.as_str(), checked.hash.as_str()),
            (1, GENESIS, hash.as_str())
        );
        let edited = line.trim_end().replace("started", "stopped");
        assert_eq!(check_line(edited.as_bytes()).err().map(|e| e.0), Some(Problem::Edited));
    }

    /// What the writer does with a line that no longer follows its end: take
    /// the record back out of it and link it at its new place. That must give
    /// the line the record would have had there from the start.
    #[test]
    fn a_linked_line_gives_back_its_record_to_link_again() {
        let full = Record {
            request_id: Some("r-1".into()),
            subject: Some("ada".into()),
            reason: Some("why \"not\"".into()),
            result: Some(json!({"text": "hi"})),
            ..Record::new(Event::Outcome)
        };
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        for record in [Record::new(Event::Started), full] {
            let encoded = Encoded::new(&record.fields(), time);
            for (seq, new_seq) in [(1, 2), (9, 10), (10, 9), (99_999, 7), (3, 1_000_000)] {
                let prev = "ab".repeat(32);
                let linked = encoded.linked(seq, &prev);
                let (line, hash) = encode(&record, seq, time, &prev);
                assert_eq!(linked.line, line.as_bytes());
                assert_eq!((linked.prev(), linked.hash()), (prev.as_bytes(), hash.as_str()));

                let unlinked = linked.unlinked();
                assert_eq!(
                    (unlinked.bytes.as_slice(), unlinked.prev_at, unlinked.seq_at),
                    (encoded.bytes.as_slice(), encoded.prev_at, encoded.seq_at)
                );
                let mut relinked = Vec::new();
                let new_hash = unlinked.line(new_seq, GENESIS, &mut relinked);
                assert_eq!((relinked, new_hash), {
                    let (line, hash) = encode(&record, new_seq, time, GENESIS);
                    (line.into_bytes(), hash)
                });
            }
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain",
            " /",
            "\\",
            "\"",
            "a\u{1f}b",
            "\u{7f}",
            "\u{0}",
            "é\u{2028}",
            "tab\there",
        ] {
            let mut ours = Vec::new();
            write_string(&mut ours, text);
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn a_record_encodes_as_the_canonical_form_of_the_whole_line() {
        let record = Record {
            request_id: Some("req \"7\"".into()),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            transport: Some("http".into()),
            subject: Some("ada\u{1}é".into()),
            client: Some("assistant".into()),
            kind: Some("tool".into()),
            name: Some("echo".into()),
            effect: Some("write".into()),
            arguments: Some(json!({"z": 1, "a": [{"y": null, "b": 2.5}], "ü": "\n"})),
            decision: Some(Decision::Allow),
            reason: Some("why".into()),
            approval: Some(json!({"approver": "grace", "at": 3})),
            outcome: Some("ok".into()),
            result: Some(json!({"text": "hi", "length": 2})),
            error: Some("line\tbreak".into()),
            latency_ms: Some(12),
            contract_version: Some("1.0.0".into()),
            definition_hash: Some("sha256:ab".into()),
            downstream: Some(DownstreamCall {
                downstream: "github".into(),
                method: "GET".into(),
                path: "/repos/{owner}".into(),
                status: Some(200),
                url: None,
                attempts: 1,
            }),
            ..Record::new(Event::Outcome)
        };
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        let prev = "ab".repeat(32);
        let (line, hash) = encode(&record, 42, time, &prev);
        // The reference: the whole record as a JSON value, the writer's fields added, in canonical form.
        let mut value = serde_json::to_value(&record).unwrap();
        let object = value.as_object_mut().unwrap();
        object.insert("seq".into(), 42.into());
        object.insert("time".into(), "2025-11-24T16:00:00.123Z".into());
        object.insert("prev".into(), prev.clone().into());
        let body = canonical_json(&value);
        assert_eq!(hash, chain_hash(&prev, body.as_bytes()));
        assert_eq!(line, format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]));
        assert!(check_line(line.trim_end().as_bytes()).is_ok());
    }

    #[test]
    fn event_and_decision_names_are_serde_s() {
        use Event::*;
        for event in [
            Started,
            Intent,
            Outcome,
            Denied,
            ApprovalRequested,
            ApprovalDecided,
            KillSwitch,
            Stopped,
            ChainHead,
        ] {
            assert_eq!(json!(event), json!(event.as_str()));
        }
        for decision in [Decision::Allow, Decision::Deny] {
            assert_eq!(json!(decision), json!(decision.as_str()));
        }
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}

#[cfg(test)]
mod head_tests {
    use super::*;

    #[tokio::test]
    async fn a_logged_head_shows_a_tail_cut_off_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        log.durable(Record::new(Event::Started)).await.unwrap();
        let (seq, hash) = log.mark_head().await.unwrap();
        assert_eq!(seq, 2);
        assert_eq!(log.head(), (seq, hash.clone()));
        log.durable(Record::new(Event::Stopped)).await.unwrap();
        log.close().await;
        assert_eq!(hash_at(&path, seq).as_deref(), Some(hash.as_str()));
        let line = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_string();
        assert!(line.contains("\"event\":\"chain_head\""), "{line}");
        // Cut the last two records: the chain that is left still verifies, the head is gone.
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        std::fs::write(&path, format!("{first}\n")).unwrap();
        assert!(verify(&path).is_ok());
        assert_eq!(hash_at(&path, seq), None);
    }
}
