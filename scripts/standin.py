#!/usr/bin/env python3
"""A stand-in for a downstream HTTP API: recorded responses served over real HTTP on loopback.

Examples that call a downstream do their job locally against this server, selected by the
runtime configuration (`environment = "development"` and `[downstreams.NAME] base_url`). It
answers each request with the recorded response of the first route whose method and path
template match, and writes every request it receives (method, raw path, query, headers) to a
JSON Lines log, so tests can check what reached the downstream, and what never did (the
caller's token).

    scripts/standin.py serve ROUTES [--port 0] [--log FILE]
        Prints `listening on http://127.0.0.1:PORT` on stdout once it serves.
    scripts/standin.py record DESCRIPTION --operation ID... > ROUTES
        Writes the routes for the named operations of an OpenAPI description, each answering
        with the example its description documents for the first success status.

A routes file: {"description": TEXT, "routes": [{"operation": ID, "method": "GET",
"path": "/repos/{owner}/{repo}/pulls", "status": 200, "body": JSON}]}. A `{name}` in a path
matches one non-empty raw segment (or part of one), never a `/`; paths with fewer variables are
tried first.
"""
import argparse
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def template_regex(template):
    pattern = re.sub(r"\\\{[^/{}]+\\\}", "[^/]+?", re.escape(template))
    return re.compile("^" + pattern + "$")


def serve(routes_file, port, log_file):
    spec = json.loads(open(routes_file, encoding="utf-8").read())
    # Literal paths before templates that would also match them (`/releases/latest` before
    # `/releases/{release_id}`).
    ordered = sorted(spec["routes"], key=lambda r: r["path"].count("{"))
    routes = [(r["method"].upper(), template_regex(r["path"]), r) for r in ordered]
    lock = threading.Lock()
    log = open(log_file, "a", encoding="utf-8") if log_file else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            raw = urlsplit(self.path)
            if log:
                entry = {
                    "method": self.command,
                    "path": raw.path,
                    "query": raw.query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                }
                with lock:
                    log.write(json.dumps(entry) + "\n")
                    log.flush()
            for method, regex, route in routes:
                if method == self.command and regex.match(raw.path):
                    return self.answer(route.get("status", 200), route.get("body"))
            return self.answer(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

        def answer(self, status, value):
            payload = b"" if value is None else json.dumps(value).encode()
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    print(f"listening on http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


def resolve(document, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise SystemExit(f"record: external reference {ref} is not supported")
        node = document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def record(description, operations):
    document = json.loads(open(description, encoding="utf-8").read())
    found = {}
    for path, item in document["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") in operations:
                found[op["operationId"]] = (method.upper(), path, op)
    missing = [o for o in operations if o not in found]
    if missing:
        raise SystemExit(f"record: no operation {', '.join(missing)} in {description}")
    routes = []
    for operation in operations:
        method, path, op = found[operation]
        status = min(code for code in op["responses"] if code.startswith("2"))
        response = resolve(document, op["responses"][status])
        content = response.get("content", {}).get("application/json")
        body = None
        if content:
            examples = content.get("examples") or {}
            if examples:
                body = resolve(document, next(iter(examples.values()))).get("value")
            elif "example" in content:
                body = content["example"]
        routes.append({"operation": operation, "method": method, "path": path, "status": int(status), "body": body})
    title = document.get("info", {}).get("title", description)
    version = document.get("info", {}).get("version", "")
    return {
        "description": f"Responses recorded in {title} {version} (the examples it documents), one per operation.",
        "routes": routes,
    }


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("serve")
    s.add_argument("routes")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--log")
    r = commands.add_parser("record")
    r.add_argument("description")
    r.add_argument("--operation", action="append", required=True)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.routes, args.port, args.log)
    else:
        json.dump(record(args.description, args.operation), sys.stdout, indent=1, sort_keys=False)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
