//! The diff rules: every kind of change `charter diff` reports, with its
//! stable id and class, and the comparisons that find them.

use serde::Serialize;
use serde_json::{Value, json};

use super::schema::Diff;
use super::{Class, Finding, Side, esc, missing, same_set};
use crate::model::{
    Approval, Audit, Binding, BoundParameter, DataClass, Limits, Model, Prompt, Redaction, Resource, ResourceTarget,
    Sensitivity, Suppression, Tool,
};
use crate::surface;

/// A kind of change: its id, its class and what it means.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    pub id: RuleId,
    pub class: Class,
    pub summary: &'static str,
}

/// Declares [`RuleId`] and [`RULES`] from one table, so every id has exactly
/// one rule and the two cannot drift apart.
macro_rules! diff_rules {
    ($($variant:ident = $id:literal, $class:ident, $summary:literal;)*) => {
        /// The id of a diff rule. It is written (in JSON, text and Markdown) as
        /// its stable kebab-case id, e.g. `tool-removed`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId {
            $($variant,)*
        }

        impl RuleId {
            /// The stable id: how CI and reviewers refer to a change.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$variant => $id,)*
                }
            }

            /// The rule with this id, if there is one.
            pub fn parse(id: &str) -> Option<RuleId> {
                match id {
                    $($id => Some(RuleId::$variant),)*
                    _ => None,
                }
            }
        }

        /// Every rule, grouped by class, in the order of [`RuleId`].
        pub const RULES: &[Rule] = &[
            $(Rule { id: RuleId::$variant, class: $class, summary: $summary },)*
        ];
    };
}

use Class::{Breaking as B, Compatible as C, Review as R};

diff_rules! {
    // Breaking for clients.
    ServerRenamed = "server-renamed", B, "the server's name changed";
    TransportRemoved = "transport-removed", B, "a transport was removed";
    ToolRemoved = "tool-removed", B, "a tool was removed";
    ToolRenamed = "tool-renamed", B, "a tool was renamed";
    ResourceRemoved = "resource-removed", B, "a resource was removed";
    ResourceRenamed = "resource-renamed", B, "a resource was renamed";
    ResourceUriChanged = "resource-uri-changed", B, "a resource's URI or URI template changed";
    ResourceMimeTypeChanged = "resource-mime-type-changed", B, "a resource's MIME type changed";
    SubscriptionRemoved = "subscription-removed", B, "a resource can no longer be subscribed to";
    PromptRemoved = "prompt-removed", B, "a prompt was removed";
    PromptRenamed = "prompt-renamed", B, "a prompt was renamed";
    PromptArgumentRemoved = "prompt-argument-removed", B, "a prompt argument was removed";
    PromptArgumentRequired = "prompt-argument-required", B, "a prompt argument became required, or a required one was added";
    InputRequiredAdded = "input-required-added", B, "an input field became required, or a required field was added";
    InputFieldRemoved = "input-field-removed", B, "an input field was removed";
    InputTypeChanged = "input-type-changed", B, "an input field's type changed or narrowed";
    InputEnumNarrowed = "input-enum-narrowed", B, "an input enum lost values, or an input became an enum";
    InputBoundsTightened = "input-bounds-tightened", B, "an input bound became tighter (min, max, length, items, multipleOf, uniqueness)";
    InputPatternChanged = "input-pattern-changed", B, "an input pattern or format was added or changed";
    InputClosed = "input-closed", B, "an input object no longer accepts additional properties";
    InputSchemaChanged = "input-schema-changed", B, "an input schema changed in a way charter does not classify (treated as breaking)";
    OutputRemoved = "output-removed", B, "a tool's output schema was removed";
    OutputFieldRemoved = "output-field-removed", B, "an output field was removed";
    OutputRequiredRemoved = "output-required-removed", B, "an output field is no longer always present";
    OutputTypeChanged = "output-type-changed", B, "an output field's type changed or widened";
    OutputEnumWidened = "output-enum-widened", B, "an output enum gained values, or an output is no longer an enum";
    OutputBoundsLoosened = "output-bounds-loosened", B, "an output bound became looser";
    OutputPatternChanged = "output-pattern-changed", B, "an output pattern or format was removed or changed";
    // Needs re-review: the access boundary moved, or text the model reads changed.
    ToolAdded = "tool-added", R, "a tool was added";
    ResourceAdded = "resource-added", R, "a resource was added";
    SubscriptionAdded = "subscription-added", R, "a resource became subscribable: its changes reach subscribers";
    PromptAdded = "prompt-added", R, "a prompt was added";
    DescriptionChanged = "description-changed", R, "a description the model or the user reads changed";
    TitleChanged = "title-changed", R, "a title shown to users changed";
    PromptTextChanged = "prompt-text-changed", R, "a prompt's text changed";
    PromptResourceAdded = "prompt-resource-added", R, "a prompt started relying on a resource";
    SchemaDefaultChanged = "schema-default-changed", R, "a schema's default or examples changed";
    OutputSchemaChanged = "output-schema-changed", R, "an output schema changed in a way charter does not classify";
    EffectEscalated = "effect-escalated", R, "a tool's effect escalated (read -> draft -> write)";
    AnnotationsChanged = "annotations-changed", R, "a tool's MCP annotations changed";
    ApprovalRelaxed = "approval-relaxed", R, "a tool's approval was removed or relaxed";
    ApprovalChanged = "approval-changed", R, "the scope that approves a tool's calls changed";
    ScopeAdded = "scope-added", R, "a scope was added";
    ScopeRemoved = "scope-removed", R, "a scope was removed";
    ScopeChanged = "scope-changed", R, "a scope's meaning changed";
    ToolScopeChanged = "tool-scope-changed", R, "the scopes a tool requires changed";
    ResourceScopeChanged = "resource-scope-changed", R, "the scopes a resource requires changed";
    PromptScopeChanged = "prompt-scope-changed", R, "the scopes a prompt requires changed";
    DataClassAdded = "data-class-added", R, "a data class was added";
    DataClassChanged = "data-class-changed", R, "a data class's description changed, or an element moved to another data class of the same sensitivity";
    DataClassWidened = "data-class-widened", R, "a data class became more sensitive, or an element now handles more sensitive data";
    RedactionRelaxed = "redaction-relaxed", R, "a data class is logged with less redaction";
    DownstreamAdded = "downstream-added", R, "a downstream was added";
    DownstreamChanged = "downstream-changed", R, "a downstream's base URL or description changed";
    ToolDownstreamAdded = "tool-downstream-added", R, "a tool or resource now calls a downstream it did not call";
    EgressHostAdded = "egress-host-added", R, "an egress host was added";
    CredentialsChanged = "credentials-changed", R, "the credentials for a downstream, or what they may do, changed";
    ToolImplementationChanged = "tool-implementation-changed", R, "a tool moved between a hand-written handler and a binding to an HTTP operation";
    BindingDownstreamChanged = "binding-downstream-changed", R, "a bound tool calls another downstream";
    BindingMethodChanged = "binding-method-changed", R, "a bound tool's HTTP method changed";
    BindingPathChanged = "binding-path-changed", R, "a bound tool's path template changed";
    BindingParameterMoved = "binding-parameter-moved", R, "an input property goes to another place in the request (location or wire name), or was added to or removed from it";
    BindingResponseChanged = "binding-response-changed", R, "the statuses a bound tool treats as success, or how its response becomes the output, changed";
    TransportAdded = "transport-added", R, "a transport was added";
    AuthChanged = "auth-changed", R, "the OAuth settings or allowed origins changed";
    SessionsChanged = "sessions-changed", R, "legacy HTTP sessions were turned on or off, or their cap or idle time changed";
    LimitLoosened = "limit-loosened", R, "a rate, time, concurrency or size limit was loosened";
    AuditReduced = "audit-reduced", R, "less is audited, or audit records are kept for less time";
    OwnerChanged = "owner-changed", R, "the owner changed or was removed";
    DisablePathChanged = "disable-path-changed", R, "the disable path (kill switch) changed or was removed";
    StatusChanged = "status-changed", R, "the lifecycle status changed";
    DeployChanged = "deploy-changed", R, "the deployment moved (namespace)";
    SuppressionAdded = "suppression-added", R, "a production rule was suppressed";
    DependencyAdded = "dependency-added", R, "the handlers use a new crate";
    DependencyChanged = "dependency-changed", R, "the version, features or default features of a handler crate changed";
    // Compatible.
    InputFieldAdded = "input-field-added", C, "an optional input field was added";
    InputRequiredRemoved = "input-required-removed", C, "an input field is no longer required";
    InputTypeWidened = "input-type-widened", C, "an input field accepts more types";
    InputEnumWidened = "input-enum-widened", C, "an input enum gained values, or an input is no longer an enum";
    InputBoundsLoosened = "input-bounds-loosened", C, "an input bound, pattern or format became looser or was removed";
    InputOpened = "input-opened", C, "an input object now accepts additional properties";
    OutputAdded = "output-added", C, "a tool gained an output schema";
    OutputFieldAdded = "output-field-added", C, "an output field was added";
    OutputRequiredAdded = "output-required-added", C, "an output field is now always present";
    OutputTypeNarrowed = "output-type-narrowed", C, "an output field has fewer types";
    OutputEnumNarrowed = "output-enum-narrowed", C, "an output enum lost values, or an output became an enum";
    OutputBoundsTightened = "output-bounds-tightened", C, "an output bound, pattern or format became tighter";
    OutputClosed = "output-closed", C, "an output object no longer carries additional properties";
    PromptArgumentAdded = "prompt-argument-added", C, "an optional prompt argument was added";
    PromptArgumentOptional = "prompt-argument-optional", C, "a prompt argument is no longer required";
    PromptResourceRemoved = "prompt-resource-removed", C, "a prompt no longer relies on a resource";
    PromptVersionChanged = "prompt-version-changed", C, "a prompt's version changed";
    EffectReduced = "effect-reduced", C, "a tool's effect was reduced (write -> draft -> read)";
    ApprovalTightened = "approval-tightened", C, "a tool's approval became stricter";
    DataClassRemoved = "data-class-removed", C, "a data class was removed";
    DataClassNarrowed = "data-class-narrowed", C, "a data class became less sensitive, or an element handles less sensitive data";
    RedactionTightened = "redaction-tightened", C, "a data class is logged with more redaction";
    DownstreamRemoved = "downstream-removed", C, "a downstream was removed";
    ToolDownstreamRemoved = "tool-downstream-removed", C, "a tool or resource no longer calls a downstream";
    EgressHostRemoved = "egress-host-removed", C, "an egress host was removed";
    LimitTightened = "limit-tightened", C, "a rate, time, concurrency or size limit was tightened";
    AuditIncreased = "audit-increased", C, "more is audited, or audit records are kept longer";
    DeployResized = "deploy-resized", C, "replicas, CPU or memory changed";
    RetirementChanged = "retirement-changed", C, "the retirement conditions or the replacement changed";
    ReviewDateChanged = "review-date-changed", C, "the review dates changed";
    SuppressionRemoved = "suppression-removed", C, "a suppression was removed";
    DependencyRemoved = "dependency-removed", C, "the handlers no longer use a crate";
}

impl RuleId {
    /// This id's rule; [`RULES`] lists the rules in the order of the enum.
    pub fn rule(self) -> &'static Rule {
        &RULES[self as usize]
    }

    pub fn class(self) -> Class {
        self.rule().class
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The findings collected so far.
#[derive(Default)]
pub(crate) struct Findings {
    pub findings: Vec<Finding>,
}

impl Findings {
    /// A change best shown in the new contract.
    pub fn add(&mut self, rule: RuleId, pointer: String, old: Option<Value>, new: Option<Value>, message: String) {
        self.push(rule, pointer, old, new, message, false);
    }

    /// A removal, best shown in the old contract.
    pub fn removed(&mut self, rule: RuleId, pointer: String, old: Option<Value>, message: String) {
        self.push(rule, pointer, old, None, message, true);
    }

    fn push(
        &mut self,
        rule: RuleId,
        pointer: String,
        old: Option<Value>,
        new: Option<Value>,
        message: String,
        in_old: bool,
    ) {
        self.findings.push(Finding {
            rule,
            class: rule.class(),
            message,
            pointer,
            in_old,
            old,
            new,
            old_span: None,
            new_span: None,
        });
    }

    /// Reports `rule` when two values differ.
    fn changed<T: Serialize + PartialEq>(&mut self, rule: RuleId, pointer: String, old: &T, new: &T, message: String) {
        if old != new {
            self.add(rule, pointer, Some(to_json(old)), Some(to_json(new)), message);
        }
    }

    /// Compares two JSON Schemas with [`super::schema::walk`]; `input` for what clients send.
    fn schema(&mut self, old: &Value, new: &Value, input: bool, base: &str, what: &str) {
        let mut walk = Diff::default();
        super::schema::walk(&mut walk, old, new, input, base, what);
        // A change named by an id charter does not know is still a change: it is
        // reported as unclassified, which never understates it.
        let unclassified = if input {
            RuleId::InputSchemaChanged
        } else {
            RuleId::OutputSchemaChanged
        };
        for change in walk.findings {
            let rule = RuleId::parse(change.rule).unwrap_or(unclassified);
            self.push(
                rule,
                change.pointer,
                change.old,
                change.new,
                change.message,
                change.in_old,
            );
        }
    }
}

/// How an element of a name-keyed section fares between the two sides.
enum Keyed<'a, T> {
    Added(&'a T),
    Both(&'a T, &'a T),
    Removed(&'a T),
}

/// Pairs the elements of a section keyed by name (dependencies, data classes,
/// scopes, downstreams, ...): first each new element, added or with its old
/// counterpart, in the new order; then the removed ones, in the old order.
fn keyed<'a, T>(old: &'a [T], new: &'a [T], name: impl Fn(&T) -> &str) -> Vec<Keyed<'a, T>> {
    let mut out: Vec<Keyed<'a, T>> = new
        .iter()
        .map(|n| match old.iter().find(|o| name(o) == name(n)) {
            Some(o) => Keyed::Both(o, n),
            None => Keyed::Added(n),
        })
        .collect();
    out.extend(
        old.iter()
            .filter(|o| !new.iter().any(|n| name(n) == name(o)))
            .map(Keyed::Removed),
    );
    out
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("model values serialize")
}

fn opt<T: Serialize>(value: Option<&T>) -> Option<Value> {
    value.map(to_json)
}

fn list(items: &[&String]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

// ----- the whole contract -----

/// Compares two contracts in full.
pub(crate) fn compare_models(d: &mut Findings, o: &Model, n: &Model) {
    server(d, o, n);
    data_classes(d, o, n);
    access(d, o, n);
    downstreams(d, o, n);
    compare_surfaces(d, &model_items(o), &model_items(n), Some((o, n)));
    limits(d, "/limits", "the server", &o.limits, &n.limits, None);
    audit(d, "/audit", "the server", &o.audit, &n.audit);
    deploy(d, o, n);
    dependencies(d, o, n);
    suppressions(d, "the contract", &o.suppressions, &n.suppressions, "/suppress");
}

/// Crates the hand-written handlers use: code that runs in front of the data.
fn dependencies(d: &mut Findings, o: &Model, n: &Model) {
    let show = |x: &crate::model::HandlerDependency| json!({"version": x.version, "features": x.features, "default_features": x.default_features});
    for dep in keyed(&o.handler_dependencies, &n.handler_dependencies, |x| &x.name) {
        match dep {
            Keyed::Added(dep) => d.add(
                RuleId::DependencyAdded,
                dep.pointer.clone(),
                None,
                Some(show(dep)),
                format!("the handlers now use crate `{}` {}", dep.name, dep.version),
            ),
            Keyed::Both(old, dep) => d.changed(
                RuleId::DependencyChanged,
                dep.pointer.clone(),
                &show(old),
                &show(dep),
                format!("handler crate `{}` changed", dep.name),
            ),
            Keyed::Removed(dep) => d.removed(
                RuleId::DependencyRemoved,
                dep.pointer.clone(),
                Some(show(dep)),
                format!("the handlers no longer use crate `{}`", dep.name),
            ),
        }
    }
}

fn server(d: &mut Findings, o: &Model, n: &Model) {
    let (os, ns) = (&o.server, &n.server);
    d.changed(
        RuleId::ServerRenamed,
        "/server/name".into(),
        &os.name.original,
        &ns.name.original,
        format!(
            "the server was renamed from `{}` to `{}`; hosts configured with the old name lose it",
            os.name.original, ns.name.original
        ),
    );
    d.changed(
        RuleId::TitleChanged,
        "/server/title".into(),
        &os.title,
        &ns.title,
        "the server's title changed".into(),
    );
    d.changed(
        RuleId::DescriptionChanged,
        "/server/description".into(),
        &os.description,
        &ns.description,
        "the server's description changed".into(),
    );
    let (oo, no) = (opt(os.owner.as_ref()), opt(ns.owner.as_ref()));
    if oo != no {
        let message = if no.is_none() {
            "the server's owner was removed".to_owned()
        } else {
            "the server's owner changed".to_owned()
        };
        d.add(RuleId::OwnerChanged, "/server/owner".into(), oo, no, message);
    }
    d.changed(
        RuleId::StatusChanged,
        "/server/status".into(),
        &os.status,
        &ns.status,
        format!(
            "the server's status changed from `{}` to `{}`",
            to_json(&os.status).as_str().unwrap_or_default(),
            to_json(&ns.status).as_str().unwrap_or_default()
        ),
    );
    d.changed(
        RuleId::ReviewDateChanged,
        "/server/review".into(),
        &opt(os.review.as_ref()),
        &opt(ns.review.as_ref()),
        "the review dates changed".into(),
    );
    let (od, nd) = (opt(os.retirement.disable.as_ref()), opt(ns.retirement.disable.as_ref()));
    if od != nd {
        let message = if nd.is_none() {
            "the disable path (kill switch) was removed".to_owned()
        } else {
            "the disable path (kill switch) changed".to_owned()
        };
        d.add(
            RuleId::DisablePathChanged,
            "/server/retirement/disable".into(),
            od,
            nd,
            message,
        );
    }
    d.changed(
        RuleId::RetirementChanged,
        "/server/retirement/when".into(),
        &os.retirement.when,
        &ns.retirement.when,
        "the retirement conditions changed".into(),
    );
    d.changed(
        RuleId::RetirementChanged,
        "/server/retirement/replacement".into(),
        &os.retirement.replacement,
        &ns.retirement.replacement,
        "the replacement named for retirement changed".into(),
    );
}

fn sensitivity_rank(s: Sensitivity) -> i32 {
    match s {
        Sensitivity::Public => 0,
        Sensitivity::Internal => 1,
        Sensitivity::Confidential => 2,
        Sensitivity::Restricted => 3,
    }
}

/// How much of a value a redaction keeps out of the logs.
fn redaction_rank(r: Redaction) -> i32 {
    match r {
        Redaction::Full => 0,
        Redaction::Hash => 1,
        Redaction::Redact => 2,
        Redaction::Omit => 3,
    }
}

fn data_classes(d: &mut Findings, o: &Model, n: &Model) {
    for class in keyed(&o.data_classes, &n.data_classes, |c| &c.name) {
        let (old, c) = match class {
            Keyed::Added(c) => {
                d.add(
                    RuleId::DataClassAdded,
                    format!("/data_classes/{}", esc(&c.name)),
                    None,
                    Some(data_class_json(c)),
                    format!(
                        "data class `{}` was added ({})",
                        c.name,
                        to_json(&c.sensitivity).as_str().unwrap_or_default()
                    ),
                );
                continue;
            }
            Keyed::Removed(c) => {
                d.removed(
                    RuleId::DataClassRemoved,
                    format!("/data_classes/{}", esc(&c.name)),
                    Some(data_class_json(c)),
                    format!("data class `{}` was removed", c.name),
                );
                continue;
            }
            Keyed::Both(old, c) => (old, c),
        };
        let pointer = format!("/data_classes/{}", esc(&c.name));
        let (os, ns) = (sensitivity_rank(old.sensitivity), sensitivity_rank(c.sensitivity));
        if os != ns {
            let rule = if ns > os {
                RuleId::DataClassWidened
            } else {
                RuleId::DataClassNarrowed
            };
            d.add(
                rule,
                format!("{pointer}/sensitivity"),
                Some(to_json(&old.sensitivity)),
                Some(to_json(&c.sensitivity)),
                format!("data class `{}` changed sensitivity", c.name),
            );
        }
        let (ol, nl) = (redaction_rank(old.logs), redaction_rank(c.logs));
        if ol != nl {
            let (rule, how) = if nl < ol {
                (RuleId::RedactionRelaxed, "less")
            } else {
                (RuleId::RedactionTightened, "more")
            };
            d.add(
                rule,
                format!("{pointer}/logs"),
                Some(to_json(&old.logs)),
                Some(to_json(&c.logs)),
                format!("data class `{}` is logged with {how} redaction", c.name),
            );
        }
        d.changed(
            RuleId::DataClassChanged,
            format!("{pointer}/description"),
            &old.description,
            &c.description,
            format!("the description of data class `{}` changed", c.name),
        );
    }
}

fn data_class_json(c: &DataClass) -> Value {
    json!({"description": c.description, "sensitivity": c.sensitivity, "logs": c.logs})
}

fn access(d: &mut Findings, o: &Model, n: &Model) {
    let (oa, na) = (&o.access, &n.access);
    for t in missing(&oa.transports, &na.transports) {
        d.add(
            RuleId::TransportRemoved,
            "/access/transports".into(),
            Some(to_json(t)),
            None,
            format!(
                "transport `{}` was removed; clients connecting over it lose the server",
                to_json(t).as_str().unwrap_or_default()
            ),
        );
    }
    for t in missing(&na.transports, &oa.transports) {
        d.add(
            RuleId::TransportAdded,
            "/access/transports".into(),
            None,
            Some(to_json(t)),
            format!("transport `{}` was added", to_json(t).as_str().unwrap_or_default()),
        );
    }
    match (&oa.oauth, &na.oauth) {
        (Some(ob), Some(nb)) => {
            let (ov, nv) = (to_json(ob), to_json(nb));
            for (key, value) in nv.as_object().into_iter().flatten() {
                let before = &ov[key.as_str()];
                if before != value {
                    d.add(
                        RuleId::AuthChanged,
                        format!("/access/oauth/{key}"),
                        Some(before.clone()),
                        Some(value.clone()),
                        format!("OAuth `{key}` changed"),
                    );
                }
            }
        }
        (None, None) => {}
        (ob, nb) => {
            let message = if nb.is_none() {
                "the OAuth policy was removed"
            } else {
                "an OAuth policy was added"
            };
            d.add(
                RuleId::AuthChanged,
                "/access/oauth".into(),
                opt(ob.as_ref()),
                opt(nb.as_ref()),
                message.into(),
            );
        }
    }
    if oa.sessions != na.sessions {
        let message = match (&oa.sessions, &na.sessions) {
            (None, Some(_)) => "legacy HTTP sessions were turned on: replicas need sticky routing",
            (Some(_), None) => "legacy HTTP sessions were turned off: 2025-11-25 clients are served statelessly",
            _ => "the session cap or idle time changed",
        };
        d.add(
            RuleId::SessionsChanged,
            "/access/sessions".into(),
            opt(oa.sessions.as_ref()),
            opt(na.sessions.as_ref()),
            message.into(),
        );
    }
    if oa.origins != na.origins {
        d.add(
            RuleId::AuthChanged,
            "/access/origins".into(),
            Some(to_json(&oa.origins)),
            Some(to_json(&na.origins)),
            "the allowed origins changed".into(),
        );
    }
    for scope in keyed(&oa.scopes, &na.scopes, |x| &x.name) {
        match scope {
            Keyed::Added(s) => d.add(
                RuleId::ScopeAdded,
                format!("/access/scopes/{}", esc(&s.name)),
                None,
                Some(json!(s.description)),
                format!("scope `{}` was added", s.name),
            ),
            Keyed::Both(old, s) => d.changed(
                RuleId::ScopeChanged,
                format!("/access/scopes/{}", esc(&s.name)),
                &old.description,
                &s.description,
                format!("the meaning of scope `{}` changed", s.name),
            ),
            Keyed::Removed(s) => d.removed(
                RuleId::ScopeRemoved,
                format!("/access/scopes/{}", esc(&s.name)),
                Some(json!(s.description)),
                format!("scope `{}` was removed", s.name),
            ),
        }
    }
}

fn downstreams(d: &mut Findings, o: &Model, n: &Model) {
    for downstream in keyed(&o.downstreams, &n.downstreams, |x| &x.name.original) {
        let (old, ds) = match downstream {
            Keyed::Added(ds) => {
                let name = &ds.name.original;
                let hosts: Vec<String> = ds.egress.iter().map(ToString::to_string).collect();
                d.add(
                    RuleId::DownstreamAdded,
                    format!("/downstreams/{}", esc(name)),
                    None,
                    Some(json!({"base_url": ds.base_url, "egress": hosts, "credentials": to_json(&ds.credentials)})),
                    format!("downstream `{name}` was added, reaching {}", hosts.join(", ")),
                );
                continue;
            }
            Keyed::Removed(ds) => {
                let name = &ds.name.original;
                d.removed(
                    RuleId::DownstreamRemoved,
                    format!("/downstreams/{}", esc(name)),
                    Some(json!({"base_url": ds.base_url})),
                    format!("downstream `{name}` was removed"),
                );
                continue;
            }
            Keyed::Both(old, ds) => (old, ds),
        };
        let name = &ds.name.original;
        let pointer = format!("/downstreams/{}", esc(name));
        d.changed(
            RuleId::DownstreamChanged,
            format!("{pointer}/base_url"),
            &old.base_url,
            &ds.base_url,
            format!("the base URL of downstream `{name}` changed"),
        );
        d.changed(
            RuleId::DownstreamChanged,
            format!("{pointer}/description"),
            &old.description,
            &ds.description,
            format!("the description of downstream `{name}` changed"),
        );
        for h in missing(&ds.egress, &old.egress) {
            d.add(
                RuleId::EgressHostAdded,
                format!("{pointer}/egress"),
                None,
                Some(json!(h.to_string())),
                format!("downstream `{name}` may now reach `{h}`"),
            );
        }
        for h in missing(&old.egress, &ds.egress) {
            d.add(
                RuleId::EgressHostRemoved,
                format!("{pointer}/egress"),
                Some(json!(h.to_string())),
                None,
                format!("downstream `{name}` no longer reaches `{h}`"),
            );
        }
        match (old.timeout, ds.timeout) {
            (Some(a), Some(b)) if a != b => {
                let rule = if b > a {
                    RuleId::LimitLoosened
                } else {
                    RuleId::LimitTightened
                };
                d.add(
                    rule,
                    format!("{pointer}/timeout"),
                    Some(to_json(&crate::model::units::format_duration(a))),
                    Some(to_json(&crate::model::units::format_duration(b))),
                    format!("the timeout of downstream `{name}` changed"),
                );
            }
            (Some(a), None) => d.add(
                RuleId::LimitLoosened,
                format!("{pointer}/timeout"),
                Some(to_json(&crate::model::units::format_duration(a))),
                None,
                format!("downstream `{name}` no longer sets its own timeout"),
            ),
            (None, Some(b)) => d.add(
                RuleId::LimitTightened,
                format!("{pointer}/timeout"),
                None,
                Some(to_json(&crate::model::units::format_duration(b))),
                format!("downstream `{name}` now sets its own timeout"),
            ),
            _ => {}
        }
        d.changed(
            RuleId::CredentialsChanged,
            format!("{pointer}/credentials"),
            &to_json(&old.credentials),
            &to_json(&ds.credentials),
            format!("the credentials for downstream `{name}` changed"),
        );
        if !same_set(&old.credential_scopes, &ds.credential_scopes) {
            d.add(
                RuleId::CredentialsChanged,
                format!("{pointer}/credentials/scopes"),
                Some(to_json(&old.credential_scopes)),
                Some(to_json(&ds.credential_scopes)),
                format!("what the credentials for downstream `{name}` may do changed"),
            );
        }
        suppressions(
            d,
            &format!("downstream `{name}`"),
            &old.suppressions,
            &ds.suppressions,
            &format!("{pointer}/suppress"),
        );
    }
}

const LIMIT_FIELDS: &[(&str, &str, &str)] = &[
    ("rate", "rate", "rate limit"),
    ("timeout", "timeout", "timeout"),
    ("concurrency", "concurrency", "concurrency limit"),
    ("max_request_bytes", "max_request", "request size limit"),
    ("max_response_bytes", "max_response", "response size limit"),
];

fn limit_magnitude(l: &Limits, field: &str) -> f64 {
    match field {
        "rate" => l.rate.per_second(),
        "timeout" => l.timeout.as_secs_f64(),
        "concurrency" => f64::from(l.concurrency),
        "max_request_bytes" => l.max_request_bytes as f64,
        _ => l.max_response_bytes as f64,
    }
}

/// Compares limits field by field. With `defaults`, a field that follows the
/// contract-wide default on both sides is skipped: the change is reported once, at `/limits`.
fn limits(d: &mut Findings, base: &str, what: &str, o: &Limits, n: &Limits, defaults: Option<(&Limits, &Limits)>) {
    let (ov, nv) = (to_json(o), to_json(n));
    let defaults = defaults.map(|(a, b)| (to_json(a), to_json(b)));
    for (field, key, noun) in LIMIT_FIELDS {
        let (a, b) = (&ov[field], &nv[field]);
        if a == b {
            continue;
        }
        if let Some((da, db)) = &defaults
            && a == &da[field]
            && b == &db[field]
        {
            continue;
        }
        let (ma, mb) = (limit_magnitude(o, field), limit_magnitude(n, field));
        let (rule, how) = if mb > ma {
            (RuleId::LimitLoosened, "loosened")
        } else {
            (RuleId::LimitTightened, "tightened")
        };
        d.add(
            rule,
            format!("{base}/{key}"),
            Some(a.clone()),
            Some(b.clone()),
            format!("the {noun} of {what} was {how}"),
        );
    }
}

fn audit(d: &mut Findings, pointer: &str, what: &str, o: &Audit, n: &Audit) {
    let flags = [
        ("arguments", o.arguments, n.arguments),
        ("results", o.results, n.results),
    ];
    audit_flags(d, pointer, what, &flags);
    if o.retention != n.retention {
        let rule = if n.retention < o.retention {
            RuleId::AuditReduced
        } else {
            RuleId::AuditIncreased
        };
        d.add(
            rule,
            format!("{pointer}/retention"),
            Some(json!(crate::model::units::format_duration(o.retention))),
            Some(json!(crate::model::units::format_duration(n.retention))),
            format!("audit records of {what} are kept for a different time"),
        );
    }
}

fn audit_flags(d: &mut Findings, pointer: &str, what: &str, flags: &[(&str, bool, bool)]) {
    for (key, a, b) in flags {
        if a != b {
            let (rule, how) = if *b {
                (RuleId::AuditIncreased, "now")
            } else {
                (RuleId::AuditReduced, "no longer")
            };
            d.add(
                rule,
                format!("{pointer}/{key}"),
                Some(json!(a)),
                Some(json!(b)),
                format!("{what} {how} records call {key} in the audit log"),
            );
        }
    }
}

fn deploy(d: &mut Findings, o: &Model, n: &Model) {
    let (od, nd) = (&o.deploy, &n.deploy);
    d.changed(
        RuleId::DeployChanged,
        "/deploy/namespace".into(),
        &od.namespace,
        &nd.namespace,
        "the server moved to another namespace".into(),
    );
    let size = |x: &crate::model::Deploy| json!({"replicas": {"min": x.replicas_min, "max": x.replicas_max}, "cpu": x.cpu, "memory": x.memory});
    let (os, ns) = (size(od), size(nd));
    for key in ["replicas", "cpu", "memory"] {
        if os[key] != ns[key] {
            d.add(
                RuleId::DeployResized,
                format!("/deploy/{key}"),
                Some(os[key].clone()),
                Some(ns[key].clone()),
                format!("the deployment's {key} changed"),
            );
        }
    }
}

fn suppressions(d: &mut Findings, what: &str, o: &[Suppression], n: &[Suppression], pointer: &str) {
    for suppression in keyed(o, n, |x| &x.rule) {
        match suppression {
            Keyed::Added(s) => d.add(
                RuleId::SuppressionAdded,
                s.pointer.clone(),
                None,
                Some(json!({"rule": s.rule, "reason": s.reason})),
                format!("{what} now suppresses production rule `{}`", s.rule),
            ),
            // A new reason for the same suppression is no change of what is suppressed.
            Keyed::Both(..) => {}
            Keyed::Removed(s) => d.add(
                RuleId::SuppressionRemoved,
                pointer.to_owned(),
                Some(json!({"rule": s.rule, "reason": s.reason})),
                None,
                format!("{what} no longer suppresses production rule `{}`", s.rule),
            ),
        }
    }
}

// ----- tools, resources and prompts -----

/// Which list of the contract an element is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Tool,
    Resource,
    Prompt,
}

impl Family {
    fn section(self) -> &'static str {
        match self {
            Family::Tool => "tools",
            Family::Resource => "resources",
            Family::Prompt => "prompts",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Family::Tool => "tool",
            Family::Resource => "resource",
            Family::Prompt => "prompt",
        }
    }

    pub(crate) fn of(kind: surface::Kind) -> Family {
        match kind {
            surface::Kind::Tool => Family::Tool,
            surface::Kind::Resource | surface::Kind::ResourceTemplate => Family::Resource,
            surface::Kind::Prompt => Family::Prompt,
        }
    }
}

/// The model element behind a definition, when the side is a contract.
#[derive(Clone, Copy)]
pub(crate) enum Element<'a> {
    Tool(&'a Tool),
    Resource(&'a Resource),
    Prompt(&'a Prompt),
}

/// A tool, resource or prompt as clients see it.
pub(crate) struct Item<'a> {
    pub family: Family,
    pub name: String,
    /// The definition from [`surface`].
    pub def: Value,
    /// For prompts: the SHA-256 of the text, which `prompts/get` returns.
    pub text_sha256: Option<String>,
    pub element: Option<Element<'a>>,
}

fn model_items(m: &Model) -> Vec<Item<'_>> {
    let tools = m.tools.iter().map(|t| Item {
        family: Family::Tool,
        name: t.name.original.clone(),
        def: surface::tool(t),
        text_sha256: None,
        element: Some(Element::Tool(t)),
    });
    let resources = m.resources.iter().map(|r| Item {
        family: Family::Resource,
        name: r.name.original.clone(),
        def: surface::resource(r),
        text_sha256: None,
        element: Some(Element::Resource(r)),
    });
    let prompts = m.prompts.iter().map(|p| Item {
        family: Family::Prompt,
        name: p.name.original.clone(),
        def: surface::prompt(p),
        text_sha256: Some(crate::lock::prompt_text_hash(&p.text)),
        element: Some(Element::Prompt(p)),
    });
    tools.chain(resources).chain(prompts).collect()
}

/// The items of a side, from its model or its lock.
pub(crate) fn items_of(side: &Side) -> Vec<Item<'_>> {
    match side {
        Side::Contract { model, .. } => model_items(model),
        Side::Lock { lock, .. } => lock
            .definitions
            .iter()
            .map(|e| Item {
                family: Family::of(e.kind),
                name: e.name.clone(),
                def: e.definition.clone(),
                text_sha256: e.text_sha256.clone(),
                element: None,
            })
            .collect(),
    }
}

/// The definition without its name, to recognise a rename.
fn unnamed(def: &Value) -> Value {
    let mut def = def.clone();
    if let Some(map) = def.as_object_mut() {
        map.remove("name");
    }
    def
}

/// Compares the tools, resources and prompts of two sides. `models` is set
/// when both sides are contracts: then what clients do not see (effects,
/// scopes, limits, ...) is compared too.
pub(crate) fn compare_surfaces(d: &mut Findings, old: &[Item], new: &[Item], models: Option<(&Model, &Model)>) {
    for family in [Family::Tool, Family::Resource, Family::Prompt] {
        let olds: Vec<&Item> = old.iter().filter(|i| i.family == family).collect();
        let news: Vec<&Item> = new.iter().filter(|i| i.family == family).collect();
        let (mut removed, mut added, mut pairs): (Vec<&Item>, Vec<&Item>, Vec<(&Item, &Item)>) = Default::default();
        for item in keyed(&olds, &news, |i| &i.name) {
            match item {
                Keyed::Added(n) => added.push(*n),
                Keyed::Both(o, n) => pairs.push((*o, *n)),
                Keyed::Removed(o) => removed.push(*o),
            }
        }
        // A removed and an added element with the same definition apart from the name: a rename.
        let mut renames = Vec::new();
        removed.retain(|o| {
            let candidates: Vec<usize> = added
                .iter()
                .enumerate()
                .filter(|(_, n)| unnamed(&n.def) == unnamed(&o.def))
                .map(|(i, _)| i)
                .collect();
            if let [i] = candidates.as_slice() {
                renames.push((*o, added.remove(*i)));
                false
            } else {
                true
            }
        });
        let section = family.section();
        let noun = family.noun();
        for (o, n) in renames {
            d.add(
                match family {
                    Family::Tool => RuleId::ToolRenamed,
                    Family::Resource => RuleId::ResourceRenamed,
                    Family::Prompt => RuleId::PromptRenamed,
                },
                format!("/{section}/{}", esc(&n.name)),
                Some(json!(o.name)),
                Some(json!(n.name)),
                format!(
                    "{noun} `{}` was renamed to `{}`; clients calling it by the old name break",
                    o.name, n.name
                ),
            );
            compare_pair(d, o, n, models);
        }
        for o in removed {
            d.removed(
                match family {
                    Family::Tool => RuleId::ToolRemoved,
                    Family::Resource => RuleId::ResourceRemoved,
                    Family::Prompt => RuleId::PromptRemoved,
                },
                format!("/{section}/{}", esc(&o.name)),
                Some(o.def.clone()),
                format!("{noun} `{}` was removed; clients using it break", o.name),
            );
        }
        for n in added {
            d.add(
                match family {
                    Family::Tool => RuleId::ToolAdded,
                    Family::Resource => RuleId::ResourceAdded,
                    Family::Prompt => RuleId::PromptAdded,
                },
                format!("/{section}/{}", esc(&n.name)),
                None,
                Some(n.def.clone()),
                format!("{noun} `{}` was added", n.name),
            );
        }
        for (o, n) in pairs {
            compare_pair(d, o, n, models);
        }
    }
}

/// Compares one element present on both sides (possibly renamed).
fn compare_pair(d: &mut Findings, o: &Item, n: &Item, models: Option<(&Model, &Model)>) {
    let base = format!("/{}/{}", n.family.section(), esc(&n.name));
    let what = format!("{} `{}`", n.family.noun(), n.name);
    let (od, nd) = (&o.def, &n.def);
    let field = |v: &Value, k: &str| v.get(k).cloned();
    let text = |d: &mut Findings, rule: RuleId, key: &str, contract_key: &str, label: &str| {
        let (a, b) = (field(od, key), field(nd, key));
        if a != b {
            d.add(
                rule,
                format!("{base}/{contract_key}"),
                a,
                b,
                format!("{what}: {label} changed"),
            );
        }
    };
    text(d, RuleId::TitleChanged, "title", "title", "the title");
    text(
        d,
        RuleId::DescriptionChanged,
        "description",
        "description",
        "the description (which the model reads)",
    );
    match n.family {
        Family::Tool => {
            if let (Some(a), Some(b)) = (od.get("inputSchema"), nd.get("inputSchema")) {
                d.schema(a, b, true, &format!("{base}/input"), &what);
            }
            match (od.get("outputSchema"), nd.get("outputSchema")) {
                (Some(a), Some(b)) => d.schema(a, b, false, &format!("{base}/output"), &what),
                (Some(a), None) => d.add(
                    RuleId::OutputRemoved,
                    format!("{base}/output"),
                    Some(a.clone()),
                    None,
                    format!("{what}: the output schema was removed; clients reading structured output break"),
                ),
                (None, Some(b)) => d.add(
                    RuleId::OutputAdded,
                    format!("{base}/output"),
                    None,
                    Some(b.clone()),
                    format!("{what}: an output schema was added"),
                ),
                (None, None) => {}
            }
            let effect_changed = match (o.element, n.element) {
                (Some(Element::Tool(a)), Some(Element::Tool(b))) => a.effect != b.effect,
                _ => false,
            };
            // The title annotation repeats the title, which `title-changed` reports.
            let hints_of = |v: &Value| {
                let mut a = v.get("annotations").cloned();
                if let Some(Value::Object(map)) = &mut a {
                    map.remove("title");
                }
                a
            };
            let (a, b) = (hints_of(od), hints_of(nd));
            if a != b && !effect_changed {
                let hints = ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"]
                    .iter()
                    .filter(|h| a.as_ref().and_then(|v| v.get(**h)) != b.as_ref().and_then(|v| v.get(**h)))
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>();
                let detail = hints.join(", ");
                d.add(
                    RuleId::AnnotationsChanged,
                    format!("{base}/effect"),
                    a,
                    b,
                    format!("{what}: the MCP annotations changed ({detail}); hosts decide on confirmation from them"),
                );
            }
        }
        Family::Resource => {
            for (key, contract_key) in [("uri", "uri"), ("uriTemplate", "uri_template")] {
                let (a, b) = (field(od, key), field(nd, key));
                if a != b && b.is_some() {
                    let old = a.or_else(|| field(od, if key == "uri" { "uriTemplate" } else { "uri" }));
                    d.add(
                        RuleId::ResourceUriChanged,
                        format!("{base}/{contract_key}"),
                        old,
                        b,
                        format!("{what}: the URI changed; clients reading the old URI break"),
                    );
                }
            }
            let (a, b) = (field(od, "mimeType"), field(nd, "mimeType"));
            if a != b {
                d.add(
                    RuleId::ResourceMimeTypeChanged,
                    format!("{base}/mime_type"),
                    a,
                    b,
                    format!("{what}: the MIME type changed"),
                );
            }
        }
        Family::Prompt => {
            prompt_arguments(d, &base, &what, od, nd);
            if o.text_sha256 != n.text_sha256 {
                let (a, b) = match (o.element, n.element) {
                    (Some(Element::Prompt(a)), Some(Element::Prompt(b))) => (json!(a.text), json!(b.text)),
                    _ => (json!(o.text_sha256), json!(n.text_sha256)),
                };
                d.add(
                    RuleId::PromptTextChanged,
                    format!("{base}/text"),
                    Some(a),
                    Some(b),
                    format!("{what}: the prompt text changed; the model follows it"),
                );
            }
        }
    }
    if let (Some((om, nm)), Some(oe), Some(ne)) = (models, o.element, n.element) {
        match (oe, ne) {
            (Element::Tool(a), Element::Tool(b)) => tool_extras(d, &base, &what, om, nm, a, b),
            (Element::Resource(a), Element::Resource(b)) => resource_extras(d, &base, &what, om, nm, a, b),
            (Element::Prompt(a), Element::Prompt(b)) => prompt_extras(d, &base, &what, om, nm, a, b),
            _ => {}
        }
    }
}

fn prompt_arguments(d: &mut Findings, base: &str, what: &str, od: &Value, nd: &Value) {
    let args = |v: &Value| -> Vec<Value> {
        v.get("arguments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (oa, na) = (args(od), args(nd));
    let name_of = |a: &Value| a.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let required = |a: &Value| a.get("required").and_then(Value::as_bool).unwrap_or(false);
    for argument in keyed(&oa, &na, |a| a.get("name").and_then(Value::as_str).unwrap_or_default()) {
        match argument {
            Keyed::Added(a) => {
                let name = name_of(a);
                let pointer = format!("{base}/arguments/{}", esc(&name));
                if required(a) {
                    d.add(
                        RuleId::PromptArgumentRequired,
                        pointer,
                        None,
                        Some(a.clone()),
                        format!("{what}: new required argument `{name}`; clients that do not send it break"),
                    );
                } else {
                    d.add(
                        RuleId::PromptArgumentAdded,
                        pointer,
                        None,
                        Some(a.clone()),
                        format!("{what}: new optional argument `{name}`"),
                    );
                }
            }
            Keyed::Both(old, a) => {
                let name = name_of(a);
                let pointer = format!("{base}/arguments/{}", esc(&name));
                if required(old) != required(a) {
                    let (rule, how) = if required(a) {
                        (RuleId::PromptArgumentRequired, "is now required")
                    } else {
                        (RuleId::PromptArgumentOptional, "is no longer required")
                    };
                    d.add(
                        rule,
                        format!("{pointer}/required"),
                        Some(json!(required(old))),
                        Some(json!(required(a))),
                        format!("{what}: argument `{name}` {how}"),
                    );
                }
                if old.get("description") != a.get("description") {
                    d.add(
                        RuleId::DescriptionChanged,
                        format!("{pointer}/description"),
                        old.get("description").cloned(),
                        a.get("description").cloned(),
                        format!("{what}: the description of argument `{name}` changed"),
                    );
                }
            }
            Keyed::Removed(a) => {
                let name = name_of(a);
                d.removed(
                    RuleId::PromptArgumentRemoved,
                    format!("{base}/arguments/{}", esc(&name)),
                    Some(a.clone()),
                    format!("{what}: argument `{name}` was removed; clients that send it break"),
                );
            }
        }
    }
}

/// A bound tool's HTTP operation: every move is re-reviewed, since it changes what reaches the downstream.
fn binding(d: &mut Findings, pointer: &str, what: &str, a: Option<&Binding>, b: Option<&Binding>) {
    let (a, b) = match (a, b) {
        (None, None) => return,
        (Some(a), Some(b)) => (a, b),
        (a, b) => {
            let describe = |x: Option<&Binding>| match x {
                Some(x) => format!("calls {} {} on `{}`", x.method, x.path, x.downstream),
                None => "runs a hand-written handler".to_string(),
            };
            d.add(
                RuleId::ToolImplementationChanged,
                pointer.to_owned(),
                a.map(|x| json!(format!("{} {}", x.method, x.path))),
                b.map(|x| json!(format!("{} {}", x.method, x.path))),
                format!("{what}: it {} where it {}", describe(b), describe(a)),
            );
            return;
        }
    };
    if a.downstream != b.downstream {
        d.add(
            RuleId::BindingDownstreamChanged,
            format!("{pointer}/downstream"),
            Some(json!(a.downstream)),
            Some(json!(b.downstream)),
            format!(
                "{what}: calls downstream `{}` instead of `{}`",
                b.downstream, a.downstream
            ),
        );
    }
    if a.method != b.method {
        d.add(
            RuleId::BindingMethodChanged,
            format!("{pointer}/method"),
            Some(json!(a.method.as_str())),
            Some(json!(b.method.as_str())),
            format!("{what}: the HTTP method changed from {} to {}", a.method, b.method),
        );
    }
    if a.path != b.path {
        d.add(
            RuleId::BindingPathChanged,
            format!("{pointer}/path"),
            Some(json!(a.path)),
            Some(json!(b.path)),
            format!("{what}: the path changed from `{}` to `{}`", a.path, b.path),
        );
    }
    let place = |p: &BoundParameter| format!("{} `{}`", p.location, p.name);
    for pair in keyed(&a.parameters, &b.parameters, |p| &p.property) {
        let (old, new) = match pair {
            Keyed::Added(y) => (None, Some(y)),
            Keyed::Both(x, y) => (Some(x), Some(y)),
            Keyed::Removed(x) => (Some(x), None),
        };
        let message = match (old, new) {
            (Some(x), Some(y)) if x.location == y.location && x.name == y.name && x.explode == y.explode => continue,
            (Some(x), Some(y)) if x.location == y.location && x.name == y.name => format!(
                "{what}: `{}` is sent as {} {}",
                y.property,
                if y.explode {
                    "one pair per item"
                } else {
                    "one comma-joined pair"
                },
                place(y)
            ),
            (Some(x), Some(y)) => format!(
                "{what}: `{}` moved from the {} to the {}",
                y.property,
                place(x),
                place(y)
            ),
            (None, Some(y)) => format!("{what}: `{}` is now sent as {}", y.property, place(y)),
            (Some(x), None) => format!("{what}: `{}` is no longer sent as {}", x.property, place(x)),
            (None, None) => continue,
        };
        let property = new.or(old).map(|p| p.property.as_str()).unwrap_or_default();
        d.add(
            RuleId::BindingParameterMoved,
            format!("{pointer}/parameters/{}", esc(property)),
            old.map(|x| json!(place(x))),
            new.map(|y| json!(place(y))),
            message,
        );
    }
    if a.success != b.success || a.response_field != b.response_field {
        d.add(
            RuleId::BindingResponseChanged,
            format!("{pointer}/success"),
            Some(json!({ "success": a.success, "field": a.response_field })),
            Some(json!({ "success": b.success, "field": b.response_field })),
            format!(
                "{what}: success is {:?} (was {:?}); the body goes to {} (was {})",
                b.success,
                a.success,
                b.response_field
                    .as_deref()
                    .map_or("the output itself".to_string(), |f| format!("`{f}`")),
                a.response_field
                    .as_deref()
                    .map_or("the output itself".to_string(), |f| format!("`{f}`")),
            ),
        );
    }
}

fn tool_extras(d: &mut Findings, base: &str, what: &str, om: &Model, nm: &Model, a: &Tool, b: &Tool) {
    if a.effect != b.effect {
        let (rule, how) = if b.effect > a.effect {
            (RuleId::EffectEscalated, "escalated")
        } else {
            (RuleId::EffectReduced, "reduced")
        };
        d.add(
            rule,
            format!("{base}/effect"),
            Some(json!(a.effect.as_str())),
            Some(json!(b.effect.as_str())),
            format!(
                "{what}: the effect {how} from `{}` to `{}`",
                a.effect.as_str(),
                b.effect.as_str()
            ),
        );
    }
    scopes(d, RuleId::ToolScopeChanged, base, what, &a.scopes, &b.scopes);
    data_class_use(d, base, what, om, nm, a.data_class.as_deref(), b.data_class.as_deref());
    downstream_use(d, base, what, &a.downstreams, &b.downstreams);
    limits(
        d,
        &format!("{base}/limits"),
        what,
        &a.limits,
        &b.limits,
        Some((&om.limits, &nm.limits)),
    );
    approval(d, base, what, &a.approval, &b.approval);
    binding(
        d,
        &format!("{base}/binding"),
        what,
        a.binding.as_ref(),
        b.binding.as_ref(),
    );
    let flags = [
        ("arguments", a.audit.arguments, b.audit.arguments),
        ("results", a.audit.results, b.audit.results),
    ];
    // Flags that follow the contract-wide audit settings on both sides were reported at `/audit`.
    let flags: Vec<_> = flags
        .into_iter()
        .filter(|(key, x, y)| {
            let (dx, dy) = match *key {
                "arguments" => (om.audit.arguments, nm.audit.arguments),
                _ => (om.audit.results, nm.audit.results),
            };
            !(*x == dx && *y == dy)
        })
        .collect();
    audit_flags(d, &format!("{base}/audit"), what, &flags);
    suppressions(d, what, &a.suppressions, &b.suppressions, &format!("{base}/suppress"));
}

fn approval_rank(a: &Approval) -> i32 {
    match a {
        Approval::None => 0,
        Approval::User => 1,
        Approval::Reviewer { .. } => 2,
    }
}

fn approval(d: &mut Findings, base: &str, what: &str, a: &Approval, b: &Approval) {
    if a == b {
        return;
    }
    let pointer = format!("{base}/approval");
    let (ra, rb) = (approval_rank(a), approval_rank(b));
    let (old, new) = (Some(to_json(a)), Some(to_json(b)));
    if rb < ra {
        let how = if rb == 0 { "was removed" } else { "was relaxed" };
        d.add(
            RuleId::ApprovalRelaxed,
            pointer,
            old,
            new,
            format!("{what}: human approval {how}"),
        );
    } else if rb > ra {
        d.add(
            RuleId::ApprovalTightened,
            pointer,
            old,
            new,
            format!("{what}: human approval became stricter"),
        );
    } else if let (Approval::Reviewer { scope: sa, expires: ea }, Approval::Reviewer { scope: sb, expires: eb }) =
        (a, b)
    {
        if sa != sb {
            d.add(
                RuleId::ApprovalChanged,
                format!("{pointer}/scope"),
                Some(json!(sa)),
                Some(json!(sb)),
                format!("{what}: approvers now need scope `{sb}` instead of `{sa}`"),
            );
        }
        if ea != eb {
            let (rule, how) = if eb > ea {
                (RuleId::ApprovalRelaxed, "wait longer")
            } else {
                (RuleId::ApprovalTightened, "expire sooner")
            };
            d.add(
                rule,
                format!("{pointer}/expires"),
                Some(json!(crate::model::units::format_duration(*ea))),
                Some(json!(crate::model::units::format_duration(*eb))),
                format!("{what}: pending operations {how} for approval"),
            );
        }
    }
}

fn scopes(d: &mut Findings, rule: RuleId, base: &str, what: &str, a: &[String], b: &[String]) {
    if same_set(a, b) {
        return;
    }
    let (added, removed) = (missing(b, a), missing(a, b));
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("now requires {}", list(&added)));
    }
    if !removed.is_empty() {
        parts.push(format!("no longer requires {}", list(&removed)));
    }
    d.add(
        rule,
        format!("{base}/scopes"),
        Some(json!(a)),
        Some(json!(b)),
        format!("{what}: {}", parts.join(" and ")),
    );
}

fn data_class_use(d: &mut Findings, base: &str, what: &str, om: &Model, nm: &Model, a: Option<&str>, b: Option<&str>) {
    if a == b {
        return;
    }
    let rank = |m: &Model, c: Option<&str>| c.and_then(|c| m.data_class(c)).map(|c| sensitivity_rank(c.sensitivity));
    let (ra, rb) = (rank(om, a).unwrap_or(-1), rank(nm, b).unwrap_or(-1));
    let rule = match rb.cmp(&ra) {
        std::cmp::Ordering::Greater => RuleId::DataClassWidened,
        std::cmp::Ordering::Less => RuleId::DataClassNarrowed,
        std::cmp::Ordering::Equal => RuleId::DataClassChanged,
    };
    let show = |c: Option<&str>| c.map(|c| format!("`{c}`")).unwrap_or_else(|| "none".into());
    d.add(
        rule,
        format!("{base}/data_class"),
        a.map(|c| json!(c)),
        b.map(|c| json!(c)),
        format!("{what}: data class changed from {} to {}", show(a), show(b)),
    );
}

fn downstream_use(d: &mut Findings, base: &str, what: &str, a: &[String], b: &[String]) {
    for ds in missing(b, a) {
        d.add(
            RuleId::ToolDownstreamAdded,
            format!("{base}/downstreams"),
            None,
            Some(json!(ds)),
            format!("{what}: now calls downstream `{ds}`"),
        );
    }
    for ds in missing(a, b) {
        d.add(
            RuleId::ToolDownstreamRemoved,
            format!("{base}/downstreams"),
            Some(json!(ds)),
            None,
            format!("{what}: no longer calls downstream `{ds}`"),
        );
    }
}

fn resource_extras(d: &mut Findings, base: &str, what: &str, om: &Model, nm: &Model, a: &Resource, b: &Resource) {
    if a.subscribable != b.subscribable {
        let (rule, message) = if b.subscribable {
            (RuleId::SubscriptionAdded, format!("{what} became subscribable"))
        } else {
            (
                RuleId::SubscriptionRemoved,
                format!("{what} can no longer be subscribed to"),
            )
        };
        d.add(
            rule,
            format!("{base}/subscribable"),
            Some(json!(a.subscribable)),
            Some(json!(b.subscribable)),
            message,
        );
    }
    scopes(d, RuleId::ResourceScopeChanged, base, what, &a.scopes, &b.scopes);
    data_class_use(d, base, what, om, nm, a.data_class.as_deref(), b.data_class.as_deref());
    downstream_use(d, base, what, &a.downstreams, &b.downstreams);
    limits(
        d,
        &format!("{base}/limits"),
        what,
        &a.limits,
        &b.limits,
        Some((&om.limits, &nm.limits)),
    );
    match (&a.schema, &b.schema) {
        (Some(x), Some(y)) => d.schema(&x.value, &y.value, false, &format!("{base}/schema"), what),
        (None, None) => {}
        (x, y) => d.add(
            RuleId::OutputSchemaChanged,
            format!("{base}/schema"),
            x.as_ref().map(|s| s.value.clone()),
            y.as_ref().map(|s| s.value.clone()),
            format!(
                "{what}: the content schema was {}",
                if y.is_some() { "added" } else { "removed" }
            ),
        ),
    }
    if let (ResourceTarget::Template { variables: va, .. }, ResourceTarget::Template { variables: vb, .. }) =
        (&a.target, &b.target)
    {
        for variable in keyed(va, vb, |x| &x.name.original) {
            if let Keyed::Both(old, v) = variable {
                d.schema(
                    &old.schema.value,
                    &v.schema.value,
                    true,
                    &format!("{base}/parameters/{}", esc(&v.name.original)),
                    what,
                );
            }
        }
    }
    suppressions(d, what, &a.suppressions, &b.suppressions, &format!("{base}/suppress"));
}

fn prompt_extras(d: &mut Findings, base: &str, what: &str, om: &Model, nm: &Model, a: &Prompt, b: &Prompt) {
    if a.version != b.version {
        d.add(
            RuleId::PromptVersionChanged,
            format!("{base}/version"),
            Some(json!(a.version.to_string())),
            Some(json!(b.version.to_string())),
            format!("{what}: version {} -> {}", a.version, b.version),
        );
    }
    for r in missing(&b.resources, &a.resources) {
        d.add(
            RuleId::PromptResourceAdded,
            format!("{base}/resources"),
            None,
            Some(json!(r)),
            format!("{what}: now relies on resource `{r}`"),
        );
    }
    for r in missing(&a.resources, &b.resources) {
        d.add(
            RuleId::PromptResourceRemoved,
            format!("{base}/resources"),
            Some(json!(r)),
            None,
            format!("{what}: no longer relies on resource `{r}`"),
        );
    }
    scopes(d, RuleId::PromptScopeChanged, base, what, &a.scopes, &b.scopes);
    data_class_use(d, base, what, om, nm, a.data_class.as_deref(), b.data_class.as_deref());
    for argument in keyed(&a.arguments, &b.arguments, |x| &x.name.original) {
        if let Keyed::Both(old, arg) = argument
            && old.max_length != arg.max_length
        {
            let (rule, how) = if arg.max_length < old.max_length {
                (RuleId::InputBoundsTightened, "tightened")
            } else {
                (RuleId::InputBoundsLoosened, "loosened")
            };
            d.add(
                rule,
                format!("{base}/arguments/{}/maxLength", esc(&arg.name.original)),
                Some(json!(old.max_length)),
                Some(json!(arg.max_length)),
                format!(
                    "{what}: the maximum length of argument `{}` was {how}",
                    arg.name.original
                ),
            );
        }
    }
    suppressions(d, what, &a.suppressions, &b.suppressions, &format!("{base}/suppress"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema walk names its rules by id text; each of those ids must be a
    /// [`RuleId`], so the unclassified fallback in [`Findings::schema`] stays unused.
    #[test]
    fn every_id_the_schema_walk_names_is_a_rule() {
        let source = include_str!("schema.rs");
        // Every string literal that opens like a rule id, up to its closing quote.
        let ids: Vec<&str> = ["\"input-", "\"output-"]
            .iter()
            .flat_map(|opening| source.match_indices(opening))
            .filter_map(|(at, _)| source[at + 1..].split('"').next())
            .filter(|id| id.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            .collect();
        assert!(ids.len() >= 20, "found only {ids:?}");
        for id in ids {
            assert!(RuleId::parse(id).is_some(), "schema.rs names unknown rule `{id}`");
        }
    }

    #[test]
    fn keyed_pairs_by_name_in_new_then_old_order() {
        let old = ["a", "b", "c"];
        let new = ["c", "d", "a"];
        let shown: Vec<String> = keyed(&old, &new, |s| s)
            .into_iter()
            .map(|k| match k {
                Keyed::Added(n) => format!("+{n}"),
                Keyed::Both(o, n) => format!("{o}={n}"),
                Keyed::Removed(o) => format!("-{o}"),
            })
            .collect();
        assert_eq!(shown, ["c=c", "+d", "a=a", "-b"]);
    }
}
