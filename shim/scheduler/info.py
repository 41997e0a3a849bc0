"""PodInfo and NodeInfo: a pod parsed once for scheduling, and a node with the running totals of its pods.

Everything a filter or score needs per node is an attribute lookup here, so that checking hundreds of nodes
per pod stays cheap (kube's framework.PodInfo / framework.NodeInfo).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from shim.client.indexer import object_key
from shim.machinery.storage import claim_names
from shim.scheduler import terms
from shim.scheduler.resources import Resources, node_allocatable, pod_non_zero_requests, pod_requests

Obj = dict[str, Any]
HostPort = tuple[str, str, int]  # (hostIP, protocol, hostPort)

ANY_IP = "0.0.0.0"
HARD_EFFECTS = frozenset(("NoSchedule", "NoExecute"))


class PodInfo:
    """A pod with its requests, ports, tolerations and affinity terms parsed."""

    __slots__ = (
        "claim_keys",
        "host_ports",
        "key",
        "labels",
        "name",
        "namespace",
        "node_matcher",
        "node_name",
        "nominated_node",
        "non_zero_cpu",
        "non_zero_memory",
        "pod",
        "preemption_policy",
        "preferred_affinity",
        "preferred_anti_affinity",
        "preferred_node_terms",
        "priority",
        "requests",
        "required_affinity",
        "required_anti_affinity",
        "scheduler_name",
        "scheduling_gated",
        "spread_constraints",
        "start_time",
        "terminating",
        "tolerations",
        "uid",
    )

    def __init__(self, pod: Obj) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        self.pod = pod
        self.key = object_key(pod)
        self.uid: str = meta.get("uid", "")
        self.namespace: str = meta.get("namespace", "")
        self.name: str = meta["name"]
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.priority: int = spec.get("priority") or 0
        self.preemption_policy: str = spec.get("preemptionPolicy") or "PreemptLowerPriority"
        self.node_name: str = spec.get("nodeName") or ""
        self.nominated_node: str = status.get("nominatedNodeName") or ""
        self.scheduler_name: str = spec.get("schedulerName") or "default-scheduler"
        self.scheduling_gated = bool(spec.get("schedulingGates"))
        self.start_time: str = status.get("startTime") or meta.get("creationTimestamp") or ""
        self.requests = pod_requests(spec)
        self.non_zero_cpu, self.non_zero_memory = pod_non_zero_requests(spec)
        self.host_ports = _host_ports(spec)
        self.tolerations: tuple[Obj, ...] = tuple(spec.get("tolerations") or ())
        self.node_matcher = terms.required_node_matcher(spec)
        affinity = spec.get("affinity") or {}
        node_affinity = affinity.get("nodeAffinity") or {}
        self.preferred_node_terms = tuple(
            (int(p.get("weight", 0)), terms.node_selector_term(p.get("preference") or {}))
            for p in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
            if p.get("weight") and p.get("preference")
        )
        pod_affinity = affinity.get("podAffinity") or {}
        anti_affinity = affinity.get("podAntiAffinity") or {}
        required = "requiredDuringSchedulingIgnoredDuringExecution"
        preferred = "preferredDuringSchedulingIgnoredDuringExecution"
        own = self.namespace, self.labels
        self.required_affinity = terms.affinity_terms(pod_affinity.get(required), *own)
        self.required_anti_affinity = terms.affinity_terms(anti_affinity.get(required), *own)
        self.preferred_affinity = terms.affinity_terms(pod_affinity.get(preferred), *own, weighted=True)
        self.preferred_anti_affinity = terms.affinity_terms(anti_affinity.get(preferred), *own, weighted=True)
        self.spread_constraints: tuple[Obj, ...] = tuple(spec.get("topologySpreadConstraints") or ())
        self.claim_keys = tuple(f"{self.namespace}/{claim}" for claim in claim_names(pod))  # `namespace/claim`

    @property
    def has_pod_affinity(self) -> bool:
        """Any pod affinity or anti-affinity term (kube's podWithAffinity)."""
        return bool(
            self.required_affinity
            or self.required_anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
        )

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


class NodeInfo:
    """A node and the aggregate of the pods on it (bound or assumed)."""

    __slots__ = (
        "allocatable",
        "allowed_pods",
        "generation",
        "hard_taints",
        "labels",
        "name",
        "node",
        "non_zero_cpu",
        "non_zero_memory",
        "pods",
        "pods_with_affinity",
        "pods_with_required_anti_affinity",
        "prefer_taints",
        "requested",
        "taints",
        "unschedulable",
        "used_ports",
    )

    def __init__(self, name: str, node: Obj | None = None) -> None:
        self.name = name
        self.node: Obj | None = None
        self.labels: dict[str, str] = {}
        self.taints: tuple[Obj, ...] = ()
        self.hard_taints: tuple[Obj, ...] = ()
        self.prefer_taints: tuple[Obj, ...] = ()
        self.unschedulable = False
        self.allocatable = Resources()
        self.allowed_pods = 0
        self.requested = Resources()
        self.non_zero_cpu = 0
        self.non_zero_memory = 0
        self.pods: dict[str, PodInfo] = {}
        self.pods_with_affinity: dict[str, PodInfo] = {}
        self.pods_with_required_anti_affinity: dict[str, PodInfo] = {}
        self.used_ports: dict[tuple[str, int], Counter[str]] = {}
        self.generation = 0
        if node is not None:
            self.set_node(node)

    def set_node(self, node: Obj) -> bool:
        """Take a new version of the Node; True when something scheduling looks at changed."""
        spec = node.get("spec") or {}
        labels = node["metadata"].get("labels") or {}
        taints = tuple(spec.get("taints") or ())
        allocatable, allowed_pods = node_allocatable(node)
        unschedulable = bool(spec.get("unschedulable"))
        changed = (
            self.node is None
            or labels != self.labels
            or taints != self.taints
            or unschedulable != self.unschedulable
            or allocatable != self.allocatable
            or allowed_pods != self.allowed_pods
        )
        self.node = node
        self.labels = labels
        self.taints = taints
        self.hard_taints = tuple(t for t in taints if t.get("effect") in HARD_EFFECTS)
        self.prefer_taints = tuple(t for t in taints if t.get("effect") == "PreferNoSchedule")
        self.unschedulable = unschedulable
        self.allocatable = allocatable
        self.allowed_pods = allowed_pods
        self.generation += 1
        return changed

    def add_pod(self, pod: PodInfo) -> None:
        self.pods[pod.key] = pod
        if pod.has_pod_affinity:
            self.pods_with_affinity[pod.key] = pod
        if pod.required_anti_affinity:
            self.pods_with_required_anti_affinity[pod.key] = pod
        self._account(pod, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is not None:
            self.pods_with_affinity.pop(key, None)
            self.pods_with_required_anti_affinity.pop(key, None)
            self._account(pod, -1)
        return pod

    def ports_conflict(self, wanted: tuple[HostPort, ...]) -> bool:
        """HostPortInfo.CheckConflict: the same protocol/port on the same IP, where 0.0.0.0 is every IP."""
        for ip, protocol, port in wanted:
            used = self.used_ports.get((protocol, port))
            if used and (ip == ANY_IP or ip in used or ANY_IP in used):
                return True
        return False

    def clone(self) -> NodeInfo:
        """A copy whose pods and totals can change without touching this one (preemption's what-if)."""
        other = NodeInfo(self.name)
        other.node = self.node
        other.labels = self.labels
        other.taints = self.taints
        other.hard_taints = self.hard_taints
        other.prefer_taints = self.prefer_taints
        other.unschedulable = self.unschedulable
        other.allocatable = self.allocatable
        other.allowed_pods = self.allowed_pods
        other.requested = self.requested.copy()
        other.non_zero_cpu = self.non_zero_cpu
        other.non_zero_memory = self.non_zero_memory
        other.pods = dict(self.pods)
        other.pods_with_affinity = dict(self.pods_with_affinity)
        other.pods_with_required_anti_affinity = dict(self.pods_with_required_anti_affinity)
        other.used_ports = {k: Counter(v) for k, v in self.used_ports.items()}
        other.generation = self.generation
        return other

    def _account(self, pod: PodInfo, sign: int) -> None:
        self.requested.add(pod.requests, sign)
        self.non_zero_cpu += sign * pod.non_zero_cpu
        self.non_zero_memory += sign * pod.non_zero_memory
        for ip, protocol, port in pod.host_ports:
            used = self.used_ports.setdefault((protocol, port), Counter())
            used[ip] += sign
            if used[ip] <= 0:
                del used[ip]
                if not used:
                    del self.used_ports[(protocol, port)]
        self.generation += 1

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"


def _host_ports(spec: Obj) -> tuple[HostPort, ...]:
    ports = []
    for container in spec.get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("hostPort"):
                ports.append((port.get("hostIP") or ANY_IP, port.get("protocol") or "TCP", int(port["hostPort"])))
    return tuple(ports)
