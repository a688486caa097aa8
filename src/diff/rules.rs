//! The diff rules: every kind of change `charter diff` reports, with its
//! stable id and class, and the comparisons that find them.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Class, Finding, Side, esc, missing, same_set};
use crate::model::{
    Approval, Audit, DataClass, Limits, Model, Prompt, Redaction, Resource, ResourceTarget, Sensitivity, Suppression,
    Tool,
};
use crate::surface;

/// A kind of change.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub class: Class,
    pub summary: &'static str,
}

const fn rule(id: &'static str, class: Class, summary: &'static str) -> Rule {
    Rule { id, class, summary }
}

use Class::{Breaking as B, Compatible as C, Review as R};

/// Every rule, grouped by class. Ids are stable: they are how CI and reviewers refer to a change.
pub const RULES: &[Rule] = &[
    // Breaking for clients.
    rule("server-renamed", B, "the server's name changed"),
    rule("transport-removed", B, "a transport was removed"),
    rule("tool-removed", B, "a tool was removed"),
    rule("tool-renamed", B, "a tool was renamed"),
    rule("resource-removed", B, "a resource was removed"),
    rule("resource-renamed", B, "a resource was renamed"),
    rule("resource-uri-changed", B, "a resource's URI or URI template changed"),
    rule("resource-mime-type-changed", B, "a resource's MIME type changed"),
    rule("prompt-removed", B, "a prompt was removed"),
    rule("prompt-renamed", B, "a prompt was renamed"),
    rule("prompt-argument-removed", B, "a prompt argument was removed"),
    rule(
        "prompt-argument-required",
        B,
        "a prompt argument became required, or a required one was added",
    ),
    rule(
        "input-required-added",
        B,
        "an input field became required, or a required field was added",
    ),
    rule("input-field-removed", B, "an input field was removed"),
    rule("input-type-changed", B, "an input field's type changed or narrowed"),
    rule(
        "input-enum-narrowed",
        B,
        "an input enum lost values, or an input became an enum",
    ),
    rule(
        "input-bounds-tightened",
        B,
        "an input bound became tighter (min, max, length, items, multipleOf, uniqueness)",
    ),
    rule(
        "input-pattern-changed",
        B,
        "an input pattern or format was added or changed",
    ),
    rule(
        "input-closed",
        B,
        "an input object no longer accepts additional properties",
    ),
    rule(
        "input-schema-changed",
        B,
        "an input schema changed in a way charter does not classify (treated as breaking)",
    ),
    rule("output-removed", B, "a tool's output schema was removed"),
    rule("output-field-removed", B, "an output field was removed"),
    rule(
        "output-required-removed",
        B,
        "an output field is no longer always present",
    ),
    rule("output-type-changed", B, "an output field's type changed or widened"),
    rule(
        "output-enum-widened",
        B,
        "an output enum gained values, or an output is no longer an enum",
    ),
    rule("output-bounds-loosened", B, "an output bound became looser"),
    rule(
        "output-pattern-changed",
        B,
        "an output pattern or format was removed or changed",
    ),
    // Needs re-review: the access boundary moved, or text the model reads changed.
    rule("tool-added", R, "a tool was added"),
    rule("resource-added", R, "a resource was added"),
    rule("prompt-added", R, "a prompt was added"),
    rule(
        "description-changed",
        R,
        "a description the model or the user reads changed",
    ),
    rule("title-changed", R, "a title shown to users changed"),
    rule("prompt-text-changed", R, "a prompt's text changed"),
    rule("prompt-resource-added", R, "a prompt started relying on a resource"),
    rule("schema-default-changed", R, "a schema's default or examples changed"),
    rule(
        "output-schema-changed",
        R,
        "an output schema changed in a way charter does not classify",
    ),
    rule(
        "effect-escalated",
        R,
        "a tool's effect escalated (read -> draft -> write)",
    ),
    rule("annotations-changed", R, "a tool's MCP annotations changed"),
    rule("approval-relaxed", R, "a tool's approval was removed or relaxed"),
    rule("approval-changed", R, "the scope that approves a tool's calls changed"),
    rule("scope-added", R, "a scope was added"),
    rule("scope-removed", R, "a scope was removed"),
    rule("scope-changed", R, "a scope's meaning changed"),
    rule("tool-scope-changed", R, "the scopes a tool requires changed"),
    rule("resource-scope-changed", R, "the scopes a resource requires changed"),
    rule("prompt-scope-changed", R, "the scopes a prompt requires changed"),
    rule("data-class-added", R, "a data class was added"),
    rule(
        "data-class-changed",
        R,
        "a data class's description changed, or an element moved to another data class of the same sensitivity",
    ),
    rule(
        "data-class-widened",
        R,
        "a data class became more sensitive, or an element now handles more sensitive data",
    ),
    rule("redaction-relaxed", R, "a data class is logged with less redaction"),
    rule("downstream-added", R, "a downstream was added"),
    rule(
        "downstream-changed",
        R,
        "a downstream's base URL or description changed",
    ),
    rule(
        "tool-downstream-added",
        R,
        "a tool or resource now calls a downstream it did not call",
    ),
    rule("egress-host-added", R, "an egress host was added"),
    rule(
        "credentials-changed",
        R,
        "the credentials for a downstream, or what they may do, changed",
    ),
    rule("transport-added", R, "a transport was added"),
    rule("auth-changed", R, "the OAuth settings or allowed origins changed"),
    rule(
        "limit-loosened",
        R,
        "a rate, time, concurrency or size limit was loosened",
    ),
    rule(
        "audit-reduced",
        R,
        "less is audited, or audit records are kept for less time",
    ),
    rule("owner-changed", R, "the owner changed or was removed"),
    rule(
        "disable-path-changed",
        R,
        "the disable path (kill switch) changed or was removed",
    ),
    rule("status-changed", R, "the lifecycle status changed"),
    rule("deploy-changed", R, "the deployment moved (namespace)"),
    rule("suppression-added", R, "a production rule was suppressed"),
    rule("dependency-added", R, "the handlers use a new crate"),
    rule(
        "dependency-changed",
        R,
        "the version, features or default features of a handler crate changed",
    ),
    // Compatible.
    rule("input-field-added", C, "an optional input field was added"),
    rule("input-required-removed", C, "an input field is no longer required"),
    rule("input-type-widened", C, "an input field accepts more types"),
    rule(
        "input-enum-widened",
        C,
        "an input enum gained values, or an input is no longer an enum",
    ),
    rule(
        "input-bounds-loosened",
        C,
        "an input bound, pattern or format became looser or was removed",
    ),
    rule("input-opened", C, "an input object now accepts additional properties"),
    rule("output-added", C, "a tool gained an output schema"),
    rule("output-field-added", C, "an output field was added"),
    rule("output-required-added", C, "an output field is now always present"),
    rule("output-type-narrowed", C, "an output field has fewer types"),
    rule(
        "output-enum-narrowed",
        C,
        "an output enum lost values, or an output became an enum",
    ),
    rule(
        "output-bounds-tightened",
        C,
        "an output bound, pattern or format became tighter",
    ),
    rule(
        "output-closed",
        C,
        "an output object no longer carries additional properties",
    ),
    rule("prompt-argument-added", C, "an optional prompt argument was added"),
    rule("prompt-argument-optional", C, "a prompt argument is no longer required"),
    rule("prompt-resource-removed", C, "a prompt no longer relies on a resource"),
    rule("prompt-version-changed", C, "a prompt's version changed"),
    rule(
        "effect-reduced",
        C,
        "a tool's effect was reduced (write -> draft -> read)",
    ),
    rule("approval-tightened", C, "a tool's approval became stricter"),
    rule("data-class-removed", C, "a data class was removed"),
    rule(
        "data-class-narrowed",
        C,
        "a data class became less sensitive, or an element handles less sensitive data",
    ),
    rule("redaction-tightened", C, "a data class is logged with more redaction"),
    rule("downstream-removed", C, "a downstream was removed"),
    rule(
        "tool-downstream-removed",
        C,
        "a tool or resource no longer calls a downstream",
    ),
    rule("egress-host-removed", C, "an egress host was removed"),
    rule(
        "limit-tightened",
        C,
        "a rate, time, concurrency or size limit was tightened",
    ),
    rule(
        "audit-increased",
        C,
        "more is audited, or audit records are kept longer",
    ),
    rule("deploy-resized", C, "replicas, CPU or memory changed"),
    rule(
        "retirement-changed",
        C,
        "the retirement conditions or the replacement changed",
    ),
    rule("review-date-changed", C, "the review dates changed"),
    rule("suppression-removed", C, "a suppression was removed"),
    rule("dependency-removed", C, "the handlers no longer use a crate"),
];

/// The rule of `id`. Panics on an unknown id: every id the comparisons use is in [`RULES`].
pub fn rule_of(id: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("diff rule `{id}` is not in RULES"))
}

/// The findings collected so far.
#[derive(Default)]
pub(crate) struct Diff {
    pub findings: Vec<Finding>,
}

impl Diff {
    /// A change best shown in the new contract.
    pub fn add(
        &mut self,
        rule: &'static str,
        pointer: String,
        old: Option<Value>,
        new: Option<Value>,
        message: String,
    ) {
        self.push(rule, pointer, old, new, message, false);
    }

    /// A removal, best shown in the old contract.
    pub fn removed(&mut self, rule: &'static str, pointer: String, old: Option<Value>, message: String) {
        self.push(rule, pointer, old, None, message, true);
    }

    fn push(
        &mut self,
        rule: &'static str,
        pointer: String,
        old: Option<Value>,
        new: Option<Value>,
        message: String,
        in_old: bool,
    ) {
        self.findings.push(Finding {
            rule,
            class: rule_of(rule).class,
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
    fn changed<T: Serialize + PartialEq>(
        &mut self,
        rule: &'static str,
        pointer: String,
        old: &T,
        new: &T,
        message: String,
    ) {
        if old != new {
            self.add(rule, pointer, Some(to_json(old)), Some(to_json(new)), message);
        }
    }
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
pub(crate) fn compare_models(d: &mut Diff, o: &Model, n: &Model) {
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
fn dependencies(d: &mut Diff, o: &Model, n: &Model) {
    let show = |x: &crate::model::HandlerDependency| json!({"version": x.version, "features": x.features, "default_features": x.default_features});
    for dep in &n.handler_dependencies {
        match o.handler_dependencies.iter().find(|x| x.name == dep.name) {
            None => d.add(
                "dependency-added",
                dep.pointer.clone(),
                None,
                Some(show(dep)),
                format!("the handlers now use crate `{}` {}", dep.name, dep.version),
            ),
            Some(old) => d.changed(
                "dependency-changed",
                dep.pointer.clone(),
                &show(old),
                &show(dep),
                format!("handler crate `{}` changed", dep.name),
            ),
        }
    }
    for dep in &o.handler_dependencies {
        if !n.handler_dependencies.iter().any(|x| x.name == dep.name) {
            d.removed(
                "dependency-removed",
                dep.pointer.clone(),
                Some(show(dep)),
                format!("the handlers no longer use crate `{}`", dep.name),
            );
        }
    }
}

fn server(d: &mut Diff, o: &Model, n: &Model) {
    let (os, ns) = (&o.server, &n.server);
    d.changed(
        "server-renamed",
        "/server/name".into(),
        &os.name.original,
        &ns.name.original,
        format!(
            "the server was renamed from `{}` to `{}`; hosts configured with the old name lose it",
            os.name.original, ns.name.original
        ),
    );
    d.changed(
        "title-changed",
        "/server/title".into(),
        &os.title,
        &ns.title,
        "the server's title changed".into(),
    );
    d.changed(
        "description-changed",
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
        d.add("owner-changed", "/server/owner".into(), oo, no, message);
    }
    d.changed(
        "status-changed",
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
        "review-date-changed",
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
            "disable-path-changed",
            "/server/retirement/disable".into(),
            od,
            nd,
            message,
        );
    }
    d.changed(
        "retirement-changed",
        "/server/retirement/when".into(),
        &os.retirement.when,
        &ns.retirement.when,
        "the retirement conditions changed".into(),
    );
    d.changed(
        "retirement-changed",
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

fn data_classes(d: &mut Diff, o: &Model, n: &Model) {
    for c in &n.data_classes {
        let pointer = format!("/data_classes/{}", esc(&c.name));
        let Some(old) = o.data_class(&c.name) else {
            d.add(
                "data-class-added",
                pointer,
                None,
                Some(data_class_json(c)),
                format!(
                    "data class `{}` was added ({})",
                    c.name,
                    to_json(&c.sensitivity).as_str().unwrap_or_default()
                ),
            );
            continue;
        };
        let (os, ns) = (sensitivity_rank(old.sensitivity), sensitivity_rank(c.sensitivity));
        if os != ns {
            let rule = if ns > os {
                "data-class-widened"
            } else {
                "data-class-narrowed"
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
                ("redaction-relaxed", "less")
            } else {
                ("redaction-tightened", "more")
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
            "data-class-changed",
            format!("{pointer}/description"),
            &old.description,
            &c.description,
            format!("the description of data class `{}` changed", c.name),
        );
    }
    for c in &o.data_classes {
        if n.data_class(&c.name).is_none() {
            d.removed(
                "data-class-removed",
                format!("/data_classes/{}", esc(&c.name)),
                Some(data_class_json(c)),
                format!("data class `{}` was removed", c.name),
            );
        }
    }
}

fn data_class_json(c: &DataClass) -> Value {
    json!({"description": c.description, "sensitivity": c.sensitivity, "logs": c.logs})
}

fn access(d: &mut Diff, o: &Model, n: &Model) {
    let (oa, na) = (&o.access, &n.access);
    for t in missing(&oa.transports, &na.transports) {
        d.add(
            "transport-removed",
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
            "transport-added",
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
                        "auth-changed",
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
                "auth-changed",
                "/access/oauth".into(),
                opt(ob.as_ref()),
                opt(nb.as_ref()),
                message.into(),
            );
        }
    }
    if oa.origins != na.origins {
        d.add(
            "auth-changed",
            "/access/origins".into(),
            Some(to_json(&oa.origins)),
            Some(to_json(&na.origins)),
            "the allowed origins changed".into(),
        );
    }
    for s in &na.scopes {
        let pointer = format!("/access/scopes/{}", esc(&s.name));
        match oa.scopes.iter().find(|x| x.name == s.name) {
            None => d.add(
                "scope-added",
                pointer,
                None,
                Some(json!(s.description)),
                format!("scope `{}` was added", s.name),
            ),
            Some(old) => d.changed(
                "scope-changed",
                pointer,
                &old.description,
                &s.description,
                format!("the meaning of scope `{}` changed", s.name),
            ),
        }
    }
    for s in &oa.scopes {
        if !na.scopes.iter().any(|x| x.name == s.name) {
            d.removed(
                "scope-removed",
                format!("/access/scopes/{}", esc(&s.name)),
                Some(json!(s.description)),
                format!("scope `{}` was removed", s.name),
            );
        }
    }
}

fn downstreams(d: &mut Diff, o: &Model, n: &Model) {
    for ds in &n.downstreams {
        let name = &ds.name.original;
        let pointer = format!("/downstreams/{}", esc(name));
        let Some(old) = o.downstream(name) else {
            let hosts: Vec<String> = ds.egress.iter().map(ToString::to_string).collect();
            d.add(
                "downstream-added",
                pointer,
                None,
                Some(json!({"base_url": ds.base_url, "egress": hosts, "credentials": to_json(&ds.credentials)})),
                format!("downstream `{name}` was added, reaching {}", hosts.join(", ")),
            );
            continue;
        };
        d.changed(
            "downstream-changed",
            format!("{pointer}/base_url"),
            &old.base_url,
            &ds.base_url,
            format!("the base URL of downstream `{name}` changed"),
        );
        d.changed(
            "downstream-changed",
            format!("{pointer}/description"),
            &old.description,
            &ds.description,
            format!("the description of downstream `{name}` changed"),
        );
        for h in missing(&ds.egress, &old.egress) {
            d.add(
                "egress-host-added",
                format!("{pointer}/egress"),
                None,
                Some(json!(h.to_string())),
                format!("downstream `{name}` may now reach `{h}`"),
            );
        }
        for h in missing(&old.egress, &ds.egress) {
            d.add(
                "egress-host-removed",
                format!("{pointer}/egress"),
                Some(json!(h.to_string())),
                None,
                format!("downstream `{name}` no longer reaches `{h}`"),
            );
        }
        match (old.timeout, ds.timeout) {
            (Some(a), Some(b)) if a != b => {
                let rule = if b > a { "limit-loosened" } else { "limit-tightened" };
                d.add(
                    rule,
                    format!("{pointer}/timeout"),
                    Some(to_json(&crate::model::units::format_duration(a))),
                    Some(to_json(&crate::model::units::format_duration(b))),
                    format!("the timeout of downstream `{name}` changed"),
                );
            }
            (Some(a), None) => d.add(
                "limit-loosened",
                format!("{pointer}/timeout"),
                Some(to_json(&crate::model::units::format_duration(a))),
                None,
                format!("downstream `{name}` no longer sets its own timeout"),
            ),
            (None, Some(b)) => d.add(
                "limit-tightened",
                format!("{pointer}/timeout"),
                None,
                Some(to_json(&crate::model::units::format_duration(b))),
                format!("downstream `{name}` now sets its own timeout"),
            ),
            _ => {}
        }
        d.changed(
            "credentials-changed",
            format!("{pointer}/credentials"),
            &to_json(&old.credentials),
            &to_json(&ds.credentials),
            format!("the credentials for downstream `{name}` changed"),
        );
        if !same_set(&old.credential_scopes, &ds.credential_scopes) {
            d.add(
                "credentials-changed",
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
    for ds in &o.downstreams {
        let name = &ds.name.original;
        if n.downstream(name).is_none() {
            d.removed(
                "downstream-removed",
                format!("/downstreams/{}", esc(name)),
                Some(json!({"base_url": ds.base_url})),
                format!("downstream `{name}` was removed"),
            );
        }
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
fn limits(d: &mut Diff, base: &str, what: &str, o: &Limits, n: &Limits, defaults: Option<(&Limits, &Limits)>) {
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
            ("limit-loosened", "loosened")
        } else {
            ("limit-tightened", "tightened")
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

fn audit(d: &mut Diff, pointer: &str, what: &str, o: &Audit, n: &Audit) {
    let flags = [
        ("arguments", o.arguments, n.arguments),
        ("results", o.results, n.results),
    ];
    audit_flags(d, pointer, what, &flags);
    if o.retention != n.retention {
        let rule = if n.retention < o.retention {
            "audit-reduced"
        } else {
            "audit-increased"
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

fn audit_flags(d: &mut Diff, pointer: &str, what: &str, flags: &[(&str, bool, bool)]) {
    for (key, a, b) in flags {
        if a != b {
            let (rule, how) = if *b {
                ("audit-increased", "now")
            } else {
                ("audit-reduced", "no longer")
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

fn deploy(d: &mut Diff, o: &Model, n: &Model) {
    let (od, nd) = (&o.deploy, &n.deploy);
    d.changed(
        "deploy-changed",
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
                "deploy-resized",
                format!("/deploy/{key}"),
                Some(os[key].clone()),
                Some(ns[key].clone()),
                format!("the deployment's {key} changed"),
            );
        }
    }
}

fn suppressions(d: &mut Diff, what: &str, o: &[Suppression], n: &[Suppression], pointer: &str) {
    for s in n {
        if !o.iter().any(|x| x.rule == s.rule) {
            d.add(
                "suppression-added",
                s.pointer.clone(),
                None,
                Some(json!({"rule": s.rule, "reason": s.reason})),
                format!("{what} now suppresses production rule `{}`", s.rule),
            );
        }
    }
    for s in o {
        if !n.iter().any(|x| x.rule == s.rule) {
            d.add(
                "suppression-removed",
                pointer.to_owned(),
                Some(json!({"rule": s.rule, "reason": s.reason})),
                None,
                format!("{what} no longer suppresses production rule `{}`", s.rule),
            );
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

/// The SHA-256 a lock records for a prompt's text.
pub fn prompt_text_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    surface::hex(&Sha256::digest(text.as_bytes()))
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
        text_sha256: Some(prompt_text_hash(&p.text)),
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
pub(crate) fn compare_surfaces(d: &mut Diff, old: &[Item], new: &[Item], models: Option<(&Model, &Model)>) {
    for family in [Family::Tool, Family::Resource, Family::Prompt] {
        let olds: Vec<&Item> = old.iter().filter(|i| i.family == family).collect();
        let news: Vec<&Item> = new.iter().filter(|i| i.family == family).collect();
        let mut removed: Vec<&Item> = olds
            .iter()
            .copied()
            .filter(|o| !news.iter().any(|n| n.name == o.name))
            .collect();
        let mut added: Vec<&Item> = news
            .iter()
            .copied()
            .filter(|n| !olds.iter().any(|o| o.name == n.name))
            .collect();
        let mut pairs: Vec<(&Item, &Item)> = Vec::new();
        for n in &news {
            if let Some(o) = olds.iter().find(|o| o.name == n.name) {
                pairs.push((o, n));
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
                    Family::Tool => "tool-renamed",
                    Family::Resource => "resource-renamed",
                    Family::Prompt => "prompt-renamed",
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
                    Family::Tool => "tool-removed",
                    Family::Resource => "resource-removed",
                    Family::Prompt => "prompt-removed",
                },
                format!("/{section}/{}", esc(&o.name)),
                Some(o.def.clone()),
                format!("{noun} `{}` was removed; clients using it break", o.name),
            );
        }
        for n in added {
            d.add(
                match family {
                    Family::Tool => "tool-added",
                    Family::Resource => "resource-added",
                    Family::Prompt => "prompt-added",
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
fn compare_pair(d: &mut Diff, o: &Item, n: &Item, models: Option<(&Model, &Model)>) {
    let base = format!("/{}/{}", n.family.section(), esc(&n.name));
    let what = format!("{} `{}`", n.family.noun(), n.name);
    let (od, nd) = (&o.def, &n.def);
    let field = |v: &Value, k: &str| v.get(k).cloned();
    let text = |d: &mut Diff, rule: &'static str, key: &str, contract_key: &str, label: &str| {
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
    text(d, "title-changed", "title", "title", "the title");
    text(
        d,
        "description-changed",
        "description",
        "description",
        "the description (which the model reads)",
    );
    match n.family {
        Family::Tool => {
            if let (Some(a), Some(b)) = (od.get("inputSchema"), nd.get("inputSchema")) {
                super::schema::walk(d, a, b, true, &format!("{base}/input"), &what);
            }
            match (od.get("outputSchema"), nd.get("outputSchema")) {
                (Some(a), Some(b)) => super::schema::walk(d, a, b, false, &format!("{base}/output"), &what),
                (Some(a), None) => d.add(
                    "output-removed",
                    format!("{base}/output"),
                    Some(a.clone()),
                    None,
                    format!("{what}: the output schema was removed; clients reading structured output break"),
                ),
                (None, Some(b)) => d.add(
                    "output-added",
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
                    "annotations-changed",
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
                        "resource-uri-changed",
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
                    "resource-mime-type-changed",
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
                    "prompt-text-changed",
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

fn prompt_arguments(d: &mut Diff, base: &str, what: &str, od: &Value, nd: &Value) {
    let args = |v: &Value| -> Vec<Value> {
        v.get("arguments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (oa, na) = (args(od), args(nd));
    let name_of = |a: &Value| a.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let required = |a: &Value| a.get("required").and_then(Value::as_bool).unwrap_or(false);
    for a in &na {
        let name = name_of(a);
        let pointer = format!("{base}/arguments/{}", esc(&name));
        match oa.iter().find(|x| name_of(x) == name) {
            None if required(a) => d.add(
                "prompt-argument-required",
                pointer,
                None,
                Some(a.clone()),
                format!("{what}: new required argument `{name}`; clients that do not send it break"),
            ),
            None => d.add(
                "prompt-argument-added",
                pointer,
                None,
                Some(a.clone()),
                format!("{what}: new optional argument `{name}`"),
            ),
            Some(old) => {
                if required(old) != required(a) {
                    let (rule, how) = if required(a) {
                        ("prompt-argument-required", "is now required")
                    } else {
                        ("prompt-argument-optional", "is no longer required")
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
                        "description-changed",
                        format!("{pointer}/description"),
                        old.get("description").cloned(),
                        a.get("description").cloned(),
                        format!("{what}: the description of argument `{name}` changed"),
                    );
                }
            }
        }
    }
    for a in &oa {
        let name = name_of(a);
        if !na.iter().any(|x| name_of(x) == name) {
            d.removed(
                "prompt-argument-removed",
                format!("{base}/arguments/{}", esc(&name)),
                Some(a.clone()),
                format!("{what}: argument `{name}` was removed; clients that send it break"),
            );
        }
    }
}

fn tool_extras(d: &mut Diff, base: &str, what: &str, om: &Model, nm: &Model, a: &Tool, b: &Tool) {
    if a.effect != b.effect {
        let (rule, how) = if b.effect > a.effect {
            ("effect-escalated", "escalated")
        } else {
            ("effect-reduced", "reduced")
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
    scopes(d, "tool-scope-changed", base, what, &a.scopes, &b.scopes);
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

fn approval(d: &mut Diff, base: &str, what: &str, a: &Approval, b: &Approval) {
    if a == b {
        return;
    }
    let pointer = format!("{base}/approval");
    let (ra, rb) = (approval_rank(a), approval_rank(b));
    let (old, new) = (Some(to_json(a)), Some(to_json(b)));
    if rb < ra {
        let how = if rb == 0 { "was removed" } else { "was relaxed" };
        d.add(
            "approval-relaxed",
            pointer,
            old,
            new,
            format!("{what}: human approval {how}"),
        );
    } else if rb > ra {
        d.add(
            "approval-tightened",
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
                "approval-changed",
                format!("{pointer}/scope"),
                Some(json!(sa)),
                Some(json!(sb)),
                format!("{what}: approvers now need scope `{sb}` instead of `{sa}`"),
            );
        }
        if ea != eb {
            let (rule, how) = if eb > ea {
                ("approval-relaxed", "wait longer")
            } else {
                ("approval-tightened", "expire sooner")
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

fn scopes(d: &mut Diff, rule: &'static str, base: &str, what: &str, a: &[String], b: &[String]) {
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

fn data_class_use(d: &mut Diff, base: &str, what: &str, om: &Model, nm: &Model, a: Option<&str>, b: Option<&str>) {
    if a == b {
        return;
    }
    let rank = |m: &Model, c: Option<&str>| c.and_then(|c| m.data_class(c)).map(|c| sensitivity_rank(c.sensitivity));
    let (ra, rb) = (rank(om, a).unwrap_or(-1), rank(nm, b).unwrap_or(-1));
    let rule = match rb.cmp(&ra) {
        std::cmp::Ordering::Greater => "data-class-widened",
        std::cmp::Ordering::Less => "data-class-narrowed",
        std::cmp::Ordering::Equal => "data-class-changed",
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

fn downstream_use(d: &mut Diff, base: &str, what: &str, a: &[String], b: &[String]) {
    for ds in missing(b, a) {
        d.add(
            "tool-downstream-added",
            format!("{base}/downstreams"),
            None,
            Some(json!(ds)),
            format!("{what}: now calls downstream `{ds}`"),
        );
    }
    for ds in missing(a, b) {
        d.add(
            "tool-downstream-removed",
            format!("{base}/downstreams"),
            Some(json!(ds)),
            None,
            format!("{what}: no longer calls downstream `{ds}`"),
        );
    }
}

fn resource_extras(d: &mut Diff, base: &str, what: &str, om: &Model, nm: &Model, a: &Resource, b: &Resource) {
    scopes(d, "resource-scope-changed", base, what, &a.scopes, &b.scopes);
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
        (Some(x), Some(y)) => super::schema::walk(d, &x.value, &y.value, false, &format!("{base}/schema"), what),
        (None, None) => {}
        (x, y) => d.add(
            "output-schema-changed",
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
        for v in vb {
            if let Some(old) = va.iter().find(|x| x.name.original == v.name.original) {
                super::schema::walk(
                    d,
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

fn prompt_extras(d: &mut Diff, base: &str, what: &str, om: &Model, nm: &Model, a: &Prompt, b: &Prompt) {
    if a.version != b.version {
        d.add(
            "prompt-version-changed",
            format!("{base}/version"),
            Some(json!(a.version.to_string())),
            Some(json!(b.version.to_string())),
            format!("{what}: version {} -> {}", a.version, b.version),
        );
    }
    for r in missing(&b.resources, &a.resources) {
        d.add(
            "prompt-resource-added",
            format!("{base}/resources"),
            None,
            Some(json!(r)),
            format!("{what}: now relies on resource `{r}`"),
        );
    }
    for r in missing(&a.resources, &b.resources) {
        d.add(
            "prompt-resource-removed",
            format!("{base}/resources"),
            Some(json!(r)),
            None,
            format!("{what}: no longer relies on resource `{r}`"),
        );
    }
    scopes(d, "prompt-scope-changed", base, what, &a.scopes, &b.scopes);
    data_class_use(d, base, what, om, nm, a.data_class.as_deref(), b.data_class.as_deref());
    for arg in &b.arguments {
        if let Some(old) = a.arguments.iter().find(|x| x.name.original == arg.name.original)
            && old.max_length != arg.max_length
        {
            let (rule, how) = if arg.max_length < old.max_length {
                ("input-bounds-tightened", "tightened")
            } else {
                ("input-bounds-loosened", "loosened")
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
