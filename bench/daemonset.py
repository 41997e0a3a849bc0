"""DaemonSet benchmark: how long a DaemonSet takes to cover 50 simulated nodes, and to roll a new template out.

Run from the repo root: `python -m bench.daemonset [--nodes N] [--max-unavailable V] [--runs N]`. Each run starts
a fresh `kube-shim up --runtime fake --nodes N` (API server, controllers, scheduler, N node agents whose pods
"run" and turn Ready at once) and times, through a watch of the DaemonSet's status:

- cover: POST of the DaemonSet until a pod is available on every node,
- rollout: a new image until every node runs an updated, available pod (RollingUpdate with the given
  maxUnavailable: kube's default 1 replaces one node at a time),

and prints the CPU the cluster process used. Figures only, nothing asserted (issue 11).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from bench.api import cpu_seconds
from bench.job import wait_for_default_service_account
from shim.client import ApiClient, SharedInformer, load_kubeconfig
from shim.machinery.resources import DAEMONSETS, NAMESPACES
from tests.cluster import start_cluster

Obj = dict[str, Any]
DEADLINE = 600.0
STRATEGIC = "application/strategic-merge-patch+json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--max-unavailable", default="1", help="the rolling update's maxUnavailable (N or N%%)")
    parser.add_argument("--runs", type=int, default=1, help="DaemonSets, each on a fresh cluster")
    args = parser.parse_args()
    max_unavailable: int | str = int(args.max_unavailable) if args.max_unavailable.isdigit() else args.max_unavailable
    uvloop.run(run(args.nodes, max_unavailable, args.runs))


async def run(nodes: int, max_unavailable: int | str, runs: int) -> None:
    results = [await fresh_cluster_daemon_set(nodes, max_unavailable) for _ in range(runs)]
    print(f"DaemonSet on {nodes} simulated nodes, rolling update maxUnavailable {max_unavailable}, {runs} runs")
    print(f"{'run':<6}{'cover s':>10}{'rollout s':>12}{'nodes/s rolled':>16}{'cluster cpu s':>15}")
    for i, r in enumerate(results):
        print(f"{i:<6}{r['cover']:>10.2f}{r['rollout']:>12.2f}{nodes / r['rollout']:>16.1f}{r['cpu']:>15.2f}")
    print(f"median rollout: {statistics.median(r['rollout'] for r in results):.2f} s")


async def fresh_cluster_daemon_set(nodes: int, max_unavailable: int | str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-daemonset-") as directory:
        cluster = start_cluster(Path(directory), nodes=("--runtime", "fake", "--nodes", str(nodes)))
        try:
            async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
                return await one_daemon_set(client, cluster.process.pid, "bench", nodes, max_unavailable)
        finally:
            cluster.stop()


async def one_daemon_set(
    client: ApiClient, server_pid: int, namespace: str, nodes: int, max_unavailable: int | str
) -> dict[str, float]:
    """Create a DaemonSet in a fresh namespace, then change its image; seconds to each rollout's end."""
    await client.create(NAMESPACES, {"metadata": {"name": namespace}})
    await wait_for_default_service_account(client, namespace)
    waiting: tuple[Callable[[Obj], bool], asyncio.Event] | None = None

    async def on_daemon_set(_event: str, ds: Obj, _old: Obj | None) -> None:
        if waiting is not None and waiting[0](ds):
            waiting[1].set()

    async def until(done: Callable[[Obj], bool]) -> None:
        nonlocal waiting
        waiting = (done, asyncio.Event())
        await asyncio.wait_for(waiting[1].wait(), DEADLINE)

    daemon_sets = SharedInformer(client, DAEMONSETS, namespace=namespace)
    daemon_sets.add_event_handler(on_daemon_set)
    daemon_sets.start()
    try:
        await daemon_sets.synced.wait()
        cpu_before = cpu_seconds(server_pid)
        started = time.perf_counter()
        created = client.create(DAEMONSETS, daemon_set_body(max_unavailable), namespace)
        await asyncio.gather(created, until(lambda ds: rolled_out(ds, nodes, generation=1)))
        cover = time.perf_counter() - started
        started = time.perf_counter()
        change = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}
        patched = client.patch(DAEMONSETS, "bench", change, namespace, content_type=STRATEGIC)
        await asyncio.gather(patched, until(lambda ds: rolled_out(ds, nodes, generation=2)))
        rollout = time.perf_counter() - started
        return {"cover": cover, "rollout": rollout, "cpu": cpu_seconds(server_pid) - cpu_before}
    finally:
        await daemon_sets.stop()


def rolled_out(ds: Obj, nodes: int, generation: int) -> bool:
    """What `kubectl rollout status` waits for, on every node, for the given generation."""
    status = ds.get("status") or {}
    return (
        status.get("observedGeneration") == ds["metadata"]["generation"] == generation
        and status.get("desiredNumberScheduled") == nodes
        and status.get("updatedNumberScheduled") == nodes
        and status.get("numberAvailable") == nodes
    )


def daemon_set_body(max_unavailable: int | str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "bench"},
        "spec": {
            "selector": {"matchLabels": {"app": "bench"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


if __name__ == "__main__":
    main()
