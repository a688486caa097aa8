"""Writes that need approval: support-replies' `set_ticket_priority` (a support lead approves
the exact operation) and change-plan's `open_change_request` (the user confirms through
elicitation). A write without approval, a self-approval, an altered or replayed approval, a
rejected operation and changed arguments must never run the handler; an approved operation runs
exactly once."""

import itertools
import re

import httpx
import pytest

from conftest import AUDIENCES, Server, is_error_result, next_id, result_text, rpc_message, support_server

PENDING = re.compile(r"Pending operation (\S+) \(operation sha256 ([0-9a-f]{64})\)")


# set_ticket_priority allows 10 calls a minute per caller: each test asks as its own agent,
# who owns one open ticket of normal priority.
AGENTS = [f"agent-{i}" for i in range(12)]


@pytest.fixture(scope="module")
def server(workroot, jwks):
    server = support_server(workroot, jwks, "approvals", flood_subjects=AGENTS)
    yield server
    server.stop()


_agents = itertools.count()


@pytest.fixture
def agent(mint):
    """(token, ticket id) of an agent of its own for this test."""
    index = next(_agents)
    return mint.token(sub=AGENTS[index], scopes=["tickets.read", "tickets.priority"]), 900000001 + index


@pytest.fixture(scope="module")
def lead(mint):
    return mint.token(sub="lead", scopes=["tickets.read", "tickets.approve"])


def request_change(server, token, arguments):
    """Asks for a priority change; returns (pending id, operation hash, request id)."""
    id = next_id()
    response, message = server.call("set_ticket_priority", arguments, token=token, id=id)
    assert response.status_code == 200, response.text[:300]
    assert is_error_result(message), f"ran without approval: {message}"
    match = PENDING.search(result_text(message))
    assert match, result_text(message)
    return match.group(1), match.group(2), id


def decide(server, token, id, decision, operation_sha256):
    response, message = server.call(
        "charter_decide_approval", {"id": id, "decision": decision, "operation_sha256": operation_sha256}, token=token
    )
    assert response.status_code == 200, response.text[:300]
    return message


def ran(server, request_id):
    return [r for r in server.audit() if r.get("request_id") == str(request_id) and r.get("event") == "intent"]


def args(ticket, priority, reason="The customer is blocked and the SLA is at risk."):
    return {"ticket_id": ticket, "priority": priority, "reason": reason}


def test_write_without_approval_does_not_run(server, agent):
    requester, ticket = agent
    operation, digest, request = request_change(server, requester, args(ticket, "urgent"))
    assert not ran(server, request), "an intent was recorded for a call that waits for approval"
    records = server.wait_audit(lambda r: r.get("event") == "approval_requested" and r.get("request_id") == str(request))
    assert records and records[0]["approval"]["id"] == operation
    shown = rpc_message(server.rpc("tools/call", {"name": "get_ticket", "arguments": {"ticket_id": ticket}}, token=requester))
    assert shown["result"]["structuredContent"]["priority"] == "normal"


def test_approver_sees_the_exact_pending_operation(server, agent, lead):
    requester, ticket = agent
    operation, digest, _ = request_change(server, requester, args(ticket, "high"))
    names = {t["name"] for t in rpc_message(server.rpc("tools/list", {}, token=lead))["result"]["tools"]}
    assert {"charter_pending_approvals", "charter_decide_approval"} <= names
    response, message = server.call("charter_pending_approvals", {}, token=lead)
    pending = {p["id"]: p for p in message["result"]["structuredContent"]["pending"]}
    assert operation in pending
    shown = pending[operation]
    assert shown["tool"] == "set_ticket_priority" and shown["requester"].startswith("agent-")
    assert shown["arguments"] == args(ticket, "high")
    assert shown["operation_hash"] == digest


def test_self_approval_is_refused(server, mint):
    both = mint.token(sub="alice", scopes=["tickets.read", "tickets.priority", "tickets.approve"])
    operation, digest, _ = request_change(server, both, args(48102, "high"))
    message = decide(server, both, operation, "approve", digest)
    assert is_error_result(message)
    assert "second person" in result_text(message) or "same person" in result_text(message)
    response, message = server.call("set_ticket_priority", args(48102, "high"), token=both)
    assert is_error_result(message), "a self-approved operation ran"


def test_altered_operation_hash_is_refused(server, agent, lead):
    requester, ticket = agent
    operation, digest, _ = request_change(server, requester, args(ticket, "high"))
    altered = ("f" if digest[0] != "f" else "e") + digest[1:]
    message = decide(server, lead, operation, "approve", altered)
    assert is_error_result(message), message
    assert "does not match" in result_text(message)
    response, message = server.call("set_ticket_priority", args(ticket, "high"), token=requester)
    assert is_error_result(message), "an operation ran on an approval of another hash"


def test_approved_operation_runs_exactly_once(server, agent, lead):
    requester, ticket = agent
    arguments = args(ticket, "urgent")
    operation, digest, _ = request_change(server, requester, arguments)
    decided = decide(server, lead, operation, "approve", digest)
    assert not is_error_result(decided), result_text(decided)
    assert decided["result"]["structuredContent"]["approved"] is True

    id = next_id()
    response, message = server.call("set_ticket_priority", arguments, token=requester, id=id)
    assert not is_error_result(message), result_text(message)
    assert message["result"]["structuredContent"]["requested_priority"] == "urgent"
    intents = ran(server, id)
    assert len(intents) == 1 and intents[0]["approval"]["approver"] == "lead", intents
    assert intents[0]["approval"]["operation_hash"] == digest

    again = next_id()
    response, message = server.call("set_ticket_priority", arguments, token=requester, id=again)
    assert is_error_result(message), "one approval ran the operation twice"
    assert PENDING.search(result_text(message)), result_text(message)
    assert not ran(server, again)


def test_replayed_approval_decision_is_refused(server, agent, lead):
    requester, ticket = agent
    operation, digest, _ = request_change(server, requester, args(ticket, "low"))
    assert not is_error_result(decide(server, lead, operation, "approve", digest))
    replay = decide(server, lead, operation, "approve", digest)
    assert is_error_result(replay)
    assert "already decided" in result_text(replay)
    flip = decide(server, lead, operation, "reject", digest)
    assert is_error_result(flip), "a decided operation was decided again"


def test_changed_arguments_do_not_use_an_approval(server, agent, lead):
    requester, ticket = agent
    approved = args(ticket, "low", reason="Approved reason: customer found a workaround.")
    operation, digest, _ = request_change(server, requester, approved)
    assert not is_error_result(decide(server, lead, operation, "approve", digest))
    id = next_id()
    altered = dict(approved, priority="urgent")
    response, message = server.call("set_ticket_priority", altered, token=requester, id=id)
    assert is_error_result(message), "an approval was used for other arguments"
    assert not ran(server, id)


def test_approval_is_bound_to_the_requester(server, mint, agent, lead):
    requester, ticket = agent
    arguments = args(ticket, "urgent")
    operation, digest, _ = request_change(server, requester, arguments)
    assert not is_error_result(decide(server, lead, operation, "approve", digest))
    bob = mint.token(sub="bob", scopes=["tickets.read", "tickets.priority"])
    id = next_id()
    response, message = server.call("set_ticket_priority", arguments, token=bob, id=id)
    assert is_error_result(message) and PENDING.search(result_text(message)), result_text(message)
    assert not ran(server, id)


def test_rejected_operation_never_runs(server, agent, lead):
    requester, ticket = agent
    arguments = args(ticket, "urgent", reason="Rejected reason: not actually blocking anyone.")
    operation, digest, _ = request_change(server, requester, arguments)
    assert not is_error_result(decide(server, lead, operation, "reject", digest))
    id = next_id()
    response, message = server.call("set_ticket_priority", arguments, token=requester, id=id)
    assert is_error_result(message)
    assert not ran(server, id)


def test_unknown_and_malformed_approval_ids_are_refused(server, lead):
    for id in ("does-not-exist", "' OR 1=1 --", "../../approvals.sqlite3"):
        assert is_error_result(decide(server, lead, id, "approve", "0" * 64))
    response, message = server.call(
        "charter_decide_approval", {"id": "x", "decision": "approve", "operation_sha256": "not-a-hash"}, token=lead
    )
    assert is_error_result(message)


def test_approvals_are_audited_and_the_chain_verifies(server):
    events = {r["event"] for r in server.wait_audit(lambda r: r.get("event") == "approval_decided")}
    assert events == {"approval_decided"}
    assert {"approval_requested", "intent", "outcome"} <= {r["event"] for r in server.audit()}
    verified = server.verify()
    assert verified.returncode == 0 and "chain intact" in verified.stdout, verified.stdout + verified.stderr


# ---------------------------------------------------------------- user confirmation (change-plan)

REVISION = "c05a8f3e6d29b17c4e80f5a2d93b6c1e7f40a8d2"


@pytest.fixture(scope="module")
def planner(workroot, jwks):
    server = Server("change-plan", workroot / "change-plan-approvals", jwks=jwks, label="change-plan-approvals")
    server.start_http()
    yield server
    server.kill()  # a hung confirmation would hold up a graceful shutdown


def open_request(plan_id):
    return {
        "plan_id": plan_id,
        "change_type": "normal",
        "window": {"start": "2026-12-01T22:00:00Z", "end": "2026-12-01T23:00:00Z"},
        "assignment_group": "platform-infrastructure",
        "justification": "Roll out payments-api 1.15.0 with the 3DS2 changes.",
    }


def test_user_approval_without_elicitation_is_refused_over_http(planner, mint):
    token = mint.token(
        sub="engineer",
        audience=AUDIENCES["change-plan"],
        scopes=["services.read", "plans.draft", "changes.request"],
    )
    response, drafted = planner.call(
        "draft_change_plan",
        {"service": "payments-api", "environment": "staging", "target_revision": REVISION, "rollout": "rolling"},
        token=token,
    )
    assert not is_error_result(drafted), result_text(drafted)
    plan_id = drafted["result"]["structuredContent"]["plan_id"]
    id = next_id()
    try:
        # Far longer than the tool's 30 s timeout: the refusal must come, however slowly.
        response = planner.client.post(
            planner.url,
            json={"jsonrpc": "2.0", "id": id, "method": "tools/call",
                  "params": {"name": "open_change_request", "arguments": open_request(plan_id)}},
            headers=planner.headers(token),
            timeout=75,
        )
    except httpx.TimeoutException:
        pytest.fail("no answer: the server is still waiting for a confirmation it cannot get")
    message = rpc_message(response)
    assert response.status_code == 200, response.status_code
    assert is_error_result(message), f"opened a change request without the user's confirmation: {message}"
    assert "confirmation" in result_text(message), result_text(message)
    assert "CHG" not in response.text
    assert not [r for r in planner.audit() if r.get("event") == "intent" and r.get("request_id") == str(id)]
    assert planner.wait_audit(lambda r: r.get("request_id") == str(id) and r.get("reason") == "confirmation_unavailable")


# ------------------------------------ user confirmation by retry (SEP-2322, 2026-07-28 wire)

ROUNDS = "2026-07-28"


def planner_token(mint, sub):
    return mint.token(
        sub=sub, audience=AUDIENCES["change-plan"], scopes=["services.read", "plans.draft", "changes.request"]
    )


def draft_plan(planner, token):
    response, drafted = planner.call(
        "draft_change_plan",
        {"service": "payments-api", "environment": "staging", "target_revision": REVISION, "rollout": "rolling"},
        token=token,
    )
    assert not is_error_result(drafted), result_text(drafted)
    return drafted["result"]["structuredContent"]["plan_id"]


def call_in_rounds(planner, token, arguments, responses=None, state=None, id=None, elicitation=True):
    """tools/call open_change_request as a 2026-07-28 client: capabilities in `_meta`, and on a
    retry the answers and the state of the previous round."""
    params = {
        "name": "open_change_request",
        "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": ROUNDS,
            "io.modelcontextprotocol/clientInfo": {"name": "adversary", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}} if elicitation else {},
        },
    }
    if responses is not None:
        params["inputResponses"] = responses
    if state is not None:
        params["requestState"] = state
    headers = {"MCP-Protocol-Version": ROUNDS, "Mcp-Method": "tools/call", "Mcp-Name": "open_change_request"}
    response = planner.rpc("tools/call", params, token=token, id=id, headers=headers)
    return rpc_message(response)


YES = {"charter_confirmation": {"action": "accept", "content": {"confirm": True}}}
NO = {"charter_confirmation": {"action": "decline"}}


def asked(planner, token, arguments):
    """Round one: the confirmation request and its state; nothing ran."""
    id = next_id()
    message = call_in_rounds(planner, token, arguments, id=id)
    result = message["result"]
    assert result.get("resultType") == "input_required", message
    request = result["inputRequests"]["charter_confirmation"]
    assert request["method"] == "elicitation/create"
    shown = request["params"]["message"]
    assert "open_change_request" in shown and arguments["plan_id"] in shown, shown
    assert not [r for r in planner.audit() if r.get("event") == "intent" and r.get("request_id") == str(id)]
    assert planner.wait_audit(lambda r: r.get("request_id") == str(id) and r.get("reason") == "awaiting_confirmation")
    return result["requestState"]


def intents(planner, id):
    return [r for r in planner.audit() if r.get("event") == "intent" and r.get("request_id") == str(id)]


def test_confirmed_by_retry_runs_once_and_its_state_cannot_run_it_again(planner, mint):
    token = planner_token(mint, "rounds-engineer")
    arguments = open_request(draft_plan(planner, token))
    state = asked(planner, token, arguments)
    id = next_id()
    message = call_in_rounds(planner, token, arguments, YES, state, id=id)
    assert not is_error_result(message), message
    assert "CHG" in result_text(message)
    ran = intents(planner, id)
    assert len(ran) == 1 and ran[0]["approval"]["mode"] == "user", ran
    assert ran[0]["approval"]["confirmed_by"] == "rounds-engineer"
    assert len(ran[0]["approval"]["request_state_nonce"]) == 32

    # The same answer and state again: refused, nothing runs, audited.
    replay = next_id()
    message = call_in_rounds(planner, token, arguments, YES, state, id=replay)
    assert is_error_result(message) and "already used" in result_text(message), message
    assert not intents(planner, replay)
    assert planner.wait_audit(lambda r: r.get("request_id") == str(replay) and r.get("reason") == "confirmation_replayed")


def test_declined_by_retry_never_runs(planner, mint):
    token = planner_token(mint, "rounds-decliner")
    arguments = open_request(draft_plan(planner, token))
    state = asked(planner, token, arguments)
    id = next_id()
    message = call_in_rounds(planner, token, arguments, NO, state, id=id)
    assert is_error_result(message) and "did not confirm" in result_text(message), message
    assert "CHG" not in str(message)
    assert not intents(planner, id)
    assert planner.wait_audit(lambda r: r.get("request_id") == str(id) and r.get("reason") == "not_confirmed")


def flip(state):
    """The state with one character of its signed payload changed."""
    i = len(state) // 2
    return state[:i] + ("A" if state[i] != "A" else "B") + state[i + 1 :]


@pytest.mark.parametrize("tamper", ["appended", "flipped", "empty", "other-caller", "other-arguments"])
def test_a_tampered_or_moved_state_is_refused(planner, mint, tamper):
    token = planner_token(mint, f"rounds-{tamper}")
    arguments = open_request(draft_plan(planner, token))
    state = asked(planner, token, arguments)
    caller, sent = token, arguments
    if tamper == "appended":
        state += "-TAMPERED"
    elif tamper == "flipped":
        state = flip(state)
    elif tamper == "empty":
        state = ""
    elif tamper == "other-caller":
        caller = planner_token(mint, "rounds-mallory")
    else:
        sent = dict(arguments, justification="Something else entirely, approved by nobody.")
    id = next_id()
    message = call_in_rounds(planner, caller, sent, YES, state, id=id)
    assert "error" in message and message["error"]["code"] == -32602, message
    assert "requestState was refused" in message["error"]["message"]
    assert not intents(planner, id)
    assert planner.wait_audit(lambda r: r.get("request_id") == str(id) and r.get("reason") == "request_state_refused")


def test_an_answer_without_the_state_it_was_asked_with_is_asked_again(planner, mint):
    token = planner_token(mint, "rounds-shortcut")
    arguments = open_request(draft_plan(planner, token))
    id = next_id()
    message = call_in_rounds(planner, token, arguments, YES, None, id=id)
    assert message["result"].get("resultType") == "input_required", message
    assert not intents(planner, id)


def test_a_client_without_elicitation_gets_minus_32021(planner, mint):
    token = planner_token(mint, "rounds-no-elicitation")
    arguments = open_request(draft_plan(planner, token))
    id = next_id()
    message = call_in_rounds(planner, token, arguments, id=id, elicitation=False)
    assert is_error_result(message) and "elicitation" in result_text(message), message
    assert not intents(planner, id)


@pytest.mark.parametrize("answer", [12345, "yes", None, [True]])
def test_malformed_answers_are_refused(planner, mint, answer):
    # Each case as its own caller: the per-caller rate limit counts every round.
    token = planner_token(mint, f"rounds-malformed-{type(answer).__name__}")
    arguments = open_request(draft_plan(planner, token))
    state = asked(planner, token, arguments)
    id = next_id()
    message = call_in_rounds(planner, token, arguments, {"charter_confirmation": answer}, state, id=id)
    assert "error" in message and message["error"]["code"] == -32602, message
    assert not intents(planner, id)


def confirm_over_stdio(workroot, label):
    """Drafts a plan and asks to open a change request over stdio, as a client that declared
    no elicitation capability; returns (answer, server requests seen, server)."""
    server = Server("change-plan", workroot / label, label=label)
    client = server.start_stdio()
    try:
        client.initialize()  # declares no elicitation capability
        drafted = client.call(
            "draft_change_plan",
            {"service": "payments-api", "environment": "staging", "target_revision": REVISION, "rollout": "rolling"},
        )
        plan_id = drafted["result"]["structuredContent"]["plan_id"]
        message = client.call("open_change_request", open_request(plan_id))
    finally:
        client.close()
    return message, client.server_requests, server


def test_user_approval_without_elicitation_is_refused_over_stdio(workroot):
    message, _, server = confirm_over_stdio(workroot, "change-plan-stdio")
    assert message is not None, "no answer"
    assert is_error_result(message), message
    assert "confirmation" in result_text(message), result_text(message)
    assert "CHG" not in str(message)
    assert not [r for r in server.audit() if r.get("event") == "intent" and r.get("name") == "open_change_request"]
    assert server.verify().returncode == 0


def test_no_elicitation_request_to_a_client_that_cannot_elicit(workroot):
    message, requests, _ = confirm_over_stdio(workroot, "change-plan-stdio-2")
    assert not [r for r in requests if r["method"] == "elicitation/create"], requests


@pytest.mark.parametrize(
    "tool, arguments, expected",
    [
        ("charter_pending_approvals", {"evil": "x", "n": [1, 2, 3]}, "unknown argument `evil`"),
        ("charter_decide_approval", {"id": "x", "decision": "approve"}, "operation_sha256"),
        ("charter_decide_approval", {"id": "x", "decision": 5, "operation_sha256": "0" * 64}, "/decision"),
        ("charter_decide_approval", {"id": "x", "decision": "approve", "operation_sha256": "not-a-hash"}, "/operation_sha256"),
        ("charter_decide_approval", {"id": ["x"], "decision": "approve", "operation_sha256": "0" * 64}, "/id"),
        ("charter_decide_approval", {"id": "x", "decision": "maybe", "operation_sha256": "0" * 64}, "/decision"),
        (
            "charter_decide_approval",
            {"id": "x", "decision": "reject", "operation_sha256": "0" * 64, "also": True},
            "unknown argument `also`",
        ),
    ],
)
def test_the_approval_tools_refuse_arguments_their_schema_refuses(server, lead, tool, arguments, expected):
    """The runtime's own tools are validated like contract tools: extra, missing and wrongly
    typed arguments are refused before anything runs, and the refusal is audited."""
    id = next_id()
    response, message = server.call(tool, arguments, token=lead, id=id)
    assert response.status_code == 200, response.text[:300]
    assert is_error_result(message), f"{tool} accepted {arguments}: {message}"
    text = result_text(message)
    assert "invalid arguments" in text and expected in text, text
    records = server.wait_audit(lambda r: r.get("request_id") == str(id) and r.get("event") == "denied")
    assert records and records[0]["reason"] == "invalid_arguments", records
    assert records[0]["name"] == tool


def test_the_approval_tools_are_rate_limited_like_contract_tools(server, mint):
    """The runtime's own tools pass the same gates: an approver polling the queue in a loop is
    refused after the built-in limit (60 a minute per approver) with 429, and audited."""
    token = mint.token(sub="lead-in-a-loop", scopes=["tickets.read", "tickets.approve"])
    statuses = []
    for _ in range(70):
        response, _ = server.call("charter_pending_approvals", {}, token=token)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429, f"70 calls, none limited: {statuses}"
    assert statuses.count(200) == 60, statuses
    assert "Retry-After" in response.headers or "retry-after" in response.headers
    assert server.wait_audit(
        lambda r: r.get("name") == "charter_pending_approvals" and r.get("reason") == "rate_limited"
        and r.get("subject") == "lead-in-a-loop"
    )
