"""The weekly review on what this suite did: `support-replies audit report` over every
support-replies audit log the suite produced (one per server, as one per pod) must verify each
chain and name the denials the suite caused, by reason and caller, and flag the callers it
refused again and again. Runs after the other modules (by name), before the secrets scan."""

import json
import subprocess

from conftest import SERVERS, binary


def test_the_review_names_the_denials_this_suite_caused():
    logs = sorted({str(s.audit_path) for s in SERVERS if s.name == "support-replies" and s.audit_path.exists()})
    assert len(logs) >= 2, "the suite ran fewer support-replies servers than expected"
    out = subprocess.run(
        [binary("support-replies"), "audit", "report", *logs, "--since", "1d", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert [f["file"] for f in report["files"]] == logs and all(f["intact"] for f in report["files"])
    reasons = {d["reason"] for d in report["denied"]}
    # test_auth asks without scopes, test_limits floods, test_approvals approves its own operation.
    for caused in ("insufficient_scope", "rate_limited", "self_approval"):
        assert caused in reasons, f"{caused} missing from the review: {sorted(reasons)}"
    flooded = [d for d in report["denied"] if d["reason"] == "rate_limited"]
    assert sum(d["count"] for d in flooded) >= 5, flooded
    assert report["repeatedly_denied"], "no caller flagged as repeatedly denied"
    assert report["approvals"] and any(a["decision"] == "approved" for a in report["approvals"])

    markdown = subprocess.run(
        [binary("support-replies"), "audit", "report", *logs, "--since", "1d"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert markdown.returncode == 0
    assert "## Denied calls" in markdown.stdout and "insufficient_scope" in markdown.stdout
