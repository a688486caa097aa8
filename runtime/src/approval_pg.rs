//! Pending approvals in PostgreSQL (feature `postgres`), shared by every
//! replica: an operation requested on one replica can be decided on another
//! and runs exactly once on any.
//!
//! The semantics are those of the SQLite store ([`super::approval`]), with
//! two differences that matter once processes share the store. Time is the
//! database's (`now()`), never a replica's clock, so skewed replicas agree on
//! expiry. And each state change is one guarded statement: a decision is an
//! `UPDATE ... WHERE state = 'pending' AND ...`, a consumption an `UPDATE`
//! of the oldest approved, unused, unexpired row, locked `FOR UPDATE SKIP
//! LOCKED`, so concurrent consumers on any replicas see it at most once.
//!
//! The schema is created and migrated at start-up by embedded, versioned
//! migrations, under an advisory lock so replicas starting together do not
//! race; a database migrated by a newer server is refused.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::config::{Host, SslMode};

use super::approval::{
    ApprovalError, ApprovalRecord, Decision, Evidence, Operation, Pending, PendingOperation, StoredState,
    canonical_json, new_id,
};

/// Each migration: its version and the SQL that brings the schema to it.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE charter_approvals (
        id              TEXT PRIMARY KEY,
        operation_hash  TEXT NOT NULL,
        tool            TEXT NOT NULL,
        arguments       TEXT NOT NULL,
        requester       TEXT NOT NULL,
        definition_hash TEXT NOT NULL,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires_at      TIMESTAMPTZ NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
        approver        TEXT,
        decided_at      TIMESTAMPTZ,
        reason          TEXT,
        consumed_at     TIMESTAMPTZ
    );
    CREATE INDEX charter_approvals_by_hash ON charter_approvals (operation_hash, state);",
)];

/// Serialises migrations across replicas (`pg_advisory_xact_lock`): an arbitrary, fixed key.
const MIGRATION_LOCK: i64 = 0x6368_6172_7465_7201;

const RECORD_COLUMNS: &str = "id, tool, arguments, requester, definition_hash, operation_hash, created_at, expires_at,
     state, approver, decided_at, reason, consumed_at";

/// The shared store: a connection pool to one database.
pub struct PgApprovalStore {
    pool: Pool,
}

impl std::fmt::Debug for PgApprovalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL holds a password: nothing of it is shown.
        f.debug_struct("PgApprovalStore").finish_non_exhaustive()
    }
}

fn store_error(e: impl std::fmt::Display) -> String {
    format!("the approval database failed: {e}")
}

impl PgApprovalStore {
    /// Connects to `url` with at most `pool_size` connections and migrates the
    /// schema. `sslmode=disable` is accepted only for loopback hosts; any other
    /// host needs `sslmode=require` (TLS with the system's trusted roots).
    /// Errors never repeat the URL (it holds a password).
    pub async fn open(url: &str, pool_size: usize) -> Result<PgApprovalStore, String> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            format!("the PostgreSQL URL is not valid ({e}): write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        })?;
        let loopback = config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            Host::Unix(_) => true,
        });
        if !loopback && config.get_ssl_mode() != SslMode::Require {
            return Err(
                "the PostgreSQL URL reaches another host without TLS: add `sslmode=require` to it (the server \
                 holds operations' arguments and approvals); plain connections are accepted on loopback only"
                    .into(),
            );
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let provider = std::sync::Arc::new(super::tls::provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("cannot set up TLS for PostgreSQL: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
            Manager::from_config(config, tls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot set up the PostgreSQL pool: {e}"))?;
        let store = PgApprovalStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this server knows and the database lacks, in
    /// one transaction under an advisory lock.
    async fn migrate(&self) -> Result<(), String> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL for the approval store: {e}"))?;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(store_error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS charter_schema_migrations (
                version    INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(store_error)?;
        let current: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM charter_schema_migrations", &[])
            .await
            .map_err(store_error)?
            .get(0);
        let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
        if current > known {
            return Err(format!(
                "the approval database is at schema version {current}, and this server knows versions up to \
                 {known}: run the server version that migrated it (or a newer one)"
            ));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
            tx.batch_execute(sql).await.map_err(store_error)?;
            tx.execute(
                "INSERT INTO charter_schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(store_error)?;
            tracing::info!(version, "approval database migrated");
        }
        tx.commit().await.map_err(store_error)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        self.pool.get().await.map_err(store_error)
    }

    /// Stores `op` as pending for `expires_in` (by the database's clock), or
    /// returns the identical operation already pending.
    pub async fn request(&self, op: &Operation, expires_in: Duration) -> Result<Pending, String> {
        let hash = op.operation_hash();
        let arguments = canonical_json(&op.arguments);
        let fresh_id = new_id()?;
        let seconds = expires_in.as_secs_f64();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        // Identical requests racing on two replicas store one operation.
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&hash])
            .await
            .map_err(store_error)?;
        let existing = tx
            .query_opt(
                "SELECT id, expires_at FROM charter_approvals
                 WHERE operation_hash = $1 AND state = 'pending' AND expires_at > now()
                 ORDER BY created_at, id LIMIT 1",
                &[&hash],
            )
            .await
            .map_err(store_error)?;
        let pending = match existing {
            Some(row) => Pending {
                id: row.get(0),
                operation_hash: hash.clone(),
                expires_at: row.get(1),
            },
            None => {
                let row = tx
                    .query_one(
                        "INSERT INTO charter_approvals
                         (id, operation_hash, tool, arguments, requester, definition_hash, expires_at, state)
                         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), 'pending')
                         RETURNING expires_at",
                        &[
                            &fresh_id,
                            &hash,
                            &op.tool,
                            &arguments,
                            &op.requester,
                            &op.definition_hash,
                            &seconds,
                        ],
                    )
                    .await
                    .map_err(store_error)?;
                Pending {
                    id: fresh_id,
                    operation_hash: hash.clone(),
                    expires_at: row.get(0),
                }
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(pending)
    }

    /// Operations waiting for a decision now, oldest first.
    pub async fn list_pending(&self) -> Result<Vec<PendingOperation>, String> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, tool, arguments, requester, definition_hash, operation_hash, created_at, expires_at
                 FROM charter_approvals WHERE state = 'pending' AND expires_at > now()
                 ORDER BY created_at, id",
                &[],
            )
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(PendingOperation {
                    id: row.get(0),
                    tool: row.get(1),
                    arguments: json(row, 2)?,
                    requester: row.get(3),
                    definition_hash: row.get(4),
                    operation_hash: row.get(5),
                    created_at: row.get(6),
                    expires_at: row.get(7),
                })
            })
            .collect()
    }

    /// The number of pending operations and the age of the oldest, by the database's clock.
    pub async fn pending_summary(&self) -> Result<(i64, Duration), String> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
                 FROM charter_approvals WHERE state = 'pending' AND expires_at > now()",
                &[],
            )
            .await
            .map_err(store_error)?;
        let age: f64 = row.get(1);
        Ok((row.get(0), Duration::from_secs_f64(age.max(0.0))))
    }

    /// Records `approver`'s decision in one guarded statement; when it changes
    /// nothing, the stored record says why (in the SQLite store's order).
    pub async fn decide(
        &self,
        id: &str,
        approver: &str,
        approve: bool,
        operation_hash: &str,
        reason: Option<&str>,
    ) -> Result<Decision, ApprovalError> {
        let state = if approve { "approved" } else { "rejected" };
        let client = self.client().await.map_err(ApprovalError::Store)?;
        let decided = client
            .query_opt(
                "UPDATE charter_approvals SET state = $2, approver = $3, decided_at = now(), reason = $4
                 WHERE id = $1 AND state = 'pending' AND expires_at > now()
                   AND operation_hash = $5 AND requester <> $3
                 RETURNING decided_at",
                &[&id, &state, &approver, &reason, &operation_hash],
            )
            .await
            .map_err(|e| ApprovalError::Store(store_error(e)))?;
        if let Some(row) = decided {
            return Ok(Decision {
                id: id.to_owned(),
                approved: approve,
                approver: approver.to_owned(),
                decided_at: row.get(0),
                operation_hash: operation_hash.to_owned(),
                reason: reason.map(str::to_owned),
            });
        }
        let row = client
            .query_opt(
                "SELECT state, expires_at <= now(), operation_hash, requester, consumed_at IS NOT NULL
                 FROM charter_approvals WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| ApprovalError::Store(store_error(e)))?;
        let Some(row) = row else {
            return Err(ApprovalError::UnknownId { id: id.to_owned() });
        };
        let stored: String = row.get(0);
        let expired: bool = row.get(1);
        let id = id.to_owned();
        if stored != "pending" {
            let consumed: bool = row.get(4);
            let state = match stored.as_str() {
                "rejected" => super::approval::State::Rejected,
                _ if consumed => super::approval::State::Consumed,
                _ if expired => super::approval::State::Expired,
                _ => super::approval::State::Approved,
            };
            return Err(ApprovalError::AlreadyDecided { id, state });
        }
        if expired {
            return Err(ApprovalError::Expired { id });
        }
        if row.get::<_, String>(2) != operation_hash {
            return Err(ApprovalError::OperationMismatch { id });
        }
        if row.get::<_, String>(3) == approver {
            return Err(ApprovalError::SelfApproval { id });
        }
        Err(ApprovalError::Store(format!(
            "operation `{id}` changed while it was decided"
        )))
    }

    /// Uses up an approval of exactly `op` in one statement: the oldest
    /// approved, unused, unexpired one is marked used and its evidence
    /// returned. Concurrent consumers (on any replica) skip a row another is
    /// taking, so each approval is returned once.
    pub async fn consume(&self, op: &Operation) -> Result<Option<Evidence>, String> {
        let hash = op.operation_hash();
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE charter_approvals SET consumed_at = now()
                 WHERE id = (
                     SELECT id FROM charter_approvals
                     WHERE operation_hash = $1 AND state = 'approved' AND consumed_at IS NULL AND expires_at > now()
                     ORDER BY decided_at, id LIMIT 1
                     FOR UPDATE SKIP LOCKED
                 ) AND consumed_at IS NULL
                 RETURNING id, approver, decided_at, reason",
                &[&hash],
            )
            .await
            .map_err(store_error)?;
        Ok(row.map(|row| Evidence {
            approval_id: row.get(0),
            approver: row.get(1),
            decided_at: row.get(2),
            operation_hash: hash,
            reason: row.get(3),
        }))
    }

    /// Everything stored about operation `id`.
    pub async fn status(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {RECORD_COLUMNS} FROM charter_approvals WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(store_error)?;
        row.map(|row| record(&row)).transpose()
    }

    /// Deletes operations that expired or were decided before `before`.
    pub async fn prune(&self, before: SystemTime) -> Result<u64, String> {
        self.client()
            .await?
            .execute(
                "DELETE FROM charter_approvals WHERE expires_at < $1 AND (decided_at IS NULL OR decided_at < $1)",
                &[&before],
            )
            .await
            .map_err(store_error)
    }
}

fn json(row: &Row, index: usize) -> Result<Value, String> {
    serde_json::from_str(row.get::<_, &str>(index)).map_err(store_error)
}

fn record(row: &Row) -> Result<ApprovalRecord, String> {
    let decision = match row.get::<_, &str>(8) {
        "pending" => StoredState::Pending,
        "approved" => StoredState::Approved,
        "rejected" => StoredState::Rejected,
        other => return Err(store_error(format!("unknown state `{other}`"))),
    };
    Ok(ApprovalRecord {
        id: row.get(0),
        tool: row.get(1),
        arguments: json(row, 2)?,
        requester: row.get(3),
        definition_hash: row.get(4),
        operation_hash: row.get(5),
        created_at: row.get(6),
        expires_at: row.get(7),
        decision,
        approver: row.get(9),
        decided_at: row.get(10),
        reason: row.get(11),
        consumed_at: row.get(12),
    })
}

/// Against a real PostgreSQL on loopback (`scripts/services start`, which
/// sets `CHARTER_TEST_POSTGRES_URL` through `scripts/services env`); each test
/// works in a schema of its own.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn base_url() -> String {
        std::env::var("CHARTER_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "CHARTER_TEST_POSTGRES_URL is not set: run `scripts/services start` and `eval \"$(scripts/services env)\"`"
            )
        })
    }

    /// A fresh schema, and the URL whose connections use it.
    async fn fresh_schema() -> (String, String) {
        let schema = format!("approvals_test_{}", new_id().unwrap());
        let (client, connection) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
        let separator = if base_url().contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}options=-c%20search_path%3D{schema}", base_url());
        (schema, url)
    }

    async fn store(url: &str) -> PgApprovalStore {
        PgApprovalStore::open(url, 8).await.unwrap()
    }

    fn op(priority: &str) -> Operation {
        Operation {
            tool: "set_ticket_priority".into(),
            arguments: json!({ "ticket_id": 7, "priority": priority }),
            requester: "agent".into(),
            definition_hash: "d".repeat(64),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requested_on_one_replica_approved_on_another_runs_once() {
        let (_, url) = fresh_schema().await;
        let (a, b) = (store(&url).await, store(&url).await);
        let pending = a.request(&op("urgent"), Duration::from_secs(600)).await.unwrap();
        // The identical request is the same operation, on either replica.
        assert_eq!(
            b.request(&op("urgent"), Duration::from_secs(600)).await.unwrap().id,
            pending.id
        );
        let listed = b.list_pending().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].operation_hash, pending.operation_hash);
        assert_eq!(a.consume(&op("urgent")).await.unwrap(), None, "ran before a decision");
        let decided = b
            .decide(&pending.id, "lead", true, &pending.operation_hash, Some("ok"))
            .await
            .unwrap();
        assert!(decided.approved);
        assert_eq!(
            a.consume(&op("high")).await.unwrap(),
            None,
            "another operation used the approval"
        );
        let evidence = a
            .consume(&op("urgent"))
            .await
            .unwrap()
            .expect("the approved operation runs");
        assert_eq!(
            (evidence.approval_id.as_str(), evidence.approver.as_str()),
            (pending.id.as_str(), "lead")
        );
        assert_eq!(b.consume(&op("urgent")).await.unwrap(), None, "one approval ran twice");
        let record = a.status(&pending.id).await.unwrap().unwrap();
        assert_eq!(record.state(SystemTime::now()), super::super::approval::State::Consumed);
        assert_eq!(a.pending_summary().await.unwrap().0, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixteen_concurrent_consumers_on_two_replicas_run_once() {
        let (_, url) = fresh_schema().await;
        let (a, b) = (Arc::new(store(&url).await), Arc::new(store(&url).await));
        let pending = a.request(&op("high"), Duration::from_secs(600)).await.unwrap();
        b.decide(&pending.id, "lead", true, &pending.operation_hash, None)
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let consumers: Vec<_> = (0..16)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.consume(&op("high")).await.unwrap()
                })
            })
            .collect();
        let mut ran = 0;
        for consumer in consumers {
            ran += usize::from(consumer.await.unwrap().is_some());
        }
        assert_eq!(ran, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusals_match_the_sqlite_store() {
        let (_, url) = fresh_schema().await;
        let s = store(&url).await;
        let pending = s.request(&op("low"), Duration::from_secs(600)).await.unwrap();
        let reason = |r: Result<Decision, ApprovalError>| r.unwrap_err().reason();
        assert_eq!(
            reason(s.decide("nope", "lead", true, &pending.operation_hash, None).await),
            "unknown_id"
        );
        assert_eq!(
            reason(
                s.decide(&pending.id, "agent", true, &pending.operation_hash, None)
                    .await
            ),
            "self_approval"
        );
        let altered = "0".repeat(64);
        assert_eq!(
            reason(s.decide(&pending.id, "lead", true, &altered, None).await),
            "operation_mismatch"
        );
        s.decide(&pending.id, "lead", false, &pending.operation_hash, Some("no"))
            .await
            .unwrap();
        assert_eq!(
            reason(
                s.decide(&pending.id, "other", true, &pending.operation_hash, None)
                    .await
            ),
            "already_decided"
        );
        assert_eq!(s.consume(&op("low")).await.unwrap(), None, "a rejected operation ran");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expiry_is_by_the_databases_clock() {
        let (_, url) = fresh_schema().await;
        let s = store(&url).await;
        let pending = s.request(&op("normal"), Duration::from_millis(800)).await.unwrap();
        let approved = s.request(&op("urgent"), Duration::from_millis(800)).await.unwrap();
        s.decide(&approved.id, "lead", true, &approved.operation_hash, None)
            .await
            .unwrap();
        assert_eq!(s.pending_summary().await.unwrap().0, 1);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let err = s
            .decide(&pending.id, "lead", true, &pending.operation_hash, None)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "expired");
        assert_eq!(s.consume(&op("urgent")).await.unwrap(), None, "an expired approval ran");
        assert!(s.list_pending().await.unwrap().is_empty());
        assert_eq!(s.prune(SystemTime::now() + Duration::from_secs(1)).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_starting_together_migrate_once_and_a_newer_schema_is_refused() {
        let (schema, url) = fresh_schema().await;
        let (a, b) = tokio::join!(PgApprovalStore::open(&url, 2), PgApprovalStore::open(&url, 2));
        a.unwrap();
        b.unwrap();
        let (client, connection) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let rows = client
            .query(&format!("SELECT version FROM {schema}.charter_schema_migrations"), &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), MIGRATIONS.len());
        client
            .execute(
                &format!("INSERT INTO {schema}.charter_schema_migrations (version) VALUES (99)"),
                &[],
            )
            .await
            .unwrap();
        let err = PgApprovalStore::open(&url, 2).await.unwrap_err();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_recovers_when_its_connections_are_killed() {
        let (_, url) = fresh_schema().await;
        let s = store(&url).await;
        let pending = s.request(&op("high"), Duration::from_secs(600)).await.unwrap();
        let (client, connection) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE usename = current_user AND pid <> pg_backend_pid() AND query LIKE '%charter_approvals%'",
                &[],
            )
            .await
            .unwrap();
        let mut listed = Err(String::new());
        for _ in 0..5 {
            listed = s.list_pending().await;
            if listed.is_ok() {
                break;
            }
        }
        assert_eq!(
            listed.unwrap()[0].id,
            pending.id,
            "the pending operation is still there"
        );
    }

    #[tokio::test]
    async fn a_remote_database_without_tls_is_refused_and_urls_are_never_echoed() {
        let err = PgApprovalStore::open("postgres://app:s3cret@db.internal:5432/app", 1)
            .await
            .unwrap_err();
        assert!(err.contains("sslmode=require"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err = PgApprovalStore::open("postgres://app:s3cret@db.internal:notaport/app", 1)
            .await
            .unwrap_err();
        assert!(err.contains("not valid") && !err.contains("s3cret"), "{err}");
    }
}
