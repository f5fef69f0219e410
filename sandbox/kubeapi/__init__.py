"""In-process Kubernetes API server for tests, reached by the real `kubernetes` client and the
provider's KubernetesHook through a kubeconfig.

    store = ObjectStore(crd_schemas={("crunchydata.com", "Pgcluster"): crd_dict})
    with KubeApiServer(store) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")

The simulator (the cluster's controllers and kubelet) uses the same `ObjectStore` directly:
`add_listener(fn)` for ADDED/MODIFIED/DELETED, `update_status(...)` to write status the way a
controller does, `set_pod_log` / `append_pod_log` to feed `GET .../pods/<name>/log`.

Requests need a bearer token (401 otherwise) and are authorized by Kubernetes RBAC over the
Roles/ClusterRoles/bindings in the store (rbac.py, the real 403 body). `write_kubeconfig`
uses the admin token (system:masters) unless given `token=api.service_account_token(ns, sa)`.
Faults on request: `api.faults` (faults.py); `api.restart(down_for)` keeps the objects.

Behaviour that differs from a default real cluster, on purpose:
- unknown fields are rejected with 422 (the real API's `fieldValidation=Strict`), for
  built-ins and custom resources alike; the real default silently drops them;
- deletion is immediate (no finalizers, no grace period) and garbage collection of
  ownerReferences dependents runs synchronously right after the owner's DELETED event;
- there are no controllers: nothing creates ReplicaSets, Pods, Endpoints or status
  (the simulator does), except the "default" ServiceAccount of each new namespace.
"""

from .errors import ApiError
from .server import KubeApiServer, RequestRecord
from .store import ObjectStore, WatchEvent

__all__ = ["ApiError", "KubeApiServer", "ObjectStore", "RequestRecord", "WatchEvent"]
