//! The production rules and their checks.

use super::text;
use super::{Context, Findings, Rule};
use crate::contract::structure::escape;
use crate::diagnostic::{Place, Severity};
use crate::model::{
    Approval, Credentials, Effect, JsonType, Model, Redaction, ResourceTarget, SchemaNode, Sensitivity, Status,
    Transport,
};

macro_rules! rule {
    ($id:literal, $sev:ident, $check:ident, summary: $summary:literal, explain: $explain:literal $(, $flag:ident)*) => {
        Rule {
            id: $id,
            severity: Severity::$sev,
            summary: $summary,
            explain: $explain,
            check: $check,
            suppressible: !rule!(@has fixed $($flag)*),
            relaxed_when_experimental: rule!(@has relaxed $($flag)*),
        }
    };
    (@has fixed) => { false };
    (@has relaxed) => { false };
    (@has fixed fixed $($rest:ident)*) => { true };
    (@has relaxed relaxed $($rest:ident)*) => { true };
    (@has $want:ident $other:ident $($rest:ident)*) => { rule!(@has $want $($rest)*) };
}

pub static RULES: &[Rule] = &[
    rule!("owner-missing", Error, owner_missing,
        summary: "the server has no clear owner",
        explain: "Every production server needs a team that answers for its code, scopes, incidents and deprecation, and a way to reach it. Without one, incidents and stale scopes have no accountable team.\n\nFix: set `server.owner` with a real `team` and a `contact` (email address, chat channel or URL), and an `escalation` route for incidents.",
        relaxed),
    rule!("no-disable-path", Error, no_disable_path,
        summary: "the server has no disable path",
        explain: "A bad server must be turned off in minutes, not after teams agree who owns it. The disable path is a kill switch operators flip without a deploy.\n\nFix: set `server.retirement.disable` to an environment variable (`env: NAME`) and/or a file (`file: /path`); the generated server refuses calls while it is set.",
        relaxed),
    rule!("egress-cidrs-missing", Warning, egress_cidrs_missing,
        summary: "a host the server reaches has no addresses for the network policy",
        explain: "The generated NetworkPolicy opens egress only to the addresses listed under `deploy.egress_cidrs`, never to any address. A downstream or identity-provider host without CIDRs is blocked in a cluster that enforces NetworkPolicy, so its calls fail (and a missing identity provider fails every token check).\n\nFix: list the host's addresses under `deploy.egress_cidrs` (ask the host's owners for stable ranges), or deploy `deploy/network-policy-fqdn.yaml` on a CNI with FQDN policies (Cilium) instead of `deploy/network-policy.yaml`."),
    rule!("retirement-conditions-missing", Warning, retirement_conditions_missing,
        summary: "the contract does not say when the server should be retired",
        explain: "A reviewer approves a server for a purpose. Writing down when it should be disabled, replaced or narrowed (`server.retirement.when`) turns that purpose into something the next review can check.",
        relaxed),
    rule!("review-missing", Warning, review_missing,
        summary: "the contract has no next review date",
        explain: "Approval is not permanent. `server.review.next` sets the date by which the contract must be reviewed again; `charter check` fails once it has passed.",
        relaxed),
    rule!("review-overdue", Error, review_overdue,
        summary: "the contract's review date has passed",
        explain: "The contract was due for review and has not been reviewed since. Review it, then move `server.review.next` (and `review.last`) forward.\n\nThe date is compared with today's date (or `CHARTER_TODAY=YYYY-MM-DD`, for reproducible runs).",
        relaxed),
    rule!("token-passthrough", Error, token_passthrough,
        summary: "a downstream is called with the caller's own token",
        explain: "Forwarding the token a client presented to this server lets this server act with every right the user has anywhere that token is accepted, breaks audience binding and hides the server from downstream audit (the confused-deputy problem in the MCP security guidance). The server must use its own credentials, or exchange the caller's token for one issued for the downstream's audience.\n\nFix: use `service_token` or `client_credentials`. This rule cannot be suppressed.",
        fixed),
    rule!("understated-effect", Error, understated_effect,
        summary: "a tool declared `read` is bound to an HTTP method that changes state",
        explain: "Only `GET` and `HEAD` read. A tool bound to `POST`, `PUT`, `PATCH` or `DELETE` and declared `read` would be advertised to clients as read-only, skip the intent record and approval, and be retried on failure: the review would approve a change as a lookup.\n\nFix: declare the effect the operation has (`write`, with `approval`, or `draft` when it only creates something a person acts on). This rule cannot be suppressed.",
        fixed),
    rule!("broad-credentials", Error, broad_credentials,
        summary: "a downstream credential carries wildcard or administrative rights",
        explain: "The assistant inherits whatever the server's credential can do. A credential with `*`, `admin`, `all`, `root`, `owner` or `full` rights gives the workflow far more reach than it needs.\n\nFix: issue a credential with the narrowest rights the tools need and list them in `credentials.scopes`."),
    rule!("credential-scopes-missing", Warning, credential_scopes_missing,
        summary: "a downstream credential does not declare what it may do",
        explain: "Reviewers cannot judge a credential whose rights are unknown. List the permissions it carries in the downstream system under `credentials.scopes`, e.g. `pull_requests:read`."),
    rule!("wildcard-egress", Error, wildcard_egress,
        summary: "an egress host is a wildcard",
        explain: "Egress control only helps when it names hosts. A wildcard lets the server (or a request it is tricked into making) reach any host in a zone, including ones that did not exist when the contract was reviewed.\n\nFix: list each host the downstream needs."),
    rule!("egress-missing", Error, egress_missing,
        summary: "a downstream declares no egress hosts",
        explain: "The generated server allows outbound connections only to declared hosts. A downstream without `egress` could not be reached, or would need the allowlist opened by hand outside review.\n\nFix: list the downstream's hosts as `host` or `host:port` under `egress`."),
    rule!("egress-mismatch", Error, egress_mismatch,
        summary: "a downstream's base URL is not among its egress hosts",
        explain: "The base URL's host and port must be in the downstream's egress list, or the server could not reach its own downstream and someone will widen the allowlist by hand."),
    rule!("insecure-downstream", Error, insecure_downstream,
        summary: "a downstream is called over plain HTTP",
        explain: "Credentials and data would cross the network unencrypted. Use an `https` base URL (plain `http` is accepted for loopback addresses only)."),
    rule!("unbounded-discovery", Error, unbounded_discovery,
        summary: "the server exposes an open-ended set instead of a named one",
        explain: "A reviewer approves a named set of capabilities. An input that names an arbitrary URL, path, command, query language or operation to run, or a resource template whose variable accepts any string, lets the available action set grow under reviewers: the server becomes a proxy, not a product surface.\n\nFix: give such inputs an `enum`, or a `pattern` that admits only the intended values; split generic operations into named tools."),
    rule!("instruction-in-description", Error, instruction_in_description,
        summary: "a description reads like instructions to the model",
        explain: "Descriptions are sent to the model, which treats them as trusted. A description that addresses the assistant (\"always call this first\", \"ignore previous instructions\", \"do not tell the user\") is how a careless or compromised descriptor steers behaviour (tool poisoning).\n\nFix: describe what the capability does, its inputs and its limits, in the third person. Policy belongs in the server's code, not in its descriptions."),
    rule!("hidden-characters", Error, hidden_characters,
        summary: "text contains characters a reader cannot see",
        explain: "Zero-width characters, bidirectional overrides, Unicode tag characters, variation selectors and control characters make the text a model reads differ from what a reviewer sees. They have no place in a contract. This rule cannot be suppressed.\n\nFix: retype the marked text.",
        fixed),
    rule!("hidden-markup", Error, hidden_markup,
        summary: "text contains markup that hides content from readers",
        explain: "HTML comments, collapsed `<details>`, invisible styles and pseudo-tags such as `<IMPORTANT>` hide text from a person reading a rendered description while the model still reads it.\n\nFix: remove the markup; say plainly what the capability does."),
    rule!("secret-in-contract", Error, secret_in_contract,
        summary: "the contract contains what looks like a secret",
        explain: "Contracts are committed, reviewed and copied into generated crates; a secret in one is a leaked secret. Credentials come from the environment or mounted files at run time, named by reference (`{ env: NAME }` or `{ file: /path }`). This rule cannot be suppressed: rotate the secret and remove it.",
        fixed),
    rule!("no-argument-logging", Error, no_argument_logging,
        summary: "calls are not recorded with their arguments",
        explain: "Investigators need to reconstruct what the assistant attempted. Arguments are recorded redacted by the tool's data class (`full`, `hash`, `redact` or `omit`), so sensitive values stay out of logs without losing the record.\n\nFix: remove `audit.arguments: false`; choose a data class whose redaction fits instead."),
    rule!("write-without-approval", Error, write_without_approval,
        summary: "a state-changing tool runs without human approval",
        explain: "A tool whose effect is `write` changes durable state. A person must see the exact operation and approve it: `approval.mode: user` asks the calling user to confirm through the client, `approval.mode: reviewer` stores the operation until a second person holding the approval scope approves it.\n\nFix: add `approval`, or make the tool produce a draft (`effect: draft`) that a person acts on."),
    rule!("self-approval", Error, self_approval,
        summary: "the same scope both calls a tool and approves its operations",
        explain: "With reviewer approval, the approval scope must be one the callers do not hold by default. If the scope that calls the tool also approves it, the caller approves their own operation and the second pair of eyes is gone.\n\nFix: define a separate approval scope, e.g. `changes.approve`."),
    rule!("data-class-missing", Error, data_class_missing,
        summary: "a capability does not name the data class it handles",
        explain: "The data class decides how a capability's arguments and results are redacted in logs, and tells reviewers what data it exposes.\n\nFix: set `data_class` to one of the contract's `data_classes`.",
        relaxed),
    rule!("confidential-without-redaction", Error, confidential_without_redaction,
        summary: "confidential data is logged in full",
        explain: "A data class marked `confidential` or `restricted` is written to audit records as given, so the audit log becomes a second copy of the sensitive data with weaker access control.\n\nFix: set `logs` to `hash`, `redact` or `omit`."),
    rule!("open-input-schema", Error, open_input_schema,
        summary: "a tool's input accepts untyped or extra fields",
        explain: "Input validation only protects what the schema names. An object that allows additional properties, or a field with no type, passes anything the model produces straight to the handler.\n\nFix: type every field; leave objects closed (charter closes them unless `additionalProperties` says otherwise)."),
    rule!("unbounded-string", Warning, unbounded_string,
        summary: "a string input has no bound",
        explain: "A string field without `maxLength`, `enum`, `const`, `pattern` or `format` accepts megabytes of anything. Give it the smallest bound that fits real values."),
    rule!("unbounded-array", Warning, unbounded_array,
        summary: "a list input has no maximum length",
        explain: "A list without `maxItems` lets one call ask for unbounded work. Give it the largest count a real call needs."),
    rule!("vague-tool-name", Error, vague_tool_name,
        summary: "a state-changing tool has a vague name and a broad input",
        explain: "`update_account` is not reviewable; `draft_account_status_change` with a typed account id, proposed status and reason is. A state-changing tool named with a generic verb (update, manage, execute, run, process, handle, modify, set, apply, perform) must at least have a narrow input: every field typed and bounded, no open objects.\n\nFix: name the tool after the one change it makes, and narrow its input."),
    rule!("server-too-broad", Warning, server_too_broad,
        summary: "the server spans too many systems or capabilities to review in one sitting",
        explain: "The first production server should do one job with a known blast radius. More than 3 downstream systems or 12 capabilities usually means several workflows share one server; split it so each can be reviewed, scoped and retired on its own."),
    rule!("http-without-auth", Error, http_without_auth,
        summary: "the server is served over HTTP without authentication",
        explain: "Over HTTP anyone who can reach the port can call every tool. A `production` (or `deprecated`) server offered over `http` must authenticate callers as an OAuth 2.1 resource server: set `access.oauth` with the issuer and this server's audience. Preview servers get a warning."),
    rule!("scope-missing", Error, scope_missing,
        summary: "a capability served over HTTP requires no scope",
        explain: "Over HTTP every capability should require at least one scope, so that access can be granted per workflow and a token for one workflow cannot drive another.\n\nFix: add `scopes` naming one of `access.scopes`."),
    rule!("output-schema-missing", Warning, output_schema_missing,
        summary: "a tool has no output schema",
        explain: "Without an output schema the server cannot check results before they leave, and clients receive unstructured text. Declare `output` so results are validated and sent as structured content."),
    rule!("description-too-short", Warning, description_too_short,
        summary: "a description is too short to review",
        explain: "The description is what the model and the reviewer know about a capability. A few words rarely say what it does, what it returns and what it will not do."),
    rule!("unused-declaration", Warning, unused_declaration,
        summary: "a scope, data class or downstream is declared but never used",
        explain: "Unused declarations widen what the contract appears to grant and drift out of date. Remove them, or reference them where they belong."),
];

// ----- ownership and lifecycle -----

fn owner_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    match &m.server.owner {
        None => {
            f.add("owner-missing", "the server names no owner", Place::key("/server"))
                .help = Some("add `owner: { team: ..., contact: ..., escalation: ... }` under `server`".into());
        }
        Some(o) => {
            if text::is_placeholder(&o.team) {
                f.add(
                    "owner-missing",
                    format!("`{}` is not a team", o.team),
                    Place::value("/server/owner/team"),
                )
                .help = Some("name the team accountable for this server".into());
            }
            let contact = o.contact.as_str();
            let reachable =
                contact.contains('@') || contact.contains("://") || contact.starts_with('#') || contact.contains(':');
            if text::is_placeholder(contact) || !reachable {
                f.add(
                    "owner-missing",
                    format!("`{contact}` is not a way to reach the owner"),
                    Place::value("/server/owner/contact"),
                )
                .help = Some("give an email address, a chat channel (`#team` or `slack:team`) or a URL".into());
            }
        }
    }
}

fn no_disable_path(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    if m.server.retirement.disable.is_none() {
        f.add(
            "no-disable-path",
            "the server has no kill switch",
            Place::key("/server"),
        )
        .help = Some("add `retirement: { disable: { env: SERVER_DISABLED } }` under `server`".into());
    }
}

fn egress_cidrs_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    if !m.access.transports.contains(&Transport::Http) {
        return; // stdio servers are not deployed by the generated manifests
    }
    let missing: Vec<String> = m
        .network_hosts()
        .into_iter()
        .filter(|h| !m.deploy.egress_cidrs.contains_key(&h.host))
        .map(|h| format!("`{}` ({})", h.host, h.purpose))
        .collect();
    if !missing.is_empty() {
        f.add(
            "egress-cidrs-missing",
            format!(
                "the network policy blocks {}: no addresses are listed for {}",
                if missing.len() == 1 {
                    "a host the server reaches"
                } else {
                    "hosts the server reaches"
                },
                missing.join(", ")
            ),
            Place::key("/deploy"),
        )
        .help = Some(
            "list each host's addresses under `deploy.egress_cidrs`, e.g. `id.example.com: [203.0.113.0/24]`".into(),
        );
    }
}

fn retirement_conditions_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    if m.server.retirement.when.as_deref().is_none_or(|w| w.trim().is_empty()) {
        f.add(
            "retirement-conditions-missing",
            "the contract does not say when the server should be retired",
            Place::key("/server"),
        )
        .help = Some("add `retirement.when`: the condition under which it is disabled, replaced or narrowed".into());
    }
}

fn review_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    if m.server.review.is_none() {
        f.add(
            "review-missing",
            "the contract has no next review date",
            Place::key("/server"),
        )
        .help = Some("add `review: { next: YYYY-MM-DD }` under `server`".into());
    }
}

fn review_overdue(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    let Some(review) = &m.server.review else { return };
    let today = cx.today;
    if review.next < today {
        let d = f.add(
            "review-overdue",
            format!("the review was due on {} (today is {today})", review.next),
            Place::value("/server/review/next"),
        );
        d.help = Some("review the contract, then move `review.next` forward".into());
        if m.server.status != Status::Production {
            d.severity = Severity::Warning;
        }
    }
}

// ----- downstreams and credentials -----

fn token_passthrough(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for d in &m.downstreams {
        if matches!(d.credentials, Credentials::CallerToken) {
            f.add(
                "token-passthrough",
                format!("downstream `{}` would receive the caller's token", d.name.original),
                Place::key(format!("{}/credentials/caller_token", d.pointer)),
            )
            .help = Some(
                "use the server's own credential for the downstream (`client_credentials` or `service_token`)".into(),
            );
        }
    }
}

fn understated_effect(cx: &Context, f: &mut Findings) {
    for t in &cx.model.tools {
        if let Some(b) = &t.binding
            && t.effect == Effect::Read
            && !b.method.is_read()
        {
            f.add(
                "understated-effect",
                format!(
                    "tool `{}` is declared `read` but calls {} {}",
                    t.name.original, b.method, b.path
                ),
                Place::value(format!("{}/effect", t.pointer)),
            )
            .help = Some(format!(
                "declare `effect: write` with an `approval`, or `effect: draft` if {} only creates something a person reviews",
                b.method
            ));
        }
    }
}

const BROAD_WORDS: &[&str] = &[
    "*",
    "admin",
    "administrator",
    "all",
    "root",
    "owner",
    "full",
    "superuser",
    "sudo",
];

fn broad_credentials(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for d in &m.downstreams {
        for (i, scope) in d.credential_scopes.iter().enumerate() {
            let lower = scope.to_lowercase();
            let broad = lower.contains('*')
                || lower
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| BROAD_WORDS.contains(&w));
            if broad {
                f.add(
                    "broad-credentials",
                    format!("downstream `{}` uses a credential with `{scope}`", d.name.original),
                    Place::value(format!("{}/credentials/scopes/{i}", d.pointer)),
                )
                .help = Some("issue a credential with only the rights the tools need".into());
            }
        }
    }
}

fn credential_scopes_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for d in &m.downstreams {
        let has_credential = !matches!(d.credentials, Credentials::None | Credentials::CallerToken);
        if has_credential && d.credential_scopes.is_empty() {
            f.add(
                "credential-scopes-missing",
                format!("the credential for `{}` does not say what it may do", d.name.original),
                Place::key(format!("{}/credentials", d.pointer)),
            )
            .help = Some("list its permissions under `credentials.scopes`".into());
        }
    }
}

fn wildcard_egress(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for d in &m.downstreams {
        for (i, host) in d.egress.iter().enumerate() {
            if host.host.contains('*') {
                f.add(
                    "wildcard-egress",
                    format!("`{host}` lets `{}` reach any matching host", d.name.original),
                    Place::value(format!("{}/egress/{i}", d.pointer)),
                )
                .help = Some("list each host by name".into());
            }
        }
    }
}

fn egress_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for d in &m.downstreams {
        if d.egress.is_empty() {
            f.add(
                "egress-missing",
                format!("downstream `{}` declares no egress hosts", d.name.original),
                Place::key(&d.pointer),
            )
            .help = Some("add `egress: [host:port]`".into());
        }
    }
}

fn egress_mismatch(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for d in &m.downstreams {
        let Ok(url) = url::Url::parse(&d.base_url) else {
            continue;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        let host = host.to_ascii_lowercase();
        if !d.egress.is_empty() && !d.egress.iter().any(|e| e.host == host && e.port == port) {
            f.add(
                "egress-mismatch",
                format!(
                    "`{host}:{port}` (from the base URL) is not in `{}`'s egress list",
                    d.name.original
                ),
                Place::value(format!("{}/base_url", d.pointer)),
            )
            .help = Some(format!("add `{host}:{port}` to `egress`"));
        }
    }
}

fn insecure_downstream(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for d in &m.downstreams {
        if let Ok(url) = url::Url::parse(&d.base_url)
            && url.scheme() == "http"
            && !crate::model::is_loopback(&url)
        {
            f.add(
                "insecure-downstream",
                format!("downstream `{}` is called over plain http", d.name.original),
                Place::value(format!("{}/base_url", d.pointer)),
            )
            .help = Some("use an https base URL".into());
        }
    }
}

// ----- the capability surface -----

/// Input fields whose names say they select an arbitrary target.
const GENERIC_TARGETS: &[&str] = &[
    "url",
    "uri",
    "endpoint",
    "path",
    "file",
    "filename",
    "command",
    "cmd",
    "shell",
    "script",
    "sql",
    "statement",
    "operation",
    "method",
    "tool",
    "tool_name",
    "function",
    "action",
    "expression",
    "code",
    "host",
    "hostname",
];

fn unbounded_discovery(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for t in &m.tools {
        for (name, schema) in t.input.tree.root.properties() {
            let lower = name.to_lowercase();
            if GENERIC_TARGETS.contains(&lower.as_str()) && is_open_string(schema) {
                f.add(
                    "unbounded-discovery",
                    format!("tool `{}` takes any `{name}` the model chooses", t.name.original),
                    Place::key(format!("{}/properties/{}", t.input.pointer, escape(name))),
                )
                .help = Some(
                    "give it an `enum` or an anchored `pattern` admitting only the intended targets, or split the tool"
                        .into(),
                );
            }
        }
    }
    for r in &m.resources {
        if let ResourceTarget::Template { variables, .. } = &r.target {
            for v in variables {
                if is_open_string(&v.schema.tree.root) {
                    f.add("unbounded-discovery", format!("resource `{}` serves any `{}`", r.name.original, v.name.original), Place::value(&v.schema.pointer))
                        .help = Some("constrain the variable with a `pattern`, `enum` or `format` so only intended resources are served".into());
                }
            }
        }
    }
}

/// A string schema that admits any string: no enum, const, pattern or format.
fn is_open_string(schema: &SchemaNode) -> bool {
    schema.is_only(JsonType::String)
        && schema.values.is_none()
        && schema.constant.is_none()
        && schema.pattern.is_none()
        && schema
            .format
            .as_deref()
            .is_none_or(|f| matches!(f, "uri" | "uri-reference" | "iri" | "hostname"))
}

/// Every text the model reads about the server, with where it is.
pub(super) fn model_visible_texts(m: &Model) -> Vec<(String, &str)> {
    let mut out: Vec<(String, &str)> = vec![("/server/description".into(), m.server.description.as_str())];
    if let Some(title) = &m.server.title {
        out.push(("/server/title".into(), title));
    }
    for t in &m.tools {
        out.push((format!("{}/description", t.pointer), &t.description));
        if let Some(title) = &t.title {
            out.push((format!("{}/title", t.pointer), title));
        }
        collect_schema_texts(&t.input.tree.root, &t.input.pointer, &mut out);
        if let Some(o) = &t.output {
            collect_schema_texts(&o.tree.root, &o.pointer, &mut out);
        }
    }
    for r in &m.resources {
        out.push((format!("{}/description", r.pointer), &r.description));
        if let Some(title) = &r.title {
            out.push((format!("{}/title", r.pointer), title));
        }
    }
    for p in &m.prompts {
        out.push((format!("{}/description", p.pointer), &p.description));
        if let Some(title) = &p.title {
            out.push((format!("{}/title", p.pointer), title));
        }
        for a in &p.arguments {
            out.push((
                format!("{}/arguments/{}/description", p.pointer, escape(&a.name.original)),
                &a.description,
            ));
        }
    }
    out
}

fn collect_schema_texts<'a>(schema: &'a SchemaNode, pointer: &str, out: &mut Vec<(String, &'a str)>) {
    schema.walk(pointer, &mut |node: &'a SchemaNode, at: &str| {
        for (key, text) in [("description", &node.description), ("title", &node.title)] {
            if let Some(text) = text {
                out.push((format!("{at}/{key}"), text));
            }
        }
    });
}

/// Every text in the contract that a person or the model reads, for hidden-content rules.
pub(super) fn all_texts(m: &Model) -> Vec<(String, &str)> {
    let mut out = model_visible_texts(m);
    for p in &m.prompts {
        out.push((format!("{}/text", p.pointer), &p.text));
    }
    for s in &m.access.scopes {
        out.push((s.pointer.clone(), &s.description));
    }
    for d in &m.downstreams {
        out.push((format!("{}/description", d.pointer), &d.description));
        out.push((format!("{}/base_url", d.pointer), &d.base_url));
    }
    for c in &m.data_classes {
        out.push((format!("{}/description", c.pointer), &c.description));
    }
    if let Some(o) = &m.server.owner {
        out.push(("/server/owner/team".into(), &o.team));
        out.push(("/server/owner/contact".into(), &o.contact));
    }
    for (field, value) in [
        ("when", &m.server.retirement.when),
        ("replacement", &m.server.retirement.replacement),
    ] {
        if let Some(v) = value {
            out.push((format!("/server/retirement/{field}"), v));
        }
    }
    out
}

fn instruction_in_description(cx: &Context, f: &mut Findings) {
    for (pointer, text) in &cx.visible_texts {
        if let Some((phrase, why)) = text::instruction(text) {
            f.add(
                "instruction-in-description",
                format!("\"{phrase}\" {why}"),
                Place::value(pointer.as_str()).within(phrase.as_str()),
            )
            .help = Some("describe what the capability does, in the third person; enforce policy in code".into());
        }
    }
}

fn hidden_characters(cx: &Context, f: &mut Findings) {
    // The whole text, comments and keys included: nothing invisible belongs anywhere in a contract.
    let text = cx.source.text.as_str();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some((i, c, name)) = line
            .char_indices()
            .find_map(|(i, c)| text::hidden_name(c).map(|n| (i, c, n)))
        {
            let start = offset + i;
            let d = f.add(
                "hidden-characters",
                format!("U+{:04X} {name} is hidden in this line", c as u32),
                Place::default(),
            );
            d.span = Some(cx.source.span_of(start, start + c.len_utf8()));
            d.label = Some(format!("U+{:04X} is here", c as u32));
            d.help = Some("retype the line without invisible characters".into());
        }
        offset += line.len();
    }
}

fn hidden_markup(cx: &Context, f: &mut Findings) {
    for (pointer, text) in &cx.all_texts {
        if text::hiding_markup(text) {
            f.add(
                "hidden-markup",
                "this text contains markup that hides content from readers",
                Place::value(pointer),
            )
            .help = Some("remove comments, collapsed sections, invisible styles and pseudo-tags".into());
        }
    }
}

fn secret_in_contract(cx: &Context, f: &mut Findings) {
    // The whole text, comments included: a secret in a comment is leaked all the same.
    let text = cx.source.text.as_str();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some((range, what)) = text::secret_at(line) {
            let d = f.add(
                "secret-in-contract",
                format!("this looks like {what}"),
                Place::default(),
            );
            d.span = Some(cx.source.span_of(offset + range.start, offset + range.end));
            d.help =
                Some("rotate it now, remove it, and refer to secrets as `{ env: NAME }` or `{ file: /path }`".into());
        }
        offset += line.len();
    }
}

fn no_argument_logging(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    if !m.audit.arguments {
        f.add(
            "no-argument-logging",
            "calls are recorded without their arguments",
            Place::value("/audit/arguments"),
        )
        .help = Some("record arguments; the data class's redaction keeps sensitive values out".into());
        return;
    }
    for t in &m.tools {
        if !t.audit.arguments {
            f.add(
                "no-argument-logging",
                format!("calls to `{}` are recorded without their arguments", t.name.original),
                Place::value(format!("{}/audit/arguments", t.pointer)),
            )
            .help = Some(
                "record arguments; choose a data class with `logs: hash`, `redact` or `omit` for sensitive ones".into(),
            );
        }
    }
}

fn write_without_approval(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for t in &m.tools {
        if t.effect == Effect::Write && t.approval == Approval::None {
            f.add(
                "write-without-approval",
                format!("`{}` changes state with no human approval", t.name.original),
                Place::value(format!("{}/effect", t.pointer)),
            )
            .help = Some(
                "add `approval: { mode: user }` or `approval: { mode: reviewer, scope: ... }`, or make it a draft"
                    .into(),
            );
        }
    }
}

fn self_approval(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for t in &m.tools {
        if let Approval::Reviewer { scope, .. } = &t.approval
            && t.scopes.contains(scope)
        {
            f.add(
                "self-approval",
                format!("`{scope}` both calls `{}` and approves its operations", t.name.original),
                Place::value(format!("{}/approval/scope", t.pointer)),
            )
            .help = Some("use an approval scope that callers do not hold".into());
        }
    }
}

fn data_class_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    let items = m
        .tools
        .iter()
        .map(|t| ("tool", &t.name.original, &t.data_class, &t.pointer))
        .chain(
            m.resources
                .iter()
                .map(|r| ("resource", &r.name.original, &r.data_class, &r.pointer)),
        );
    for (kind, name, class, pointer) in items {
        if class.is_none() {
            f.add(
                "data-class-missing",
                format!("{kind} `{name}` does not name its data class"),
                Place::key(pointer),
            )
            .help = Some("add `data_class:` naming one of `data_classes`".into());
        }
    }
}

fn confidential_without_redaction(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for c in &m.data_classes {
        if c.sensitivity >= Sensitivity::Confidential && c.logs == Redaction::Full {
            f.add(
                "confidential-without-redaction",
                format!("data class `{}` is {:?} but logged in full", c.name, c.sensitivity).to_lowercase(),
                Place::value(format!("{}/logs", c.pointer)),
            )
            .help = Some("set `logs: hash`, `redact` or `omit`".into());
        }
    }
}

fn open_input_schema(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for t in &m.tools {
        let name = &t.name.original;
        t.input
            .tree
            .root
            .walk(&t.input.pointer, &mut |node: &SchemaNode, at: &str| {
                if node.object {
                    let open = match node.additional() {
                        Some(additional) => additional.boolean != Some(false),
                        None => {
                            node.has_keyword("patternProperties")
                                || node
                                    .subschema("unevaluatedProperties")
                                    .is_some_and(|u| u.boolean != Some(false))
                        }
                    };
                    if open {
                        f.add(
                            "open-input-schema",
                            format!("an object in `{name}`'s input accepts extra properties"),
                            // Point at the keyword that opens it.
                            match ["additionalProperties", "patternProperties", "unevaluatedProperties"]
                                .into_iter()
                                .find(|k| node.has_keyword(k))
                            {
                                Some(k) => Place::key(format!("{at}/{k}")),
                                None => Place::value(at),
                            },
                        )
                        .help = Some("name every property under `properties` and remove `additionalProperties`".into());
                    }
                }
                for (prop, schema) in node.properties() {
                    if (schema.has_keywords() && is_untyped(schema)) || schema.boolean == Some(true) {
                        f.add(
                            "open-input-schema",
                            format!("`{prop}` in `{name}`'s input has no type"),
                            Place::value(format!("{at}/properties/{}", escape(prop))),
                        )
                        .help = Some("give it a `type` (and bounds), an `enum`, a `const` or a `$ref`".into());
                    }
                }
            });
    }
}

/// A schema that says nothing about what its value is.
fn is_untyped(schema: &SchemaNode) -> bool {
    schema.types.is_none()
        && schema.values.is_none()
        && schema.constant.is_none()
        && schema.reference.is_none()
        && !schema
            .subschemas
            .iter()
            .any(|s| matches!(s.keyword, "anyOf" | "oneOf" | "allOf" | "not"))
}

fn unbounded_string(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for t in &m.tools {
        let name = &t.name.original;
        t.input
            .tree
            .root
            .walk(&t.input.pointer, &mut |node: &SchemaNode, at: &str| {
                let bounded = node.bounds.max_length.is_some()
                    || node.values.is_some()
                    || node.constant.is_some()
                    || node.pattern.is_some()
                    || node.format.is_some();
                if node.admits(JsonType::String) && !bounded {
                    f.add(
                        "unbounded-string",
                        format!("a string in `{name}`'s input has no bound"),
                        Place::value(at),
                    )
                    .help = Some("add `maxLength`, or an `enum`, `pattern` or `format`".into());
                }
            });
    }
}

fn unbounded_array(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for t in &m.tools {
        let name = &t.name.original;
        t.input
            .tree
            .root
            .walk(&t.input.pointer, &mut |node: &SchemaNode, at: &str| {
                if node.is_only(JsonType::Array) && node.bounds.max_items.is_none() {
                    f.add(
                        "unbounded-array",
                        format!("a list in `{name}`'s input has no `maxItems`"),
                        Place::value(at),
                    )
                    .help = Some("add `maxItems`".into());
                }
            });
    }
}

const VAGUE_VERBS: &[&str] = &[
    "update", "manage", "execute", "exec", "run", "do", "process", "handle", "modify", "change", "admin", "perform",
    "invoke", "apply", "set", "edit", "operate", "mutate", "control",
];

fn vague_tool_name(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for t in &m.tools {
        if t.effect == Effect::Read {
            continue;
        }
        let first = t.name.snake.split('_').next().unwrap_or_default();
        if VAGUE_VERBS.contains(&first) && !is_narrow(&t.input.tree.root) {
            f.add("vague-tool-name", format!("`{}` changes state, has a generic name and a broad input", t.name.original), Place::key(&t.pointer))
                .help = Some("name the one change it makes (e.g. `draft_account_status_change`) and type and bound every input field".into());
        }
    }
}

/// Every field typed and bounded, and no open objects.
fn is_narrow(schema: &SchemaNode) -> bool {
    let mut narrow = schema.properties().next().is_some();
    schema.walk("", &mut |node: &SchemaNode, _| {
        if node.object && !node.is_closed() {
            narrow = false;
        }
        for (_, property) in node.properties() {
            let open_string =
                property.is_only(JsonType::String) && is_open_string(property) && property.bounds.max_length.is_none();
            if !property.has_keywords() || is_untyped(property) || open_string {
                narrow = false;
            }
        }
    });
    narrow
}

fn server_too_broad(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    let capabilities = m.tools.len() + m.resources.len() + m.prompts.len();
    if m.downstreams.len() > 3 {
        f.add(
            "server-too-broad",
            format!("the server calls {} downstream systems", m.downstreams.len()),
            Place::key("/downstreams"),
        )
        .help = Some("split it into servers that each do one job with one or two systems".into());
    }
    if capabilities > 12 {
        f.add(
            "server-too-broad",
            format!("the server exposes {capabilities} tools, resources and prompts"),
            Place::key("/tools"),
        )
        .help = Some("split it into servers a reviewer can understand in one sitting".into());
    }
}

fn http_without_auth(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    if m.access.transports.contains(&Transport::Http) && m.access.oauth.is_none() && m.server.status >= Status::Preview
    {
        let d = f.add(
            "http-without-auth",
            "the server is offered over http without authentication",
            Place::key("/access"),
        );
        d.help = Some("add `oauth: { issuer: ..., audience: ... }` under `access`, or offer only `stdio`".into());
        if m.server.status == Status::Preview {
            d.severity = Severity::Warning;
        }
    }
}

fn scope_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    if !m.access.transports.contains(&Transport::Http) {
        return;
    }
    let items = m
        .tools
        .iter()
        .map(|t| ("tool", &t.name.original, &t.scopes, &t.pointer))
        .chain(
            m.resources
                .iter()
                .map(|r| ("resource", &r.name.original, &r.scopes, &r.pointer)),
        )
        .chain(
            m.prompts
                .iter()
                .map(|p| ("prompt", &p.name.original, &p.scopes, &p.pointer)),
        );
    for (kind, name, scopes, pointer) in items {
        if scopes.is_empty() {
            f.add(
                "scope-missing",
                format!("{kind} `{name}` requires no scope"),
                Place::key(pointer),
            )
            .help = Some("add `scopes:` naming one of `access.scopes`".into());
        }
    }
}

fn output_schema_missing(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    for t in &m.tools {
        if t.output.is_none() {
            f.add(
                "output-schema-missing",
                format!("tool `{}` has no output schema", t.name.original),
                Place::key(&t.pointer),
            )
            .help = Some("add `output:` describing the structured result".into());
        }
    }
}

fn description_too_short(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    let items = std::iter::once(("/server/description".to_string(), m.server.description.as_str()))
        .chain(
            m.tools
                .iter()
                .map(|t| (format!("{}/description", t.pointer), t.description.as_str())),
        )
        .chain(
            m.resources
                .iter()
                .map(|r| (format!("{}/description", r.pointer), r.description.as_str())),
        )
        .chain(
            m.prompts
                .iter()
                .map(|p| (format!("{}/description", p.pointer), p.description.as_str())),
        );
    for (pointer, text) in items {
        if text.split_whitespace().count() < 4 {
            f.add(
                "description-too-short",
                format!("\"{text}\" does not say enough to review"),
                Place::value(pointer),
            )
            .help = Some("say what it does, what it returns and what it will not do".into());
        }
    }
}

fn unused_declaration(cx: &Context, f: &mut Findings) {
    let m = cx.model;
    let scope_used = |s: &str| {
        m.tools.iter().any(|t| {
            t.scopes.iter().any(|x| x == s) || matches!(&t.approval, Approval::Reviewer { scope, .. } if scope == s)
        }) || m.resources.iter().any(|r| r.scopes.iter().any(|x| x == s))
            || m.prompts.iter().any(|p| p.scopes.iter().any(|x| x == s))
    };
    for s in &m.access.scopes {
        if !scope_used(&s.name) {
            f.add(
                "unused-declaration",
                format!("scope `{}` is not required by anything", s.name),
                Place::key(&s.pointer),
            );
        }
    }
    for c in &m.data_classes {
        let used = m.tools.iter().any(|t| t.data_class.as_deref() == Some(&c.name))
            || m.resources.iter().any(|r| r.data_class.as_deref() == Some(&c.name))
            || m.prompts.iter().any(|p| p.data_class.as_deref() == Some(&c.name));
        if !used {
            f.add(
                "unused-declaration",
                format!("data class `{}` is not used", c.name),
                Place::key(&c.pointer),
            );
        }
    }
    for d in &m.downstreams {
        let used = m.tools.iter().any(|t| t.downstreams.contains(&d.name.original))
            || m.resources.iter().any(|r| r.downstreams.contains(&d.name.original));
        if !used {
            f.add(
                "unused-declaration",
                format!("downstream `{}` is not called by any tool or resource", d.name.original),
                Place::key(&d.pointer),
            );
        }
    }
}
