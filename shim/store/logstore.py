"""MVCC semantics written once over a `Log`: revisions, compare-and-swap, list at a revision, watch fan-out.

The process that opens the log owns it: an in-memory index holds every retained version's metadata and
each key's newest value, so reads never touch disk except for old history. Writes are validated against
the index (plus writes still being committed), stamped with the next revision, and committed in group
batches; a batch becomes visible to readers and watchers only once the log made it durable.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import collections
import itertools
from collections.abc import AsyncIterator

from sortedcontainers import SortedDict

from shim.store.base import (
    CompactedError,
    ConflictError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    Store,
    StoreError,
    prefix_end,
)
from shim.store.log import Log, Row

DEFAULT_WINDOW = 8192
# the window also stops at this many bytes of values (an event's and its previous version's): 8192 events of
# an often-updated 1 MiB ConfigMap would otherwise hold 8 GiB; a watch resuming from before it reads the log
DEFAULT_WINDOW_BYTES = 32 * 1024 * 1024
DEFAULT_WATCHER_BACKLOG = 10_000


class LogStore(Store):
    """A `Store` over any `Log`. Create with `await LogStore.open(log)`."""

    def __init__(
        self,
        log: Log,
        window: int = DEFAULT_WINDOW,
        watcher_backlog: int = DEFAULT_WATCHER_BACKLOG,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
    ) -> None:
        self._log = log
        self._latest: SortedDict = SortedDict()  # key -> newest Row (a tombstone stays until compacted)
        self._history: dict[str, list[Row]] = {}  # key -> retained rows, oldest first
        self._window: collections.deque[Event] = collections.deque()  # bounded by _remember
        self._window_events = window
        self._window_max_bytes = window_bytes
        self._window_bytes = 0
        self._applied = 0  # every revision up to here is durable and visible
        self._next = 1  # the revision the next write gets
        self._compacted = 0
        self._pending: dict[str, Row] = {}  # key -> newest row not yet durable
        self._queue: list[tuple[Row, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._watchers: set[WatchQueue] = set()
        self._watcher_backlog = watcher_backlog
        self._closed = False

    @classmethod
    async def open(cls, log: Log, **kwargs: int) -> LogStore:
        """Open `log` and rebuild the index from what it retains."""
        store = cls(log, **kwargs)
        state = await log.open()
        for row in state.rows:
            store._history.setdefault(row.key, []).append(row)
            store._latest[row.key] = row
        store._applied = state.current_revision
        store._next = state.current_revision + 1
        store._compacted = state.compacted_revision
        return store

    # -- reads ---------------------------------------------------------------------------------------------

    async def current_revision(self) -> int:
        return self._applied

    async def compacted_revision(self) -> int:
        return self._compacted

    async def get(self, key: str, revision: int | None = None) -> KeyValue | None:
        rev = self._check_read_revision(revision)
        row = self._row_at(key, rev)
        if row is None or row.deleted:
            return None
        await self._fill_values([row])
        return _kv(row)

    async def list(
        self,
        prefix: str,
        revision: int | None = None,
        limit: int | None = None,
        continue_from: str | None = None,
    ) -> ListResult:
        rev = self._check_read_revision(revision)
        start = prefix if continue_from is None or continue_from < prefix else continue_from
        rows: list[Row] = []
        more = False
        for key in self._latest.irange(start, prefix_end(prefix), inclusive=(True, False)):
            row = self._row_at(key, rev)
            if row is None or row.deleted:
                continue
            if limit and len(rows) >= limit:
                more = True
                break
            rows.append(row)
        await self._fill_values(rows)
        if revision is not None and self._compacted > rev:
            # compaction ran while old values were being read; some may be gone
            raise CompactedError(rev, self._compacted)
        return ListResult([_kv(r) for r in rows], rev, more)

    def _check_read_revision(self, revision: int | None) -> int:
        if revision is None or revision == 0:
            return self._applied
        if revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        if revision > self._applied:
            raise FutureRevisionError(revision, self._applied)
        return revision

    def _row_at(self, key: str, revision: int) -> Row | None:
        newest = self._latest.get(key)
        if newest is None or newest.revision <= revision:
            return newest
        history = self._history[key]
        i = bisect.bisect_right(history, revision, key=lambda r: r.revision)
        return history[i - 1] if i else None

    async def _fill_values(self, rows: builtins.list[Row]) -> None:
        missing = [r.revision for r in rows if r.value is None]
        if not missing:
            return
        values = await self._log.read_values(missing)
        for row in rows:
            if row.value is None:
                if row.revision not in values:
                    raise CompactedError(row.revision, self._compacted)
                row.value = values[row.revision]

    # -- writes --------------------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        current = self._newest(key)
        if current is not None and not current.deleted:
            raise KeyExistsError(key)
        rev = self._take_revision()
        row = Row(rev, key, rev, 0, False, value)
        await self._commit(row)
        return _kv(row)

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        current = self._newest(key)
        if current is None or current.deleted:
            raise KeyNotFoundError(key)
        if current.revision != expected_mod_revision:
            await self._fill_values([current])
            raise ConflictError(key, expected_mod_revision, _kv(current))
        rev = self._take_revision()
        row = Row(rev, key, current.create_revision, current.revision, False, value)
        await self._commit(row)
        return _kv(row)

    async def delete(self, key: str, expected_mod_revision: int | None = None) -> KeyValue:
        current = self._newest(key)
        if current is None or current.deleted:
            raise KeyNotFoundError(key)
        if expected_mod_revision is not None and current.revision != expected_mod_revision:
            await self._fill_values([current])
            raise ConflictError(key, expected_mod_revision, _kv(current))
        rev = self._take_revision()
        # the value of a pending row is always in memory; a committed newest row always keeps its value
        row = Row(rev, key, current.create_revision, current.revision, True, current.value)
        await self._commit(row)
        return KeyValue(key, row.value or b"", row.create_revision, rev)

    def _newest(self, key: str) -> Row | None:
        if self._closed:
            raise StoreError("store is closed")
        return self._pending.get(key) or self._latest.get(key)

    def _take_revision(self) -> int:
        rev = self._next
        self._next += 1
        return rev

    async def _commit(self, row: Row) -> None:
        """Queue `row` for the next group commit and wait until it is durable and visible."""
        self._pending[row.key] = row
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, done))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_batches())
        await done

    async def _commit_batches(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                rows = [row for row, _ in batch]
                try:
                    await self._log.append(rows)
                except BaseException as exc:
                    self._abandon(batch, exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                self._apply(rows)
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._committer = None

    def _abandon(self, batch: builtins.list[tuple[Row, asyncio.Future[None]]], exc: BaseException) -> None:
        """A failed append takes every write queued behind it down too: their revisions assumed it."""
        batch = batch + self._queue
        self._queue = []
        self._pending.clear()
        self._next = self._applied + 1
        error = exc if isinstance(exc, StoreError) else StoreError(f"write failed: {exc}")
        for _, done in batch:
            if not done.done():
                done.set_exception(error)

    def _apply(self, rows: builtins.list[Row]) -> None:
        """Make durable rows visible: index, recent window, watchers."""
        for row in rows:
            key = row.key
            previous = self._latest.get(key)
            self._latest[key] = row
            self._history.setdefault(key, []).append(row)
            if self._pending.get(key) is row:
                del self._pending[key]
            prev_kv = _kv(previous) if previous is not None and not previous.deleted else None
            if previous is not None and self._window and previous.revision < self._window[0].revision:
                previous.value = None  # superseded and outside the window: the log has it
            event = _event(row, prev_kv)
            self._remember(event)
            self._applied = row.revision
            for watcher in self._watchers:
                if key.startswith(watcher.prefix):
                    watcher.push(event)

    def _remember(self, event: Event) -> None:
        """Keep `event` in the recent window, then evict its oldest events beyond its count and its bytes (but
        never the newest); an evicted event's row drops its value if superseded."""
        window = self._window
        window.append(event)
        self._window_bytes += _value_bytes(event)
        while len(window) > self._window_events or (self._window_bytes > self._window_max_bytes and len(window) > 1):
            self._forget(window.popleft())

    def _forget(self, event: Event) -> None:
        self._window_bytes -= _value_bytes(event)
        old = event.kv
        history = self._history.get(old.key)
        if history is not None and history[-1].revision != old.mod_revision:
            i = bisect.bisect_left(history, old.mod_revision, key=lambda r: r.revision)
            if i < len(history) and history[i].revision == old.mod_revision:
                history[i].value = None

    # -- watch ---------------------------------------------------------------------------------------------

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        watcher = WatchQueue(prefix, self._watcher_backlog)
        # registered before anything awaits: every event after `applied` reaches the watcher's queue
        self._watchers.add(watcher)
        applied = self._applied
        try:
            if from_revision < applied:
                for event in await self._replay(prefix, from_revision, applied):
                    yield event
            last = max(from_revision, applied)
            while True:
                event = await watcher.next()
                if event.revision > last:
                    yield event
        finally:
            self._watchers.discard(watcher)

    async def _replay(self, prefix: str, after: int, upto: int) -> builtins.list[Event]:
        """Events in `(after, upto]` under `prefix`: from the recent window, or from the log."""
        if after < self._compacted:
            raise CompactedError(after, self._compacted)
        window = self._window
        if window and window[0].revision <= after + 1:
            first = window[0].revision
            recent = itertools.islice(window, after + 1 - first, upto - first + 1)
            return [event for event in recent if event.kv.key.startswith(prefix)]
        rows = await self._log.read_range(after, upto, prefix)
        if after < self._compacted:
            raise CompactedError(after, self._compacted)
        events = []
        for row, prev_value in rows:
            prev_kv = None
            if row.prev_revision and prev_value is not None:
                prev_kv = KeyValue(row.key, prev_value, row.create_revision, row.prev_revision)
            events.append(_event(row, prev_kv))
        return events

    # -- compaction and lifecycle ----------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        if revision <= self._compacted:
            return
        if revision > self._applied:
            raise FutureRevisionError(revision, self._applied)
        self._compacted = revision
        for key in list(self._history):
            history = self._history[key]
            if history[0].revision > revision:
                continue
            i = bisect.bisect_right(history, revision, key=lambda r: r.revision)
            keep_from = i - 1 if not history[i - 1].deleted else i
            if keep_from == len(history):
                del self._history[key]
                del self._latest[key]
            elif keep_from:
                del history[:keep_from]
        await self._log.compact(revision)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._committer is not None:
            await asyncio.shield(self._committer)
        for watcher in self._watchers:
            watcher.fail(StoreError("store is closed"))
        await self._log.close()


class WatchQueue:
    """One watch's queue. Overflowing the backlog cuts the watcher off with a compacted error."""

    __slots__ = ("_error", "_events", "_limit", "_wakeup", "prefix")

    def __init__(self, prefix: str, limit: int) -> None:
        self.prefix = prefix
        self._events: collections.deque[Event] = collections.deque()
        self._limit = limit
        self._wakeup = asyncio.Event()
        self._error: StoreError | None = None

    def push(self, event: Event) -> None:
        if self._error is not None:
            return
        if len(self._events) >= self._limit:
            first = self._events[0].revision
            self._events.clear()
            self._error = CompactedError(first - 1, event.revision)
        else:
            self._events.append(event)
        self._wakeup.set()

    def fail(self, error: StoreError) -> None:
        self._error = error
        self._wakeup.set()

    async def next(self) -> Event:
        while not self._events:
            if self._error is not None:
                raise self._error
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._events.popleft()


def _event(row: Row, prev_kv: KeyValue | None) -> Event:
    if row.deleted:
        return Event(EventType.DELETE, KeyValue(row.key, b"", row.create_revision, row.revision), prev_kv)
    return Event(EventType.PUT, _kv(row), prev_kv)


def _value_bytes(event: Event) -> int:
    """The bytes of values `event` holds: its own and its previous version's."""
    return len(event.kv.value) + (len(event.prev_kv.value) if event.prev_kv is not None else 0)


def _kv(row: Row) -> KeyValue:
    return KeyValue(row.key, row.value or b"", row.create_revision, row.revision)
