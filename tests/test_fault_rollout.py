"""`kill -9` of the control plane in the middle of a rollout: after a restart on the same data dir the cluster
converges to exactly the desired pods, and no write the API acknowledged before the kill is lost.

The cluster is the real `kube-shim up` with three simulated nodes (fake runtime) and its SQLite store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

import pytest

from shim.client import ApiClient, load_kubeconfig
from shim.controllers.podutil import is_pod_ready
from shim.machinery.resources import CONFIGMAPS, DEPLOYMENTS, PODS, REPLICASETS
from tests.cluster import Cluster, start_cluster
from tests.workloads import IMAGE, deployment, watch_until

Obj = dict[str, Any]
NODES = ("--runtime", "fake", "--nodes", "3")
REPLICAS = 200
OLD_IMAGE, NEW_IMAGE = IMAGE, "registry.example/web:2"
NAMESPACE = "default"
DEADLINE = 240.0


def image_of(obj: Obj) -> str:
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    return spec["containers"][0]["image"]


def rolled_out(image: str) -> Any:
    """A watch_until predicate on deployments: `web` runs `image` on every replica, all available."""

    def check(deployments: list[Obj]) -> Obj | None:
        web = next((d for d in deployments if d["metadata"]["name"] == "web"), None)
        if web is None or image_of(web) != image:
            return None
        status = web.get("status") or {}
        done = status.get("observedGeneration") == web["metadata"]["generation"] and all(
            status.get(field) == REPLICAS
            for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
        )
        return web if done else None

    return check


def mid_rollout(replica_sets: list[Obj]) -> bool:
    """The new replica set has ready pods while the old one still has some: the rollout is under way."""
    new = [rs for rs in replica_sets if image_of(rs) == NEW_IMAGE]
    old = [rs for rs in replica_sets if image_of(rs) == OLD_IMAGE]
    return bool(
        new and old and (new[0].get("status") or {}).get("readyReplicas", 0) >= 25 and old[0]["spec"]["replicas"] > 0
    )


def exactly_the_desired_pods(pods: list[Obj]) -> list[Obj] | None:
    """REPLICAS pods of the new template, all Ready, none going away, none of the old template."""
    web = [p for p in pods if p["metadata"].get("labels", {}).get("app") == "web"]
    if len(web) != REPLICAS:
        return None
    if all(image_of(p) == NEW_IMAGE and is_pod_ready(p) and not p["metadata"].get("deletionTimestamp") for p in web):
        return web
    return None


async def acknowledged_writes(api: ApiClient, acknowledged: list[str]) -> None:
    """Create ConfigMaps one after another until the server goes away; the names it confirmed go in the list."""
    for i in itertools.count():
        name = f"ack-{i}"
        try:
            await api.create(CONFIGMAPS, {"metadata": {"name": name}, "data": {"i": str(i)}}, NAMESPACE)
        except Exception:
            return  # the server was killed: this write was never acknowledged
        acknowledged.append(name)


async def kubectl(cluster: Cluster, *args: str) -> None:
    await asyncio.to_thread(cluster.kubectl, "-n", NAMESPACE, *args, timeout=90)


@pytest.mark.slow
async def test_kill_9_mid_rollout_then_restart_converges_to_exactly_the_desired_pods(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, nodes=NODES)
    acknowledged: list[str] = []
    try:
        async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as api:
            await api.create(DEPLOYMENTS, deployment("web", REPLICAS), NAMESPACE)
            await watch_until(api, DEPLOYMENTS, NAMESPACE, rolled_out(OLD_IMAGE), DEADLINE, "the first rollout")
            writer = asyncio.create_task(acknowledged_writes(api, acknowledged))
            await kubectl(cluster, "set", "image", "deployment/web", f"app={NEW_IMAGE}")
            await watch_until(api, REPLICASETS, NAMESPACE, mid_rollout, DEADLINE, "the rollout to be under way")
            cluster.process.kill()  # SIGKILL: no shutdown of any kind
            cluster.process.wait()
            await writer
        assert len(acknowledged) > 0, "writes were acknowledged up to the kill"
        cluster = start_cluster(tmp_path, cluster.port, nodes=NODES)  # the same data dir, port and kubeconfig
        async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as api:
            present = {c["metadata"]["name"] for c in (await api.list(CONFIGMAPS, NAMESPACE))["items"]}
            assert [name for name in acknowledged if name not in present] == [], "acknowledged writes survive"
            web = await watch_until(
                api, DEPLOYMENTS, NAMESPACE, rolled_out(NEW_IMAGE), DEADLINE, "the rollout to finish after restart"
            )
            pods = await watch_until(
                api, PODS, NAMESPACE, exactly_the_desired_pods, DEADLINE, f"exactly {REPLICAS} new, ready pods"
            )
            assert len({p["metadata"]["name"] for p in pods}) == REPLICAS
            replica_sets = (await api.list(REPLICASETS, NAMESPACE))["items"]
            new = [rs for rs in replica_sets if image_of(rs) == NEW_IMAGE]
            old = [rs for rs in replica_sets if image_of(rs) == OLD_IMAGE]
            assert len(new) == 1 and len(old) == 1, "one replica set per template: none was created twice"
            assert {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {new[0]["metadata"]["uid"]}
            assert old[0]["spec"]["replicas"] == 0
            old_status = await watch_until(
                api,
                REPLICASETS,
                NAMESPACE,
                lambda rss: next(
                    (rs for rs in rss if image_of(rs) == OLD_IMAGE and not rs["status"].get("replicas")), None
                ),
                DEADLINE,
                "the old replica set to report no pods",
            )
            assert old_status["spec"]["replicas"] == 0
            assert web["status"]["replicas"] == REPLICAS
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
