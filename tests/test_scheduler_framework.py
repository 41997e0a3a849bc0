"""The scheduler's machinery without a server: the FitError message, node sampling, the cache's assumed
pods, the scheduling queue, and preemption's choice of victims."""

from __future__ import annotations

import asyncio
import random

import pytest

from shim.scheduler.algorithm import NodePicker, num_feasible_nodes_to_find
from shim.scheduler.cache import Cache
from shim.scheduler.framework import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    NODE_ADD,
    Code,
    CycleState,
    FitError,
    Framework,
    Status,
)
from shim.scheduler.info import PodInfo
from shim.scheduler.plugins import DEFAULT_WEIGHTS, default_plugins
from shim.scheduler.preemption import Candidate, Preemptor
from shim.scheduler.queue import Nominator, SchedulingQueue
from tests.scheduler_objects import node, pod

CONTROL_PLANE = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


class Harness:
    """A cache, the default framework and a picker + preemptor over them, like the Scheduler wires them."""

    def __init__(self, *nodes: dict, pods: tuple[dict, ...] = ()) -> None:
        self.cache = Cache()
        for n in nodes:
            self.cache.set_node(n)
        for p in pods:
            self.cache.set_pod(PodInfo(p))
        self.framework = Framework(default_plugins(self.cache), DEFAULT_WEIGHTS)
        self.nominator = Nominator()
        self.picker = NodePicker(self.framework, self.cache, self.nominator, rng=random.Random(1))
        self.preemptor = Preemptor(self.picker, random.Random(1))

    def schedule(self, the_pod: dict) -> tuple[str | FitError, CycleState, PodInfo, list]:
        info = PodInfo(the_pod)
        state = CycleState(self.cache.node_list())
        filters = self.framework.pre_filter(state, info)
        return self.picker.schedule(state, info, filters), state, info, filters

    def place(self, the_pod: dict) -> str:
        result, _, info, _ = self.schedule(the_pod)
        assert isinstance(result, str), result
        self.cache.assume(info, result)
        return result

    def preempt(self, the_pod: dict) -> Candidate | str:
        result, state, info, filters = self.schedule(the_pod)
        assert isinstance(result, FitError)
        return self.preemptor.find(state, info, filters, result)


# -- the message kubectl users read --------------------------------------------------------------------------


def test_fit_error_reads_like_kube_scheduler() -> None:
    h = Harness(node("small", cpu="1"), node("cp1", taints=[CONTROL_PLANE]), node("cp2", taints=[CONTROL_PLANE]))
    result, state, info, filters = h.schedule(pod("big", cpu="2"))
    assert isinstance(result, FitError)
    assert result.rejected_by == {"NodeResourcesFit", "TaintToleration"}
    outcome = h.preemptor.find(state, info, filters, result)
    assert isinstance(outcome, str)
    result.post_filter_message = f"preemption: {outcome}"
    assert result.message() == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling."
    )


def test_reason_counts_sort_as_strings_like_go() -> None:
    statuses = {f"n{i}": Status(Code.UNSCHEDULABLE, ("Insufficient cpu",)) for i in range(10)}
    statuses["m"] = Status(Code.UNSCHEDULABLE, ("Insufficient memory", "Too many pods"))
    message = FitError(11, statuses).message()
    assert message == "0/11 nodes are available: 1 Insufficient memory, 1 Too many pods, 10 Insufficient cpu."
    assert FitError(0, {}).message() == "no nodes available to schedule pods"


# -- sampling ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "wanted"), [(50, 50), (100, 100), (500, 230), (1000, 420), (5000, 500), (10_000, 500)]
)
def test_percentage_of_nodes_to_score_adapts_to_cluster_size(nodes: int, wanted: int) -> None:
    assert num_feasible_nodes_to_find(nodes) == wanted


def test_a_large_cluster_is_sampled_round_robin() -> None:
    h = Harness(*(node(f"n{i:04}") for i in range(1000)))
    first = h.place(pod("a", cpu="100m"))
    second = h.place(pod("b", cpu="100m"))
    # 420 nodes are enough for the first pod, so the second starts where the first stopped
    assert int(first[1:]) < 420 <= int(second[1:]) < 840


def test_a_nominated_node_that_still_fits_is_taken_without_scoring() -> None:
    h = Harness(node("a"), node("b"), node("c"))
    nominated = pod("p", cpu="1")
    nominated["status"]["nominatedNodeName"] = "c"
    assert h.place(nominated) == "c"


# -- the cache -----------------------------------------------------------------------------------------------


def test_assumed_pods_count_before_their_binding_is_observed() -> None:
    h = Harness(node("only", cpu="2"))
    assert h.place(pod("a", cpu="1500m")) == "only"
    result, *_ = h.schedule(pod("b", cpu="1"))
    assert isinstance(result, FitError) and result.statuses["only"].reasons == ("Insufficient cpu",)
    h.cache.forget("default/a")  # the binding failed
    assert h.place(pod("b", cpu="1")) == "only"
    bound = PodInfo(pod("b", cpu="1", node_name="only"))
    h.cache.set_pod(bound)  # the watch confirms it
    assert not h.cache.is_assumed("default/b")
    assert h.cache.nodes["only"].requested.milli_cpu == 1000


def test_a_deleted_node_keeps_its_pods_until_they_go() -> None:
    h = Harness(node("a"), pods=(pod("p", cpu="1", node_name="a"),))
    h.cache.remove_node("a")
    assert h.cache.node_list() == [] and "a" in h.cache.nodes
    h.cache.remove_pod("default/p")
    assert "a" not in h.cache.nodes


# -- the queue -----------------------------------------------------------------------------------------------


def queue(initial_backoff: float = 1.0) -> SchedulingQueue:
    interest = {
        NODE_ADD: frozenset({"NodeResourcesFit", "TaintToleration"}),
        ASSIGNED_POD_DELETE: frozenset({"NodeResourcesFit"}),
    }
    return SchedulingQueue(lambda event: interest.get(event, frozenset()), initial_backoff=initial_backoff)


async def next_key(q: SchedulingQueue) -> str:
    return (await asyncio.wait_for(q.pop(), 5)).info.key


async def test_higher_priority_first_then_oldest() -> None:
    q = queue()
    q.add(PodInfo(pod("low", priority=1)))
    q.add(PodInfo(pod("high", priority=100)))
    q.add(PodInfo(pod("low2", priority=1)))
    assert [await next_key(q) for _ in range(3)] == ["default/high", "default/low", "default/low2"]


async def test_an_unschedulable_pod_waits_for_an_event_its_rejecters_care_about() -> None:
    q = queue(initial_backoff=0.01)
    q.add(PodInfo(pod("p")))
    queued = await q.pop()
    q.add_unschedulable(queued, frozenset({"TaintToleration"}))
    q.move_all(ASSIGNED_POD_DELETE)  # a freed pod slot does not help a taint problem
    q.move_all(ASSIGNED_POD_ADD)
    assert len(q) == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.pop(), 0.1)
    q.move_all(NODE_ADD)
    assert await next_key(q) == "default/p"  # after its (short) back-off


async def test_status_writes_do_not_retry_an_unschedulable_pod_but_spec_changes_do() -> None:
    q = queue(initial_backoff=0.01)
    original = pod("p")
    q.add(PodInfo(original))
    q.add_unschedulable(await q.pop(), frozenset({"NodeAffinity"}))
    with_condition = {**original, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled"}]}}
    q.update(PodInfo(with_condition))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.pop(), 0.1)
    relabelled = {**original, "spec": {**original["spec"], "nodeSelector": {"disk": "ssd"}}}
    q.update(PodInfo(relabelled))
    assert await next_key(q) == "default/p"


async def test_an_event_during_the_attempt_sends_the_pod_to_back_off_not_to_wait() -> None:
    q = queue(initial_backoff=0.01)
    q.add(PodInfo(pod("p")))
    queued = await q.pop()
    q.move_all(NODE_ADD)  # a node arrived while the pod was being tried against the old node list
    q.add_unschedulable(queued, frozenset({"TaintToleration"}))
    assert await next_key(q) == "default/p"


async def test_back_off_doubles_with_attempts_up_to_the_maximum() -> None:
    q = queue()
    assert [q._backoff_duration(n) for n in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 10, 10]


async def test_a_gated_pod_waits_until_its_gates_are_removed() -> None:
    q = queue(initial_backoff=0.01)
    q.add(PodInfo(pod("p", schedulingGates=[{"name": "example.com/wait"}])))
    q.move_all(NODE_ADD)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.pop(), 0.1)
    q.update(PodInfo(pod("p")))
    assert await next_key(q) == "default/p"


async def test_deleted_pods_are_never_popped() -> None:
    q = queue()
    q.add(PodInfo(pod("gone")))
    q.add(PodInfo(pod("stays")))
    q.delete("default/gone")
    assert await next_key(q) == "default/stays"


# -- preemption ----------------------------------------------------------------------------------------------


def test_preemption_evicts_only_what_is_needed_and_the_least_important_first() -> None:
    h = Harness(
        node("n", cpu="4"),
        pods=(
            pod("low-old", cpu="1", node_name="n", priority=10),
            pod("low-new", cpu="1", node_name="n", priority=10),
            pod("mid", cpu="1", node_name="n", priority=50),
            pod("peer", cpu="1", node_name="n", priority=100),
        ),
    )
    h.cache.pod("default/low-new").start_time = "2024-06-01T00:00:00Z"  # type: ignore[union-attr]
    outcome = h.preempt(pod("urgent", cpu="2", priority=100))
    assert isinstance(outcome, Candidate) and outcome.node.name == "n"
    # two cpus are needed: the two lowest go; the newer of them is less important but both are required
    assert sorted(v.name for v in outcome.victims) == ["low-new", "low-old"]
    one = h.preempt(pod("modest", cpu="1", priority=100))
    assert isinstance(one, Candidate) and [v.name for v in one.victims] == ["low-new"]


def test_preemption_prefers_the_node_with_the_lowest_priority_victims() -> None:
    h = Harness(
        node("a", cpu="1"),
        node("b", cpu="1"),
        pods=(pod("important", cpu="1", node_name="a", priority=50), pod("cheap", cpu="1", node_name="b", priority=5)),
    )
    outcome = h.preempt(pod("urgent", cpu="1", priority=100))
    assert isinstance(outcome, Candidate) and outcome.node.name == "b"
    assert [v.name for v in outcome.victims] == ["cheap"]


def test_preemption_cannot_help_against_taints_equal_priority_or_a_never_policy() -> None:
    h = Harness(
        node("tainted", taints=[CONTROL_PLANE]),
        node("full", cpu="1"),
        pods=(pod("peer", cpu="1", node_name="full", priority=100),),
    )
    assert h.preempt(pod("p", cpu="1", priority=100)) == (
        "0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling."
    )
    assert h.preempt(pod("q", cpu="1", priority=1000, preemptionPolicy="Never")) == (
        "not eligible due to preemptionPolicy=Never."
    )


def test_no_second_preemption_while_the_victims_terminate() -> None:
    victim = pod("victim", cpu="1", node_name="n", priority=1)
    victim["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:30Z"
    victim["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]
    h = Harness(node("n", cpu="1"), pods=(victim,))
    waiting = pod("urgent", cpu="1", priority=100)
    waiting["status"]["nominatedNodeName"] = "n"
    assert h.preempt(waiting) == "not eligible due to a terminating pod on the nominated node."


def test_room_held_for_a_nominated_pod_is_not_given_to_a_lower_priority_pod() -> None:
    h = Harness(node("n", cpu="2"))
    h.nominator.set(PodInfo(pod("urgent", cpu="2", priority=100)), "n")
    result, *_ = h.schedule(pod("ordinary", cpu="1", priority=0))
    assert isinstance(result, FitError) and result.statuses["n"].reasons == ("Insufficient cpu",)
    assert h.place(pod("peer", cpu="1", priority=200)) == "n"  # a higher priority is not held back


def test_preemption_evicts_the_pod_that_repels_the_preemptor() -> None:
    repelled = {"app": "batch"}
    h = Harness(
        node("n", cpu="8"),
        pods=(
            pod("batch", cpu="1", labels=repelled, node_name="n", priority=1),
            pod("web", cpu="1", labels={"app": "web"}, node_name="n", priority=1),
        ),
    )
    loner = pod("loner", cpu="1", priority=100)
    loner["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": repelled}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    outcome = h.preempt(loner)
    assert isinstance(outcome, Candidate) and [v.name for v in outcome.victims] == ["batch"]
