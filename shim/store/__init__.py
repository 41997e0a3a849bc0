"""The store ("etcd"): a compacting revision log behind one async interface (see base.Store)."""

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
    StoreUnavailableError,
)

__all__ = [
    "CompactedError",
    "ConflictError",
    "Event",
    "EventType",
    "FutureRevisionError",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "ListResult",
    "Store",
    "StoreError",
    "StoreUnavailableError",
]
