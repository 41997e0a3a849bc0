"""API server benchmark: the real `kube-shim up` process driven through its HTTPS API.

Run from the repo root: `python -m bench.api [--store URL]` (default: the server's own default store, SQLite
in the data dir, the durable path). The server runs as a separate process; this process is the client
(raw aiohttp on uvloop with a keep-alive pool and orjson, so the client is as cheap as it can be). Both share
the machine's cores, so the CPU each side used is printed next to every figure.

- ready: process start to the first `/readyz` 200 (polled every 5 ms), median of 3 starts of one data dir
  (the first also creates the PKI).
- RSS: VmRSS of the server process 1 s after it is ready, and again once the creates phase's pods and
  the 10k listed pods are stored and have been listed.
- creates/s: POSTs of the pod `kubectl run` sends, 50 concurrent clients for 5 s; only 201s count.
- gets/s: GETs of random existing pods, 50 concurrent clients for 5 s; only 200s count.
- list: one unpaginated list of 10k pods in one namespace including reading the whole body, median of 5,
  as JSON and as kubectl's Table.
- watch: 100 watchers on one namespace's pods; 200 label PATCHes, each sent when the previous one answered
  plus 5 ms; latency = arrival of the event at a watcher - the moment its PATCH was sent, over all pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from shim.client.api import ApiException
from shim.client.config import ClusterAccess, load_kubeconfig
from tests.cluster import Cluster, free_port, start_cluster

READY_STARTS = 3
READY_POLL = 0.005
READY_DEADLINE = 30.0
IDLE_SETTLE = 1.0  # lets the controllers finish their first list+watch before "idle" is read
CLIENTS = 50
PHASE_SECONDS = 5.0
LIST_PODS = 10_000
LIST_RUNS = 5
WATCHERS = 100
WATCH_PODS = 10
WATCH_UPDATES = 200
WATCH_SPACING = 0.005
WATCH_DEADLINE = 30.0  # an event not delivered to every watcher by then is lost, not late
JSON = "application/json"
TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
MERGE_PATCH = "application/merge-patch+json"
CREATE_NS, LIST_NS, WATCH_NS = "bench-create", "bench-list", "bench-watch"


@dataclass
class Row:
    """One printed line: a figure, its target (None: informational), and where the CPU went meanwhile."""

    figure: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def met(self) -> str:
        if self.target is None:
            return ""
        ok = self.value >= self.target if self.higher_is_better else self.value < self.target
        return "yes" if ok else "NO"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<'} {self.target:,g} {self.unit}"


@dataclass
class Failures:
    """Non-success answers seen during timed phases: a count and the first body per (phase, HTTP code)."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    bodies: dict[tuple[str, int], bytes] = field(default_factory=dict)

    def record(self, phase: str, status: int, body: bytes) -> None:
        self.counts[phase, status] += 1
        self.bodies.setdefault((phase, status), body)

    def total(self, phase: str) -> int:
        return sum(n for (p, _), n in self.counts.items() if p == phase)


@dataclass(frozen=True)
class CpuSnapshot:
    """Wall time and the CPU seconds used so far by the server process and by this (client) process."""

    server_pid: int
    wall: float
    server: float
    client: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        return cls(server_pid, time.perf_counter(), cpu_seconds(server_pid), time.process_time())

    def busy_since(self) -> str:
        """How many cores each side kept busy on average since this snapshot."""
        wall = time.perf_counter() - self.wall
        server = (cpu_seconds(self.server_pid) - self.server) / wall
        client = (time.process_time() - self.client) / wall
        return f"cores busy: server {server:.2f}, client {client:.2f}"


async def main() -> None:
    """Parse the flags, run every phase against a fresh server, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="the server's --store (default: its SQLite)")
    args = parser.parse_args()
    store = args.store or "sqlite (the server's default: <data-dir>/state.db, durable)"
    print(f"API server benchmark: Python {platform.python_version()}, uvloop, aiohttp {aiohttp.__version__}")
    print(f"store: {store}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average before the run (other work on this machine): {load}")
    print(
        f"machine: {os.cpu_count()} cores shared by the server process and this client process "
        "(both compete for CPU; 'cores busy' shows each side's share)",
        flush=True,
    )
    started = time.perf_counter()
    failures = Failures()
    extra = ("--store", args.store) if args.store else ()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        try:
            rows = await run(Path(tmp), extra, failures)
        except ApiException as error:
            raise SystemExit(f"the server answered {error.status}: {orjson.dumps(error.body).decode()}") from None
    print()
    print_table(rows)
    print_failures(failures)
    print(f"\n(total {time.perf_counter() - started:.0f}s)")


async def run(directory: Path, extra: tuple[str, ...], failures: Failures) -> list[Row]:
    """Start the server READY_STARTS times (timing each), then measure everything against the last start."""
    ready_times = []
    for _ in range(READY_STARTS - 1):
        cluster, seconds = await start_timed(directory, extra)
        cluster.stop()
        ready_times.append(seconds)
    cluster, seconds = await start_timed(directory, extra)
    ready_times.append(seconds)
    try:
        await asyncio.sleep(IDLE_SETTLE)
        idle_rss = rss_megabytes(cluster.process.pid)
        starts = ", ".join(f"{t * 1000:.0f}" for t in ready_times)
        async with api_session(load_kubeconfig(cluster.kubeconfig)) as api:
            measured = await measure(api, cluster.process.pid, failures)
        return [
            Row(
                f"time to ready (median of {READY_STARTS})",
                statistics.median(ready_times) * 1000,
                "ms",
                1000,
                note=f"starts: {starts} ms",
            ),
            Row("idle RSS", idle_rss, "MB", 150),
            *measured,
        ]
    finally:
        cluster.stop()


async def measure(api: aiohttp.ClientSession, server_pid: int, failures: Failures) -> list[Row]:
    """The throughput, list and watch phases, each in its own namespace."""
    for name in (CREATE_NS, LIST_NS, WATCH_NS):
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await call(api, "POST", "/api/v1/namespaces", namespace)
        # pods need their namespace's `default` service account, which the (stopped) controllers would add
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        await call(api, "POST", f"/api/v1/namespaces/{name}/serviceaccounts", account)
    cpu = CpuSnapshot.take(server_pid)
    created, creates = await creates_per_second(api, failures)
    creates_note = f"{cpu.busy_since()}; errors {failures.total('create')}"
    names = await fill(api, LIST_NS, LIST_PODS)
    cpu = CpuSnapshot.take(server_pid)
    gets = await gets_per_second(api, names, failures)
    gets_note = f"{cpu.busy_since()}; errors {failures.total('get')}"
    lists = []
    for label, accept, key in (("JSON", JSON, "items"), ("Table", TABLE, "rows")):
        cpu = CpuSnapshot.take(server_pid)
        ms = await list_milliseconds(api, accept, key)
        title = f"list {LIST_PODS // 1000}k pods, {label} (median of {LIST_RUNS})"
        lists.append(Row(title, ms, "ms", 300, note=cpu.busy_since()))
    loaded_rss = rss_megabytes(server_pid)
    cpu = CpuSnapshot.take(server_pid)
    p50, p99, lost = await watch_latency_ms(api)
    watch_note = f"{cpu.busy_since()}; lost {lost} of {WATCHERS * WATCH_UPDATES}"
    watching = f"{WATCHERS} watchers x {WATCH_UPDATES}"
    return [
        Row("RSS after the pod load", loaded_rss, "MB", note=f"{created + LIST_PODS:,} pods stored"),
        Row(f"creates/s ({CLIENTS} clients)", creates, "/s", 2000, True, creates_note),
        Row(f"gets/s ({CLIENTS} clients)", gets, "/s", 5000, True, gets_note),
        *lists,
        Row(f"watch p50 ({watching})", p50, "ms", note=watch_note),
        Row(f"watch p99 ({watching})", p99, "ms", 20),
    ]


async def start_timed(directory: Path, extra: tuple[str, ...]) -> tuple[Cluster, float]:
    """Start `kube-shim up` on `directory` and the seconds from process start to the first `/readyz` 200."""
    port = free_port()
    started = time.perf_counter()
    # the API server alone: the in-process controllers and scheduler would watch and write pods too
    alone = ("--nodes", "0", "--no-scheduler", "--no-controllers")
    launch = asyncio.create_task(asyncio.to_thread(start_cluster, directory, port, extra, alone))
    # /readyz is public, and on the first start the CA does not exist yet: poll without verifying TLS
    connector = aiohttp.TCPConnector(ssl=False, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as probe:
        while time.perf_counter() < started + READY_DEADLINE:
            if launch.done() and launch.exception():
                await launch  # the server exited: raises with its output
            try:
                async with probe.get(f"https://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        ready = time.perf_counter() - started
                        return await launch, ready
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(READY_POLL)
    (await launch).stop()
    raise RuntimeError(f"/readyz did not answer 200 within {READY_DEADLINE:g}s")


@contextlib.asynccontextmanager
async def api_session(access: ClusterAccess) -> AsyncIterator[aiohttp.ClientSession]:
    """A keep-alive session with room for every client and watcher at once, authenticated as the admin."""
    connector = aiohttp.TCPConnector(ssl=access.ssl_context(), limit=CLIENTS + WATCHERS + 10)
    headers = {"Authorization": f"Bearer {access.token}", "Accept": JSON, "User-Agent": "bench-api"}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(access.server, connector=connector, headers=headers, timeout=timeout) as s:
        yield s


async def creates_per_second(api: aiohttp.ClientSession, failures: Failures) -> tuple[int, float]:
    """Pods created (201s), and per second, by CLIENTS clients each creating pods back to back."""
    path = f"/api/v1/namespaces/{CREATE_NS}/pods?fieldManager=kubectl-run"
    headers = {"Content-Type": JSON, "Accept": f"{JSON}, */*"}
    sequence = Counter[int]()

    async def create(client: int) -> bool:
        sequence[client] += 1
        body = orjson.dumps(kubectl_run_pod(f"c{client}-{sequence[client]}"))
        async with api.post(path, data=body, headers=headers) as response:
            answer = await response.read()
        if response.status == 201:
            return True
        failures.record("create", response.status, answer)
        return False

    return await successes_per_second(create)


async def gets_per_second(api: aiohttp.ClientSession, names: list[str], failures: Failures) -> float:
    """200s per second for CLIENTS clients each getting random existing pods back to back."""
    pickers = [random.Random(client).choice for client in range(CLIENTS)]

    async def get(client: int) -> bool:
        async with api.get(f"/api/v1/namespaces/{LIST_NS}/pods/{pickers[client](names)}") as response:
            answer = await response.read()
        if response.status == 200:
            return True
        failures.record("get", response.status, answer)
        return False

    return (await successes_per_second(get))[1]


async def list_milliseconds(api: aiohttp.ClientSession, accept: str, key: str) -> float:
    """Median time to list every pod of LIST_NS with `accept` and read the whole body."""
    times = []
    for _ in range(LIST_RUNS):
        start = time.perf_counter()
        async with api.get(f"/api/v1/namespaces/{LIST_NS}/pods", headers={"Accept": accept}) as response:
            body = await response.read()
        times.append(time.perf_counter() - start)
        if response.status != 200:
            raise ApiException(response.status, orjson.loads(body))
        listed = len(orjson.loads(body).get(key) or [])
        if listed != LIST_PODS:
            raise RuntimeError(f"a list with Accept {accept!r} returned {listed} {key}, expected {LIST_PODS}")
    return statistics.median(times) * 1000


async def watch_latency_ms(api: aiohttp.ClientSession) -> tuple[float, float, int]:
    """p50 and p99 of write-sent to event-received over WATCHERS x WATCH_UPDATES, and how many never came."""
    pods = await fill(api, WATCH_NS, WATCH_PODS)
    listed = orjson.loads(await call(api, "GET", f"/api/v1/namespaces/{WATCH_NS}/pods"))
    sent: dict[str, float] = {}
    seen: Counter[str] = Counter()
    latencies: list[float] = []
    all_seen: dict[str, asyncio.Event] = {}
    everything_seen = asyncio.Event()
    expected = WATCHERS * WATCH_UPDATES

    def arrived(seq: str, now: float) -> None:
        latencies.append(now - sent[seq])
        seen[seq] += 1
        if seen[seq] == WATCHERS:
            all_seen[seq].set()
        if len(latencies) == expected:
            everything_seen.set()

    watchers = [
        asyncio.create_task(watch(api, listed["metadata"]["resourceVersion"], arrived)) for _ in range(WATCHERS)
    ]
    try:
        await update(api, pods[0], "warmup", sent, all_seen)  # once every watcher has this, all are streaming
        await wait_or_fail(all_seen["warmup"].wait(), watchers)
        latencies.clear()
        for i in range(WATCH_UPDATES):
            await update(api, pods[i % len(pods)], str(i), sent, all_seen)
            await asyncio.sleep(WATCH_SPACING)
        with contextlib.suppress(TimeoutError):  # what never arrived is reported as lost
            await wait_or_fail(everything_seen.wait(), watchers)
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000, expected - len(latencies)


async def watch(api: aiohttp.ClientSession, resource_version: str, arrived: Callable[[str, float], None]) -> None:
    """Stream WATCH_NS's pod events from `resource_version`, calling `arrived(seq, now)` per bench update."""
    params = {"watch": "true", "resourceVersion": resource_version}
    async with api.get(f"/api/v1/namespaces/{WATCH_NS}/pods", params=params) as response:
        if response.status != 200:
            raise ApiException(response.status, orjson.loads(await response.read()))
        async for line in response.content:
            now = time.perf_counter()
            if not line.strip():
                continue
            event = orjson.loads(line)
            if event["type"] == "ERROR":
                raise ApiException(event["object"].get("code", 0), event["object"])
            seq = (event["object"]["metadata"].get("labels") or {}).get("bench-seq")
            if event["type"] == "MODIFIED" and seq is not None:
                arrived(seq, now)


async def update(
    api: aiohttp.ClientSession, pod: str, seq: str, sent: dict[str, float], all_seen: dict[str, asyncio.Event]
) -> None:
    """PATCH the label bench-seq=`seq` onto `pod`, noting when it was sent."""
    all_seen[seq] = asyncio.Event()
    sent[seq] = time.perf_counter()
    patch = {"metadata": {"labels": {"bench-seq": seq}}}
    await call(api, "PATCH", f"/api/v1/namespaces/{WATCH_NS}/pods/{pod}", patch, MERGE_PATCH)


async def wait_or_fail(waiting: Awaitable[Any], watchers: list[asyncio.Task[None]]) -> None:
    """Wait up to WATCH_DEADLINE, but raise at once if a watcher died (its error is the answer)."""
    waiter = asyncio.ensure_future(waiting)
    done, _ = await asyncio.wait([waiter, *watchers], timeout=WATCH_DEADLINE, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return
    waiter.cancel()
    if not done:
        raise TimeoutError
    done.pop().result()  # a watcher that failed raises its error here
    raise RuntimeError("a watch stream ended early")


async def successes_per_second(one_request: Callable[[int], Awaitable[bool]]) -> tuple[int, float]:
    """Successes, and successes per second, of CLIENTS tasks each calling `one_request(client)` for PHASE_SECONDS."""
    done = 0
    deadline = time.perf_counter() + PHASE_SECONDS

    async def client(number: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            succeeded = await one_request(number)  # not `done += await ...`: that reads `done` before awaiting
            done += succeeded

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return done, done / (time.perf_counter() - start)


async def fill(api: aiohttp.ClientSession, namespace: str, count: int) -> list[str]:
    """Create `count` pods in `namespace` (untimed) with CLIENTS concurrent clients; their names."""
    names = [f"pod-{i:05d}" for i in range(count)]
    path = f"/api/v1/namespaces/{namespace}/pods?fieldManager=kubectl-run"

    async def create(share: list[str]) -> None:
        for name in share:
            await call(api, "POST", path, kubectl_run_pod(name))

    await asyncio.gather(*(create(names[c::CLIENTS]) for c in range(CLIENTS)))
    return names


async def call(api: aiohttp.ClientSession, method: str, path: str, body: Any = None, content_type: str = JSON) -> bytes:
    """One untimed request; a non-2xx answer raises ApiException with the server's Status."""
    data = None if body is None else orjson.dumps(body)
    headers = {"Content-Type": content_type} if data is not None else {}
    async with api.request(method, path, data=data, headers=headers) as response:
        answer = await response.read()
    if response.status >= 300:
        raise ApiException(response.status, orjson.loads(answer) if answer else {})
    return answer


def kubectl_run_pod(name: str) -> dict[str, Any]:
    """The body `kubectl run NAME --image=nginx` POSTs."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": None, "labels": {"run": name}},
        "spec": {
            "containers": [{"name": name, "image": "nginx", "resources": {}}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
        },
        "status": {},
    }


def rss_megabytes(pid: int) -> float:
    """VmRSS of process `pid` in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far."""
    # the command name (field 2) may contain spaces; the numeric fields follow its closing parenthesis
    fields_after_name = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields_after_name[11]) + int(fields_after_name[12])) / os.sysconf("SC_CLK_TCK")


def print_table(rows: list[Row]) -> None:
    """Figure, value, target, met?, and the CPU note."""
    header = f"{'figure':<42}{'value':>14}  {'target':<14}{'met?':<6}notes"
    print(header)
    print("-" * (len(header) + 40))
    for row in rows:
        value = f"{row.value:,.0f} {row.unit}" if row.value >= 100 else f"{row.value:.1f} {row.unit}"
        print(f"{row.figure:<42}{value:>14}  {row.target_text:<14}{row.met:<6}{row.note}")


def print_failures(failures: Failures) -> None:
    """Each failing (phase, code) with its count and the first body the server sent."""
    if not failures.counts:
        print("\nno errors in the timed phases")
        return
    print("\nerrors in the timed phases (first body of each):")
    for (phase, status), count in sorted(failures.counts.items()):
        body = failures.bodies[phase, status].decode(errors="replace")
        print(f"  {phase} {status} x{count}: {body[:1000]}")


if __name__ == "__main__":
    uvloop.run(main())
