"""The embedded durable log: one SQLite table in WAL mode, kine's shape, through the standard library.

Each row is one revision: `id` is the revision, `name` the key, `created` its create revision,
`prev_revision` the revision it superseded (0 for a create), `deleted` marks a tombstone (which keeps the
deleted value). The compacted revision lives in a one-row `meta` table, written in the same transaction as
each compaction step; the current revision is the newest row's id, or the compacted revision when
compaction deleted the newest rows (a tombstone), since compaction never touches rows above its revision.

Two connections, each owned by one thread so blocking SQLite calls never run on the event loop: the writer
(group commits, compaction, checkpoints) and the reader (load, old values, replay), which in WAL mode
reads a snapshot without queueing behind commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from shim.store.base import StoreError, StoreUnavailableError
from shim.store.log import Log, LogState, Row
from shim.store.logstore import LogStore

T = TypeVar("T")

# revisions compacted per transaction, so appends queued meanwhile wait for one step, not the whole job
COMPACT_STEP = 10_000
# SQLite checkpoints by itself every 1000 pages (its default), so the WAL keeps to about 4 MiB between
# compactions; when a checkpoint lets it start over, the -wal file is truncated down to this size
WAL_SIZE_LIMIT = 4 * 1024 * 1024
# SQLite's default host-parameter limit was 999 before 3.32; stay below it
_MAX_PARAMS = 900

_SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted_revision', 0);
COMMIT;
"""


class SqliteLog(Log):
    """A `Log` in one SQLite database file (plus its -wal and -shm files), owned by one process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._lock: int | None = None
        self._writer = _Worker("sqlite-writer")
        self._reader = _Worker("sqlite-reader")

    async def open(self) -> LogState:
        self._lock = _exclusive_lock(self._path)
        try:
            # the writer first: it switches the file to WAL mode and creates the schema the reader loads
            await self._writer.connect(self._path, _prepare_writer)
            await self._reader.connect(self._path, _prepare_reader)
            return await self._reader.call(_load)
        except (sqlite3.Error, StoreError) as exc:
            await self.close()
            cause = exc.__cause__ if isinstance(exc.__cause__, sqlite3.Error) else exc
            advice = "; move it away to start empty, or restore a backup" if _damaged(cause) else ""
            raise StoreError(f"{self._path}: {cause}{advice}") from exc

    async def append(self, rows: list[Row]) -> None:
        await self._writer.call(_append, rows)

    async def read_values(self, revisions: list[int]) -> dict[int, bytes]:
        return await self._reader.call(_read_values, revisions)

    async def read_range(self, after: int, upto: int, prefix: str) -> list[tuple[Row, bytes | None]]:
        return await self._reader.call(_read_range, after, upto, prefix)

    async def compact(self, revision: int) -> None:
        while await self._writer.call(_compact_step, revision) < revision:
            pass
        # the deletes went through the WAL; fold it into the main file and cut it back to zero bytes
        await self._writer.call(_checkpoint)

    async def close(self) -> None:
        # the writer last: the final connection to close checkpoints and removes the -wal file
        await self._reader.close()
        await self._writer.close()
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None


def _exclusive_lock(path: str) -> int:
    """Hold `<path>.lock` for as long as the store is open: the in-memory index assumes it is the only
    writer, so a second process on the same file must be refused, not allowed to interleave revisions."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"the SQLite store {path!r} is in use by another process") from None
    return fd


async def open_sqlite_store(path: str | os.PathLike[str], **kwargs: int) -> LogStore:
    """Open (creating if needed) the SQLite store at `path`; `kwargs` go to `LogStore`."""
    return await LogStore.open(SqliteLog(path), **kwargs)


class _Worker:
    """One SQLite connection that lives on, and is only ever used from, its own thread."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def connect(self, path: str, prepare: Callable[[sqlite3.Connection], None]) -> None:
        self._conn = await self._run(_connect, path, prepare)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` on the worker thread; SQLite's errors leave as `StoreError`."""
        if self._conn is None:
            raise StoreError("the SQLite log is not open")
        try:
            return await self._run(fn, self._conn, *args)
        except sqlite3.Error as exc:
            unavailable = getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES
            raise (StoreUnavailableError if unavailable else StoreError)(f"SQLite: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=False)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))


# SQLITE_BUSY, SQLITE_LOCKED: another connection holds the database past the busy timeout; try again later
_BUSY_CODES = frozenset({5, 6})
# SQLITE_CORRUPT, SQLITE_NOTADB: the file is damaged or not a database at all
_DAMAGED_CODES = frozenset({11, 26})


class _ForeignSchema(sqlite3.DatabaseError):
    """The file is SQLite, but not laid out as this store writes it."""


def _damaged(exc: BaseException) -> bool:
    """The file cannot be read as this store's database (damaged, not SQLite, or another schema)."""
    if isinstance(exc, _ForeignSchema) or getattr(exc, "sqlite_errorcode", None) in _DAMAGED_CODES:
        return True
    # a SQLite file of some other program: the tables or columns this store reads are missing
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith(("no such table", "no such column"))


def _connect(path: str, prepare: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
    # autocommit mode: transactions are explicit, so no read ever holds a snapshot open by accident
    # (an open read transaction pins the WAL and is what lets it grow without bound)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    prepare(conn)
    return conn


def _prepare_writer(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL fsyncs the WAL at every commit. NORMAL would already survive kill -9 of the process (committed
    # frames sit in the OS page cache), but not a power cut or kernel crash; an fsync costs well under a
    # millisecond here and group commit shares one among every write of a batch, so take etcd's guarantee.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    # No VACUUM and no auto_vacuum: pages freed by compaction go to the freelist and the next appends reuse
    # them, so under steady churn the file settles at the size of the retained history instead of growing;
    # VACUUM would only return that space to the OS, at the price of rewriting the whole file.
    conn.executescript(_SCHEMA)


def _prepare_reader(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only=ON")


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _load(conn: sqlite3.Connection) -> LogState:
    with _transaction(conn):  # one snapshot for both queries
        compacted = _compacted_revision(conn)
        newest = dict(conn.execute("SELECT id, value FROM log WHERE id IN (SELECT MAX(id) FROM log GROUP BY name)"))
        rows = [
            Row(rev, name, created, prev, bool(deleted), newest.get(rev))
            for rev, name, created, prev, deleted in conn.execute(
                "SELECT id, name, created, prev_revision, deleted FROM log ORDER BY id"
            )
        ]
    current = max(rows[-1].revision if rows else 0, compacted)
    return LogState(rows, current, compacted)


def _append(conn: sqlite3.Connection, rows: list[Row]) -> None:
    with _transaction(conn, "BEGIN IMMEDIATE"):
        conn.executemany(
            "INSERT INTO log (id, name, created, prev_revision, deleted, value) VALUES (?, ?, ?, ?, ?, ?)",
            [(r.revision, r.key, r.create_revision, r.prev_revision, r.deleted, r.value or b"") for r in rows],
        )


def _read_values(conn: sqlite3.Connection, revisions: list[int]) -> dict[int, bytes]:
    values: dict[int, bytes] = {}
    for i in range(0, len(revisions), _MAX_PARAMS):
        chunk = revisions[i : i + _MAX_PARAMS]
        marks = ",".join("?" * len(chunk))
        values.update(conn.execute(f"SELECT id, value FROM log WHERE id IN ({marks})", chunk))
    return values


def _read_range(conn: sqlite3.Connection, after: int, upto: int, prefix: str) -> list[tuple[Row, bytes | None]]:
    # substr() rather than a range on name: the primary key range drives the scan, whatever the prefix
    cursor = conn.execute(
        "SELECT cur.id, cur.name, cur.created, cur.prev_revision, cur.deleted, cur.value, prev.value"
        " FROM log AS cur LEFT JOIN log AS prev ON prev.id = cur.prev_revision"
        " WHERE cur.id > ? AND cur.id <= ? AND substr(cur.name, 1, ?) = ?"
        " ORDER BY cur.id",
        (after, upto, len(prefix), prefix),
    )
    return [
        (Row(rev, name, created, prev, bool(deleted), value), prev_value)
        for rev, name, created, prev, deleted, value, prev_value in cursor
    ]


def _compact_step(conn: sqlite3.Connection, revision: int) -> int:
    """Compact the next `COMPACT_STEP` revisions towards `revision`; returns the compacted revision.

    Only rows written since the previous compaction need looking at: a row at or below the target is
    superseded exactly when a later row at or below the target names it as `prev_revision` (a create never
    follows a live row), and tombstones at or below the target go too.
    """
    with _transaction(conn, "BEGIN IMMEDIATE"):
        after = _compacted_revision(conn)
        upto = min(revision, after + COMPACT_STEP)
        if upto <= after:
            return after
        conn.execute(
            "DELETE FROM log WHERE id IN"
            " (SELECT prev_revision FROM log WHERE id > ? AND id <= ? AND prev_revision > 0)",
            (after, upto),
        )
        conn.execute("DELETE FROM log WHERE id > ? AND id <= ? AND deleted", (after, upto))
        conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted_revision'", (upto,))
    return upto


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _compacted_revision(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = 'compacted_revision'").fetchone()
    if row is None:  # the schema script inserts it: its absence means the file was changed behind our back
        raise _ForeignSchema("the meta table has no compacted_revision row")
    return int(row[0])
