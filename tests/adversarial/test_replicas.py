"""Two replicas of support-replies behind a round-robin client, sharing pending approvals in a real
PostgreSQL and rate limits in a real Redis (both on loopback, from scripts/services), as the
generated StatefulSet runs them: a write requested on one replica and approved through the other
runs exactly once; 16 concurrent consumers of one approval yield one run; the shared rate limit
admits the contract's count across both; with Redis stopped, writes and drafts are refused and
reads are served; pending approvals survive a PostgreSQL restart; a replica restarted on the same
volume continues its audit chain."""

import itertools
import os
import re
import secrets
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import ROOT, Server, is_error_result, next_id, result_text, rpc_message, support_server

PENDING = re.compile(r"Pending operation (\S+) \(operation sha256 ([0-9a-f]{64})\)")
SERVICES = str(ROOT / "scripts" / "services")
# set_ticket_priority: 10/minute per caller; list_assigned_tickets: 60/minute (specs/support-replies.yaml).
AGENTS = [f"replica-agent-{i}" for i in range(8)]


def service_url(name):
    url = os.environ.get(name)
    if not url:
        pytest.fail(f"{name} is not set: run `scripts/services start` and `eval \"$(scripts/services env)\"`")
    return url


def services(*args):
    subprocess.run([SERVICES, *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def shared_state():
    """A schema of its own in PostgreSQL and a key prefix of its own in Redis, so runs never
    see each other's approvals or counters."""
    postgres = service_url("CHARTER_TEST_POSTGRES_URL")
    redis = service_url("CHARTER_TEST_REDIS_URL")
    schema = "replicas_" + secrets.token_hex(4)
    subprocess.run(["psql", postgres, "-qc", f"CREATE SCHEMA {schema}"], check=True, capture_output=True)
    separator = "&" if "?" in postgres else "?"
    options = urllib.parse.quote(f"-c search_path={schema}")
    return {
        "postgres": f"{postgres}{separator}options={options}",
        "redis": redis,
        "prefix": "charter-test-" + secrets.token_hex(4),
    }


@pytest.fixture(scope="module")
def replicas(workroot, jwks, shared_state):
    config = f"""
[approvals]
postgres_url_env = "SUPPORT_REPLIES_POSTGRES_URL"

[rate_limits]
redis_url_env = "SUPPORT_REPLIES_REDIS_URL"
key_prefix = "{shared_state['prefix']}"
"""
    env = {
        "SUPPORT_REPLIES_POSTGRES_URL": shared_state["postgres"],
        "SUPPORT_REPLIES_REDIS_URL": shared_state["redis"],
    }
    a = support_server(workroot, jwks, "replica-0", env=env, flood_subjects=AGENTS, config=config)
    # One helpdesk for both, as both pods call the same downstream.
    b = support_server(workroot, jwks, "replica-1", env=env, flood_subjects=AGENTS, config=config, start=False)
    b.config.write_text(b.config.read_text().replace(str(b.dir / "helpdesk.sqlite3"), str(a.dir / "helpdesk.sqlite3")))
    b.start_http()
    yield [a, b]
    for server in (a, b):
        server.stop()


class RoundRobin:
    """A client that sends each request to the next replica, as a Service does."""

    def __init__(self, replicas):
        self.replicas = replicas
        self.next = itertools.cycle(range(len(replicas)))
        self.lock = threading.Lock()

    def pick(self):
        with self.lock:
            return self.replicas[next(self.next)]

    def call(self, tool, arguments, token, id=None):
        return self.pick().call(tool, arguments, token=token, id=id)


_agents = itertools.count()


@pytest.fixture
def agent(mint):
    index = next(_agents)
    return mint.token(sub=AGENTS[index], scopes=["tickets.read", "tickets.priority", "replies.draft"]), 900000001 + index


@pytest.fixture(scope="module")
def lead(mint):
    return mint.token(sub="replica-lead", scopes=["tickets.read", "tickets.approve"])


def arguments(ticket, priority):
    return {"ticket_id": ticket, "priority": priority, "reason": "The customer is blocked and the SLA is at risk."}


def request_change(server, token, args):
    response, message = server.call("set_ticket_priority", args, token=token)
    assert response.status_code == 200, response.text[:300]
    assert is_error_result(message), f"ran without approval: {message}"
    match = PENDING.search(result_text(message))
    assert match, result_text(message)
    return match.group(1), match.group(2)


def approve(server, token, id, digest):
    response, message = server.call(
        "charter_decide_approval", {"id": id, "decision": "approve", "operation_sha256": digest}, token=token
    )
    assert response.status_code == 200, response.text[:300]
    assert not is_error_result(message), result_text(message)


def runs(replicas, digest):
    """Intent records (a handler about to run) on the approval of operation `digest`, across every
    replica's audit log."""
    return [
        record
        for server in replicas
        for record in server.audit()
        if record.get("event") == "intent" and (record.get("approval") or {}).get("operation_hash") == digest
    ]


def test_requested_on_one_replica_approved_on_the_other_runs_once(replicas, agent, lead):
    a, b = replicas
    token, ticket = agent
    args = arguments(ticket, "urgent")
    operation, digest = request_change(a, token, args)
    # The other replica lists it and decides it: the store is shared.
    response, message = b.call("charter_pending_approvals", {}, token=lead)
    assert operation in {p["id"] for p in message["result"]["structuredContent"]["pending"]}
    approve(b, lead, operation, digest)
    response, message = b.call("set_ticket_priority", args, token=token)
    assert not is_error_result(message), result_text(message)
    response, message = a.call("set_ticket_priority", args, token=token)
    assert is_error_result(message) and PENDING.search(result_text(message)), "one approval ran twice"
    time.sleep(1.5)  # records not waited for reach the file within about a second
    assert len(runs(replicas, digest)) == 1


def test_sixteen_concurrent_consumers_across_replicas_run_once(replicas, agent, lead):
    a, b = replicas
    token, ticket = agent
    args = arguments(ticket, "high")
    operation, digest = request_change(a, token, args)
    approve(b, lead, operation, digest)
    client = RoundRobin(replicas)
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def consume():
        barrier.wait()
        response, message = client.call("set_ticket_priority", args, token)
        with lock:
            results.append((response.status_code, message))

    threads = [threading.Thread(target=consume) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 16
    ran = [m for status, m in results if status == 200 and m and not is_error_result(m)]
    assert len(ran) == 1, [result_text(m) if m else status for status, m in results]
    time.sleep(1.5)
    assert len(runs(replicas, digest)) == 1


def test_the_rate_limit_is_shared_by_both_replicas(replicas, mint):
    # list_assigned_tickets allows 60 calls a minute per caller: 80 calls alternating between the
    # replicas must admit 60 in all, not 60 on each.
    token = mint.token(sub="replica-rate-" + secrets.token_hex(3), scopes=["tickets.read"])
    client = RoundRobin(replicas)
    statuses = []
    for _ in range(80):
        response, message = client.call("list_assigned_tickets", {}, token)
        statuses.append(response.status_code)
    admitted = statuses.count(200)
    assert statuses.count(429) == 80 - admitted, statuses
    assert admitted == 60, f"{admitted} of 80 calls admitted across two replicas; the contract allows 60 a minute"


def test_with_redis_stopped_writes_are_refused_and_reads_served(replicas, agent, mint):
    a, b = replicas
    token, ticket = agent
    services("stop", "redis")
    try:
        reader = mint.token(sub="replica-reader-" + secrets.token_hex(3), scopes=["tickets.read"])
        response, message = a.call("list_assigned_tickets", {}, token=reader)
        assert response.status_code == 200 and not is_error_result(message), response.text[:300]
        response, message = b.call(
            "create_reply_draft", {"ticket_id": ticket, "body": "We are looking into it right now."}, token=token
        )
        refused = response.status_code in (429, 503) or (message and is_error_result(message))
        assert refused, f"a draft ran with the shared rate limit unavailable: {response.status_code} {response.text[:300]}"
        assert "rate" in response.text.lower(), response.text[:300]
    finally:
        services("start", "redis")
    # Back: drafts run again.
    deadline = time.monotonic() + 30
    while True:
        response, message = b.call(
            "create_reply_draft", {"ticket_id": ticket, "body": "We are looking into it right now."}, token=token
        )
        if response.status_code == 200 and not is_error_result(message):
            break
        assert time.monotonic() < deadline, f"drafts still refused after Redis returned: {response.text[:300]}"
        time.sleep(1)


def test_pending_approvals_survive_a_postgres_restart(replicas, agent, lead):
    a, b = replicas
    token, ticket = agent
    args = arguments(ticket, "low")
    operation, digest = request_change(a, token, args)
    services("restart", "postgres")
    deadline = time.monotonic() + 30
    while True:
        response, message = b.call(
            "charter_decide_approval", {"id": operation, "decision": "approve", "operation_sha256": digest}, token=lead
        )
        if response.status_code == 200 and not is_error_result(message):
            break
        assert time.monotonic() < deadline, f"no decision after PostgreSQL restarted: {response.text[:300]}"
        time.sleep(1)
    response, message = a.call("set_ticket_priority", args, token=token)
    assert not is_error_result(message), result_text(message)
    time.sleep(1.5)
    assert len(runs(replicas, digest)) == 1


def test_a_replica_restarted_on_its_volume_continues_its_audit_chain(replicas, mint):
    a, _ = replicas
    before = a.audit()
    assert before, "replica-0 wrote no audit records"
    a.stop()
    a.start_http()
    token = mint.token(sub="replica-restart", scopes=["tickets.read"])
    response, message = a.call("list_assigned_tickets", {}, token=token)
    assert response.status_code == 200, response.text[:300]
    after = a.wait_audit(lambda r: r["seq"] > before[-1]["seq"])
    assert after and after[0]["seq"] == before[-1]["seq"] + 1 and after[0]["prev"] == before[-1]["hash"]
    verified = a.verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr


# ------------------------------- user confirmation by retry across replicas (change-plan, SEP-2322)


@pytest.fixture(scope="module")
def planners(workroot, jwks, shared_state):
    """Two change-plan replicas with one request-state key and one Redis, as the generated
    StatefulSet runs them, and a third whose key differs."""
    key = secrets.token_urlsafe(48)
    config = f"""
[rate_limits]
redis_url_env = "CHANGE_PLAN_REDIS_URL"
key_prefix = "{shared_state['prefix']}-plans"

[request_state]
key_env = "CHANGE_PLAN_REQUEST_STATE_KEY"
"""
    started = []
    for label, state_key in (("plans-0", key), ("plans-1", key), ("plans-other-key", secrets.token_urlsafe(48))):
        env = {"CHANGE_PLAN_REDIS_URL": shared_state["redis"], "CHANGE_PLAN_REQUEST_STATE_KEY": state_key}
        server = Server("change-plan", workroot / label, jwks=jwks, env=env, label=label, config=config)
        server.start_http()
        started.append(server)
    yield started
    for server in started:
        server.stop()


def test_a_confirmation_asked_on_one_replica_runs_once_on_another(planners, mint):
    from test_approvals import YES, call_in_rounds, draft_plan, open_request, planner_token

    a, b, other = planners
    token = planner_token(mint, "replica-confirmer")
    # change-plan keeps drafted plans in its process, so the plan is drafted where the write will
    # run; the first round on `a` runs no handler (the confirmation comes first).
    arguments = open_request(draft_plan(b, token))
    first = call_in_rounds(a, token, arguments)
    state = first["result"]["requestState"]

    # Another replica with the same key takes the retry and runs the write once.
    id = next_id()
    message = call_in_rounds(b, token, arguments, YES, state, id=id)
    assert not is_error_result(message) and "CHG" in result_text(message), message
    assert [r for r in b.audit() if r.get("event") == "intent" and r.get("request_id") == str(id)]

    # The same state replayed to the first replica: spent in the shared Redis, refused.
    replay = next_id()
    message = call_in_rounds(a, token, arguments, YES, state, id=replay)
    assert is_error_result(message) and "already used" in result_text(message), message
    assert not [r for r in a.audit() if r.get("event") == "intent" and r.get("request_id") == str(replay)]

    # A replica with another key cannot open it at all.
    message = call_in_rounds(other, token, arguments, YES, state)
    assert message["error"]["code"] == -32602 and "requestState was refused" in message["error"]["message"]
