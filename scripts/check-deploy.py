#!/usr/bin/env python3
"""Checks every generated example's deploy/ the way a platform engineer would before `kubectl apply`.

For each generated-examples/*/deploy:
  - kubernetes-validate --strict on the manifests, and on the StatefulSet with the audit-shipping
    patch applied (the sidecar an operator may enable);
  - hadolint on the Dockerfile;
  - promtool check rules and promtool test rules on the alerts;
  - the restricted Pod Security Standard, checked field by field (numeric non-root user in the pod,
    the containers and the image; no privilege escalation; all capabilities dropped; RuntimeDefault
    seccomp; read-only root filesystem; no host namespaces or hostPath);
  - references: every ConfigMap, PVC, ServiceAccount, Service and volume the workload names is
    defined; every Secret and key it names is created by a command in the generated README;
    selectors match the pod's labels; no `replicas` beside the autoscaler;
  - the network policy: every egress rule has `to:`, no address range is open to everything, and
    ingress reaches only the MCP port (metrics only from the monitoring namespace);
  - .dockerignore keeps build output and local state out of the image.

`--self-test` breaks a copy of one example in each of those ways and requires each break to be
reported, so the checks cannot pass vacuously.

Usage: scripts/check-deploy.py [--self-test] [EXAMPLE_DIR...]   (needs scripts/setup-tools)
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".tools" / "venv" / "bin"
MANIFESTS = ["kubernetes.yaml", "network-policy.yaml"]


def run(cmd, cwd=None):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return out.returncode, (out.stdout + out.stderr).strip()


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def strategic_merge(base, patch):
    """The subset of Kubernetes' strategic merge the audit-shipping patch uses: maps merge, lists
    of named objects (containers, volumes, volumeMounts) merge by name, other lists replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = strategic_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(
        isinstance(x, dict) and "name" in x for x in base + patch
    ):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            for i, existing in enumerate(out):
                if existing["name"] == item["name"]:
                    out[i] = strategic_merge(existing, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def readme_secrets(readme):
    """Secret name -> keys, from the README's `kubectl create secret generic NAME --from-file=KEY=...` commands."""
    secrets = {}
    for m in re.finditer(r"create secret generic (\S+)((?:\s*\\?\n?\s*--from-(?:file|literal)=[^\s\\]+)+)", readme):
        keys = re.findall(r"--from-(?:file|literal)=([^=\s\\]+)=", m.group(2))
        secrets.setdefault(m.group(1), set()).update(keys)
    return secrets


def check_example(example):
    deploy = example / "deploy"
    problems = []

    def problem(what):
        problems.append(f"{example.name}: {what}")

    # Schemas.
    code, out = run([str(VENV / "kubernetes-validate"), "--strict", "--quiet", *MANIFESTS], cwd=deploy)
    if code != 0:
        problem(f"kubernetes-validate --strict failed:\n{out}")
    docs = [d for name in MANIFESTS for d in load_all(deploy / name)]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    workloads = by_kind.get("StatefulSet", []) + by_kind.get("Deployment", [])
    if len(workloads) != 1:
        problem(f"expected one workload, found {len(workloads)}")
        return problems
    workload = workloads[0]
    patch = yaml.safe_load((deploy / "audit-shipping.patch.yaml").read_text())
    shipped = strategic_merge(workload, patch)
    with tempfile.TemporaryDirectory() as tmp:
        patched = Path(tmp) / "patched.yaml"
        patched.write_text(yaml.safe_dump_all([shipped] + load_all(deploy / "audit-shipping.yaml")))
        code, out = run([str(VENV / "kubernetes-validate"), "--strict", "--quiet", str(patched)])
        if code != 0:
            problem(f"the StatefulSet with deploy/audit-shipping.patch.yaml fails kubernetes-validate --strict:\n{out}")

    # Image and alerts.
    code, out = run([str(VENV / "hadolint"), "Dockerfile"], cwd=deploy)
    if code != 0:
        problem(f"hadolint Dockerfile:\n{out}")
    for cmd in (["promtool", "check", "rules", "alerts.yaml"], ["promtool", "test", "rules", "alerts.test.yaml"]):
        code, out = run(cmd, cwd=deploy)
        if code != 0:
            problem(f"{' '.join(cmd)}:\n{out}")

    # Restricted Pod Security Standard.
    dockerfile = (deploy / "Dockerfile").read_text()
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    image_uid = user[-1].split(":")[0] if user else None
    if not (image_uid and image_uid.isdigit() and int(image_uid) > 0):
        problem(f"the image's USER is {user[-1] if user else 'unset'}: it must be a numeric non-root user")
    for name, w in (("the StatefulSet", workload), ("the StatefulSet with audit shipping", shipped)):
        pod = w["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            problem(f"{name}: the pod does not set runAsNonRoot: true")
        uid = psc.get("runAsUser")
        if not isinstance(uid, int) or uid <= 0:
            problem(f"{name}: the pod's runAsUser is {uid!r}; the kubelet cannot verify a non-numeric user is not root")
        elif image_uid and image_uid.isdigit() and uid != int(image_uid):
            problem(f"{name}: the pod runs as {uid} but the image as {image_uid}")
        if psc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problem(f"{name}: no RuntimeDefault seccomp profile")
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(host):
                problem(f"{name}: {host} is set")
        writable = [v["name"] for v in pod.get("volumes", []) if "emptyDir" in v or "persistentVolumeClaim" in v]
        writable += [t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])]
        if writable and not isinstance(psc.get("fsGroup"), int):
            problem(f"{name}: writable volumes {writable} but no fsGroup, so the non-root user cannot write them")
        for v in pod.get("volumes", []):
            if "hostPath" in v:
                problem(f"{name}: volume {v['name']} is a hostPath")
        mounts_tmp = False
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problem(f"{name}: container {c['name']} allows privilege escalation")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problem(f"{name}: container {c['name']} does not drop ALL capabilities")
            if sc.get("readOnlyRootFilesystem") is not True:
                problem(f"{name}: container {c['name']} has a writable root filesystem")
            if sc.get("privileged"):
                problem(f"{name}: container {c['name']} is privileged")
            volumes = {v["name"] for v in pod.get("volumes", [])} | {
                t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])
            }
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    problem(f"{name}: container {c['name']} mounts volume {m['name']}, which is not defined")
                if c["name"] == "server" and m["mountPath"] == "/tmp":
                    mounts_tmp = True
        if not mounts_tmp:
            problem(f"{name}: the server has no writable /tmp (an emptyDir) on its read-only root filesystem")

    # References.
    namespace = workload["metadata"]["namespace"]
    defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
    defined |= {(d["kind"], d["metadata"]["name"]) for d in load_all(deploy / "audit-shipping.yaml")}
    readme = (example / "README.md").read_text()
    created = readme_secrets(readme)
    pod = shipped["spec"]["template"]["spec"]
    labels = shipped["spec"]["template"]["metadata"]["labels"]
    for d in docs:
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != namespace:
            problem(f"{d['kind']} {d['metadata']['name']} is not in namespace {namespace}")
    if ("Namespace", namespace) not in defined:
        problem(f"namespace {namespace} is not defined")
    sa = pod.get("serviceAccountName")
    if sa and ("ServiceAccount", sa) not in defined:
        problem(f"service account {sa} is not defined")
    if workload["kind"] == "StatefulSet" and ("Service", workload["spec"]["serviceName"]) not in defined:
        problem(f"the StatefulSet's serviceName {workload['spec']['serviceName']} is not a defined Service")
    for v in pod.get("volumes", []):
        if "configMap" in v and ("ConfigMap", v["configMap"]["name"]) not in defined:
            problem(f"volume {v['name']} names ConfigMap {v['configMap']['name']}, which is not defined")
        if "persistentVolumeClaim" in v:
            problem(f"volume {v['name']} names a PersistentVolumeClaim shared by every replica; use volumeClaimTemplates")
        if "secret" in v:
            secret = v["secret"]["secretName"]
            keys = {i["key"] for i in v["secret"].get("items", [])}
            missing = keys - created.get(secret, set())
            if secret not in created or missing:
                problem(f"volume {v['name']} names Secret {secret} (keys {sorted(keys)}), which no README command creates with {sorted(missing) or 'it'}")
    for c in pod["containers"]:
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] not in created.get(ref["name"], set()):
                problem(f"env {e['name']} reads Secret {ref['name']} key {ref['key']}, which no README command creates")
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ("ConfigMap", ref["name"]) not in defined:
                problem(f"env {e['name']} reads ConfigMap {ref['name']}, which is not defined")
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        for d in by_kind.get(kind, []):
            spec = d["spec"]
            selector = spec.get("selector") if kind == "Service" else spec.get("selector", spec.get("podSelector", {})).get("matchLabels")
            if kind == "NetworkPolicy":
                selector = spec["podSelector"].get("matchLabels")
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                problem(f"{kind} {d['metadata']['name']} selects {selector}, which does not match the pod's labels {labels}")
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    for h in hpas:
        target = h["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) not in defined:
            problem(f"the autoscaler targets {target['kind']} {target['name']}, which is not defined")
    if hpas and "replicas" in workload["spec"]:
        problem("the workload sets replicas beside an autoscaler: every apply resets the autoscaler's count")
    if not pod.get("topologySpreadConstraints") and not pod.get("affinity"):
        problem("replicas are not spread across nodes")
    if not any(c.get("lifecycle", {}).get("preStop") for c in pod["containers"]):
        problem("no preStop drain")
    config_maps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    server = next(c for c in pod["containers"] if c["name"] == "server")
    config_path = server["args"][server["args"].index("--config") + 1]
    config_mount = next(
        (m for m in server["volumeMounts"] if config_path.startswith(m["mountPath"].rstrip("/") + "/")), None
    )
    if not config_mount:
        problem(f"--config {config_path} is not on a mounted volume")
    else:
        volume = next(v for v in pod["volumes"] if v["name"] == config_mount["name"])
        cm = config_maps.get(volume.get("configMap", {}).get("name"))
        key = config_path[len(config_mount["mountPath"].rstrip("/")) + 1 :]
        if not cm or key not in cm.get("data", {}):
            problem(f"--config {config_path}: the mounted ConfigMap has no key {key}")
        else:
            config = tomllib.loads(cm["data"][key])
            # The server itself must accept the configuration the cluster gives it.
            server_binary = ROOT / "target" / "debug" / example.name
            if server_binary.exists():
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "config.toml"
                    path.write_text(cm["data"][key])
                    code, out = run([str(server_binary), "--config", str(path), "surface"])
                    if code != 0:
                        problem(f"the server refuses the ConfigMap's config.toml:\n{out}")
            elif os.environ.get("CHECK_DEPLOY_REQUIRE_BINARIES") == "1":
                problem(f"{server_binary} is missing: build the examples first (cargo build --workspace --bins)")
            switch = config.get("kill_switch", {}).get("file")
            mount = next((m for m in server["volumeMounts"] if switch and switch.startswith(m["mountPath"] + "/")), None)
            if not mount:
                problem(f"the kill-switch file {switch} is not on a mounted volume operators can change")
            else:
                volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
                if "configMap" not in volume:
                    problem(f"the kill-switch file {switch} is on volume {mount['name']}, not a ConfigMap operators patch")
                elif switch.rsplit("/", 1)[1] not in readme:
                    problem("the README does not say how to flip the kill switch")
            metrics = config.get("http", {}).get("metrics_listen")
            if not metrics or metrics.rsplit(":", 1)[1] == config["http"].get("listen", "").rsplit(":", 1)[-1]:
                problem("/metrics shares the MCP port, so the network policy cannot restrict it to monitoring")

    # Network policy.
    policies = by_kind.get("NetworkPolicy", [])
    if not policies:
        problem("no NetworkPolicy")
    for p in policies:
        spec = p["spec"]
        for t in ("Ingress", "Egress"):
            if t not in spec.get("policyTypes", []):
                problem(f"NetworkPolicy {p['metadata']['name']} does not restrict {t.lower()}")
        for rule in spec.get("egress", []):
            if not rule.get("to"):
                problem(f"an egress rule {rule.get('ports')} has no `to:`, so it is open to any address")
            for peer in rule.get("to", []):
                cidr = peer.get("ipBlock", {}).get("cidr", "")
                if cidr.endswith("/0"):
                    problem(f"an egress rule opens {cidr}")
            if not rule.get("ports"):
                problem("an egress rule opens every port")
        for rule in spec.get("ingress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            if not ports:
                problem("an ingress rule opens every port")
            if ports - {8080} and not rule.get("from"):
                problem(f"ingress to ports {sorted(ports)} is open to every pod; only the MCP port may be")

    server_binary = ROOT / "target" / "debug" / example.name
    if server_binary.exists():
        code, out = run([str(server_binary), "--config", str(example / "config.example.toml"), "surface"])
        if code != 0:
            problem(f"the server refuses its own config.example.toml:\n{out}")

    dockerignore = (example / ".dockerignore").read_text().split()
    for pattern in ("target/", "**/*.jsonl", "**/*.sqlite3"):
        if pattern not in dockerignore:
            problem(f".dockerignore does not exclude {pattern}")
    return problems


def self_test(example):
    """Each break must be reported: the checks are not vacuous."""
    breaks = {
        "symbolic image user": ("deploy/Dockerfile", lambda t: re.sub(r"^USER .*$", "USER nonroot:nonroot", t, flags=re.M), "numeric non-root"),
        "no runAsUser": ("deploy/kubernetes.yaml", lambda t: re.sub(r"\n        runAsUser: \d+", "", t, count=1), "runAsUser"),
        "egress without to": ("deploy/network-policy.yaml", lambda t: t + "    - ports: [{ protocol: TCP, port: 443 }]\n", "no `to:`"),
        "undefined ConfigMap": ("deploy/kubernetes.yaml", lambda t: t.replace("configMap: { name: " + example.name + "-config }", "configMap: { name: " + example.name + "-settings }"), "not defined"),
        "undocumented Secret": ("README.md", lambda t: re.sub(r"create secret generic \S+-secrets", "create secret generic other", t), "no README command creates"),
        "replicas beside HPA": ("deploy/kubernetes.yaml", lambda t: t.replace("  serviceName:", "  replicas: 2\n  serviceName:", 1), "replicas beside an autoscaler"),
        "broken alert test": ("deploy/alerts.test.yaml", lambda t: t.replace("severity: critical", "severity: page", 1), "promtool test rules"),
        "no tmp": ("deploy/kubernetes.yaml", lambda t: t.replace("mountPath: /tmp", "mountPath: /scratch"), "writable /tmp"),
        "a setting the server does not know": ("deploy/kubernetes.yaml", lambda t: t.replace("    [audit]\n", "    [audit]\n    rotate = true\n", 1), "refuses the ConfigMap"),
    }
    failures = []
    for what, (path, change, expect) in breaks.items():
        with tempfile.TemporaryDirectory() as tmp:
            copy_dir = Path(tmp) / example.name
            shutil.copytree(example, copy_dir, ignore=shutil.ignore_patterns("target", "src", "charter-runtime"))
            target = copy_dir / path
            before = target.read_text()
            after = change(before)
            if after == before:
                failures.append(f"self-test `{what}`: the break did not apply to {path}")
                continue
            target.write_text(after)
            found = check_example(copy_dir)
            if not any(expect in p for p in found):
                failures.append(f"self-test `{what}`: no problem mentioning `{expect}` was reported (got {found})")
    return failures


def main():
    args = sys.argv[1:]
    selftest = "--self-test" in args
    args = [a for a in args if a != "--self-test"]
    for tool in (VENV / "kubernetes-validate", VENV / "hadolint"):
        if not tool.exists():
            sys.exit(f"{tool} is missing: run scripts/setup-tools")
    if not shutil.which("promtool"):
        sys.exit("promtool is missing: run scripts/setup-tools (Debian package prometheus)")
    examples = [Path(a).resolve() for a in args] or sorted(
        p for p in (ROOT / "generated-examples").iterdir() if (p / "deploy" / "kubernetes.yaml").exists()
    )
    problems = []
    for example in examples:
        found = check_example(example)
        print(f"{example.name}: {'ok' if not found else f'{len(found)} problem(s)'}")
        problems += found
    if selftest:
        failures = self_test(examples[0])
        print(f"self-test on {examples[0].name}: {'ok' if not failures else f'{len(failures)} failure(s)'}")
        problems += failures
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
