"""What only the etcd backend has: a shared etcd, key prefixes, etcd's own revisions and errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from shim.store import (
    CompactedError,
    ConflictError,
    EventType,
    FutureRevisionError,
    KeyNotFoundError,
    StoreError,
)
from shim.store.etcd import EtcdStore, open_etcd_store
from tests.etcd_server import EtcdServer, free_ports
from tests.prerequisites import needs_etcd

pytestmark = needs_etcd

OpenEtcd = Callable[..., Awaitable[EtcdStore]]


@pytest.fixture
async def open_etcd(etcd_server: EtcdServer) -> AsyncIterator[OpenEtcd]:
    """Opens EtcdStores on the session's etcd, by default each under a fresh prefix; closes them after."""
    opened: list[EtcdStore] = []

    async def open_one(prefix: str | None = None, **options: int) -> EtcdStore:
        prefix = prefix or f"/t-{uuid.uuid4().hex}"
        store = await open_etcd_store([etcd_server.endpoint], prefix=prefix, **options)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


async def test_two_stores_on_one_etcd_see_each_others_writes_through_watch(open_etcd: OpenEtcd) -> None:
    prefix = f"/shared-{uuid.uuid4().hex}"
    watching, writing = await open_etcd(prefix), await open_etcd(prefix)
    events = watching.watch("/registry/", await watching.current_revision())
    written = await writing.create("/registry/pods/default/a", b"from the other server")
    event = await asyncio.wait_for(anext(events), 5)
    assert (event.type, event.kv) == (EventType.PUT, written)
    await events.aclose()


async def test_a_prefix_keeps_each_cluster_to_its_own_keys(open_etcd: OpenEtcd) -> None:
    mine, theirs = await open_etcd(), await open_etcd()
    start = await mine.current_revision()
    await theirs.create("/registry/pods/default/x", b"theirs")
    own = await mine.create("/registry/pods/default/y", b"mine")
    listed = await mine.list("")
    assert [kv.key for kv in listed.items] == ["/registry/pods/default/y"]
    assert await mine.get("/registry/pods/default/x") is None
    event = await asyncio.wait_for(anext(mine.watch("", start)), 5)
    assert event.kv == own


async def test_list_pages_stay_at_the_first_pages_revision(open_etcd: OpenEtcd) -> None:
    store = await open_etcd()
    for name in "abcde":
        await store.create(f"/p/{name}", name.encode())
    first = await store.list("/p/", limit=2)
    assert [kv.key for kv in first.items] == ["/p/a", "/p/b"] and first.more
    await store.update("/p/c", b"changed", (await store.get("/p/c")).mod_revision)
    await store.create("/p/f", b"late")
    rest = await store.list("/p/", first.revision, continue_from=first.items[-1].key + "\x00")
    assert [(kv.key, kv.value) for kv in rest.items] == [("/p/c", b"c"), ("/p/d", b"d"), ("/p/e", b"e")]
    assert not rest.more and rest.revision == first.revision


async def test_update_and_delete_of_a_missing_key_are_not_found(open_etcd: OpenEtcd) -> None:
    store = await open_etcd()
    with pytest.raises(KeyNotFoundError):
        await store.update("/missing", b"x", 1)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/missing")
    with pytest.raises(KeyNotFoundError):
        await store.delete("/missing", expected_mod_revision=1)


async def test_delete_with_a_stale_revision_conflicts_and_keeps_the_key(open_etcd: OpenEtcd) -> None:
    store = await open_etcd()
    created = await store.create("/d", b"1")
    updated = await store.update("/d", b"2", created.mod_revision)
    with pytest.raises(ConflictError) as err:
        await store.delete("/d", expected_mod_revision=created.mod_revision)
    assert err.value.actual == updated
    deleted = await store.delete("/d", expected_mod_revision=updated.mod_revision)
    assert (deleted.value, deleted.create_revision) == (b"2", created.create_revision)
    assert deleted.mod_revision > updated.mod_revision


async def test_reads_below_a_compaction_fail_with_the_compacted_revision(open_etcd: OpenEtcd) -> None:
    store = await open_etcd()
    old = await store.create("/c", b"old")
    await store.update("/c", b"new", old.mod_revision)
    point = await store.current_revision()
    await store.compact(point)
    with pytest.raises(CompactedError) as err:
        await store.get("/c", old.mod_revision)
    assert (err.value.requested, err.value.compacted) == (old.mod_revision, point)
    assert (await store.get("/c", point)).value == b"new"


async def test_a_compaction_by_another_user_of_the_etcd_is_discovered(open_etcd: OpenEtcd) -> None:
    store, other = await open_etcd(), await open_etcd()
    first = await store.create("/k", b"1")
    for i in range(20):
        await other.create(f"/o/{i}", b"x")
    point = await other.current_revision() - 3
    await other.compact(point)
    assert await store.compacted_revision() == point
    with pytest.raises(CompactedError) as err:
        async for _ in store.watch("/", first.mod_revision - 1):
            pass
    assert err.value.compacted == point


async def test_a_read_at_a_future_revision_fails(open_etcd: OpenEtcd) -> None:
    store = await open_etcd()
    current = await store.current_revision()
    with pytest.raises(FutureRevisionError) as err:
        await store.list("/", current + 1000)
    assert err.value.current >= current


async def test_a_watcher_that_stops_reading_is_cut_off_once_its_backlog_overflows(
    open_etcd: OpenEtcd,
) -> None:
    store = await open_etcd(watcher_backlog=5)
    events = store.watch("/b/", await store.current_revision())
    first = asyncio.ensure_future(anext(events))
    await store.create("/b/0", b"x")
    assert (await asyncio.wait_for(first, 5)).kv.key == "/b/0"
    # ten times the backlog: etcd delivers each event long before the last write is acknowledged
    for i in range(1, 51):
        await store.create(f"/b/{i}", b"x")
    seen = []
    with pytest.raises(CompactedError):
        async with asyncio.timeout(5):
            async for event in events:
                seen.append(event)
    assert len(seen) <= 5


async def test_closing_the_store_ends_its_watches_with_an_error(open_etcd: OpenEtcd) -> None:
    store = await open_etcd()
    events = store.watch("/", await store.current_revision())
    waiting = asyncio.ensure_future(anext(events))
    await store.create("/first", b"x")
    assert (await asyncio.wait_for(waiting, 5)).kv.key == "/first"
    waiting = asyncio.ensure_future(anext(events))
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(waiting, 5)


async def test_several_endpoints_fail_over_to_a_live_member(etcd_server: EtcdServer) -> None:
    (dead_port,) = free_ports(1)
    store = await open_etcd_store([f"127.0.0.1:{dead_port}", etcd_server.endpoint], prefix="/failover")
    try:
        assert await store.current_revision() > 0
    finally:
        await store.close()


async def test_an_unreachable_etcd_is_a_store_error() -> None:
    (dead_port,) = free_ports(1)
    with pytest.raises(StoreError, match="unavailable"):
        await open_etcd_store([f"127.0.0.1:{dead_port}"], timeout=5)


async def test_a_stopped_etcd_fails_reads_and_watches_with_store_errors(tmp_path: Path) -> None:
    with EtcdServer(tmp_path) as private:
        store = await open_etcd_store([private.endpoint], timeout=5)
        events = store.watch("/", await store.current_revision())
        waiting = asyncio.ensure_future(anext(events))
        await store.create("/before", b"x")
        assert (await asyncio.wait_for(waiting, 5)).kv.key == "/before"
        waiting = asyncio.ensure_future(anext(events))
    try:
        with pytest.raises(StoreError, match="unavailable"):
            await asyncio.wait_for(waiting, 30)
        with pytest.raises(StoreError, match="unavailable"):
            await store.get("/before")
    finally:
        await store.close()
