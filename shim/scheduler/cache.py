"""The scheduler's cache: every node with the pods bound to it, plus the pods it has *assumed* onto a node
and is still binding. Counting assumed pods is what keeps a burst from overbooking a node before the
bindings come back through the watch (kube's internal/cache).

An assumption ends when the watch confirms the binding, or when the binding fails (`forget`). Should
neither happen, it expires `assumed_ttl` seconds after its binding finished, so that a lost confirmation
never holds a node's capacity forever (kube's durationToExpireAssumedPod).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shim.scheduler.info import NodeInfo, PodInfo

Obj = dict[str, Any]

ASSUMED_POD_TTL = 15 * 60.0  # kube-scheduler's durationToExpireAssumedPod


class Cache:
    """Nodes by name, pods by key; a pod is on at most one node."""

    def __init__(self, assumed_ttl: float = ASSUMED_POD_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.assumed_ttl = assumed_ttl
        self._clock = clock
        self.nodes: dict[str, NodeInfo] = {}
        self.pods_with_affinity: dict[str, PodInfo] = {}  # cluster-wide, for InterPodAffinity's shortcuts
        self.pods_with_required_anti_affinity: dict[str, PodInfo] = {}
        self._pods: dict[str, tuple[PodInfo, str]] = {}  # key -> (pod, node name)
        self.claim_users: dict[str, int] = {}  # `namespace/claim` -> how many placed pods name it
        self._assumed: dict[str, float | None] = {}  # key -> when it expires (None: binding under way)
        self._node_list: list[NodeInfo] | None = None

    # -- nodes ----------------------------------------------------------------------------------------------

    def node_list(self) -> list[NodeInfo]:
        """The nodes that exist (a node deleted while pods are still on it is kept, but not offered)."""
        if self._node_list is None:
            self._node_list = [n for n in self.nodes.values() if n.node is not None]
        return self._node_list

    def set_node(self, node: Obj) -> bool:
        """Add or update a Node; True when it is new or something scheduling looks at changed."""
        name = node["metadata"]["name"]
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
        if info.node is None:
            self._node_list = None
        return info.set_node(node)

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.node = None  # its pods' deletions are still to come
        else:
            del self.nodes[name]
        self._node_list = None

    # -- pods -----------------------------------------------------------------------------------------------

    def assume(self, pod: PodInfo, node_name: str) -> None:
        """Count the pod on the node now, before the binding is written and observed."""
        self._remove(pod.key)
        self._place(pod, node_name)
        self._assumed[pod.key] = None

    def finish_binding(self, key: str) -> None:
        """The binding was written: the watch should confirm it within `assumed_ttl`, or it expires."""
        if key in self._assumed:
            self._assumed[key] = self._clock() + self.assumed_ttl

    def forget(self, key: str) -> None:
        """Undo an assumption (the binding failed)."""
        if key in self._assumed:
            del self._assumed[key]
            self._remove(key)

    def expire_assumed(self) -> list[PodInfo]:
        """Forget the assumptions whose binding finished more than `assumed_ttl` ago unconfirmed; the pods."""
        now = self._clock()
        expired = [key for key, deadline in self._assumed.items() if deadline is not None and deadline <= now]
        pods = []
        for key in expired:
            del self._assumed[key]
            if (pod := self._remove(key)) is not None:
                pods.append(pod)
        return pods

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def set_pod(self, pod: PodInfo) -> None:
        """A bound pod as the API reports it (confirms an assumption, or adds or updates a pod)."""
        self._assumed.pop(pod.key, None)
        self._remove(pod.key)
        self._place(pod, pod.node_name)

    def remove_pod(self, key: str) -> PodInfo | None:
        self._assumed.pop(key, None)
        return self._remove(key)

    def pod(self, key: str) -> PodInfo | None:
        entry = self._pods.get(key)
        return entry[0] if entry else None

    def _place(self, pod: PodInfo, node_name: str) -> None:
        info = self.nodes.get(node_name)
        if info is None:  # bound to a node we have not seen (yet)
            info = self.nodes[node_name] = NodeInfo(node_name)
        info.add_pod(pod)
        self._pods[pod.key] = (pod, node_name)
        for claim in pod.claim_keys:
            self.claim_users[claim] = self.claim_users.get(claim, 0) + 1
        if pod.has_pod_affinity:
            self.pods_with_affinity[pod.key] = pod
        if pod.required_anti_affinity:
            self.pods_with_required_anti_affinity[pod.key] = pod

    def _remove(self, key: str) -> PodInfo | None:
        entry = self._pods.pop(key, None)
        if entry is None:
            return None
        pod, node_name = entry
        for claim in pod.claim_keys:
            left = self.claim_users.get(claim, 0) - 1
            if left > 0:
                self.claim_users[claim] = left
            else:
                self.claim_users.pop(claim, None)  # bounded by the pods placed
        self.pods_with_affinity.pop(key, None)
        self.pods_with_required_anti_affinity.pop(key, None)
        info = self.nodes.get(node_name)
        if info is not None:
            info.remove_pod(key)
            if info.node is None and not info.pods:
                del self.nodes[node_name]
        return pod
