"""Recording core/v1 Events the way kubectl users know them, aggregated by count rather than one per repeat.

The correlation follows client-go's `tools/record/events_cache.go`:
- dedup: a repeat of the same (object, type, reason, message) patches `count`, `lastTimestamp` and
  `message` of the event already written instead of creating another;
- aggregation: once 10 different messages for the same (object, type, reason) arrive within 10 minutes,
  further ones are folded into one event whose message reads "(combined from similar events): ...".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from shim.client.api import ApiClient, ApiException, Obj
from shim.machinery.resources import EVENTS
from shim.machinery.timefmt import now_rfc3339

log = logging.getLogger("shim.client.events")

V = TypeVar("V")

CACHE_SIZE = 4096  # client-go's maxLruCacheEntries
AGGREGATE_MAX_EVENTS = 10  # distinct messages before similar events are combined
AGGREGATE_INTERVAL = 600.0  # seconds a group of similar events stays open
COMBINED_PREFIX = "(combined from similar events): "
_KEY_FIELDS = ("kind", "namespace", "name", "fieldPath", "uid", "apiVersion")


@dataclass
class _Similar:
    """The messages seen for one (object, type, reason) group, and when the group last saw one."""

    messages: set[str] = field(default_factory=set)
    last: float = 0.0


class EventRecorder:
    """`await recorder.event(obj, "Normal", "Scheduled", "Successfully assigned ...")`.

    When the call returns the event is written (created or its count bumped). Concurrent calls for the
    same event are serialised so that they count on one object. Recording never raises: events are
    best effort.
    """

    def __init__(self, client: ApiClient, component: str, host: str | None = None) -> None:
        self.client = client
        self.source = {"component": component, **({"host": host} if host else {})}
        self.component = component
        self._written: OrderedDict[Hashable, Obj] = OrderedDict()
        self._similar: OrderedDict[Hashable, _Similar] = OrderedDict()
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    async def event(self, obj: Obj, type_: str, reason: str, message: str, field_path: str | None = None) -> None:
        """Record an event about `obj`; `field_path` names a part of it (`spec.containers{web}`)."""
        try:
            involved = object_reference(obj, field_path)
            # client-go's event key: the reference without its resourceVersion, the type and the reason
            group = (*(involved.get(k) for k in _KEY_FIELDS), type_, reason)
            key, message = self._correlate(group, message)
            async with self._serialized(key):
                await self._write(key, involved, type_, reason, message)
        # an event must never break the caller's reconcile loop
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            log.debug("event %s about %s not recorded: %s", reason, _name_of(obj), exc)
        except Exception:
            log.exception("event %s about %s not recorded", reason, _name_of(obj))

    def _correlate(self, group: tuple[object, ...], message: str) -> tuple[Hashable, str]:
        """The dedup key and message to record: the event's own, or its group's once it is combined."""
        now = time.monotonic()
        similar = self._similar.get(group)
        if similar is None or now - similar.last > AGGREGATE_INTERVAL:
            similar = _Similar()
        similar.messages.add(message)
        similar.last = now
        _remember(self._similar, group, similar)
        if len(similar.messages) < AGGREGATE_MAX_EVENTS:
            return (*group, message), message
        similar.messages.pop()  # the set stays at its cap, as client-go's PopAny keeps it
        return group, COMBINED_PREFIX + message

    async def _write(self, key: Hashable, involved: Obj, type_: str, reason: str, message: str) -> None:
        namespace = involved.get("namespace") or "default"
        previous = self._written.get(key)
        now = now_rfc3339()
        if previous is not None:
            count = previous.get("count", 1) + 1
            patch = {"count": count, "lastTimestamp": now, "message": message}
            try:
                updated = await self.client.patch(EVENTS, previous["metadata"]["name"], patch, namespace)
                _remember(self._written, key, updated)
                return
            except ApiException as exc:
                if exc.status != 404:
                    raise
            # the event expired (or was deleted): write it again, keeping its count and first sighting
            first = previous.get("firstTimestamp") or now
        else:
            count, first = 1, now
        body = {
            "metadata": {"name": f"{involved.get('name') or 'unknown'}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": self.source,
            "firstTimestamp": first,
            "lastTimestamp": now,
            "count": count,
            "reportingComponent": self.component,
            "reportingInstance": self.source.get("host", ""),
        }
        _remember(self._written, key, await self.client.create(EVENTS, body, namespace))

    @contextlib.asynccontextmanager
    async def _serialized(self, key: Hashable) -> AsyncIterator[None]:
        """One write at a time per key; the lock lives only while someone holds or waits for it."""
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _name_of(obj: Obj) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return f"{obj.get('kind')} {meta.get('namespace')}/{meta.get('name')}" if isinstance(meta, dict) else "?"


def object_reference(obj: Obj, field_path: str | None = None) -> Obj:
    """An ObjectReference to `obj` (and a part of it), as an event's involvedObject or regarding."""
    meta = obj.get("metadata", {})
    ref = {
        "kind": obj.get("kind"),
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "apiVersion": obj.get("apiVersion"),
        "resourceVersion": meta.get("resourceVersion"),
        "fieldPath": field_path,
    }
    return {k: v for k, v in ref.items() if v}


def _remember(cache: OrderedDict[Hashable, V], key: Hashable, value: V) -> None:
    """Insert as most recently used; forget the least recently used beyond CACHE_SIZE."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
