"""The kill switch: the contract's environment variable (whole server or named tools) and the
file operators create, edit and delete while the server runs. Switched-off calls never reach a
handler; every change is audited."""

import time

import pytest

from conftest import SCOPES_ALL, is_error_result, next_id, result_text, support_server

DRAFT = {"ticket_id": 48213, "body": "Hello Maria, the duplicate charge has been refunded today."}


def switched_off(response, message):
    if response.status_code == 503:
        return response.json().get("error") == "disabled"
    return response.status_code == 200 and is_error_result(message) and "switched off" in result_text(message)


def intents(server, id):
    return [r for r in server.audit() if r.get("event") == "intent" and r.get("request_id") == str(id)]


@pytest.fixture(scope="module")
def token(mint):
    return mint.token(sub="alice", scopes=SCOPES_ALL)


def test_env_switch_turns_the_whole_server_off(workroot, jwks, token):
    server = support_server(workroot, jwks, "kill-env-all", env={"SUPPORT_REPLIES_DISABLED": "all"})
    try:
        id = next_id()
        response, message = server.call("create_reply_draft", DRAFT, token=token, id=id)
        assert switched_off(response, message), (response.status_code, response.text[:300])
        response, message = server.call("list_assigned_tickets", {}, token=token)
        assert switched_off(response, message), (response.status_code, response.text[:300])
        response = server.rpc("resources/read", {"uri": "support://guidelines/replies"}, token=token)
        assert response.status_code >= 400 or "error" in response.json(), response.text[:300]
        assert not intents(server, id)
    finally:
        server.stop()


def test_env_switch_turns_named_tools_off(workroot, jwks, token):
    server = support_server(workroot, jwks, "kill-env-tool", env={"SUPPORT_REPLIES_DISABLED": "create_reply_draft, set_ticket_priority"})
    try:
        id = next_id()
        response, message = server.call("create_reply_draft", DRAFT, token=token, id=id)
        assert switched_off(response, message), (response.status_code, response.text[:300])
        response, message = server.call("list_assigned_tickets", {}, token=token)
        assert response.status_code == 200 and not is_error_result(message), response.text[:300]
        assert not intents(server, id)
    finally:
        server.stop()


def test_env_switch_off_values_leave_the_server_on(workroot, jwks, token):
    server = support_server(workroot, jwks, "kill-env-zero", env={"SUPPORT_REPLIES_DISABLED": "0"})
    try:
        response, message = server.call("create_reply_draft", DRAFT, token=token)
        assert response.status_code == 200 and not is_error_result(message), response.text[:300]
    finally:
        server.stop()


def wait_until(predicate, timeout=30):
    """The file is re-read every second; allow far more on a busy machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


def test_kill_switch_file_is_obeyed_while_running(workroot, jwks, token):
    server = support_server(workroot, jwks, "kill-file")
    try:
        draft = lambda: server.call("create_reply_draft", DRAFT, token=token)  # noqa: E731
        listing = lambda: server.call("list_assigned_tickets", {}, token=token)  # noqa: E731
        assert not switched_off(*draft())

        server.kill_file.write_text("")  # empty: the whole server off
        assert wait_until(lambda: switched_off(*listing())), "an empty kill-switch file did not switch the server off"
        id = next_id()
        response, message = server.call("create_reply_draft", DRAFT, token=token, id=id)
        assert switched_off(response, message)
        assert not intents(server, id)

        server.kill_file.write_text("# only drafts are off\ncreate_reply_draft\n")
        assert wait_until(lambda: not switched_off(*listing())), "listing stayed off"
        assert switched_off(*draft())

        server.kill_file.unlink()
        assert wait_until(lambda: not switched_off(*draft())), "deleting the file did not switch the server back on"

        changes = server.wait_audit(lambda r: r.get("event") == "kill_switch" and r.get("reason") == "on")
        assert changes, "switching back on was not audited"
        reasons = [r.get("reason") for r in server.audit() if r.get("event") == "kill_switch"]
        assert "whole server off" in reasons and any(r.startswith("off: create_reply_draft") for r in reasons), reasons
    finally:
        server.stop()


def test_unreadable_kill_switch_file_fails_closed(workroot, jwks, token):
    server = support_server(workroot, jwks, "kill-unreadable", start=False)
    server.kill_file.mkdir()  # exists, cannot be read as a file
    server.start_http()
    try:
        response, message = server.call("list_assigned_tickets", {}, token=token)
        assert switched_off(response, message), (response.status_code, response.text[:300])
    finally:
        server.stop()
