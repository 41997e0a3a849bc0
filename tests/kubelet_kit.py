"""The node agent run inside the test process against the real `kube-shim up`: starting one, pod and container
manifests for it, reading pod status, and following an object's watch until a condition holds (with a deadline).

`api` is a fixture: a module that uses it imports it by name (pytest finds fixtures in the module's namespace).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from shim.client import ApiClient, ApiException, Resource, load_kubeconfig
from shim.kubelet import Kubelet, KubeletOptions
from shim.machinery.resources import EVENTS, LEASES, NODES, PODS
from shim.runtime.base import Runtime
from shim.runtime.fake import FakeRuntime
from tests.cluster import Cluster

Obj = dict[str, Any]

DEADLINE = 30.0
FAST = KubeletOptions(
    lease_renew_interval=0.3,
    node_status_check_interval=0.5,
    restart_backoff_initial=0.5,
    restart_backoff_max=2.0,
    capacity={"cpu": "8", "memory": "16Gi", "ephemeral-storage": "100Gi"},
)


# -- the agent and the API -----------------------------------------------------------------------------------


@asynccontextmanager
async def api_client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    """A client of the cluster, as the agent's own would be."""
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    """A client of the module's `cluster` (the session's unless the module replaces it)."""
    async with api_client(cluster) as client:
        yield client


@asynccontextmanager
async def running_node(
    api: ApiClient, data_dir: Path, runtime: Runtime | None = None, name: str | None = None, **options: Any
) -> AsyncIterator[Kubelet]:
    """A started node agent; on exit it stops and its Node and Lease are deleted."""
    name = name or "kt-" + uuid.uuid4().hex[:8]
    settings = dataclasses.replace(FAST, **options)
    kubelet = Kubelet(api, runtime or FakeRuntime(), name, data_dir / name, settings)
    await kubelet.start()
    try:
        yield kubelet
    finally:
        await kubelet.stop()
        for resource, namespace in ((NODES, None), (LEASES, "kube-node-lease")):
            with suppress(ApiException):
                await api.delete(resource, name, namespace)


async def wait_for(
    api: ApiClient, resource: Resource, namespace: str | None, name: str, check: Callable[[Obj], Any]
) -> Obj:
    """The object once `check(obj)` holds: read, then follow its watch until then (or fail at DEADLINE)."""
    seen: list[Obj] = []

    async def follow() -> Obj:
        while True:
            listed = await api.list(resource, namespace, fieldSelector=f"metadata.name={name}")
            for obj in listed["items"]:
                seen.append(obj)
                if check(obj):
                    return obj
            rv = listed["metadata"]["resourceVersion"]
            async for event in api.watch(resource, namespace, rv, fieldSelector=f"metadata.name={name}"):
                if event["type"] in ("ADDED", "MODIFIED"):
                    seen.append(event["object"])
                    if check(event["object"]):
                        return event["object"]

    try:
        return await asyncio.wait_for(follow(), DEADLINE)
    except TimeoutError:
        last = seen[-1].get("status") if seen else None
        raise AssertionError(f"{resource.plural}/{name} never matched; last status: {last}") from None


async def wait_gone(api: ApiClient, namespace: str, name: str) -> list[Obj]:
    """Follow the pod until it is deleted; every version seen on the way."""
    seen: list[Obj] = []

    async def follow() -> None:
        listed = await api.list(PODS, namespace, fieldSelector=f"metadata.name={name}")
        if not listed["items"]:
            return
        seen.extend(listed["items"])
        rv = listed["metadata"]["resourceVersion"]
        async for event in api.watch(PODS, namespace, rv, fieldSelector=f"metadata.name={name}"):
            seen.append(event["object"])
            if event["type"] == "DELETED":
                return

    await asyncio.wait_for(follow(), DEADLINE)
    return seen


async def wait_event(api: ApiClient, namespace: str, reason: str, contains: str = "") -> Obj:
    """The first event with this reason (and message fragment) in the namespace."""

    async def follow() -> Obj:
        listed = await api.list(EVENTS, namespace)
        for event in listed["items"]:
            if event["reason"] == reason and contains in event["message"]:
                return event
        async for change in api.watch(EVENTS, namespace, listed["metadata"]["resourceVersion"]):
            event = change["object"]
            if change["type"] != "DELETED" and event["reason"] == reason and contains in event["message"]:
                return event

    try:
        return await asyncio.wait_for(follow(), DEADLINE)
    except TimeoutError:
        listed = await api.list(EVENTS, namespace)
        seen = [(e["reason"], e["message"]) for e in listed["items"]]
        raise AssertionError(f"no {reason} event containing {contains!r}; events: {seen}") from None


def pod_manifest(name: str, node: str, containers: list[Obj], **spec: Any) -> Obj:
    """A pod already bound to `node` (no scheduler involved)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": containers, **spec},
    }


def box(name: str, *script: str, **fields: Any) -> Obj:
    """A container running `sh -c SCRIPT` (the fake runtime's little language) or, without a script, forever."""
    command = {"command": ["sh", "-c", "; ".join(script)]} if script else {}
    return {"name": name, "image": "busybox:1.36", **command, **fields}


def container_status(pod: Obj, name: str, init: bool = False) -> Obj:
    """The status of the named (init) container; {} while there is none."""
    key = "initContainerStatuses" if init else "containerStatuses"
    return next((s for s in (pod.get("status") or {}).get(key) or () if s["name"] == name), {})


def condition(pod: Obj, kind: str) -> Obj:
    """The object's condition of type `kind`; {} while there is none."""
    return next((c for c in (pod.get("status") or {}).get("conditions") or () if c["type"] == kind), {})


def is_running_and_ready(pod: Obj) -> bool:
    """Phase Running and condition Ready True."""
    return pod.get("status", {}).get("phase") == "Running" and condition(pod, "Ready").get("status") == "True"


def runtime_id(container_id: str) -> str:
    """The runtime's own id in a `runtime://id` containerID."""
    return container_id.split("://", 1)[1]
