"""The audit log under SIGKILL: many concurrent draft calls, the server killed in the middle of
them, then `audit verify`. Every call whose success reached the client must have its intent
record on disk (intents are fsynced before the handler runs), the chain must be intact, and a
restarted server must continue the same chain. Edited, deleted and reordered records must be
found by `audit verify`."""

import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from conftest import SCOPES_ALL, binary, is_error_result, next_id, rpc_message, support_server

FLOODERS = [f"flood-{i:02d}" for i in range(20)]
MIN_ACKNOWLEDGED = 60


def flood_then_kill(server, mint, min_acknowledged=MIN_ACKNOWLEDGED, deadline_s=240):
    """Drafts from 20 agents at once until `min_acknowledged` succeeded, then SIGKILL while the
    calls are still coming. Returns the (request id, subject) of every acknowledged success."""
    acknowledged, cut, lock, stop = [], [], threading.Lock(), threading.Event()
    tokens = [(mint.token(sub=s, scopes=SCOPES_ALL), 900000001 + i, s) for i, s in enumerate(FLOODERS)]

    def worker(token, ticket, subject):
        with httpx.Client(timeout=60) as client:
            n = 0
            while not stop.is_set():
                n += 1
                id = next_id()
                body = {
                    "jsonrpc": "2.0",
                    "id": id,
                    "method": "tools/call",
                    "params": {
                        "name": "create_reply_draft",
                        "arguments": {"ticket_id": ticket, "body": f"Reply number {n} from {subject}, thanks for waiting."},
                    },
                }
                try:
                    response = client.post(server.url, json=body, headers=server.headers(token))
                except httpx.HTTPError:
                    if not server.alive():
                        with lock:
                            cut.append(id)  # in flight when the server died
                        return
                    continue
                message = rpc_message(response)
                if response.status_code == 200 and message and "result" in message and not is_error_result(message):
                    with lock:
                        acknowledged.append((id, subject))
                elif response.status_code == 429:
                    time.sleep(1)

    threads = [threading.Thread(target=worker, args=t, daemon=True) for t in tokens]
    for thread in threads:
        thread.start()
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        with lock:
            if len(acknowledged) >= min_acknowledged:
                break
        time.sleep(0.05)
    # Mid-flood: twenty clients are still sending.
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    server._close()
    with lock:
        assert cut, "no call was in flight when the server was killed"
        return list(acknowledged)


@pytest.fixture(scope="module")
def crashed(workroot, jwks, mint):
    server = support_server(workroot, jwks, "crash", flood_subjects=FLOODERS)
    first = flood_then_kill(server, mint)
    return server, first


def assert_intact(server):
    verified = server.verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "chain intact" in verified.stdout, verified.stdout
    return verified


def missing_intents(server, acknowledged):
    intents = {(r.get("request_id"), r.get("subject")) for r in server.audit() if r.get("event") == "intent"}
    return [(id, subject) for id, subject in acknowledged if (str(id), subject) not in intents]


def test_sigkill_mid_flood_leaves_the_chain_intact(crashed):
    server, acknowledged = crashed
    assert len(acknowledged) >= MIN_ACKNOWLEDGED, f"only {len(acknowledged)} calls succeeded before the kill"
    assert_intact(server)


def test_every_acknowledged_write_has_its_intent_record(crashed):
    server, acknowledged = crashed
    missing = missing_intents(server, acknowledged)
    assert not missing, f"{len(missing)} acknowledged drafts have no intent record: {missing[:10]}"
    # And the records say what ran: the draft tool, its effect, arguments redacted.
    for record in server.audit():
        if record.get("event") == "intent":
            assert record["name"] == "create_reply_draft" and record["effect"] == "draft"
            assert record["arguments"]["body"] == "[redacted]"


def test_restart_after_sigkill_continues_the_chain(crashed, mint):
    server, _ = crashed
    last_before = server.audit()[-1]
    server.start_http()  # the same audit file, approvals database and helpdesk
    second = flood_then_kill(server, mint, min_acknowledged=30)
    assert_intact(server)
    records = server.audit()
    continued = [r for r in records if r["seq"] == last_before["seq"] + 1]
    assert continued and continued[0]["prev"] == last_before["hash"], "the restarted server began a new chain"
    missing = missing_intents(server, second)
    assert not missing, f"{len(missing)} acknowledged drafts have no intent record after the restart: {missing[:10]}"


def test_graceful_stop_after_crashes_verifies(crashed, mint):
    server, _ = crashed
    server.start_http()
    id = next_id()
    response, message = server.call(
        "create_reply_draft",
        {"ticket_id": 900000001, "body": "A last reply after the crashes, thanks."},
        token=mint.token(sub=FLOODERS[0], scopes=SCOPES_ALL),
        id=id,
    )
    assert not is_error_result(message), message
    server.stop()
    verified = assert_intact(server)
    events = [r["event"] for r in server.audit()]
    assert events.count("started") == 3, "each start (first, after the crash, after the second crash) is recorded"
    assert {r["event"] for r in server.audit() if r.get("request_id") == str(id)} >= {"intent", "outcome"}
    assert verified.stdout.strip()


def verify_file(server, path):
    return subprocess.run([binary(server.name), "audit", "verify", str(path)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "how,line",
    [
        ("edited", 5),
        ("deleted", 5),
        ("reordered", 5),
        ("truncated_in_the_middle", 5),
    ],
)
def test_tampered_audit_log_is_detected(crashed, how, line):
    server, _ = crashed
    lines = server.audit_path.read_text().splitlines(keepends=True)
    assert len(lines) > 10
    index = line - 1
    if how == "edited":
        lines[index] = lines[index].replace('"event":"', '"event":"x', 1) if '"event":"' in lines[index] else lines[index]
        lines[index] = lines[index].replace('"subject":"', '"subject":"mallory-', 1)
    elif how == "deleted":
        del lines[index]
    elif how == "reordered":
        lines[index], lines[index + 1] = lines[index + 1], lines[index]
    elif how == "truncated_in_the_middle":
        lines[index] = lines[index][: len(lines[index]) // 2] + "\n"
    copy = server.dir / f"tampered-{how}.jsonl"
    copy.write_text("".join(lines))
    result = verify_file(server, copy)
    assert result.returncode == 1, (how, result.stdout, result.stderr)
    assert f"line {line}" in result.stderr or f"line {line}:" in result.stderr or str(line) in result.stderr, result.stderr


def test_verify_refuses_a_missing_file(crashed):
    server, _ = crashed
    result = verify_file(server, server.dir / "no-such-audit.jsonl")
    assert result.returncode != 0
