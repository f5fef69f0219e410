"""The store's streaming sides: pod logs (the `log` subresource) and watch history.

Pod logs live in a store-side map, not in the Pod object: writing logs must not bump the
Pod's resourceVersion or fire MODIFIED events (on a real cluster logs are not API objects).
The simulator writes them with `set_pod_log` / `append_pod_log`; `GET .../pods/<n>/log`
reads them. They are dropped when the Pod is deleted.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError, bad_request, not_found


class StreamsMixin:
    """Mixed into ObjectStore; uses its lock, objects, history and rv counter."""

    # ------------------------------------------------------------ pod logs

    def _pod_container(self, namespace: str, name: str, container: str | None) -> tuple[dict, str]:
        pod = self._objects.get(("", "pods"), {}).get((namespace, name))
        if pod is None:
            raise not_found("pods", "", name)
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        names += [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
        if container is None:
            main = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
            if len(main) != 1:
                raise bad_request(f"a container name must be specified for pod {name}, "
                                  f"choose one of: [{' '.join(main)}]")
            container = main[0]
        if container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        return pod, container

    def set_pod_log(self, namespace: str, name: str, text: str, container: str | None = None) -> None:
        """Set the whole log of one container (default: the pod's only container)."""
        with self._lock:
            _, container = self._pod_container(namespace, name, container)
            self._logs.setdefault((namespace, name), {})[container] = text

    def append_pod_log(self, namespace: str, name: str, text: str, container: str | None = None) -> None:
        with self._lock:
            _, container = self._pod_container(namespace, name, container)
            logs = self._logs.setdefault((namespace, name), {})
            logs[container] = logs.get(container, "") + text

    def read_pod_log(self, namespace: str, name: str, container: str | None = None,
                     tail_lines: int | None = None, limit_bytes: int | None = None) -> str:
        """What `GET .../pods/<name>/log` returns (400 while the container is waiting)."""
        with self._lock:
            pod, container = self._pod_container(namespace, name, container)
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (status.get("state") or {}).get("waiting")
                if status.get("name") == container and waiting is not None:
                    raise bad_request(f'container "{container}" in pod "{name}" is waiting to '
                                      f'start: {waiting.get("reason", "ContainerCreating")}')
            text = self._logs.get((namespace, name), {}).get(container, "")
        if tail_lines is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail_lines:]) if tail_lines > 0 else ""
        if limit_bytes is not None:
            text = text.encode()[:limit_bytes].decode(errors="ignore")
        return text

    # ------------------------------------------------------------ watch support

    def _expired(self, rv: int) -> ApiError:
        return ApiError(410, "Expired", f"too old resource version: {rv} ({self._history_floor + 1})")

    def watch_start(self, rtype: Any, namespace: str | None, keep: Any,
                    resource_version: str | None) -> tuple[list[dict], int]:
        """Synthetic ADDED objects (for an unset or "0" resourceVersion) and the rv to stream from."""
        with self._lock:
            if resource_version in (None, "", "0"):
                items = sorted(self._objects.get(rtype.key, {}).items())
                objs = [self.present(rtype, o) for (ns, _), o in items
                        if (namespace is None or not rtype.namespaced or ns == namespace) and keep(o)]
                return objs, self._rv
            try:
                rv = int(resource_version)
            except ValueError:
                raise bad_request(f"invalid resource version: {resource_version!r}") from None
            if rv < self._history_floor:
                raise self._expired(rv)
            return [], rv

    def watch_events(self, since_rv: int, timeout: float) -> list:
        """Committed WatchEvents with rv > since_rv, waiting up to `timeout` for the first."""
        with self._changed:
            if since_rv < self._history_floor:
                raise self._expired(since_rv)
            if self._rv <= since_rv:
                self._changed.wait(timeout)
            out = []
            for ev in reversed(self._history):
                if ev.rv <= since_rv:
                    break
                out.append(ev)
            out.reverse()
            return out

    def wake_watchers(self) -> None:
        """Let blocked watch streams re-check (used when the server stops)."""
        with self._changed:
            self._changed.notify_all()
