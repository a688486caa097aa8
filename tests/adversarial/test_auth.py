"""Bearer tokens over HTTP: every way a token can be wrong is refused with 401, a
`WWW-Authenticate` challenge pointing at the protected resource metadata, and a JSON body that
never carries the token; valid RS256 and ES256 tokens from the JWKS on loopback are accepted."""

import subprocess
import time

import pytest

from conftest import AUDIENCES, ISSUER, SCOPES_ALL, binary, rpc_message, support_server

AUDIENCE = AUDIENCES["support-replies"]
METADATA_URL = "https://mcp.adversarial.test/.well-known/oauth-protected-resource/support-replies"


@pytest.fixture(scope="module")
def server(workroot, jwks):
    server = support_server(workroot, jwks, "auth")
    yield server
    server.stop()


def refused(server, token=None, authorization=None, expect_invalid_token=True, url=None):
    """Sends tools/list with the given credentials; asserts a clean 401 and returns its body."""
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = server.rpc("tools/list", {}, token=token, headers=headers)
    assert response.status_code == 401, f"expected 401, got {response.status_code}: {response.text[:500]}"
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer "), challenge
    assert f'resource_metadata="{METADATA_URL}"' in challenge, challenge
    if expect_invalid_token is True:
        assert 'error="invalid_token"' in challenge, challenge
    elif expect_invalid_token is False:
        assert "error=" not in challenge, challenge
    body = response.json()
    assert set(body) >= {"error", "error_description"}, body
    for secret in filter(None, [token, authorization]):
        if isinstance(secret, bytes):
            secret = secret.decode("latin-1")
        assert secret not in response.text and secret not in challenge
        for part in secret.replace("Bearer ", "").split("."):
            if len(part) >= 16:
                assert part not in response.text and part not in challenge
    assert "result" not in body
    return body


def test_valid_rs256_token_is_accepted(server, mint):
    response = server.rpc("tools/list", {}, token=mint.token(scopes=SCOPES_ALL))
    assert response.status_code == 200, response.text
    names = [t["name"] for t in rpc_message(response)["result"]["tools"]]
    assert "create_reply_draft" in names


def test_valid_es256_token_is_accepted(server, mint):
    response, message = server.call("list_assigned_tickets", {}, token=mint.token(scopes=["tickets.read"], key="ec"))
    assert response.status_code == 200, response.text
    assert message["result"].get("isError") is not True, message
    assert message["result"]["structuredContent"]["tickets"], message


def test_scp_array_claim_grants_scopes(server, mint):
    token = mint.token(scopes=[], scope=None, scp=["tickets.read"])
    response, message = server.call("list_assigned_tickets", {}, token=token)
    assert response.status_code == 200, response.text
    assert message["result"].get("isError") is not True, message


def test_missing_token_gets_bare_challenge(server):
    body = refused(server, expect_invalid_token=False)
    assert body["error"] == "missing_token"


def test_basic_scheme_is_not_a_bearer_token(server):
    body = refused(server, authorization="Basic YWxpY2U6cGFzc3dvcmQ=", expect_invalid_token=False)
    assert body["error"] in ("unsupported_scheme", "missing_token")


def test_garbage_token_is_refused(server):
    body = refused(server, token="this-is-not-a-jwt-at-all.really.not")
    assert body["error"] == "malformed_token"


def test_binary_garbage_token_is_refused(server):
    # Not visible ASCII: the header cannot even be read as text; still a clean 401.
    refused(server, authorization=b"Bearer eyJ\xff\xfe.\xe9\xa0." + b"A" * 40, expect_invalid_token=None)


def test_oversized_token_is_refused(server, mint):
    token = mint.token(scopes=SCOPES_ALL, padding="x" * 40_000)
    response = server.rpc("tools/list", {}, token=token)
    # A 40 KB header may be refused by the HTTP layer itself (431) before the token check.
    assert response.status_code in (401, 431), response.status_code
    assert token not in response.text


def test_expired_token_is_refused(server, mint):
    now = int(time.time())
    body = refused(server, token=mint.token(scopes=SCOPES_ALL, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    assert body["error"] == "expired"


def test_not_yet_valid_token_is_refused(server, mint):
    now = int(time.time())
    body = refused(server, token=mint.token(scopes=SCOPES_ALL, nbf=now + 3600, exp=now + 7200))
    assert body["error"] == "not_yet_valid"


def test_wrong_issuer_is_refused(server, mint):
    body = refused(server, token=mint.token(scopes=SCOPES_ALL, iss="https://evil.example.com"))
    assert body["error"] == "wrong_issuer"


def test_issuer_must_match_exactly(server, mint):
    refused(server, token=mint.token(scopes=SCOPES_ALL, iss=ISSUER + "/"))


def test_wrong_audience_is_refused(server, mint):
    body = refused(server, token=mint.token(scopes=SCOPES_ALL, audience="https://mcp.adversarial.test/change-plan"))
    assert body["error"] == "wrong_audience"


def test_audience_array_without_this_resource_is_refused(server, mint):
    refused(server, token=mint.token(scopes=SCOPES_ALL, audience=["https://other.example.com", AUDIENCE + "x"]))


def test_missing_sub_is_refused(server, mint):
    body = refused(server, token=mint.token(scopes=SCOPES_ALL, sub=None))
    assert body["error"] == "missing_claim"


def test_missing_exp_is_refused(server, mint):
    refused(server, token=mint.token(scopes=SCOPES_ALL, exp=None))


def test_unknown_key_is_refused_and_refetches_are_bounded(server, mint, jwks):
    before = jwks.count()
    for _ in range(15):
        body = refused(server, token=mint.token(scopes=SCOPES_ALL, key="rogue-rsa"))
        assert body["error"] in ("unknown_key", "jwks_unavailable")
    # Unknown key ids may trigger a refetch, at most once per refresh interval (30 s by
    # default), however many such tokens arrive: 15 tokens must not mean 15 fetches.
    assert jwks.count() - before <= 2, f"{jwks.count() - before} JWKS fetches for 15 unknown-key tokens"


def test_signature_by_unpublished_key_under_published_kid_is_refused(server, mint):
    body = refused(server, token=mint.token(scopes=SCOPES_ALL, key="rogue-rsa-known-kid"))
    assert body["error"] == "bad_signature"


def test_alg_none_is_refused(server, mint):
    body = refused(server, token=mint.unsigned(scopes=SCOPES_ALL))
    assert body["error"] in ("disallowed_algorithm", "malformed_token")


def test_alg_none_with_fake_signature_is_refused(server, mint):
    token = mint.unsigned(scopes=SCOPES_ALL, alg="None") + "c2lnbmF0dXJl"
    refused(server, token=mint.remember(token))


def test_hs256_keyed_with_public_key_is_refused(server, mint):
    body = refused(server, token=mint.hs256_with_public_key(scopes=SCOPES_ALL))
    assert body["error"] == "disallowed_algorithm"


def test_rs256_naming_ec_key_is_refused(server, mint):
    body = refused(server, token=mint.rs256_naming_ec_key(scopes=SCOPES_ALL))
    assert body["error"] in ("key_mismatch", "bad_signature")


def test_embedded_jwk_and_jku_are_ignored(server, mint):
    body = refused(server, token=mint.embedded_jwk(scopes=SCOPES_ALL))
    assert body["error"] in ("unknown_key", "bad_signature", "jwks_unavailable")


def test_payload_edited_to_add_scopes_is_refused(server, mint):
    body = refused(server, token=mint.tampered(scopes=["tickets.read"], extra_scopes=["tickets.approve"]))
    assert body["error"] == "bad_signature"


def test_two_authorization_headers_are_refused(server, mint):
    good = mint.token(scopes=SCOPES_ALL)
    headers = [(k, v) for k, v in server.headers().items()]
    headers += [("Authorization", "Bearer garbage"), ("Authorization", f"Bearer {good}")]
    response = server.client.post(server.url, content='{"jsonrpc":"2.0","id":1,"method":"tools/list"}', headers=headers)
    assert response.status_code in (400, 401), response.status_code
    assert good not in response.text


def test_log_injection_through_token_claims_stays_inside_records(server, mint):
    forged = '\n{"event":"intent","forged":true}\n2026-01-01T00:00:00Z ERROR forged\x1b[31m'
    token = mint.token(sub="alice" + forged, azp="client" + forged, scopes=SCOPES_ALL)
    response, message = server.call("list_assigned_tickets", {}, token=token)
    assert response.status_code == 200, response.text[:300]
    server.wait_audit(lambda r: r.get("subject", "").startswith("alice\n"))
    for record in server.audit():
        assert "forged" not in record
    for line in server.log_text().splitlines():
        assert not line.startswith('{"event"') and not line.startswith("2026-01-01") and "\x1b[31m" not in line, line


def test_token_in_query_string_is_ignored(server, mint):
    token = mint.token(scopes=SCOPES_ALL)
    response = server.client.post(
        server.url + "?access_token=" + token,
        content='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}',
        headers=server.headers(),
    )
    assert response.status_code == 401
    assert token not in response.text


def test_refusals_are_audited_without_the_token(server, mint):
    token = mint.token(scopes=SCOPES_ALL, iss="https://evil.example.com")
    refused(server, token=token)
    records = server.wait_audit(lambda r: r.get("event") == "denied" and r.get("reason") == "wrong_issuer")
    assert records, "the refused token was not audited"
    assert token not in server.audit_path.read_text()


def test_protected_resource_metadata_is_served(server):
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/support-replies"):
        response = server.client.get(server.base + path)
        assert response.status_code == 200, (path, response.status_code)
        document = response.json()
        assert document["resource"] == AUDIENCE
        assert document["authorization_servers"] == [ISSUER]
        assert set(document["scopes_supported"]) >= {"tickets.read", "tickets.approve"}
        assert document.get("bearer_methods_supported") == ["header"]


def test_keep_alive_connection_survives_refusals(server, mint):
    """A 401 (or 413) is sent before the request body is read, so the server cannot reuse the
    connection; it must say so (`Connection: close`), or a pooling client's next request on it
    fails with "server disconnected" (seen about once in 300 before the fix)."""
    import httpx

    body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
    with httpx.Client(timeout=60) as client:
        for i in range(300):
            headers = server.headers(mint.token(scopes=SCOPES_ALL, key="rogue-rsa") if i % 2 else "garbage")
            headers.pop("Connection")
            response = client.post(server.url, content=body, headers=headers)
            assert response.status_code == 401
            assert response.headers.get("connection", "").lower() == "close", response.headers
        headers = server.headers(mint.token(scopes=SCOPES_ALL))
        headers.pop("Connection")
        for _ in range(20):
            big = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"' + "x" * 70_000 + '"}}'
            assert client.post(server.url, content=big, headers=headers).status_code == 413
            assert client.post(server.url, content=body, headers=headers).status_code == 200


def test_dev_no_auth_is_refused_off_loopback(tmp_path):
    """`http --dev-no-auth` serves an OAuth contract without token checks: only on loopback."""
    completed = subprocess.run(
        [binary("support-replies"), "http", "--listen", "0.0.0.0:0", "--dev-no-auth"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "refusing to listen on 0.0.0.0:0" in completed.stderr, completed.stderr
    assert "127.0.0.1" in completed.stderr
