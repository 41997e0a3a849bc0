"""The persistence dialect under `LogStore`: an append-only table of rows, one per revision (kine's shape)."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class Row:
    """One log entry. A delete row carries the deleted value so DELETE events can show the object.

    `value` is None in memory when the row is superseded and has left the recent-event window;
    it is then read back from the log on demand.
    """

    revision: int
    key: str
    create_revision: int
    prev_revision: int
    deleted: bool
    value: bytes | None


@dataclass(slots=True)
class LogState:
    """What a log holds when opened: retained rows in revision order (values only for each key's newest
    row), the current revision and the compacted revision."""

    rows: Iterable[Row]
    current_revision: int
    compacted_revision: int


class Log(abc.ABC):
    """Durable storage of rows. Every method may block on I/O internally but never blocks the event loop."""

    @abc.abstractmethod
    async def open(self) -> LogState:
        """Load what is retained."""

    @abc.abstractmethod
    async def append(self, rows: list[Row]) -> None:
        """Write `rows` (consecutive revisions) durably; return only when they survive a crash."""

    @abc.abstractmethod
    async def read_values(self, revisions: list[int]) -> dict[int, bytes]:
        """The stored values of the given revisions (missing ones were compacted)."""

    @abc.abstractmethod
    async def read_range(self, after: int, upto: int, prefix: str) -> list[tuple[Row, bytes | None]]:
        """Rows with `after < revision <= upto` whose key starts with `prefix`, in revision order, each with
        the value of its previous version (None when there is none or it was compacted)."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Delete every row at or below `revision` except each key's newest row at or below it, and that
        one too when it is a tombstone (etcd's compaction)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release files and threads."""
