"""A tool bound to an HTTP operation (github-releases, imported from GitHub's description) over
real HTTP with real tokens, against the recorded-response stand-in (scripts/standin.py): hostile
path and header values never change the request, and nothing the caller sent to authenticate
(its bearer token) ever reaches the downstream, which sees only the server's own credential."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, MINTED_TOKENS, Server, is_error_result, result_text

AUDIENCE = "https://mcp.adversarial.test/github-releases"
SERVICE_TOKEN = "canary-github-service-token-7c2e"


@pytest.fixture(scope="module")
def standin(workroot):
    log = workroot / "standin-github.jsonl"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "standin.py"), "serve", str(ROOT / "specs" / "standins" / "github.json"), "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().strip().removeprefix("listening on ")
    yield url, log
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(workroot, jwks, standin):
    url, _ = standin
    server = Server(
        "github-releases",
        workroot / "bound",
        jwks=jwks,
        env={
            "GITHUB_RELEASES_OAUTH_AUDIENCE": AUDIENCE,
            "GITHUB_RELEASES_ENVIRONMENT": "development",
            "GITHUB_TOKEN": SERVICE_TOKEN,
        },
        config=f'\n[downstreams.github]\nbase_url = "{url}"\n',
    )
    server.audience = AUDIENCE
    server.start_http()
    yield server
    server.stop()


def requests_seen(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_hostile_path_values_stay_one_segment_and_the_caller_token_never_leaves(server, standin, mint):
    _, log = standin
    token = mint.token(sub="alice", scopes=["github.read"], audience=AUDIENCE)
    before = len(requests_seen(log))
    for owner, wire in [
        ("../../admin", "..%2F..%2Fadmin"),
        ("%2e%2e%2f", "%252e%252e%252f"),
        ("a/b", "a%2Fb"),
        ("?x=", "%3Fx%3D"),
        ("https://evil.example/x", "https%3A%2F%2Fevil.example%2Fx"),
    ]:
        _, message = server.call("repos_list_tags", {"owner": owner, "repo": "hello-world"}, token=token)
        assert not is_error_result(message), result_text(message)
        assert requests_seen(log)[-1]["path"] == f"/repos/{wire}/hello-world/tags"
    for dots in ["..", "."]:
        _, message = server.call("repos_list_tags", {"owner": dots, "repo": "hello-world"}, token=token)
        assert is_error_result(message) and "`owner`" in result_text(message)
    seen = requests_seen(log)[before:]
    assert len(seen) == 5, "refused values sent nothing"
    for request in seen:
        assert request["headers"].get("authorization") == f"Bearer {SERVICE_TOKEN}"
        text = json.dumps(request)
        for minted in MINTED_TOKENS:
            assert minted not in text, "a caller's token reached the downstream"
            signature = minted.split(".")[-1]
            assert len(signature) < 16 or signature not in text, "a caller's token signature reached the downstream"


def test_a_write_needs_its_scope_and_a_confirmation_before_anything_is_sent(server, standin, mint):
    _, log = standin
    before = len(requests_seen(log))
    reader = mint.token(sub="alice", scopes=["github.read"], audience=AUDIENCE)
    arguments = {"owner": "octocat", "repo": "hello-world", "tag_name": "v9.9.9"}
    response, _ = server.call("repos_create_release", arguments, token=reader)
    assert response.status_code == 403, response.status_code
    assert 'scope="github.write"' in response.headers["www-authenticate"]
    writer = mint.token(sub="alice", scopes=["github.write"], audience=AUDIENCE)
    _, message = server.call("repos_create_release", arguments, token=writer)
    # Stateless HTTP cannot ask the user to confirm (the client declared no elicitation): refused.
    assert is_error_result(message), result_text(message)
    assert len(requests_seen(log)) == before, "nothing reached GitHub without a confirmation"
