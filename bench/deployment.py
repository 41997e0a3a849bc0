"""Deployment benchmark: how long a 500-replica deployment takes to become fully available.

Run from the repo root: `python -m bench.deployment [--replicas N] [--runs N]`. A real `kube-shim up` process
(default SQLite store) runs the API server and the controllers; this process runs the pod simulator of the
tests (tests/podsim.py: a stand-in scheduler + kubelet that binds each pod to a fake node and reports it
Running and Ready at once, with no containers) and times, through a watch:

- created: POST of the deployment until the last of its pods exists,
- running: until the last pod was reported Running and Ready,
- available: until the deployment reports all replicas updated and available (what `rollout status` waits for).

Target: available in < 10 s for 500 replicas on this 2-core machine. The CPU each process used is printed,
since the server, its controllers and the simulator share the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.api import cpu_seconds
from shim.client import ApiClient, Informer, Resource, load_kubeconfig
from tests.cluster import start_cluster
from tests.podsim import PodSimulator

Obj = dict[str, Any]
PODS = Resource("", "v1", "pods")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
TARGET_SECONDS = 10.0
DEADLINE = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3, help="deployments rolled out, one namespace each")
    args = parser.parse_args()
    uvloop.run(run(args.replicas, args.runs))


async def run(replicas: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-deployment-") as directory:
        cluster = start_cluster(Path(directory))
        try:
            async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
                results = [await one_rollout(client, cluster.process.pid, f"bench-{i}", replicas) for i in range(runs)]
        finally:
            cluster.stop()
    print(f"{replicas}-replica deployment, simulated pods, {runs} runs (server + controllers in one process)")
    print(f"{'run':<6}{'created s':>11}{'running s':>11}{'available s':>13}{'server cpu s':>14}{'bench cpu s':>13}")
    for i, r in enumerate(results):
        print(
            f"{i:<6}{r['created']:>11.2f}{r['running']:>11.2f}{r['available']:>13.2f}{r['server']:>14.2f}{r['own']:>13.2f}"
        )
    median = statistics.median(r["available"] for r in results)
    verdict = "met" if median < TARGET_SECONDS else "NOT met"
    print(f"median time to fully available: {median:.2f} s (target < {TARGET_SECONDS:.0f} s: {verdict})")


async def one_rollout(client: ApiClient, server_pid: int, namespace: str, replicas: int) -> dict[str, float]:
    """Roll out one deployment in a fresh namespace; seconds to created / running / available, and CPU."""
    await client.create(NAMESPACES, {"metadata": {"name": namespace}})
    created, running, available = asyncio.Event(), asyncio.Event(), asyncio.Event()
    marks: dict[str, float] = {}

    async def on_pod(_event: str, _pod: Obj) -> None:
        pods = list(pod_watch.cache.values())
        if len(pods) >= replicas and not created.is_set():
            marks["created"] = time.perf_counter()
            created.set()
        if sum(_ready(p) for p in pods) >= replicas and not running.is_set():
            marks["running"] = time.perf_counter()
            running.set()

    async def on_deployment(_event: str, d: Obj) -> None:
        status = d.get("status") or {}
        done = status.get("observedGeneration") == d["metadata"].get("generation")
        if done and status.get("updatedReplicas") == status.get("availableReplicas") == replicas:
            marks["available"] = time.perf_counter()
            available.set()

    pod_watch = Informer(client, PODS, on_pod, namespace=namespace)
    deployment_watch = Informer(client, DEPLOYMENTS, on_deployment, namespace=namespace)
    async with PodSimulator(client, namespace, workers=32):
        for informer in (pod_watch, deployment_watch):
            informer.start()
            await informer.synced.wait()
        server_cpu, own_cpu = cpu_seconds(server_pid), time.process_time()
        start = time.perf_counter()
        await client.create(DEPLOYMENTS, _deployment(replicas), namespace)
        try:
            await asyncio.wait_for(asyncio.gather(created.wait(), running.wait(), available.wait()), DEADLINE)
        finally:
            for informer in (pod_watch, deployment_watch):
                await informer.stop()
        return {
            **{k: v - start for k, v in marks.items()},
            "server": cpu_seconds(server_pid) - server_cpu,
            "own": time.process_time() - own_cpu,
        }


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


def _deployment(replicas: int) -> Obj:
    labels = {"app": "bench"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "bench:1"}]}},
        },
    }


if __name__ == "__main__":
    main()
