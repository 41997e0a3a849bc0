"""apps/v1 DaemonSets in a real `kube-shim up` with three simulated nodes (vm-0, vm-1, vm-2).

The real scheduler binds the daemon pods (pinned to their node by a required node affinity on metadata.name)
and the node agents run them on the fake runtime, where they turn Ready at once. Users' paths go through the
real kubectl 1.27 and 1.33 and the official Python client. Tests that label, taint or cordon a node undo it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from shim.client import ApiClient, ApiException, SharedInformer, load_kubeconfig
from shim.controllers.daemonutil import target_node
from shim.machinery.resources import CONTROLLER_REVISIONS, DAEMONSETS, EVENTS, NODES, PODS
from tests.cluster import Cluster, start_cluster
from tests.workloads import cluster_with_fake_nodes, watch_until

Obj = dict[str, Any]
NODE_NAMES = ["vm-0", "vm-1", "vm-2"]
HASH = "controller-revision-hash"
GENERATION = "pod-template-generation"
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# the tolerations kube adds to every daemon pod (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations)
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
# the pod GC removes pods of a deleted node after 40 s; a rollout on the fake runtime takes a few seconds
POD_GC_DEADLINE = 90.0

cluster = cluster_with_fake_nodes()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def daemon_set(name: str, image: str = "busybox", pod_spec: Obj | None = None, **spec: Any) -> Obj:
    """A DaemonSet of one container selecting `app: name`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}], **(pod_spec or {})},
            },
            **spec,
        },
    }


def pods_of(pods: list[Obj], name: str, live: bool = True) -> list[Obj]:
    """The pods of daemon set `name` (without the terminating ones when `live`)."""
    return [
        p
        for p in pods
        if (p["metadata"].get("labels") or {}).get("app") == name
        and not (live and p["metadata"].get("deletionTimestamp"))
    ]


def is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def images(pods: list[Obj]) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in pods}


async def wait_rolled_out(api: ApiClient, namespace: str, name: str, desired: int, timeout: float = 60.0) -> Obj:
    """The daemon set once its status says the current generation runs, updated and available, on `desired`
    nodes (what `kubectl rollout status` waits for)."""

    def done(items: list[Obj]) -> Obj | None:
        for ds in items:
            status = ds.get("status") or {}
            if (
                ds["metadata"]["name"] == name
                and status.get("observedGeneration") == ds["metadata"]["generation"]
                and status.get("desiredNumberScheduled") == desired
                and status.get("updatedNumberScheduled", 0) == desired
                and status.get("numberAvailable", 0) == desired
                and status.get("currentNumberScheduled") == desired
            ):
                return ds
        return None

    return await watch_until(api, DAEMONSETS, namespace, done, timeout, f"daemon set {name} on {desired} nodes")


async def pods_when(
    api: ApiClient, namespace: str, name: str, predicate: Callable[[list[Obj]], bool], what: str, timeout: float = 60
) -> list[Obj]:
    """The live pods of daemon set `name` once `predicate` holds for them."""
    return await watch_until(
        api, PODS, namespace, lambda pods: (mine := pods_of(pods, name)) and predicate(mine) and mine, timeout, what
    )


async def wait_events(
    api: ApiClient, namespace: str, name: str, predicate: Callable[[list[tuple[str, str, str]]], bool], what: str
) -> list[tuple[str, str, str]]:
    """The (type, reason, message) of the events about `name` once `predicate` holds for them (the controllers
    write events in the background)."""

    def about(events: list[Obj]) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in events if e["involvedObject"]["name"] == name]

    return await watch_until(
        api, EVENTS, namespace, lambda events: predicate(about(events)) and about(events), what=what
    )


async def patch_node(api: ApiClient, node: str, patch: Obj) -> None:
    await api.patch(NODES, node, patch, content_type=MERGE)


def kubectl_in(cluster: Cluster, namespace: str, version: str) -> Callable[..., str]:
    """kubectl of `version` in `namespace`, returning its output (`stdin=` feeds it)."""

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return cluster.kubectl(*args, "-n", namespace, version=version, stdin=stdin).stdout

    return kubectl


def kubectl_json(cluster: Cluster, *args: str, version: str = "1.33") -> Obj:
    return json.loads(cluster.kubectl(*args, "-o", "json", version=version).stdout)


# -- kubectl ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_rolls_a_daemon_set_out_shows_its_history_and_undoes_it(
    cluster: Cluster, api: ApiClient, namespace: str, version: str
) -> None:
    kubectl = kubectl_in(cluster, namespace, version)
    kubectl("apply", "-f", "-", stdin=json.dumps(daemon_set("agent")))
    assert kubectl("rollout", "status", "ds/agent", "--timeout=60s").endswith(
        'daemon set "agent" successfully rolled out\n'
    )
    table = kubectl("get", "ds", "-o", "wide").splitlines()
    assert table[0].split() == [
        "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE",
        "CONTAINERS", "IMAGES", "SELECTOR",
    ]  # fmt: skip
    cells = table[1].split()
    assert cells[:7] == ["agent", "3", "3", "3", "3", "3", "<none>"]
    assert cells[8:] == ["c", "busybox", "app=agent"] and re.fullmatch(r"\d+s", cells[7])
    first = kubectl_json(cluster, "get", "ds", "agent", "-n", namespace, version=version)

    kubectl("set", "image", "ds/agent", "c=busybox:1.36")
    kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    pods = await pods_when(api, namespace, "agent", lambda p: images(p) == {"busybox:1.36"} and len(p) == 3, "new")
    assert {p["metadata"]["labels"][GENERATION] for p in pods} == {"2"}
    history = kubectl("rollout", "history", "ds/agent").splitlines()
    assert [line.split() for line in history[1:3]] == [["REVISION", "CHANGE-CAUSE"], ["1", "<none>"]]
    assert history[3].split() == ["2", "<none>"]
    revisions = kubectl("get", "controllerrevisions").splitlines()
    assert revisions[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert sorted(line.split()[1:3] for line in revisions[1:]) == [
        ["daemonset.apps/agent", "1"],
        ["daemonset.apps/agent", "2"],
    ]

    assert kubectl("rollout", "undo", "ds/agent") == "daemonset.apps/agent rolled back\n"
    kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    undone = await wait_rolled_out(api, namespace, "agent", 3)
    assert undone["spec"]["template"] == first["spec"]["template"]
    await pods_when(api, namespace, "agent", lambda p: images(p) == {"busybox"} and len(p) == 3, "old image back")
    assert [line.split()[0] for line in kubectl("rollout", "history", "ds/agent").splitlines()[2:4]] == ["2", "3"]
    # kubectl compares the revision's bytes with the patch it makes of the current template
    assert kubectl("rollout", "undo", "ds/agent", "--to-revision=3") == (
        "daemonset.apps/agent skipped rollback (current template already matches revision 3)\n"
    )

    kubectl("delete", "ds", "agent")
    await watch_until(api, PODS, namespace, lambda pods: not pods_of(pods, "agent", live=False), what="no pods")
    await watch_until(api, CONTROLLER_REVISIONS, namespace, lambda revs: not revs, what="no revisions")


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_patches_a_daemon_set_with_every_patch_type(
    cluster: Cluster, api: ApiClient, namespace: str, version: str
) -> None:
    kubectl = kubectl_in(cluster, namespace, version)
    kubectl("create", "-f", "-", stdin=json.dumps(daemon_set("patched")))
    kubectl("patch", "ds", "patched", "--type=strategic", "-p", '{"spec":{"minReadySeconds":1}}')
    kubectl("patch", "ds", "patched", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"node"}}}')
    kubectl(
        "patch",
        "ds",
        "patched",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/revisionHistoryLimit","value":3}]',
    )
    applied = daemon_set("patched", "busybox:1.36")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(applied))
    ds = kubectl_json(cluster, "get", "ds", "patched", "-n", namespace, version=version)
    assert ds["spec"]["minReadySeconds"] == 1 and ds["spec"]["revisionHistoryLimit"] == 3
    assert ds["metadata"]["labels"] == {"tier": "node"}
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
    # only the template change is a new template generation; every spec change is a new generation
    assert ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    assert ds["metadata"]["generation"] == 4
    assert kubectl("delete", "ds", "patched") == 'daemonset.apps "patched" deleted\n'


async def test_kubectl_drain_ignores_daemon_pods_and_a_cordoned_node_keeps_them(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    await api.create(DAEMONSETS, daemon_set("keeper"), namespace)
    await wait_rolled_out(api, namespace, "keeper", 3)
    refused = cluster.kubectl("drain", "vm-2", "--timeout=30s", check=False)
    assert refused.returncode != 0 and "cannot delete DaemonSet-managed Pods" in refused.stderr
    try:
        drained = cluster.kubectl("drain", "vm-2", "--ignore-daemonsets", "--timeout=60s")
        assert "node/vm-2 drained" in drained.stdout
        assert re.search(rf"ignoring DaemonSet-managed Pods: {namespace}/keeper-\w+", drained.stderr)
        # cordoned: the pod stays, and a daemon set made now also runs there (it tolerates the cordon)
        await api.create(DAEMONSETS, daemon_set("late"), namespace)
        await wait_rolled_out(api, namespace, "late", 3)
        late = pods_of((await api.list(PODS, namespace))["items"], "late")
        assert sorted(p["spec"]["nodeName"] for p in late) == NODE_NAMES
        kept = await wait_rolled_out(api, namespace, "keeper", 3)
        assert kept["status"]["numberMisscheduled"] == 0
    finally:
        cluster.kubectl("uncordon", "vm-2")


# -- placement -------------------------------------------------------------------------------------------------


async def test_one_pod_per_node_pinned_by_node_affinity_with_the_daemon_tolerations(
    api: ApiClient, namespace: str
) -> None:
    created = await api.create(DAEMONSETS, daemon_set("spread"), namespace)
    ds = await wait_rolled_out(api, namespace, "spread", 3)
    assert ds["status"] == {
        "currentNumberScheduled": 3,
        "desiredNumberScheduled": 3,
        "numberAvailable": 3,
        "numberMisscheduled": 0,
        "numberReady": 3,
        "observedGeneration": 1,
        "updatedNumberScheduled": 3,
    }
    pods = pods_of((await api.list(PODS, namespace))["items"], "spread")
    assert sorted(p["spec"]["nodeName"] for p in pods) == NODE_NAMES
    [revision] = (await api.list(CONTROLLER_REVISIONS, namespace))["items"]
    hash_ = revision["metadata"]["labels"][HASH]
    assert revision["metadata"]["name"] == f"spread-{hash_}" and revision["revision"] == 1
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    for pod in pods:
        node = pod["spec"]["nodeName"]
        terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms == {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
        }
        assert pod["spec"]["tolerations"] == DAEMON_TOLERATIONS
        assert pod["metadata"]["labels"] == {"app": "spread", HASH: hash_, GENERATION: "1"}
        assert pod["metadata"]["generateName"] == "spread-"
        [owner] = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("DaemonSet", created["metadata"]["uid"], True)
    events = await wait_events(api, namespace, "spread", lambda events: len(events) >= 3, "an event per created pod")
    assert (
        sorted((kind, reason, message[: len("Created pod: spread-")]) for kind, reason, message in events)
        == [("Normal", "SuccessfulCreate", "Created pod: spread-")] * 3
    )


async def test_host_network_daemon_pods_also_tolerate_an_unavailable_network(api: ApiClient, namespace: str) -> None:
    await api.create(DAEMONSETS, daemon_set("hostnet", pod_spec={"hostNetwork": True}), namespace)
    pods = await pods_when(api, namespace, "hostnet", lambda p: len(p) == 3, "3 pods")
    network = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}
    assert all(p["spec"]["tolerations"] == [*DAEMON_TOLERATIONS, network] for p in pods)


async def test_node_selector_and_taints_choose_the_nodes(api: ApiClient, namespace: str) -> None:
    label = f"test.kube-shim.io/{namespace}"
    await patch_node(api, "vm-1", {"metadata": {"labels": {label: "yes"}}})
    try:
        await api.create(DAEMONSETS, daemon_set("picky", pod_spec={"nodeSelector": {label: "yes"}}), namespace)
        ds = await wait_rolled_out(api, namespace, "picky", 1)
        [pod] = pods_of((await api.list(PODS, namespace))["items"], "picky")
        assert pod["spec"]["nodeName"] == "vm-1"
        assert pod["spec"]["nodeSelector"] == {label: "yes"}
        assert ds["status"]["numberMisscheduled"] == 0

        # an untolerated NoSchedule taint keeps new pods off but lets the running one stay: misscheduled
        taint = {"key": label, "value": "x", "effect": "NoSchedule"}
        await patch_node(api, "vm-1", {"spec": {"taints": [taint]}})
        await watch_until(
            api,
            DAEMONSETS,
            namespace,
            lambda items: (
                items[0]["status"].get("numberMisscheduled") == 1 and items[0]["status"]["desiredNumberScheduled"] == 0
            ),
            what="the pod misscheduled",
        )
        assert [p["metadata"]["uid"] for p in pods_of((await api.list(PODS, namespace))["items"], "picky")] == [
            pod["metadata"]["uid"]
        ]
        # an untolerated NoExecute taint takes it off
        await patch_node(api, "vm-1", {"spec": {"taints": [{**taint, "effect": "NoExecute"}]}})
        await watch_until(api, PODS, namespace, lambda pods: not pods_of(pods, "picky"), what="the pod gone")
        # a toleration brings it back, and the node's label going sends it away again
        toleration = {"key": label, "operator": "Exists"}
        await api.patch(
            DAEMONSETS,
            "picky",
            {"spec": {"template": {"spec": {"tolerations": [toleration]}}}},
            namespace,
            content_type=STRATEGIC,
        )
        back = await pods_when(api, namespace, "picky", lambda p: len(p) == 1, "the pod back")
        assert back[0]["spec"]["tolerations"] == [toleration, *DAEMON_TOLERATIONS]
        await patch_node(api, "vm-1", {"metadata": {"labels": {label: None}}})
        await watch_until(api, PODS, namespace, lambda pods: not pods_of(pods, "picky"), what="the pod gone again")
    finally:
        await patch_node(api, "vm-1", {"metadata": {"labels": {label: None}}, "spec": {"taints": None}})


async def test_a_new_node_gets_a_daemon_pod_and_a_deleted_node_loses_it(api: ApiClient, namespace: str) -> None:
    await api.create(DAEMONSETS, daemon_set("everywhere"), namespace)
    await wait_rolled_out(api, namespace, "everywhere", 3)
    name = f"extra-{namespace}"
    room = {"cpu": "2", "memory": "4Gi", "pods": "110"}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    await api.create(NODES, {**node, "status": {"capacity": room, "allocatable": room}})
    try:
        # no node agent runs there: the scheduler binds the pod to it, and it never starts
        pods = await pods_when(
            api,
            namespace,
            "everywhere",
            lambda pods: any(p["spec"].get("nodeName") == name for p in pods),
            "a pod bound to the new node",
        )
        assert len(pods) == 4
        await watch_until(
            api,
            DAEMONSETS,
            namespace,
            lambda items: (
                items[0]["status"]["desiredNumberScheduled"] == items[0]["status"]["currentNumberScheduled"] == 4
            ),
            what="four nodes in the status",
        )
    finally:
        await api.delete(NODES, name)
    await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: (
            len(pods_of(pods, "everywhere", live=False)) == 3
            and all(p["spec"].get("nodeName") in NODE_NAMES for p in pods_of(pods, "everywhere", live=False))
        ),
        POD_GC_DEADLINE,
        "the pod of the deleted node gone",
    )
    ds = await wait_rolled_out(api, namespace, "everywhere", 3)
    assert ds["status"]["numberMisscheduled"] == 0


async def test_an_orphan_pod_the_selector_matches_is_adopted_instead_of_doubled(api: ApiClient, namespace: str) -> None:
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "adopter"}},
        "spec": {"nodeName": "vm-0", "containers": [{"name": "c", "image": "busybox"}]},
    }
    await api.create(PODS, orphan, namespace)
    created = await api.create(DAEMONSETS, daemon_set("adopter", updateStrategy={"type": "OnDelete"}), namespace)
    pods = await pods_when(api, namespace, "adopter", lambda p: len(p) == 3, "a pod per node")
    adopted = next(p for p in pods if p["metadata"]["name"] == "orphan")
    assert [ref["uid"] for ref in adopted["metadata"]["ownerReferences"]] == [created["metadata"]["uid"]]
    assert sorted(p["spec"].get("nodeName") or target_node(p) for p in pods) == NODE_NAMES
    # OnDelete: the adopted pod stays, counted as scheduled but not up to date
    await watch_until(
        api,
        DAEMONSETS,
        namespace,
        lambda items: (
            items[0]["status"].get("currentNumberScheduled") == 3
            and items[0]["status"].get("updatedNumberScheduled") == 2
        ),
        what="the adopted pod counted as not updated",
    )


# -- updates ---------------------------------------------------------------------------------------------------


async def test_on_delete_replaces_a_pod_only_when_the_user_deletes_it(api: ApiClient, namespace: str) -> None:
    await api.create(DAEMONSETS, daemon_set("manual", updateStrategy={"type": "OnDelete"}), namespace)
    await wait_rolled_out(api, namespace, "manual", 3)
    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "busybox:1.36"}]
    await api.patch(DAEMONSETS, "manual", patch, namespace, content_type=JSON_PATCH)
    ds = await watch_until(
        api,
        DAEMONSETS,
        namespace,
        lambda items: items[0]["status"].get("observedGeneration") == 2 and items[0],
        what="generation 2 observed",
    )
    assert ds["status"].get("updatedNumberScheduled", 0) == 0 and ds["status"]["numberAvailable"] == 3
    pods = pods_of((await api.list(PODS, namespace))["items"], "manual")
    assert images(pods) == {"busybox"}
    victim = next(p for p in pods if p["spec"]["nodeName"] == "vm-0")
    await api.delete(PODS, victim["metadata"]["name"], namespace)
    replaced = await pods_when(
        api, namespace, "manual", lambda p: len(p) == 3 and images(p) == {"busybox", "busybox:1.36"}, "one new pod"
    )
    [new] = [p for p in replaced if p["spec"]["containers"][0]["image"] == "busybox:1.36"]
    assert new["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchFields"][0]["values"] == ["vm-0"]
    assert new["metadata"]["labels"][GENERATION] == "2"
    await watch_until(
        api,
        DAEMONSETS,
        namespace,
        lambda items: (
            items[0]["status"].get("updatedNumberScheduled") == 1 and items[0]["status"].get("numberAvailable") == 3
        ),
        what="one updated pod counted",
    )


async def roll_new_image(api: ApiClient, namespace: str, name: str, observe: Callable[[list[Obj]], None]) -> None:
    """Change the daemon set's image and wait until it rolled out, calling `observe` with its live pods after
    every pod change meanwhile."""

    async def changed(_event: str, _pod: Obj, _old: Obj | None) -> None:
        if informer.synced.is_set():  # the initial list arrives one pod at a time
            observe(pods_of(informer.list(), name))

    informer = SharedInformer(api, PODS, namespace=namespace)
    informer.add_event_handler(changed)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 30)
        change = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}
        await api.patch(DAEMONSETS, name, change, namespace, content_type=STRATEGIC)
        await pods_when(
            api, namespace, name, lambda p: len(p) == 3 and images(p) == {"busybox:1.36"}, "every pod replaced"
        )
        await wait_rolled_out(api, namespace, name, 3)
    finally:
        await informer.stop()


async def test_max_surge_starts_each_new_pod_before_its_old_one_goes(api: ApiClient, namespace: str) -> None:
    surge = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    await api.create(DAEMONSETS, daemon_set("surging", updateStrategy=surge), namespace)
    await wait_rolled_out(api, namespace, "surging", 3)
    most_on_a_node = 0

    def count(pods: list[Obj]) -> None:
        nonlocal most_on_a_node
        per_node = Counter(target_node(pod) for pod in pods)
        most_on_a_node = max(most_on_a_node, *per_node.values(), 0)

    await roll_new_image(api, namespace, "surging", count)
    assert most_on_a_node == 2  # the new pod ran beside the old one


async def test_a_rolling_update_keeps_all_but_max_unavailable_nodes_served(api: ApiClient, namespace: str) -> None:
    await api.create(DAEMONSETS, daemon_set("steady"), namespace)  # maxUnavailable defaults to 1
    await wait_rolled_out(api, namespace, "steady", 3)
    most_unserved = 0

    def count(pods: list[Obj]) -> None:
        nonlocal most_unserved
        served = {target_node(p) for p in pods if is_ready(p)}
        most_unserved = max(most_unserved, len(set(NODE_NAMES) - served))

    await roll_new_image(api, namespace, "steady", count)
    assert most_unserved == 1  # one node at a time went without a ready daemon pod


async def test_old_revisions_beyond_the_history_limit_are_deleted(api: ApiClient, namespace: str) -> None:
    await api.create(DAEMONSETS, daemon_set("short", revisionHistoryLimit=1), namespace)
    await wait_rolled_out(api, namespace, "short", 3)
    for tag in ("1.35", "1.36", "1.37"):
        change = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": f"busybox:{tag}"}]}}}}
        await api.patch(DAEMONSETS, "short", change, namespace, content_type=STRATEGIC)
        await wait_rolled_out(api, namespace, "short", 3)
    revisions = await watch_until(
        api, CONTROLLER_REVISIONS, namespace, lambda revs: len(revs) == 2 and revs, what="two revisions left"
    )
    assert sorted(r["revision"] for r in revisions) == [3, 4]


# -- the API ---------------------------------------------------------------------------------------------------


async def test_a_daemon_set_is_defaulted_as_kube_does(api: ApiClient, namespace: str) -> None:
    created = await api.create(DAEMONSETS, daemon_set("defaults"), namespace)
    spec = created["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert created["metadata"]["annotations"] == {"deprecated.daemonset.template.generation": "1"}
    assert created["status"] == {
        "currentNumberScheduled": 0,
        "desiredNumberScheduled": 0,
        "numberMisscheduled": 0,
        "numberReady": 0,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}},
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: "
            'intstr.IntOrString{Type:0, IntVal:1, StrVal:""}: may not be set when maxUnavailable is non-zero',
        ),
        (
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
        ),
        (
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}},
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "
            'intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%',
        ),
        (
            {"updateStrategy": {"type": "Sometimes"}},
            'spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:"Sometimes", '
            'RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: "OnDelete", "RollingUpdate"',
        ),
        (
            {"selector": {"matchLabels": {"app": "other"}}},
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"bad"}: '
            "`selector` does not match template `labels`",
        ),
        (
            {"revisionHistoryLimit": -1},
            "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
        ),
    ],
)
async def test_a_bad_daemon_set_is_refused_with_kubes_message(
    api: ApiClient, namespace: str, change: Obj, message: str
) -> None:
    body = daemon_set("bad")
    body["spec"].update(change)
    with pytest.raises(ApiException) as info:
        await api.create(DAEMONSETS, body, namespace)
    assert info.value.status == 422
    assert info.value.body["message"] == f'DaemonSet.apps "bad" is invalid: {message}'


async def test_a_daemon_set_whose_pods_would_not_restart_is_refused(api: ApiClient, namespace: str) -> None:
    with pytest.raises(ApiException) as info:
        await api.create(DAEMONSETS, daemon_set("once", pod_spec={"restartPolicy": "Never"}), namespace)
    assert info.value.body["message"] == (
        'DaemonSet.apps "once" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Never": '
        'supported values: "Always"'
    )


async def test_the_template_generation_is_the_servers(api: ApiClient, namespace: str) -> None:
    created = await api.create(DAEMONSETS, daemon_set("generations"), namespace)
    annotation = {"metadata": {"annotations": {"deprecated.daemonset.template.generation": "7"}}}
    kept = await api.patch(DAEMONSETS, "generations", annotation, namespace, content_type=MERGE)
    assert kept["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    assert kept["metadata"]["generation"] == created["metadata"]["generation"] == 1
    relabel = {"spec": {"template": {"metadata": {"annotations": {"note": "x"}}}}}
    bumped = await api.patch(DAEMONSETS, "generations", relabel, namespace, content_type=MERGE)
    assert bumped["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    assert bumped["metadata"]["generation"] == 2


async def test_the_python_client_creates_reads_patches_and_deletes_a_daemon_set(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    apps = k8s.AppsV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    await asyncio.to_thread(apps.create_namespaced_daemon_set, namespace, daemon_set("pyds"))
    await wait_rolled_out(api, namespace, "pyds", 3)
    read = await asyncio.to_thread(apps.read_namespaced_daemon_set_status, "pyds", namespace)  # the client's models
    assert (read.status.desired_number_scheduled, read.status.number_ready) == (3, 3)
    assert read.spec.update_strategy.rolling_update.max_unavailable == 1
    patches = [
        (STRATEGIC, {"spec": {"minReadySeconds": 2}}),
        (MERGE, {"metadata": {"labels": {"patched": "merge"}}}),
        (JSON_PATCH, [{"op": "add", "path": "/metadata/annotations/patched", "value": "json"}]),
    ]
    for content_type, body in patches:
        await asyncio.to_thread(apps.patch_namespaced_daemon_set, "pyds", namespace, body, _content_type=content_type)
    applied = daemon_set("pyds", "busybox:1.36")
    await asyncio.to_thread(
        apps.patch_namespaced_daemon_set,
        "pyds",
        namespace,
        applied,
        field_manager="pytest",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    patched = await asyncio.to_thread(apps.read_namespaced_daemon_set, "pyds", namespace)
    assert patched.spec.min_ready_seconds == 2 and patched.spec.template.spec.containers[0].image == "busybox:1.36"
    assert patched.metadata.labels == {"patched": "merge"} and patched.metadata.annotations["patched"] == "json"
    await wait_rolled_out(api, namespace, "pyds", 3)
    revisions = (await asyncio.to_thread(apps.list_namespaced_controller_revision, namespace)).items
    assert sorted(r.revision for r in revisions) == [1, 2]
    assert {r.metadata.owner_references[0].name for r in revisions} == {"pyds"}
    await asyncio.to_thread(apps.delete_namespaced_daemon_set, "pyds", namespace)
    await watch_until(api, PODS, namespace, lambda pods: not pods_of(pods, "pyds", live=False), what="no pods")
    await watch_until(api, CONTROLLER_REVISIONS, namespace, lambda revs: not revs, what="no revisions")


# -- failed daemon pods ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two simulated nodes whose agents refuse host namespaces: a hostNetwork pod fails there at once."""
    flags = ("--runtime", "fake", "--nodes", "2", "--allow-host-namespaces", "false")
    running = start_cluster(tmp_path_factory.mktemp("strict-nodes"), nodes=flags)
    yield running
    running.stop()


async def test_a_failed_daemon_pod_is_replaced_with_back_off(strict_cluster: Cluster) -> None:
    async with ApiClient(load_kubeconfig(strict_cluster.kubeconfig)) as api:
        await api.create(DAEMONSETS, daemon_set("rejected", pod_spec={"hostNetwork": True}), "default")
        created_at: list[float] = []
        fourth = asyncio.Event()

        async def on_pod(event: str, pod: Obj, _old: Obj | None) -> None:
            if event == "ADDED" and pods_of([pod], "rejected") and target_node(pod) == "vm-0":
                created_at.append(time.monotonic())
                if len(created_at) == 4:
                    fourth.set()

        informer = SharedInformer(api, PODS, namespace="default")
        informer.add_event_handler(on_pod)
        informer.start()
        try:
            await asyncio.wait_for(fourth.wait(), 60)  # four pods in turn on vm-0
        finally:
            await informer.stop()
        # the first failure is replaced at once, then the back-off waits 1 s, then 2 s: replacing at once every
        # time would have made the fourth pod within a fraction of a second of the second
        assert created_at[3] - created_at[1] >= 2.5
        pattern = r"Found failed daemon pod default/rejected-\w+ on node vm-0, will try to kill it"
        await wait_events(
            api,
            "default",
            "rejected",
            lambda events: any(r == "FailedDaemonPod" and re.fullmatch(pattern, m) for _, r, m in events),
            "a FailedDaemonPod event",
        )
