"""Request floods over HTTP: the contract's per-caller, per-tool rate limits answer 429 with
Retry-After, other callers and other tools are unaffected, and floods of valid, invalid and
unauthenticated requests leave the server serving."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import SCOPES_ALL, is_error_result, next_id, support_server

DRAFT = {"ticket_id": 48213, "body": "Hello Maria, the duplicate charge has been refunded today."}


@pytest.fixture(scope="module")
def server(workroot, jwks):
    server = support_server(workroot, jwks, "limits")
    yield server
    server.stop()


def test_rate_limit_answers_429_with_retry_after(server, mint):
    # create_reply_draft: 20/minute per caller. `limited` owns no ticket, so each admitted call
    # ends in the handler's refusal; the limit counts calls, not successes.
    token = mint.token(sub="limited", scopes=SCOPES_ALL)
    statuses = []
    limited = None
    for _ in range(60):
        response, _ = server.call("create_reply_draft", DRAFT, token=token)
        statuses.append(response.status_code)
        if response.status_code == 429:
            limited = response
            break
    assert limited is not None, f"60 calls in a row were never limited: {statuses}"
    assert statuses.count(200) >= 20, statuses  # the burst the contract allows
    retry_after = limited.headers.get("retry-after")
    assert retry_after and retry_after.isdigit() and int(retry_after) >= 1, limited.headers
    assert limited.json()["error"] == "rate_limited"


def test_rate_limit_is_per_caller(server, mint):
    first = mint.token(sub="flooder", scopes=SCOPES_ALL)
    while server.call("create_reply_draft", DRAFT, token=first)[0].status_code != 429:
        pass
    response, message = server.call("create_reply_draft", DRAFT, token=mint.token(sub="alice", scopes=SCOPES_ALL))
    assert response.status_code == 200 and not is_error_result(message), response.text[:300]


def test_rate_limit_is_per_tool(server, mint):
    token = mint.token(sub="flooder-2", scopes=SCOPES_ALL)
    while server.call("create_reply_draft", DRAFT, token=token)[0].status_code != 429:
        pass
    response, message = server.call("list_assigned_tickets", {}, token=token)
    assert response.status_code == 200 and not is_error_result(message)


def test_rate_limited_calls_never_reach_the_handler(server, mint):
    token = mint.token(sub="flooder-3", scopes=SCOPES_ALL)
    refused_ids = []
    for _ in range(40):
        id = next_id()
        if server.call("create_reply_draft", DRAFT, token=token, id=id)[0].status_code == 429:
            refused_ids.append(str(id))
    assert refused_ids
    server.wait_audit(lambda r: False, timeout=2)  # let unawaited records reach the file
    intents = {r.get("request_id") for r in server.audit() if r.get("event") == "intent" and r.get("subject") == "flooder-3"}
    assert not intents & set(refused_ids)


def flood(server, calls, workers=24):
    def one(call):
        try:
            return call()
        except Exception as e:  # a dropped connection is a failure of the server to answer
            return e

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda c: one(c), calls))


def test_concurrent_flood_by_one_caller_is_limited_not_fatal(server, mint):
    token = mint.token(sub="burst", scopes=["tickets.read"])
    started = time.monotonic()
    results = flood(server, [lambda: server.call("list_assigned_tickets", {}, token=token)[0] for _ in range(200)])
    elapsed = time.monotonic() - started
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    statuses = [r.status_code for r in results]
    assert set(statuses) <= {200, 429, 503}, sorted(set(statuses))
    # 60/minute: a burst of 60, then one more per second of the flood.
    assert statuses.count(200) <= 60 + int(elapsed) + 2, (statuses.count(200), elapsed)
    assert statuses.count(429) > 0
    assert server.client.get(server.base + "/healthz").status_code == 200


def test_flood_of_unauthenticated_requests_is_refused_cheaply(server, mint, jwks):
    before = jwks.count()
    results = flood(server, [lambda i=i: server.rpc("tools/list", {}, token=f"garbage.{i}.token") for i in range(200)])
    assert all(not isinstance(r, Exception) and r.status_code == 401 for r in results)
    assert jwks.count() - before <= 1, "garbage tokens made the server fetch keys"
    response, message = server.call("list_assigned_tickets", {}, token=mint.token(sub="alice", scopes=["tickets.read"]))
    assert response.status_code == 200


def test_flood_of_invalid_calls_leaves_the_server_serving(server, mint):
    tokens = [mint.token(sub=f"invalid-{i}", scopes=SCOPES_ALL) for i in range(8)]
    bad = {"ticket_id": -1, "body": 5, "extra": [1, 2, 3]}
    results = flood(server, [lambda i=i: server.call("create_reply_draft", bad, token=tokens[i % 8])[0] for i in range(160)])
    assert all(not isinstance(r, Exception) and r.status_code in (200, 429) for r in results)
    assert server.alive()
    response, message = server.call("list_assigned_tickets", {}, token=mint.token(sub="alice", scopes=["tickets.read"]))
    assert response.status_code == 200 and not is_error_result(message)


def test_concurrent_unknown_key_tokens_collapse_into_few_key_fetches(workroot, jwks, mint):
    # Refetches for unknown key ids at most once a second here (30 s by default), so the window
    # is open during the flood: concurrent misses must share one fetch, not make one each.
    server = support_server(workroot, jwks, "limits-jwks", config="[oauth]\nrefresh_min_interval_secs = 1\n")
    try:
        time.sleep(1.5)
        tokens = [mint.token(sub=f"rogue-{i}", scopes=SCOPES_ALL, key="rogue-rsa") for i in range(120)]
        before = jwks.count()
        started = time.monotonic()
        results = flood(server, [lambda t=t: server.rpc("tools/list", {}, token=t) for t in tokens], workers=32)
        elapsed = time.monotonic() - started
        assert all(not isinstance(r, Exception) and r.status_code == 401 for r in results)
        fetches = jwks.count() - before
        assert 1 <= fetches <= int(elapsed) + 2, f"{fetches} key fetches for 120 unknown-key tokens in {elapsed:.1f} s"
    finally:
        server.stop()
