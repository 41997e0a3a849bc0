"""v1 ReplicationControllers in a real `kube-shim up`, through the real kubectl 1.27 and 1.33 and the official
Python client: kube's defaults (selector and labels from the template, one replica), replicas kept, healed and
scaled by the replica set logic, kube's columns, validation messages, and cascading deletion.

The cluster has simulated nodes (tests/workloads.py): the real scheduler binds the pods and the node agents run
them on the fake runtime, so they turn Ready at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from shim.client import ApiClient, ApiException, load_kubeconfig
from shim.machinery.resources import PODS, REPLICATION_CONTROLLERS
from tests.cluster import Cluster
from tests.workloads import IMAGE, cluster_with_fake_nodes, watch_until

Obj = dict[str, Any]

cluster = cluster_with_fake_nodes()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def rc(name: str, replicas: int | None = None) -> Obj:
    """An RC as people write it: no selector (kube defaults it from the template's labels)."""
    spec: Obj = {
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": IMAGE}]}}
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name}, "spec": spec}


def live_pods(pods: list[Obj], app: str) -> list[Obj]:
    return [
        p
        for p in pods
        if (p["metadata"].get("labels") or {}).get("app") == app and not p["metadata"].get("deletionTimestamp")
    ]


def ready_count(pods: list[Obj]) -> int:
    return sum(
        any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or ()
        )
        for p in pods
    )


async def rc_with_ready(api: ApiClient, namespace: str, name: str, replicas: int) -> Obj:
    """Wait until the RC's status reports `replicas` pods, all ready."""

    def settled(rcs: list[Obj]) -> Obj | None:
        for obj in rcs:
            status = obj.get("status") or {}
            if obj["metadata"]["name"] == name and status.get("replicas") == status.get("readyReplicas", 0) == replicas:
                return obj
        return None

    found: Obj = await watch_until(api, REPLICATION_CONTROLLERS, namespace, settled, what=f"{name} at {replicas} ready")
    return found


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_creates_scales_lists_and_deletes_an_rc(
    cluster: Cluster, api: ApiClient, namespace: str, version: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(rc("web", 2)), version=version)
    await rc_with_ready(api, namespace, "web", 2)
    pods = await api.list(PODS, namespace)
    assert len(live_pods(pods["items"], "web")) == 2
    owner = pods["items"][0]["metadata"]["ownerReferences"][0]
    assert (owner["apiVersion"], owner["kind"], owner["name"], owner["controller"]) == (
        "v1",
        "ReplicationController",
        "web",
        True,
    )

    cluster.kubectl("scale", "rc", "web", "--replicas=3", "-n", namespace, version=version)
    await rc_with_ready(api, namespace, "web", 3)
    await watch_until(api, PODS, namespace, lambda p: len(live_pods(p, "web")) == 3, what="three pods")

    table = cluster.kubectl("get", "rc", "-n", namespace, "-o", "wide", version=version).stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    row = table[1].split()
    assert row[:4] == ["web", "3", "3", "3"]
    assert row[5:] == ["c", IMAGE, "app=web"]
    listed = cluster.kubectl("get", "all", "-n", namespace, "-o", "name", version=version).stdout.split()
    assert "replicationcontroller/web" in listed  # category `all`

    cluster.kubectl("delete", "rc", "web", "-n", namespace, version=version)  # background cascading
    await watch_until(api, PODS, namespace, lambda p: not live_pods(p, "web"), what="the pods collected")
    await watch_until(api, REPLICATION_CONTROLLERS, namespace, lambda rcs: not rcs, what="the rc gone")


async def test_python_client_rc_is_defaulted_and_heals_a_deleted_pod(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    created = await asyncio.to_thread(core.create_namespaced_replication_controller, namespace, rc("heal"))
    # SetDefaults_ReplicationController: selector and the RC's labels from the template, one replica
    assert created.spec.selector == {"app": "heal"}
    assert created.metadata.labels == {"app": "heal"}
    assert created.spec.replicas == 1
    await rc_with_ready(api, namespace, "heal", 1)
    [pod] = live_pods((await api.list(PODS, namespace))["items"], "heal")

    await asyncio.to_thread(core.delete_namespaced_pod, pod["metadata"]["name"], namespace)
    [replacement] = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: [p for p in live_pods(pods, "heal") if p["metadata"]["uid"] != pod["metadata"]["uid"]],
        what="a replacement pod",
    )
    assert replacement["metadata"]["name"].startswith("heal-")
    await rc_with_ready(api, namespace, "heal", 1)

    scale = await asyncio.to_thread(core.read_namespaced_replication_controller_scale, "heal", namespace)
    assert (scale.spec.replicas, scale.status.selector) == (1, "app=heal")  # the label map as a selector string
    patch = {"spec": {"replicas": 0}}
    await asyncio.to_thread(core.patch_namespaced_replication_controller_scale, "heal", namespace, patch)
    await watch_until(api, PODS, namespace, lambda pods: not live_pods(pods, "heal"), what="scaled to zero")
    await rc_with_ready(api, namespace, "heal", 0)
    scale = await asyncio.to_thread(core.read_namespaced_replication_controller_scale, "heal", namespace)
    assert (scale.spec.replicas, scale.status.replicas) == (None, 0)


async def test_an_orphan_pod_matching_the_selector_is_adopted(api: ApiClient, namespace: str) -> None:
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stray", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": IMAGE}]},
    }
    await api.create(PODS, orphan, namespace)
    await api.create(REPLICATION_CONTROLLERS, rc("adopt", 1), namespace)
    await rc_with_ready(api, namespace, "adopt", 1)
    [pod] = live_pods((await api.list(PODS, namespace))["items"], "adopt")
    assert pod["metadata"]["name"] == "stray"  # adopted, no second pod made
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"selector": {"app": "other"}},
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"bad"}: '
            "`selector` does not match template `labels`",
        ),
        ({"template": None}, "spec.template: Required value"),
        ({"replicas": -1}, "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        (
            {
                "template": {
                    "metadata": {"labels": {"app": "bad"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE}]},
                }
            },
            'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"',
        ),
    ],
)
async def test_invalid_rcs_are_refused_with_kubes_messages(
    api: ApiClient, namespace: str, change: Obj, message: str
) -> None:
    body = rc("bad")
    body["spec"].update(change)
    with pytest.raises(ApiException) as refused:
        await api.create(REPLICATION_CONTROLLERS, body, namespace)
    assert refused.value.status == 422
    assert message in refused.value.body.get("message", ""), refused.value.body
