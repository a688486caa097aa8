"""Shared machinery of the adversarial suite: test keys and a real JWKS served over loopback
HTTP, token minting, generated example servers started as real processes (HTTP and stdio),
their logs and audit logs, and a registry of every secret the suite hands out so the last
module can check that none of them leaked.

Everything here talks to the binaries built into target/debug (or $ADVERSARIAL_BIN_DIR);
nothing is mocked. See scripts/adversarial.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ADVERSARIAL_BIN_DIR", ROOT / "target" / "debug"))
PROTOCOL = "2025-11-25"
ISSUER = "https://issuer.adversarial.test"
AUDIENCES = {
    "support-replies": "https://mcp.adversarial.test/support-replies",
    "change-plan": "https://mcp.adversarial.test/change-plan",
}
# Generous: the machine is shared and debug builds are slow; nothing here asserts timing.
HTTP_TIMEOUT = 60.0
START_TIMEOUT = 90.0

# Secrets handed out during the run. tests/adversarial/test_zz_secrets.py checks that none of
# them appears in any server log, audit log or error body the suite saw.
CANARIES = {
    "helpdesk_client_secret": "canary-helpdesk-" + secrets.token_hex(12),
    "deploy_config_token": "canary-deploy-" + secrets.token_hex(12),
    "token_claim": "canary-claim-" + secrets.token_hex(12),
    "argument": "canary-argument-" + secrets.token_hex(12),
}
MINTED_TOKENS = []  # every bearer token the suite sent
SERVERS = []  # every server process started, for the final leak scan
ERROR_BODIES = []  # every non-2xx body and every isError text received


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


# --------------------------------------------------------------------------- keys and JWKS


class Keys:
    """Test keys: an RSA 2048 and a P-256 key published in the JWKS, and keys that are not."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rogue_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rogue_ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_kid = "rsa-" + secrets.token_hex(4)
        self.ec_kid = "ec-" + secrets.token_hex(4)

    @staticmethod
    def jwk(public_key, kid, alg):
        if isinstance(public_key, rsa.RSAPublicKey):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
        else:
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public_key))
        jwk.update({"kid": kid, "use": "sig", "alg": alg})
        return jwk

    def jwks(self):
        return {
            "keys": [
                self.jwk(self.rsa.public_key(), self.rsa_kid, "RS256"),
                self.jwk(self.ec.public_key(), self.ec_kid, "ES256"),
            ]
        }

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class JwksServer:
    """The identity provider's key set on loopback HTTP, counting the requests it serves."""

    def __init__(self, keys: Keys):
        self.keys = keys
        self.requests = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                with outer.lock:
                    outer.requests += 1
                if self.path.split("?")[0] != "/jwks.json":
                    self.send_error(404)
                    return
                body = json.dumps(outer.keys.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def count(self) -> int:
        with self.lock:
            return self.requests

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def keys():
    return Keys()


@pytest.fixture(scope="session")
def jwks(keys):
    server = JwksServer(keys)
    yield server
    server.close()


# --------------------------------------------------------------------------- tokens


class Minter:
    """Signs access tokens with the test keys; every token is remembered for the leak scan."""

    def __init__(self, keys: Keys):
        self.keys = keys

    def claims(self, sub, scopes, audience, **overrides):
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": audience,
            "sub": sub,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 3600,
            "jti": str(uuid.uuid4()),
            "azp": "adversarial-client",
            "scope": " ".join(scopes),
            # A secret-looking private claim: it must never be logged or echoed.
            "canary": CANARIES["token_claim"],
        }
        for key, value in overrides.items():
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        return claims

    def token(self, sub="alice", scopes=(), audience=AUDIENCES["support-replies"], key="rsa", headers=None, **overrides):
        claims = self.claims(sub, scopes, audience, **overrides)
        if key == "rsa":
            token = jwt.encode(claims, self.keys.rsa, algorithm="RS256", headers={"kid": self.keys.rsa_kid, **(headers or {})})
        elif key == "ec":
            token = jwt.encode(claims, self.keys.ec, algorithm="ES256", headers={"kid": self.keys.ec_kid, **(headers or {})})
        elif key == "rogue-rsa":
            token = jwt.encode(claims, self.keys.rogue_rsa, algorithm="RS256", headers={"kid": "rogue-" + secrets.token_hex(3), **(headers or {})})
        elif key == "rogue-rsa-known-kid":
            # Signed by a key the provider does not publish, claiming a published key id.
            token = jwt.encode(claims, self.keys.rogue_rsa, algorithm="RS256", headers={"kid": self.keys.rsa_kid, **(headers or {})})
        else:
            raise ValueError(key)
        return self.remember(token)

    def unsigned(self, sub="alice", scopes=(), audience=AUDIENCES["support-replies"], alg="none"):
        header = {"alg": alg, "typ": "JWT", "kid": self.keys.rsa_kid}
        token = f"{b64json(header)}.{b64json(self.claims(sub, scopes, audience))}."
        return self.remember(token)

    def hs256_with_public_key(self, sub="alice", scopes=(), audience=AUDIENCES["support-replies"]):
        """The classic algorithm-confusion attack: HMAC keyed with the provider's public key."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.keys.rsa_kid}
        signing_input = f"{b64json(header)}.{b64json(self.claims(sub, scopes, audience))}"
        mac = hmac.new(self.keys.rsa_public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return self.remember(f"{signing_input}.{b64url(mac)}")

    def rs256_naming_ec_key(self, sub="alice", scopes=(), audience=AUDIENCES["support-replies"]):
        claims = self.claims(sub, scopes, audience)
        token = jwt.encode(claims, self.keys.rsa, algorithm="RS256", headers={"kid": self.keys.ec_kid})
        return self.remember(token)

    def embedded_jwk(self, sub="alice", scopes=(), audience=AUDIENCES["support-replies"]):
        """Signed by an attacker's key that the token itself carries (`jwk` header), no kid."""
        attacker = self.keys.rogue_rsa
        jwk = Keys.jwk(attacker.public_key(), "attacker", "RS256")
        claims = self.claims(sub, scopes, audience)
        token = jwt.encode(claims, attacker, algorithm="RS256", headers={"jwk": jwk, "jku": "http://127.0.0.1:9/jwks.json"})
        return self.remember(token)

    def tampered(self, sub="alice", scopes=(), extra_scopes=(), audience=AUDIENCES["support-replies"]):
        """A genuine token whose payload was edited afterwards to add scopes."""
        token = self.token(sub=sub, scopes=scopes, audience=audience)
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["scope"] = " ".join(list(scopes) + list(extra_scopes))
        return self.remember(f"{header}.{b64json(claims)}.{signature}")

    def remember(self, token):
        MINTED_TOKENS.append(token)
        return token


@pytest.fixture(scope="session")
def mint(keys):
    return Minter(keys)


# --------------------------------------------------------------------------- servers


def binary(name: str) -> str:
    path = BIN_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (cargo build -p {name})")
    return str(path)


def prefix(name: str) -> str:
    return name.upper().replace("-", "_")


def helpdesk_database(path: Path, agent="alice", flood_subjects=()):
    """A support-replies helpdesk: the example's schema and seed, the demo tickets assigned to
    `agent`, and one open ticket per flood subject (ids 900000001...)."""
    data = ROOT / "generated-examples" / "support-replies" / "data"
    db = sqlite3.connect(path)
    db.executescript((data / "schema.sql").read_text())
    db.executescript("BEGIN;" + (data / "seed.sql").read_text() + "COMMIT;")
    db.execute("UPDATE tickets SET assignee = ? WHERE assignee = 'demo-agent'", (agent,))
    for i, subject in enumerate(flood_subjects):
        db.execute(
            "INSERT INTO tickets VALUES (?, 'Flood ticket', 'open', 'normal', 'Flood Customer', "
            "'flood@example.test', NULL, ?, '2026-11-23T09:12:00Z', NULL)",
            (900000001 + i, subject),
        )
    db.commit()
    db.close()


class Server:
    """One generated example server process, over HTTP or stdio, with its own directory for
    the audit log, approvals database, kill-switch file and logs."""

    def __init__(self, name, workdir: Path, jwks=None, env=None, handlers=None, label=None, config=""):
        self.name = name
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.audit_path = self.dir / "audit.jsonl"
        self.approvals_path = self.dir / "approvals.sqlite3"
        self.kill_file = self.dir / "disabled"
        self.label = label or name
        self.logs = []  # stderr files of every start, for the leak scan
        self.process = None
        self.url = None
        self.base = None
        self.audience = AUDIENCES.get(name)
        p = prefix(name)
        self.env = dict(os.environ)
        self.env.update(
            {
                f"{p}_AUDIT_PATH": str(self.audit_path),
                f"{p}_APPROVALS_PATH": str(self.approvals_path),
                f"{p}_KILL_SWITCH_FILE": str(self.kill_file),
                # Stricter than production (info): the runtime's own debug logs must not leak
                # secrets either. rmcp's debug logs print whole requests, arguments included,
                # so they stay at the default (warn), as the runtime sets them.
                f"{p}_LOG": "debug,rmcp=warn,hyper=info,h2=info,reqwest=info,rustls=info",
                "HELPDESK_CLIENT_SECRET": CANARIES["helpdesk_client_secret"],
                "DEPLOY_CONFIG_READ_TOKEN": CANARIES["deploy_config_token"],
                "USER": "local-operator",
            }
        )
        if jwks is not None:
            self.env.update(
                {
                    f"{p}_OAUTH_ISSUER": ISSUER,
                    f"{p}_OAUTH_AUDIENCE": self.audience,
                    f"{p}_OAUTH_JWKS_URI": jwks.uri,
                }
            )
        for key in list(self.env):
            if key.startswith(p + "_DISABLED"):
                del self.env[key]
        self.env.update(env or {})
        self.config = self.dir / "config.toml"
        lines = ["[handlers]"] + [f"{k} = {json.dumps(v)}" for k, v in (handlers or {}).items()]
        self.config.write_text("\n".join(lines) + "\n" + config)
        SERVERS.append(self)

    # -- lifecycle

    def _log_file(self):
        log = self.dir / f"stderr-{len(self.logs)}.log"
        self.logs.append(log)
        return log

    def start_http(self):
        log = self._log_file()
        self.stderr = open(log, "w")
        self.process = subprocess.Popen(
            [binary(self.name), "--config", str(self.config), "http", "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            env=self.env,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
                self.base = self.url.rsplit("/", 1)[0]
                self.port = int(self.base.rsplit(":", 1)[1])
                self.client = httpx.Client(timeout=HTTP_TIMEOUT)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"{self.label} did not start:\n{log.read_text(errors='replace')[-4000:]}")

    def start_stdio(self, args=()):
        log = self._log_file()
        self.stderr = open(log, "w")
        self.process = subprocess.Popen(
            [binary(self.name), "--config", str(self.config), *args, "stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=self.env,
        )
        return StdioClient(self)

    def stop(self):
        """SIGTERM, as an orchestrator stops a pod."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._close()

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._close()

    def _close(self):
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None
        if getattr(self, "stderr", None) is not None:
            self.stderr.close()
            self.stderr = None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def log_text(self):
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    # -- HTTP

    def headers(self, token=None, extra=None):
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL,
            # One connection per request: refusals sent before the body is read close a
            # kept-alive connection (see test_requests.py::test_keep_alive_survives_refusals).
            "Connection": "close",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(extra or {})
        return headers

    def post(self, body, token=None, headers=None, raw=False):
        content = body if raw else json.dumps(body)
        response = self.client.post(self.url, content=content, headers=self.headers(token, headers))
        if response.status_code >= 400:
            ERROR_BODIES.append(response.text)
        return response

    def rpc(self, method, params=None, token=None, id=None, headers=None):
        message = {"jsonrpc": "2.0", "id": id if id is not None else next_id(), "method": method}
        if params is not None:
            message["params"] = params
        return self.post(message, token=token, headers=headers)

    def call(self, tool, arguments, token=None, id=None, headers=None):
        """tools/call; returns (HTTP response, JSON-RPC message or None)."""
        response = self.rpc("tools/call", {"name": tool, "arguments": arguments}, token=token, id=id, headers=headers)
        return response, rpc_message(response)

    # -- audit

    def audit(self):
        """The complete records on disk (a line still being appended is left out)."""
        if not self.audit_path.exists():
            return []
        text = self.audit_path.read_text()
        lines = text.split("\n")[:-1]  # the part after the last newline is incomplete (or empty)
        return [json.loads(line) for line in lines if line.strip()]

    def verify(self):
        return subprocess.run(
            [binary(self.name), "audit", "verify", str(self.audit_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )

    def wait_audit(self, predicate, timeout=30):
        """Audit records that are not waited for reach the file within about a second."""
        deadline = time.monotonic() + timeout
        while True:
            records = [r for r in self.audit() if predicate(r)]
            if records or time.monotonic() > deadline:
                return records
            time.sleep(0.2)


_ids = iter(range(1, 10**9))
_ids_lock = threading.Lock()


def next_id():
    with _ids_lock:
        return next(_ids)


def rpc_message(response):
    """The JSON-RPC message of a 200 response (JSON or a one-event SSE stream)."""
    if response.status_code != 200:
        return None
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        data = [d for d in data if d]
        return json.loads(data[-1]) if data else None
    return json.loads(text) if text.strip() else None


def result_text(message):
    result = (message or {}).get("result") or {}
    return " ".join(c.get("text", "") for c in result.get("content", []) if isinstance(c, dict))


def is_error_result(message):
    result = (message or {}).get("result") or {}
    error = result.get("isError") is True
    if error:
        ERROR_BODIES.append(result_text(message))
    return error


class StdioClient:
    """Raw newline-delimited JSON-RPC over the server's stdin/stdout."""

    def __init__(self, server: Server):
        self.server = server
        self.process = server.process
        self.lines = []
        self.server_requests = []
        self.write_lock = threading.Lock()
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            line = line.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict) and "method" in message and "id" in message:
                # A request from the server (elicitation, sampling, ...): this client declared no
                # such capability, so it answers as real clients do, with "method not found".
                self.server_requests.append(message)
                self.send({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "Method not found"}})
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # EOF
            self.cond.notify_all()

    def send_raw(self, data: bytes):
        with self.write_lock:
            self.process.stdin.write(data)
            self.process.stdin.flush()

    def send(self, message):
        self.send_raw(json.dumps(message).encode() + b"\n")

    def wait_for(self, id, timeout=HTTP_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line is None:
                        return None
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue
                    if message.get("id") == id and ("result" in message or "error" in message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)

    def request(self, method, params=None, timeout=HTTP_TIMEOUT):
        id = next_id()
        message = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.wait_for(id, timeout)

    def initialize(self):
        reply = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "adversarial-suite", "version": "1"},
            },
        )
        assert reply and "result" in reply, f"stdio initialize failed: {reply}"
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    def call(self, tool, arguments):
        return self.request("tools/call", {"name": tool, "arguments": arguments})

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.server._close()


KEPT = []


@pytest.fixture(scope="session")
def workroot():
    root = Path(tempfile.mkdtemp(prefix="charter-adversarial-"))
    if os.environ.get("ADVERSARIAL_KEEP") == "1":
        KEPT.append(root)
    yield root
    if os.environ.get("ADVERSARIAL_KEEP") != "1":
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _stop_everything():
    yield
    for server in SERVERS:
        server.kill()


SCOPES_ALL = ["tickets.read", "replies.draft", "tickets.priority"]


def support_server(workroot, jwks, label, env=None, flood_subjects=(), start=True, config=""):
    workdir = workroot / label
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "helpdesk.sqlite3"
    helpdesk_database(database, agent="alice", flood_subjects=flood_subjects)
    server = Server(
        "support-replies",
        workdir,
        jwks=jwks,
        env=env,
        handlers={"database": str(database), "agent": "alice"},
        label=label,
        config=config,
    )
    if start:
        server.start_http()
    return server


def pytest_terminal_summary(terminalreporter):
    """Cases per module and outcome, the secrets checked, and where logs were kept."""
    outcomes = {}
    for outcome in ("passed", "failed", "error", "xfailed", "xpassed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") not in ("call", "setup") or not hasattr(report, "nodeid"):
                continue
            if outcome == "error" or report.when == "call" or outcome in ("skipped", "xfailed"):
                module = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
                outcomes.setdefault(module, {}).setdefault(outcome, 0)
                outcomes[module][outcome] += 1
    write = terminalreporter.write_line
    write("")
    write("adversarial summary")
    total = {}
    for module in sorted(outcomes):
        counts = outcomes[module]
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        write(f"  {module:<24} " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    write(f"  {'all':<24} " + ", ".join(f"{v} {k}" for k, v in sorted(total.items())))
    write(f"  servers started: {len(SERVERS)}; tokens minted: {len(MINTED_TOKENS)}; canaries: {len(CANARIES)}")
    for root in KEPT:
        write(f"  logs and audit logs kept in {root}")
