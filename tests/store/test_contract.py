"""The store contract (etcd MVCC semantics), run against every backend."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from shim.store import (
    CompactedError,
    ConflictError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    Store,
)
from shim.store.compactor import Compactor

if TYPE_CHECKING:
    from tests.store.conftest import StoreFactory

DEADLINE = 10  # seconds a test may wait for an event before it is a failure, never a pacing delay


async def collect(store: Store, prefix: str, after: int, count: int) -> list[Event]:
    """The first `count` events of a watch."""
    events = []
    async for event in store.watch(prefix, after):
        events.append(event)
        if len(events) == count:
            return events
    raise AssertionError("watch ended early")


def skip_unless_log_store(factory: StoreFactory) -> None:
    if not factory.log_store:
        pytest.skip("window= and watcher_backlog= are LogStore options")


def summary(events: list[Event]) -> list[tuple[EventType, str, bytes, int]]:
    return [(e.type, e.kv.key, e.kv.value, e.revision) for e in events]


# -- create, update, delete -----------------------------------------------------------------------------


async def test_create_then_get_returns_value_and_revisions(store: Store) -> None:
    kv = await store.create("/registry/pods/default/a", b"v1")
    got = await store.get("/registry/pods/default/a")
    assert got == kv
    assert kv.create_revision == kv.mod_revision == await store.current_revision()


async def test_create_existing_key_fails(store: Store) -> None:
    await store.create("/k", b"1")
    with pytest.raises(KeyExistsError):
        await store.create("/k", b"2")


async def test_only_one_of_concurrent_creates_of_a_key_wins(store: Store) -> None:
    results = await asyncio.gather(*(store.create("/k", b"%d" % i) for i in range(8)), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, KeyExistsError) for r in results if r is not winners[0])
    assert await store.get("/k") == winners[0]


async def test_update_with_stale_revision_conflicts(store: Store) -> None:
    kv = await store.create("/k", b"1")
    kv2 = await store.update("/k", b"2", kv.mod_revision)
    with pytest.raises(ConflictError) as err:
        await store.update("/k", b"3", kv.mod_revision)
    assert err.value.actual.value == b"2"
    assert kv2.create_revision == kv.create_revision


async def test_only_one_of_concurrent_updates_from_one_revision_wins(store: Store) -> None:
    kv = await store.create("/k", b"0")
    updates = (store.update("/k", b"%d" % i, kv.mod_revision) for i in range(1, 9))
    results = await asyncio.gather(*updates, return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) for r in results if r is not winners[0])
    assert await store.get("/k") == winners[0]


async def test_update_or_delete_of_a_missing_key_is_not_found(store: Store) -> None:
    with pytest.raises(KeyNotFoundError):
        await store.update("/missing", b"x", 1)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/missing")


async def test_delete_with_stale_revision_conflicts_and_keeps_the_key(store: Store) -> None:
    kv = await store.create("/k", b"1")
    await store.update("/k", b"2", kv.mod_revision)
    with pytest.raises(ConflictError):
        await store.delete("/k", expected_mod_revision=kv.mod_revision)
    got = await store.get("/k")
    assert got is not None and got.value == b"2"


async def test_delete_is_a_tombstone_event(store: Store) -> None:
    kv = await store.create("/d", b"gone")
    events = store.watch("/d", kv.mod_revision)
    deleted = await store.delete("/d")
    event = await asyncio.wait_for(anext(events), 5)
    assert event.type is EventType.DELETE
    assert event.revision == deleted.mod_revision
    assert event.prev_kv is not None and event.prev_kv.value == b"gone"
    assert await store.get("/d") is None


async def test_a_deleted_key_stays_readable_at_older_revisions_and_can_be_created_again(store: Store) -> None:
    first = await store.create("/d", b"old")
    deleted = await store.delete("/d")
    assert deleted.value == b"old" and deleted.mod_revision > first.mod_revision
    assert (await store.list("/d")).items == []
    assert await store.get("/d", revision=first.mod_revision) == first
    again = await store.create("/d", b"new")
    assert again.create_revision == again.mod_revision > deleted.mod_revision


# -- list ------------------------------------------------------------------------------------------------


async def test_list_at_a_revision_shows_the_keys_as_they_were(store: Store) -> None:
    a1 = await store.create("/l/a", b"a1")
    b1 = await store.create("/l/b", b"b1")
    await store.create("/other", b"not under the prefix")
    then = await store.current_revision()
    await store.update("/l/a", b"a2", a1.mod_revision)
    await store.delete("/l/b")
    c1 = await store.create("/l/c", b"c1")

    old = await store.list("/l/", revision=then)
    assert old.items == [a1, b1] and old.revision == then and not old.more
    now = await store.list("/l/")
    assert [(kv.key, kv.value) for kv in now.items] == [("/l/a", b"a2"), ("/l/c", b"c1")]
    assert now.revision == c1.mod_revision == await store.current_revision()


async def test_list_or_get_at_a_future_revision_is_refused(store: Store) -> None:
    await store.create("/k", b"1")
    future = await store.current_revision() + 1
    with pytest.raises(FutureRevisionError):
        await store.list("/", revision=future)
    with pytest.raises(FutureRevisionError):
        await store.get("/k", revision=future)


async def test_pages_continue_at_the_first_pages_revision_across_concurrent_writes(store: Store) -> None:
    for i in range(0, 20, 2):
        await store.create(f"/p/{i:02}", b"v0")
    snapshot = await store.list("/p/")

    page = await store.list("/p/", limit=3)
    assert page.revision == snapshot.revision and page.more
    pages = [page]
    step = 0
    while page.more:
        # between pages, several writers change keys already listed, keys still to come, and new keys
        step += 1
        latest = {kv.key: kv for kv in (await store.list("/p/")).items}
        writes = [store.update(key, b"v%d" % step, kv.mod_revision) for key, kv in latest.items()]
        writes.append(store.create(f"/p/{2 * step + 1:02}", b"new"))
        await asyncio.gather(*writes)
        await store.delete(max(latest))
        page = await store.list("/p/", page.revision, limit=3, continue_from=page.items[-1].key + "\x00")
        pages.append(page)

    assert [kv for p in pages for kv in p.items] == snapshot.items
    assert all(len(p.items) == 3 for p in pages[:-1])
    assert {p.revision for p in pages} == {snapshot.revision}


# -- watch -----------------------------------------------------------------------------------------------


async def test_watch_from_the_past_replays_what_happened_since(store: Store) -> None:
    a = await store.create("/w/a", b"1")
    await store.update("/w/a", b"2", a.mod_revision)
    await store.create("/w/b", b"1")
    await store.delete("/w/a")
    events = await asyncio.wait_for(collect(store, "/w/", a.mod_revision, 3), DEADLINE)
    assert summary(events) == [
        (EventType.PUT, "/w/a", b"2", a.mod_revision + 1),
        (EventType.PUT, "/w/b", b"1", a.mod_revision + 2),
        (EventType.DELETE, "/w/a", b"", a.mod_revision + 3),
    ]
    assert [e.prev_kv.value if e.prev_kv else None for e in events] == [b"1", None, b"2"]


async def test_watch_from_now_sees_only_later_writes(store: Store) -> None:
    await store.create("/w/before", b"x")
    now = await store.current_revision()
    watch = asyncio.create_task(collect(store, "/w/", now, 2))
    await store.create("/other", b"not watched")
    after = await store.create("/w/after", b"y")
    await store.delete("/w/before")
    events = await asyncio.wait_for(watch, DEADLINE)
    assert summary(events) == [
        (EventType.PUT, "/w/after", b"y", after.mod_revision),
        (EventType.DELETE, "/w/before", b"", after.mod_revision + 1),
    ]


async def test_watch_from_a_future_revision_starts_there(store: Store) -> None:
    future = await store.current_revision() + 3
    watch = asyncio.create_task(collect(store, "/w/", future, 2))
    written = [await store.create(f"/w/{i}", b"x") for i in range(5)]
    events = await asyncio.wait_for(watch, DEADLINE)
    assert [e.kv for e in events] == written[3:]


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


async def test_watchers_joining_mid_storm_see_their_prefix_without_gaps_or_duplicates(store: Store) -> None:
    written: list[tuple[EventType, str, bytes, int]] = []
    watchers: list[tuple[int, asyncio.Task[list[Event]]]] = []
    end_key = "/storm/~end"

    async def watch_until_end(after: int) -> list[Event]:
        events = []
        async for event in store.watch("/storm/", after):
            events.append(event)
            if event.kv.key == end_key:
                return events
        raise AssertionError("watch ended early")

    async def join_watcher() -> None:
        after = await store.current_revision()
        watchers.append((after, asyncio.create_task(watch_until_end(after))))

    async def write(w: int) -> None:
        for round_ in range(6):
            key = f"/storm/{w}/{round_}"
            kv = await store.create(key, b"c")
            written.append((EventType.PUT, key, b"c", kv.mod_revision))
            kv = await store.update(key, b"u", kv.mod_revision)
            written.append((EventType.PUT, key, b"u", kv.mod_revision))
            await store.create(f"/calm/{w}/{round_}", b"elsewhere")
            if round_ % 2:
                deleted = await store.delete(key)
                written.append((EventType.DELETE, key, b"", deleted.mod_revision))
            if w == 0:
                await join_watcher()

    await join_watcher()
    await asyncio.gather(*(write(w) for w in range(8)))
    end = await store.create(end_key, b"")
    written.append((EventType.PUT, end_key, b"", end.mod_revision))
    written.sort(key=lambda w: w[3])

    assert len(watchers) == 7
    for after, task in watchers:
        events = await asyncio.wait_for(task, DEADLINE)
        assert summary(events) == [w for w in written if w[3] > after]


# -- compaction ------------------------------------------------------------------------------------------


async def test_watch_below_compaction_is_refused(store: Store) -> None:
    for i in range(5):
        await store.create(f"/c/{i}", b"x")
    await store.compact(await store.current_revision() - 1)
    with pytest.raises(CompactedError):
        async for _ in store.watch("/c/", 1):
            pass


async def test_reads_below_the_compacted_revision_fail_and_the_latest_state_survives(store: Store) -> None:
    a = await store.create("/c/a", b"a1")
    await store.create("/c/gone", b"x")
    old = await store.current_revision()
    a2 = await store.update("/c/a", b"a2", a.mod_revision)
    await store.delete("/c/gone")
    b = await store.create("/c/b", b"b1")
    compacted = b.mod_revision - 1
    await store.compact(compacted)
    assert await store.compacted_revision() == compacted

    with pytest.raises(CompactedError):
        await store.list("/c/", revision=old)
    with pytest.raises(CompactedError):
        await store.get("/c/a", revision=old)
    with pytest.raises(CompactedError):
        await anext(store.watch("/c/", old))
    assert (await store.list("/c/", revision=compacted)).items == [a2]
    assert (await store.list("/c/")).items == [a2, b]
    events = await asyncio.wait_for(collect(store, "/c/", compacted, 1), DEADLINE)
    assert [e.kv for e in events] == [b]
    assert (await store.create("/c/gone", b"again")).create_revision > compacted


async def test_compacting_everything_keeps_the_current_revision(store: Store) -> None:
    kv = await store.create("/k", b"x")
    deleted = await store.delete("/k")
    await store.compact(deleted.mod_revision)
    assert await store.current_revision() == deleted.mod_revision
    assert await store.get("/k") is None
    again = await store.create("/k", b"y")
    assert again.mod_revision == deleted.mod_revision + 1 and again.create_revision > kv.create_revision


async def test_compactor_keeps_a_window_of_revisions_and_never_goes_back(store: Store) -> None:
    for i in range(10):
        await store.create(f"/k/{i}", b"x")
    compactor = Compactor(store, keep_revisions=4)
    current = await store.current_revision()
    assert await compactor.compact_now() == current - 4
    assert await Compactor(store, keep_revisions=8).compact_now() == current - 4
    assert len((await store.list("/k/", revision=current - 4)).items) == 6


async def test_compactor_runs_by_itself_once_started(store: Store) -> None:
    for i in range(5):
        await store.create(f"/k/{i}", b"x")
    compactor = Compactor(store, interval=0.01, keep_revisions=2)
    compactor.start()
    try:
        async with asyncio.timeout(DEADLINE):
            while await store.compacted_revision() != await store.current_revision() - 2:
                await asyncio.sleep(0.01)
    finally:
        await compactor.stop()


# -- restart ---------------------------------------------------------------------------------------------


async def test_a_reopened_store_keeps_revisions_history_and_data(store_factory: StoreFactory) -> None:
    if not store_factory.durable:
        pytest.skip("the backend keeps nothing across a restart")
    store = await store_factory()
    a = await store.create("/r/a", b"a1")
    gone = await store.create("/r/gone", b"x")
    a2 = await store.update("/r/a", b"a2", a.mod_revision)
    compacted = a2.mod_revision
    b = await store.create("/r/b", b"b1")
    await store.compact(compacted)
    a3 = await store.update("/r/a", b"a3", a2.mod_revision)
    deleted = await store.delete("/r/b")
    await store.delete("/r/gone")
    current = await store.current_revision()
    await store.close()

    store = await store_factory()
    assert await store.current_revision() == current
    assert await store.compacted_revision() == compacted
    assert (await store.list("/r/")).items == [a3]
    assert (await store.list("/r/", revision=compacted)).items == [a2, gone]
    assert (await store.list("/r/", revision=b.mod_revision)).items == [a2, b, gone]
    with pytest.raises(CompactedError):
        await store.get("/r/a", revision=a.mod_revision)
    events = await asyncio.wait_for(collect(store, "/r/", compacted, 4), DEADLINE)
    assert [(e.type, e.kv, e.prev_kv) for e in events] == [
        (EventType.PUT, b, None),
        (EventType.PUT, a3, a2),
        (EventType.DELETE, KeyValue("/r/b", b"", b.create_revision, deleted.mod_revision), b),
        (EventType.DELETE, KeyValue("/r/gone", b"", gone.create_revision, current), gone),
    ]
    assert (await store.create("/r/c", b"c")).mod_revision == current + 1


async def test_a_store_compacted_past_its_last_write_reopens_at_the_same_revision(
    store_factory: StoreFactory,
) -> None:
    if not store_factory.durable:
        pytest.skip("the backend keeps nothing across a restart")
    store = await store_factory()
    await store.create("/k", b"x")
    deleted = await store.delete("/k")
    await store.compact(deleted.mod_revision)
    await store.close()

    store = await store_factory()
    assert await store.current_revision() == await store.compacted_revision() == deleted.mod_revision
    assert (await store.list("/")).items == []
    assert (await store.create("/k", b"y")).mod_revision == deleted.mod_revision + 1


# -- history beyond the in-memory window, watcher backlog: what a LogStore must meet ----------------------


async def test_list_at_an_old_revision_reads_values_that_left_the_memory_window(
    store_factory: StoreFactory,
) -> None:
    skip_unless_log_store(store_factory)
    store = await store_factory(window=4)
    kv = await store.create("/h/k", b"v0")
    first = kv
    for i in range(1, 20):
        kv = await store.update("/h/k", b"v%d" % i, kv.mod_revision)
    assert (await store.list("/h/", revision=first.mod_revision)).items == [first]
    fifth = await store.get("/h/k", revision=first.mod_revision + 5)
    assert fifth is not None and fifth.value == b"v5"


async def test_watch_from_before_the_memory_window_replays_from_the_log(store_factory: StoreFactory) -> None:
    skip_unless_log_store(store_factory)
    store = await store_factory(window=4)
    start = await store.current_revision()
    kv = await store.create("/h/k", b"v0")
    for i in range(1, 10):
        await store.create(f"/elsewhere/{i}", b"x")
        kv = await store.update("/h/k", b"v%d" % i, kv.mod_revision)
    await store.delete("/h/k")
    events = await asyncio.wait_for(collect(store, "/h/", start, 11), DEADLINE)
    values = [b"v%d" % i for i in range(10)]
    assert [e.revision for e in events] == [*range(start + 1, start + 21, 2), start + 20]
    assert [e.kv.value for e in events] == [*values, b""]
    assert [e.prev_kv.value if e.prev_kv else None for e in events] == [None, *values]
    assert events[-1].type is EventType.DELETE


async def test_a_watcher_that_never_reads_is_cut_off_when_its_backlog_overflows(
    store_factory: StoreFactory,
) -> None:
    skip_unless_log_store(store_factory)
    store = await store_factory(watcher_backlog=5)
    start = await store.current_revision()
    events = store.watch("/b/", start)
    first = asyncio.create_task(anext(events))
    await store.create("/b/0", b"x")
    assert (await asyncio.wait_for(first, DEADLINE)).kv.key == "/b/0"
    for i in range(1, 10):
        await store.create(f"/b/{i}", b"x")
    with pytest.raises(CompactedError):
        await asyncio.wait_for(anext(events), DEADLINE)
    assert (await store.get("/b/9")) is not None
