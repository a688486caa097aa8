//! Prometheus metrics, served at `/metrics` on HTTP: calls by outcome,
//! denials by reason, latency histograms, output-contract violations (an
//! alert: a handler bug) and audit failures (an alert: durability is at risk).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    kind: &'static str,
    name: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    kind: &'static str,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The server's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    denials: Family<ReasonLabels, Counter>,
    latency: Family<NameLabels, Histogram>,
    output_violations: Family<NameLabels, Counter>,
    audit_failures: Counter,
    kill_switch: Gauge,
    rate_limit_backend_errors: Counter,
    rate_limit_shared: Gauge,
    approval_refusals: Family<ReasonLabels, Counter>,
    approvals_pending: Gauge,
    approvals_oldest_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Each tool's, resource's and prompt's `ok` counter and latency
    /// histogram, made at start: a successful call counts without building
    /// labels or allocating.
    hot: [HashMap<String, Hot>; 3],
}

struct Hot {
    ok: Counter,
    latency: Histogram,
}

/// `hot`'s index for a kind.
fn kind_index(kind: &str) -> Option<usize> {
    match kind {
        "tool" => Some(0),
        "resource" => Some(1),
        "prompt" => Some(2),
        _ => None,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::for_names(std::iter::empty())
    }

    /// Metrics with every named tool, resource and prompt (`(kind, name)`)
    /// ready: their `ok` series exist (at 0) before the first call.
    pub fn for_names<'a>(names: impl IntoIterator<Item = (&'static str, &'a str)>) -> Metrics {
        let mut registry = Registry::with_prefix("mcp");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Tool calls, resource reads and prompt requests, by outcome",
            calls.clone(),
        );
        let denials = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "denials",
            "Requests refused before any handler ran, by reason",
            denials.clone(),
        );
        let latency = Family::<NameLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        registry.register(
            "call_duration_seconds",
            "Time from admission to reply, handler included",
            latency.clone(),
        );
        let output_violations = Family::<NameLabels, Counter>::default();
        registry.register(
            "output_contract_violations",
            "Handler results refused because they break the output schema or declared content (a bug: alert)",
            output_violations.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written (alert: draft and write calls fail closed)",
            audit_failures.clone(),
        );
        let kill_switch = Gauge::default();
        registry.register(
            "kill_switch_engaged",
            "1 while the whole server is switched off",
            kill_switch.clone(),
        );
        let rate_limit_backend_errors = Counter::default();
        registry.register(
            "rate_limit_backend_errors",
            "Calls whose shared rate limit Redis could not check (alert: writes are refused meanwhile)",
            rate_limit_backend_errors.clone(),
        );
        let rate_limit_shared = Gauge::default();
        registry.register(
            "rate_limit_shared",
            "1 while rate limits are shared by the replicas through Redis and Redis answers",
            rate_limit_shared.clone(),
        );
        let approval_refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "approval_refusals",
            "Approval decisions refused, by reason (self_approval and operation_mismatch: alert)",
            approval_refusals.clone(),
        );
        let approvals_pending = Gauge::default();
        registry.register(
            "approvals_pending",
            "Operations waiting for a reviewer's decision",
            approvals_pending.clone(),
        );
        let approvals_oldest_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "approvals_oldest_pending_age_seconds",
            "How long the oldest pending operation has waited for a reviewer",
            approvals_oldest_age.clone(),
        );
        let mut hot: [HashMap<String, Hot>; 3] = Default::default();
        for (kind, name) in names {
            let Some(index) = kind_index(kind) else { continue };
            let labels = NameLabels {
                kind,
                name: name.to_string(),
            };
            let ok = calls
                .get_or_create(&CallLabels {
                    kind,
                    name: name.to_string(),
                    outcome: "ok",
                })
                .clone();
            let latency = latency.get_or_create(&labels).clone();
            hot[index].insert(name.to_string(), Hot { ok, latency });
        }
        Metrics {
            inner: Arc::new(Inner {
                hot,
                approval_refusals,
                approvals_pending,
                approvals_oldest_age,
                rate_limit_backend_errors,
                rate_limit_shared,
                registry,
                calls,
                denials,
                latency,
                output_violations,
                audit_failures,
                kill_switch,
            }),
        }
    }

    /// One finished call: `outcome` is `ok`, `error`, `timeout`, `cancelled` or `denied`.
    pub fn call(&self, kind: &'static str, name: &str, outcome: &'static str, elapsed: Duration) {
        if outcome == "ok"
            && let Some(hot) = kind_index(kind).and_then(|index| self.inner.hot[index].get(name))
        {
            hot.ok.inc();
            hot.latency.observe(elapsed.as_secs_f64());
            return;
        }
        self.inner
            .calls
            .get_or_create(&CallLabels {
                kind,
                name: name.to_string(),
                outcome,
            })
            .inc();
        if outcome != "denied" {
            self.inner
                .latency
                .get_or_create(&NameLabels {
                    kind,
                    name: name.to_string(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn denial(&self, reason: &'static str) {
        self.inner.denials.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn output_violation(&self, kind: &'static str, name: &str) {
        self.inner
            .output_violations
            .get_or_create(&NameLabels {
                kind,
                name: name.to_string(),
            })
            .inc();
    }

    /// Brings the failure counter up to the audit log's running total (it
    /// only grows), so each failed record counts once however often this runs.
    pub fn set_audit_failures(&self, failures: u64) {
        let counted = self.inner.audit_failures.get();
        if failures > counted {
            self.inner.audit_failures.inc_by(failures - counted);
        }
    }

    pub fn approval_refused(&self, reason: &'static str) {
        self.inner
            .approval_refusals
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn set_pending_approvals(&self, count: i64, oldest: Duration) {
        self.inner.approvals_pending.set(count);
        self.inner.approvals_oldest_age.set(oldest.as_secs_f64());
    }

    pub fn rate_limit_backend_error(&self) {
        self.inner.rate_limit_backend_errors.inc();
    }

    pub fn set_rate_limit_shared(&self, shared: bool) {
        self.inner.rate_limit_shared.set(i64::from(shared));
    }

    pub fn set_kill_switch(&self, engaged: bool) {
        self.inner.kill_switch.set(i64::from(engaged));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.inner.registry).is_err() {
            text.clear();
        }
        text
    }
}
