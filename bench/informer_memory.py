"""Memory of one `kube-shim up` process: RSS idle and with a large deployment fully available.

Run from the repo root: `python -m bench.informer_memory [--replicas 2000] [--nodes 20] [--baseline DIR]`. It starts
`kube-shim up --runtime fake --nodes N` (API server, controllers, scheduler and N node agents in one process),
prints its RSS once serving, rolls out an N-replica deployment (bench.deployment's rollout) and prints the RSS
once every replica is available, and the growth per pod. The informers of the controllers, the scheduler and the
node agents hold a decoded copy of every pod they watch: how many copies there are shows here.

`--baseline DIR` runs the same first from another checkout (e.g. `git archive <commit> | tar -x -C DIR`), so
one run prints before and after.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.api import rss_megabytes
from bench.deployment import one_rollout
from shim.client import ApiClient, load_kubeconfig
from tests.cluster import start_cluster


@dataclass
class Figures:
    idle_mb: float
    loaded_mb: float
    available_s: float
    replicas: int

    @property
    def kb_per_pod(self) -> float:
        return (self.loaded_mb - self.idle_mb) * 1000 / self.replicas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--baseline", type=Path, help="another checkout to measure first (its package dir)")
    args = parser.parse_args()
    uvloop.run(run(args.replicas, args.nodes, args.baseline))


async def run(replicas: int, nodes: int, baseline: Path | None) -> None:
    rows = []
    if baseline is not None:
        rows.append((f"baseline ({baseline})", await measure(replicas, nodes, baseline)))
    rows.append(("this checkout", await measure(replicas, nodes, None)))
    print(f"`kube-shim up --runtime fake --nodes {nodes}`, one {replicas}-replica deployment")
    print(f"{'':<40}{'idle MB':>10}{'loaded MB':>12}{'KB/pod':>10}{'available s':>14}")
    for name, f in rows:
        print(f"{name:<40}{f.idle_mb:>10.0f}{f.loaded_mb:>12.0f}{f.kb_per_pod:>10.1f}{f.available_s:>14.1f}")


async def measure(replicas: int, nodes: int, pythonpath: Path | None) -> Figures:
    """One fresh cluster (from `pythonpath` when given): RSS once serving, and once the rollout is available."""
    env = {"PYTHONPATH": str(pythonpath.resolve())} if pythonpath is not None else None
    with tempfile.TemporaryDirectory(prefix="bench-informer-memory-") as directory:
        cluster = start_cluster(Path(directory), nodes=("--runtime", "fake", "--nodes", str(nodes)), env=env)
        try:
            idle = rss_megabytes(cluster.process.pid)
            async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
                times = await one_rollout(client, cluster.process.pid, "bench", replicas)
            return Figures(idle, rss_megabytes(cluster.process.pid), times["available"], replicas)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
