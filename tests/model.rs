//! The model and the rules on small contracts written here: effects to
//! annotations, closed schemas, shared definitions, suppressions and the
//! experimental downgrade, and no panic on mangled input.

mod common;

use charter::check::{Checked, Outcome, check_text};
use charter::diagnostic::Severity;
use common::today;

const BASE: &str = r##"charter: 1
server:
  name: demo
  version: 1.0.0
  description: Looks up the status of one order for a support agent.
  owner: { team: orders, contact: orders@example.com, escalation: "pagerduty:orders" }
  status: STATUS
  review: { next: 2027-05-01 }
  retirement: { disable: { env: DEMO_DISABLED }, when: The order system serves this directly. }
data_classes:
  internal: { description: Order numbers and statuses., sensitivity: internal, logs: full }
access:
  transports: [stdio]
  scopes:
    orders.read: Read order status.
    orders.write: Change orders.
    orders.approve: Approve order changes.
$defs:
  OrderNumber: { type: string, pattern: "^[A-Z]{2}-[0-9]{6}$" }
tools:
TOOLS
"##;

fn contract(status: &str, tools: &str) -> String {
    BASE.replace("STATUS", status).replace("TOOLS", tools)
}

fn check(text: String) -> Checked {
    check_text("test.yaml", text, today())
}

const READ_TOOL: &str = r##"  get_order:
    description: The status of one order, by its order number.
    effect: read
    scopes: [orders.read]
    data_class: internal
    input:
      type: object
      required: [order]
      properties:
        order: { $ref: "#/$defs/OrderNumber" }
        filter:
          type: object
          properties: { status: { type: string, enum: [open, closed] } }
    output:
      type: object
      properties: { status: { type: string, maxLength: 20 } }
    handler: rust
"##;

#[test]
fn effects_become_annotations() {
    let write = r##"  cancel_order:
    description: Cancels one open order by its order number, after approval.
    effect: write
    scopes: [orders.write]
    data_class: internal
    approval: { mode: reviewer, scope: orders.approve }
    input: { type: object, required: [order], properties: { order: { $ref: "#/$defs/OrderNumber" } } }
    output: { type: object, properties: { cancelled: { type: boolean } } }
    handler: rust
  hold_order:
    description: Puts one order on hold; the hold can be lifted again.
    effect: write
    reversible: true
    scopes: [orders.write]
    data_class: internal
    approval: { mode: user }
    input: { type: object, required: [order], properties: { order: { $ref: "#/$defs/OrderNumber" } } }
    output: { type: object, properties: { held: { type: boolean } } }
    handler: rust
"##;
    let checked = check(contract("production", &format!("{READ_TOOL}{write}")));
    assert_eq!(checked.outcome, Outcome::Passed, "{:#?}", checked.diagnostics);
    let model = checked.model.unwrap();
    let a = |name: &str| model.tool(name).unwrap().annotations;
    assert!(a("get_order").read_only_hint && !a("get_order").destructive_hint && a("get_order").idempotent_hint);
    assert!(
        !a("cancel_order").read_only_hint && a("cancel_order").destructive_hint && !a("cancel_order").idempotent_hint
    );
    assert!(
        !a("hold_order").destructive_hint,
        "reversible writes are not destructive"
    );
    assert!(!a("get_order").open_world_hint, "no downstream, closed world");
}

#[test]
fn schemas_are_closed_and_self_contained() {
    let checked = check(contract("production", READ_TOOL));
    let model = checked.model.expect("lowers");
    let input = &model.tool("get_order").unwrap().input.value;
    assert_eq!(input["additionalProperties"], false);
    assert_eq!(
        input["properties"]["filter"]["additionalProperties"], false,
        "nested objects are closed too"
    );
    assert_eq!(
        input["$defs"]["OrderNumber"]["pattern"], "^[A-Z]{2}-[0-9]{6}$",
        "shared definitions are copied in"
    );
    let validator = jsonschema::draft202012::new(input).unwrap();
    assert!(validator.is_valid(&serde_json::json!({ "order": "AB-123456" })));
    assert!(!validator.is_valid(&serde_json::json!({ "order": "AB-123456", "extra": 1 })));
    assert!(!validator.is_valid(&serde_json::json!({ "order": "nope" })));
}

#[test]
fn suppression_needs_a_reason_and_shows_in_reports() {
    let tool = READ_TOOL.replace(
        "    handler: rust\n",
        "    handler: rust\n    suppress:\n      - rule: unbounded-string\n        reason: The status filter is an enum; the free text field is capped by the request size limit.\n",
    )
    .replace("filter:\n          type: object\n          properties: { status: { type: string, enum: [open, closed] } }", "note: { type: string }");
    let checked = check(contract("production", &tool));
    assert_eq!(checked.outcome, Outcome::Passed);
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.id == "unbounded-string")
        .expect("still reported");
    assert!(
        d.suppressed
            .as_deref()
            .is_some_and(|r| r.starts_with("The status filter"))
    );
    let rendered = checked.source.render(&checked.diagnostics, false);
    assert!(
        rendered.contains("suppressed: a string in `get_order`'s input has no bound"),
        "{rendered}"
    );
    assert!(rendered.contains("reason given: The status filter"), "{rendered}");

    let lazy = tool.replace(
        "reason: The status filter is an enum; the free text field is capped by the request size limit.",
        "reason: ok",
    );
    let checked = check(contract("production", &lazy));
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.id == "suppression-without-reason" && d.is_failing())
    );
}

#[test]
fn unused_suppressions_are_reported() {
    let tool = READ_TOOL.replace("    handler: rust\n", "    handler: rust\n    suppress: [{ rule: open-input-schema, reason: Kept from an older version of the tool. }]\n");
    let checked = check(contract("production", &tool));
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.id == "unused-suppression" && d.severity == Severity::Warning)
    );
}

#[test]
fn experimental_servers_get_warnings_for_process_rules() {
    let no_owner = |status: &str| {
        contract(status, READ_TOOL).replace(
            "  owner: { team: orders, contact: orders@example.com, escalation: \"pagerduty:orders\" }\n",
            "",
        )
    };
    let production = check(no_owner("production"));
    assert_eq!(production.outcome, Outcome::Failed);
    let experimental = check(no_owner("experimental"));
    assert_eq!(experimental.outcome, Outcome::Passed);
    assert!(
        experimental
            .diagnostics
            .iter()
            .any(|d| d.id == "owner-missing" && d.severity == Severity::Warning)
    );
}

#[test]
fn every_error_of_a_stage_is_reported_at_once() {
    let text = contract("production", READ_TOOL)
        .replace("effect: read", "efect: read")
        .replace(
            "description: The status of one order",
            "descripton: The status of one order",
        )
        .replace("transports: [stdio]", "transports: stdio");
    let checked = check(text);
    let ids: Vec<&str> = checked.diagnostics.iter().map(|d| d.id).collect();
    assert_eq!(checked.outcome, Outcome::Unreadable);
    assert!(ids.iter().filter(|id| **id == "unknown-field").count() == 2, "{ids:?}");
    assert!(ids.contains(&"wrong-type") && ids.contains(&"missing-field"), "{ids:?}");
}

#[test]
fn review_dates_are_measured_against_the_given_day() {
    let text = contract("production", READ_TOOL);
    let late = check_text("t.yaml", text.clone(), "2027-06-01".parse().unwrap());
    assert!(
        late.diagnostics
            .iter()
            .any(|d| d.id == "review-overdue" && d.is_failing())
    );
    let early = check_text("t.yaml", text, "2027-04-30".parse().unwrap());
    assert!(!early.diagnostics.iter().any(|d| d.id == "review-overdue"));
}

#[test]
fn rust_names_collide_loudly() {
    let tools = format!("{READ_TOOL}{}", READ_TOOL.replace("  get_order:", "  get-order:"));
    let checked = check(contract("production", &tools));
    assert!(checked.diagnostics.iter().any(|d| d.id == "name-collision"));
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

#[test]
fn mangled_contracts_never_panic() {
    let mut texts: Vec<String> = common::yaml_files("specs")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.push(contract("production", READ_TOOL));
    let mut rng = Lcg(0x5eed);
    let noise: &[&str] = &[
        "\n",
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "&a ",
        "*a",
        "!!binary ",
        "\t",
        "#",
        "\u{200B}",
        "~",
        "null",
        "<<: *a\n",
        "%YAML 1.2\n---\n",
        "? ",
    ];
    for text in &texts {
        let bytes = text.as_bytes();
        // Every truncation on a grid, then random insertions and deletions.
        for cut in (0..bytes.len()).step_by(37) {
            let _ = check(String::from_utf8_lossy(&bytes[..cut]).into_owned());
        }
        for _ in 0..300 {
            let mut mangled = text.clone();
            for _ in 0..1 + rng.next() % 4 {
                let mut at = rng.next() % (mangled.len() + 1);
                while !mangled.is_char_boundary(at) {
                    at -= 1;
                }
                if rng.next().is_multiple_of(2) {
                    mangled.insert_str(at, noise[rng.next() % noise.len()]);
                } else {
                    let mut end = (at + 1 + rng.next() % 20).min(mangled.len());
                    while !mangled.is_char_boundary(end) {
                        end += 1;
                    }
                    mangled.replace_range(at..end, "");
                }
            }
            let checked = check(mangled);
            for d in &checked.diagnostics {
                assert!(d.span.is_some() || checked.source.root.is_none(), "unlocated: {d:?}");
            }
        }
    }
}

#[test]
fn alias_bombs_are_refused_not_expanded() {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for name in 'b'..='k' {
        text.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        prev = name;
    }
    let checked = check(text);
    assert_eq!(checked.outcome, Outcome::Unreadable);
    let d = &checked.diagnostics[0];
    assert_eq!(d.id, "yaml-syntax");
    assert!(d.message.contains("expands too far through aliases"), "{}", d.message);
}

/// A contract with one downstream and one tool bound to it; `BINDING` and `INPUT` vary per case.
fn bound(input: &str, binding: &str) -> String {
    let tool = format!(
        r##"  get_order:
    description: The status of one order, by its order number.
    effect: read
    scopes: [orders.read]
    data_class: internal
    input:
{input}
    output:
      type: object
      properties:
        status: {{ type: string, maxLength: 20 }}
        lines: {{ type: array, maxItems: 5, items: {{ type: string, maxLength: 20 }} }}
    binding:
{binding}
"##
    );
    contract("production", &tool).replace(
        "$defs:",
        "downstreams:\n  orders:\n    description: The order service's REST API.\n    base_url: https://orders.example.com/api\n    egress: [orders.example.com:443]\n    credentials: { service_token: { env: ORDERS_TOKEN }, scopes: [orders:read] }\n$defs:",
    )
}

const BOUND_INPUT: &str = r##"      type: object
      required: [order]
      properties:
        order: { $ref: "#/$defs/OrderNumber" }
        fields: { type: array, maxItems: 3, items: { type: string, enum: [status, lines] } }
        trace: { type: string, maxLength: 64, pattern: "^[a-z0-9-]+$" }"##;

const BOUND_BINDING: &str = r##"      downstream: orders
      method: GET
      path: /orders/{order}
      parameters:
        order: path
        fields: { in: query, explode: false }
        trace: { in: header, name: X-Trace-Id }
      success: [200]"##;

#[test]
fn a_bound_tool_lowers_with_its_operation() {
    let checked = check(bound(BOUND_INPUT, BOUND_BINDING));
    assert_eq!(checked.outcome, Outcome::Passed, "{:#?}", checked.diagnostics);
    let model = checked.model.unwrap();
    let tool = model.tool("get_order").unwrap();
    assert!(tool.handler.is_none());
    assert_eq!(tool.downstreams, ["orders"], "the binding's downstream is the tool's");
    assert!(tool.annotations.open_world_hint);
    let binding = tool.binding.as_ref().unwrap();
    assert_eq!(binding.method, charter::model::HttpMethod::Get);
    let trace = binding.parameters.iter().find(|p| p.property == "trace").unwrap();
    assert_eq!((trace.location.as_str(), trace.name.as_str()), ("header", "X-Trace-Id"));
    let fields = binding.parameters.iter().find(|p| p.property == "fields").unwrap();
    assert!(!fields.explode);
}

#[test]
fn bindings_that_cannot_be_carried_out_are_refused_with_the_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "path: /orders/{order}",
            "path: /orders/{id}",
            "path variable `{id}` has no parameter",
        ),
        (
            "path: /orders/{order}",
            "path: /orders/{order}?x=1",
            "is not a path relative",
        ),
        (
            "path: /orders/{order}",
            "path: /orders/../{order}",
            "`.` or `..` segment",
        ),
        ("path: /orders/{order}", "path: /orders/{order", "is never closed"),
        (
            "        order: path",
            "        order: query",
            "path variable `{order}` has no parameter",
        ),
        (
            "fields: { in: query, explode: false }",
            "fields: path",
            "carries a single string",
        ),
        (
            "fields: { in: query, explode: false }",
            "fields: cookie",
            "carries a single string",
        ),
        (
            "trace: { in: header, name: X-Trace-Id }",
            "trace: { in: header, name: Cookie }",
            "cannot set the `Cookie` header",
        ),
        (
            "trace: { in: header, name: X-Trace-Id }",
            "trace: { in: header, name: \"X Trace\" }",
            "not a valid HTTP header name",
        ),
        (
            "trace: { in: header, name: X-Trace-Id }",
            "trace: { in: query, name: fields }",
            "two properties are sent as query `fields`",
        ),
        (
            "trace: { in: header, name: X-Trace-Id }",
            "trace: body",
            "a GET request has no body",
        ),
        (
            "trace: { in: header, name: X-Trace-Id }",
            "trace: { in: header, explode: true }",
            "`explode` applies only",
        ),
        (
            "        trace: { in: header, name: X-Trace-Id }\n",
            "",
            "input property `trace` is not placed",
        ),
        (
            "        order: path\n",
            "        order: path\n        ordr: query\n",
            "did you mean `order`?",
        ),
        (
            "success: [200]",
            "success: [302]",
            "success status 302 is not a distinct 2xx status",
        ),
        (
            "success: [200]",
            "success: [200]\n      response: { field: rows }",
            "`response.field` names `rows`",
        ),
        (
            "downstream: orders",
            "downstream: billing",
            "no downstream named `billing`",
        ),
    ];
    for (from, to, wanted) in cases {
        let binding = BOUND_BINDING.replace(from, to);
        assert_ne!(binding, BOUND_BINDING, "case `{to}` changed nothing");
        let checked = check(bound(BOUND_INPUT, &binding));
        let messages: Vec<String> = checked
            .diagnostics
            .iter()
            .map(|d| format!("{}: {} {}", d.id, d.message, d.help.as_deref().unwrap_or_default()))
            .collect();
        assert!(
            checked.outcome != Outcome::Passed && messages.iter().any(|m| m.contains(wanted)),
            "`{to}`: want `{wanted}` among {messages:#?}"
        );
    }
    // An optional path parameter would leave the path unfilled.
    let optional = BOUND_INPUT.replace("required: [order]", "required: []");
    let checked = check(bound(&optional, BOUND_BINDING));
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.message.contains("is optional in the input"))
    );
}

#[test]
fn a_read_tool_bound_to_a_state_changing_method_fails_whatever_the_suppressions() {
    let binding = BOUND_BINDING.replace("method: GET", "method: DELETE");
    let text = bound(BOUND_INPUT, &binding).replace(
        "    binding:\n",
        "    suppress: [{ rule: understated-effect, reason: The service treats DELETE as a soft read here. }]\n    binding:\n",
    );
    let checked = check(text);
    assert_ne!(checked.outcome, Outcome::Passed);
    assert!(
        checked.diagnostics.iter().any(|d| d.id == "suppression-not-allowed"),
        "{:#?}",
        checked.diagnostics
    );
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.id == "understated-effect" && d.severity == Severity::Error)
    );
}

#[test]
fn sessions_are_for_http_and_bounded() {
    let text = contract("experimental", READ_TOOL).replace(
        "  transports: [stdio]\n",
        "  transports: [stdio]\n  sessions: { max: 0, idle: 2d }\n",
    );
    let checked = check(text);
    let messages: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.id == "invalid-value")
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(checked.outcome, Outcome::Unreadable, "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("does not serve `http`")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("outside 1 to 100000")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("`2d` is longer")), "{messages:?}");
}
