//! The gate pipeline every tool call, resource read and prompt passes, in one
//! place and one order:
//!
//! 1. authentication: the identity in the [`Context`], established by the transport;
//! 2. scopes, kill switch and rate limit ([`Controls::admit`]);
//! 3. validation (the caller's own check, run only once admitted);
//! 4. the concurrency cap (a permit held until the handler returns);
//! 5. approval, for tools whose contract asks for it;
//! 6. the intent record, for state changes: durable before the handler runs;
//! 7. the handler, under the deadline and the caller's cancellation;
//! 8. output checks (the caller's, on the typed [`Outcome`]) and the outcome record.
//!
//! Stages answer with a typed [`Refusal`] or [`Outcome`]; each caller maps
//! them to its protocol form (tools: `isError` results; resources and
//! prompts: JSON-RPC errors). Without [`Controls`] (the bare protocol layer
//! a test or benchmark measures) only validation, the deadline and the
//! output checks apply.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;

use super::controls::Denial;
use super::dispatch::{Context, ToolError};
use super::guard::{Approved, Controls, Trail};
use super::surface::{Effect, Limits, PromptSpec, ResourceSpec, ToolSpec};

/// What the gates need to know about one request.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub kind: &'static str,
    pub name: &'a str,
    pub effect: Effect,
    pub hash: &'a str,
    pub scopes: &'a [String],
    pub limits: &'a Limits,
    /// Tools carry their spec: approval, data class and audit settings live there.
    pub tool: Option<&'a ToolSpec>,
}

impl<'a> Call<'a> {
    pub fn tool(spec: &'a ToolSpec) -> Call<'a> {
        Call {
            kind: "tool",
            name: spec.name(),
            effect: spec.effect,
            hash: &spec.hash,
            scopes: &spec.scopes,
            limits: &spec.limits,
            tool: Some(spec),
        }
    }

    pub fn resource(spec: &'a ResourceSpec) -> Call<'a> {
        Call::read_only("resource", spec.name(), &spec.hash, &spec.scopes, &spec.limits)
    }

    /// Prompts run under the server-wide default limits the surface gives them.
    pub fn prompt(spec: &'a PromptSpec) -> Call<'a> {
        Call::read_only("prompt", spec.name(), &spec.hash, &spec.scopes, &spec.limits)
    }

    fn read_only(
        kind: &'static str,
        name: &'a str,
        hash: &'a str,
        scopes: &'a [String],
        limits: &'a Limits,
    ) -> Call<'a> {
        Call {
            kind,
            name,
            effect: Effect::Read,
            hash,
            scopes,
            limits,
            tool: None,
        }
    }
}

/// A request that breaks its contract, as the validation stage reports it.
pub struct Invalid<E> {
    /// What the caller is told; boxed, so the validation closure's `Err`
    /// stays small whatever the protocol error type weighs.
    pub reply: Box<E>,
    /// The audited reason and detail, or `None` where this kind of request
    /// has never audited its validation failures.
    pub audit: Option<(&'static str, String)>,
}

/// Why a request did not reach its handler.
pub enum Refusal<E> {
    /// Scopes, kill switch, rate limit or concurrency cap.
    Denied(Denial),
    /// The validation stage's reply.
    Invalid(E),
    /// Approval declined or impossible; the message says why.
    NotApproved(String),
    /// Stored for a reviewer; the message says what happens next.
    Pending(String),
    /// The user's confirmation is asked for by an `input_required` result
    /// (the error carries the request); nothing ran.
    Asking(ToolError),
    /// A state change whose intent record could not be written: fail closed.
    IntentUnrecorded,
}

/// How the handler ended, before the caller's output checks.
pub enum Outcome<T> {
    Done(T),
    Failed(ToolError),
    TimedOut(Duration),
    Cancelled,
}

impl<T> Outcome<T> {
    /// The outcome as the handler error a timeout or cancellation has always
    /// been reported as (`timed out after 5s`, `cancelled`).
    pub fn into_result(self) -> Result<T, ToolError> {
        match self {
            Outcome::Done(value) => Ok(value),
            Outcome::Failed(error) => Err(error),
            Outcome::TimedOut(deadline) => Err(ToolError::unavailable(format!("timed out after {}", human(deadline)))),
            Outcome::Cancelled => Err(ToolError::unavailable("cancelled")),
        }
    }
}

/// One request on its way through the gates.
pub struct Pipeline<'a> {
    call: Call<'a>,
    context: &'a Context,
    controls: Option<&'a Controls>,
    trail: Option<Trail<'a>>,
}

/// A request every gate before the handler let through.
pub struct Admission {
    /// The approval's evidence, for the outcome record.
    evidence: Option<Value>,
    /// Held until the handler returns: the concurrency cap counts running calls.
    permit: Option<OwnedSemaphorePermit>,
}

/// How the handler ended, with the approval evidence the outcome record carries.
pub struct Ran<T> {
    pub outcome: Outcome<T>,
    pub evidence: Option<Value>,
}

impl<'a> Pipeline<'a> {
    pub fn new(controls: Option<&'a Controls>, call: Call<'a>, context: &'a Context) -> Pipeline<'a> {
        let trail =
            controls.map(|controls| Trail::new(controls, call.kind, call.name, call.effect, call.hash, context));
        Pipeline {
            call,
            context,
            controls,
            trail,
        }
    }

    /// Records a tool's arguments as its data class and audit settings allow.
    pub fn with_arguments(mut self, arguments: &Value) -> Pipeline<'a> {
        if let (Some(trail), Some(spec)) = (self.trail.take(), self.call.tool) {
            self.trail = Some(trail.with_arguments(arguments, spec.data_class.as_deref(), spec.audit.arguments));
        }
        self
    }

    /// Every stage before the handler, in order. `arguments` are what an
    /// approval is given for (tools only); `validate` runs only once the
    /// caller is admitted, and what it returns goes to the handler.
    pub async fn admit<V, E>(
        &self,
        arguments: Option<&Value>,
        validate: impl FnOnce() -> Result<V, Invalid<E>>,
    ) -> Result<(Admission, V), Refusal<E>> {
        let call = &self.call;
        if let Some(controls) = self.controls
            && let Err(denial) = controls.admit(call.kind, call.name, call.scopes, self.context).await
        {
            return Err(self.refuse(denial));
        }
        let validated = validate().map_err(|invalid| {
            if let (Some(trail), Some((reason, detail))) = (&self.trail, &invalid.audit) {
                trail.denied(reason, detail);
            }
            Refusal::Invalid(*invalid.reply)
        })?;
        let Some(controls) = self.controls else {
            let admission = Admission {
                evidence: None,
                permit: None,
            };
            return Ok((admission, validated));
        };
        let permit = controls
            .limiter
            .acquire(call.kind, call.name)
            .map_err(|denial| self.refuse(denial))?;
        let mut evidence = None;
        if let (Some(spec), Some(arguments)) = (call.tool, arguments) {
            match controls.approve(spec, arguments, self.context).await {
                Approved::NotNeeded => {}
                Approved::With(proof) => evidence = Some(proof),
                Approved::Refused { reason, message } => {
                    self.denied(reason, &message);
                    return Err(Refusal::NotApproved(message));
                }
                Approved::Pending(message) => return Err(Refusal::Pending(message)),
                Approved::Asking(request) => {
                    self.denied("awaiting_confirmation", &request.message);
                    return Err(Refusal::Asking(request));
                }
            }
        }
        // State changes are on disk in the audit log before they happen; no log, no change.
        if call.effect.changes_state()
            && let Some(trail) = &self.trail
            && let Err(e) = trail.intent(evidence.as_ref()).await
        {
            tracing::error!(tool = call.name, error = %e, "audit log unavailable; refusing a state-changing call");
            return Err(Refusal::IntentUnrecorded);
        }
        Ok((Admission { evidence, permit }, validated))
    }

    /// Runs the handler under the contract's timeout, counted from now, and
    /// the caller's cancellation; the admission's permit is released when it
    /// returns.
    pub async fn run<T>(&self, admission: Admission, handler: impl Future<Output = Result<T, ToolError>>) -> Ran<T> {
        let timeout = Duration::from_millis(self.call.limits.timeout_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        // One instant for both timers: the handler is told the deadline the
        // call is held to (downstream requests give up just before it, so a
        // slow downstream is reported by name), and `timeout_at` polls the
        // handler before its own timer, so an answer due at the same moment
        // is the one taken.
        let handler = super::deadline::within(deadline.into_std(), handler);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout_at(deadline, handler) => match outcome {
                Ok(Ok(value)) => Outcome::Done(value),
                Ok(Err(error)) => Outcome::Failed(error),
                Err(_) => Outcome::TimedOut(timeout),
            },
            () = self.context.cancel.cancelled() => Outcome::Cancelled,
        };
        drop(admission.permit);
        Ran {
            outcome,
            evidence: admission.evidence,
        }
    }

    /// The outcome record, after the caller's output checks.
    pub fn finish(&self, outcome: &'static str, error: Option<&str>, evidence: Option<&Value>, result: Option<&Value>) {
        self.finish_with_downstream(outcome, error, evidence, result, None);
    }

    /// [`Pipeline::finish`] with the request a bound tool made.
    pub fn finish_with_downstream(
        &self,
        outcome: &'static str,
        error: Option<&str>,
        evidence: Option<&Value>,
        result: Option<&Value>,
        downstream: Option<super::audit::DownstreamCall>,
    ) {
        if let Some(trail) = &self.trail {
            trail.finish_with_downstream(outcome, error, evidence, result, downstream);
        }
    }

    /// A result as the tool's data class allows, when its contract audits results.
    pub fn audited_result(&self, result: Option<&Value>) -> Option<Value> {
        match (result, &self.trail, self.call.tool) {
            (Some(value), Some(trail), Some(spec)) if spec.audit.results => trail.redacted(value),
            _ => None,
        }
    }

    /// Audits a refusal from any stage before the handler.
    pub fn denied(&self, reason: &'static str, message: &str) {
        if let Some(trail) = &self.trail {
            trail.denied(reason, message);
        }
    }

    fn refuse<E>(&self, denial: Denial) -> Refusal<E> {
        self.denied(denial.reason(), &denial.message(self.call.kind, self.call.name));
        Refusal::Denied(denial)
    }
}

/// A duration as a reply shows it: whole seconds when it is some, else milliseconds.
pub fn human(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The pipeline through the server's real entry points: its order, and
/// prompts under their deadline and concurrency cap.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use rmcp::model::{ContentBlock, PromptMessage, Role};
    use serde_json::{Map, json};

    use super::*;
    use crate::audit::{AuditLog, Entry, Event};
    use crate::controls::KillSwitch;
    use crate::dispatch::{BoxFuture, Dispatch, ResourceBody, ToolOutput};
    use crate::server::McpServer;
    use crate::surface::Surface;

    /// Counts tool calls; its prompt waits on a signal that only the test sends.
    #[derive(Clone, Default)]
    struct Slow {
        tool_calls: Arc<AtomicUsize>,
        release: Arc<tokio::sync::Notify>,
        /// The prompt handler fails instead of waiting.
        prompt_fails: Arc<AtomicBool>,
    }

    impl Dispatch for Slow {
        fn call_tool<'a>(
            &'a self,
            _: &'a str,
            _: Value,
            _: &'a Context,
        ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
            self.tool_calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(ToolOutput::Content(vec![ContentBlock::text("done")])) })
        }
        fn read_resource<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: Map<String, Value>,
            _: &'a Context,
        ) -> BoxFuture<'a, Result<ResourceBody, ToolError>> {
            Box::pin(async { Err(ToolError::internal("no resources here")) })
        }
        fn get_prompt<'a>(
            &'a self,
            _: &'a str,
            _: BTreeMap<String, String>,
            _: &'a Context,
        ) -> BoxFuture<'a, Result<Vec<PromptMessage>, ToolError>> {
            Box::pin(async move {
                if self.prompt_fails.load(Ordering::SeqCst) {
                    return Err(ToolError::unavailable("the brief store is down"));
                }
                self.release.notified().await;
                Ok(vec![PromptMessage::new_text(Role::User, "released")])
            })
        }
    }

    fn limits(timeout_ms: u64, concurrency: u32, rate: u32) -> Value {
        json!({
            "timeout_ms": timeout_ms, "max_request_bytes": 4096, "max_response_bytes": 65536,
            "rate": {"count": rate, "period_ms": 60000}, "concurrency": concurrency
        })
    }

    fn surface(prompt_timeout_ms: u64) -> Surface {
        let surface = json!({
            "server": {
                "name": "pipeline-test", "title": null, "version": "1.0.0",
                "description": "Tests the gate pipeline.", "env_prefix": "PIPELINE_TEST",
                "disable": {"env": null, "file": null}
            },
            "http": {"origins": [], "max_request_bytes": 65536},
            "oauth": null,
            "scopes": [],
            "data_classes": {},
            "downstreams": [],
            "tools": [{
                "definition": {
                    "name": "save_note",
                    "description": "Saves a note.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {"text": {"type": "string", "maxLength": 20}},
                        "required": ["text"],
                        "additionalProperties": false
                    }
                },
                "hash": "0".repeat(64),
                "effect": "read",
                "scopes": [],
                "data_class": null,
                "approval": {"mode": "none"},
                "audit": {"arguments": true, "results": false},
                "limits": limits(5000, 4, 100),
                "content": ["text"],
                "progress": false,
                "client_logging": false,
                "asks_client": [],
                "downstreams": [],
            }],
            "resources": [],
            "prompts": [{
                "definition": {"name": "brief", "description": "A brief built by its handler.", "arguments": []},
                "hash": "1".repeat(64),
                "text": "",
                "handler": true,
                "max_lengths": {},
                "completions": {},
                "scopes": [],
                "data_class": null,
                "limits": limits(prompt_timeout_ms, 1, 2),
            }],
        });
        Surface::parse(&surface.to_string()).unwrap()
    }

    /// A server with controls, its audit log in a fresh file, the kill switch set to `killed`.
    fn server(name: &str, prompt_timeout_ms: u64, killed: Option<&str>) -> (McpServer, Slow, PathBuf) {
        let path = std::env::temp_dir().join(format!("charter-pipeline-{name}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let surface = surface(prompt_timeout_ms);
        let controls = Controls::new(
            &surface,
            KillSwitch::new(killed.map(String::from), None),
            AuditLog::open(&path).unwrap(),
        );
        let dispatch = Slow::default();
        let server = McpServer::new(surface, dispatch.clone())
            .unwrap()
            .with_controls(controls)
            .unwrap();
        (server, dispatch, path)
    }

    /// The log's records after flushing it.
    async fn records(server: &McpServer, path: &PathBuf) -> Vec<crate::audit::Record> {
        server.controls().unwrap().audit.flush().await;
        let text = std::fs::read_to_string(path).unwrap();
        std::fs::remove_file(path).unwrap();
        text.lines().map(|l| Entry::parse(l).unwrap().record).collect()
    }

    #[tokio::test]
    async fn a_kill_switched_tool_is_refused_before_validation_runs() {
        let (server, dispatch, path) = server("killed", 5000, Some("save_note"));
        let mut arguments = Map::new();
        arguments.insert("unexpected".into(), json!("x".repeat(100)));
        let result = server
            .call("save_note", Some(arguments), Context::new("tester", "1"))
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(true));
        let text = serde_json::to_string(&result.content).unwrap();
        assert!(text.contains("switched off by its operators"), "{text}");
        assert!(!text.contains("invalid arguments"), "{text}");
        assert_eq!(dispatch.tool_calls.load(Ordering::SeqCst), 0);

        let records = records(&server, &path).await;
        let reasons: Vec<_> = records.iter().map(|r| (r.event, r.reason.as_deref())).collect();
        assert_eq!(reasons, [(Event::Denied, Some("disabled"))]);
    }

    #[tokio::test]
    async fn a_prompt_past_its_timeout_is_cancelled_and_refused() {
        let (server, _dispatch, path) = server("timeout", 50, None);
        let error = server
            .prompt("brief", None, Context::new("tester", "1"))
            .await
            .unwrap_err();
        assert_eq!(error.message, "prompt `brief` timed out after 50ms");

        // The timed-out handler was dropped with its permit: the only slot is free
        // again, so the next request runs (and times out) instead of being refused as busy.
        let again = server
            .prompt("brief", None, Context::new("tester", "2"))
            .await
            .unwrap_err();
        assert_eq!(again.message, "prompt `brief` timed out after 50ms");

        let records = records(&server, &path).await;
        let outcomes: Vec<_> = records.iter().map(|r| (r.event, r.outcome.as_deref())).collect();
        assert_eq!(
            outcomes,
            [(Event::Outcome, Some("timeout")), (Event::Outcome, Some("timeout"))]
        );
    }

    #[tokio::test]
    async fn a_prompt_over_its_concurrency_cap_is_refused() {
        let (server, dispatch, path) = server("busy", 5000, None);
        let running = tokio::spawn({
            let server = server.clone();
            async move { server.prompt("brief", None, Context::new("tester", "1")).await }
        });
        // Wait until the first request holds the only slot.
        while server.controls().unwrap().limiter.acquire("prompt", "brief").is_ok() {
            tokio::task::yield_now().await;
        }
        let error = server
            .prompt("brief", None, Context::new("tester", "2"))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "prompt `brief` is at its concurrency limit; retry shortly"
        );
        assert_eq!(error.data, Some(json!({"error": "busy"})));

        dispatch.release.notify_one();
        let released = running.await.unwrap().unwrap();
        assert_eq!(released.messages.len(), 1);

        let records = records(&server, &path).await;
        let events: Vec<_> = records
            .iter()
            .map(|r| (r.event, r.reason.as_deref(), r.outcome.as_deref()))
            .collect();
        assert_eq!(
            events,
            [(Event::Denied, Some("busy"), None), (Event::Outcome, None, Some("ok"))]
        );
    }

    #[tokio::test]
    async fn a_prompt_over_its_rate_limit_is_refused() {
        let (server, _dispatch, path) = server("rate", 10, None);
        for request in ["1", "2"] {
            let error = server
                .prompt("brief", None, Context::new("tester", request))
                .await
                .unwrap_err();
            assert!(error.message.contains("timed out"), "{}", error.message);
        }
        let error = server
            .prompt("brief", None, Context::new("tester", "3"))
            .await
            .unwrap_err();
        assert!(
            error.message.starts_with("rate limit reached for prompt `brief`"),
            "{}",
            error.message
        );
        assert_eq!(error.data.unwrap()["error"], "rate_limited");

        let records = records(&server, &path).await;
        let last = records.last().unwrap();
        assert_eq!(
            (last.event, last.reason.as_deref()),
            (Event::Denied, Some("rate_limited"))
        );
    }

    #[tokio::test]
    async fn a_cancelled_prompt_is_refused_and_recorded() {
        let (server, _dispatch, path) = server("cancelled", 5000, None);
        let context = Context::new("tester", "1");
        context.cancel.cancel();
        let error = server.prompt("brief", None, context).await.unwrap_err();
        assert_eq!(error.message, "prompt `brief` was cancelled");
        let records = records(&server, &path).await;
        assert_eq!(records[0].outcome.as_deref(), Some("cancelled"));
    }

    #[tokio::test]
    async fn a_failed_prompt_handler_is_recorded() {
        let (server, dispatch, path) = server("failed", 5000, None);
        dispatch.prompt_fails.store(true, Ordering::SeqCst);
        let error = server
            .prompt("brief", None, Context::new("tester", "1"))
            .await
            .unwrap_err();
        assert_eq!(error.message, "prompt `brief` failed");
        let records = records(&server, &path).await;
        assert_eq!(records[0].outcome.as_deref(), Some("error"), "{records:?}");
    }
}
