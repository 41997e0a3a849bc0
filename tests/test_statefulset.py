"""apps/v1 StatefulSets in a real `kube-shim up` with simulated nodes (the fake runtime: pods run and turn Ready
at once), driven through the real kubectl 1.27 and 1.33: stable names, ordered start and scale-down, claims
per ordinal kept across pod replacement, rolling updates with a partition, revisions and rollbacks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shim.client import ApiClient, SharedInformer, load_kubeconfig
from shim.controllers.podutil import parse_time
from shim.machinery.resources import EVENTS, PERSISTENT_VOLUME_CLAIMS, PODS, STATEFULSETS
from tests.cluster import Cluster
from tests.workloads import IMAGE, cluster_with_fake_nodes, watch_until

Obj = dict[str, Any]
TIMEOUT = 60.0

cluster = cluster_with_fake_nodes(nodes=2)


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def stateful_set(name: str, replicas: int, image: str = IMAGE, **spec: Any) -> Obj:
    """StatefulSet `name` behind headless Service `name`, one container, one claim template `data`."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "app", "image": image, "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
                }
            ],
            **spec,
        },
    }


def headless_service(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"port": 80}]},
    }


def new_namespace(cluster: Cluster, name: str) -> str:
    cluster.kubectl("create", "namespace", name)
    return name


def apply(cluster: Cluster, namespace: str, *objects: Obj, version: str = "1.33") -> None:
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=listed, version=version)


def ready_names(pods: list[Obj]) -> list[str]:
    """Names of the live pods whose Ready condition is True, sorted."""
    return sorted(
        p["metadata"]["name"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c.get("type") == "Ready" and c.get("status") == "True" for c in p["status"].get("conditions") or ())
    )


def live_names(pods: list[Obj]) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


class PodLog:
    """Every pod event of a namespace in the order the API wrote them: (event, name, ready, deleting)."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self.entries: list[tuple[str, str, bool, bool]] = []
        self.informer = SharedInformer(client, PODS, namespace=namespace)
        self.informer.add_event_handler(self._record)

        self._changed = asyncio.Condition()

    async def _record(self, event: str, pod: Obj, old: Obj | None) -> None:
        ready = bool(ready_names([pod])) if event != "DELETED" else False
        self.entries.append((event, pod["metadata"]["name"], ready, bool(pod["metadata"].get("deletionTimestamp"))))
        async with self._changed:
            self._changed.notify_all()

    async def until_deleted(self, *names: str) -> None:
        """Wait until this log saw each pod of `names` DELETED (its own watch may trail another one)."""

        def done() -> bool:
            return set(names) <= {name for event, name, _, _ in self.entries if event == "DELETED"}

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(done), TIMEOUT)

    def first(self, name: str, *, ready: bool | None = None, deleting: bool | None = None) -> int:
        """Index of the first entry of pod `name` (that is ready / deleting when asked)."""
        for index, (event, pod, is_ready, is_deleting) in enumerate(self.entries):
            if pod != name:
                continue
            if ready is not None and is_ready != ready:
                continue
            if deleting is not None and (is_deleting or event == "DELETED") != deleting:
                continue
            return index
        raise AssertionError(f"no entry for {name} (ready={ready}, deleting={deleting}) in {self.entries}")


async def test_ordered_start_identity_claims_and_columns(cluster: Cluster, api: ApiClient) -> None:
    """kubectl 1.27 creates a set of 3: web-0, web-1, web-2 start one after another, each once the previous is
    Ready, with hostname/subdomain, identity labels and their own claim; kubectl prints NAME READY AGE."""
    namespace = new_namespace(cluster, "sts-order")
    log = PodLog(api, namespace)
    log.informer.start()
    try:
        await asyncio.wait_for(log.informer.synced.wait(), TIMEOUT)
        apply(cluster, namespace, headless_service("web"), stateful_set("web", 3), version="1.27")
        await watch_until(
            api, PODS, namespace, lambda pods: ready_names(pods) == ["web-0", "web-1", "web-2"], TIMEOUT, "3 ready"
        )
    finally:
        await log.informer.stop()
    assert log.first("web-1") > log.first("web-0", ready=True)
    assert log.first("web-2") > log.first("web-1", ready=True)
    pod = await api.get(PODS, "web-1", namespace)
    assert pod["spec"]["hostname"] == "web-1"
    assert pod["spec"]["subdomain"] == "web"
    labels = pod["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert labels["apps.kubernetes.io/pod-index"] == "1"
    assert labels["controller-revision-hash"].startswith("web-")
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}} in pod["spec"]["volumes"]
    claims = (await api.list(PERSISTENT_VOLUME_CLAIMS, namespace))["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-web-0", "data-web-1", "data-web-2"]
    sts = await watch_until(
        api,
        STATEFULSETS,
        namespace,
        lambda sets: next((s for s in sets if (s.get("status") or {}).get("readyReplicas") == 3), None),
        TIMEOUT,
        "status readyReplicas 3",
    )
    assert sts is not None
    status = sts["status"]
    assert status["replicas"] == status["updatedReplicas"] == status["currentReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"] == labels["controller-revision-hash"]
    assert status["observedGeneration"] == sts["metadata"]["generation"]
    for version in ("1.27", "1.33"):
        table = cluster.kubectl("get", "sts", "-n", namespace, version=version).stdout.split("\n")
        assert table[0].split() == ["NAME", "READY", "AGE"]
        assert table[1].split()[:2] == ["web", "3/3"]
        wide = cluster.kubectl("get", "statefulset", "web", "-o", "wide", "-n", namespace, version=version).stdout
        assert wide.split("\n")[0].split() == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
        assert wide.split("\n")[1].split()[3:] == ["app", IMAGE]
    wanted = {
        ("SuccessfulCreate", "create Pod web-2 in StatefulSet web successful"),
        ("SuccessfulCreate", "create Claim data-web-2 Pod web-2 in StatefulSet web success"),
    }
    await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: wanted <= {(e["reason"], e["message"]) for e in events},
        TIMEOUT,
        "the create events",
    )


async def test_scale_down_in_reverse_and_back_up_keeps_claims(cluster: Cluster, api: ApiClient) -> None:
    """`kubectl scale sts` to 1 removes web-2 before web-1; claims stay; scaling back to 3 reuses them."""
    namespace = new_namespace(cluster, "sts-scale")
    apply(cluster, namespace, headless_service("db"), stateful_set("db", 3))
    await watch_until(api, PODS, namespace, lambda pods: len(ready_names(pods)) == 3, TIMEOUT, "3 ready")
    log = PodLog(api, namespace)
    log.informer.start()
    try:
        await asyncio.wait_for(log.informer.synced.wait(), TIMEOUT)
        cluster.kubectl("scale", "sts", "db", "--replicas=1", "-n", namespace, version="1.27")
        await log.until_deleted("db-1", "db-2")
    finally:
        await log.informer.stop()
    assert log.first("db-1", deleting=True) > log.first("db-2", deleting=True)
    deleted = ("SuccessfulDelete", "delete Pod db-2 in StatefulSet db successful")
    await watch_until(
        api, EVENTS, namespace, lambda events: deleted in {(e["reason"], e["message"]) for e in events}, TIMEOUT
    )
    claims = (await api.list(PERSISTENT_VOLUME_CLAIMS, namespace))["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1", "data-db-2"]
    uids = {c["metadata"]["name"]: c["metadata"]["uid"] for c in claims}
    cluster.kubectl("scale", "statefulset", "db", "--replicas=3", "-n", namespace, version="1.33")
    await watch_until(api, PODS, namespace, lambda pods: len(ready_names(pods)) == 3, TIMEOUT, "3 ready again")
    claims = (await api.list(PERSISTENT_VOLUME_CLAIMS, namespace))["items"]
    assert {c["metadata"]["name"]: c["metadata"]["uid"] for c in claims} == uids


async def test_deleted_pod_comes_back_with_its_claim(cluster: Cluster, api: ApiClient) -> None:
    """Deleting web-1 brings back a new web-1 mounting the same data-web-1 claim."""
    namespace = new_namespace(cluster, "sts-heal")
    apply(cluster, namespace, headless_service("web"), stateful_set("web", 2))
    await watch_until(api, PODS, namespace, lambda pods: len(ready_names(pods)) == 2, TIMEOUT, "2 ready")
    before = await api.get(PODS, "web-1", namespace)
    claim = await api.get(PERSISTENT_VOLUME_CLAIMS, "data-web-1", namespace)
    cluster.kubectl("delete", "pod", "web-1", "-n", namespace, "--wait=false", version="1.27")

    def replaced(pods: list[Obj]) -> Obj | None:
        for pod in pods:
            if pod["metadata"]["name"] == "web-1" and pod["metadata"]["uid"] != before["metadata"]["uid"]:
                return pod if ready_names([pod]) else None
        return None

    after = await watch_until(api, PODS, namespace, replaced, TIMEOUT, "a new ready web-1")
    assert after is not None
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}} in after["spec"]["volumes"]
    again = await api.get(PERSISTENT_VOLUME_CLAIMS, "data-web-1", namespace)
    assert again["metadata"]["uid"] == claim["metadata"]["uid"]


async def test_rolling_update_with_partition_history_and_undo(cluster: Cluster, api: ApiClient) -> None:
    """A new image with partition 2 updates only web-2; partition 0 then updates web-1 and web-0 (highest first)
    and `kubectl rollout status` reports completion (kubectl words it "partitioned" for any partition); history
    lists 2 revisions and undo restores the image."""
    namespace = new_namespace(cluster, "sts-roll")
    update = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    apply(cluster, namespace, headless_service("web"), stateful_set("web", 3, updateStrategy=update))
    await watch_until(api, PODS, namespace, lambda pods: len(ready_names(pods)) == 3, TIMEOUT, "3 ready")
    cluster.kubectl("set", "image", "sts/web", "app=registry.example/web:2", "-n", namespace, version="1.27")

    def images(pods: list[Obj]) -> dict[str, str]:
        return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods if ready_names([p])}

    partitioned = {"web-0": IMAGE, "web-1": IMAGE, "web-2": "registry.example/web:2"}
    await watch_until(api, PODS, namespace, lambda pods: images(pods) == partitioned, TIMEOUT, "web-2 updated")
    out = cluster.kubectl("rollout", "status", "sts/web", "-n", namespace, "--timeout=60s", version="1.33").stdout
    assert "partitioned roll out complete: 1 new pods have been updated" in out
    log = PodLog(api, namespace)
    log.informer.start()
    try:
        await asyncio.wait_for(log.informer.synced.wait(), TIMEOUT)
        patch = json.dumps({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})
        cluster.kubectl("patch", "sts", "web", "-n", namespace, "-p", patch, version="1.33")
        out = cluster.kubectl("rollout", "status", "sts/web", "-n", namespace, "--timeout=60s", version="1.27").stdout
        await log.until_deleted("web-0", "web-1")
    finally:
        await log.informer.stop()
    # kubectl takes its partitioned path whenever a partition is set, and apps/v1 defaults it to 0
    assert "partitioned roll out complete: 3 new pods have been updated" in out
    assert log.first("web-0", deleting=True) > log.first("web-1", deleting=True)
    pods = (await api.list(PODS, namespace))["items"]
    assert set(images(pods).values()) == {"registry.example/web:2"}
    history = cluster.kubectl("rollout", "history", "sts/web", "-n", namespace, version="1.33").stdout
    assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["1", "2"]
    cluster.kubectl("rollout", "undo", "sts/web", "-n", namespace, version="1.33")
    cluster.kubectl("rollout", "status", "sts/web", "-n", namespace, "--timeout=60s", version="1.33")
    pods = (await api.list(PODS, namespace))["items"]
    assert set(images(pods).values()) == {IMAGE}


async def test_parallel_delete_and_bad_input(cluster: Cluster, api: ApiClient) -> None:
    """Parallel creates all pods without waiting; deleting the set deletes its pods (claims stay, Retain);
    a bad policy is refused with kube's 422 message."""
    namespace = new_namespace(cluster, "sts-parallel")
    apply(cluster, namespace, headless_service("par"), stateful_set("par", 3, podManagementPolicy="Parallel"))
    await watch_until(api, PODS, namespace, lambda pods: len(ready_names(pods)) == 3, TIMEOUT, "3 ready")
    cluster.kubectl("delete", "sts", "par", "-n", namespace, version="1.27")
    await watch_until(api, PODS, namespace, lambda pods: not pods, TIMEOUT, "pods gone")
    claims = (await api.list(PERSISTENT_VOLUME_CLAIMS, namespace))["items"]
    assert len(claims) == 3
    bad = stateful_set("bad", 1, podManagementPolicy="Sometimes")
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(bad), check=False, version="1.33")
    assert result.returncode != 0
    assert 'spec.podManagementPolicy: Unsupported value: "Sometimes": supported values: "OrderedReady", "Parallel"' in (
        result.stderr
    )


async def test_claim_retention_delete_when_scaled_and_deleted(cluster: Cluster, api: ApiClient) -> None:
    """persistentVolumeClaimRetentionPolicy Delete/Delete: scaling down removes the condemned pod's claim,
    deleting the set removes the rest (both through owner references and the garbage collector)."""
    namespace = new_namespace(cluster, "sts-retention")
    retention = {"whenDeleted": "Delete", "whenScaled": "Delete"}
    apply(cluster, namespace, stateful_set("db", 2, persistentVolumeClaimRetentionPolicy=retention))
    await watch_until(api, PODS, namespace, lambda pods: len(ready_names(pods)) == 2, TIMEOUT, "2 ready")

    def claim_names(claims: list[Obj]) -> list[str]:
        return sorted(c["metadata"]["name"] for c in claims if not c["metadata"].get("deletionTimestamp"))

    cluster.kubectl("scale", "sts", "db", "--replicas=1", "-n", namespace, version="1.33")
    await watch_until(
        api, PERSISTENT_VOLUME_CLAIMS, namespace, lambda c: claim_names(c) == ["data-db-0"], TIMEOUT, "data-db-1 gone"
    )
    cluster.kubectl("delete", "sts", "db", "-n", namespace, version="1.27")
    await watch_until(api, PERSISTENT_VOLUME_CLAIMS, namespace, lambda c: not claim_names(c), TIMEOUT, "claims gone")


async def test_on_delete_replaces_only_deleted_pods(cluster: Cluster, api: ApiClient) -> None:
    """OnDelete: a new template leaves running pods alone; the pod the user deletes comes back updated."""
    namespace = new_namespace(cluster, "sts-ondelete")
    apply(cluster, namespace, stateful_set("web", 2, updateStrategy={"type": "OnDelete"}))
    await watch_until(api, PODS, namespace, lambda pods: len(ready_names(pods)) == 2, TIMEOUT, "2 ready")
    cluster.kubectl("set", "image", "sts/web", "app=registry.example/web:2", "-n", namespace, version="1.33")
    await watch_until(
        api,
        STATEFULSETS,
        namespace,
        lambda sets: any((s.get("status") or {}).get("observedGeneration") == 2 for s in sets),
        TIMEOUT,
        "generation 2 observed",
    )
    old_uid = (await api.get(PODS, "web-1", namespace))["metadata"]["uid"]
    cluster.kubectl("delete", "pod", "web-1", "-n", namespace, version="1.27")

    def updated(pods: list[Obj]) -> Obj | None:
        for pod in pods:
            if pod["metadata"]["name"] == "web-1" and pod["metadata"]["uid"] != old_uid and ready_names([pod]):
                return pod
        return None

    pod = await watch_until(api, PODS, namespace, updated, TIMEOUT, "web-1 recreated")
    assert pod is not None
    assert pod["spec"]["containers"][0]["image"] == "registry.example/web:2"
    assert (await api.get(PODS, "web-0", namespace))["spec"]["containers"][0]["image"] == IMAGE
    sts = await api.get(STATEFULSETS, "web", namespace)
    assert sts["status"]["currentRevision"] != sts["status"]["updateRevision"]


async def test_ordered_start_waits_min_ready_seconds(cluster: Cluster, api: ApiClient) -> None:
    """OrderedReady with minReadySeconds 2: web-1 is created only once web-0 has been Ready for 2 seconds."""
    namespace = new_namespace(cluster, "sts-minready")
    apply(cluster, namespace, stateful_set("web", 2, minReadySeconds=2))
    await watch_until(api, PODS, namespace, lambda pods: len(ready_names(pods)) == 2, TIMEOUT, "2 ready")
    first = await api.get(PODS, "web-0", namespace)
    second = await api.get(PODS, "web-1", namespace)
    ready = next(c for c in first["status"]["conditions"] if c["type"] == "Ready")
    created, since = parse_time(second["metadata"]["creationTimestamp"]), parse_time(ready["lastTransitionTime"])
    assert created is not None and since is not None
    assert (created - since).total_seconds() >= 2
    sts = await watch_until(
        api,
        STATEFULSETS,
        namespace,
        lambda sets: next((s for s in sets if (s.get("status") or {}).get("availableReplicas") == 2), None),
        TIMEOUT,
        "2 available",
    )
    assert sts is not None
