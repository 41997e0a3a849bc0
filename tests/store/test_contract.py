"""The store contract (etcd MVCC semantics), run against every backend."""

from __future__ import annotations

import asyncio

import pytest

from shim.store import CompactedError, ConflictError, EventType, KeyExistsError, Store


async def test_create_then_get_returns_value_and_revisions(store: Store) -> None:
    kv = await store.create("/registry/pods/default/a", b"v1")
    got = await store.get("/registry/pods/default/a")
    assert got == kv
    assert kv.create_revision == kv.mod_revision == await store.current_revision()


async def test_create_existing_key_fails(store: Store) -> None:
    await store.create("/k", b"1")
    with pytest.raises(KeyExistsError):
        await store.create("/k", b"2")


async def test_update_with_stale_revision_conflicts(store: Store) -> None:
    kv = await store.create("/k", b"1")
    kv2 = await store.update("/k", b"2", kv.mod_revision)
    with pytest.raises(ConflictError) as err:
        await store.update("/k", b"3", kv.mod_revision)
    assert err.value.actual.value == b"2"
    assert kv2.create_revision == kv.create_revision


async def test_watch_sees_every_event_once_in_order_under_concurrent_writers(store: Store) -> None:
    start = await store.current_revision()
    writers, per_writer = 10, 30

    async def write(w: int) -> None:
        for i in range(per_writer):
            await store.create(f"/w/{w}/{i}", b"x")

    seen = []

    async def watch() -> None:
        async for event in store.watch("/w/", start):
            seen.append(event.revision)
            if len(seen) == writers * per_writer:
                return

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(write(w) for w in range(writers)))
    await asyncio.wait_for(watcher, 10)
    assert seen == list(range(start + 1, start + 1 + writers * per_writer))


async def test_watch_below_compaction_is_refused(store: Store) -> None:
    for i in range(5):
        await store.create(f"/c/{i}", b"x")
    await store.compact(await store.current_revision() - 1)
    with pytest.raises(CompactedError):
        async for _ in store.watch("/c/", 1):
            pass


async def test_delete_is_a_tombstone_event(store: Store) -> None:
    kv = await store.create("/d", b"gone")
    events = store.watch("/d", kv.mod_revision)
    deleted = await store.delete("/d")
    event = await asyncio.wait_for(anext(events), 5)
    assert event.type is EventType.DELETE
    assert event.revision == deleted.mod_revision
    assert event.prev_kv is not None and event.prev_kv.value == b"gone"
    assert await store.get("/d") is None
