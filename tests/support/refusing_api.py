"""A loopback HTTP server that answers like a Kubernetes API server refusing a client: 401 or 403.

The test API (`sandbox/kubeapi`) has no authentication, so the package's handling of
refused credentials is exercised against this instead: the same status bodies a real API
server sends (`kind: Status`, its reason and message wording), nothing else.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from tests.support.users import AIRFLOW

SERVICE_ACCOUNT = AIRFLOW
_VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def forbidden_message(method: str, path: str, user: str = SERVICE_ACCOUNT) -> str:
    """The message kube-apiserver's authorizer writes, for a request path like /api/v1/namespaces/x."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    group = "" if parts[:1] == ["api"] else parts[1]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else None)
    verb = _VERBS.get(method, method.lower())
    if method == "GET" and name is None:
        verb = "list"
    target = f'{resource} "{name}"' if name else resource
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return (f'{target} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{group}"'
            f"{where}")


class RefusingApi:
    """`status` 401: every request is unauthenticated. 403: /version answers, everything else is forbidden."""

    def __init__(self, status: int):
        self.status = status
        self.requests: list[tuple[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "RefusingApi":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def write_kubeconfig(self, path: Path, user: str = "ci-reader", context: str = "refusing") -> str:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "c", "cluster": {"server": self.url}}],
            "users": [{"name": user, "user": {"token": "expired-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "c", "user": user}}]}))
        return str(path)

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                api.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if api.status == 403 and self.path.startswith("/version"):
                    return self._send(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
                if api.status == 401:
                    return self._send(401, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                            "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
                return self._send(403, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": forbidden_message(self.command, self.path),
                                        "reason": "Forbidden", "code": 403})

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        return Handler
