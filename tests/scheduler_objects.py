"""Node and Pod bodies for the scheduler's tests and benchmark, and bulk creation through the API."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from shim.client import ApiClient, Resource

Obj = dict[str, Any]

_uids = itertools.count()


def node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
) -> Obj:
    """A Ready Node with allocatable resources, as a kubelet would register it."""
    allocatable = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {
            "capacity": allocatable,
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def new_pod(
    name: str,
    cpu: str | None = None,
    memory: str | None = None,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    scheduler_name: str = "default-scheduler",
    **spec: Any,
) -> Obj:
    """A pod as a client creates it: one container requesting `cpu`/`memory`; keyword arguments go to spec."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: Obj = {"name": "app", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [container], "schedulerName": scheduler_name, **spec},
    }


def pod(name: str, cpu: str | None = None, memory: str | None = None, node_name: str = "", **kwargs: Any) -> Obj:
    """A pod as the API returns it (uid, creationTimestamp, status), bound to `node_name` when given."""
    body = new_pod(name, cpu, memory, **kwargs)
    body["metadata"].update(uid=f"uid-{next(_uids)}", creationTimestamp="2024-01-01T00:00:00Z")
    body["status"] = {"phase": "Pending"}
    if node_name:
        body["spec"]["nodeName"] = node_name
    return body


async def create_all(api: ApiClient, resource: Resource, objects: list[Obj], namespace: str | None = None) -> None:
    """Create the objects, 32 requests at a time."""
    limit = asyncio.Semaphore(32)

    async def create(obj: Obj) -> None:
        async with limit:
            await api.create(resource, obj, namespace)

    await asyncio.gather(*(create(o) for o in objects))
