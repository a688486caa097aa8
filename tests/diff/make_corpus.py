#!/usr/bin/env python3
"""Writes the `charter diff` corpus: tests/diff/<case>/new.yaml (and old.yaml
where the old side is not base.yaml), each a small edit of base.yaml.

Run from the repository root: python3 tests/diff/make_corpus.py
A case named after a rule id must report that rule (tests/diff.rs checks it).
"""
import os
import shutil

ROOT = os.path.dirname(os.path.abspath(__file__))
BASE = open(os.path.join(ROOT, "base.yaml")).read()

# Snippets of base.yaml that cases edit.
GET_ORDER_DESC = "    description: The status, items and last update time of one order, by order number.\n"
REFUND_TOOL_START = "  refund_order:\n"
REFUND_TOOL_END = "    limits:\n      rate: 5/minute\n    handler: rust\n"
REFUND_OUTPUT = """    output:
      type: object
      required: [refund_id]
      properties:
        refund_id: { type: string, format: uuid }
"""
POLICY = """  refund_policy:
    title: Refund policy
    description: The support team's refund policy.
    uri: orders://refund-policy
    mime_type: text/markdown
    scopes: [orders.read]
    data_class: internal
    handler: rust
"""
GET_ORDER_INPUT_CLOSE = "        max_items: { type: integer, minimum: 1, maximum: 50 }\n"
NEW_TOOL = """  list_orders:
    title: List orders
    description: The order numbers and statuses of one customer's orders from the last 90 days.
    effect: read
    scopes: [orders.read]
    data_class: internal
    downstreams: [orders]
    input:
      type: object
      required: [customer_id]
      properties:
        customer_id: { type: string, pattern: "^C[0-9]{8}$" }
    output:
      type: object
      required: [orders]
      properties:
        orders: { type: array, maxItems: 100, items: { type: string, maxLength: 9 } }
    handler: rust

"""


def edit(text, *pairs):
    for old, new in pairs:
        count = text.count(old)
        assert count >= 1, f"snippet not in base: {old!r}"
        text = text.replace(old, new, 1)
    return text


def version(text, v):
    return edit(text, ("  version: 1.0.0\n", f"  version: {v}\n"))


def remove(text, start, end):
    i = text.index(start)
    j = text.index(end, i) + len(end)
    return text[:i] + text[j:]


MAJOR, MINOR, PATCH = "2.0.0", "1.1.0", "1.0.1"

# name -> (new version, edits of new) or (new version, edits of new, edits of old)
CASES = {}


def case(name, v, new_edits=(), old_edits=(), new_fn=None, old_fn=None):
    old = edit(BASE, *old_edits)
    if old_fn:
        old = old_fn(old)
    new = edit(BASE, *new_edits)
    if new_fn:
        new = new_fn(new)
    new = version(new, v)
    CASES[name] = (old if old != BASE else None, new)


# ----- breaking -----
case("server-renamed", MAJOR, [("  name: orders\n", "  name: order-desk\n")])
case("transport-removed", MAJOR, [("transports: [stdio, http]", "transports: [http]")])
case("tool-removed", MAJOR, new_fn=lambda t: remove(
    edit(t, ("    refunds.write: Issue refunds on orders.\n    refunds.approve: Approve refunds issued by others.\n", "")),
    REFUND_TOOL_START, REFUND_TOOL_END + "\n"))
case("tool-renamed", MAJOR, [("  get_order:\n", "  fetch_order:\n")])
case("resource-removed", MAJOR, new_fn=lambda t: edit(t, (POLICY, "")))
case("resource-renamed", MAJOR, [("  refund_policy:\n", "  policy:\n")])
case("resource-uri-changed", MAJOR, [("uri: orders://refund-policy", "uri: orders://policies/refund")])
case("resource-mime-type-changed", MAJOR, [("mime_type: text/markdown", "mime_type: text/plain")])
case("prompt-removed", MAJOR, new_fn=lambda t: remove(t, "prompts:\n", "    data_class: personal\n\n"))
case("prompt-renamed", MAJOR, [("  explain_order:\n", "  describe_order:\n")])
case("prompt-argument-removed", MAJOR, [
    ("      tone:\n        description: friendly or formal (default friendly).\n        required: false\n        maxLength: 20\n", ""),
    ("in a {{tone}} tone", "in a friendly tone"),
])
case("prompt-argument-required", MAJOR, [("        description: friendly or formal (default friendly).\n        required: false\n",
                                         "        description: friendly or formal.\n")])
case("input-required-added", MAJOR, [("      required: [order_number]\n", "      required: [order_number, detail]\n")])
case("input-field-removed", MAJOR, [("        reason: { type: string, maxLength: 500 }\n", "")])
case("input-type-changed", MAJOR, [("        reason: { type: string, maxLength: 500 }\n",
                                   "        reason: { type: array, maxItems: 5, items: { type: string, maxLength: 100 } }\n")])
case("input-enum-narrowed", MAJOR, [("enum: [summary, full], default: summary", "enum: [summary], default: summary")])
case("input-bounds-tightened", MAJOR, [("maximum: 100000", "maximum: 50000")])
case("input-pattern-changed", MAJOR, [('          pattern: "^[A-Z]{2}-[0-9]{6}$"\n', '          pattern: "^[A-Z]{2}-[0-9]{6,7}$"\n')])
case("input-closed", MAJOR, old_edits=[(GET_ORDER_INPUT_CLOSE, GET_ORDER_INPUT_CLOSE + "      additionalProperties: { type: string, maxLength: 100 }\n")])
case("input-schema-changed", MAJOR, [("        max_items: { type: integer, minimum: 1, maximum: 50 }",
                                     "        max_items: { type: integer, minimum: 1, maximum: 50, not: { const: 13 } }")])
case("output-removed", MAJOR, [(REFUND_OUTPUT, "")])
case("output-field-removed", MAJOR, [("        items: { type: array, maxItems: 50, items: { type: string, maxLength: 200 } }\n", "")])
case("output-required-removed", MAJOR, [("      required: [order_number, status, updated_at]\n", "      required: [order_number, status]\n")])
case("output-type-changed", MAJOR, [("        updated_at: { type: string, format: date-time }\n", "        updated_at: { type: integer, minimum: 0 }\n")])
case("output-enum-widened", MAJOR, [("enum: [received, packed, shipped, delivered, cancelled]",
                                    "enum: [received, packed, shipped, delivered, cancelled, returned]")])
case("output-bounds-loosened", MAJOR, [("items: { type: array, maxItems: 50,", "items: { type: array, maxItems: 100,")])
case("output-pattern-changed", MAJOR, [("refund_id: { type: string, format: uuid }", "refund_id: { type: string, pattern: \"^R[0-9]{10}$\" }")])

# ----- needs re-review -----
case("tool-added", MINOR, [("  refund_order:\n", NEW_TOOL + "  refund_order:\n")])
case("resource-added", MINOR, [(POLICY, POLICY + POLICY.replace("refund_policy", "shipping_policy").replace("Refund policy", "Shipping policy")
                                .replace("refund policy", "shipping policy").replace("refund-policy", "shipping-policy"))])
case("prompt-added", MINOR, [("limits:\n  rate: 60/minute", """  apologize:
    title: Apologize for a delay
    description: Drafts an apology to a customer whose order is late.
    version: 1.0.0
    arguments:
      order_number:
        description: The order number, e.g. AB-123456.
        maxLength: 9
    text: |
      Write a short apology for the delay of order {{order_number}}. Do not offer compensation.
    resources: [order]
    scopes: [orders.read]
    data_class: personal

limits:
  rate: 60/minute""")])
case("description-changed", MINOR, [(GET_ORDER_DESC,
    "    description: The status, items, delivery address and last update time of one order, by order number.\n")])
case("title-changed", MINOR, [("    title: Get an order\n", "    title: Look up an order\n")])
case("prompt-text-changed", MINOR, [("Never promise a delivery date.", "Promise delivery within two days.")])
case("prompt-resource-added", MINOR, [("    resources: [order]\n", "    resources: [order, refund_policy]\n")])
case("schema-default-changed", MINOR, [("enum: [summary, full], default: summary", "enum: [summary, full], default: full")])
case("output-schema-changed", MINOR, [("refund_id: { type: string, format: uuid }", "refund_id: { type: string, format: uuid, deprecated: true }")])
case("effect-escalated", MINOR, [("    effect: read\n", "    effect: draft\n")])
case("annotations-changed", MINOR, [("    effect: read\n", "    effect: read\n    idempotent: false\n")])
case("approval-relaxed", MINOR, [("      mode: reviewer\n      scope: refunds.approve\n      expires: 24h\n", "      mode: user\n"),
                                 ("    refunds.approve: Approve refunds issued by others.\n", "")])
case("approval-changed", MINOR, [("      scope: refunds.approve\n", "      scope: refunds.supervise\n"),
                                 ("    refunds.approve: Approve refunds issued by others.\n",
                                  "    refunds.supervise: Approve refunds, held by support supervisors.\n")])
case("scope-added", MINOR, [("    refunds.approve: Approve refunds issued by others.\n",
                             "    refunds.approve: Approve refunds issued by others.\n    orders.export: Export orders in bulk.\n")])
case("scope-removed", MAJOR, new_fn=lambda t: remove(
    edit(t, ("    refunds.write: Issue refunds on orders.\n    refunds.approve: Approve refunds issued by others.\n", "")),
    REFUND_TOOL_START, REFUND_TOOL_END + "\n"))
case("scope-changed", MINOR, [("orders.read: Read orders and their status.", "orders.read: Read orders, their status and delivery addresses.")])
case("tool-scope-changed", MINOR, [("    scopes: [orders.read]\n    data_class: internal\n    downstreams: [orders]\n    input:\n      type: object\n      required: [order_number]\n",
                                    "    scopes: [orders.read, refunds.write]\n    data_class: internal\n    downstreams: [orders]\n    input:\n      type: object\n      required: [order_number]\n")])
case("resource-scope-changed", MINOR, [("    mime_type: text/markdown\n    scopes: [orders.read]\n", "    mime_type: text/markdown\n    scopes: [refunds.write]\n")])
case("prompt-scope-changed", MINOR, [("    resources: [order]\n    scopes: [orders.read]\n", "    resources: [order]\n    scopes: [orders.read, refunds.write]\n")])
case("data-class-added", MINOR, [("    logs: redact\n", """    logs: redact
  payment:
    description: Card numbers and bank details.
    sensitivity: restricted
    logs: omit
"""), ("        refund_id: { type: string, format: uuid }\n    limits:\n      rate: 5/minute\n",
       "        refund_id: { type: string, format: uuid }\n    limits:\n      rate: 5/minute\n")],
     new_fn=lambda t: t.replace("    effect: write\n    scopes: [refunds.write]\n    data_class: internal\n",
                                "    effect: write\n    scopes: [refunds.write]\n    data_class: payment\n"))
case("data-class-changed", MINOR, [("description: Order numbers, statuses and refund amounts.", "description: Order numbers, statuses, refund amounts and notes.")])
case("data-class-widened", MINOR, [("    effect: read\n    scopes: [orders.read]\n    data_class: internal\n", "    effect: read\n    scopes: [orders.read]\n    data_class: personal\n")])
case("redaction-relaxed", MINOR, [("    logs: redact\n", "    logs: hash\n")])
case("downstream-added", MINOR, [("\ntools:\n", """  payments:
    description: The payment provider's refund API.
    base_url: https://api.payments.example.com
    egress: [api.payments.example.com:443]
    timeout: 10s
    credentials:
      service_token: { env: PAYMENTS_TOKEN }
      scopes: [refunds:create]

tools:
"""), ("    effect: write\n    scopes: [refunds.write]\n    data_class: internal\n    downstreams: [orders]\n",
       "    effect: write\n    scopes: [refunds.write]\n    data_class: internal\n    downstreams: [orders, payments]\n")])
case("downstream-changed", MINOR, [("description: The order service's REST API.", "description: The order service's REST API, version 2, with customer data.")])
case("tool-downstream-added", MINOR, [("    mime_type: application/json\n    scopes: [orders.read]\n    data_class: personal\n",
                                       "    mime_type: application/json\n    scopes: [orders.read]\n    data_class: personal\n    downstreams: [orders]\n")])
case("egress-host-added", MINOR, [("egress: [orders.example.com:443]", "egress: [orders.example.com:443, files.example.com:443]")])
case("credentials-changed", MINOR, [("service_token: { env: ORDERS_TOKEN }", "service_token: { env: ORDERS_ADMIN_TOKEN }"),
                                    ("scopes: [orders:read, refunds:write]", "scopes: [orders:read, refunds:write, customers:read]")])
case("transport-added", MINOR, old_edits=[("transports: [stdio, http]", "transports: [stdio]")])
case("auth-changed", MINOR, [("audience: https://mcp.example.com/orders", "audience: https://mcp.example.com/order-desk")])
case("limit-loosened", MINOR, [("limits:\n  rate: 60/minute", "limits:\n  rate: 600/minute")])
case("audit-reduced", MINOR, [("  retention: 400d\n", "  retention: 90d\n")])
case("owner-changed", MINOR, [("    team: support-tools\n", "    team: payments-tools\n")])
case("disable-path-changed", MINOR, [("      env: ORDERS_DISABLED\n", "      file: /run/orders/disabled\n")])
case("status-changed", MINOR, [("  status: production\n", "  status: preview\n")])
case("deploy-changed", MINOR, [("namespace: support-mcp", "namespace: payments-mcp")])
case("suppression-added", MINOR, [("    limits:\n      rate: 5/minute\n    handler: rust\n",
                                   "    limits:\n      rate: 5/minute\n    handler: rust\n    suppress:\n      - rule: output-schema-missing\n        reason: Kept for a later output schema review.\n")])

DEPS = "\nhandlers:\n  dependencies:\n    rusqlite: { version: \"0.40\", features: [bundled] }\n"
case("dependency-added", MINOR, new_fn=lambda t: t + DEPS)
case("dependency-changed", MINOR, new_fn=lambda t: t + DEPS.replace("[bundled]", "[bundled, backup]"), old_fn=lambda t: t + DEPS)

# ----- compatible -----
case("input-field-added", PATCH, [("        reason: { type: string, maxLength: 500 }\n",
                                  "        reason: { type: string, maxLength: 500 }\n        note: { type: string, maxLength: 200 }\n")])
case("input-required-removed", PATCH, [("      required: [order_number, amount_cents]\n", "      required: [order_number]\n")])
case("input-type-widened", PATCH, [("amount_cents: { type: integer,", "amount_cents: { type: number,")])
case("input-enum-widened", PATCH, [("enum: [summary, full], default: summary", "enum: [summary, full, raw], default: summary")])
case("input-bounds-loosened", PATCH, [("maximum: 100000", "maximum: 200000")])
case("input-opened", PATCH, [(GET_ORDER_INPUT_CLOSE, GET_ORDER_INPUT_CLOSE + "      additionalProperties: { type: string, maxLength: 100 }\n")])
case("output-added", PATCH, old_edits=[(REFUND_OUTPUT, "")])
case("output-field-added", PATCH, [("        refund_id: { type: string, format: uuid }\n",
                                   "        refund_id: { type: string, format: uuid }\n        status: { type: string, enum: [pending, approved] }\n")])
case("output-required-added", PATCH, [("      required: [order_number, status, updated_at]\n", "      required: [order_number, status, updated_at, items]\n")])
case("output-type-narrowed", PATCH, old_edits=[("        updated_at: { type: string, format: date-time }\n", "        updated_at: { type: [string, \"null\"], format: date-time }\n")])
case("output-enum-narrowed", PATCH, [("enum: [received, packed, shipped, delivered, cancelled]", "enum: [received, packed, shipped, delivered]")])
case("output-bounds-tightened", PATCH, [("items: { type: array, maxItems: 50,", "items: { type: array, maxItems: 20,")])
case("output-closed", PATCH, old_edits=[(REFUND_OUTPUT, REFUND_OUTPUT + "      additionalProperties: true\n")])
case("prompt-argument-added", MINOR, [("        required: false\n        maxLength: 20\n",
                                      "        required: false\n        maxLength: 20\n      language:\n        description: The customer's language, e.g. en or de (default en).\n        required: false\n        maxLength: 10\n"),
                                     ("in a {{tone}} tone.", "in a {{tone}} tone, in {{language}}.")])
case("prompt-argument-optional", PATCH, [("        description: The order number, e.g. AB-123456.\n        maxLength: 9\n      tone:",
                                         "        description: The order number, e.g. AB-123456.\n        required: false\n        maxLength: 9\n      tone:")])
case("prompt-resource-removed", PATCH, old_edits=[("    resources: [order]\n", "    resources: [order, refund_policy]\n")])
case("prompt-version-changed", PATCH, [("    version: 1.0.0\n    arguments:", "    version: 1.0.1\n    arguments:")])
case("effect-reduced", PATCH, old_edits=[("    effect: read\n", "    effect: draft\n")])
case("approval-tightened", PATCH, [("      expires: 24h\n", "      expires: 4h\n")])
case("data-class-removed", PATCH, old_edits=[("    logs: redact\n", "    logs: redact\n  legacy:\n    description: Records of the retired order desk.\n    sensitivity: internal\n    logs: full\n")])
case("data-class-narrowed", PATCH, [("    mime_type: application/json\n    scopes: [orders.read]\n    data_class: personal\n",
                                    "    mime_type: application/json\n    scopes: [orders.read]\n    data_class: internal\n")])
case("redaction-tightened", PATCH, [("    logs: redact\n", "    logs: omit\n")])
case("downstream-removed", PATCH, old_fn=lambda t: edit(t, ("\ntools:\n", """  archive:
    description: The retired order archive, read-only.
    base_url: https://archive.example.com
    egress: [archive.example.com:443]
    credentials:
      service_token: { env: ARCHIVE_TOKEN }
      scopes: [orders:read]

tools:
""")))
case("tool-downstream-removed", PATCH, old_edits=[("    mime_type: application/json\n    scopes: [orders.read]\n    data_class: personal\n",
                                                  "    mime_type: application/json\n    scopes: [orders.read]\n    data_class: personal\n    downstreams: [orders]\n")])
case("egress-host-removed", PATCH, old_edits=[("egress: [orders.example.com:443]", "egress: [orders.example.com:443, files.example.com:443]")])
case("limit-tightened", PATCH, [("limits:\n  rate: 60/minute\n  timeout: 10s\n", "limits:\n  rate: 60/minute\n  timeout: 8s\n")])
case("audit-increased", PATCH, [("  results: false\n", "  results: true\n")])
case("deploy-resized", PATCH, [("replicas: { min: 2, max: 4 }", "replicas: { min: 2, max: 6 }")])
case("retirement-changed", PATCH, [("    when: The order system exposes orders to the assistant directly.\n",
                                   "    when: The order system exposes orders to the assistant directly, or by the end of 2028.\n")])
case("review-date-changed", PATCH, [('    next: "2027-05-01"\n', '    next: "2027-06-01"\n')])
case("suppression-removed", PATCH, old_edits=[("    limits:\n      rate: 5/minute\n    handler: rust\n",
                                               "    limits:\n      rate: 5/minute\n    handler: rust\n    suppress:\n      - rule: output-schema-missing\n        reason: Kept for a later output schema review.\n")])

case("dependency-removed", PATCH, old_fn=lambda t: t + DEPS)

# ----- the version check and combined changes -----
case("version-bump-too-small", PATCH, [(GET_ORDER_DESC,
    "    description: The status, items, delivery address and last update time of one order, by order number.\n")])
case("version-unchanged", "1.0.0", [("egress: [orders.example.com:443]", "egress: [orders.example.com:443, files.example.com:443]")])
case("version-backwards", "0.9.0")
case("version-zero-minor-breaks", "0.4.0", [("  get_order:\n", "  fetch_order:\n")], old_edits=[("  version: 1.0.0\n", "  version: 0.3.0\n")])
case("no-change", "1.0.0", [("# The base of the `charter diff` corpus", "# Reworded comments and reordered keys are no change. The base of the corpus"),
                            ("    title: Get an order\n    description: The status, items and last update time of one order, by order number.\n",
                             "    description: The status, items and last update time of one order, by order number.\n    title: Get an order\n")])
case("combined", MAJOR, [
    ("  refund_order:\n", NEW_TOOL + "  refund_order:\n"),
    (GET_ORDER_DESC, "    description: The status, items, delivery address and last update time of one order, by order number.\n"),
    ("    effect: read\n    scopes: [orders.read]\n    data_class: internal\n", "    effect: read\n    scopes: [orders.read]\n    data_class: personal\n"),
    ("maximum: 100000", "maximum: 50000"),
    ("      mode: reviewer\n      scope: refunds.approve\n      expires: 24h\n", "      mode: user\n"),
    ("    refunds.approve: Approve refunds issued by others.\n", ""),
    ("egress: [orders.example.com:443]", "egress: [orders.example.com:443, files.example.com:443]"),
    ("Never promise a delivery date.", "Promise delivery within two days."),
    ("        items: { type: array, maxItems: 50, items: { type: string, maxLength: 200 } }\n", ""),
    ("  results: false\n", "  results: true\n"),
])
case("combined-description-only", MINOR, [
    (GET_ORDER_DESC, "    description: The status, items, delivery address and last update time of one order, by order number.\n"),
    ("          description: The order number, e.g. AB-123456.\n", "          description: The order number, e.g. AB-123456 or ab-123456.\n"),
    ("        description: friendly or formal (default friendly).\n", "        description: friendly, formal or firm (default friendly).\n"),
    ("description: Explains where an order is and what happens next, for a customer.",
     "description: Explains where an order is and what happens next, for a customer or a courier."),
])


def main():
    for entry in os.listdir(ROOT):
        path = os.path.join(ROOT, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
    for name, (old, new) in sorted(CASES.items()):
        d = os.path.join(ROOT, name)
        os.makedirs(d)
        with open(os.path.join(d, "new.yaml"), "w") as f:
            f.write(new)
        if old is not None:
            with open(os.path.join(d, "old.yaml"), "w") as f:
                f.write(old)
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
