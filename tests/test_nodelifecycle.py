"""Node lifecycle in a real `kube-shim up`: silent nodes go Unknown and tainted, their pods are evicted.

The test plays the kubelet (it creates the Node, renews its Lease, posts its status) and runs the controller
in the test process with a 2 s grace period instead of 40 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shim.client import ApiClient, ApiException, load_kubeconfig
from shim.controllers.nodelifecycle import NodeLifecycleController
from shim.machinery.resources import EVENTS, LEASES, NODES, PODS
from tests.cluster import Cluster
from tests.controllerkit import running
from tests.workloads import watch_until

Obj = dict[str, Any]
GRACE = 2.0
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        controller = NodeLifecycleController(
            client, grace_period=GRACE, startup_grace_period=GRACE, monitor_period=0.1, pod_gc_quarantine=0.2
        )
        async with running(controller):
            yield client


@pytest.fixture
async def node(api: ApiClient) -> AsyncIterator[str]:
    """A Ready node with a fresh lease (deleted afterwards)."""
    name = "node-" + uuid.uuid4().hex[:8]
    await api.create(NODES, {"metadata": {"name": name}, "status": {"conditions": [ready_condition("True")]}})
    await renew_lease(api, name)
    yield name
    with contextlib.suppress(Exception):
        await api.delete(NODES, name)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_condition(status: str) -> Obj:
    return {"type": "Ready", "status": status, "reason": "KubeletReady", "lastHeartbeatTime": stamp()}


async def renew_lease(api: ApiClient, name: str) -> None:
    """What a kubelet's heartbeat does: create or renew the node's Lease in kube-node-lease."""
    renew_time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew_time}
    try:
        await api.patch(LEASES, name, {"spec": spec}, "kube-node-lease")
    except ApiException as exc:
        if exc.status != 404:
            raise
        await api.create(LEASES, {"metadata": {"name": name}, "spec": spec}, "kube-node-lease")


async def bound_pod(api: ApiClient, namespace: str, name: str, node: str, tolerations: list[Obj] | None = None) -> Obj:
    body = {
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}], "tolerations": tolerations or []},
    }
    await api.create(PODS, body, namespace)
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return await api.patch(PODS, name, {"status": status}, namespace, "status")


async def node_where(api: ApiClient, name: str, predicate: Any, what: str) -> Obj:
    return await watch_until(
        api,
        NODES,
        "",
        lambda nodes: next((n for n in nodes if n["metadata"]["name"] == name and predicate(n)), None),
        what=what,
    )


def condition(node: Obj, type_: str) -> Obj:
    return next(c for c in node["status"]["conditions"] if c["type"] == type_)


def taints(node: Obj) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or ()}


def evicted(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


async def test_a_node_whose_lease_stops_goes_unknown_while_a_renewing_one_stays_ready(api: ApiClient, node: str):
    alive = "node-" + uuid.uuid4().hex[:8]
    await api.create(NODES, {"metadata": {"name": alive}, "status": {"conditions": [ready_condition("True")]}})

    async def heartbeat() -> None:
        while True:
            await renew_lease(api, alive)
            await asyncio.sleep(GRACE / 10)  # a kubelet's renew interval, scaled down

    beating = asyncio.create_task(heartbeat())
    try:
        silent = await node_where(api, node, lambda n: condition(n, "Ready")["status"] == "Unknown", "Ready=Unknown")
        still = await api.get(NODES, alive)
    finally:
        beating.cancel()
        await api.delete(NODES, alive)
    assert condition(still, "Ready")["status"] == "True"
    ready = condition(silent, "Ready")
    assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
    for type_ in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        never = condition(silent, type_)
        assert (never["status"], never["reason"]) == ("Unknown", "NodeStatusNeverUpdated")
    tainted = await node_where(api, node, lambda n: (UNREACHABLE, "NoExecute") in taints(n), "the unreachable taint")
    assert taints(tainted) == {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
    assert all(t.get("timeAdded") for t in tainted["spec"]["taints"])


async def test_pods_on_an_unreachable_node_go_unready_and_are_evicted_after_their_toleration(
    api: ApiClient, node: str, namespace: str
):
    quick = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]
    forever = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    await bound_pod(api, namespace, "quick", node, quick)
    await bound_pod(api, namespace, "forever", node, forever)
    await bound_pod(api, namespace, "default", node)  # the API server adds the 300 s default tolerations

    pods = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: {p["metadata"]["name"]: p for p in pods} if any(map(evicted, pods)) else None,
        what="an eviction",
    )
    assert [name for name, pod in pods.items() if evicted(pod)] == ["quick"]
    for pod in pods.values():
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False", "a pod on an unreachable node is not ready"
    target = next(c for c in pods["quick"]["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert (target["reason"], target["message"]) == (
        "DeletionByTaintManager",
        "Taint manager: deleting due to NoExecute taint",
    )
    events = await watch_until(
        api,
        EVENTS,
        namespace,
        lambda evs: {e["reason"] for e in evs} >= {"TaintManagerEviction", "NodeNotReady"} and evs,
        what="the eviction events",
    )
    assert any(e["message"] == f"Marking for deletion Pod {namespace}/quick" for e in events)


async def test_a_pod_not_tolerating_a_no_execute_taint_is_evicted_at_once(api: ApiClient, node: str, namespace: str):
    await bound_pod(api, namespace, "tolerant", node, [{"key": "example.com/drain", "operator": "Exists"}])
    await bound_pod(api, namespace, "intolerant", node)
    drain = {"key": "example.com/drain", "value": "now", "effect": "NoExecute"}
    await api.patch(NODES, node, {"spec": {"taints": [drain]}})
    pods = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: {p["metadata"]["name"]: p for p in pods} if any(map(evicted, pods)) else None,
        what="an eviction",
    )
    assert [name for name, pod in pods.items() if evicted(pod)] == ["intolerant"]


async def test_a_returning_kubelet_clears_the_taints(api: ApiClient, node: str):
    await node_where(api, node, lambda n: (UNREACHABLE, "NoExecute") in taints(n), "the unreachable taint")
    await renew_lease(api, node)
    await api.patch(NODES, node, {"status": {"conditions": [ready_condition("True")]}}, subresource="status")
    await node_where(api, node, lambda n: not taints(n), "no taints")


async def test_kubelet_reported_conditions_become_taints(api: ApiClient, node: str):
    await renew_lease(api, node)
    conditions = [ready_condition("False"), {"type": "MemoryPressure", "status": "True"}]
    await api.patch(NODES, node, {"status": {"conditions": conditions}}, subresource="status")
    await api.patch(NODES, node, {"spec": {"unschedulable": True}})
    expected = {
        (NOT_READY, "NoSchedule"),
        (NOT_READY, "NoExecute"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    }
    await node_where(api, node, lambda n: taints(n) == expected, f"taints {expected}")


async def test_a_node_that_never_reports_gets_unknown_conditions(api: ApiClient):
    name = "node-" + uuid.uuid4().hex[:8]
    await api.create(NODES, {"metadata": {"name": name}})
    try:
        marked = await node_where(api, name, lambda n: (n.get("status") or {}).get("conditions"), "conditions")
    finally:
        await api.delete(NODES, name)
    ready = condition(marked, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown",
        "NodeStatusNeverUpdated",
        "Kubelet never posted node status.",
    )


async def test_pods_of_a_deleted_node_are_removed(api: ApiClient, node: str, namespace: str):
    other = "other-" + node
    await api.create(NODES, {"metadata": {"name": other}})
    try:
        await bound_pod(api, namespace, "stranded", node)
        await bound_pod(api, namespace, "elsewhere", other)
        await api.delete(NODES, node)
        await watch_until(
            api,
            PODS,
            namespace,
            lambda pods: [p["metadata"]["name"] for p in pods] == ["elsewhere"],
            what="only the pod of the remaining node",
        )
    finally:
        await api.delete(NODES, other)
