"""Canary secrets: the downstream credentials in the environment, a private claim in every
token, the tokens themselves and personal data in arguments must never appear in any server
log, audit log, metrics page or error body. This module runs last (file order) so its final
case also scans everything the earlier modules' servers wrote."""

import time

import pytest

from conftest import CANARIES, ERROR_BODIES, MINTED_TOKENS, SCOPES_ALL, SERVERS, is_error_result, support_server


@pytest.fixture(scope="module")
def server(workroot, jwks):
    server = support_server(workroot, jwks, "secrets")
    yield server
    server.stop()


def scan(texts, needles):
    """(needle name, where) for every needle found in any of the named texts."""
    found = []
    for where, text in texts.items():
        for name, needle in needles.items():
            if needle and needle in text:
                found.append((name, where))
    return found


def token_needles():
    needles = {}
    for i, token in enumerate(MINTED_TOKENS):
        needles[f"token #{i}"] = token
        parts = token.split(".")
        if len(parts) == 3 and len(parts[2]) >= 16:
            needles[f"signature of token #{i}"] = parts[2]
        if len(parts) >= 2 and len(parts[1]) >= 16:
            needles[f"payload of token #{i}"] = parts[1]
    return needles


def server_texts(server):
    texts = {f"{server.label} log": server.log_text()}
    if server.audit_path.exists():
        texts[f"{server.label} audit"] = server.audit_path.read_text(errors="replace")
    return texts


def test_canaries_in_requests_never_reach_logs_or_errors(server, mint):
    claim = CANARIES["token_claim"]
    argument = CANARIES["argument"]
    good = mint.token(sub="alice", scopes=SCOPES_ALL)
    bodies = []

    # Valid calls whose arguments carry personal data (logs: redact).
    response, message = server.call(
        "create_reply_draft", {"ticket_id": 48213, "body": f"Hello Maria, your reference is {argument}."}, token=good
    )
    assert not is_error_result(message), message
    bodies.append(response.text)
    # Refused tokens carrying the private claim, and secrets where a token should be.
    now = int(time.time())
    for token in (
        mint.token(sub="alice", scopes=SCOPES_ALL, exp=now - 600, iat=now - 1200, nbf=now - 1200),
        mint.token(sub="alice", scopes=SCOPES_ALL, audience="https://elsewhere.example.com"),
        mint.token(sub="alice", scopes=SCOPES_ALL, key="rogue-rsa"),
        mint.remember(CANARIES["helpdesk_client_secret"]),
        mint.remember(f"{claim}.{claim}.{claim}"),
    ):
        response = server.rpc("tools/list", {}, token=token)
        assert response.status_code == 401
        bodies.append(response.text + str(response.headers))
    response = server.rpc("tools/list", {}, headers={"Authorization": f"Basic {CANARIES['deploy_config_token']}"})
    bodies.append(response.text + str(response.headers))
    # A scope refusal and a rate refusal for a token with the claim.
    response, _ = server.call("set_ticket_priority", {"ticket_id": 48213, "priority": "low", "reason": "Internal data is logged in full."}, token=mint.token(sub="alice", scopes=["tickets.read"]))
    bodies.append(response.text + str(response.headers))
    metrics = server.client.get(server.base + "/metrics").text
    readiness = server.client.get(server.base + "/readyz").text
    server.stop()  # flush everything

    texts = server_texts(server)
    texts.update({f"response {i}": b for i, b in enumerate(bodies)})
    texts["metrics"] = metrics
    texts["readyz"] = readiness
    needles = dict(CANARIES)
    needles.update(token_needles())
    leaks = scan(texts, needles)
    assert not leaks, f"secrets leaked: {leaks[:20]}"


def test_no_secret_in_any_log_or_error_of_the_whole_run():
    # Servers still running are read as they are; what they wrote so far is on disk.
    texts = {}
    for server in SERVERS:
        texts.update(server_texts(server))
    for i, body in enumerate(ERROR_BODIES):
        texts[f"error body {i}"] = body
    needles = dict(CANARIES)
    needles.update(token_needles())
    leaks = scan(texts, needles)
    assert not leaks, f"secrets leaked: {leaks[:20]}"
    assert len(SERVERS) >= 1 and MINTED_TOKENS
