"""A stand-in scheduler and kubelet for controller tests: pods become Running and Ready without containers.

`PodSimulator` watches the pods of one namespace and, like a scheduler plus a kubelet with an instant
runtime, binds every unscheduled pod to its own fake node (`POST pods/{name}/binding`), reports the pods on
that node Running and Ready (`PATCH pods/{name}/status`), and finishes their graceful deletion (a bound pod
stays Terminating until its node confirms the stop). It registers the node (tainted NoSchedule, so a real
scheduler leaves it alone) and renews its Lease, so the node looks alive to the rest of the control plane.
Pods labelled `NEVER_READY` start but never turn Ready.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from shim.client import ApiClient, ApiException, Informer, Resource
from shim.client.workqueue import WorkQueue

Obj = dict[str, Any]

PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
NEVER_READY = "podsim.kube-shim.io/never-ready"
SIMULATED_TAINT = "podsim.kube-shim.io/simulated"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_RENEW_SECONDS = 10.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodSimulator:
    """`async with PodSimulator(client, namespace):` pods in `namespace` run on the fake node `node`."""

    def __init__(self, client: ApiClient, namespace: str, node: str | None = None, workers: int = 16) -> None:
        self.client = client
        self.namespace = namespace
        self.node = node or f"sim-{namespace}"
        self.workers = workers
        self.informer = Informer(client, PODS, self._on_pod, namespace=namespace)
        self.queue = WorkQueue()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> PodSimulator:
        await self._register_node()
        self.informer.start()
        self._tasks = [
            asyncio.create_task(self.queue.run(self._reconcile, self.workers)),
            asyncio.create_task(self._renew_lease()),
        ]
        await self.informer.synced.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.informer.stop()
        with contextlib.suppress(ApiException):
            await self.client.delete(LEASES, self.node, LEASE_NAMESPACE)
        with contextlib.suppress(ApiException):
            await self.client.delete(NODES, self.node)

    async def _on_pod(self, event: str, pod: Obj) -> None:
        if event != "DELETED":
            self.queue.add(pod["metadata"]["name"])

    async def _reconcile(self, name: str) -> None:
        pod = self.informer.cache.get(f"{self.namespace}/{name}")
        if pod is None:
            return
        node = pod.get("spec", {}).get("nodeName")
        try:
            if not node:
                await self._bind(name)
            elif node != self.node:
                return
            elif pod["metadata"].get("deletionTimestamp"):
                await self.client.delete(PODS, name, self.namespace, gracePeriodSeconds=0)
            elif not _started(pod):
                await self._report_running(pod)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or already changed: the next event brings the news
                raise

    async def _bind(self, name: str) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": self.namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        await self.client.request("POST", PODS.path(self.namespace, name, "binding"), binding)

    async def _report_running(self, pod: Obj) -> None:
        now = _now()
        ready = "False" if (pod["metadata"].get("labels") or {}).get(NEVER_READY) else "True"
        conditions = [
            {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
            for kind, status in (
                ("PodReadyToStartContainers", "True"),
                ("Initialized", "True"),
                ("Ready", ready),
                ("ContainersReady", ready),
                ("PodScheduled", "True"),
            )
        ]
        containers = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "containerID": f"sim://{pod['metadata']['uid']}/{c['name']}",
                "ready": ready == "True",
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in pod.get("spec", {}).get("containers") or ()
        ]
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": conditions,
            "containerStatuses": containers,
        }
        await self.client.patch(PODS, pod["metadata"]["name"], {"status": status}, self.namespace, subresource="status")

    async def _register_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node, "type": "podsim"}},
            # a real scheduler must not place other pods on a node where nothing runs
            "spec": {"taints": [{"key": SIMULATED_TAINT, "effect": "NoSchedule"}]},
        }
        with contextlib.suppress(ApiException):  # already registered by an earlier simulator
            await self.client.create(NODES, node)
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "10000"}
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "podsim is posting ready status",
                    "lastHeartbeatTime": _now(),
                    "lastTransitionTime": _now(),
                }
            ],
        }
        await self.client.patch(NODES, self.node, {"status": status}, subresource="status")

    async def _renew_lease(self) -> None:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": _microtime()},
        }
        with contextlib.suppress(ApiException):
            await self.client.create(LEASES, lease, LEASE_NAMESPACE)
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            with contextlib.suppress(ApiException):
                await self.client.patch(LEASES, self.node, {"spec": {"renewTime": _microtime()}}, LEASE_NAMESPACE)


def _started(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _microtime() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
