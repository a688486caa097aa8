"""The second example, change-plan, over HTTP: scopes that must all be held, patterns that keep
shell and path syntax out of service names, URI templates that refuse traversal, a token for
another resource, and data classes logged as hashes."""

import pytest

from conftest import AUDIENCES, Server, is_error_result, next_id, result_text, rpc_message

AUDIENCE = AUDIENCES["change-plan"]
REVISION = "c05a8f3e6d29b17c4e80f5a2d93b6c1e7f40a8d2"
SCOPES = ["services.read", "plans.draft", "changes.request"]


@pytest.fixture(scope="module")
def planner(workroot, jwks):
    server = Server("change-plan", workroot / "change-plan", jwks=jwks, label="change-plan")
    server.start_http()
    yield server
    server.stop()


def test_every_required_scope_must_be_held(planner, mint):
    token = mint.token(sub="engineer", audience=AUDIENCE, scopes=["services.read"])
    id = next_id()
    response, _ = planner.call(
        "draft_change_plan",
        {"service": "payments-api", "environment": "staging", "target_revision": REVISION, "rollout": "rolling"},
        token=token,
        id=id,
    )
    assert response.status_code == 403
    assert 'scope="plans.draft"' in response.headers["www-authenticate"]
    assert not [r for r in planner.audit() if r.get("event") == "intent" and r.get("request_id") == str(id)]


def test_support_replies_token_is_refused_by_change_plan(planner, mint):
    token = mint.token(sub="engineer", scopes=SCOPES)  # audience: support-replies
    response = planner.rpc("tools/list", {}, token=token)
    assert response.status_code == 401
    assert response.json()["error"] == "wrong_audience"


def test_shell_and_path_syntax_in_names_is_refused(planner, mint):
    token = mint.token(sub="engineer", audience=AUDIENCE, scopes=SCOPES)
    for service in ("payments-api; rm -rf /", "../../etc/passwd", "payments-api\n", "PAYMENTS-API", "$(id)"):
        response, message = planner.call("get_service_state", {"service": service, "environment": "production"}, token=token)
        assert is_error_result(message), (service, message)
        assert "at /service" in result_text(message)


def test_resource_template_refuses_traversal(planner, mint):
    token = mint.token(sub="engineer", audience=AUDIENCE, scopes=SCOPES)
    for uri in (
        "change-plan://plans/../../../etc/passwd",
        "change-plan://plans/%2e%2e%2fsecrets",
        "change-plan://plans/00000000-0000-0000-0000-000000000000/../x",
        "file:///etc/passwd",
    ):
        response = planner.rpc("resources/read", {"uri": uri}, token=token)
        message = rpc_message(response)
        assert response.status_code >= 400 or "error" in message, (uri, response.text[:300])
        assert "root:" not in response.text


def test_infrastructure_arguments_are_hashed_in_the_audit_log(planner, mint):
    token = mint.token(sub="engineer", audience=AUDIENCE, scopes=SCOPES)
    notes = "Internal host db-primary-7.payments.internal is involved."
    id = next_id()
    response, message = planner.call(
        "draft_change_plan",
        {"service": "payments-api", "environment": "staging", "target_revision": REVISION, "rollout": "rolling", "notes": notes},
        token=token,
        id=id,
    )
    assert not is_error_result(message), result_text(message)
    records = planner.wait_audit(lambda r: r.get("request_id") == str(id) and r.get("event") == "outcome")
    assert records
    intent = [r for r in planner.audit() if r.get("request_id") == str(id) and r.get("event") == "intent"][0]
    assert intent["arguments"]["notes"].startswith("sha256:"), intent["arguments"]
    assert "db-primary-7" not in planner.audit_path.read_text()
