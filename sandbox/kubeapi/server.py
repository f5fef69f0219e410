"""An in-process HTTP Kubernetes API server for tests, reached by the real `kubernetes`
client and the provider's KubernetesHook through a kubeconfig.

Stdlib `ThreadingHTTPServer` in a daemon thread: synchronous, no event loop to share with the
test, one thread per connection (so watches and long log follows do not block other calls).
Quiet unless KUBEAPI_ACCESS_LOG=1 is set.

Every request authenticates with a bearer token (auth.py: 401 otherwise) and is authorized by
RBAC over the Roles and bindings in the store (rbac.py: the real 403 otherwise). The admin
token (group system:masters) is what `write_kubeconfig()` uses unless given another:

    token = api.service_account_token("airflow", "airflow-worker")
    api.write_kubeconfig(path, token=token)

The in-process controllers use the `ObjectStore` directly: that path is privileged.
Faults are injected through `api.faults` (faults.py); `restart()` stops serving and starts
again on the same port with the same store.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import yaml

from .api import ApiHandler, Response, Stream
from .auth import TokenAuthenticator
from .errors import ApiError
from .faults import RESET, RESTART, FaultInjector, Injection
from .rbac import RbacAuthorizer, UserInfo, request_attributes, unauthorized
from .store import ObjectStore
from .validation import warm_up

log = logging.getLogger(__name__)
ACCESS_LOG_ENV = "KUBEAPI_ACCESS_LOG"


class RequestRecord(NamedTuple):
    """One received request; `query` maps each parameter to its last value; `user` is who
    sent it ("" when unauthenticated); `code` the status answered (0: no answer)."""

    method: str
    path: str
    query: dict[str, str]
    user: str = ""
    code: int = 0


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    kubeapi: "KubeApiServer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def sever_connections(self) -> None:
        """Close every client connection, as a dying apiserver process does."""
        with self.connections_lock:
            open_now = list(self.connections)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        user = api.auth.authenticate(self.headers.get("Authorization")) or api.pod_identity
        if user is None:
            return self._answer(RequestRecord(method, parts.path, query), _status(unauthorized()))
        record = RequestRecord(method, parts.path, query, user.name)
        injection = api.faults.take(method, parts.path, user)
        if injection is not None:
            return self._inject(record, injection)
        try:
            api.authorizer.authorize(request_attributes(user, method, parts.path, query))
            result = api.handler.handle(method, parts.path, query,
                                        self.headers.get("Content-Type") or "", body, user)
        except ApiError as err:
            result = _status(err)
        except Exception:                      # noqa: BLE001 - report like the real API: a 500
            log.exception("kubeapi: %s %s failed", method, self.path)
            result = _status(ApiError(500, "InternalError", "Internal error occurred: see test log"))
        self._answer(record, result)

    def _answer(self, record: RequestRecord, result: Response | Stream) -> None:
        code = 200 if isinstance(result, Stream) else result.code
        self.server.kubeapi.record(record._replace(code=code))
        if isinstance(result, Stream):
            self._stream(result)
        else:
            self._send(result)

    def _inject(self, record: RequestRecord, injection: Injection) -> None:
        api = self.server.kubeapi
        if injection.code in (RESET, RESTART):
            api.record(record._replace(code=0))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            if injection.code == RESTART:
                threading.Thread(target=api.restart, args=(injection.fault.down_for,),
                                 name="kubeapi-restart", daemon=True).start()
            return
        api.record(record._replace(code=injection.code))
        self.send_response(injection.code)
        for key, value in injection.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", injection.content_type)
        self.send_header("Content-Length", str(len(injection.body)))
        self.end_headers()
        self.wfile.write(injection.body)

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
            if stream.signal is not None and stream.signal.dropped.is_set():
                self.close_connection = True       # cut, not ended: no final chunk
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True
        except ApiError as err:
            log.warning("kubeapi: stream ended by %s", err)
            self.close_connection = True
        finally:
            if stream.signal is not None:
                stream.signal.release()


def _status(err: ApiError) -> Response:
    return Response(err.code, json.dumps(err.to_status()).encode())


class KubeApiServer:
    """Start/stop the test API server; `store` is shared with the simulator."""

    def __init__(self, store: ObjectStore | None = None, host: str = "127.0.0.1",
                 port: int = 0, pod_identity: UserInfo | None = None) -> None:
        """`pod_identity`: who a request without a token is, on a listener that serves one pod.
        The 4.2.1 operator's client sends no bearer token from its kubeconfig (observed), so its
        listener authenticates it as the ServiceAccount its pod runs as, as a real pod's
        mounted token would."""
        self.pod_identity = pod_identity
        self.store = store if store is not None else ObjectStore()
        self.host = host
        self.port = port
        self.url = ""
        self.requests: list[RequestRecord] = []
        self.auth = TokenAuthenticator(self.store)
        self.authorizer = RbacAuthorizer(self.store)
        self.faults = FaultInjector(self)
        self.restarts = 0
        self._requests_lock = threading.Lock()
        self._lifecycle_lock = threading.RLock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.handler: ApiHandler | None = None

    def record(self, rec: RequestRecord) -> None:
        with self._requests_lock:
            self.requests.append(rec)

    def start(self) -> "KubeApiServer":
        with self._lifecycle_lock:
            if self._httpd is not None:
                return self
            warm_up()
            httpd = _HTTPServer((self.host, self.port), _Handler)
            httpd.kubeapi = self
            self.port = httpd.server_address[1]
            self.url = f"http://{self.host}:{self.port}"
            # A fresh event per run: streams of a previous run stay ended after a restart.
            self.handler = ApiHandler(self.store, f"{self.host}:{self.port}", threading.Event(),
                                      self.authorizer)
            self._httpd = httpd
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"kubeapi-{self.port}", daemon=True)
            self._thread.start()
            return self

    def stop(self) -> None:
        """Stop serving and close every client connection; open watch streams end at once."""
        with self._lifecycle_lock:
            if self._httpd is None:
                return
            if self.handler is not None:
                self.handler.stopping.set()
            self.store.wake_watchers()
            self._httpd.shutdown()
            self._httpd.sever_connections()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = None
            self._thread = None

    def restart(self, down_for: float = 0.0) -> None:
        """The API server process restarting: nothing answers for `down_for` seconds, then
        the same port serves the same objects (etcd kept them)."""
        with self._lifecycle_lock:
            self.stop()
            time.sleep(down_for)
            self.start()
            self.restarts += 1

    def drop_watches(self) -> int:
        """Cut every open watch stream (see FaultInjector.drop_watches)."""
        return self.handler.drop_streams() if self.handler is not None else 0

    def __enter__(self) -> "KubeApiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ credentials

    @property
    def admin_token(self) -> str:
        """A token in group system:masters (RBAC bypassed): the test harness's identity."""
        return self.auth.admin_token

    def service_account_token(self, namespace: str, name: str) -> str:
        """Issue a token for ServiceAccount `namespace/name` (it must exist: 404 otherwise),
        as a TokenRequest does. Requests with it are `system:serviceaccount:<ns>:<name>`,
        authorized by the RBAC objects in the store; it stops working if the account goes."""
        return self.auth.issue_service_account_token(namespace, name)

    def write_kubeconfig(self, path: str | os.PathLike, namespace: str = "default",
                         token: str | None = None) -> str:
        """A kubeconfig with one cluster/user/context for this server; returns the path.
        `token` defaults to the admin token."""
        if not self.url:
            raise RuntimeError("start the server before writing its kubeconfig")
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "kubeapi-test", "cluster": {"server": self.url}}],
            "users": [{"name": "kubeapi-test", "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": "kubeapi-test", "context": {
                "cluster": "kubeapi-test", "user": "kubeapi-test", "namespace": namespace}}],
            "current-context": "kubeapi-test",
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return str(target)
