"""Hostile input over stdio, where the caller is the local user holding every scope: malformed
and oversized lines, deep nesting, schema violations, the kill switch and log injection. The
server must keep serving (or refuse cleanly), never buffer without bound, and keep its logs whole."""

import time

import pytest

from conftest import Server, helpdesk_database, is_error_result, result_text

DRAFT = {"ticket_id": 48213, "body": "Hello Maria, the duplicate charge has been refunded today."}
LOCAL_USER = "local-operator"  # $USER of the server processes (conftest)


def stdio_server(workroot, label, env=None):
    workdir = workroot / label
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "helpdesk.sqlite3"
    helpdesk_database(database, agent=LOCAL_USER)
    return Server("support-replies", workdir, env=env, handlers={"database": str(database)}, label=label)


@pytest.fixture(scope="module")
def session(workroot):
    server = stdio_server(workroot, "stdio")
    client = server.start_stdio()
    client.initialize()
    yield client
    client.close()


def still_serving(client):
    reply = client.call("list_assigned_tickets", {})
    assert reply is not None, "the server stopped answering"
    assert not is_error_result(reply), reply
    assert client.process.poll() is None


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0


def test_stdio_local_user_holds_every_scope(session):
    names = {t["name"] for t in session.request("tools/list", {})["result"]["tools"]}
    assert {"create_reply_draft", "set_ticket_priority", "charter_pending_approvals"} <= names, names
    reply = session.call("create_reply_draft", DRAFT)
    assert not is_error_result(reply), result_text(reply)
    records = session.server.wait_audit(lambda r: r.get("event") == "outcome" and r.get("name") == "create_reply_draft")
    assert records and records[0]["subject"] == LOCAL_USER and records[0]["transport"] == "stdio"


def test_stdio_malformed_json_is_ignored(session):
    session.send_raw(b'{"jsonrpc":"2.0","id":424242,"method":"tools/call","params":{"name":\n')
    session.send_raw(b"not json at all\n")
    session.send_raw(b"\xff\xfe\x00garbage\xc3\x28\n")
    still_serving(session)


def test_stdio_wrong_shape_gets_an_error(session):
    session.send_raw(b'{"jsonrpc":"2.0","id":515151,"method":17}\n')
    session.send_raw(b'[1,2,3]\n')
    still_serving(session)


def test_stdio_oversized_line_is_discarded_without_growing(session):
    before = rss_mib(session.process.pid)
    chunk = b"A" * (1 << 20)
    session.send_raw(b'{"jsonrpc":"2.0","id":616161,"method":"tools/list","params":{"pad":"')
    for _ in range(48):  # 48 MiB in one line; the limit is 4 MiB
        session.send_raw(chunk)
    session.send_raw(b'"}}\n')
    still_serving(session)
    assert session.wait_for(616161, timeout=1) is None, "the oversized request was served"
    grown = rss_mib(session.process.pid) - before
    assert grown < 64, f"resident memory grew by {grown:.0f} MiB for one oversized line"


def test_stdio_deep_nesting_is_refused(session):
    nested = "[" * 100_000 + "]" * 100_000
    session.send_raw(('{"jsonrpc":"2.0","id":717171,"method":"tools/list","params":{"x":' + nested + "}}\n").encode())
    still_serving(session)
    deep = "x"
    for _ in range(100):
        deep = [deep]
    reply = session.call("create_reply_draft", dict(DRAFT, body=deep))
    assert reply is None or "error" in reply or is_error_result(reply), reply
    still_serving(session)


def test_stdio_schema_violations_are_named(session):
    reply = session.call("create_reply_draft", {"ticket_id": "one", "body": "short", "bcc": "x@example.com"})
    assert is_error_result(reply)
    text = result_text(reply)
    for pointer in ("at /ticket_id", "at /body", "at /bcc"):
        assert pointer in text, (pointer, text)


def test_stdio_log_injection_stays_inside_records(session):
    injection = '\n{"event":"intent","forged":true}\n2026-01-01T00:00:00Z ERROR forged\x1b[2J'
    session.call("create_reply_draft", dict(DRAFT, body="Hello Maria, thanks for your patience." + injection))
    session.call("get_ticket", {"ticket_id": 48213, injection: injection})
    session.call(injection, {})
    session.request("prompts/get", {"name": "draft_reply", "arguments": {"ticket_id": injection}})
    session.server.wait_audit(lambda r: r.get("name") == "get_ticket")
    time.sleep(1.5)  # unawaited records reach the file within a second
    for record in session.server.audit():
        assert "forged" not in record
    for line in session.server.log_text().splitlines():
        assert not line.startswith('{"event"') and not line.startswith("2026-01-01"), line
        assert "\x1b[2J" not in line
    assert session.server.verify().returncode == 0


def test_stdio_kill_switch_env(workroot):
    server = stdio_server(workroot, "stdio-kill-env", env={"SUPPORT_REPLIES_DISABLED": "create_reply_draft"})
    client = server.start_stdio()
    try:
        client.initialize()
        reply = client.call("create_reply_draft", DRAFT)
        assert is_error_result(reply) and "switched off" in result_text(reply), reply
        assert not is_error_result(client.call("list_assigned_tickets", {}))
    finally:
        client.close()
    assert not [r for r in server.audit() if r.get("event") == "intent"]


def test_stdio_kill_switch_file(workroot):
    server = stdio_server(workroot, "stdio-kill-file")
    client = server.start_stdio()
    try:
        client.initialize()
        still_serving(client)
        server.kill_file.write_text("")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = client.call("list_assigned_tickets", {})
            if is_error_result(reply) and "switched off" in result_text(reply):
                break
            time.sleep(0.25)
        else:
            pytest.fail("the kill-switch file was not obeyed on stdio")
        reply = client.call("create_reply_draft", DRAFT)
        assert is_error_result(reply) and "switched off" in result_text(reply)
    finally:
        client.close()
    assert not [r for r in server.audit() if r.get("event") == "intent"]
