"""Persistent storage in a real `kube-shim up` on simulated nodes: PersistentVolumes, PersistentVolumeClaims and
StorageClasses through the real kubectl 1.27/1.33 and the API, the binder, the protection finalizers, the
default `local-path` class and its provisioner, the scheduler's VolumeBinding and the node agent's claim mounts.

Static volumes of each test carry a storage class of its own (the test's namespace), so the tests sharing the
cluster never bind each other's volumes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from shim.apiserver.kinds.storage import pv_cells, pvc_cells, storage_class_cells
from shim.client import ApiClient, ApiException, Resource, load_kubeconfig
from shim.machinery.resources import (
    EVENTS,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
)
from tests.cluster import KUBECTL_VERSIONS, Cluster
from tests.workloads import cluster_with_fake_nodes, watch_until

Obj = dict[str, Any]

cluster = cluster_with_fake_nodes(2)


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def volume(name: str, size: str, storage_class: str, **spec: Any) -> Obj:
    """A static hostPath volume (never mounted unless a test says so)."""
    body: Obj = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": f"/tmp/kube-shim-test-volumes/{name}"},
        "storageClassName": storage_class,
    }
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": {**body, **spec}}


def claim(name: str, size: str, storage_class: str | None, **spec: Any) -> Obj:
    body: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}
    if storage_class is not None:
        body["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": body}


def pod_using(name: str, claim_name: str, read_only: bool = False) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name, "readOnly": read_only}}],
        },
    }


async def in_phase(api: ApiClient, resource: Resource, namespace: str, name: str, phase: str) -> Obj:
    """The claim or volume once its status.phase is `phase`."""
    return await watch_until(
        api,
        resource,
        namespace,
        lambda objects: next(
            (o for o in objects if o["metadata"]["name"] == name and o.get("status", {}).get("phase") == phase), None
        ),
        what=f"{resource.plural} {name} {phase}",
    )


async def volume_gone(api: ApiClient, name: str) -> bool:
    return await watch_until(
        api, PERSISTENT_VOLUMES, "", lambda volumes: all(v["metadata"]["name"] != name for v in volumes) or None
    )


async def event(api: ApiClient, namespace: str, reason: str, about: str) -> Obj:
    return await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: next(
            (e for e in events if e["reason"] == reason and e["involvedObject"]["name"] == about), None
        ),
        what=f"a {reason} event about {about}",
    )


# -- binding ---------------------------------------------------------------------------------------------------


async def test_a_claim_binds_to_the_smallest_volume_that_satisfies_it(api: ApiClient, namespace: str) -> None:
    klass = namespace
    await api.create(PERSISTENT_VOLUMES, volume(f"{namespace}-1g", "1Gi", klass))
    await api.create(PERSISTENT_VOLUMES, volume(f"{namespace}-5g", "5Gi", klass))
    await api.create(PERSISTENT_VOLUMES, volume(f"{namespace}-3g-rox", "3Gi", klass, accessModes=["ReadOnlyMany"]))
    await api.create(PERSISTENT_VOLUMES, volume(f"{namespace}-20g", "20Gi", klass))
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("data", "2Gi", klass), namespace)

    bound = await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "data", "Bound")
    assert bound["spec"]["volumeName"] == f"{namespace}-5g"
    assert bound["status"]["capacity"] == {"storage": "5Gi"}
    assert bound["status"]["accessModes"] == ["ReadWriteOnce"]
    annotations = bound["metadata"]["annotations"]
    assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
    pv = await in_phase(api, PERSISTENT_VOLUMES, "", f"{namespace}-5g", "Bound")
    ref = pv["spec"]["claimRef"]
    assert (ref["namespace"], ref["name"], ref["uid"]) == (namespace, "data", bound["metadata"]["uid"])
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert (await in_phase(api, PERSISTENT_VOLUMES, "", f"{namespace}-1g", "Available"))["spec"].get("claimRef") is None


async def test_a_claim_takes_the_volume_it_names_or_its_selector_picks(api: ApiClient, namespace: str) -> None:
    klass = namespace
    await api.create(PERSISTENT_VOLUMES, volume(f"{namespace}-a", "1Gi", klass))
    labelled = volume(f"{namespace}-b", "1Gi", klass)
    labelled["metadata"]["labels"] = {"tier": "gold"}
    await api.create(PERSISTENT_VOLUMES, labelled)
    await api.create(PERSISTENT_VOLUMES, volume(f"{namespace}-c", "1Gi", klass))
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("named", "1Gi", klass, volumeName=f"{namespace}-c"), namespace)
    selector = {"matchLabels": {"tier": "gold"}}
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("gold", "1Gi", klass, selector=selector), namespace)

    named = await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "named", "Bound")
    gold = await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "gold", "Bound")
    assert named["spec"]["volumeName"] == f"{namespace}-c"
    assert "pv.kubernetes.io/bound-by-controller" not in named["metadata"]["annotations"]  # the user chose it
    assert gold["spec"]["volumeName"] == f"{namespace}-b"


async def test_a_claim_no_volume_satisfies_stays_pending_with_kubes_event(api: ApiClient, namespace: str) -> None:
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("none", "1Gi", ""), namespace)
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("ghost", "1Gi", f"{namespace}-ghost"), namespace)

    found = await event(api, namespace, "FailedBinding", "none")
    assert found["message"] == "no persistent volumes available for this claim and no storage class is set"
    ghost = await event(api, namespace, "FailedBinding", "ghost")
    assert ghost["message"] == f'storageclass.storage.k8s.io "{namespace}-ghost" not found'
    assert (await api.get(PERSISTENT_VOLUME_CLAIMS, "none", namespace))["status"]["phase"] == "Pending"


async def test_a_released_volume_is_kept_or_failed_by_its_reclaim_policy(api: ApiClient, namespace: str) -> None:
    klass = namespace
    kept, deleted = f"{namespace}-retain", f"{namespace}-delete"
    await api.create(PERSISTENT_VOLUMES, volume(kept, "1Gi", klass))
    await api.create(PERSISTENT_VOLUMES, volume(deleted, "1Gi", klass, persistentVolumeReclaimPolicy="Delete"))
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("one", "1Gi", klass, volumeName=kept), namespace)
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("two", "1Gi", klass, volumeName=deleted), namespace)
    await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "one", "Bound")
    await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "two", "Bound")

    await api.delete(PERSISTENT_VOLUME_CLAIMS, "one", namespace)
    await api.delete(PERSISTENT_VOLUME_CLAIMS, "two", namespace)
    released = await in_phase(api, PERSISTENT_VOLUMES, "", kept, "Released")
    assert released["spec"]["claimRef"]["name"] == "one"  # Retain: the data and the reference stay
    failed = await in_phase(api, PERSISTENT_VOLUMES, "", deleted, "Failed")
    message = f'error getting deleter volume plugin for volume "{deleted}": no deletable volume plugin matched'
    assert failed["status"]["message"] == message
    assert (await event(api, "default", "VolumeFailedDelete", deleted))["type"] == "Warning"


async def test_a_bound_claim_whose_volume_vanishes_is_lost(api: ApiClient, namespace: str) -> None:
    klass = namespace
    await api.create(PERSISTENT_VOLUMES, volume(klass, "1Gi", klass))
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("orphaned", "1Gi", klass), namespace)
    await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "orphaned", "Bound")

    # an administrator forces the volume out from under its claim
    await api.patch(PERSISTENT_VOLUMES, klass, {"metadata": {"finalizers": None}})
    await api.delete(PERSISTENT_VOLUMES, klass)
    await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "orphaned", "Lost")
    lost = await event(api, namespace, "ClaimLost", "orphaned")
    assert (lost["type"], lost["message"]) == (
        "Warning",
        "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
    )


# -- protection ------------------------------------------------------------------------------------------------


async def test_a_claim_in_use_stays_terminating_until_its_pod_is_gone(
    api: ApiClient, cluster: Cluster, namespace: str
) -> None:
    created = await api.create(PERSISTENT_VOLUME_CLAIMS, claim("used", "1Gi", None), namespace)
    assert created["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    await api.create(PODS, pod_using("user", "used"), namespace)
    await watch_until(
        api, PODS, namespace, lambda pods: any(p.get("status", {}).get("phase") == "Running" for p in pods)
    )
    name = (await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "used", "Bound"))["spec"]["volumeName"]
    directory = Path((await api.get(PERSISTENT_VOLUMES, name))["spec"]["hostPath"]["path"])

    await api.delete(PERSISTENT_VOLUME_CLAIMS, "used", namespace)
    await api.delete(PERSISTENT_VOLUMES, name)
    row = cluster.kubectl("get", "pvc", "used", "-n", namespace, "--no-headers").stdout.split()
    assert row[:2] == ["used", "Terminating"]
    pv_row = cluster.kubectl("get", "pv", name, "--no-headers", version="1.27").stdout.split()
    assert pv_row[4] == "Terminating"
    held = await api.get(PERSISTENT_VOLUME_CLAIMS, "used", namespace)
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert directory.is_dir()

    await api.delete(PODS, "user", namespace, gracePeriodSeconds=0)
    await watch_until(api, PERSISTENT_VOLUME_CLAIMS, namespace, lambda claims: not claims or None, what="claim gone")
    await volume_gone(api, name)  # released: no longer protected, and its provisioner removed its directory
    assert not directory.exists()


# -- the default class and the local-path provisioner -------------------------------------------------------


async def test_a_claim_without_a_class_gets_a_local_path_volume_on_its_pods_node(
    api: ApiClient, cluster: Cluster, namespace: str
) -> None:
    default = await api.get(STORAGE_CLASSES, "local-path")
    assert default["provisioner"] == "rancher.io/local-path"
    assert default["volumeBindingMode"] == "WaitForFirstConsumer"
    created = await api.create(PERSISTENT_VOLUME_CLAIMS, claim("data", "1Gi", None), namespace)
    assert created["spec"]["storageClassName"] == "local-path"  # DefaultStorageClass admission
    waiting = await event(api, namespace, "WaitForFirstConsumer", "data")
    assert waiting["message"] == "waiting for first consumer to be created before binding"

    await api.create(PODS, pod_using("app", "data"), namespace)
    running = await watch_until(
        api, PODS, namespace, lambda pods: next((p for p in pods if p["status"].get("phase") == "Running"), None)
    )
    node = running["spec"]["nodeName"]
    bound = await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "data", "Bound")
    assert bound["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    pv = await api.get(PERSISTENT_VOLUMES, bound["spec"]["volumeName"])
    assert pv["metadata"]["name"] == f"pvc-{bound['metadata']['uid']}"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]
    directory = Path(pv["spec"]["hostPath"]["path"])
    assert directory.parent == cluster.data_dir / "state" / "nodes" / node / "storage"
    assert directory.is_dir()
    assert (await event(api, namespace, "ProvisioningSucceeded", "data"))["message"] == (
        f"Successfully provisioned volume {pv['metadata']['name']}"
    )

    await api.delete(PODS, "app", namespace, gracePeriodSeconds=0)
    await api.delete(PERSISTENT_VOLUME_CLAIMS, "data", namespace)
    await volume_gone(api, pv["metadata"]["name"])
    assert not directory.exists()


async def test_a_claim_made_before_any_default_class_gets_the_one_made_later(api: ApiClient, namespace: str) -> None:
    default = "storageclass.kubernetes.io/is-default-class"
    later = f"{namespace}-later"
    await api.patch(STORAGE_CLASSES, "local-path", {"metadata": {"annotations": {default: "false"}}})
    try:
        created = await api.create(PERSISTENT_VOLUME_CLAIMS, claim("early", "1Gi", None), namespace)
        assert "storageClassName" not in created["spec"]  # no default class to admit it into
        await api.create(
            STORAGE_CLASSES,
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": later, "annotations": {default: "true"}},
                "provisioner": "example.com/nobody",
            },
        )
        await watch_until(
            api,
            PERSISTENT_VOLUME_CLAIMS,
            namespace,
            lambda claims: any(c["spec"].get("storageClassName") == later for c in claims),
            what="the default class assigned",
        )
        waiting = await event(api, namespace, "ExternalProvisioning", "early")
        assert "the external provisioner 'example.com/nobody'" in waiting["message"]
    finally:
        await api.delete(STORAGE_CLASSES, later)
        await api.patch(STORAGE_CLASSES, "local-path", {"metadata": {"annotations": {default: "true"}}})


# -- the scheduler and the node agent -----------------------------------------------------------------------


async def test_pods_sharing_a_waiting_claim_all_go_to_the_node_its_volume_is_made_on(
    api: ApiClient, namespace: str
) -> None:
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("shared", "1Gi", None), namespace)
    await asyncio.gather(*(api.create(PODS, pod_using(f"sharer-{i}", "shared"), namespace) for i in range(4)))
    running = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: pods if sum(p["status"].get("phase") == "Running" for p in pods) == 4 else None,
        what="four pods running",
    )
    assert len({p["spec"]["nodeName"] for p in running}) == 1  # spread out, three would find no volume
    bound = await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "shared", "Bound")
    assert bound["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == running[0]["spec"]["nodeName"]


async def test_a_read_write_once_pod_claim_serves_one_pod_at_a_time(api: ApiClient, namespace: str) -> None:
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("solo", "1Gi", None, accessModes=["ReadWriteOncePod"]), namespace)
    await api.create(PODS, pod_using("first", "solo"), namespace)
    await watch_until(api, PODS, namespace, lambda pods: pods[0]["status"].get("phase") == "Running", what="first")
    await api.create(PODS, pod_using("second", "solo"), namespace)
    failed = await event(api, namespace, "FailedScheduling", "second")
    assert failed["message"] == (
        "0/2 nodes are available: node has pod using PersistentVolumeClaim with the same name and "
        "ReadWriteOncePod access mode. preemption: 0/2 nodes are available: 2 Preemption is not helpful for "
        "scheduling."
    )

    await api.delete(PODS, "first", namespace, gracePeriodSeconds=0)
    await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"] == ["second"],
        what="the second pod running alone",
    )


async def test_a_pod_whose_claim_is_missing_waits_and_starts_once_it_exists(api: ApiClient, namespace: str) -> None:
    await api.create(PODS, pod_using("waiter", "later"), namespace)
    failed = await event(api, namespace, "FailedScheduling", "waiter")
    assert failed["message"] == (  # a PreFilter rejection: said once, not counted per node
        '0/2 nodes are available: persistentvolumeclaim "later" not found. '
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )

    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("later", "1Gi", None), namespace)
    await watch_until(
        api, PODS, namespace, lambda pods: any(p["status"].get("phase") == "Running" for p in pods), what="running"
    )
    await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "later", "Bound")


async def test_a_waiting_claim_of_pre_made_local_volumes_binds_on_the_node_its_pod_is_placed_on(
    api: ApiClient, namespace: str
) -> None:
    nodes = sorted(n["metadata"]["name"] for n in (await api.list(NODES))["items"])
    klass = f"{namespace}-local"
    await api.create(
        STORAGE_CLASSES,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": klass},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        },
    )
    on_last = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [nodes[-1]]}
    ]}]}}  # fmt: skip
    local = {"path": "/mnt/disks/one"}
    await api.create(PERSISTENT_VOLUMES, volume(klass, "1Gi", klass, hostPath=None, local=local, nodeAffinity=on_last))
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("local", "1Gi", klass), namespace)
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("too-big", "5Gi", klass), namespace)
    await event(api, namespace, "WaitForFirstConsumer", "local")

    await api.create(PODS, pod_using("placed", "local"), namespace)
    bound = await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "local", "Bound")
    assert bound["spec"]["volumeName"] == klass
    assert bound["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == nodes[-1]
    assert (await api.get(PODS, "placed", namespace))["spec"]["nodeName"] == nodes[-1]

    await api.create(PODS, pod_using("homeless", "too-big"), namespace)
    failed = await event(api, namespace, "FailedScheduling", "homeless")
    assert f"{len(nodes)} node(s) didn't find available persistent volumes to bind" in failed["message"]


async def test_an_unbound_immediate_claim_keeps_its_pod_pending(api: ApiClient, namespace: str) -> None:
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("nothing", "1Gi", ""), namespace)
    await api.create(PODS, pod_using("stuck", "nothing"), namespace)
    failed = await event(api, namespace, "FailedScheduling", "stuck")
    assert failed["message"] == (
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )
    assert not (await api.get(PODS, "stuck", namespace))["spec"].get("nodeName")


async def test_a_pod_placed_by_hand_waits_on_its_node_for_its_claim(api: ApiClient, namespace: str) -> None:
    node = (await api.list(NODES))["items"][0]["metadata"]["name"]
    placed = pod_using("by-hand", "absent")
    placed["spec"]["nodeName"] = node  # no scheduler: the node agent is the one to wait
    await api.create(PODS, placed, namespace)
    waiting = await event(api, namespace, "FailedMount", "by-hand")
    assert waiting["message"] == (
        "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process "
        f"volumes=[data]: error processing PVC {namespace}/absent: failed to fetch PVC from API server: "
        'persistentvolumeclaims "absent" not found'
    )


async def test_a_host_path_volume_outside_the_allowed_paths_is_not_mounted(
    api: ApiClient, cluster: Cluster, namespace: str
) -> None:
    klass = namespace
    name = f"{namespace}-etc"
    await api.create(PERSISTENT_VOLUMES, volume(name, "1Gi", klass, hostPath={"path": "/etc"}))
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("etc", "1Gi", klass), namespace)
    await in_phase(api, PERSISTENT_VOLUME_CLAIMS, namespace, "etc", "Bound")
    await api.create(PODS, pod_using("nosy", "etc"), namespace)

    refused = await event(api, namespace, "FailedMount", "nosy")
    node = (await api.get(PODS, "nosy", namespace))["spec"]["nodeName"]
    storage = cluster.data_dir / "state" / "nodes" / node / "storage"
    assert refused["message"] == (
        "MountVolume.SetUp failed for volume \"data\" : hostPath '/etc' is not under a path this node allows "
        f"(allowed: {storage})"  # no --allowed-host-path: only the node's own local-path volumes
    )
    assert (await api.get(PODS, "nosy", namespace))["status"]["phase"] == "Pending"


# -- the API: validation, immutability, columns ---------------------------------------------------------------


def test_kubectl_prints_kubes_columns_for_volumes_claims_and_classes(cluster: Cluster, namespace: str) -> None:
    manifest = f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {namespace}-cols}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce, ReadOnlyMany]
  hostPath: {{path: /tmp/kube-shim-test-volumes/cols}}
  storageClassName: {namespace}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: cols, namespace: {namespace}}}
spec:
  storageClassName: {namespace}
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 512Mi}}}}
"""
    cluster.kubectl("apply", "-f", "-", stdin=manifest)
    cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/cols", "-n", namespace, "--timeout=30s")
    for version in ("1.27", "1.33"):
        pv = cluster.kubectl("get", "pv", f"{namespace}-cols", version=version).stdout.splitlines()
        assert pv[0].split() == [
            "NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM", "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS", "REASON", "AGE",
        ]  # fmt: skip
        assert pv[1].split()[:8] == [
            f"{namespace}-cols",
            "1Gi",
            "RWO,ROX",
            "Retain",
            "Bound",
            f"{namespace}/cols",
            namespace,
            "<unset>",
        ]
        pvc = cluster.kubectl("get", "pvc", "-n", namespace, version=version).stdout.splitlines()
        assert pvc[0].split() == [
            "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"
        ]  # fmt: skip
        assert pvc[1].split()[:7] == ["cols", "Bound", f"{namespace}-cols", "1Gi", "RWO,ROX", namespace, "<unset>"]
        wide = cluster.kubectl("get", "pvc", "-n", namespace, "-o", "wide", version=version).stdout.splitlines()
        assert wide[0].split()[-1] == "VOLUMEMODE" and wide[1].split()[-1] == "Filesystem"
        sc = cluster.kubectl("get", "sc", "local-path", version=version).stdout.splitlines()
        assert sc[0].split() == [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ]
        assert sc[1].split()[:6] == [
            "local-path", "(default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", "false"
        ]  # fmt: skip
    short = cluster.kubectl("get", "pv,pvc,sc", "-n", namespace, "-o", "name").stdout.split()
    assert "persistentvolumeclaim/cols" in short and "storageclass.storage.k8s.io/local-path" in short


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_every_kubectl_creates_watches_patches_and_deletes_storage_objects(
    cluster: Cluster, namespace: str, version: str
) -> None:
    tag = f"{namespace}-{version.replace('.', '')}"

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return cluster.kubectl(*args, version=version, stdin=stdin).stdout

    kubectl("create", "-f", "-", stdin=json.dumps(volume(tag, "1Gi", tag)))
    kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(claim(tag, "1Gi", tag)))
    kubectl("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": tag},
        "provisioner": "example.com/kubectl",
    }))  # fmt: skip
    kubectl("wait", "--for=jsonpath={.status.phase}=Bound", f"pvc/{tag}", "-n", namespace, "--timeout=30s")
    kubectl("patch", "pvc", tag, "-n", namespace, "--type=strategic", "-p", '{"metadata":{"labels":{"s":"1"}}}')
    kubectl("patch", "sc", tag, "--type=merge", "-p", '{"allowVolumeExpansion":true}')
    kubectl("patch", "pv", tag, "--type=json", "-p", '[{"op":"add","path":"/metadata/labels","value":{"j":"1"}}]')
    applied = volume(tag, "2Gi", tag)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(applied))
    pv = json.loads(kubectl("get", "pv", tag, "-o", "json"))
    assert (pv["metadata"]["labels"], pv["spec"]["capacity"]) == ({"j": "1"}, {"storage": "2Gi"})
    assert json.loads(kubectl("get", "pvc", tag, "-n", namespace, "-o", "json"))["metadata"]["labels"] == {"s": "1"}
    assert json.loads(kubectl("get", "sc", tag, "-o", "json"))["allowVolumeExpansion"] is True

    # kubectl delete waits for each to be gone: the protection finalizers go once nothing holds them
    assert kubectl("delete", "pvc", tag, "-n", namespace) == f'persistentvolumeclaim "{tag}" deleted\n'
    kubectl("wait", "--for=jsonpath={.status.phase}=Released", f"pv/{tag}", "--timeout=30s")
    assert kubectl("delete", "pv", tag) == f'persistentvolume "{tag}" deleted\n'
    assert kubectl("delete", "sc", tag) == f'storageclass.storage.k8s.io "{tag}" deleted\n'


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            "kind: PersistentVolume\nmetadata: {name: bad-pv}\nspec: {accessModes: [ReadWriteOnce]}",
            'The PersistentVolume "bad-pv" is invalid: \n'
            "* spec.capacity: Required value\n"
            '* spec.capacity: Unsupported value: map[]: supported values: "storage"\n'
            "* spec: Required value: must specify a volume type",
        ),
        (
            "kind: PersistentVolume\nmetadata: {name: bad-local}\n"
            "spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], local: {path: /mnt/disk}}",
            'The PersistentVolume "bad-local" is invalid: spec.nodeAffinity: Required value: Local volume requires '
            "node affinity",
        ),
        (
            "kind: PersistentVolumeClaim\nmetadata: {name: bad-claim}\nspec: {resources: {requests: {storage: 0}}}",
            'The PersistentVolumeClaim "bad-claim" is invalid: \n'
            "* spec.accessModes: Required value: at least 1 access mode is required\n"
            '* spec.resources[storage]: Invalid value: "0": must be greater than zero',
        ),
        (
            "kind: StorageClass\napiVersion: storage.k8s.io/v1\nmetadata: {name: bad-class}\n"
            "provisioner: example.com/x\nreclaimPolicy: Recycle",
            'The StorageClass "bad-class" is invalid: reclaimPolicy: Unsupported value: "Recycle": supported values: '
            '"Delete", "Retain"',
        ),
    ],
    ids=["pv-no-capacity-no-source", "local-without-affinity", "claim-no-modes-zero-size", "class-recycle"],
)
def test_invalid_objects_get_kubes_messages(cluster: Cluster, manifest: str, message: str) -> None:
    body = manifest if manifest.startswith("kind: StorageClass") else "apiVersion: v1\n" + manifest
    result = cluster.kubectl("create", "-f", "-", stdin=body, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == message


async def test_a_claims_spec_and_a_classs_provisioner_are_immutable(api: ApiClient, namespace: str) -> None:
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("fixed", "1Gi", f"{namespace}-fixed"), namespace)
    with pytest.raises(ApiException) as refused:
        await api.patch(PERSISTENT_VOLUME_CLAIMS, "fixed", {"spec": {"accessModes": ["ReadWriteMany"]}}, namespace)
    assert refused.value.status == 422
    assert refused.value.body["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "field": "spec",
            "message": "Forbidden: spec is immutable after creation except resources.requests and "
            "volumeAttributesClassName for bound claims",
        }
    ]
    body = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": f"{namespace}-sc"}}
    await api.create(STORAGE_CLASSES, {**body, "provisioner": "example.com/a"})
    with pytest.raises(ApiException) as refused:
        await api.patch(STORAGE_CLASSES, f"{namespace}-sc", {"provisioner": "example.com/b"})
    assert refused.value.body["message"] == (
        f'StorageClass.storage.k8s.io "{namespace}-sc" is invalid: provisioner: Forbidden: updates to provisioner '
        "are forbidden."
    )


def test_the_official_python_client_reads_and_writes_storage_in_its_models(cluster: Cluster, namespace: str) -> None:
    api_client = k8s_config.new_client_from_config(str(cluster.kubeconfig))
    core, storage = k8s.CoreV1Api(api_client), k8s.StorageV1Api(api_client)
    body = k8s.V1PersistentVolumeClaim(
        metadata=k8s.V1ObjectMeta(name="py"),
        spec=k8s.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=k8s.V1VolumeResourceRequirements(requests={"storage": "1G"})
        ),
    )
    created = core.create_namespaced_persistent_volume_claim(namespace, body)
    assert (created.spec.storage_class_name, created.status.phase) == ("local-path", "Pending")
    assert created.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    listed = core.list_namespaced_persistent_volume_claim(namespace)
    assert [c.spec.resources.requests["storage"] for c in listed.items] == ["1G"]
    default = storage.read_storage_class("local-path")
    assert (default.provisioner, default.volume_binding_mode, default.reclaim_policy) == (
        "rancher.io/local-path",
        "WaitForFirstConsumer",
        "Delete",
    )
    assert default.metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"
    deleted = core.delete_namespaced_persistent_volume_claim("py", namespace)
    assert deleted.metadata.deletion_timestamp is not None  # the store answers with the object, as kube's


def test_printers_follow_kubes_for_unset_and_deleted_objects() -> None:
    """printPersistentVolume/Claim and printStorageClass on objects the API never filled in."""
    deleted_pv = {"metadata": {"name": "v", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Bound"}}
    assert pv_cells(deleted_pv, 0)[1:9] == ["0", "", "", "Terminating", "", "", "<unset>", ""]
    pending = {"metadata": {"name": "c"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}, "status": {}}
    assert pvc_cells(pending, 0)[1:5] == ["", "", "", ""]  # no capacity before the claim is bound
    beta_default = {
        "metadata": {"name": "s", "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}}
    }
    assert storage_class_cells(beta_default, 0)[:5] == ["s (default)", "", "Delete", "Immediate", False]
