"""The objects a freshly built kubeadm cluster has, and what a finished operator install adds
(exactly what the package's install applies: the operator pod then runs the real binary).

Why kube-proxy is modelled at all: the product switches it to ipvs mode (runbook 2.3) by
editing its ConfigMap and deleting its pods; both must exist, look like kubeadm's, and the
pods must come back under new names.
"""

from __future__ import annotations

from .common import CRD, Api

KUBE_PROXY_IMAGE = "registry.k8s.io/kube-proxy:v1.30.6"

# kubeadm's KubeProxyConfiguration: mode "" means iptables; the ipvs block is present but unused.
KUBE_PROXY_CONFIG = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 127.0.0.1
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: ""
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
metricsBindAddress: ""
mode: ""
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForAlphaFeatures: ""
winkernel:
  enableDSR: false
  networkName: ""
  sourceVip: ""
"""

KUBE_PROXY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
"""


def node_ip(index: int) -> str:
    """Node InternalIPs: 127.1.0.1, 127.1.0.2, ... (loopback, distinct from ClusterIPs/pod IPs)."""
    return f"127.1.0.{index + 1}"


def node_manifest(name: str, ip: str) -> dict:
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                              "kubernetes.io/arch": "amd64"}},
        "spec": {},
        "status": {"conditions": [ready],
                   "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                   "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def kube_proxy_objects() -> list[dict]:
    labels = {"k8s-app": "kube-proxy"}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
                  "data": {"config.conf": KUBE_PROXY_CONFIG, "kubeconfig.conf": KUBE_PROXY_KUBECONFIG}}
    container = {
        "name": "kube-proxy", "image": KUBE_PROXY_IMAGE,
        "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                    "--hostname-override=$(NODE_NAME)"],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}],
        "securityContext": {"privileged": True},
        "volumeMounts": [{"name": "kube-proxy", "mountPath": "/var/lib/kube-proxy"}],
    }
    daemon_set = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": dict(labels)},
        "spec": {"selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"hostNetwork": True, "serviceAccountName": "kube-proxy",
                                       "priorityClassName": "system-node-critical",
                                       "tolerations": [{"operator": "Exists"}],
                                       "containers": [container],
                                       "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}}]}}},
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "kube-proxy", "namespace": "kube-system"}}
    return [account, config_map, daemon_set]


def operator_objects() -> list[dict]:
    """What the package's own `operator.install: true` creates for the default conf: the five
    CRDs, include/operator, and Secret pgo-backrest-repo-config (EnsurePgoOperator)."""
    import base64

    from antdb_k8s.core.credentials import operator_repo_config
    from antdb_k8s.core.install import install_manifests
    from antdb_k8s.core.spec import parse_spec

    spec = parse_spec({})
    objects = install_manifests(spec)
    data = {k: base64.b64encode(v.encode()).decode() for k, v in operator_repo_config().items()}
    objects.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": data,
                    "metadata": {"name": "pgo-backrest-repo-config", "namespace": spec.operator_namespace,
                                 "labels": {"vendor": "crunchydata"}}})
    namespaces = [d for d in objects if d.get("kind") == "Namespace"]
    return namespaces + [d for d in objects if d.get("kind") != "Namespace"]


def seed_objects(api: Api, nodes: tuple[str, ...], operator_installed: bool) -> None:
    """Create the base objects (existing ones are left alone: seeding twice is harmless)."""
    for namespace in ("kube-system", "kube-public", "kube-node-lease", "default"):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for index, name in enumerate(nodes):
        api.create(node_manifest(name, node_ip(index)))
    for obj in kube_proxy_objects():
        api.create(obj)
    if operator_installed:
        for obj in operator_objects():
            if obj.get("kind") == CRD[1] and obj.get("apiVersion") != CRD[0]:
                raise ValueError(f"CRD {obj['metadata']['name']} is not an {CRD[0]} CRD")
            api.create(obj)
