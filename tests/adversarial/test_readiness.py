"""A pod whose Secret is missing must not take traffic: /readyz answers 503 and names the missing
downstream credential (never its value) until the credential is there. The generated StatefulSet
marks its Secret references optional for exactly this reason."""

import httpx

from conftest import CANARIES, support_server


def test_readiness_fails_while_a_downstream_credential_is_missing(workroot, jwks):
    server = support_server(workroot, jwks, "no-credential", env={"HELPDESK_CLIENT_SECRET": ""})
    try:
        response = httpx.get(server.base + "/readyz", timeout=30)
        assert response.status_code == 503, response.text
        assert "helpdesk" in response.text and "HELPDESK_CLIENT_SECRET" in response.text, response.text
        assert CANARIES["helpdesk_client_secret"] not in response.text
    finally:
        server.stop()


def test_readiness_passes_with_every_credential(workroot, jwks):
    server = support_server(workroot, jwks, "with-credential")
    try:
        response = httpx.get(server.base + "/readyz", timeout=30)
        assert response.status_code == 200, response.text
    finally:
        server.stop()
