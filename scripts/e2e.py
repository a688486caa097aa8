#!/usr/bin/env python3
"""End-to-end checks of the generated examples with clients nobody here wrote.

For every example in generated-examples/ (built by `cargo build --workspace`):
- the official Python SDK client (PyPI `mcp`), over stdio and Streamable HTTP, in `legacy`
  (2025-11-25 handshake) and `2026-07-28` modes: list tools, resources and prompts; call a tool
  with valid input and get a typed structured result that validates against its output schema;
  call it with invalid input and get an isError result naming the violation;
- the MCP Inspector CLI: `--cli <server> stdio --method tools/list --strict` must exit 0.

An example whose downstreams have stand-ins runs against them (scripts/standin.py serving
specs/standins/NAME.json over loopback HTTP), selected by a development configuration
(`environment = "development"`, `[downstreams.NAME] base_url`), with its service token set to a
canary. Every request a stand-in received must carry the server's own credential and nothing
the client sent.

Usage: scripts/e2e.py [--bin-dir target/debug] [--inspector PATH] [example ...]
Exits non-zero on the first failing check, printing what failed.
"""
import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import jsonschema
from mcp import Client, StdioServerParameters, types

ROOT = Path(__file__).resolve().parent.parent
# One valid call per example: (tool, arguments). The invalid call adds an unknown argument
# and breaks the first required property's type.
CALLS = json.loads((ROOT / "scripts" / "e2e-calls.json").read_text())
# resources/subscribe is what 2025-11-25 clients speak; the SDK warns that 2026-07-28 removed it.
warnings.filterwarnings("ignore", message=r"resources/(un)?subscribe is removed")
MODES = ["legacy", "2026-07-28"]


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def invalid_arguments(arguments):
    broken = dict(arguments)
    broken["charter_e2e_unknown"] = True
    for key, value in arguments.items():
        broken[key] = 12345 if isinstance(value, str) else "not-the-right-type"
        break
    return broken


async def exercise(example, target, mode, label):
    tool_name, arguments = CALLS[example]
    async with Client(target, mode=mode) as client:
        tools = (await client.list_tools()).tools
        names = [t.name for t in tools]
        if tool_name not in names:
            fail(f"{label}: {tool_name} not in tools/list {names}")
        tool = next(t for t in tools if t.name == tool_name)
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
        prompts = (await client.list_prompts()).prompts

        result = await client.call_tool(tool_name, arguments)
        text = result.content[0].text if result.content else ""
        if result.is_error:
            fail(f"{label}: valid call of {tool_name} failed: {text}")
        if tool.output_schema is not None:
            if result.structured_content is None:
                fail(f"{label}: {tool_name} returned no structuredContent")
            jsonschema.validate(result.structured_content, tool.output_schema)
            if json.loads(text) != result.structured_content:
                fail(f"{label}: the text content does not mirror structuredContent")

        bad = await client.call_tool(tool_name, invalid_arguments(arguments))
        bad_text = " ".join(getattr(c, "text", "") for c in bad.content)
        if not bad.is_error:
            fail(f"{label}: invalid call of {tool_name} was not an isError result")
        if "charter_e2e_unknown" not in bad_text or "invalid arguments" not in bad_text:
            fail(f"{label}: the error does not name the violation: {bad_text}")
        print(
            f"ok  {label}: {client.protocol_version}, {len(tools)} tools, {len(resources)} resources, "
            f"{len(templates)} templates, {len(prompts)} prompts; valid and invalid calls of {tool_name}"
        )


async def user_approval(binary, workdir, answer, http=False):
    """change-plan's open_change_request (`approval: user`): the runtime asks the user to confirm
    the exact operation through elicitation; it runs only on an explicit yes, and both answers
    are audited. Over stdio the client is a legacy one, asked on the connection; over stateless
    HTTP it is a 2026-07-28 one, asked by an `input_required` result (SEP-2322) that the SDK
    answers and retries with the sealed requestState."""
    asked = []

    async def on_elicit(context, params):
        asked.append(params.message)
        if answer:
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")

    process = None
    if http:
        process, target = start_http(binary, workdir)
        mode, label = "2026-07-28", "http 2026-07-28 (input_required)"
    else:
        target = StdioServerParameters(command=binary, args=["stdio"], cwd=workdir)
        mode, label = "legacy", "stdio legacy"
    try:
        intents_before = audited(workdir, "intent", "open_change_request")
        result, plan_id = await open_change(target, mode, on_elicit)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    text = result.content[0].text if result.content else ""
    if len(asked) != 1 or plan_id not in asked[0] or "open_change_request" not in asked[0]:
        fail(f"change-plan {label}: the confirmation did not show the exact operation: {asked}")
    if answer and (result.is_error or "CHG" not in text):
        fail(f"change-plan {label}: a confirmed write did not run: {text}")
    if not answer and (not result.is_error or "did not confirm" not in text):
        fail(f"change-plan {label}: a declined write was not refused: {text}")
    ran = audited(workdir, "intent", "open_change_request") - intents_before
    if ran != (1 if answer else 0):
        fail(f"change-plan {label}: {ran} intent records for one {'confirmed' if answer else 'declined'} call")
    print(f"ok  change-plan {label}: user approval {'confirmed, ran once' if answer else 'declined, nothing ran'}")


def audited(workdir, event, name):
    """How many records of `event` for `name` the example's audit log holds."""
    path = Path(workdir) / "audit.jsonl"
    if not path.exists():
        return 0
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(1 for r in records if r.get("event") == event and r.get("name") == name)


async def open_change(target, mode, on_elicit):
    """Drafts a plan and asks to open its change request; returns (result, plan id)."""
    head = "c05a8f3e6d29b17c4e80f5a2d93b6c1e7f40a8d2"
    window = {"start": "2026-12-02T06:00:00Z", "end": "2026-12-02T07:00:00Z"}
    async with Client(target, mode=mode, elicitation_callback=on_elicit) as client:
        draft = await client.call_tool(
            "draft_change_plan",
            {"service": "checkout-web", "environment": "production", "target_revision": head,
             "rollout": "rolling", "window": window},
        )
        plan_id = draft.structured_content["plan_id"]
        arguments = {"plan_id": plan_id, "change_type": "standard", "assignment_group": "platform-infrastructure",
                     "window": window, "justification": "Ship the checkout-web 2.8.1 address-form fix."}
        result = await client.call_tool("open_change_request", arguments)
    return result, plan_id


class StandIns:
    """The stand-ins for an example's downstreams, and the configuration that selects them."""

    def __init__(self, example, workdir):
        surface = json.loads((ROOT / "generated-examples" / example / "src" / "generated" / "surface.json").read_text())
        self.processes = []
        self.logs = []
        self.env = dict(os.environ)
        self.tokens = []
        lines = ['environment = "development"', ""]
        for downstream in surface["downstreams"]:
            name = downstream["name"]
            routes = ROOT / "specs" / "standins" / f"{name}.json"
            if not routes.exists():
                # The example's handlers use embedded data for this downstream; nothing calls it.
                continue
            log = Path(workdir) / f"standin-{name}.jsonl"
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "standin.py"), "serve", str(routes), "--log", str(log)],
                stdout=subprocess.PIPE,
                text=True,
            )
            match = re.search(r"listening on (http://\S+)", process.stdout.readline())
            if not match:
                process.kill()
                fail(f"{example}: the stand-in for {name} did not start")
            self.processes.append(process)
            self.logs.append(log)
            lines += [f"[downstreams.{name}]", f'base_url = "{match.group(1)}"', ""]
            credentials = downstream["credentials"]
            if credentials["kind"] == "service_token":
                secret = credentials["secret"]
                token = "canary-service-token-" + os.urandom(8).hex()
                self.tokens.append(token)
                # A token file's path is the contract's; only an environment variable can be set here.
                # Every request that reaches the stand-in must then carry it (checked below).
                if "env" in secret:
                    self.env[secret["env"]] = token
        self.config = Path(workdir) / "config.toml"
        self.config.write_text("\n".join(lines))

    def args(self):
        return ["--config", str(self.config)] if self.processes else []

    def check(self, example):
        """Every request carried the server's own token, and nothing else that authenticates."""
        seen = 0
        for log in self.logs:
            if not log.exists():
                continue
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                seen += 1
                authorization = entry["headers"].get("authorization", "")
                if authorization not in [f"Bearer {t}" for t in self.tokens]:
                    fail(f"{example}: the stand-in received {entry['method']} {entry['path']} "
                         f"without the server's own token: {authorization!r}")
                if "cookie" in entry["headers"] or "proxy-authorization" in entry["headers"]:
                    fail(f"{example}: the stand-in received credentials it was not given: {entry['headers']}")
        return seen

    def close(self):
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)


def start_http(binary, workdir, extra_args=(), env=None):
    # The clients here test protocol compatibility; tokens, scopes and the other controls are
    # the adversarial suite's (scripts/adversarial). --dev-no-auth is refused off loopback.
    process = subprocess.Popen(
        [binary, *extra_args, "http", "--listen", "127.0.0.1:0", "--dev-no-auth"],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stderr:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return process, match.group(1)
    process.kill()
    fail(f"{binary} http did not report its address")


WATCHED = "test://watched-resource"


def resource_updates(received):
    """A message handler that keeps the URIs of `notifications/resources/updated`."""

    async def on_message(message):
        message = getattr(message, "root", message)
        if isinstance(message, types.ResourceUpdatedNotification):
            received.append(message.params.uri)

    return on_message


async def touch(client):
    """conformance's touch_watched_resource: the handler reports a change; returns how many heard."""
    result = await client.call_tool("touch_watched_resource", {})
    text = result.content[0].text
    match = re.match(r"told (\d+) subscriber", text)
    if result.is_error or not match:
        fail(f"touch_watched_resource: {text}")
    return int(match.group(1))


async def eventually(condition, what, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    fail(f"timed out waiting for {what}")


async def legacy_subscription(target, label):
    """2025-11-25 resources/subscribe: on stdio, and over HTTP in a legacy session."""
    received = []
    async with Client(target, mode="legacy", message_handler=resource_updates(received)) as client:
        await client.subscribe_resource(WATCHED)
        await client.subscribe_resource(WATCHED)  # twice is one subscription
        told = await touch(client)
        if told != 1:
            fail(f"{label}: the change was told to {told} subscribers, want 1")
        await eventually(lambda: WATCHED in received, f"{label}: notifications/resources/updated")
        await client.unsubscribe_resource(WATCHED)
        received.clear()
        told = await touch(client)
        await asyncio.sleep(0.3)
        if told != 0 or received:
            fail(f"{label}: after unsubscribing, {told} told and {received} received")
    print(f"ok  conformance {label}: subscribed, heard the change once, heard nothing after unsubscribing")


async def listened_subscription(url):
    """2026-07-28 subscriptions/listen over stateless HTTP: the stream carries the change; once the
    stream closes, nobody is told."""
    async with Client(url, mode="2026-07-28") as client:
        async with client.listen(resource_subscriptions=[WATCHED, "test://static-text"]) as subscription:
            honored = subscription.honored.resource_subscriptions or []
            if honored != [WATCHED]:
                fail(f"http 2026-07-28: listen honored {honored}, want only the subscribable {WATCHED}")
            told = await touch(client)
            if told != 1:
                fail(f"http 2026-07-28: the change was told to {told} listeners, want 1")
            event = await asyncio.wait_for(subscription.__anext__(), timeout=10)
            if getattr(event, "uri", None) != WATCHED:
                fail(f"http 2026-07-28: the listen stream carried {event!r}")
        await asyncio.sleep(0.3)
        told = await touch(client)
        if told != 0:
            fail(f"http 2026-07-28: {told} told after the listen stream closed")
    print("ok  conformance http 2026-07-28: listen stream carried the change; closed, it ends the subscription")


async def subscriptions(binary, workdir, standins):
    """conformance's watched resource (`subscribable: true`) on every wire."""
    stdio = StdioServerParameters(command=binary, args=["stdio"], cwd=workdir)
    await legacy_subscription(stdio, "stdio legacy")
    process, url = start_http(binary, workdir)
    try:
        await legacy_subscription(url, "http legacy session")
        await listened_subscription(url)
    finally:
        process.terminate()
        process.wait(timeout=10)


async def create_release(binary, workdir, standins, answer):
    """github-releases' repos_create_release (POST, `write`, `approval: user`): the user sees
    the exact operation; on yes the stand-in receives one POST with the body built from the
    validated input, on no it receives nothing."""
    asked = []

    async def on_elicit(context, params):
        asked.append(params.message)
        if answer:
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")

    def posts():
        return [json.loads(line) for log in standins.logs if log.exists()
                for line in log.read_text().splitlines() if json.loads(line)["method"] == "POST"]

    before = len(posts())
    target = StdioServerParameters(command=binary, args=[*standins.args(), "stdio"], cwd=workdir, env=standins.env)
    arguments = {"owner": "octocat", "repo": "hello-world", "tag_name": "v1.0.1", "name": "v1.0.1",
                 "body": "Fixes the address form.", "draft": True}
    async with Client(target, mode="legacy", elicitation_callback=on_elicit) as client:
        result = await client.call_tool("repos_create_release", arguments)
    text = result.content[0].text if result.content else ""
    sent = posts()[before:]
    if len(asked) != 1 or "repos_create_release" not in asked[0] or "v1.0.1" not in asked[0]:
        fail(f"github-releases: the confirmation did not show the exact operation: {asked}")
    if answer:
        if result.is_error or len(sent) != 1:
            fail(f"github-releases: a confirmed release create did not run once ({len(sent)} POSTs): {text}")
        body = json.loads(sent[0]["body"])
        if sent[0]["path"] != "/repos/octocat/hello-world/releases" or body.get("tag_name") != "v1.0.1":
            fail(f"github-releases: the POST was not built from the input: {sent[0]}")
        if not isinstance(result.structured_content, dict):
            fail(f"github-releases: the created release came back without structured content: {text}")
    elif not result.is_error or sent:
        fail(f"github-releases: a declined release create was not refused, or reached GitHub: {text}")
    print(f"ok  github-releases stdio: repos_create_release {'confirmed, one POST' if answer else 'declined, nothing sent'}")


# Every read tool of github-releases against the responses GitHub's description documents. Three
# of those documented examples break GitHub's own schemas, so the server's output validation
# refuses them, as it would refuse such an answer from the real API.
GITHUB_READS = {
    "repos_list_releases": {}, "repos_get_release": {"release_id": 1}, "repos_get_release_by_tag": {"tag": "v1.0.0"},
    "repos_get_latest_release": {}, "repos_list_tags": {}, "repos_compare_commits": {"base": "v1", "head": "v2"},
    "pulls_list": {}, "pulls_get": {"pull_number": 1347}, "pulls_list_commits": {"pull_number": 1},
    "pulls_list_files": {"pull_number": 1}, "pulls_list_reviews": {"pull_number": 1},
    "issues_list_labels_for_repo": {}, "issues_get": {"issue_number": 1}, "issues_list_milestones": {},
    "repos_list_contributors": {}, "repos_list_languages": {}, "repos_list_branches": {},
    "repos_get_branch": {"branch": "main"},
}
EXAMPLES_BREAKING_THEIR_SCHEMA = {
    "pulls_list": "a requested team without the required `type`",
    "pulls_get": "a requested team without the required `type`",
    "issues_get": "the documented issue lacks the required fields",
    "repos_list_branches": "branch protection without the required `checks`",
}


async def github_reads(binary, workdir, standins):
    target = StdioServerParameters(command=binary, args=[*standins.args(), "stdio"], cwd=workdir, env=standins.env)
    async with Client(target, mode="2026-07-28") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name, extra in GITHUB_READS.items():
            result = await client.call_tool(name, {"owner": "octocat", "repo": "hello-world", **extra})
            text = result.content[0].text if result.content else ""
            if name in EXAMPLES_BREAKING_THEIR_SCHEMA:
                if not result.is_error or "breaks its contract" not in text:
                    fail(f"github-releases: {name}'s documented example ({EXAMPLES_BREAKING_THEIR_SCHEMA[name]}) was not refused: {text[:200]}")
                continue
            if result.is_error:
                fail(f"github-releases: {name} failed: {text}")
            jsonschema.validate(result.structured_content, tools[name].output_schema)
    print(f"ok  github-releases stdio: {len(GITHUB_READS) - len(EXAMPLES_BREAKING_THEIR_SCHEMA)} bound reads validated, "
          f"{len(EXAMPLES_BREAKING_THEIR_SCHEMA)} documented examples that break GitHub's schema refused")


async def github_releases(binary, workdir, standins):
    await github_reads(binary, workdir, standins)
    await create_release(binary, workdir, standins, True)
    await create_release(binary, workdir, standins, False)


# Flows beyond one valid and one invalid call, per example.
BOUND_FLOWS = {"github-releases": github_releases, "conformance": subscriptions}


def inspector(inspector_bin, binary, label, workdir):
    completed = subprocess.run(
        [inspector_bin, "--cli", binary, "stdio", "--method", "tools/list", "--strict"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if completed.returncode != 0:
        fail(f"{label}: inspector --strict exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}")
    print(f"ok  {label}: MCP Inspector CLI tools/list --strict")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", default=str(ROOT / "target" / "debug"))
    parser.add_argument("--inspector", default=os.environ.get("MCP_INSPECTOR"))
    parser.add_argument("examples", nargs="*")
    args = parser.parse_args()
    examples = args.examples or sorted(CALLS)
    for example in examples:
        binary = str(Path(args.bin_dir) / example)
        if not Path(binary).exists():
            fail(f"{binary} is missing: run `cargo build --workspace` first")
        # Servers write their audit log (and approval store) in their working directory.
        workdir = tempfile.mkdtemp(prefix=f"charter-e2e-{example}-")
        standins = StandIns(example, workdir)
        try:
            for mode in MODES:
                stdio = StdioServerParameters(command=binary, args=[*standins.args(), "stdio"], cwd=workdir, env=standins.env)
                asyncio.run(exercise(example, stdio, mode, f"{example} stdio {mode}"))
                process, url = start_http(binary, workdir, standins.args(), standins.env)
                try:
                    asyncio.run(exercise(example, url, mode, f"{example} http {mode}"))
                finally:
                    process.terminate()
                    process.wait(timeout=10)
            if example == "change-plan":
                for http in (False, True):
                    asyncio.run(user_approval(binary, workdir, True, http))
                    asyncio.run(user_approval(binary, workdir, False, http))
            if example in BOUND_FLOWS:
                asyncio.run(BOUND_FLOWS[example](binary, workdir, standins))
        finally:
            standins.close()
        seen = standins.check(example)
        if seen:
            print(f"ok  {example}: {seen} requests reached the stand-ins, each with the server's own token only")
        verify = subprocess.run(
            [binary, "audit", "verify", str(Path(workdir) / "audit.jsonl")], capture_output=True, text=True
        )
        if verify.returncode != 0:
            fail(f"{example}: the audit log of the e2e runs does not verify: {verify.stdout}{verify.stderr}")
        print(f"ok  {example}: {verify.stdout.strip()}")
        if args.inspector:
            inspector(os.path.abspath(args.inspector), binary, example, workdir)
    print("e2e: all checks passed")


if __name__ == "__main__":
    main()
