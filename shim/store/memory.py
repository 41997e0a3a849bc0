"""In-memory log for tests: the same contract as the durable backends, nothing written to disk."""

from __future__ import annotations

from shim.store.log import Log, LogState, Row
from shim.store.logstore import LogStore


class MemoryLog(Log):
    """Rows kept in a dict by revision."""

    def __init__(self) -> None:
        self._rows: dict[int, Row] = {}
        self._current = 0
        self._compacted = 0

    async def open(self) -> LogState:
        return LogState([], self._current, self._compacted)

    async def append(self, rows: list[Row]) -> None:
        for row in rows:
            # a copy: the store may drop values from its own rows to save memory
            self._rows[row.revision] = Row(
                row.revision, row.key, row.create_revision, row.prev_revision, row.deleted, row.value
            )
        self._current = rows[-1].revision

    async def read_values(self, revisions: list[int]) -> dict[int, bytes]:
        return {r: self._rows[r].value or b"" for r in revisions if r in self._rows}

    async def read_range(self, after: int, upto: int, prefix: str) -> list[tuple[Row, bytes | None]]:
        out = []
        for rev in range(after + 1, upto + 1):
            row = self._rows.get(rev)
            if row is not None and row.key.startswith(prefix):
                prev = self._rows.get(row.prev_revision)
                out.append((row, prev.value if prev is not None else None))
        return out

    async def compact(self, revision: int) -> None:
        newest: dict[str, Row] = {}
        for rev in sorted(r for r in self._rows if r <= revision):
            row = self._rows[rev]
            older = newest.get(row.key)
            if older is not None:
                del self._rows[older.revision]
            newest[row.key] = row
        for row in newest.values():
            if row.deleted:
                del self._rows[row.revision]
        self._compacted = revision

    async def close(self) -> None:
        pass


async def open_memory_store(**kwargs: int) -> LogStore:
    """A fresh, empty in-memory store."""
    return await LogStore.open(MemoryLog(), **kwargs)
