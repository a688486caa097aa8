//! The deadline of the call a task is running, for the code that runs inside
//! it: the handler ([`Context::deadline`](crate::dispatch::Context::deadline))
//! and the downstream requests it makes. A module of its own, used by the
//! pipeline that sets it and by dispatch and egress that read it, so none of
//! them depends on another for it.

use std::future::Future;
use std::time::Instant;

tokio::task_local! {
    /// Scoped to the handler's future rather than kept in the `Context`,
    /// because it is known only once the call is admitted (an approval may
    /// have kept it waiting), after the context is lent to the audit trail.
    static CALL_DEADLINE: Instant;
}

/// Runs `handler` as the call whose answer is due at `deadline`.
pub(crate) async fn within<F: Future>(deadline: Instant, handler: F) -> F::Output {
    CALL_DEADLINE.scope(deadline, handler).await
}

/// The running call's deadline, if this task is running a handler.
pub(crate) fn of_call() -> Option<Instant> {
    CALL_DEADLINE.try_with(|deadline| *deadline).ok()
}

/// When a request made for the running call must have its answer: one timer
/// tick (1 ms) before the call's deadline, so a slow downstream is reported
/// by its own timeout, which names what did not answer, never by the call's,
/// whatever the scheduling. `None` outside a call.
#[cfg(feature = "egress")]
pub(crate) fn for_requests() -> Option<Instant> {
    of_call().map(|call| call.checked_sub(std::time::Duration::from_millis(1)).unwrap_or(call))
}
