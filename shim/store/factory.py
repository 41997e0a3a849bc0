"""Open a store from a URL: `memory://`, `sqlite:///abs/path.db` (or a plain path), `etcd://h:p[,h:p][/prefix]`."""

from __future__ import annotations

from typing import Any

from shim.store.base import Store
from shim.store.memory import open_memory_store
from shim.store.sqlite import open_sqlite_store


async def open_store(url: str, **kwargs: Any) -> Store:
    """Open the backend `url` names; `kwargs` go to that backend's opener.

    For etcd, a path after the endpoints (`etcd://127.0.0.1:2379/kube-shim`) is the key prefix unless
    `prefix=` is given.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "sqlite", url
    if scheme == "memory":
        return await open_memory_store(**kwargs)
    if scheme == "sqlite" and rest:
        return await open_sqlite_store(rest, **kwargs)
    if scheme == "etcd":
        # imported lazily: the etcd client library is only needed by those who use it
        from shim.store.etcd import open_etcd_store

        hosts, slash, prefix = rest.partition("/")
        if slash and prefix:
            kwargs.setdefault("prefix", "/" + prefix)
        return await open_etcd_store(hosts.split(","), **kwargs)
    raise ValueError(f"no store backend for {url!r} (expected memory://, sqlite:///PATH, etcd://HOST:PORT)")
