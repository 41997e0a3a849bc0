"""Pod-start latency through kube-shim beside raw Podman's own time for the same pod, on this machine, in one run.

Run from the repo root (as root, with podman installed): `python -m bench.podstart [--runs N] [--burst N]`.
One isolated Podman root (tests.podman_env) holds the busybox test image and serves both sides:

- raw Podman: podman-py `pods.create` on the node's bridge network + `containers.create` with the spec our
  runtime sends (`sleep 3600` under an init, stop timeout, k8s-file log) + `pod.start()`, timed until an
  inspect shows the container running; then killed and removed, untimed.
- kube-shim: the real `kube-shim up` process (API server, scheduler, controllers and one Podman node agent
  on that root's socket); a pod without `nodeName` (so the scheduler is on the path), `imagePullPolicy:
  Never`, `sleep 3600`. Latency = POST sent -> a watch event showing phase Running with the container
  started. Each pod is deleted, and gone, before the next one.

The two are run alternately (one warm-up each, untimed), so that other work on the machine weighs on both
alike. Then a burst of pods: raw Podman starts them from as many threads as our runtime uses, and kube-shim
gets them POSTed at once, timed until the watch has seen every one Running.
The kube-shim latency is split at the watch event that shows the pod bound: "scheduled" is POST -> bound,
"node" is bound -> Running (the agent's whole sync plus the status write and its delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import podman
import uvloop
from podman.errors import APIError, NotFound

from shim.client import ApiClient, Resource, load_kubeconfig
from shim.pki import cluster_id
from shim.runtime.podman import WORKERS
from shim.runtime.podman_network import network_name
from tests.cluster import Cluster, start_cluster
from tests.images import ensure_test_image
from tests.podman_env import PodmanEnv

Obj = dict[str, Any]

PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
NAMESPACE = "default"
TARGET_RATIO = 1.25
POD_DEADLINE = 60.0  # seconds one pod may take to run, or to be gone after its deletion
BURST_DEADLINE = 180.0
GRACE_SECONDS = 30  # the Kubernetes default, also the raw container's stop timeout
COMMAND = ["sleep", "3600"]


async def main() -> None:
    """Parse the flags, run both sides against one Podman root, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.podstart", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed sequential pods per side (default %(default)s)")
    parser.add_argument("--burst", type=int, default=50, help="pods started at once (default %(default)s)")
    args = parser.parse_args()
    began = time.perf_counter()
    print(f"pod-start benchmark: Python {platform.python_version()}, uvloop; {os.cpu_count()} cores")
    print(f"load average before the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with PodmanEnv() as env, podman.PodmanClient(base_url=env.base_url, timeout=120, max_pool_size=WORKERS) as client:
        image = ensure_test_image(client)
        print(f"podman {client.version()['Version']} (isolated root {env.root}), image {image}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-podstart-") as tmp:
            node_flags = ("--runtime", "podman", "--nodes", "1", "--podman-socket", str(env.socket_path))
            cluster = start_cluster(Path(tmp), nodes=node_flags)
            try:
                result = await run(cluster, client, image, Path(tmp), args.runs, args.burst)
            finally:
                cluster.stop()
    print()
    print_table(result, args.runs)
    print(f"\n(total {time.perf_counter() - began:.0f}s)")


@dataclass
class Result:
    """Seconds per timed pod for each side, and the burst's figures."""

    raw: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)
    scheduled: list[float] = field(default_factory=list)  # POST -> bound, of each timed pod of ours
    burst_pods: int = 0
    burst_all_running: float = 0.0
    burst_latencies: list[float] = field(default_factory=list)
    raw_burst: float = 0.0


async def run(cluster: Cluster, client: podman.PodmanClient, image: str, tmp: Path, runs: int, burst: int) -> Result:
    """Alternate raw and kube-shim starts (one warm-up each), then the burst."""
    access = load_kubeconfig(cluster.kubeconfig)
    async with ApiClient(access) as api:
        node = (await api.list(NODES))["items"][0]["metadata"]["name"]
        assert access.ca_pem is not None
        raw = RawPodman(client, image, network_name(cluster_id(access.ca_pem), node), tmp / "raw-logs")
        watch = PodWatch(api, NAMESPACE)
        await watch.start()
        try:
            result = Result()
            for i in range(runs + 1):
                raw_seconds = await asyncio.to_thread(raw.start_and_remove, f"raw-{i:03}")
                ours_seconds, scheduled = await start_and_delete(api, watch, pod_manifest(f"seq-{i:03}", image))
                if i:  # the first of each is the warm-up (the pause image, first connections, caches)
                    result.raw.append(raw_seconds)
                    result.ours.append(ours_seconds)
                    result.scheduled.append(scheduled)
                print(f"  {i:>3}  raw {ms(raw_seconds):>7}   kube-shim {ms(ours_seconds):>7}", flush=True)
            result.burst_pods = burst
            result.raw_burst = await asyncio.to_thread(raw.burst, [f"raw-burst-{i:03}" for i in range(burst)])
            result.burst_all_running, result.burst_latencies = await start_burst(api, watch, image, burst)
            return result
        finally:
            await watch.stop()


class RawPodman:
    """What a pod with one `sleep` container costs Podman itself, through podman-py on the same socket.

    Blocking calls: run them in a thread."""

    def __init__(self, client: podman.PodmanClient, image: str, network: str, log_dir: Path) -> None:
        self.client = client
        self.image = image
        self.network = network
        self.log_dir = log_dir
        self._pods: dict[str, Any] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start_and_remove(self, name: str) -> float:
        """`start(name)`, then the pod is removed (untimed)."""
        seconds = self.start(name)
        self.remove(name)
        return seconds

    def burst(self, names: list[str]) -> float:
        """Seconds until all pods run when started at once from as many threads as our runtime has; then
        they are removed (untimed)."""
        with ThreadPoolExecutor(WORKERS) as pool:
            began = time.perf_counter()
            list(pool.map(self.start, names))
            seconds = time.perf_counter() - began
            list(pool.map(self.remove, names))
        return seconds

    def start(self, name: str) -> float:
        """Seconds from `pods.create` to an inspect showing the container running. A start Podman refuses is
        tried once more with a new pod, within the same timing (netavark's iptables rules race with other
        Podman roots' on a shared host; the node agent retries a failed sandbox too)."""
        began = time.perf_counter()
        try:
            pod, container = self._create_and_start(name)
        except APIError as error:
            print(f"  raw {name}: {error.explanation or error}; retrying once", flush=True)
            with contextlib.suppress(NotFound):
                self.client.pods.remove(name, force=True)
            pod, container = self._create_and_start(name)
        deadline = began + POD_DEADLINE
        while not container.inspect()["State"]["Running"]:
            if time.perf_counter() > deadline:
                raise SystemExit(f"raw pod {name} did not run within {POD_DEADLINE:.0f}s")
        self._pods[name] = pod
        return time.perf_counter() - began

    def remove(self, name: str) -> None:
        pod = self._pods.pop(name)
        pod.kill(signal="SIGKILL")
        pod.remove(force=True)

    def _create_and_start(self, name: str) -> tuple[Any, Any]:
        pod = self.client.pods.create(name, hostname=name, Networks={self.network: {}})
        container = self.client.containers.create(
            self.image,
            COMMAND[1:],
            entrypoint=COMMAND[:1],
            name=f"{name}-main",
            pod=pod.id,
            init=True,
            stop_timeout=GRACE_SECONDS,
            log_config={"Type": "k8s-file", "Config": {"path": str(self.log_dir / f"{name}.log")}},
        )
        pod.start()
        return pod, container


class PodWatch:
    """One watch on a namespace's pods: when each pod was first seen bound, first seen Running, and gone."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.bound_at: dict[str, float] = {}
        self.running_at: dict[str, float] = {}
        self._running: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._gone: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Watch from the current resourceVersion, so nothing created after this call is missed."""
        listed = await self.api.list(PODS, self.namespace)
        self._task = asyncio.create_task(self._follow(listed["metadata"]["resourceVersion"]))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def running(self, name: str, deadline: float) -> float:
        """When the pod was first seen Running (perf_counter seconds)."""
        await asyncio.wait_for(self._running[name].wait(), deadline)
        return self.running_at[name]

    async def gone(self, name: str, deadline: float) -> None:
        await asyncio.wait_for(self._gone[name].wait(), deadline)

    async def _follow(self, resource_version: str) -> None:
        async for event in self.api.watch(PODS, self.namespace, resource_version):
            arrived = time.perf_counter()
            pod = event["object"]
            name = pod.get("metadata", {}).get("name", "")
            if event["type"] == "DELETED":
                self._gone[name].set()
            elif event["type"] in ("ADDED", "MODIFIED"):
                if pod["spec"].get("nodeName"):
                    self.bound_at.setdefault(name, arrived)
                if is_running(pod) and name not in self.running_at:
                    self.running_at[name] = arrived
                    self._running[name].set()


def is_running(pod: Obj) -> bool:
    """Phase Running with its container running and started."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    started = all("running" in (c.get("state") or {}) and c.get("started") for c in containers)
    return status.get("phase") == "Running" and bool(containers) and started


def pod_manifest(name: str, image: str) -> Obj:
    """A pod like `kubectl run NAME --image IMAGE --image-pull-policy Never -- sleep 3600`, left to the scheduler."""
    container = {"name": "main", "image": image, "command": COMMAND, "imagePullPolicy": "Never"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container]}}


async def start_and_delete(api: ApiClient, watch: PodWatch, manifest: Obj) -> tuple[float, float]:
    """(POST -> Running, POST -> bound) in seconds; the pod is deleted and gone on return."""
    name = manifest["metadata"]["name"]
    sent = time.perf_counter()
    await api.create(PODS, manifest, NAMESPACE)
    running = await watch.running(name, POD_DEADLINE)
    await api.delete(PODS, name, NAMESPACE)
    await watch.gone(name, POD_DEADLINE)
    return running - sent, watch.bound_at[name] - sent


async def start_burst(api: ApiClient, watch: PodWatch, image: str, count: int) -> tuple[float, list[float]]:
    """POST `count` pods at once: (seconds until all were seen Running, each pod's POST -> Running); the pods
    are deleted and gone on return. Exits if any does not run within the deadline."""
    names = [f"burst-{i:03}" for i in range(count)]
    sent: dict[str, float] = {}

    async def create(name: str) -> None:
        sent[name] = time.perf_counter()
        await api.create(PODS, pod_manifest(name, image), NAMESPACE)

    began = time.perf_counter()
    await asyncio.gather(*(create(name) for name in names))
    try:
        await asyncio.wait_for(asyncio.gather(*(watch.running(n, BURST_DEADLINE) for n in names)), BURST_DEADLINE)
    except TimeoutError:
        missing = [n for n in names if n not in watch.running_at]
        raise SystemExit(f"{len(missing)} of {count} burst pods not Running after {BURST_DEADLINE:.0f}s") from None
    all_running = max(watch.running_at[n] for n in names) - began
    await asyncio.gather(*(api.delete(PODS, name, NAMESPACE) for name in names))
    await asyncio.gather(*(watch.gone(name, BURST_DEADLINE) for name in names))
    return all_running, [watch.running_at[n] - sent[n] for n in names]


def print_table(result: Result, runs: int) -> None:
    """Median and p90 per side, the ratio against its target, and the burst."""
    raw, ours = statistics.median(result.raw), statistics.median(result.ours)
    scheduled = statistics.median(result.scheduled)
    on_node = [total - bound for total, bound in zip(result.ours, result.scheduled, strict=True)]
    header = f"{'pod start (create -> Running)':<44}{'median':>10}{'p90':>10}"
    print(header)
    print("-" * len(header))
    for label, samples in (
        (f"raw Podman (podman-py), {runs} pods", result.raw),
        (f"kube-shim (POST -> watch Running), {runs} pods", result.ours),
        ("  of which POST -> bound (scheduler)", result.scheduled),
        ("  of which bound -> Running (node agent)", on_node),
    ):
        print(f"{label:<44}{ms(statistics.median(samples)):>10}{ms(p90(samples)):>10}")
    ratio = ours / raw
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"\noverhead ratio (median kube-shim / median raw): {ratio:.2f}x  (target <= {TARGET_RATIO}x: {verdict})")
    print(f"  median overhead {ms(ours - raw)} (scheduling {ms(scheduled)})")
    print(
        f"\nburst of {result.burst_pods} pods: kube-shim (POSTed at once) all Running after "
        f"{result.burst_all_running:.2f}s (per pod median {ms(statistics.median(result.burst_latencies))}); "
        f"raw Podman ({WORKERS} threads) {result.raw_burst:.2f}s"
    )


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    uvloop.run(main())
