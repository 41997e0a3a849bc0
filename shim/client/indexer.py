"""An informer's cache: objects by key, plus named indexes over them (client-go's `tools/cache` Indexer).

Every consumer of a shared informer reads this one store: a controller that needs pods by node or replica sets
by owner adds an index here instead of keeping its own map beside the cache.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("shim.client")

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]

NAMESPACE_INDEX = "namespace"  # every store has it, as client-go's factories add cache.NamespaceIndex


def object_key(obj: Obj) -> str:
    """The cache key: `namespace/name`, or `name` for a cluster-scoped object (client-go's MetaNamespaceKeyFunc)."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else meta["name"]


def split_key(key: str) -> tuple[str, str]:
    """`namespace/name` -> (namespace, name); `name` -> ("", name)."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def _namespace_of(obj: Obj) -> tuple[str]:
    return (obj["metadata"].get("namespace", ""),)


class IndexedStore:
    """Objects by `object_key`, and for each index the keys of the objects with each value. Index values keep
    the order objects were first indexed under them, so listings are stable."""

    def __init__(self) -> None:
        self._objects: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, dict[str, None]]] = {}
        self.add_indexer(NAMESPACE_INDEX, _namespace_of)

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        """Index every object (present and future) under the values `fn(obj)` returns. Adding the same name
        twice is a bug in the caller: two controllers would read each other's index."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} already exists")
        self._indexers[name] = fn
        self._indices[name] = {}
        for key, obj in self._objects.items():
            self._index(name, key, (), self._values(name, obj))

    def has_indexer(self, name: str) -> bool:
        """Whether an index of that name exists."""
        return name in self._indexers

    def upsert(self, obj: Obj) -> Obj | None:
        """Store `obj` under its key; the version it replaces (None when new)."""
        key = object_key(obj)
        old = self._objects.get(key)
        self._objects[key] = obj
        for name in self._indexers:
            before = self._values(name, old) if old is not None else ()
            self._index(name, key, before, self._values(name, obj))
        return old

    def delete(self, key: str) -> Obj | None:
        """Drop the object under `key`; the version that was there (None when absent)."""
        old = self._objects.pop(key, None)
        if old is not None:
            for name in self._indexers:
                self._index(name, key, self._values(name, old), ())
        return old

    def get(self, key: str) -> Obj | None:
        """The object under `key`, or None."""
        return self._objects.get(key)

    def list_keys(self) -> builtins.list[str]:
        """Every key, as a list (safe to iterate while the store changes)."""
        return list(self._objects)

    def list(self) -> builtins.list[Obj]:
        """Every object."""
        return list(self._objects.values())

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        """The objects `name`'s function maps to `value` (KeyError for an index nobody added)."""
        keys = self._indices[name].get(value, {})
        return [self._objects[key] for key in keys]

    def __len__(self) -> int:
        return len(self._objects)

    def _values(self, name: str, obj: Obj) -> tuple[str, ...]:
        try:
            return tuple(self._indexers[name](obj))
        except Exception:  # an index function's bug must not break the cache (the object is just not indexed)
            log.exception("index %s failed on %s", name, object_key(obj))
            return ()

    def _index(self, name: str, key: str, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        if before == after:
            return
        index = self._indices[name]
        for value in before:
            if value not in after and (keys := index.get(value)) is not None:
                keys.pop(key, None)
                if not keys:
                    del index[value]
        for value in after:
            index.setdefault(value, {})[key] = None
