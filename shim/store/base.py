"""The store contract every backend implements: etcd's MVCC semantics over string keys and byte values.

One global revision is incremented by every write. Each key carries the revision that created it and the
revision that last modified it. A delete is a tombstone event. A watch started at revision R delivers every
event with a revision above R exactly once and in order. Reading history below the compacted revision raises
`CompactedError`, which the API server turns into 410 Gone / Expired.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached or is too busy to answer now (etcd down, SQLite locked); retrying later
    may succeed, so the API answers 503."""


class KeyExistsError(StoreError):
    """`create` found the key already present."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} already exists")
        self.key = key


class KeyNotFoundError(StoreError):
    """`update` or `delete` found no such key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} not found")
        self.key = key


class ConflictError(StoreError):
    """A compare-and-swap saw a different mod_revision than the caller expected."""

    def __init__(self, key: str, expected: int, actual: KeyValue) -> None:
        super().__init__(f"key {key!r} is at revision {actual.mod_revision}, not {expected}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StoreError):
    """The requested revision is older than the oldest one the store still retains."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"required revision {requested} has been compacted (compacted revision {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """A read asked for a revision the store has not reached yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"required revision {requested} is a future revision (current {current})")
        self.requested = requested
        self.current = current


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of one key."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """A change to one key. For DELETE, `kv.value` is empty and `prev_kv` holds the deleted value."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class ListResult:
    """A page of a list, consistent at `revision`.

    `more` tells whether keys remain after the last item; the caller continues with
    `continue_from=items[-1].key + "\\x00"` and `revision=revision`.
    """

    items: list[KeyValue]
    revision: int
    more: bool


class Store(abc.ABC):
    """The async interface the API server uses; the only code that touches persistent state."""

    @abc.abstractmethod
    async def get(self, key: str, revision: int | None = None) -> KeyValue | None:
        """The value of `key` at `revision` (default: latest), or None when absent."""

    @abc.abstractmethod
    async def list(
        self,
        prefix: str,
        revision: int | None = None,
        limit: int | None = None,
        continue_from: str | None = None,
    ) -> ListResult:
        """Keys under `prefix` in key order, at `revision` (default: latest), starting at `continue_from`."""

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Write a new key; raises `KeyExistsError` when it exists."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        """Replace `key` only if it is still at `expected_mod_revision` (`ConflictError` otherwise)."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_mod_revision: int | None = None) -> KeyValue:
        """Delete `key` (optionally compare-and-swap); returns the deleted version, stamped with the
        revision of the delete as `mod_revision`."""

    @abc.abstractmethod
    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        """Every event under `prefix` with a revision above `from_revision`, in order, exactly once.

        Raises `CompactedError` (at start or later, if the watcher falls too far behind)."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history at and below `revision`, keeping each live key's latest version."""

    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The revision of the newest write."""

    @abc.abstractmethod
    async def compacted_revision(self) -> int:
        """The newest revision given to `compact` (0 when never compacted)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release everything the store holds."""


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string that starts with `prefix` (etcd's range_end)."""
    if not prefix:
        return "\U0010ffff"
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
