//! Reviewer approval for write operations (`approval: mode: reviewer`).
//!
//! A tool call that needs a second person's approval is stored as a pending
//! operation: the tool, its exact arguments, who asked, and the hash of the
//! tool definition the caller saw. An approver lists what is pending, sees
//! the exact operation, and approves or rejects it by id *and* operation
//! hash, so an approval always refers to the bytes that were stored and not
//! to something edited in between. When the requester repeats the identical
//! call, [`ApprovalStore::consume`] finds the approval, marks it used in the
//! same transaction and returns the [`Evidence`] for the audit record: each
//! approval runs the operation at most once.
//!
//! Refusals, each with a stable [`ApprovalError::reason`]: an unknown id, an
//! expired operation, a decision on an operation already decided (a replayed
//! approval), an operation hash that differs from the stored one (an altered
//! approval), and the requester deciding on their own operation (a second
//! person is required). Rejected operations never run.
//!
//! The store is one SQLite file in WAL mode with `synchronous=FULL`, so a
//! decision or a consumption that returned is on disk. Every call is one
//! short transaction (`BEGIN IMMEDIATE`), which also serialises processes
//! that share the file. The methods are synchronous: calls are rare and take
//! well under a millisecond on a local disk, so handlers may call them
//! directly; wrap them in `tokio::task::spawn_blocking` if the file lives on
//! slow storage. The file holds operations' arguments, so it is created
//! readable by its owner only.
//!
//! Times are passed in (`now`) rather than read from the clock, so tests and
//! replays are deterministic; they are stored as Unix milliseconds.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use super::audit::canonical_json;
use super::audit::hex;

/// The schema this code reads and writes.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS operations (
    id              TEXT PRIMARY KEY,
    operation_hash  TEXT NOT NULL,
    tool            TEXT NOT NULL,
    arguments       TEXT NOT NULL,
    requester       TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    approver        TEXT,
    decided_at      INTEGER,
    reason          TEXT,
    consumed_at     INTEGER
);
CREATE INDEX IF NOT EXISTS operations_by_hash ON operations (operation_hash, state);
";

/// A write operation exactly as it would run.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub tool: String,
    /// The validated arguments.
    pub arguments: Value,
    /// The authenticated caller who asked for it.
    pub requester: String,
    /// The hash of the tool definition the caller saw (`ToolSpec::hash`).
    pub definition_hash: String,
}

impl Operation {
    /// Lowercase hex SHA-256 of the canonical JSON (object keys sorted at
    /// every level, no whitespace) of `{arguments, definition_hash,
    /// requester, tool}`. Keys are sorted here, so the hash does not depend
    /// on serde_json's `preserve_order` feature.
    pub fn operation_hash(&self) -> String {
        let value = serde_json::json!({
            "tool": self.tool,
            "arguments": self.arguments,
            "requester": self.requester,
            "definition_hash": self.definition_hash,
        });
        hex(&Sha256::digest(canonical_json(&value).as_bytes()))
    }
}

/// A stored request, as [`ApprovalStore::request`] returns it to the requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub id: String,
    pub operation_hash: String,
    #[serde(serialize_with = "serialize_time")]
    pub expires_at: SystemTime,
}

/// A pending operation as approvers see it: everything that will run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingOperation {
    pub id: String,
    pub tool: String,
    pub arguments: Value,
    pub requester: String,
    pub definition_hash: String,
    /// What an approver passes back to [`ApprovalStore::decide`].
    pub operation_hash: String,
    #[serde(serialize_with = "serialize_time")]
    pub created_at: SystemTime,
    #[serde(serialize_with = "serialize_time")]
    pub expires_at: SystemTime,
}

/// The outcome of [`ApprovalStore::decide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub approved: bool,
    pub approver: String,
    #[serde(serialize_with = "serialize_time")]
    pub decided_at: SystemTime,
    pub operation_hash: String,
    pub reason: Option<String>,
}

/// Proof that an operation ran on a second person's approval, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub approval_id: String,
    pub approver: String,
    #[serde(serialize_with = "serialize_time")]
    pub decided_at: SystemTime,
    pub operation_hash: String,
    pub reason: Option<String>,
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for a decision.
    Pending,
    /// Approved and not yet run.
    Approved,
    /// Rejected: it never runs.
    Rejected,
    /// Approved and run (the approval is used up).
    Consumed,
    /// Not decided, or approved but not run, before it expired.
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Consumed => "consumed",
            State::Expired => "expired",
        }
    }
}

/// Everything stored about one operation, for [`ApprovalStore::status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRecord {
    pub id: String,
    pub tool: String,
    pub arguments: Value,
    pub requester: String,
    pub definition_hash: String,
    pub operation_hash: String,
    #[serde(serialize_with = "serialize_time")]
    pub created_at: SystemTime,
    #[serde(serialize_with = "serialize_time")]
    pub expires_at: SystemTime,
    /// `pending`, `approved` or `rejected` as decided; see [`ApprovalRecord::state`].
    pub(crate) decision: StoredState,
    pub approver: Option<String>,
    #[serde(serialize_with = "serialize_time_opt")]
    pub decided_at: Option<SystemTime>,
    pub reason: Option<String>,
    #[serde(serialize_with = "serialize_time_opt")]
    pub consumed_at: Option<SystemTime>,
}

impl ApprovalRecord {
    /// Where the operation stands at `now`.
    pub fn state(&self, now: SystemTime) -> State {
        match self.decision {
            StoredState::Rejected => State::Rejected,
            StoredState::Approved if self.consumed_at.is_some() => State::Consumed,
            _ if now >= self.expires_at => State::Expired,
            StoredState::Approved => State::Approved,
            StoredState::Pending => State::Pending,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredState {
    Pending,
    Approved,
    Rejected,
}

impl StoredState {
    fn parse(text: &str) -> rusqlite::Result<StoredState> {
        match text {
            "pending" => Ok(StoredState::Pending),
            "approved" => Ok(StoredState::Approved),
            "rejected" => Ok(StoredState::Rejected),
            other => Err(rusqlite::Error::InvalidColumnType(
                0,
                format!("state `{other}`"),
                rusqlite::types::Type::Text,
            )),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            StoredState::Pending => "pending",
            StoredState::Approved => "approved",
            StoredState::Rejected => "rejected",
        }
    }
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalError {
    /// No operation has this id.
    UnknownId { id: String },
    /// The operation expired before the decision.
    Expired { id: String },
    /// The operation was already approved or rejected: a replayed decision.
    AlreadyDecided { id: String, state: State },
    /// The approver's operation hash is not the stored one: they reviewed
    /// something other than what would run.
    OperationMismatch { id: String },
    /// The requester tried to decide on their own operation.
    SelfApproval { id: String },
    /// The store could not be read or written.
    Store(String),
}

impl ApprovalError {
    /// A stable short code for logs, metrics and audit records.
    pub fn reason(&self) -> &'static str {
        match self {
            ApprovalError::UnknownId { .. } => "unknown_id",
            ApprovalError::Expired { .. } => "expired",
            ApprovalError::AlreadyDecided { .. } => "already_decided",
            ApprovalError::OperationMismatch { .. } => "operation_mismatch",
            ApprovalError::SelfApproval { .. } => "self_approval",
            ApprovalError::Store(_) => "store_error",
        }
    }
}

impl fmt::Display for ApprovalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApprovalError::UnknownId { id } => write!(
                f,
                "no pending operation has the id `{id}`: list the pending operations and use an id from that list"
            ),
            ApprovalError::Expired { id } => write!(
                f,
                "operation `{id}` expired before it was decided: the requester must ask again, which stores a new operation"
            ),
            ApprovalError::AlreadyDecided { id, state } => write!(
                f,
                "operation `{id}` was already decided (it is {}): a decision counts once; the requester must ask again for a new one",
                state.as_str()
            ),
            ApprovalError::OperationMismatch { id } => write!(
                f,
                "the operation hash does not match operation `{id}` as stored: what was reviewed is not what would run; \
                 list the pending operations again and decide on the operation hash shown there"
            ),
            ApprovalError::SelfApproval { id } => write!(
                f,
                "operation `{id}` was requested by the same person: a second person must decide on it"
            ),
            ApprovalError::Store(message) => write!(f, "the approval store failed: {message}"),
        }
    }
}

impl std::error::Error for ApprovalError {}

impl From<rusqlite::Error> for ApprovalError {
    fn from(e: rusqlite::Error) -> Self {
        ApprovalError::Store(e.to_string())
    }
}

/// Pending, approved and used operations in one SQLite file. `Send + Sync`:
/// share it as `Arc<ApprovalStore>`.
pub struct ApprovalStore {
    connection: Mutex<Connection>,
}

impl fmt::Debug for ApprovalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalStore").finish_non_exhaustive()
    }
}

impl ApprovalStore {
    /// Opens the store at `path`, creating the file and its schema if needed.
    /// `:memory:` gives a private in-memory store (for tests).
    pub fn open(path: &Path) -> Result<ApprovalStore, String> {
        let shown = path.display();
        let in_memory = path.as_os_str() == ":memory:";
        if !in_memory {
            create_private(path).map_err(|e| format!("cannot create the approval store {shown}: {e}"))?;
        }
        let connection = Connection::open(path).map_err(|e| format!("cannot open the approval store {shown}: {e}"))?;
        let setup = || -> rusqlite::Result<String> {
            connection.busy_timeout(Duration::from_secs(5))?;
            let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))?;
            Ok(mode)
        };
        let mode = setup().map_err(|e| format!("cannot set up the approval store {shown}: {e}"))?;
        if !in_memory && !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "the approval store {shown} cannot use WAL mode (its journal mode is {mode}): put it on a local file system"
            ));
        }
        let version: Option<i64> = connection
            .query_row("SELECT max(version) FROM schema_version", [], |row| row.get(0))
            .map_err(|e| format!("cannot read the approval store's schema version ({shown}): {e}"))?;
        match version {
            None => {
                connection
                    .execute("INSERT INTO schema_version (version) VALUES (?1)", [SCHEMA_VERSION])
                    .map_err(|e| format!("cannot write the approval store's schema version ({shown}): {e}"))?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "the approval store {shown} has schema version {other}, this server reads version {SCHEMA_VERSION}: \
                     run the server version that wrote it, or move the file aside to start empty"
                ));
            }
        }
        Ok(ApprovalStore {
            connection: Mutex::new(connection),
        })
    }

    /// Stores `op` as pending until `now + expires_in` and returns its id. An
    /// identical operation already pending (same hash, not expired) is
    /// returned instead of storing a second one.
    pub fn request(&self, op: &Operation, expires_in: Duration, now: SystemTime) -> Result<Pending, String> {
        let hash = op.operation_hash();
        let now_ms = millis(now)?;
        let expires_ms = millis(now.checked_add(expires_in).ok_or("the expiry is out of range")?)?;
        let arguments = canonical_json(&op.arguments);
        // Drawn before the transaction; unused when an identical request is pending.
        let fresh_id = new_id()?;
        let mut connection = self.lock();
        let run = || -> rusqlite::Result<Pending> {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = tx
                .query_row(
                    "SELECT id, expires_at FROM operations
                     WHERE operation_hash = ?1 AND state = 'pending' AND expires_at > ?2
                     ORDER BY created_at, id LIMIT 1",
                    params![hash, now_ms],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                )
                .optional()?;
            let pending = match existing {
                Some((id, expires_at)) => Pending {
                    id,
                    operation_hash: hash.clone(),
                    expires_at: time(expires_at),
                },
                None => {
                    let id = fresh_id;
                    tx.execute(
                        "INSERT INTO operations
                         (id, operation_hash, tool, arguments, requester, definition_hash, created_at, expires_at, state)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
                        params![
                            id,
                            hash,
                            op.tool,
                            arguments,
                            op.requester,
                            op.definition_hash,
                            now_ms,
                            expires_ms
                        ],
                    )?;
                    Pending {
                        id,
                        operation_hash: hash.clone(),
                        expires_at: time(expires_ms),
                    }
                }
            };
            tx.commit()?;
            Ok(pending)
        };
        run().map_err(|e| format!("cannot store the operation for approval: {e}"))
    }

    /// Operations waiting for a decision at `now`, oldest first.
    pub fn list_pending(&self, now: SystemTime) -> Result<Vec<PendingOperation>, String> {
        let now_ms = millis(now)?;
        let connection = self.lock();
        let run = || -> rusqlite::Result<Vec<PendingOperation>> {
            let mut statement = connection.prepare(
                "SELECT id, tool, arguments, requester, definition_hash, operation_hash, created_at, expires_at
                 FROM operations WHERE state = 'pending' AND expires_at > ?1
                 ORDER BY created_at, id",
            )?;
            let rows = statement.query_map([now_ms], |row| {
                Ok(PendingOperation {
                    id: row.get(0)?,
                    tool: row.get(1)?,
                    arguments: json_column(row, 2)?,
                    requester: row.get(3)?,
                    definition_hash: row.get(4)?,
                    operation_hash: row.get(5)?,
                    created_at: time(row.get(6)?),
                    expires_at: time(row.get(7)?),
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| format!("cannot list pending operations: {e}"))
    }

    /// Records `approver`'s decision on operation `id`. `operation_hash` is
    /// the hash the approver reviewed (from [`ApprovalStore::list_pending`]);
    /// it must equal the stored one.
    pub fn decide(
        &self,
        id: &str,
        approver: &str,
        approve: bool,
        operation_hash: &str,
        reason: Option<&str>,
        now: SystemTime,
    ) -> Result<Decision, ApprovalError> {
        let now_ms = millis(now).map_err(ApprovalError::Store)?;
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(record) = select_record(&tx, id)? else {
            return Err(ApprovalError::UnknownId { id: id.to_owned() });
        };
        if record.decision != StoredState::Pending {
            return Err(ApprovalError::AlreadyDecided {
                id: id.to_owned(),
                state: record.state(now),
            });
        }
        if now >= record.expires_at {
            return Err(ApprovalError::Expired { id: id.to_owned() });
        }
        if record.operation_hash != operation_hash {
            return Err(ApprovalError::OperationMismatch { id: id.to_owned() });
        }
        if record.requester == approver {
            return Err(ApprovalError::SelfApproval { id: id.to_owned() });
        }
        let state = if approve {
            StoredState::Approved
        } else {
            StoredState::Rejected
        };
        let changed = tx.execute(
            "UPDATE operations SET state = ?2, approver = ?3, decided_at = ?4, reason = ?5
             WHERE id = ?1 AND state = 'pending'",
            params![id, state.as_str(), approver, now_ms, reason],
        )?;
        if changed != 1 {
            return Err(ApprovalError::Store(format!(
                "operation `{id}` changed while it was decided"
            )));
        }
        tx.commit()?;
        Ok(Decision {
            id: id.to_owned(),
            approved: approve,
            approver: approver.to_owned(),
            decided_at: time(now_ms),
            operation_hash: record.operation_hash,
            reason: reason.map(str::to_owned),
        })
    }

    /// Uses up an approval of exactly `op`: if one is approved, unused and
    /// unexpired at `now`, it is marked used in the same transaction and its
    /// evidence returned; the operation may then run, once. `None` means
    /// there is no such approval (never asked, pending, rejected, expired,
    /// or already used).
    pub fn consume(&self, op: &Operation, now: SystemTime) -> Result<Option<Evidence>, String> {
        let hash = op.operation_hash();
        let now_ms = millis(now)?;
        let mut connection = self.lock();
        let mut run = || -> rusqlite::Result<Option<Evidence>> {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found = tx
                .query_row(
                    "SELECT id, approver, decided_at, reason FROM operations
                     WHERE operation_hash = ?1 AND state = 'approved' AND consumed_at IS NULL AND expires_at > ?2
                     ORDER BY decided_at, id LIMIT 1",
                    params![hash, now_ms],
                    |row| {
                        Ok(Evidence {
                            approval_id: row.get(0)?,
                            approver: row.get(1)?,
                            decided_at: time(row.get(2)?),
                            operation_hash: hash.clone(),
                            reason: row.get(3)?,
                        })
                    },
                )
                .optional()?;
            let Some(evidence) = found else {
                return Ok(None);
            };
            let changed = tx.execute(
                "UPDATE operations SET consumed_at = ?2 WHERE id = ?1 AND consumed_at IS NULL",
                params![evidence.approval_id, now_ms],
            )?;
            if changed != 1 {
                return Ok(None);
            }
            tx.commit()?;
            Ok(Some(evidence))
        };
        run().map_err(|e| format!("cannot use the approval: {e}"))
    }

    /// Everything stored about operation `id`, for the requester to check on it.
    pub fn status(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        let connection = self.lock();
        select_record(&connection, id).map_err(|e| format!("cannot read operation `{id}`: {e}"))
    }

    /// Deletes operations that expired or were decided before `before`
    /// (keep them as long as the audit retention needs). Returns how many went.
    pub fn prune(&self, before: SystemTime) -> Result<usize, String> {
        let before_ms = millis(before)?;
        let connection = self.lock();
        connection
            .execute(
                "DELETE FROM operations WHERE expires_at < ?1 AND (decided_at IS NULL OR decided_at < ?1)",
                [before_ms],
            )
            .map_err(|e| format!("cannot prune the approval store: {e}"))
    }

    /// The connection; a panic in another thread while holding it left no
    /// half-done transaction (SQLite rolls back), so a poisoned lock is usable.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn select_record(connection: &Connection, id: &str) -> rusqlite::Result<Option<ApprovalRecord>> {
    connection
        .query_row(
            "SELECT id, tool, arguments, requester, definition_hash, operation_hash, created_at, expires_at,
                    state, approver, decided_at, reason, consumed_at
             FROM operations WHERE id = ?1",
            [id],
            |row| {
                Ok(ApprovalRecord {
                    id: row.get(0)?,
                    tool: row.get(1)?,
                    arguments: json_column(row, 2)?,
                    requester: row.get(3)?,
                    definition_hash: row.get(4)?,
                    operation_hash: row.get(5)?,
                    created_at: time(row.get(6)?),
                    expires_at: time(row.get(7)?),
                    decision: StoredState::parse(&row.get::<_, String>(8)?)?,
                    approver: row.get(9)?,
                    decided_at: row.get::<_, Option<i64>>(10)?.map(time),
                    reason: row.get(11)?,
                    consumed_at: row.get::<_, Option<i64>>(12)?.map(time),
                })
            },
        )
        .optional()
}

fn json_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e)))
}

/// Creates the file readable and writable by its owner only, if it does not exist.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

/// 128 random bits from the operating system, as hex: unguessable.
pub(crate) fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for an operation id: {e}"))?;
    Ok(hex(&bytes))
}

fn millis(time: SystemTime) -> Result<i64, String> {
    time.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| "the time is out of range".to_owned())
}

fn time(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-10-01T09:30:00.000Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn serialize_time<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time))
}

fn serialize_time_opt<S: Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(&rfc3339(*time)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;
    use std::sync::Arc;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
    }

    fn memory() -> ApprovalStore {
        ApprovalStore::open(Path::new(":memory:")).unwrap()
    }

    fn op(priority: &str) -> Operation {
        Operation {
            tool: "set_ticket_priority".into(),
            arguments: json!({"ticket_id": 48213, "priority": priority, "reason": "customer is blocked"}),
            requester: "agent-alice".into(),
            definition_hash: "ab".repeat(32),
        }
    }

    /// A unique file in the temp directory, removed (with its WAL files) on drop.
    struct TempDb(PathBuf);

    impl TempDb {
        fn new(name: &str) -> TempDb {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
            TempDb(std::env::temp_dir().join(format!("charter-approval-{name}-{}-{nanos}-{n}.db", std::process::id())))
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = self.0.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }

    #[test]
    fn operation_hash_is_canonical_and_covers_every_field() {
        let a = op("urgent");
        let mut reordered = a.clone();
        reordered.arguments = json!({"reason": "customer is blocked", "priority": "urgent", "ticket_id": 48213});
        assert_eq!(a.operation_hash(), reordered.operation_hash());
        assert_eq!(a.operation_hash().len(), 64);
        let changed = [
            Operation {
                tool: "other".into(),
                ..a.clone()
            },
            Operation {
                requester: "agent-bob".into(),
                ..a.clone()
            },
            Operation {
                definition_hash: "cd".repeat(32),
                ..a.clone()
            },
            op("high"),
        ];
        for other in changed {
            assert_ne!(a.operation_hash(), other.operation_hash(), "{other:?}");
        }
        // The hash is SHA-256 over exactly this text.
        let text = canonical_json(&json!({
            "tool": a.tool, "arguments": a.arguments, "requester": a.requester, "definition_hash": a.definition_hash,
        }));
        assert!(text.starts_with(
            r#"{"arguments":{"priority":"urgent","reason":"customer is blocked","ticket_id":48213},"definition_hash":"#
        ));
        assert_eq!(a.operation_hash(), hex(&Sha256::digest(text.as_bytes())));
    }

    #[test]
    fn request_approve_consume_runs_once() {
        let store = memory();
        let op = op("urgent");
        assert_eq!(store.consume(&op, at(0)).unwrap(), None, "nothing approved yet");
        let pending = store.request(&op, 4 * HOUR, at(0)).unwrap();
        assert_eq!(pending.id.len(), 32);
        assert_eq!(pending.operation_hash, op.operation_hash());
        assert_eq!(pending.expires_at, at(4 * 3600));

        let listed = store.list_pending(at(10)).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, pending.id);
        assert_eq!(listed[0].arguments, op.arguments);
        assert_eq!(listed[0].requester, "agent-alice");
        assert_eq!(listed[0].tool, "set_ticket_priority");
        assert_eq!(store.consume(&op, at(20)).unwrap(), None, "pending does not run");

        let decision = store
            .decide(
                &pending.id,
                "lead-bob",
                true,
                &listed[0].operation_hash,
                Some("agreed"),
                at(30),
            )
            .unwrap();
        assert!(decision.approved);
        assert_eq!(decision.approver, "lead-bob");
        assert!(store.list_pending(at(31)).unwrap().is_empty());
        assert_eq!(
            store.status(&pending.id).unwrap().unwrap().state(at(31)),
            State::Approved
        );

        let evidence = store.consume(&op, at(40)).unwrap().expect("approved operation runs");
        assert_eq!(evidence.approval_id, pending.id);
        assert_eq!(evidence.approver, "lead-bob");
        assert_eq!(evidence.decided_at, at(30));
        assert_eq!(evidence.operation_hash, op.operation_hash());
        assert_eq!(evidence.reason.as_deref(), Some("agreed"));
        let audit = serde_json::to_value(&evidence).unwrap();
        assert_eq!(audit["decided_at"], "2026-09-21T14:13:50.000Z");

        assert_eq!(
            store.consume(&op, at(50)).unwrap(),
            None,
            "a second consume finds nothing"
        );
        let record = store.status(&pending.id).unwrap().unwrap();
        assert_eq!(record.state(at(50)), State::Consumed);
        assert_eq!(record.consumed_at, Some(at(40)));
    }

    #[test]
    fn a_different_operation_does_not_consume_the_approval() {
        let store = memory();
        let approved = op("urgent");
        let pending = store.request(&approved, HOUR, at(0)).unwrap();
        store
            .decide(&pending.id, "lead-bob", true, &pending.operation_hash, None, at(1))
            .unwrap();
        assert_eq!(store.consume(&op("low"), at(2)).unwrap(), None, "other arguments");
        let other_requester = Operation {
            requester: "agent-mallory".into(),
            ..approved.clone()
        };
        assert_eq!(store.consume(&other_requester, at(2)).unwrap(), None, "other requester");
        let other_definition = Operation {
            definition_hash: "ef".repeat(32),
            ..approved.clone()
        };
        assert_eq!(
            store.consume(&other_definition, at(2)).unwrap(),
            None,
            "changed tool definition"
        );
        assert!(store.consume(&approved, at(2)).unwrap().is_some());
    }

    #[test]
    fn replayed_decision_is_refused() {
        let store = memory();
        let pending = store.request(&op("urgent"), HOUR, at(0)).unwrap();
        store
            .decide(&pending.id, "lead-bob", true, &pending.operation_hash, None, at(1))
            .unwrap();
        let again = store
            .decide(&pending.id, "lead-carol", false, &pending.operation_hash, None, at(2))
            .unwrap_err();
        assert_eq!(again.reason(), "already_decided");
        assert!(
            again.to_string().contains("already decided (it is approved)"),
            "{again}"
        );
        assert_eq!(
            store.status(&pending.id).unwrap().unwrap().approver.as_deref(),
            Some("lead-bob")
        );
    }

    #[test]
    fn altered_operation_hash_is_refused() {
        let store = memory();
        let pending = store.request(&op("low"), HOUR, at(0)).unwrap();
        let altered = op("urgent").operation_hash();
        let err = store
            .decide(&pending.id, "lead-bob", true, &altered, None, at(1))
            .unwrap_err();
        assert_eq!(err, ApprovalError::OperationMismatch { id: pending.id.clone() });
        assert_eq!(err.reason(), "operation_mismatch");
        assert!(err.to_string().contains("what was reviewed is not what would run"));
        assert_eq!(store.status(&pending.id).unwrap().unwrap().state(at(1)), State::Pending);
        assert_eq!(store.consume(&op("urgent"), at(2)).unwrap(), None);
        assert_eq!(store.consume(&op("low"), at(2)).unwrap(), None);
    }

    #[test]
    fn self_approval_is_refused() {
        let store = memory();
        let pending = store.request(&op("urgent"), HOUR, at(0)).unwrap();
        for approve in [true, false] {
            let err = store
                .decide(
                    &pending.id,
                    "agent-alice",
                    approve,
                    &pending.operation_hash,
                    None,
                    at(1),
                )
                .unwrap_err();
            assert_eq!(err.reason(), "self_approval");
            assert!(err.to_string().contains("a second person must decide"));
        }
        assert_eq!(store.consume(&op("urgent"), at(2)).unwrap(), None);
    }

    #[test]
    fn unknown_id_is_refused() {
        let store = memory();
        let err = store
            .decide("0123456789abcdef0123456789abcdef", "lead-bob", true, "x", None, at(0))
            .unwrap_err();
        assert_eq!(err.reason(), "unknown_id");
        assert_eq!(store.status("0123456789abcdef0123456789abcdef").unwrap(), None);
    }

    #[test]
    fn expired_operations_cannot_be_decided_or_run() {
        let store = memory();
        let pending = store.request(&op("urgent"), HOUR, at(0)).unwrap();
        assert!(
            store.list_pending(at(3600)).unwrap().is_empty(),
            "gone from the list at expiry"
        );
        let err = store
            .decide(&pending.id, "lead-bob", true, &pending.operation_hash, None, at(3600))
            .unwrap_err();
        assert_eq!(err.reason(), "expired");
        assert_eq!(
            store.status(&pending.id).unwrap().unwrap().state(at(3600)),
            State::Expired
        );

        // Approved in time but used after expiry: does not run.
        let second = store.request(&op("high"), HOUR, at(0)).unwrap();
        store
            .decide(&second.id, "lead-bob", true, &second.operation_hash, None, at(10))
            .unwrap();
        assert_eq!(store.consume(&op("high"), at(3600)).unwrap(), None);
        assert_eq!(
            store.status(&second.id).unwrap().unwrap().state(at(3600)),
            State::Expired
        );

        // Asking again after expiry stores a new operation.
        let again = store.request(&op("urgent"), HOUR, at(4000)).unwrap();
        assert_ne!(again.id, pending.id);
    }

    #[test]
    fn rejected_operations_never_run() {
        let store = memory();
        let op = op("urgent");
        let pending = store.request(&op, HOUR, at(0)).unwrap();
        let decision = store
            .decide(
                &pending.id,
                "lead-bob",
                false,
                &pending.operation_hash,
                Some("not urgent"),
                at(1),
            )
            .unwrap();
        assert!(!decision.approved);
        assert_eq!(store.consume(&op, at(2)).unwrap(), None);
        let record = store.status(&pending.id).unwrap().unwrap();
        assert_eq!(record.state(at(2)), State::Rejected);
        assert_eq!(record.reason.as_deref(), Some("not urgent"));
        let err = store
            .decide(&pending.id, "lead-carol", true, &pending.operation_hash, None, at(3))
            .unwrap_err();
        assert_eq!(err.reason(), "already_decided");
        assert_eq!(store.consume(&op, at(4)).unwrap(), None);
    }

    #[test]
    fn identical_pending_requests_are_stored_once() {
        let store = memory();
        let first = store.request(&op("urgent"), HOUR, at(0)).unwrap();
        let second = store.request(&op("urgent"), HOUR, at(60)).unwrap();
        assert_eq!(first, second, "the first request, with its original expiry");
        let other = store.request(&op("high"), HOUR, at(60)).unwrap();
        assert_ne!(first.id, other.id);
        assert_eq!(store.list_pending(at(61)).unwrap().len(), 2);
    }

    #[test]
    fn ids_are_random() {
        let store = memory();
        let ids: std::collections::BTreeSet<String> = (0..50)
            .map(|i| store.request(&op(&format!("p{i}")), HOUR, at(0)).unwrap().id)
            .collect();
        assert_eq!(ids.len(), 50);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn state_survives_reopening() {
        let db = TempDb::new("reopen");
        let op = op("urgent");
        let pending = {
            let store = ApprovalStore::open(&db.0).unwrap();
            store.request(&op, HOUR, at(0)).unwrap()
        };
        {
            let store = ApprovalStore::open(&db.0).unwrap();
            assert_eq!(store.list_pending(at(1)).unwrap()[0].id, pending.id);
            store
                .decide(&pending.id, "lead-bob", true, &pending.operation_hash, None, at(2))
                .unwrap();
        }
        {
            let store = ApprovalStore::open(&db.0).unwrap();
            assert!(store.consume(&op, at(3)).unwrap().is_some());
        }
        let store = ApprovalStore::open(&db.0).unwrap();
        assert_eq!(
            store.consume(&op, at(4)).unwrap(),
            None,
            "used up, also after reopening"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&db.0).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by the owner only: {mode:o}");
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let db = TempDb::new("schema");
        drop(ApprovalStore::open(&db.0).unwrap());
        let connection = Connection::open(&db.0).unwrap();
        connection
            .execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(connection);
        let err = ApprovalStore::open(&db.0).unwrap_err();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn concurrent_consumes_run_exactly_once() {
        let db = TempDb::new("race");
        let op = op("urgent");
        let setup = ApprovalStore::open(&db.0).unwrap();
        let pending = setup.request(&op, HOUR, at(0)).unwrap();
        setup
            .decide(&pending.id, "lead-bob", true, &pending.operation_hash, None, at(1))
            .unwrap();
        // Threads sharing one store, and threads with their own connection
        // to the same file (as separate processes would have).
        let shared = Arc::new(setup);
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let shared = Arc::clone(&shared);
                    let (op, path) = (op.clone(), db.0.clone());
                    scope.spawn(move || {
                        let own;
                        let store = if i % 2 == 0 {
                            &*shared
                        } else {
                            own = ApprovalStore::open(&path).unwrap();
                            &own
                        };
                        store.consume(&op, at(2)).unwrap().is_some() as usize
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1);
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ApprovalStore>();
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(rfc3339(at(0)), "2026-09-21T14:13:20.000Z");
    }
}
