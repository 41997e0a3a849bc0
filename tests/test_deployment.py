"""The Deployment controller in a real `kube-shim up`, driven by the real kubectl (1.33 and 1.27).

The cluster has simulated nodes (tests/workloads.py): the real scheduler binds the pods and the node agents run
them on the fake runtime, so they turn Ready at once. kubectl runs in a thread, so that the test's own watches
keep up while `kubectl rollout status` waits.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shim.client import ApiClient, SharedInformer, load_kubeconfig
from shim.controllers import deploymentutil as du
from shim.controllers.podutil import is_pod_ready
from shim.machinery.resources import DEPLOYMENTS, EVENTS, PODS, REPLICASETS
from tests.cluster import Cluster
from tests.workloads import IMAGE, cluster_with_fake_nodes, deployment, never_ready, watch_until

Obj = dict[str, Any]
KUBECTL_VERSIONS = ("1.33", "1.27")


cluster = cluster_with_fake_nodes()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


async def kubectl(
    cluster: Cluster, namespace: str, *args: str, version: str = "1.33", check: bool = True
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cluster.kubectl, "-n", namespace, *args, version=version, check=check, timeout=90)


async def rolled_out(cluster: Cluster, namespace: str, name: str, version: str = "1.33") -> str:
    result = await kubectl(
        cluster, namespace, "rollout", "status", f"deployment/{name}", "--timeout=60s", version=version
    )
    assert f'deployment "{name}" successfully rolled out' in result.stdout
    return result.stdout


async def replica_sets(api: ApiClient, namespace: str) -> dict[int, Obj]:
    """The namespace's replica sets by revision."""
    return {du.revision(rs): rs for rs in (await api.list(REPLICASETS, namespace))["items"]}


def condition(obj: Obj, type_: str) -> Obj:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
async def test_create_deployment_rolls_out_one_replica_set(
    api: ApiClient, cluster: Cluster, namespace: str, version: str
):
    await kubectl(
        cluster, namespace, "create", "deployment", "web", f"--image={IMAGE}", "--replicas=3", version=version
    )
    await rolled_out(cluster, namespace, "web", version)
    (rs,) = (await api.list(REPLICASETS, namespace))["items"]
    pod_hash = rs["metadata"]["labels"][du.POD_TEMPLATE_HASH]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert set(pod_hash) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(pod_hash) <= 10
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", du.POD_TEMPLATE_HASH: pod_hash}}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", du.POD_TEMPLATE_HASH: pod_hash}
    annotations = rs["metadata"]["annotations"]
    assert (annotations[du.REVISION], annotations[du.DESIRED_REPLICAS], annotations[du.MAX_REPLICAS]) == ("1", "3", "4")
    owner = rs["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"], owner["blockOwnerDeletion"]) == (
        "Deployment",
        "web",
        True,
        True,
    )

    d = await api.get(DEPLOYMENTS, "web", namespace)
    status = d["status"]
    assert status["observedGeneration"] == d["metadata"]["generation"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"]) == (
        3,
        3,
        3,
        3,
    )
    assert "unavailableReplicas" not in status
    available, progressing = condition(d, "Available"), condition(d, "Progressing")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    assert available["message"] == "Deployment has minimum availability."
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")
    assert progressing["message"] == f'ReplicaSet "web-{pod_hash}" has successfully progressed.'
    scaled = await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: next((e for e in events if e["reason"] == "ScalingReplicaSet"), None),
        what="a ScalingReplicaSet event",
    )
    assert scaled["message"] == f"Scaled up replica set web-{pod_hash} to 3"
    assert scaled["involvedObject"]["kind"] == "Deployment"


async def test_set_image_rolls_within_max_surge_and_max_unavailable(api: ApiClient, cluster: Cluster, namespace: str):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    await api.create(DEPLOYMENTS, deployment("web", 4, strategy=strategy), namespace)
    await rolled_out(cluster, namespace, "web")
    most_pods, fewest_ready = 0, 4

    async def track(event: str, pod: Obj, old: Obj | None) -> None:
        nonlocal most_pods, fewest_ready
        if not pods.synced.is_set():
            return  # the initial list arrives one pod at a time
        running = [p for p in pods.list() if not p["metadata"].get("deletionTimestamp")]
        most_pods = max(most_pods, len(running))
        fewest_ready = min(fewest_ready, sum(is_pod_ready(p) for p in running))

    pods = SharedInformer(api, PODS, namespace=namespace)
    pods.add_event_handler(track)
    pods.start()
    try:
        await pods.synced.wait()
        await kubectl(cluster, namespace, "set", "image", "deployment/web", "app=registry.example/web:2")
        await rolled_out(cluster, namespace, "web")
    finally:
        await pods.stop()
    assert most_pods <= 5, "never more than replicas + maxSurge pods"
    assert fewest_ready >= 4, "never fewer than replicas - maxUnavailable ready pods"
    rss = await replica_sets(api, namespace)
    assert (rss[1]["spec"]["replicas"], rss[2]["spec"]["replicas"]) == (0, 4)
    assert rss[2]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/web:2"
    messages = [
        e["message"] for e in (await api.list(EVENTS, namespace))["items"] if e["reason"] == "ScalingReplicaSet"
    ]
    old_name = rss[1]["metadata"]["name"]
    assert f"Scaled down replica set {old_name} to 3 from 4" in messages


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
async def test_rollout_history_and_undo_return_to_the_first_template(
    api: ApiClient, cluster: Cluster, namespace: str, version: str
):
    await api.create(DEPLOYMENTS, deployment("web", 2), namespace)
    await rolled_out(cluster, namespace, "web", version)
    first_hash = (await replica_sets(api, namespace))[1]["metadata"]["labels"][du.POD_TEMPLATE_HASH]
    await kubectl(cluster, namespace, "set", "image", "deployment/web", "app=registry.example/web:2", version=version)
    await rolled_out(cluster, namespace, "web", version)
    history = (await kubectl(cluster, namespace, "rollout", "history", "deployment/web", version=version)).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]

    undo = await kubectl(cluster, namespace, "rollout", "undo", "deployment/web", version=version)
    assert "rolled back" in undo.stdout
    await rolled_out(cluster, namespace, "web", version)
    d = await api.get(DEPLOYMENTS, "web", namespace)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    rss = await replica_sets(api, namespace)
    assert sorted(rss) == [2, 3]
    current = rss[3]
    assert current["metadata"]["labels"][du.POD_TEMPLATE_HASH] == first_hash
    assert current["metadata"]["annotations"][du.REVISION_HISTORY] == "1"
    assert (current["spec"]["replicas"], rss[2]["spec"]["replicas"]) == (2, 0)
    history = (await kubectl(cluster, namespace, "rollout", "history", "deployment/web", version=version)).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]


async def test_rollout_restart_replaces_every_pod(api: ApiClient, cluster: Cluster, namespace: str):
    await api.create(DEPLOYMENTS, deployment("web", 2), namespace)
    await rolled_out(cluster, namespace, "web")
    before = {p["metadata"]["name"] for p in (await api.list(PODS, namespace))["items"]}
    await kubectl(cluster, namespace, "rollout", "restart", "deployment/web")
    await rolled_out(cluster, namespace, "web")
    rss = await replica_sets(api, namespace)
    assert "kubectl.kubernetes.io/restartedAt" in rss[2]["spec"]["template"]["metadata"]["annotations"]
    after = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: names if len(names := {p["metadata"]["name"] for p in pods}) == 2 and not names & before else None,
        what="only new pods",
    )
    assert all(name.startswith(rss[2]["metadata"]["name"]) for name in after)


async def test_a_paused_deployment_starts_no_rollout_until_resumed(api: ApiClient, cluster: Cluster, namespace: str):
    await api.create(DEPLOYMENTS, deployment("web", 2), namespace)
    await rolled_out(cluster, namespace, "web")
    await kubectl(cluster, namespace, "rollout", "pause", "deployment/web")
    await kubectl(cluster, namespace, "set", "image", "deployment/web", "app=registry.example/web:2")
    paused = await watch_until(
        api,
        DEPLOYMENTS,
        namespace,
        lambda ds: ds[0] if ds[0]["status"].get("observedGeneration") == ds[0]["metadata"]["generation"] else None,
        what="the paused deployment's new template to be observed",
    )
    assert (condition(paused, "Progressing")["status"], condition(paused, "Progressing")["reason"]) == (
        "Unknown",
        "DeploymentPaused",
    )
    assert condition(paused, "Progressing")["message"] == "Deployment is paused"
    assert list(await replica_sets(api, namespace)) == [1], "no new replica set while paused"

    await kubectl(cluster, namespace, "rollout", "resume", "deployment/web")
    await rolled_out(cluster, namespace, "web")
    rss = await replica_sets(api, namespace)
    assert (rss[1]["spec"]["replicas"], rss[2]["spec"]["replicas"]) == (0, 2)


async def test_recreate_stops_every_old_pod_before_starting_new_ones(api: ApiClient, cluster: Cluster, namespace: str):
    await api.create(DEPLOYMENTS, deployment("web", 3, strategy={"type": "Recreate"}), namespace)
    await rolled_out(cluster, namespace, "web")
    overlaps: list[set[str]] = []

    async def track(event: str, pod: Obj, old: Obj | None) -> None:
        if not pods.synced.is_set():
            return  # the initial list arrives one pod at a time
        images = {p["spec"]["containers"][0]["image"] for p in pods.list()}
        if len(images) > 1:
            overlaps.append(images)

    pods = SharedInformer(api, PODS, namespace=namespace)
    pods.add_event_handler(track)
    pods.start()
    try:
        await pods.synced.wait()
        await kubectl(cluster, namespace, "set", "image", "deployment/web", "app=registry.example/web:2")
        await rolled_out(cluster, namespace, "web")
    finally:
        await pods.stop()
    assert not overlaps, "old and new pods never exist at the same time"
    rss = await replica_sets(api, namespace)
    assert (rss[1]["spec"]["replicas"], rss[2]["spec"]["replicas"]) == (0, 3)


async def test_a_rollout_without_progress_exceeds_its_deadline(api: ApiClient, cluster: Cluster, namespace: str):
    stuck = deployment("stuck", 2, progressDeadlineSeconds=2)
    stuck["spec"]["template"] = never_ready(stuck["spec"]["template"])
    await api.create(DEPLOYMENTS, stuck, namespace)
    result = await kubectl(cluster, namespace, "rollout", "status", "deployment/stuck", "--timeout=60s", check=False)
    assert result.returncode == 1
    assert 'error: deployment "stuck" exceeded its progress deadline' in result.stderr
    d = await api.get(DEPLOYMENTS, "stuck", namespace)
    rs_name = next(iter((await replica_sets(api, namespace)).values()))["metadata"]["name"]
    progressing, available = condition(d, "Progressing"), condition(d, "Available")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{rs_name}" has timed out progressing.'
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert d["status"]["unavailableReplicas"] == 2


async def test_old_replica_sets_beyond_the_revision_history_limit_are_deleted(
    api: ApiClient, cluster: Cluster, namespace: str
):
    await api.create(DEPLOYMENTS, deployment("web", 1, revisionHistoryLimit=1), namespace)
    await rolled_out(cluster, namespace, "web")
    for tag in (2, 3, 4):
        await kubectl(cluster, namespace, "set", "image", "deployment/web", f"app=registry.example/web:{tag}")
        await rolled_out(cluster, namespace, "web")
    kept = await watch_until(
        api,
        REPLICASETS,
        namespace,
        lambda rss: sorted(du.revision(rs) for rs in rss) if len(rss) == 2 else None,
        what="two replica sets left",
    )
    assert kept == [3, 4]


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
async def test_kubectl_scale_goes_through_the_scale_subresource(
    api: ApiClient, cluster: Cluster, namespace: str, version: str
):
    await api.create(DEPLOYMENTS, deployment("web", 2), namespace)
    await rolled_out(cluster, namespace, "web", version)
    for replicas in (5, 1):
        result = await kubectl(cluster, namespace, "scale", "deployment/web", f"--replicas={replicas}", version=version)
        assert "deployment.apps/web scaled" in result.stdout
        # rollout status alone does not wait for a scale-down: its old pods are not "old replicas"
        await watch_until(
            api,
            DEPLOYMENTS,
            namespace,
            lambda ds, n=replicas: ds[0]["status"].get("replicas") == ds[0]["status"].get("availableReplicas") == n,
            what=f"{replicas} available replicas",
        )
        (rs,) = (await replica_sets(api, namespace)).values()
        assert rs["spec"]["replicas"] == replicas
        assert rs["metadata"]["annotations"][du.DESIRED_REPLICAS] == str(replicas)


async def test_scaling_mid_rollout_is_proportional(api: ApiClient, cluster: Cluster, namespace: str):
    """kube's documented example: 10 replicas, maxSurge 3, maxUnavailable 2, a new template that never becomes
    ready leaves 8 old + 5 new; scaling to 15 adds 3 to the old and 2 to the new replica set."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    await api.create(DEPLOYMENTS, deployment("web", 10, strategy=strategy), namespace)
    await rolled_out(cluster, namespace, "web")
    broken = never_ready({"spec": {"containers": [{"name": "app", "image": "registry.example/web:2"}]}})
    await api.patch(DEPLOYMENTS, "web", {"spec": {"template": broken}}, namespace)

    def sizes(rss: list[Obj]) -> tuple[int, ...]:
        return tuple(rs["spec"]["replicas"] for rs in sorted(rss, key=du.revision))

    await watch_until(api, REPLICASETS, namespace, lambda rss: sizes(rss) == (8, 5), what="8 old and 5 new replicas")
    await kubectl(cluster, namespace, "scale", "deployment/web", "--replicas=15")
    await watch_until(api, REPLICASETS, namespace, lambda rss: sizes(rss) == (11, 7), what="11 old and 7 new replicas")


async def test_the_deployment_carries_its_revision(api: ApiClient, cluster: Cluster, namespace: str):
    await api.create(DEPLOYMENTS, deployment("web", 1), namespace)
    await rolled_out(cluster, namespace, "web")
    d = await api.get(DEPLOYMENTS, "web", namespace)
    assert d["metadata"]["annotations"][du.REVISION] == "1"


# -- the arithmetic, against kube's documented cases -----------------------------------------------------------


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 3, (1, 0)),
        ("25%", "25%", 10, (3, 2)),
        ("0%", "1%", 2, (0, 1)),  # both round to zero: unavailable becomes 1
        (0, 0, 5, (0, 1)),
        (2, "50%", 5, (2, 2)),
    ],
)
def test_max_surge_rounds_up_and_max_unavailable_rounds_down(surge, unavailable, desired, expected):
    assert du.resolve_fenceposts(surge, unavailable, desired) == expected


def test_the_template_hash_ignores_its_own_label_and_changes_with_the_collision_count():
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}}
    labelled = {**template, "metadata": {"labels": {"app": "web", du.POD_TEMPLATE_HASH: "x"}}}
    assert du.equal_ignore_hash(template, labelled)
    assert du.compute_hash(template, None) == du.compute_hash(template, None)
    assert du.compute_hash(template, None) != du.compute_hash(template, 1)
    changed = {**template, "spec": {"containers": [{"name": "c", "image": "b"}]}}
    assert not du.equal_ignore_hash(template, changed)
