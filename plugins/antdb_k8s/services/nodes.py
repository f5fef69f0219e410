"""Creating one node's Pgcluster, including the one the postgres-operator abandoned half made.

`ensure_pgcluster` is the deploy's only way to create a node: create if missing, leave an
existing one alone (4.2.1 ignores spec updates), except a Pgcluster the operator marked
Processed and then never gave a Deployment (`core.bootstrap.creation_abandoned`). That one
is deleted and created again, because a new operator process skips every Processed
Pgcluster: a re-run of the deploy is then what finishes it. 4.2.1 does nothing on a
Pgcluster's deletion, and reuses a PVC already made for the node when it creates it again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Mapping

from antdb_k8s.core.bootstrap import creation_abandoned
from antdb_k8s.core.topology import CRUNCHY_API
from antdb_k8s.services.wait import wait_for

if TYPE_CHECKING:
    from antdb_k8s.hooks.kube import AntDBKubeHook

log = logging.getLogger(__name__)
DELETE_TIMEOUT = 60.0


def abandoned_by_operator(kube: "AntDBKubeHook", pgcluster: Mapping, grace: float,
                          now: Callable[[], float] = time.time) -> bool:
    """`creation_abandoned` for a live Pgcluster, reading whether its Deployment exists.

    The Deployment is read only for a Pgcluster that would count without one, so a re-run over
    a healthy cluster (every Pgcluster Initialized) costs no extra request.
    """
    if not creation_abandoned(pgcluster, False, now(), grace):
        return False
    meta = pgcluster["metadata"]
    return kube.get("apps/v1", "Deployment", meta["name"], meta["namespace"]) is None


def ensure_pgcluster(kube: "AntDBKubeHook", manifest: Mapping, *, abandoned_after: float,
                     now: Callable[[], float] = time.time) -> tuple[str, dict]:
    """('created' | 'exists' | 're-created', live Pgcluster) for one node's manifest."""
    action, live = kube.ensure(manifest)
    if action != "exists" or not abandoned_by_operator(kube, live, abandoned_after, now):
        return action, live
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    log.warning("Pgcluster %s is 'pgcluster Processed' with no Deployment after %.0fs: the postgres-operator "
                "stopped while creating it; deleting and re-creating it", name, abandoned_after)
    kube.delete(CRUNCHY_API, "Pgcluster", name, namespace)
    wait_for(lambda: kube.get(CRUNCHY_API, "Pgcluster", name, namespace) is None, DELETE_TIMEOUT, 1.0,
             f"Pgcluster {name} to be deleted before it is created again")
    action, live = kube.ensure(manifest)
    return ("re-created" if action == "created" else action), live
