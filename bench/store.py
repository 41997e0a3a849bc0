"""Store benchmark: the memory and SQLite backends against a real etcd on loopback, through the same API.

Run from the repo root: `python -m bench.store`. For each backend it measures creates per second with 1 and
50 concurrent writers, gets per second with 50 concurrent readers, the time to list 10k keys, and watch
delivery latency with 100 watchers: from the moment a write is issued until each watcher receives its
event (every write is awaited by all watchers before the next one). Each value is 1 KiB. etcd runs with
its defaults (fsync on every commit), in a temporary directory on the same disk as the SQLite file.
"""

from __future__ import annotations

import asyncio
import platform
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from pathlib import Path

import uvloop

from shim.store import Store
from shim.store.etcd import open_etcd_store
from shim.store.memory import open_memory_store
from shim.store.sqlite import open_sqlite_store
from tests.etcd_server import ETCD_BINARY, EtcdServer

VALUE = b"v" * 1024
PHASE_SECONDS = 2.0  # each throughput phase runs this long
MANY = 50  # concurrent writers, and concurrent readers
LIST_KEYS = 10_000
LIST_RUNS = 5
WATCHERS = 100
WATCH_WRITES = 40
WATCH_DEADLINE = 30.0  # a write all watchers have not seen by then is a broken backend, not a slow one


@dataclass
class Figures:
    """One backend's results; higher is better for rates, lower for times."""

    puts_1: float
    puts_50: float
    gets_50: float
    list_10k_ms: float
    watch_p50_ms: float
    watch_p99_ms: float


COLUMNS = {
    "puts_1": "put/s 1w",
    "puts_50": "put/s 50w",
    "gets_50": "get/s 50r",
    "list_10k_ms": "list 10k ms",
    "watch_p50_ms": "watch p50 ms",
    "watch_p99_ms": "watch p99 ms",
}


async def measure(store: Store) -> Figures:
    """Run every phase against `store`, each under its own key prefix."""
    puts_1 = await puts_per_second(store, "/bench/put1/", writers=1)
    puts_50 = await puts_per_second(store, "/bench/put50/", writers=MANY)
    keys = await fill(store, "/bench/list/", LIST_KEYS)
    list_ms = await list_milliseconds(store, "/bench/list/", LIST_KEYS)
    gets = await gets_per_second(store, keys, readers=MANY)
    p50, p99 = await watch_latency_ms(store, "/bench/watch/")
    return Figures(puts_1, puts_50, gets, list_ms, p50, p99)


async def puts_per_second(store: Store, prefix: str, writers: int) -> float:
    """Creates completed per second by `writers` tasks writing as fast as they can for PHASE_SECONDS."""
    done = 0
    deadline = time.perf_counter() + PHASE_SECONDS

    async def write(writer: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            await store.create(f"{prefix}{writer}/{i}", VALUE)
            i += 1
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(write(w) for w in range(writers)))
    return done / (time.perf_counter() - start)


async def fill(store: Store, prefix: str, count: int) -> list[str]:
    """Create `count` keys under `prefix` (untimed) with MANY concurrent writers."""
    keys = [f"{prefix}{i:06d}" for i in range(count)]

    async def write(share: list[str]) -> None:
        for key in share:
            await store.create(key, VALUE)

    await asyncio.gather(*(write(keys[w::MANY]) for w in range(MANY)))
    return keys


async def list_milliseconds(store: Store, prefix: str, expected: int) -> float:
    """Median time of one unpaginated list of every key under `prefix`."""
    times = []
    for _ in range(LIST_RUNS):
        start = time.perf_counter()
        result = await store.list(prefix)
        times.append(time.perf_counter() - start)
        if len(result.items) != expected:
            raise RuntimeError(f"listed {len(result.items)} keys, expected {expected}")
    return statistics.median(times) * 1000


async def gets_per_second(store: Store, keys: list[str], readers: int) -> float:
    """Gets of random existing keys completed per second by `readers` tasks over PHASE_SECONDS."""
    done = 0
    deadline = time.perf_counter() + PHASE_SECONDS

    async def read(seed: int) -> None:
        nonlocal done
        pick = random.Random(seed).choice
        while time.perf_counter() < deadline:
            if await store.get(pick(keys)) is None:
                raise RuntimeError("a written key was not found")
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(read(r) for r in range(readers)))
    return done / (time.perf_counter() - start)


async def watch_latency_ms(store: Store, prefix: str) -> tuple[float, float]:
    """p50 and p99 of issue-to-delivery time over WATCHERS watchers x WATCH_WRITES writes."""
    issued: dict[str, float] = {}
    latencies: list[float] = []
    seen: dict[str, int] = {}
    all_seen: dict[str, asyncio.Event] = {}

    async def watch(from_revision: int) -> None:
        async for event in store.watch(prefix, from_revision):
            key = event.kv.key
            latencies.append(time.perf_counter() - issued[key])
            seen[key] += 1
            if seen[key] == WATCHERS:
                all_seen[key].set()

    async def write(key: str) -> None:
        seen[key] = 0
        all_seen[key] = asyncio.Event()
        issued[key] = time.perf_counter()
        await store.create(key, VALUE)
        await asyncio.wait_for(all_seen[key].wait(), WATCH_DEADLINE)

    watchers = [asyncio.create_task(watch(await store.current_revision())) for _ in range(WATCHERS)]
    try:
        await write(f"{prefix}warmup")  # every watcher is established once all of them saw this
        latencies.clear()
        for i in range(WATCH_WRITES):
            await write(f"{prefix}{i}")
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


async def run(directory: Path) -> dict[str, Figures]:
    """Measure every backend; etcd is started here and stopped afterwards."""
    with EtcdServer(directory / "etcd") as etcd:
        openers: dict[str, Callable[[], Awaitable[Store]]] = {
            "memory": open_memory_store,
            "sqlite": lambda: open_sqlite_store(directory / "store.db"),
            "etcd": lambda: open_etcd_store([etcd.endpoint], prefix="/bench"),
        }
        results = {}
        for name, open_store in openers.items():
            store = await open_store()
            try:
                results[name] = await measure(store)
            finally:
                await store.close()
            print(f"  measured {name}", flush=True)
    return results


def print_table(results: dict[str, Figures]) -> None:
    """The figures per backend, then each backend as a ratio of etcd's figures."""
    names = [f.name for f in fields(Figures)]
    header = f"{'':<16}" + "".join(f"{COLUMNS[n]:>14}" for n in names)
    print(header)
    print("-" * len(header))
    for backend, figures in results.items():
        print(f"{backend:<16}" + "".join(f"{getattr(figures, n):>14,.1f}" for n in names))
    etcd = results["etcd"]
    for backend in ("memory", "sqlite"):
        ratios = [getattr(results[backend], n) / getattr(etcd, n) for n in names]
        print(f"{backend + '/etcd':<16}" + "".join(f"{r:>13.2f}x" for r in ratios))
    print("(ratios: above 1 is better for rates, below 1 is better for times)")
    ratio = results["sqlite"].puts_50 / etcd.puts_50
    verdict = "met" if ratio >= 1 else "NOT met"
    print(
        f"\nbaseline: etcd {etcd.puts_50:,.0f} put/s at {MANY} writers (through EtcdStore); "
        f"sqlite {results['sqlite'].puts_50:,.0f} = {ratio:.2f}x etcd -> target sqlite >= etcd {verdict}"
    )


def etcd_version() -> str:
    output = subprocess.run([ETCD_BINARY or "etcd", "--version"], capture_output=True, text=True).stdout
    return output.splitlines()[0] if output else "unknown"


async def main() -> None:
    print(f"store benchmark: Python {platform.python_version()}, uvloop, {etcd_version()}, ", end="")
    print(f"{len(VALUE)} B values, {PHASE_SECONDS:g}s per throughput phase", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        results = await run(Path(tmp))
    print()
    print_table(results)
    print(f"\n(total {time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    uvloop.run(main())
