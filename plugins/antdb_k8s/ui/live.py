"""Live state for the AntDB page, read through verification's own discovery, within a deadline.

Discovery is the service layer's `discover(kube, namespace)` (what `verify_cluster` calls); node
probes are verification's `probe_identities` and `AntDBHook.read_pgxc_nodes`; the
judgement is `core.cluster_view` on top of the deploy planner. Every read is bounded: the
Kubernetes client and node connections get short timeouts, and the whole gathering runs
under a deadline, so an unreachable cluster or node is shown as such instead of hanging the page.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Callable, TypeVar

from antdb_k8s.core.cluster_view import ClusterView, build_view
from antdb_k8s.core.verify import first_line
from antdb_k8s.hooks.antdb import AntDBHook
from antdb_k8s.hooks.kube import AntDBKubeHook

log = logging.getLogger(__name__)
T = TypeVar("T")
KUBE_TIMEOUT = 5.0  # seconds per Kubernetes API call
NODE_CONNECT_TIMEOUT = 3  # seconds per node connection
PAGE_DEADLINE = 12.0  # seconds for everything one page reads
# Shared and never waited on at shutdown: a probe stuck past the deadline must not hold a request.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="antdb-ui")


def discover(kube: AntDBKubeHook, namespace: str):
    """Pgclusters, Services and database pods of one namespace, in one read: the facts verify uses."""
    from antdb_k8s.services.discovery import discover as shared_discover

    return shared_discover(kube, namespace)


def probe_identities(antdb: AntDBHook, nodes):
    """What each node says about itself, in parallel: verification's own probe."""
    from antdb_k8s.services.verification import probe_identities as probe

    return probe(antdb, nodes)


@dataclass(frozen=True)
class Hooks:
    kube: AntDBKubeHook
    antdb: AntDBHook


def default_hooks() -> Hooks:
    return Hooks(AntDBKubeHook(request_timeout=KUBE_TIMEOUT), AntDBHook(connect_timeout=NODE_CONNECT_TIMEOUT))


def within(deadline: float, what: str, read: Callable[[], T]) -> T:
    """`read()` or a TimeoutError naming `what` after `deadline` seconds (the read is abandoned)."""
    future = _POOL.submit(read)
    try:
        return future.result(timeout=deadline)
    except FutureTimeout:
        raise TimeoutError(f"{what}: no answer within {deadline:.0f}s") from None


def deployed_namespaces(kube: AntDBKubeHook) -> list[str]:
    from antdb_k8s.services.discovery import deployed_namespaces as deployed

    return deployed(kube)


def _catalogs(antdb: AntDBHook, topology, identities) -> dict:
    """Each reachable holder's pgxc_node rows (or the error), read in parallel."""
    holders = [h for h in topology.catalog_holders if not isinstance(identities.get(h.name), BaseException)]

    def read(holder):
        try:
            return antdb.read_pgxc_nodes(holder)
        except Exception as exc:  # noqa: BLE001 - shown in the matrix row
            return exc

    if not holders:
        return {h.name: identities.get(h.name) for h in topology.catalog_holders}
    with ThreadPoolExecutor(max_workers=len(holders), thread_name_prefix="antdb-ui-pgxc") as pool:
        found = dict(zip((h.name for h in holders), pool.map(read, holders)))
    return {h.name: found.get(h.name, identities.get(h.name)) for h in topology.catalog_holders}


def gather(hooks: Hooks, namespace: str, probe: bool = True) -> ClusterView:
    """One namespace's view; `probe=False` reads Kubernetes only (the clusters list)."""
    facts = discover(hooks.kube, namespace)
    topology = facts.partial_topology  # the addressed members; the others show without an address
    problems = [] if facts.members else [f"no AntDB Pgclusters in namespace {namespace}"]
    problems += [f"{name}: Service has no ClusterIP, so pgxc_node is not planned" for name in facts.unaddressed]
    identities, catalogs = {}, {}
    if probe and topology is not None:
        identities = probe_identities(hooks.antdb, topology.nodes)
        catalogs = _catalogs(hooks.antdb, topology, identities) if facts.complete else {}
    # An incomplete topology is not planned against (as in verify): every matrix cell says "not checked".
    return build_view(namespace, facts.members, topology, facts.pods, identities, catalogs, problems,
                      scrub=lambda text: hooks_scrub(hooks, text))


def cluster_view(hooks: Hooks, namespace: str, probe: bool = True, deadline: float = PAGE_DEADLINE) -> ClusterView:
    """`gather` that never raises: an unreachable API or a timeout becomes the view's problem."""
    try:
        return within(deadline, f"namespace {namespace}", lambda: gather(hooks, namespace, probe))
    except Exception as exc:  # noqa: BLE001 - the page shows it; it never fails with a 500
        log.warning("AntDB page: cannot read namespace %s: %s", namespace, first_line(exc))
        return ClusterView(namespace, problems=[f"cannot read the cluster: {hooks_scrub(hooks, first_line(exc))}"])


def hooks_scrub(hooks: Hooks, text: str) -> str:
    """Mask the AntDB password should a driver message ever echo it."""
    try:
        password = hooks.antdb.credentials.password
    except Exception:  # noqa: BLE001 - no connection, nothing to mask
        return text
    return text.replace(password, "******") if password else text


def list_namespaces(hooks: Hooks, deadline: float = KUBE_TIMEOUT + 1) -> tuple[list[str], str | None]:
    """The deployed namespaces, or ([], why) when Kubernetes cannot be asked."""
    try:
        return within(deadline, "Kubernetes API", lambda: deployed_namespaces(hooks.kube)), None
    except Exception as exc:  # noqa: BLE001 - shown on the page
        log.warning("AntDB page: cannot list namespaces: %s", first_line(exc))
        return [], f"cannot list AntDB namespaces: {first_line(exc)}"
