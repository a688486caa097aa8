//! The controls a request meets between the transport and its handler, wired
//! together: admission (scopes, kill switch, rate), approvals for `write`
//! effects, and the audit trail and metrics of every decision and outcome.

use std::collections::BTreeMap;
use std::time::Instant;
#[cfg(feature = "elicitation")]
use std::time::SystemTime;

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value, json};

use super::audit::{AuditLog, Decision, Event, Fields, Record, Redaction, redact};
use super::controls::{Denial, KillSwitch, Limiter};
use super::dispatch::Context;
use super::metrics::Metrics;
use super::surface::{ApprovalSpec, Effect, Surface, ToolSpec};
use super::validate::{Validator, check_input};

#[cfg(feature = "approvals")]
use super::approval::Operation;
#[cfg(feature = "approvals")]
use super::approvals::Approvals;

/// The tool approvers use to see operations waiting for them.
pub const PENDING_TOOL: &str = "charter_pending_approvals";
/// The tool approvers use to approve or reject one operation.
pub const DECIDE_TOOL: &str = "charter_decide_approval";

/// Every control of one server.
pub struct Controls {
    pub limiter: Limiter,
    pub kill: KillSwitch,
    pub metrics: Metrics,
    pub audit: AuditLog,
    #[cfg(feature = "approvals")]
    pub approvals: Option<Approvals>,
    redaction: BTreeMap<String, Redaction>,
    contract_version: String,
    /// The scopes that approve something: holders see the approval tools.
    approver_scopes: Vec<String>,
    /// Each reviewer-approved tool with the scope that approves it.
    #[cfg_attr(not(feature = "approvals"), allow(dead_code))]
    reviewed_tools: Vec<(String, String)>,
    /// The approval tools' input schemas, compiled: their arguments are
    /// checked like any contract tool's.
    builtin_inputs: BTreeMap<String, (Value, Validator)>,
}

/// The largest arguments an approval tool accepts (an id, a decision, a hash and a reason).
const BUILTIN_MAX_REQUEST_BYTES: u64 = 4096;
/// The approval tools' limits, per approver: reviewing is human-paced, so 60 a minute is ample,
/// and a script hammering them is refused like one hammering a contract tool.
const BUILTIN_LIMITS: super::surface::Limits = super::surface::Limits {
    timeout_ms: 30_000,
    max_request_bytes: BUILTIN_MAX_REQUEST_BYTES,
    max_response_bytes: 1024 * 1024,
    rate: super::surface::Rate {
        count: 60,
        period_ms: 60_000,
    },
    concurrency: 8,
};

/// What the approval step decided for one call.
pub enum Approved {
    /// The tool needs no approval.
    NotNeeded,
    /// Approved; the evidence goes into the audit record.
    With(Value),
    /// Not approved (declined, no way to ask, store failure): nothing runs.
    Refused { reason: &'static str, message: String },
    /// Stored for a reviewer; the message tells the caller what happens next.
    Pending(String),
    /// The user is being asked (SEP-2322): the call ends `input_required`
    /// with this request, and nothing runs until the retry confirms.
    Asking(super::error::ToolError),
}

impl Controls {
    pub fn new(surface: &Surface, kill: KillSwitch, audit: AuditLog) -> Controls {
        let redaction = surface
            .data_classes
            .iter()
            .map(|(name, how)| (name.clone(), *how))
            .collect();
        let mut approver_scopes: Vec<String> = surface
            .tools
            .iter()
            .filter_map(|t| match &t.approval {
                ApprovalSpec::Reviewer { scope, .. } => Some(scope.clone()),
                _ => None,
            })
            .collect();
        approver_scopes.sort();
        approver_scopes.dedup();
        let reviewed_tools = surface
            .tools
            .iter()
            .filter_map(|t| match &t.approval {
                ApprovalSpec::Reviewer { scope, .. } => Some((t.name().to_string(), scope.clone())),
                _ => None,
            })
            .collect();
        let mut controls = Controls {
            limiter: Limiter::new(surface),
            kill,
            metrics: Metrics::for_names(
                (surface.tools.iter().map(|t| ("tool", t.name())))
                    .chain(surface.resources.iter().map(|r| ("resource", r.name())))
                    .chain(surface.prompts.iter().map(|p| ("prompt", p.name()))),
            ),
            audit,
            #[cfg(feature = "approvals")]
            approvals: None,
            redaction,
            contract_version: surface.server.version.clone(),
            approver_scopes,
            reviewed_tools,
            builtin_inputs: BTreeMap::new(),
        };
        if !controls.approver_scopes.is_empty() {
            controls.limiter.add_tool(PENDING_TOOL, &BUILTIN_LIMITS, true);
            controls.limiter.add_tool(DECIDE_TOOL, &BUILTIN_LIMITS, false);
        }
        controls.builtin_inputs = controls
            .builtin_definitions()
            .into_iter()
            .filter_map(|definition| {
                let name = definition["name"].as_str()?.to_string();
                let schema = definition["inputSchema"].clone();
                let validator = Validator::new(&format!("tool `{name}` input"), &schema)
                    .expect("the approval tools' input schemas compile");
                Some((name, (schema, validator)))
            })
            .collect();
        controls
    }

    #[cfg(feature = "approvals")]
    pub fn with_approvals(mut self, store: Approvals) -> Controls {
        self.approvals = Some(store);
        self
    }

    /// Whether the surface needs the reviewer store.
    pub fn needs_reviewers(&self) -> bool {
        !self.approver_scopes.is_empty()
    }

    /// Scopes, kill switch and (unless the HTTP layer already counted this
    /// request) the rate limit, in that order.
    pub async fn admit(
        &self,
        kind: &'static str,
        name: &str,
        scopes: &[String],
        context: &Context,
    ) -> Result<(), Denial> {
        let missing = context.identity.missing_scopes(scopes);
        if !missing.is_empty() {
            return Err(Denial::InsufficientScope(
                missing.into_iter().map(String::from).collect(),
            ));
        }
        let tool = (kind == "tool").then_some(name);
        if let Some(whole_server) = self.kill.check(tool) {
            return Err(Denial::Disabled { whole_server });
        }
        if !context.rate_counted {
            self.limiter.check_rate(kind, name, &context.identity.subject).await?;
        }
        Ok(())
    }

    /// Whether a listed definition is shown to this caller.
    pub fn visible(&self, scopes: &[String], context: &Context) -> bool {
        context.identity.missing_scopes(scopes).is_empty()
    }

    /// The effect of a runtime-added tool (the approval tools), when `name` is one this server has.
    pub fn builtin_effect(&self, name: &str) -> Option<Effect> {
        if self.approver_scopes.is_empty() {
            return None;
        }
        match name {
            PENDING_TOOL => Some(Effect::Read),
            DECIDE_TOOL => Some(Effect::Write),
            _ => None,
        }
    }

    /// Whether the caller sees the approval tools.
    pub fn is_approver(&self, context: &Context) -> bool {
        self.approver_scopes.iter().any(|s| context.identity.holds(s))
    }

    /// The approval step for a tool whose contract asks for one.
    pub async fn approve(&self, tool: &ToolSpec, arguments: &Value, context: &Context) -> Approved {
        match &tool.approval {
            ApprovalSpec::None => Approved::NotNeeded,
            ApprovalSpec::User => self.confirm_with_user(tool, arguments, context).await,
            ApprovalSpec::Reviewer { expires_ms, .. } => self.reviewer(tool, arguments, context, *expires_ms).await,
        }
    }

    #[cfg(feature = "elicitation")]
    async fn confirm_with_user(&self, tool: &ToolSpec, arguments: &Value, context: &Context) -> Approved {
        let shown = serde_json::to_string_pretty(arguments).unwrap_or_default();
        let message = format!(
            "Confirm this operation before it runs.\n\nTool: {} ({} effect)\nArguments:\n{shown}",
            tool.name(),
            tool.effect
        );
        let shown_hash = {
            use sha2::Digest as _;
            super::audit::hex(&sha2::Sha256::digest(message.as_bytes()))
        };
        use super::client::Confirmation;
        match context.client.confirm(&message).await {
            Confirmation::Confirmed { nonce } => {
                let mut evidence = json!({
                    "mode": "user",
                    "confirmed_by": context.identity.subject,
                    "shown_sha256": shown_hash,
                    "at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                });
                // Answered by retry (SEP-2322): the spent state, which cannot confirm a second run.
                if let Some(nonce) = nonce {
                    evidence["request_state_nonce"] = json!(nonce);
                }
                Approved::With(evidence)
            }
            Confirmation::Declined => Approved::Refused {
                reason: "not_confirmed",
                message: format!("`{}` was not run: the user did not confirm it", tool.name()),
            },
            Confirmation::Asking(request) => Approved::Asking(request),
            Confirmation::Replayed => Approved::Refused {
                reason: "confirmation_replayed",
                message: format!(
                    "`{}` was not run: this confirmation was already used for one run; call the tool again \
                     to ask the user anew",
                    tool.name()
                ),
            },
            Confirmation::Unavailable(e) => Approved::Refused {
                reason: "confirmation_unavailable",
                message: format!(
                    "`{}` needs the user's confirmation, and the client could not ask ({e}); \
                     nothing was run. Use a client that supports elicitation.",
                    tool.name()
                ),
            },
        }
    }

    #[cfg(not(feature = "elicitation"))]
    async fn confirm_with_user(&self, tool: &ToolSpec, _arguments: &Value, _context: &Context) -> Approved {
        Approved::Refused {
            reason: "confirmation_unavailable",
            message: format!(
                "`{}` needs the user's confirmation, which this build cannot ask for (feature `elicitation`)",
                tool.name()
            ),
        }
    }

    #[cfg(feature = "approvals")]
    async fn reviewer(&self, tool: &ToolSpec, arguments: &Value, context: &Context, expires_ms: u64) -> Approved {
        let Some(store) = &self.approvals else {
            return Approved::Refused {
                reason: "approvals_unavailable",
                message: format!(
                    "`{}` needs a reviewer's approval and no approval store is open",
                    tool.name()
                ),
            };
        };
        let operation = Operation {
            tool: tool.name().to_string(),
            arguments: arguments.clone(),
            requester: context.identity.subject.clone(),
            definition_hash: tool.hash.clone(),
        };
        match store.consume(&operation).await {
            Ok(Some(evidence)) => {
                let mut evidence = serde_json::to_value(&evidence).unwrap_or(Value::Null);
                evidence["mode"] = json!("reviewer");
                return Approved::With(evidence);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(tool = tool.name(), error = %e, "approval store failed");
                return Approved::Refused {
                    reason: "approvals_unavailable",
                    message: format!("`{}` was not run: the approval store is unavailable", tool.name()),
                };
            }
        }
        let expires = std::time::Duration::from_millis(expires_ms);
        let pending = match store.request(&operation, expires).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::error!(tool = tool.name(), error = %e, "approval store failed");
                return Approved::Refused {
                    reason: "approvals_unavailable",
                    message: format!("`{}` was not run: the approval store is unavailable", tool.name()),
                };
            }
        };
        let trail = Trail::new(self, "tool", tool.name(), tool.effect, &tool.hash, context);
        let evidence = json!({ "mode": "reviewer", "id": pending.id, "operation_sha256": pending.operation_hash });
        let record = Fields {
            decision: Some(Decision::Deny),
            reason: Some("approval_required"),
            approval: Some(&evidence),
            ..trail.base(Event::ApprovalRequested)
        };
        if let Err(e) = self.audit.durable_fields(record).await {
            tracing::error!(error = %e, "audit log unavailable; approval request not stored durably");
        }
        self.metrics.denial("approval_required");
        Approved::Pending(format!(
            "`{}` was not run yet: it needs a reviewer's approval. Pending operation {} \
             (operation sha256 {}) waits until {}. Once a reviewer approves it, call `{}` again \
             with exactly the same arguments; it then runs once.",
            tool.name(),
            pending.id,
            pending.operation_hash,
            humantime::format_rfc3339_seconds(pending.expires_at),
            tool.name(),
        ))
    }

    #[cfg(not(feature = "approvals"))]
    async fn reviewer(&self, tool: &ToolSpec, _arguments: &Value, _context: &Context, _expires_ms: u64) -> Approved {
        Approved::Refused {
            reason: "approvals_unavailable",
            message: format!(
                "`{}` needs a reviewer's approval, which this build cannot store (feature `approvals`)",
                tool.name()
            ),
        }
    }

    /// The approval tools, which approvers call like any other tool.
    pub fn builtin_definitions(&self) -> Vec<Value> {
        if self.approver_scopes.is_empty() {
            return Vec::new();
        }
        vec![
            json!({
                "name": PENDING_TOOL,
                "title": "Operations waiting for approval",
                "description": "Lists the operations waiting for a reviewer, each exactly as it will run: tool, arguments, requester and the operation hash to approve.",
                "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false },
                "annotations": { "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false },
            }),
            json!({
                "name": DECIDE_TOOL,
                "title": "Approve or reject an operation",
                "description": "Approves or rejects one pending operation. Pass the operation_sha256 shown by charter_pending_approvals: an approval binds exactly that operation. You cannot approve your own requests.",
                "inputSchema": {
                    "type": "object",
                    "required": ["id", "decision", "operation_sha256"],
                    "properties": {
                        "id": { "type": "string", "maxLength": 64 },
                        "decision": { "type": "string", "enum": ["approve", "reject"] },
                        "operation_sha256": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                        "reason": { "type": "string", "maxLength": 1000 },
                    },
                    "additionalProperties": false,
                },
                "annotations": { "readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false },
            }),
        ]
    }

    /// Runs an approval tool, or `None` when `name` is not one.
    pub async fn builtin_tool(
        &self,
        name: &str,
        arguments: Option<&Map<String, Value>>,
        context: &Context,
    ) -> Option<Result<CallToolResult, McpError>> {
        if self.approver_scopes.is_empty() || (name != PENDING_TOOL && name != DECIDE_TOOL) {
            return None;
        }
        let trail = Trail::new(
            self,
            "tool",
            name,
            if name == PENDING_TOOL {
                Effect::Read
            } else {
                Effect::Write
            },
            "",
            context,
        );
        if !self.is_approver(context) {
            let denial = Denial::InsufficientScope(self.approver_scopes.clone());
            return Some(Ok(trail.refuse_tool(&denial)));
        }
        // The same gates as a contract tool: the whole-server kill switch, the per-caller rate
        // limit (unless the HTTP layer counted this call) and the concurrency cap.
        if let Some(whole_server) = self.kill.check(Some(name)) {
            return Some(Ok(trail.refuse_tool(&Denial::Disabled { whole_server })));
        }
        if !context.rate_counted
            && let Err(denial) = self.limiter.check_rate("tool", name, &context.identity.subject).await
        {
            return Some(Ok(trail.refuse_tool(&denial)));
        }
        let _permit = match self.limiter.acquire("tool", name) {
            Ok(permit) => permit,
            Err(denial) => return Some(Ok(trail.refuse_tool(&denial))),
        };
        if let Some((schema, input)) = self.builtin_inputs.get(name) {
            let given = Value::Object(arguments.cloned().unwrap_or_default());
            if let Err(refused) = check_input(name, schema, input, BUILTIN_MAX_REQUEST_BYTES, &given) {
                trail.denied(refused.reason, &refused.audit);
                return Some(Ok(error_text(refused.reply)));
            }
        }
        Some(Ok(self.run_builtin(name, arguments, context, &trail).await))
    }

    #[cfg(feature = "approvals")]
    async fn run_builtin(
        &self,
        name: &str,
        arguments: Option<&Map<String, Value>>,
        context: &Context,
        trail: &Trail<'_>,
    ) -> CallToolResult {
        let Some(store) = &self.approvals else {
            return error_text("no approval store is open".into());
        };
        // Approvers see only what their own scopes approve.
        let approvable: Vec<&str> = self.approvable_tools(context);
        if name == PENDING_TOOL {
            return match store.list_pending().await {
                Ok(pending) => {
                    let pending: Vec<_> = pending
                        .into_iter()
                        .filter(|p| approvable.contains(&p.tool.as_str()))
                        .collect();
                    trail.finish("ok", None, None, None);
                    CallToolResult::structured(json!({ "pending": pending }))
                }
                Err(e) => error_text(format!("cannot list pending operations: {e}")),
            };
        }
        let empty = Map::new();
        let arguments = arguments.unwrap_or(&empty);
        let text = |key: &str| arguments.get(key).and_then(Value::as_str);
        let (Some(id), Some(decision), Some(hash)) = (text("id"), text("decision"), text("operation_sha256")) else {
            return error_text("pass `id`, `decision` (approve or reject) and `operation_sha256`".into());
        };
        if decision != "approve" && decision != "reject" {
            return error_text("`decision` must be `approve` or `reject`".into());
        }
        match store.status(id).await {
            Ok(Some(record)) if approvable.contains(&record.tool.as_str()) => {}
            Ok(_) => return error_text(format!("no pending operation `{id}` that you may decide")),
            Err(e) => return error_text(format!("cannot read operation `{id}`: {e}")),
        }
        let approver = &context.identity.subject;
        match store
            .decide(id, approver, decision == "approve", hash, text("reason"))
            .await
        {
            Ok(decided) => {
                let evidence = serde_json::to_value(&decided).ok();
                let record = Fields {
                    decision: Some(if decided.approved {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    }),
                    approval: evidence.as_ref(),
                    ..trail.base(Event::ApprovalDecided)
                };
                if let Err(e) = self.audit.durable_fields(record).await {
                    tracing::error!(error = %e, "audit log unavailable while recording an approval decision");
                }
                CallToolResult::structured(json!({
                    "id": decided.id,
                    "approved": decided.approved,
                    "operation_sha256": decided.operation_hash,
                }))
            }
            Err(e) => {
                self.metrics.approval_refused(e.reason());
                trail.denied(e.reason(), &e.to_string());
                error_text(e.to_string())
            }
        }
    }

    #[cfg(feature = "approvals")]
    fn approvable_tools(&self, context: &Context) -> Vec<&str> {
        self.reviewed_tools
            .iter()
            .filter(|(_, scope)| context.identity.holds(scope))
            .map(|(tool, _)| tool.as_str())
            .collect()
    }

    #[cfg(not(feature = "approvals"))]
    async fn run_builtin(
        &self,
        _name: &str,
        _arguments: Option<&Map<String, Value>>,
        _context: &Context,
        _trail: &Trail<'_>,
    ) -> CallToolResult {
        error_text("this build has no approval store (feature `approvals`)".into())
    }

    /// Audits a change of the kill switch.
    pub fn kill_switch_changed(&self, state: &super::controls::Switched) {
        tracing::warn!(whole_server = state.whole_server, tools = ?state.tools, "kill switch changed");
        let mut record = Record::new(Event::KillSwitch);
        record.reason = Some(if state.whole_server {
            "whole server off".to_string()
        } else if state.tools.is_empty() {
            "on".to_string()
        } else {
            format!("off: {}", state.tools.iter().cloned().collect::<Vec<_>>().join(", "))
        });
        record.contract_version = Some(self.contract_version.clone());
        self.audit.record(record);
        self.metrics.set_kill_switch(state.whole_server);
    }

    /// Audits an HTTP request refused before it named a tool, resource or prompt.
    pub fn refused_request(&self, identity: Option<&super::controls::Identity>, reason: &'static str, message: &str) {
        let mut record = Record::new(Event::Denied);
        record.transport = Some("http".into());
        record.subject = identity.map(|i| i.subject.clone());
        record.client = identity.and_then(|i| i.client.clone());
        record.decision = Some(Decision::Deny);
        record.reason = Some(reason.to_string());
        record.error = Some(message.to_string());
        record.contract_version = Some(self.contract_version.clone());
        self.audit.record(record);
        self.metrics.denial(reason);
    }

    fn redaction(&self, data_class: Option<&str>) -> Redaction {
        // No data class means nothing was declared about the data: log its shape only.
        data_class
            .and_then(|c| self.redaction.get(c).copied())
            .unwrap_or(Redaction::Redact)
    }
}

fn error_text(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// One request's audit records and metrics.
pub struct Trail<'a> {
    controls: &'a Controls,
    kind: &'static str,
    name: &'a str,
    effect: Effect,
    hash: &'a str,
    context: &'a Context,
    arguments: Option<Value>,
    data_class: Option<&'a str>,
    started: Instant,
}

impl<'a> Trail<'a> {
    pub fn new(
        controls: &'a Controls,
        kind: &'static str,
        name: &'a str,
        effect: Effect,
        hash: &'a str,
        context: &'a Context,
    ) -> Trail<'a> {
        Trail {
            controls,
            kind,
            name,
            effect,
            hash,
            context,
            arguments: None,
            data_class: None,
            started: Instant::now(),
        }
    }

    /// Records the arguments as the data class allows (when the contract audits them).
    pub fn with_arguments(mut self, arguments: &Value, data_class: Option<&'a str>, audited: bool) -> Trail<'a> {
        if audited {
            self.arguments = redact(arguments, self.controls.redaction(data_class));
        }
        self.data_class = data_class;
        self
    }

    /// A result as the data class allows, for tools whose contract audits results.
    pub fn redacted(&self, result: &Value) -> Option<Value> {
        redact(result, self.controls.redaction(self.data_class))
    }

    fn base(&self, event: Event) -> Fields<'_> {
        let identity = &self.context.identity;
        Fields {
            request_id: Some(&self.context.request_id),
            trace_id: Some(self.context.trace_id.as_str()).filter(|t| !t.is_empty()),
            transport: Some(identity.transport),
            subject: Some(&identity.subject),
            client: identity.client.as_deref(),
            kind: Some(self.kind),
            name: Some(self.name),
            effect: Some(self.effect.as_str()),
            arguments: self.arguments.as_ref(),
            contract_version: Some(&self.controls.contract_version),
            definition_hash: Some(self.hash).filter(|h| !h.is_empty()),
            ..Fields::new(event)
        }
    }

    /// A refusal before the handler ran.
    pub fn denied(&self, reason: &'static str, message: &str) {
        self.controls.audit.record_fields(Fields {
            decision: Some(Decision::Deny),
            reason: Some(reason),
            error: Some(message),
            ..self.base(Event::Denied)
        });
        self.controls.metrics.denial(reason);
        self.controls
            .metrics
            .call(self.kind, self.name, "denied", self.started.elapsed());
    }

    /// A refusal as a tool result the caller can read.
    pub fn refuse_tool(&self, denial: &Denial) -> CallToolResult {
        let message = denial.message(self.kind, self.name);
        self.denied(denial.reason(), &message);
        error_text(message)
    }

    /// The durable record a state change needs before it runs.
    pub async fn intent(&self, approval: Option<&Value>) -> Result<(), String> {
        let record = Fields {
            decision: Some(Decision::Allow),
            approval,
            ..self.base(Event::Intent)
        };
        self.controls.audit.durable_fields(record).await.map_err(|e| {
            self.controls.metrics.set_audit_failures(self.controls.audit.failures());
            self.controls.metrics.denial("audit_unavailable");
            e.to_string()
        })
    }

    /// How the call ended.
    pub fn finish(&self, outcome: &'static str, error: Option<&str>, approval: Option<&Value>, result: Option<&Value>) {
        self.finish_with_downstream(outcome, error, approval, result, None);
    }

    /// [`Trail::finish`] for a bound tool, with the request it made.
    pub fn finish_with_downstream(
        &self,
        outcome: &'static str,
        error: Option<&str>,
        approval: Option<&Value>,
        result: Option<&Value>,
        downstream: Option<super::audit::DownstreamCall>,
    ) {
        let elapsed = self.started.elapsed();
        let error = error.map(|e| super::validate::truncate(e, 500));
        self.controls.audit.record_fields(Fields {
            decision: Some(Decision::Allow),
            outcome: Some(outcome),
            error: error.as_deref(),
            approval,
            latency_ms: Some(elapsed.as_millis() as u64),
            result,
            downstream: downstream.as_ref(),
            ..self.base(Event::Outcome)
        });
        self.controls.metrics.call(self.kind, self.name, outcome, elapsed);
    }
}

/// A denial as a protocol error, for resources and prompts (which have no `isError` result).
pub fn denial_error(denial: &Denial, kind: &str, name: &str) -> McpError {
    let data = match denial {
        Denial::InsufficientScope(scopes) => json!({ "error": "insufficient_scope", "scopes": scopes }),
        Denial::RateLimited(wait) => {
            json!({ "error": "rate_limited", "retry_after": super::controls::retry_after_secs(*wait) })
        }
        other => json!({ "error": other.reason() }),
    };
    McpError::invalid_request(denial.message(kind, name), Some(data))
}
