"""The scheduler against a real `kube-shim up`: simulated node agents (the burst) or Node objects created
through the API (the scheduler only reads them), pods bound through pods/binding, conditions and events as
kubectl shows them.

The scheduler runs in the test's event loop under its own scheduler name, so it never competes with a
default-scheduler that `kube-shim up` may run itself.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shim.client import ApiClient, load_kubeconfig
from shim.kubelet.config import KubeletOptions
from shim.kubelet.kubelet import Kubelet
from shim.machinery.quantity import parse_quantity
from shim.machinery.resources import EVENTS, NODES, PODS, PRIORITY_CLASSES
from shim.runtime.fake import FakeRuntime, node_pod_cidr
from shim.scheduler import Scheduler
from tests.cluster import Cluster
from tests.scheduler_objects import create_all, new_pod, node
from tests.workloads import watch_until

SCHEDULER = "test-scheduler"
CONTROL_PLANE = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
DEADLINE = 120.0

Obj = dict[str, Any]


@pytest.fixture
async def api(fresh_cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(fresh_cluster.kubeconfig)) as client:
        yield client


@pytest.fixture
async def scheduler(fresh_cluster: Cluster) -> AsyncIterator[Scheduler]:
    running = Scheduler(ApiClient(load_kubeconfig(fresh_cluster.kubeconfig), user_agent=SCHEDULER), SCHEDULER)
    running.start()
    await running.synced()
    yield running
    await running.stop()


def our_pod(name: str, cpu: str | None = None, memory: str | None = None, **spec: Any) -> Obj:
    """A pod for the test's scheduler."""
    return new_pod(name, cpu, memory, scheduler_name=SCHEDULER, **spec)


def named(objects: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects}


def all_bound(count: int) -> Callable[[list[Obj]], dict[str, Obj] | None]:
    """A watch_until predicate: the pods by name once `count` of them exist and all have a node."""
    return lambda ps: named(ps) if len(ps) == count and all(p["spec"].get("nodeName") for p in ps) else None


def placed(pod_name: str, node_name: str) -> Callable[[list[Obj]], dict[str, Obj] | None]:
    """A watch_until predicate: the pods by name once `pod_name` is bound to `node_name`."""

    def check(pods: list[Obj]) -> dict[str, Obj] | None:
        by_name = named(pods)
        return by_name if by_name.get(pod_name, {}).get("spec", {}).get("nodeName") == node_name else None

    return check


def events_with(reason: str, count: int) -> Callable[[list[Obj]], list[Obj] | None]:
    return lambda es: found if len(found := [e for e in es if e["reason"] == reason]) == count else None


def event_for(pod_name: str, reason: str) -> Callable[[list[Obj]], Obj | None]:
    return lambda es: next(
        (e for e in es if e["involvedObject"].get("name") == pod_name and e["reason"] == reason), None
    )


def priority_class(name: str, value: int) -> Obj:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value}


def condition(p: Obj, kind: str = "PodScheduled") -> Obj | None:
    return next((c for c in (p.get("status") or {}).get("conditions") or () if c["type"] == kind), None)


def requests_of(p: Obj) -> tuple[int, int]:
    """(milli-cpu, bytes) of a pod with plain containers, computed independently of the scheduler."""
    cpu = memory = 0
    for c in p["spec"]["containers"]:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += int(parse_quantity(req.get("cpu", "0")).value * 1000)
        memory += int(parse_quantity(req.get("memory", "0")).value)
    return cpu, memory


@pytest.fixture
async def simulated_nodes(fresh_cluster: Cluster, tmp_path: Path) -> AsyncIterator[list[Kubelet]]:
    """100 node agents on the simulated runtime, in this process: mixed sizes, zones, disks and taints."""
    client = ApiClient(load_kubeconfig(fresh_cluster.kubeconfig), user_agent="kubelet", max_connections=300)
    kubelets = []
    for i in range(100):
        sizes = [("4", "8Gi"), ("6", "12Gi"), ("8", "16Gi")][i % 3]
        options = KubeletOptions(
            node_ip="127.0.0.1",
            capacity={"cpu": sizes[0], "memory": sizes[1], "pods": "110", "ephemeral-storage": "100Gi"},
            node_labels={"topology.kubernetes.io/zone": "abc"[i % 3], "disk": "ssd" if i % 3 == 0 else "hdd"},
            node_taints=[GPU_TAINT] if i % 10 == 5 else [],
            record_events=False,
        )
        runtime = FakeRuntime(pod_cidr=node_pod_cidr(i))
        kubelets.append(Kubelet(client, runtime, f"node-{i:03}", tmp_path / f"node-{i:03}", options))
    await asyncio.gather(*(k.start() for k in kubelets))
    yield kubelets
    await asyncio.gather(*(k.stop() for k in kubelets), return_exceptions=True)
    await client.close()


async def test_a_burst_of_2000_pods_on_100_mixed_nodes_never_overcommits_a_node(
    api: ApiClient, scheduler: Scheduler, simulated_nodes: list[Kubelet]
) -> None:
    for i in range(0, 100, 20):  # cordon every 20th node, as `kubectl cordon` does
        await api.patch(NODES, f"node-{i:03}", {"spec": {"unschedulable": True}})
    await watch_until(
        api, NODES, "", lambda ns: sum(bool(n["spec"].get("unschedulable")) for n in ns) == 5, what="cordons"
    )
    rng = random.Random(7)
    pods = []
    for i in range(2000):  # ~450 cpus asked of the 510 the 85 untainted, uncordoned nodes offer
        extra: Obj = {}
        if i % 10 == 3:
            extra["nodeSelector"] = {"disk": "ssd"}
        if i % 20 == 7:
            extra["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
        pods.append(our_pod(f"p{i:04}", rng.choice(["150m", "225m", "300m"]), rng.choice(["128Mi", "256Mi"]), **extra))
    await create_all(api, PODS, pods, "default")

    bound = await watch_until(api, PODS, "default", all_bound(2000), DEADLINE, "2000 pods bound")
    running = await watch_until(
        api,
        PODS,
        "default",
        lambda ps: len(ps) == 2000 and all(p.get("status", {}).get("phase") == "Running" for p in ps),
        DEADLINE,
        "2000 pods running on the simulated nodes",
    )
    assert running

    by_name = {n["metadata"]["name"]: n for n in (await api.list(NODES))["items"]}
    used: dict[str, list[int]] = {name: [0, 0, 0] for name in by_name}
    for p in bound.values():
        target = by_name[p["spec"]["nodeName"]]
        cpu, memory = requests_of(p)
        totals = used[target["metadata"]["name"]]
        totals[0], totals[1], totals[2] = totals[0] + cpu, totals[1] + memory, totals[2] + 1
        assert not target["spec"].get("unschedulable"), "placed on a cordoned node"
        if target["spec"].get("taints"):
            assert any(t.get("key") == "dedicated" for t in p["spec"]["tolerations"]), "placed on a tainted node"
        if p["spec"].get("nodeSelector"):
            assert target["metadata"]["labels"]["disk"] == "ssd"
        assert condition(p) is not None and condition(p)["status"] == "True"  # type: ignore[index]
    fullest = 0.0
    for name, (cpu, memory, count) in used.items():
        allocatable = by_name[name]["status"]["allocatable"]
        cpu_allocatable = parse_quantity(allocatable["cpu"]).value * 1000
        assert cpu <= cpu_allocatable, f"{name} overcommitted on cpu"
        assert memory <= parse_quantity(allocatable["memory"]).value, f"{name} overcommitted on memory"
        assert count <= int(allocatable["pods"])
        fullest = max(fullest, cpu / cpu_allocatable)
    assert fullest > 0.8, "the burst fills the nodes up (so an overbooking would show)"
    assert scheduler.stats.bound == 2000


async def test_an_unschedulable_pod_says_why_like_kube_and_is_bound_once_a_node_fits(
    api: ApiClient, scheduler: Scheduler
) -> None:
    await create_all(
        api,
        NODES,
        [node("small", cpu="1"), node("cp-1", taints=[CONTROL_PLANE]), node("cp-2", taints=[CONTROL_PLANE])],
    )
    await api.create(PODS, new_pod("elsewhere", "2", scheduler_name="other-scheduler"), "default")
    await api.create(PODS, our_pod("big", "2"), "default")

    big = await watch_until(api, PODS, "default", lambda ps: named(ps)["big"] if condition(named(ps)["big"]) else None)
    expected = (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling."
    )
    scheduled_condition = condition(big) or {}
    assert [scheduled_condition.get(k) for k in ("status", "reason", "message")] == ["False", "Unschedulable", expected]
    failed = await watch_until(api, EVENTS, "default", event_for("big", "FailedScheduling"))
    # an events.k8s.io/v1 event, as kube-scheduler writes it: no source, a reporting controller and action
    assert (failed["type"], failed["message"], failed["source"]) == ("Warning", expected, {})
    assert (failed["reportingComponent"], failed["action"]) == (SCHEDULER, "Scheduling")

    await api.create(NODES, node("roomy", cpu="4"))
    pods = await watch_until(api, PODS, "default", placed("big", "roomy"))
    assert (condition(pods["big"]) or {}).get("status") == "True"
    scheduled = await watch_until(api, EVENTS, "default", event_for("big", "Scheduled"))
    assert scheduled["message"] == "Successfully assigned default/big to roomy"
    # a pod for another scheduler is left alone, without a word
    assert "nodeName" not in pods["elsewhere"]["spec"] and condition(pods["elsewhere"]) is None


async def test_a_pod_that_finished_frees_its_room_for_a_pending_one(api: ApiClient, scheduler: Scheduler) -> None:
    await api.create(NODES, node("one", cpu="1"))
    await api.create(PODS, our_pod("first", "1"), "default")
    await watch_until(api, PODS, "default", placed("first", "one"))
    await api.create(PODS, our_pod("second", "1"), "default")
    await watch_until(
        api, PODS, "default", lambda ps: (condition(named(ps).get("second", {})) or {}).get("reason") == "Unschedulable"
    )
    # what the node agent reports when its container exits 0: a finished pod holds no resources
    await api.patch(PODS, "first", {"status": {"phase": "Succeeded"}}, "default", "status")
    await watch_until(api, PODS, "default", placed("second", "one"))


async def test_a_higher_priority_pod_preempts_just_enough_lower_priority_pods(
    api: ApiClient, scheduler: Scheduler
) -> None:
    await create_all(api, PRIORITY_CLASSES, [priority_class("low", 100), priority_class("high", 1000)])
    await api.create(NODES, node("only", cpu="3"))
    victims = [our_pod(f"low-{i}", "1", priorityClassName="low", terminationGracePeriodSeconds=0) for i in range(3)]
    await create_all(api, PODS, victims, "default")
    await watch_until(api, PODS, "default", all_bound(3))

    await api.create(PODS, our_pod("urgent", "2", priorityClassName="high"), "default")
    after = await watch_until(api, PODS, "default", all_bound(2))
    assert after["urgent"]["spec"]["nodeName"] == "only"
    assert after["urgent"]["status"].get("nominatedNodeName") == "only"
    assert len([name for name in after if name.startswith("low-")]) == 1, "two victims free the two cpus needed"
    preempted = await watch_until(api, EVENTS, "default", events_with("Preempted", 2))
    uid = after["urgent"]["metadata"]["uid"]
    assert {e["message"] for e in preempted} == {f"Preempted by pod {uid} on node only"}
    assert scheduler.stats.preemptions == 1
