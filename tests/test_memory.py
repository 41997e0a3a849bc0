"""What the API server keeps stays the size of what it holds: stored values are not orjson's whole buffer, the
store's watch window is bounded in bytes as well as in events, and a watch its client walks away from is freed
at once, not left for the cyclic garbage collector (which the server tunes to run its full collection rarely:
such leftovers piled up for minutes in `bench.soak`). And the `KUBE_SHIM_TRACEMALLOC` hook writes snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shim.apiserver.app import build_app
from shim.apiserver.objects import encode
from shim.apiserver.resources import build_registry
from shim.heap import release_free_memory
from shim.store import Event
from shim.store.logstore import LogStore
from shim.store.memory import MemoryLog
from shim.store.sqlite import open_sqlite_store
from tests.cluster import start_cluster

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
OPEN_CONFIGMAP_WATCHES = 'apiserver_longrunning_requests{verb="WATCH",resource="configmaps"}'


def test_a_stored_value_takes_the_memory_of_its_length() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"v": "1" * 300}}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        values = [encode(obj) for _ in range(100)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    length = sum(len(v) for v in values)
    # each bytes object's header and the list are small beside its payload; orjson's buffer is 4 KiB and more
    assert held < 1.5 * length, f"100 stored values of {length // 100} bytes hold {held // 100} bytes each"


def test_releasing_free_memory_gives_back_pages_freed_below_the_top_of_the_heap() -> None:
    size = 1000  # a variable: `b"x" * 1000` would be one constant, not 50,000 objects
    blocks = [b"x" * size for _ in range(50_000)]  # 50 MB of malloc'd blocks (beyond pymalloc's 512 bytes)
    pinned = b"y" * size  # allocated after them: glibc can no longer shrink the heap from its top
    del blocks
    before = rss_bytes()
    assert release_free_memory(), "this C library cannot trim its heap"
    released = before - rss_bytes()
    assert released > 25_000_000, f"only {released} of 50 MB freed bytes went back to the OS"
    assert pinned


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_the_watch_window_holds_at_most_its_bytes_of_values_and_older_events_come_from_the_log(
    tmp_path: Path,
) -> None:
    store = await open_sqlite_store(tmp_path / "state.db", window_bytes=1_000_000)
    kv = await store.create("/big/k", b"0" * 100_000)
    start = kv.mod_revision
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1, 50):
            kv = await store.update("/big/k", b"%d" % (i % 10) * 100_000, kv.mod_revision)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # the newest value and a window of 1 MB; by its count alone (8192 events), all 49 updates: 4.9 MB
    assert held < 1_500_000, f"the store holds {held} bytes after 49 updates of 100 kB"
    events = store.watch("/big/", start - 1)
    seen: list[Event] = [await asyncio.wait_for(anext(events), 10) for _ in range(50)]
    assert [e.revision for e in seen] == list(range(start, start + 50))
    assert [e.kv.value[:1] for e in seen] == [b"%d" % (i % 10) for i in range(50)]
    await events.aclose()  # type: ignore[attr-defined]  # the stores return async generators
    await store.close()


async def test_a_watch_whose_client_stopped_reading_and_left_is_freed_without_the_cycle_collector() -> None:
    store = await LogStore.open(MemoryLog())
    server = TestServer(build_app(store, build_registry()), handler_cancellation=True)  # as ApiServer runs it
    async with TestClient(server) as client:
        assert (await client.post("/api/v1/namespaces", json={"metadata": {"name": "default"}})).status == 201
        assert (await client.post(CONFIGMAPS, json={"metadata": {"name": "a"}})).status == 201
        with cyclic_collector_off():
            watch = await client.get(CONFIGMAPS, params={"watch": "1"})
            assert (await asyncio.wait_for(watch.content.readline(), 10)).startswith(b'{"type":"ADDED"')
            # 20 MB of events the client does not read: the server's write waits for the socket to drain
            for i in range(40):
                big = {"metadata": {"name": f"big-{i}"}, "data": {"v": "x" * 500_000}}
                assert (await client.post(CONFIGMAPS, json=big)).status == 201
            transport = watch.connection.transport if watch.connection is not None else None
            assert transport is not None
            transport.abort()  # and then the client is gone
            watch.close()
            await until_no_open_watches(client)
            # only reference counting ran: whatever still lives was held by a cycle (or by anything else)
            watch_responses = [o for o in gc.get_objects() if type(o) is web.StreamResponse]
        assert watch_responses == [], "the watch's response outlived it"
    await store.close()


def test_with_kube_shim_tracemalloc_set_sigusr2_writes_an_allocation_snapshot(tmp_path: Path) -> None:
    prefix = tmp_path / "snapshot"
    cluster = start_cluster(tmp_path / "cluster", env={"KUBE_SHIM_TRACEMALLOC": str(prefix)})
    try:
        for number in (1, 2):
            cluster.process.send_signal(signal.SIGUSR2)
            cluster.reader.wait_for(f"tracemalloc snapshot written to {prefix}.{number}")
        first, second = (tracemalloc.Snapshot.load(f"{prefix}.{n}") for n in (1, 2))
        assert first.traceback_limit == 25 and first.traces  # what the server allocated since it served
        assert second.compare_to(first, "traceback")  # two of them diff by traceback
        assert cluster.process.poll() is None
    finally:
        cluster.stop()


@contextlib.contextmanager
def cyclic_collector_off() -> Iterator[None]:
    """Inside, only reference counting frees memory, as between the server's rare full collections."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def until_no_open_watches(client: TestClient[web.Request, web.Application]) -> None:
    """Wait, with a deadline, until the server has finished every configmaps watch handler."""
    async with asyncio.timeout(10):
        while f"{OPEN_CONFIGMAP_WATCHES} 0" not in await (await client.get("/metrics")).text():
            await asyncio.sleep(0.01)
