"""Job benchmark: how long a Job of 1,000 completions with parallelism 100 takes to complete on 50 simulated nodes.

Run from the repo root: `python -m bench.job [--completions N] [--parallelism N] [--nodes N] [--runs N]`. Each run
starts a fresh `kube-shim up --runtime fake --nodes N` (API server, controllers, scheduler, N node agents whose
pods "run" `true` and succeed at once) and times, through watches:

- first pod: POST of the Job until its first pod exists,
- complete: until the Job's Complete condition (every pod created, run, counted through
  uncountedTerminatedPods and released from its job-tracking finalizer),

and prints the completions per second and the CPU the cluster process used. Figures only, nothing asserted
(issue 11).
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
from shim.client import ApiClient, SharedInformer, load_kubeconfig
from shim.controllers.job import JOBS
from shim.machinery.resources import NAMESPACES, PODS, SERVICE_ACCOUNTS
from tests.cluster import start_cluster

Obj = dict[str, Any]
DEADLINE = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1, help="Jobs, each on a fresh cluster")
    args = parser.parse_args()
    uvloop.run(run(args.completions, args.parallelism, args.nodes, args.runs))


async def run(completions: int, parallelism: int, nodes: int, runs: int) -> None:
    results = [await fresh_cluster_job(completions, parallelism, nodes) for _ in range(runs)]
    print(f"Job of {completions} completions, parallelism {parallelism}, on {nodes} simulated nodes, {runs} runs")
    print(f"{'run':<6}{'first pod s':>13}{'complete s':>12}{'completions/s':>15}{'cluster cpu s':>15}")
    for i, r in enumerate(results):
        rate = completions / r["complete"]
        print(f"{i:<6}{r['first']:>13.2f}{r['complete']:>12.2f}{rate:>15.1f}{r['cpu']:>15.2f}")
    print(f"median time to Complete: {statistics.median(r['complete'] for r in results):.2f} s")


async def fresh_cluster_job(completions: int, parallelism: int, nodes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-job-") as directory:
        cluster = start_cluster(Path(directory), nodes=("--runtime", "fake", "--nodes", str(nodes)))
        try:
            async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
                return await one_job(client, cluster.process.pid, "bench", completions, parallelism)
        finally:
            cluster.stop()


async def one_job(
    client: ApiClient, server_pid: int, namespace: str, completions: int, parallelism: int
) -> dict[str, float]:
    """Run one Job in a fresh namespace; seconds to its first pod and to Complete, and the cluster's CPU."""
    await client.create(NAMESPACES, {"metadata": {"name": namespace}})
    await wait_for_default_service_account(client, namespace)
    first_pod, complete = asyncio.Event(), asyncio.Event()

    async def on_pod(_event: str, _pod: Obj, _old: Obj | None) -> None:
        first_pod.set()

    async def on_job(_event: str, job: Obj, _old: Obj | None) -> None:
        conditions = (job.get("status") or {}).get("conditions") or ()
        if any(c["type"] == "Complete" and c["status"] == "True" for c in conditions):
            complete.set()

    pods = SharedInformer(client, PODS, namespace=namespace)
    jobs = SharedInformer(client, JOBS, namespace=namespace)
    pods.add_event_handler(on_pod)
    jobs.add_event_handler(on_job)
    pods.start()
    jobs.start()
    try:
        await asyncio.gather(pods.synced.wait(), jobs.synced.wait())
        cpu_before = cpu_seconds(server_pid)
        started = time.perf_counter()
        await client.create(JOBS, job_body(completions, parallelism), namespace)
        await asyncio.wait_for(first_pod.wait(), DEADLINE)
        first = time.perf_counter() - started
        await asyncio.wait_for(complete.wait(), DEADLINE)
        done = time.perf_counter() - started
        return {"first": first, "complete": done, "cpu": cpu_seconds(server_pid) - cpu_before}
    finally:
        await pods.stop()
        await jobs.stop()


async def wait_for_default_service_account(client: ApiClient, namespace: str) -> None:
    """Pods need the namespace's `default` service account, which a controller adds just after the namespace."""
    added = asyncio.Event()

    async def on_account(_event: str, _account: Obj, _old: Obj | None) -> None:
        added.set()

    accounts = SharedInformer(client, SERVICE_ACCOUNTS, namespace=namespace)
    accounts.add_event_handler(on_account)
    accounts.start()
    try:
        await asyncio.wait_for(added.wait(), 30)
    finally:
        await accounts.stop()


def job_body(completions: int, parallelism: int) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bench"},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }


if __name__ == "__main__":
    main()
