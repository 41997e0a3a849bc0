"""Deployment benchmark: how long a 500-replica deployment takes to become fully available.

Run from the repo root: `python -m bench.deployment [--replicas N] [--nodes N] [--runs N]`. Each run starts a
fresh `kube-shim up --runtime fake --nodes N` process (default SQLite store), which runs everything a cluster does:
the API server, the controllers, the scheduler and N node agents on the simulated runtime (pods "run" and
turn Ready at once, no containers). This process only creates the deployment and times, through watches:

- created: POST of the deployment until the last of its pods exists (replica set + pod creation),
- running: until every pod is bound, started and reported Ready by its node agent,
- available: until the deployment reports all replicas updated and available (what `rollout status` waits for).

Target: available in < 10 s for 500 replicas on this 2-core machine. The CPU the cluster process used is
printed next to the times (this process is only the client).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.api import cpu_seconds
from shim.client import ApiClient, Resource, SharedInformer, load_kubeconfig
from shim.controllers.podutil import is_pod_ready
from tests.cluster import start_cluster

Obj = dict[str, Any]
PODS = Resource("", "v1", "pods")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
TARGET_SECONDS = 10.0
DEADLINE = 120.0
PODS_PER_NODE = 110  # the node agents' max-pods, as kubelet's default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=0, help="simulated nodes (default: enough for the replicas)")
    parser.add_argument("--runs", type=int, default=3, help="rollouts, each on a fresh cluster")
    args = parser.parse_args()
    nodes = args.nodes or math.ceil(args.replicas / PODS_PER_NODE) + 1
    uvloop.run(run(args.replicas, nodes, args.runs))


async def run(replicas: int, nodes: int, runs: int) -> None:
    results = [await fresh_cluster_rollout(replicas, nodes) for _ in range(runs)]
    print(f"{replicas}-replica deployment on {nodes} simulated nodes, {runs} runs, each on a fresh `kube-shim up`")
    print(f"{'run':<6}{'created s':>11}{'running s':>11}{'available s':>13}{'cluster cpu s':>15}")
    for i, r in enumerate(results):
        print(f"{i:<6}{r['created']:>11.2f}{r['running']:>11.2f}{r['available']:>13.2f}{r['cpu']:>15.2f}")
    median = statistics.median(r["available"] for r in results)
    verdict = "met" if median < TARGET_SECONDS else "NOT met"
    print(f"median time to fully available: {median:.2f} s (target < {TARGET_SECONDS:.0f} s: {verdict})")


async def fresh_cluster_rollout(replicas: int, nodes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-deployment-") as directory:
        cluster = start_cluster(Path(directory), nodes=("--runtime", "fake", "--nodes", str(nodes)))
        try:
            async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
                return await one_rollout(client, cluster.process.pid, "bench", replicas)
        finally:
            cluster.stop()


async def one_rollout(client: ApiClient, server_pid: int, namespace: str, replicas: int) -> dict[str, float]:
    """Roll out one deployment in a fresh namespace; seconds to created / running / available, and CPU."""
    await client.create(NAMESPACES, {"metadata": {"name": namespace}})
    created, running, available = asyncio.Event(), asyncio.Event(), asyncio.Event()
    marks: dict[str, float] = {}

    async def on_pod(_event: str, _pod: Obj, _old: Obj | None) -> None:
        pods = pod_watch.list()
        if len(pods) >= replicas and not created.is_set():
            marks["created"] = time.perf_counter()
            created.set()
        if sum(is_pod_ready(p) for p in pods) >= replicas and not running.is_set():
            marks["running"] = time.perf_counter()
            running.set()

    async def on_deployment(_event: str, d: Obj, _old: Obj | None) -> None:
        status = d.get("status") or {}
        observed = status.get("observedGeneration") == d["metadata"].get("generation")
        if observed and status.get("updatedReplicas") == status.get("availableReplicas") == replicas:
            marks["available"] = time.perf_counter()
            available.set()

    pod_watch = SharedInformer(client, PODS, namespace=namespace)
    pod_watch.add_event_handler(on_pod)
    deployment_watch = SharedInformer(client, DEPLOYMENTS, namespace=namespace)
    deployment_watch.add_event_handler(on_deployment)
    for informer in (pod_watch, deployment_watch):
        informer.start()
        await informer.synced.wait()
    cpu = cpu_seconds(server_pid)
    start = time.perf_counter()
    await client.create(DEPLOYMENTS, _deployment(replicas), namespace)
    try:
        await asyncio.wait_for(asyncio.gather(created.wait(), running.wait(), available.wait()), DEADLINE)
    finally:
        for informer in (pod_watch, deployment_watch):
            await informer.stop()
    return {**{k: v - start for k, v in marks.items()}, "cpu": cpu_seconds(server_pid) - cpu}


def _deployment(replicas: int) -> Obj:
    labels = {"app": "bench"}
    container = {"name": "app", "image": "registry.example/bench:1"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


if __name__ == "__main__":
    main()
