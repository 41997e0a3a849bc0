"""Scheduler benchmark: pods bound per second for 1,000 pending pods on 100 and on 1,000 nodes.

Run from the repo root: `python -m bench.scheduler [--store URL] [--pods N]`. For each node count, a fresh
`kube-shim up` process (the API server; default store: its durable SQLite) gets N Node objects of mixed
sizes, zones and taints (no kubelets: the scheduler only reads Nodes) and then the pending pods, created
before the scheduler starts. The scheduler then runs *in this benchmark process* (uvloop), exactly as
`Scheduler(client).start()` runs anywhere: it lists and watches nodes and pods, and binds every pod through
`POST pods/NAME/binding`, recording a `Scheduled` event for each, as kube-scheduler does.

Timed: from `start()` to the last successful binding (the initial list of pods and nodes included), once
the server process has gone idle after the setup. The server process is the whole `kube-shim up`: the API
server and the in-process controller manager (whose informers also receive every binding).
Both processes share the machine's cores; the CPU each used during the timed window is printed, and the
API server's share of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.api import cpu_seconds
from shim.client import ApiClient, load_kubeconfig
from shim.machinery.resources import NODES, PODS, SERVICE_ACCOUNTS
from shim.scheduler import Scheduler
from tests.cluster import start_cluster
from tests.scheduler_objects import create_all, new_pod, node

NODE_COUNTS = (100, 1000)
TARGET_PODS_PER_SECOND = 300  # at 1,000 nodes
DEADLINE = 300.0
SETTLE_SAMPLE, SETTLE_DEADLINE, IDLE_SHARE = 0.5, 60.0, 0.1


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="the server's --store (default: its SQLite)")
    parser.add_argument("--pods", type=int, default=1000, help="pending pods per run (default %(default)s)")
    args = parser.parse_args()
    print(f"scheduler benchmark: Python {platform.python_version()}, uvloop; scheduler in this process")
    print(f"store: {args.store or 'sqlite (the server default, durable)'}")
    print(f"load average before the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"machine: {os.cpu_count()} cores shared by the API server process and this process\n", flush=True)
    header = (
        f"{'nodes':>6}{'pods':>7}{'bound/s':>10}{'seconds':>9}  {'cores busy: server':>19}{'scheduler':>11}"
        f"{'server share':>14}{'CPU ms/pod: server':>20}{'scheduler':>11}"
    )
    print(header)
    print("-" * len(header))
    for count in NODE_COUNTS:
        r = await run(count, args.pods, args.store)
        target = f"   (target >= {TARGET_PODS_PER_SECOND}/s)" if count == 1000 else ""
        print(
            f"{count:>6}{args.pods:>7}{r['rate']:>10,.0f}{r['seconds']:>9.2f}  {r['server'] / r['seconds']:>19.2f}"
            f"{r['client'] / r['seconds']:>11.2f}{r['server'] / (r['server'] + r['client']):>14.0%}"
            f"{1000 * r['server'] / args.pods:>20.2f}{1000 * r['client'] / args.pods:>11.2f}{target}",
            flush=True,
        )


async def run(node_count: int, pod_count: int, store: str | None) -> dict[str, float]:
    """One fresh server, `node_count` nodes, `pod_count` pending pods, one timed scheduler start: the rate,
    the seconds, and the CPU seconds the server and this process used meanwhile."""
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as directory:
        extra = ("--store", store) if store else ()
        # the API server alone: this process's scheduler is the only one, and no controller adds load
        cluster = start_cluster(
            Path(directory), extra=extra, nodes=("--nodes", "0", "--no-scheduler", "--no-controllers")
        )
        try:
            access = load_kubeconfig(cluster.kubeconfig)
            async with ApiClient(access) as api:
                await create_all(api, NODES, [mixed_node(i) for i in range(node_count)])
                # pods need the namespace's `default` service account, which the (absent) controllers would add
                await api.create(SERVICE_ACCOUNTS, {"metadata": {"name": "default"}}, "default")
                sizes = [("100m", "128Mi"), ("250m", "256Mi"), ("500m", "128Mi")]
                pods = [new_pod(f"p{i:05}", *sizes[i % 3]) for i in range(pod_count)]
                await create_all(api, PODS, pods, "default")
                await settle(cluster.process.pid)
                scheduler = Scheduler(ApiClient(access, user_agent="kube-scheduler"))
                server_before, client_before = cpu_seconds(cluster.process.pid), time.process_time()
                started = time.perf_counter()
                scheduler.start()
                await asyncio.wait_for(bound_all(scheduler, pod_count), DEADLINE)
                seconds = time.perf_counter() - started
                server = cpu_seconds(cluster.process.pid) - server_before
                client = time.process_time() - client_before
                await scheduler.stop()
                listed = await api.list(PODS, "default")
                unbound = sum(1 for p in listed["items"] if not p["spec"].get("nodeName"))
                if unbound:
                    raise SystemExit(f"{unbound} pods were not bound")
        finally:
            cluster.stop()
    return {"rate": pod_count / seconds, "seconds": seconds, "server": server, "client": client}


def mixed_node(i: int) -> dict[str, Any]:
    """Three sizes, three zones, a few tainted control-plane nodes and cordoned ones."""
    cpu, memory = (("8", "16Gi"), ("16", "32Gi"), ("32", "64Gi"))[i % 3]
    taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}] if i < 3 else None
    labels = {"topology.kubernetes.io/zone": f"zone-{i % 3}", "node.kubernetes.io/instance-type": f"size-{i % 3}"}
    return node(f"node-{i:04}", cpu, memory, labels=labels, taints=taints, unschedulable=i % 97 == 50)


async def settle(pid: int) -> None:
    """Wait until the server process is idle again (its controllers have digested the new nodes and pods),
    so that the timed window holds only the scheduling."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(SETTLE_SAMPLE)
        if cpu_seconds(pid) - before < SETTLE_SAMPLE * IDLE_SHARE:
            return


async def bound_all(scheduler: Scheduler, count: int) -> None:
    """Wait for the scheduler's own count of successful bindings (polling it costs this process nothing)."""
    while scheduler.stats.bound < count:
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    uvloop.run(main())
