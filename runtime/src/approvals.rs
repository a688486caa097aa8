//! The approval store a server runs with, chosen by its configuration: the
//! SQLite store on the server's own disk ([`super::approval`]) or, for
//! replicated servers, the PostgreSQL one ([`super::approval_pg`]). It sits
//! above both, so neither store knows the other.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::approval::{
    ApprovalError, ApprovalRecord, ApprovalStore, Decision, Evidence, Operation, Pending, PendingOperation,
};

/// The approval store a server runs with: SQLite on the server's own disk
/// (stdio, one replica), or PostgreSQL shared by every replica (feature
/// `postgres`). The same guarantees either way; with PostgreSQL, time is the
/// database's.
#[derive(Debug)]
pub enum Approvals {
    Sqlite(ApprovalStore),
    #[cfg(feature = "postgres")]
    Postgres(super::approval_pg::PgApprovalStore),
}

impl Approvals {
    /// The store the configuration names: PostgreSQL when `approvals.postgres_url_env`
    /// (or `_file`) is set, else the SQLite file at `approvals.path`.
    pub async fn open(config: &super::config::Approvals) -> Result<Approvals, String> {
        match config.postgres_url()? {
            #[cfg(feature = "postgres")]
            Some(url) => {
                let store = super::approval_pg::PgApprovalStore::open(&url, config.postgres_pool_size).await?;
                tracing::info!("pending approvals are kept in PostgreSQL, shared by every replica");
                Ok(Approvals::Postgres(store))
            }
            #[cfg(not(feature = "postgres"))]
            Some(_) => Err(
                "the configuration keeps approvals in PostgreSQL ([approvals] postgres_url_env), and this build has \
                 no PostgreSQL support: regenerate the server from a contract with more than one replica, or use \
                 [approvals] path"
                    .into(),
            ),
            None => Ok(Approvals::Sqlite(ApprovalStore::open(Path::new(&config.path))?)),
        }
    }

    pub async fn request(&self, op: &Operation, expires_in: Duration) -> Result<Pending, String> {
        match self {
            Approvals::Sqlite(store) => store.request(op, expires_in, SystemTime::now()),
            #[cfg(feature = "postgres")]
            Approvals::Postgres(store) => store.request(op, expires_in).await,
        }
    }

    pub async fn list_pending(&self) -> Result<Vec<PendingOperation>, String> {
        match self {
            Approvals::Sqlite(store) => store.list_pending(SystemTime::now()),
            #[cfg(feature = "postgres")]
            Approvals::Postgres(store) => store.list_pending().await,
        }
    }

    /// How many operations wait for a reviewer, and how long the oldest has waited.
    pub async fn pending_summary(&self) -> Result<(i64, Duration), String> {
        match self {
            Approvals::Sqlite(store) => {
                let now = SystemTime::now();
                let pending = store.list_pending(now)?;
                let oldest = pending
                    .iter()
                    .filter_map(|p| now.duration_since(p.created_at).ok())
                    .max()
                    .unwrap_or_default();
                Ok((pending.len() as i64, oldest))
            }
            #[cfg(feature = "postgres")]
            Approvals::Postgres(store) => store.pending_summary().await,
        }
    }

    pub async fn decide(
        &self,
        id: &str,
        approver: &str,
        approve: bool,
        operation_hash: &str,
        reason: Option<&str>,
    ) -> Result<Decision, ApprovalError> {
        match self {
            Approvals::Sqlite(store) => store.decide(id, approver, approve, operation_hash, reason, SystemTime::now()),
            #[cfg(feature = "postgres")]
            Approvals::Postgres(store) => store.decide(id, approver, approve, operation_hash, reason).await,
        }
    }

    pub async fn consume(&self, op: &Operation) -> Result<Option<Evidence>, String> {
        match self {
            Approvals::Sqlite(store) => store.consume(op, SystemTime::now()),
            #[cfg(feature = "postgres")]
            Approvals::Postgres(store) => store.consume(op).await,
        }
    }

    pub async fn status(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        match self {
            Approvals::Sqlite(store) => store.status(id),
            #[cfg(feature = "postgres")]
            Approvals::Postgres(store) => store.status(id).await,
        }
    }
}
