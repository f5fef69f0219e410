"""An in-process HTTP Kubernetes API server for tests, reached by the real `kubernetes`
client and the provider's KubernetesHook through a kubeconfig.

Stdlib `ThreadingHTTPServer` in a daemon thread: synchronous, no event loop to share with the
test, one thread per connection (so watches and long log follows do not block other calls).
Quiet unless KUBEAPI_ACCESS_LOG=1 is set.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import yaml

from .api import ApiHandler, Response, Stream
from .errors import ApiError
from .store import ObjectStore
from .validation import warm_up

log = logging.getLogger(__name__)
ACCESS_LOG_ENV = "KUBEAPI_ACCESS_LOG"


class RequestRecord(NamedTuple):
    """One received request; `query` maps each parameter to its last value."""

    method: str
    path: str
    query: dict[str, str]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    kubeapi: "KubeApiServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients dropping keep-alive connections are normal: log, don't print tracebacks."""
        log.debug("kubeapi: connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # else header+body writes meet delayed ACKs: 40 ms a call
    server: _HTTPServer
    timeout = 300            # idle keep-alive connections release their thread eventually

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if os.environ.get(ACCESS_LOG_ENV):
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        api = self.server.kubeapi
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        api.record(RequestRecord(method, parts.path, query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            result = api.handler.handle(method, parts.path, query,
                                        self.headers.get("Content-Type") or "", body)
        except ApiError as err:
            result = Response(err.code, json.dumps(err.to_status()).encode())
        except Exception:                      # noqa: BLE001 - report like the real API: a 500
            log.exception("kubeapi: %s %s failed", method, self.path)
            err = ApiError(500, "InternalError", "Internal error occurred: see test log")
            result = Response(500, json.dumps(err.to_status()).encode())
        if isinstance(result, Stream):
            self._stream(result)
        else:
            self._send(result)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(resp.body)

    def _stream(self, stream: Stream) -> None:
        """Chunked transfer encoding, flushed per chunk so clients see events as they happen."""
        self.send_response(200)
        self.send_header("Content-Type", stream.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in stream.chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except ApiError as err:
            log.warning("kubeapi: stream ended by %s", err)
            self.close_connection = True


class KubeApiServer:
    """Start/stop the test API server; `store` is shared with the simulator."""

    def __init__(self, store: ObjectStore | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.store = store if store is not None else ObjectStore()
        self.host = host
        self.port = port
        self.url = ""
        self.requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.handler: ApiHandler | None = None

    def record(self, rec: RequestRecord) -> None:
        with self._requests_lock:
            self.requests.append(rec)

    def start(self) -> "KubeApiServer":
        if self._httpd is not None:
            return self
        warm_up()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.kubeapi = self
        self.port = httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self.handler = ApiHandler(self.store, f"{self.host}:{self.port}", self._stopping)
        self._stopping.clear()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"kubeapi-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; open watch streams end within about half a second."""
        if self._httpd is None:
            return
        self._stopping.set()
        self.store.wake_watchers()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "KubeApiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: str | os.PathLike, namespace: str = "default") -> str:
        """A kubeconfig with one cluster/user/context for this server; returns the path."""
        if not self.url:
            raise RuntimeError("start the server before writing its kubeconfig")
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "kubeapi-test", "cluster": {"server": self.url}}],
            "users": [{"name": "kubeapi-test", "user": {"token": "kubeapi-test-token"}}],
            "contexts": [{"name": "kubeapi-test", "context": {
                "cluster": "kubeapi-test", "user": "kubeapi-test", "namespace": namespace}}],
            "current-context": "kubeapi-test",
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return str(target)
