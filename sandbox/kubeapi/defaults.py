"""Server-side defaulting, as the real API applies it to every object it stores.

The product reads back what the API server filled in (a Service's `targetPort`, a Deployment's
`replicas`, a Secret's base64 `data` from `stringData`), so the test API must fill the same
fields or the product would pass here and fail on a cluster.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .errors import bad_request
from .resources import ResourceType

_WORKLOADS = (("apps", "deployments"), ("apps", "replicasets"), ("apps", "daemonsets"),
              ("batch", "jobs"))


def _container_defaults(c: dict[str, Any]) -> None:
    image = c.get("image") or ""
    tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
    c.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def pod_spec_defaults(spec: dict[str, Any], default_restart: bool = True) -> None:
    if default_restart:
        spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            if isinstance(c, dict):
                _container_defaults(c)


def _workload_defaults(key: tuple[str, str], spec: dict[str, Any]) -> None:
    template_spec = (spec.get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        pod_spec_defaults(template_spec, default_restart=key != ("batch", "jobs"))
    if key == ("apps", "deployments"):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"})
    elif key == ("apps", "replicasets"):
        spec.setdefault("replicas", 1)
    elif key == ("apps", "daemonsets"):
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": 0, "maxUnavailable": 1}})
    elif key == ("batch", "jobs"):
        for name, value in (("parallelism", 1), ("completions", 1), ("backoffLimit", 6),
                            ("completionMode", "NonIndexed"), ("suspend", False)):
            spec.setdefault(name, value)


def job_selector(obj: dict[str, Any]) -> None:
    """A new Job gets a controller-uid selector and matching template labels (create only)."""
    spec = obj.setdefault("spec", {})
    if spec.get("manualSelector") or spec.get("selector"):
        return
    uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
    labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                   "controller-uid": uid, "job-name": name})


def _service_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def _secret_defaults(obj: dict[str, Any]) -> None:
    """stringData is write-only: merged into data (base64) and dropped, as the API does."""
    obj.setdefault("type", "Opaque")
    data = obj.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(value or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise bad_request(f"Secret in version \"v1\" cannot be handled as a Secret: illegal "
                              f"base64 data at input byte 0 (data[{key}])") from None
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data


def apply_defaults(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Defaults for every write (create, replace, patch result)."""
    key = rtype.key
    spec = obj.get("spec")
    if key == ("", "pods") and isinstance(spec, dict):
        pod_spec_defaults(spec)
    elif key in _WORKLOADS and isinstance(spec, dict):
        _workload_defaults(key, spec)
    elif key == ("", "services") and isinstance(spec, dict):
        _service_defaults(spec)
    elif key == ("", "secrets"):
        _secret_defaults(obj)
    elif key == ("", "namespaces"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
    elif key == ("", "persistentvolumeclaims") and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions") and isinstance(spec, dict):
        spec.setdefault("conversion", {"strategy": "None"})


def _qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    res = [c.get("resources") or {} for c in containers if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    guaranteed = all((r.get("limits") or {}).get(k) and
                     (r.get("requests") or r.get("limits") or {}).get(k) == (r.get("limits") or {}).get(k)
                     for r in res for k in ("cpu", "memory"))
    return "Guaranteed" if guaranteed else "Burstable"


def initial_status(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The status a newly created object starts with; None keeps what the client sent.

    Kinds with a status subresource ignore client-sent status on create (a controller owns it).
    """
    key = rtype.key
    if key == ("", "pods"):
        return {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
    if key == ("", "namespaces"):
        return {"phase": "Active"}
    if key in (("", "persistentvolumeclaims"), ("", "persistentvolumes")):
        return {"phase": "Pending"}
    if key == ("", "services"):
        return {"loadBalancer": {}}
    if key == ("", "nodes"):
        return None
    if key == ("apps", "replicasets"):                 # the schema requires these members
        return {"replicas": 0}
    if key == ("apps", "daemonsets"):
        return {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                "numberMisscheduled": 0, "numberReady": 0}
    if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return crd_status(obj)
    return {} if rtype.has_status else None


def crd_status(crd: dict[str, Any]) -> dict[str, Any]:
    """An accepted, established CRD (names are never in conflict here)."""
    spec = crd.get("spec") or {}
    conditions = [{"type": t, "status": "True", "reason": r, "message": m,
                   "lastTransitionTime": (crd.get("metadata") or {}).get("creationTimestamp")}
                  for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                  ("Established", "InitialNamesAccepted",
                                   "the initial names have been accepted"))]
    return {"acceptedNames": dict(spec.get("names") or {}), "conditions": conditions,
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")]}
