"""Hostile requests over HTTP with valid tokens: malformed and oversized bodies, deep nesting,
schema violations and extra properties, scope escalation, someone else's data, forged Origin and
Host headers, and log injection through arguments. Nothing here may run a handler it should not,
crash the server or corrupt its logs."""

import json

import pytest

from conftest import SCOPES_ALL, is_error_result, next_id, result_text, rpc_message, support_server

DRAFT = {"ticket_id": 48213, "body": "Hello Maria, the duplicate charge has been refunded today."}


@pytest.fixture(scope="module")
def server(workroot, jwks):
    server = support_server(workroot, jwks, "requests")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token(mint):
    return mint.token(sub="alice", scopes=SCOPES_ALL)


def intents_for(server, request_id):
    return [r for r in server.audit() if r.get("event") == "intent" and r.get("request_id") == str(request_id)]


def assert_still_serving(server, token):
    response, message = server.call("list_assigned_tickets", {}, token=token)
    assert response.status_code == 200 and not is_error_result(message), response.text[:500]
    assert server.alive()


# ---------------------------------------------------------------- malformed and oversized


def test_malformed_json_body_is_refused(server, token):
    response = server.post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":', token=token, raw=True)
    # Streamable HTTP: a body that is not JSON is a JSON-RPC parse error, answered 400.
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.json()["error"]["code"] == -32700, response.text[:300]
    assert response.json()["id"] is None
    assert_still_serving(server, token)


def test_a_body_that_is_not_utf8_is_a_parse_error(server, token):
    """Invalid UTF-8 inside a string the gate does not read (found by fuzzing the gate's body
    handling): still not JSON, so -32700 and 400, never passed on."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_assigned_tickets","arguments":{},"x":"\x81"}}'
    response = server.client.post(server.url, content=body, headers=server.headers(token))
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.json()["error"]["code"] == -32700, response.text[:300]
    assert "UTF-8" in response.json()["error"]["message"]
    assert_still_serving(server, token)


def test_non_jsonrpc_json_is_refused(server, token):
    for body in ('"just a string"', "12345", "null", '{"hello":"world"}', '{"jsonrpc":"1.0","id":1,"method":7}'):
        response = server.post(body, token=token, raw=True)
        message = rpc_message(response) if response.status_code == 200 else None
        assert response.status_code >= 400 or (message and "error" in message), (body, response.status_code, response.text[:300])
    assert_still_serving(server, token)


def test_invalid_utf8_body_is_refused(server, token):
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"\xff\xfe"}}'
    response = server.client.post(server.url, content=body, headers=server.headers(token))
    assert response.status_code >= 400 or "error" in (rpc_message(response) or {}), response.text[:300]
    assert_still_serving(server, token)


def test_oversized_body_is_refused_with_413(server, token):
    arguments = dict(DRAFT, body="x" * (70 * 1024))  # the contract's max_request is 64 KiB
    response, _ = server.call("create_reply_draft", arguments, token=token)
    assert response.status_code == 413, response.status_code
    assert response.json()["error"] == "request_too_large"
    assert_still_serving(server, token)


def test_oversized_chunked_body_without_length_is_refused(server, token):
    def chunks():
        yield b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_reply_draft","arguments":{"ticket_id":48213,"body":"'
        for _ in range(200):
            yield b"y" * 4096  # 800 KiB in all, never announced in Content-Length
        yield b'"}}}'

    response = server.client.post(server.url, content=chunks(), headers=server.headers(token))
    assert response.status_code == 413, response.status_code
    assert_still_serving(server, token)


def test_deeply_nested_arguments_are_refused_with_400(server, token):
    nested = "x"
    for _ in range(200):
        nested = [nested]
    id = next_id()
    response, _ = server.call("create_reply_draft", dict(DRAFT, body=nested), token=token, id=id)
    assert response.status_code == 400, response.status_code
    assert response.json()["error"] == "too_deep"
    assert not intents_for(server, id)
    assert_still_serving(server, token)


def test_very_deep_nesting_does_not_crash_the_parser(server, token):
    body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":' + "[" * 20_000 + "]" * 20_000 + "}"
    response = server.post(body, token=token, raw=True)
    assert response.status_code == 400
    assert_still_serving(server, token)


def test_brackets_inside_strings_do_not_count_as_nesting(server, token):
    arguments = dict(DRAFT, body="Hello Maria, " + "[{" * 100 + " brackets in prose are fine.")
    response, message = server.call("create_reply_draft", arguments, token=token)
    assert response.status_code == 200, response.text[:300]
    assert not is_error_result(message), result_text(message)


# ---------------------------------------------------------------- schema violations


def test_wrong_types_are_named_with_json_pointers(server, token):
    id = next_id()
    response, message = server.call("create_reply_draft", {"ticket_id": "48213", "body": 42}, token=token, id=id)
    assert response.status_code == 200
    assert is_error_result(message)
    text = result_text(message)
    assert "invalid arguments" in text
    assert "at /ticket_id" in text and "at /body" in text, text
    assert not intents_for(server, id), "a call with invalid arguments reached the intent stage"


def test_out_of_range_and_pattern_violations_are_named(server, token):
    arguments = {"ticket_id": 0, "body": "too short", "language": "english"}
    response, message = server.call("create_reply_draft", arguments, token=token)
    assert is_error_result(message)
    text = result_text(message)
    for pointer in ("at /ticket_id", "at /body", "at /language"):
        assert pointer in text, (pointer, text)


def test_missing_required_argument_is_named(server, token):
    response, message = server.call("create_reply_draft", {"ticket_id": 48213}, token=token)
    assert is_error_result(message)
    assert "body" in result_text(message)


def test_extra_properties_are_named(server, token):
    id = next_id()
    arguments = dict(DRAFT, send_immediately=True, **{"cc/../admin": "x"})
    response, message = server.call("create_reply_draft", arguments, token=token, id=id)
    assert is_error_result(message)
    text = result_text(message)
    assert "at /send_immediately" in text and "unknown argument" in text, text
    assert "at /cc~1..~1admin" in text, text
    assert not intents_for(server, id)


def test_nested_extra_properties_and_enum_violations_are_named(server, token):
    arguments = {"statuses": ["open", "deleted", "open"], "limit": 500, "updated_since": "yesterday"}
    response, message = server.call("list_assigned_tickets", arguments, token=token)
    assert is_error_result(message)
    text = result_text(message)
    for pointer in ("at /statuses", "at /limit", "at /updated_since"):
        assert pointer in text, (pointer, text)


def test_arguments_that_are_not_an_object_are_refused(server, token):
    for arguments in (["ticket_id", 48213], "ticket_id=48213", 48213):
        response = server.rpc("tools/call", {"name": "create_reply_draft", "arguments": arguments}, token=token)
        message = rpc_message(response)
        assert response.status_code >= 400 or "error" in message or is_error_result(message), response.text[:300]
    assert_still_serving(server, token)


def test_unknown_tool_is_refused(server, token):
    for name in ("Create_Reply_Draft", "create_reply_draft ", "send_reply", "../create_reply_draft"):
        response, message = server.call(name, DRAFT, token=token)
        assert response.status_code in (200, 400, 404), response.status_code
        assert message is None or "error" in message or is_error_result(message), message


# ---------------------------------------------------------------- scope escalation


def test_tools_list_shows_only_what_the_scopes_allow(server, mint):
    response = server.rpc("tools/list", {}, token=mint.token(sub="reader", scopes=["tickets.read"]))
    names = {t["name"] for t in rpc_message(response)["result"]["tools"]}
    assert names == {"list_assigned_tickets", "get_ticket"}, names


def test_call_without_scope_is_refused_with_403(server, mint):
    id = next_id()
    token = mint.token(sub="alice", scopes=["tickets.read"])
    response, _ = server.call("create_reply_draft", DRAFT, token=token, id=id)
    assert response.status_code == 403, response.status_code
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="replies.draft"' in challenge, challenge
    assert not intents_for(server, id)
    assert server.wait_audit(lambda r: r.get("event") == "denied" and r.get("reason") == "insufficient_scope")


def test_resource_read_without_scope_is_refused(server, mint):
    token = mint.token(sub="alice", scopes=["tickets.read"])
    response = server.rpc("resources/read", {"uri": "support://guidelines/replies"}, token=token)
    assert response.status_code == 403, response.text[:300]
    assert 'scope="replies.draft"' in response.headers["www-authenticate"]
    listed = rpc_message(server.rpc("resources/list", {}, token=token))["result"]["resources"]
    assert not listed, listed


def test_prompt_get_without_scope_is_refused(server, mint):
    token = mint.token(sub="alice", scopes=["tickets.read"])
    response = server.rpc("prompts/get", {"name": "draft_reply", "arguments": {"ticket_id": "48213"}}, token=token)
    assert response.status_code == 403, response.text[:300]
    assert "replies.draft" in response.headers["www-authenticate"]


def test_approval_tools_are_hidden_and_refused_without_approve_scope(server, mint):
    token = mint.token(sub="alice", scopes=SCOPES_ALL)
    names = {t["name"] for t in rpc_message(server.rpc("tools/list", {}, token=token))["result"]["tools"]}
    assert not {"charter_pending_approvals", "charter_decide_approval"} & names, names
    for tool, arguments in (
        ("charter_pending_approvals", {}),
        ("charter_decide_approval", {"id": "x", "decision": "approve", "operation_sha256": "0" * 64}),
    ):
        response, message = server.call(tool, arguments, token=token)
        assert response.status_code == 403 or is_error_result(message), (tool, response.status_code, message)


def test_batch_cannot_smuggle_a_call_past_the_scope_check(server, mint):
    token = mint.token(sub="alice", scopes=["tickets.read"])
    id = next_id()
    batch = [
        {"jsonrpc": "2.0", "id": next_id(), "method": "tools/call", "params": {"name": "list_assigned_tickets", "arguments": {}}},
        {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "create_reply_draft", "arguments": DRAFT}},
    ]
    response = server.post(batch, token=token)
    assert response.status_code != 200 or "structuredContent" not in response.text or "draft_id" not in response.text
    assert not intents_for(server, id)


def test_another_agents_ticket_is_refused(server, mint):
    token = mint.token(sub="alice", scopes=SCOPES_ALL)
    response, message = server.call("get_ticket", {"ticket_id": 48230}, token=token)
    assert is_error_result(message)
    assert "Hannah" not in json.dumps(message), "someone else's customer leaked"
    response, message = server.call("create_reply_draft", dict(DRAFT, ticket_id=48230), token=token)
    assert is_error_result(message)


def test_subject_with_no_tickets_sees_none(server, mint):
    token = mint.token(sub="mallory", scopes=SCOPES_ALL)
    response, message = server.call("list_assigned_tickets", {}, token=token)
    assert message["result"]["structuredContent"]["tickets"] == []


# ---------------------------------------------------------------- Origin and Host


def test_forged_origin_is_refused(server, token):
    id = next_id()
    response, _ = server.call("create_reply_draft", DRAFT, token=token, id=id, headers={"Origin": "https://evil.example.com"})
    assert response.status_code in (400, 403), response.status_code
    assert not intents_for(server, id)


def test_null_origin_is_refused(server, token):
    response, _ = server.call("list_assigned_tickets", {}, token=token, headers={"Origin": "null"})
    assert response.status_code in (400, 403), response.status_code


def test_origin_of_a_lookalike_host_is_refused(server, token):
    origin = f"http://127.0.0.1.evil.example.com:{server.port}"
    response, _ = server.call("list_assigned_tickets", {}, token=token, headers={"Origin": origin})
    assert response.status_code in (400, 403), response.status_code


@pytest.mark.parametrize("origin", ["https://evil.example.com", "null", "http://127.0.0.1.evil.example.com"])
@pytest.mark.parametrize("with_token", [False, True])
def test_a_foreign_origin_is_403_before_authentication(server, token, origin, with_token):
    """The specification: a present, invalid Origin MUST get 403, token or not (not 401)."""
    response, _ = server.call("list_assigned_tickets", {}, token=token if with_token else None, headers={"Origin": origin})
    assert response.status_code == 403, (response.status_code, response.text[:300])
    assert response.json()["error"] == "forbidden_origin"


def test_a_foreign_host_is_403_before_authentication(server):
    response, _ = server.call("list_assigned_tickets", {}, headers={"Host": "attacker.test"})
    assert response.status_code == 403, (response.status_code, response.text[:300])


def test_same_origin_is_accepted(server, token):
    response, message = server.call("list_assigned_tickets", {}, token=token, headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert response.status_code == 200, response.text[:300]


def test_forged_host_is_refused(server, token):
    id = next_id()
    for host in ("evil.example.com", f"attacker.test:{server.port}", "127.0.0.1.nip.io"):
        response, _ = server.call("create_reply_draft", DRAFT, token=token, id=id, headers={"Host": host})
        assert response.status_code in (400, 403, 421), (host, response.status_code)
    assert not intents_for(server, id)


# ---------------------------------------------------------------- log injection


INJECTION = '\n{"event":"outcome","seq":1,"prev":"' + "0" * 64 + '","forged":true}\r\n2026-01-01T00:00:00Z ERROR forged log line\u2028\x1b[31m'


def test_log_injection_through_arguments_stays_inside_its_record(server, token):
    before = server.log_text()
    calls = [
        ("create_reply_draft", dict(DRAFT, body="Hello Maria, thanks for waiting." + INJECTION)),
        ("create_reply_draft", dict(DRAFT, language=INJECTION)),
        ("create_reply_draft", dict(DRAFT, **{INJECTION: 1})),
        ("get_ticket", {"ticket_id": 48213, INJECTION: INJECTION}),
        (INJECTION, {"x": INJECTION}),
    ]
    for tool, arguments in calls:
        server.call(tool, arguments, token=token)
    server.rpc("prompts/get", {"name": "draft_reply", "arguments": {"ticket_id": INJECTION, "points": INJECTION}}, token=token)
    server.rpc("resources/read", {"uri": "support://guidelines/" + INJECTION}, token=token)
    assert server.wait_audit(lambda r: r.get("name") == "get_ticket" and r.get("event") == "denied")
    # Every audit line is still one whole, parseable record and nothing forged appeared.
    for record in server.audit():
        line = json.dumps(record)
        assert "forged" not in record, line
        assert set(record) >= {"seq", "prev", "hash"}, line
    assert server.verify().returncode == 0
    # No server log line starts with what the attacker wrote.
    added = server.log_text()[len(before):]
    for line in added.splitlines():
        assert not line.startswith('{"event"'), line
        assert "ERROR forged log line" not in line or not line.startswith("2026-01-01"), line
        assert "\x1b[31m" not in line, "a terminal escape from a request reached the log"


def test_personal_data_in_arguments_is_redacted_in_the_audit_log(server, token):
    marker = "Personal detail 0xC0FFEE for Maria Santos, card ending 4242."
    id = next_id()
    response, message = server.call("create_reply_draft", dict(DRAFT, body=marker), token=token, id=id)
    assert not is_error_result(message), result_text(message)
    server.wait_audit(lambda r: r.get("request_id") == str(id) and r.get("event") == "outcome")
    records = [r for r in server.audit() if r.get("request_id") == str(id)]
    assert {r["event"] for r in records} >= {"intent", "outcome"}, records
    for record in records:
        assert record["arguments"]["body"] == "[redacted]", record
    assert "0xC0FFEE" not in server.audit_path.read_text()
    assert "0xC0FFEE" not in server.log_text()


def test_invalid_personal_data_is_not_quoted_into_the_audit_log(server, token):
    marker = "Maria-0xBADC0DE"  # too short for `body` (20 characters at least) and no BCP 47 tag
    response, message = server.call("create_reply_draft", {"ticket_id": 48213, "body": marker}, token=token)
    assert is_error_result(message)
    response, message = server.call("create_reply_draft", dict(DRAFT, language=marker), token=token)
    assert is_error_result(message)
    assert server.wait_audit(lambda r: r.get("reason") == "invalid_arguments")
    server.wait_audit(lambda r: False, timeout=2)
    assert marker not in server.audit_path.read_text()


def test_unknown_names_do_not_become_metric_labels(server, token):
    # Attacker-chosen names must not reach /metrics (label injection, unbounded cardinality).
    for i in range(5):
        server.call(f'zz_unknown_{i}"}} injected', {}, token=token)
        server.rpc("resources/read", {"uri": f"support://zz_unknown_{i}"}, token=token)
        server.rpc("prompts/get", {"name": f"zz_prompt_{i}"}, token=token)
    metrics = server.client.get(server.base + "/metrics")
    assert metrics.status_code == 200
    assert "zz_" not in metrics.text and "injected" not in metrics.text


# ------------------------------------------------- the statuses Streamable HTTP names, one by one

LIST = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


@pytest.mark.parametrize(
    "method, path, headers, expected",
    [
        # Accept must admit JSON and SSE: 406 Not Acceptable.
        ("POST", "", {"Accept": "text/plain"}, 406),
        # The body must be JSON: 415 Unsupported Media Type.
        ("POST", "", {"Content-Type": "text/plain"}, 415),
        # A stateless server offers no GET stream and no session to end: 405, for any other verb too.
        ("GET", "", {"Accept": "text/event-stream"}, 405),
        ("DELETE", "", {}, 405),
        ("PUT", "", {}, 405),
        # A protocol version the server does not speak: 400.
        ("POST", "", {"MCP-Protocol-Version": "1999-01-01"}, 400),
        # Anything but the MCP path: 404.
        ("POST", "/../other", {}, 404),
    ],
)
def test_streamable_http_statuses(server, token, method, path, headers, expected):
    url = server.url + path if not path.startswith("/..") else server.url.rsplit("/", 1)[0] + path[3:]
    response = server.client.request(method, url, content=LIST, headers=server.headers(token, headers))
    assert response.status_code == expected, (method, path, headers, response.status_code, response.text[:200])
    assert_still_serving(server, token)
