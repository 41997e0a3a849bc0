"""The node's own API objects: registering the Node, keeping its status current, heartbeating its Lease.

As kubelet: the Lease in kube-node-lease is renewed every 10 s (a quarter of its 40 s duration); the Node's
status is recomputed every 10 s and posted when it changed, or at least once per report interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from shim.client import ApiClient, ApiException
from shim.kubelet.config import KubeletOptions
from shim.kubelet.host import EVICTION_MEMORY_AVAILABLE, EVICTION_NODEFS_AVAILABLE, HostFacts, pressure
from shim.machinery.resources import LEASES, NODES
from shim.machinery.timefmt import now_rfc3339, now_rfc3339_micro
from shim.runtime.base import Runtime

Obj = dict[str, Any]

log = logging.getLogger("shim.kubelet.node")

LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.33.1"  # the Kubernetes version this agent behaves as (the API server serves 1.33 too)
RETRY_MIN, RETRY_MAX = 0.2, 7.0  # kubelet's back-off for a failed lease renewal


class NodeReporter:
    """Owns this node's Node and Lease objects."""

    def __init__(
        self,
        client: ApiClient,
        runtime: Runtime,
        node_name: str,
        data_dir: Path,
        facts: HostFacts,
        host_ip: str,
        options: KubeletOptions,
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.node_name = node_name
        self.data_dir = data_dir
        self.facts = facts
        self.host_ip = host_ip
        self.options = options
        self.node_uid = ""
        self.runtime_version = ""
        self.capacity, self.allocatable = self._resources()
        self._reported: Obj | None = None  # the last status posted, without heartbeat times
        self._reported_at = 0.0
        self._conditions: list[Obj] = []
        self._lease: Obj | None = None

    async def register(self) -> None:
        """Create the Node (or take over the existing one: labels, taints and status made ours)."""
        self.runtime_version = await self.runtime.version()
        status = self._status(runtime_ok=True)
        cidrs = await self.runtime.pod_cidrs()
        spec: Obj = {"podCIDR": cidrs[0], "podCIDRs": cidrs} if cidrs else {}
        if self.options.node_taints:
            spec["taints"] = self.options.node_taints
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": self._labels(),
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": spec,
            "status": status,
        }
        try:
            created = await self.client.create(NODES, node)
        except ApiException as exc:
            if exc.status != 409:
                raise
            created = await self.client.patch(NODES, self.node_name, {"metadata": {"labels": self._labels()}})
            if cidrs and (created.get("spec") or {}).get("podCIDRs") != cidrs:
                created = await self._claim_pod_cidrs(cidrs)
            await self._post_status(status)
        else:
            self._remember(status)
        self.node_uid = created["metadata"]["uid"]
        log.info("node %s registered (%s)", self.node_name, self.runtime_version)

    async def _claim_pod_cidrs(self, cidrs: list[str]) -> Obj:
        """Set the existing Node's podCIDRs; kube lets them change only from unset, so a Node that names other
        ranges (its network was recreated with another subnet) keeps them, with a warning."""
        try:
            return await self.client.patch(NODES, self.node_name, {"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}})
        except ApiException as exc:
            if exc.status != 422:
                raise
            log.warning("node %s: pods use %s; the Node keeps its podCIDRs: %s", self.node_name, cidrs, exc)
            return await self.client.get(NODES, self.node_name)

    async def run_lease(self) -> None:
        """Renew the Lease forever; failed renewals are retried with back-off."""
        delay = RETRY_MIN
        while True:
            try:
                await self.renew_lease()
                delay = RETRY_MIN
                await asyncio.sleep(self.options.lease_renew_interval)
            except (ApiException, OSError, TimeoutError) as exc:
                log.warning("node %s: lease renewal failed: %s", self.node_name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def run_status(self) -> None:
        """Recompute the Node's status forever; post it when it changed or the report interval passed."""
        while True:
            await asyncio.sleep(self.options.node_status_check_interval)
            try:
                await self.refresh_status()
            except (ApiException, OSError, TimeoutError) as exc:
                log.warning("node %s: status update failed: %s", self.node_name, exc)

    async def renew_lease(self) -> None:
        lease = self._lease
        if lease is None:
            try:
                lease = await self.client.get(LEASES, self.node_name, LEASE_NAMESPACE)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._lease = await self.client.create(LEASES, self._new_lease(), LEASE_NAMESPACE)
                return
        lease["spec"] = {**(lease.get("spec") or {}), **self._new_lease()["spec"]}
        try:
            self._lease = await self.client.replace(LEASES, lease, LEASE_NAMESPACE)
        except ApiException as exc:
            self._lease = None  # conflict or gone: start from a fresh read next time
            if exc.status not in (404, 409):
                raise

    async def refresh_status(self) -> None:
        try:
            self.runtime_version = await self.runtime.version()
            runtime_ok = True
        except Exception as exc:  # any runtime failure means the node cannot run pods
            log.warning("node %s: runtime is down: %s", self.node_name, exc)
            runtime_ok = False
        status = self._status(runtime_ok)
        due = time.monotonic() - self._reported_at >= self.options.node_status_report_interval
        if due or _without_heartbeats(status) != self._reported:
            try:
                await self._post_status(status)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                await self.register()  # someone deleted our Node: register again, as kubelet does

    # -- building ----------------------------------------------------------------------------------------------

    def _status(self, runtime_ok: bool) -> Obj:
        facts = self.facts
        return {
            "capacity": self.capacity,
            "allocatable": self.allocatable,
            "conditions": self._make_conditions(runtime_ok),
            "addresses": [
                {"type": "InternalIP", "address": self.host_ip},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.options.kubelet_port}},
            "nodeInfo": {
                "machineID": facts.machine_id,
                "systemUUID": facts.system_uuid,
                "bootID": facts.boot_id,
                "kernelVersion": facts.kernel_version,
                "osImage": facts.os_image,
                "containerRuntimeVersion": self.runtime_version,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": facts.architecture,
            },
        }

    def _make_conditions(self, runtime_ok: bool) -> list[Obj]:
        simulated = self.options.capacity is not None  # a simulated node has no pressure of its own
        squeeze = pressure(self.data_dir) if not simulated else None
        memory = bool(squeeze and squeeze.memory)
        disk = bool(squeeze and squeeze.disk)
        wanted = [
            ("MemoryPressure", memory, "KubeletHasInsufficientMemory" if memory else "KubeletHasSufficientMemory",
             f"kubelet has {'insufficient' if memory else 'sufficient'} memory available"),
            ("DiskPressure", disk, "KubeletHasDiskPressure" if disk else "KubeletHasNoDiskPressure",
             "kubelet has disk pressure" if disk else "kubelet has no disk pressure"),
            ("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", runtime_ok, "KubeletReady" if runtime_ok else "KubeletNotReady",
             "kubelet is posting ready status" if runtime_ok else "container runtime is down"),
        ]  # fmt: skip
        now = now_rfc3339()
        previous = {c["type"]: c for c in self._conditions}
        conditions = []
        for kind, value, reason, message in wanted:
            text = "True" if value else "False"
            before = previous.get(kind) or {}
            since = before.get("lastTransitionTime") if before.get("status") == text else now
            conditions.append(
                {
                    "type": kind,
                    "status": text,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": since,
                    "reason": reason,
                    "message": message,
                }
            )
        self._conditions = conditions
        return conditions

    def _resources(self) -> tuple[dict[str, str], dict[str, str]]:
        """Capacity from the host (or the options), and allocatable minus kubelet's eviction reserves."""
        pods = str(self.options.max_pods)
        if self.options.capacity is not None:
            capacity = {"pods": pods, **self.options.capacity}
            return capacity, dict(capacity)
        facts = self.facts
        memory_ki, storage_ki = facts.memory_bytes // 1024, facts.storage_bytes // 1024
        hugepages = {"hugepages-1Gi": "0", "hugepages-2Mi": "0"}
        capacity = {
            "cpu": str(facts.cpus),
            "ephemeral-storage": f"{storage_ki}Ki",
            **hugepages,
            "memory": f"{memory_ki}Ki",
            "pods": pods,
        }
        allocatable = {
            "cpu": str(facts.cpus),
            "ephemeral-storage": str(int(facts.storage_bytes * (1 - EVICTION_NODEFS_AVAILABLE))),
            **hugepages,
            "memory": f"{max(memory_ki - EVICTION_MEMORY_AVAILABLE // 1024, 0)}Ki",
            "pods": pods,
        }
        return capacity, allocatable

    def _labels(self) -> dict[str, str]:
        arch = self.facts.architecture
        return {
            "beta.kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            **self.options.node_labels,
        }

    def _new_lease(self) -> Obj:
        owner = {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self.node_uid}
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node_name,
                "namespace": LEASE_NAMESPACE,
                **({"ownerReferences": [owner]} if self.node_uid else {}),
            },
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": self.options.lease_duration_seconds,
                "renewTime": now_rfc3339_micro(),
            },
        }

    async def _post_status(self, status: Obj) -> None:
        await self.client.patch(NODES, self.node_name, {"status": status}, subresource="status")
        self._remember(status)

    def _remember(self, status: Obj) -> None:
        self._reported = _without_heartbeats(status)
        self._reported_at = time.monotonic()


def _without_heartbeats(status: Obj) -> Obj:
    return {
        **status,
        "conditions": [{k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status["conditions"]],
    }
