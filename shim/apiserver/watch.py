"""Watch: newline-terminated JSON events over a chunked response, resumable from any retained revision."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from shim.apiserver import codec, errors, query
from shim.apiserver.handlers import ResourceHandlers, Target, include_object
from shim.apiserver.kinds.causes import forbidden, unsupported
from shim.apiserver.objects import decode_as
from shim.apiserver.registry import ResourceType
from shim.apiserver.tables import build_table
from shim.store import CompactedError, Event, EventType, FutureRevisionError, KeyValue, StoreError

log = logging.getLogger("shim.apiserver")

MIN_REQUEST_TIMEOUT = 1800  # kube-apiserver's --min-request-timeout: watches end after 1-2x this
BOOKMARK_INTERVAL = 60.0  # kube's cacher: a bookmark a minute, and one 2 s before the watch's deadline
BOOKMARK_BEFORE_DEADLINE = 2.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
NOT_OLDER_THAN = "NotOlderThan"


@dataclass(frozen=True)
class WatchOptions:
    """The query of one watch, validated as kube's `validateWatchOptions` does."""

    start: int  # the revision to list at / watch after; 0: now
    send_initial_events: bool  # the current state as ADDED events first
    initial_events_end: bool  # then a bookmark marking their end (watch-list)
    bookmarks: bool
    timeout: float


def watch_options(q: Any) -> WatchOptions:
    """Parse and validate the watch query (422 `ListOptions.meta.k8s.io "" is invalid` as kube words it)."""
    rv = q.get("resourceVersion") or ""
    try:
        start = int(rv) if rv else 0
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{rv}"') from None
    match = q.get("resourceVersionMatch") or ""
    raw_initial = q.get("sendInitialEvents")
    initial = None if raw_initial is None else query.parse_bool(q, "sendInitialEvents")
    bookmarks = query.parse_bool(q, "allowWatchBookmarks")
    causes = []
    if initial is not None and match != NOT_OLDER_THAN:
        causes.append(
            forbidden("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
        )
    if match:
        if initial is None:
            causes.append(
                forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                )
            )
        if match != NOT_OLDER_THAN:
            causes.append(unsupported("resourceVersionMatch", match, [NOT_OLDER_THAN]))
        if q.get("continue"):
            causes.append(
                forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided")
            )
    if causes:
        raise errors.invalid("meta.k8s.io", "ListOptions", "", causes)
    timeout = query.parse_int(q, "timeoutSeconds")
    if timeout is None or timeout <= 0:
        timeout = random.randint(MIN_REQUEST_TIMEOUT, 2 * MIN_REQUEST_TIMEOUT)
    if initial is None:  # a legacy watch: "0" or unset starts with the current state, a revision after it
        return WatchOptions(start, start == 0, False, bookmarks, timeout)
    # watch-list: the state at (or after) `start` first when asked for, its end marked by a bookmark (when
    # bookmarks are allowed), then changes after that state
    return WatchOptions(start, initial, initial and bookmarks, bookmarks, timeout)


class Watcher:
    """Serves `?watch=true` for any resource."""

    def __init__(self, handlers: ResourceHandlers, bookmark_interval: float = BOOKMARK_INTERVAL) -> None:
        self.handlers = handlers
        self.store = handlers.objects.store
        self.bookmark_interval = bookmark_interval
        self.active = 0  # open watches, for /metrics
        self.active_by_resource: collections.Counter[str] = collections.Counter()  # the same, by plural
        self.shared = SharedDecodes()

    async def serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        accept = self.handlers.filter_for(request, rt)
        if target.name is not None:  # GET .../pods/NAME?watch=true watches one object
            name = target.name
            base = accept
            accept = lambda obj: obj["metadata"].get("name") == name and (base is None or base(obj))  # noqa: E731
        options = watch_options(request.query)
        if options.send_initial_events and options.start:
            current = await self.store.current_revision()
            if options.start > current:
                raise errors.too_large_resource_version(options.start, current)

        shape = "metadata" if codec.wants_partial_metadata(request) else "table" if codec.wants_table(request) else ""
        encoder = _EventEncoder(rt, shape, include_object(request))  # a bad includeObject is a 400, before the 200
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        prefix = rt.key_prefix(target.namespace if rt.namespaced else None)
        deadline = asyncio.get_running_loop().time() + options.timeout
        self.active += 1
        self.active_by_resource[rt.plural] += 1
        try:
            # in this task, not wait_for's: the task wait_for makes holds the error that ends the stream (a
            # client gone mid-write), whose traceback holds wait_for's frame, which holds the task; that cycle
            # kept each cut watch, TLS buffers and all, until the next full garbage collection
            async with asyncio.timeout(options.timeout):
                await self._stream(response, encoder, prefix, options, accept, deadline)
        except (TimeoutError, ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception as exc:
            # the 200 is sent: an error response now would land inside the chunked stream, so report it as
            # kube does, in an ERROR event
            log.exception("watch %s failed", request.path_qs)
            with contextlib.suppress(ConnectionResetError):
                await response.write(encoder.error(_internal_error(exc)))
        finally:
            self.active -= 1
            self.active_by_resource[rt.plural] -= 1
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        encoder: _EventEncoder,
        prefix: str,
        options: WatchOptions,
        accept: Any,
        deadline: float,
    ) -> None:
        start = options.start
        if options.send_initial_events:
            page = await self.store.list(prefix)
            for kv in page.items:
                obj = decode_as(encoder.rt, kv)
                if accept is None or accept(obj):
                    await response.write(encoder.encode("ADDED", obj))
            start = page.revision
            if options.initial_events_end:
                await response.write(encoder.bookmark(start, initial_events_end=True))
        elif start == 0:
            start = await self.store.current_revision()
        last = start
        loop = asyncio.get_running_loop()
        next_bookmark = self._next_bookmark(loop.time(), deadline) if options.bookmarks else None
        events = self.store.watch(prefix, start)
        pending: asyncio.Task[Event] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(events))
                wait = None if next_bookmark is None else max(next_bookmark - loop.time(), 0.0)
                done, _ = await asyncio.wait({pending}, timeout=wait)
                if not done:
                    # the store hands each event to its watchers as it becomes current: once the step below
                    # lets this watch take what is queued, nothing of `current` or before is still to come
                    current = await self.store.current_revision()
                    await asyncio.sleep(0)
                    if not pending.done():
                        assert next_bookmark is not None
                        last = max(last, current)
                        await response.write(encoder.bookmark(last))
                        next_bookmark = self._next_bookmark(loop.time(), deadline)
                        continue
                task, pending = pending, None
                try:
                    event = task.result()
                except CompactedError as exc:
                    await response.write(encoder.error(_too_old(exc)))
                    return
                except FutureRevisionError as exc:
                    too_large = errors.too_large_resource_version(exc.requested, exc.current)
                    await response.write(encoder.error(too_large.body()))
                    return
                except StoreError as exc:
                    await response.write(encoder.error(_internal_error(exc)))
                    return
                last = event.revision
                out = _filtered(event, accept, self.shared, encoder.rt)
                if out is not None:
                    await response.write(encoder.encode(*out, shared=self.shared))
        finally:
            if pending is not None:
                # the generator cannot be closed while a step of it is still running
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            await events.aclose()  # type: ignore[attr-defined]  # the stores return async generators

    def _next_bookmark(self, now: float, deadline: float) -> float | None:
        """kube's cacher: a minute from now, but no later than 2 s before the deadline (none after that)."""
        at = min(now + self.bookmark_interval, deadline - BOOKMARK_BEFORE_DEADLINE)
        return at if at > now else None


def _filtered(event: Event, accept: Any, shared: SharedDecodes, rt: ResourceType) -> tuple[str, dict[str, Any]] | None:
    """The event this watcher sees: an object leaving its selector is DELETED for it (kube's cacher)."""
    if event.type is EventType.DELETE:
        if event.prev_kv is None:
            return None
        old = shared.obj(rt, event.prev_kv, event.revision)
        return ("DELETED", old) if accept is None or accept(old) else None
    new = shared.obj(rt, event.kv)
    if accept is None:
        return ("ADDED" if event.prev_kv is None else "MODIFIED"), new
    now_in = accept(new)
    was_in = event.prev_kv is not None and accept(shared.obj(rt, event.prev_kv))
    if now_in:
        return ("MODIFIED" if was_in else "ADDED"), new
    if was_in:
        assert event.prev_kv is not None
        return "DELETED", shared.obj(rt, event.prev_kv, event.revision)
    return None


class SharedDecodes:
    """Decoded objects and encoded event lines shared by every watcher that sees the same event.

    Each event used to be decoded and encoded once per watcher; with a dozen controllers watching pods
    that was most of the server's work. Shared objects are read-only by contract.
    """

    def __init__(self, size: int = 2048) -> None:
        self._objects: dict[tuple[str, str, int, int], dict[str, Any]] = {}
        self._lines: dict[tuple[str, str, int, str], bytes] = {}  # (apiVersion, type, rv, uid)
        self._size = size

    def obj(self, rt: ResourceType, kv: KeyValue, shown_revision: int = 0) -> dict[str, Any]:
        """`kv` decoded as `rt` serves it, showing `shown_revision` as its resourceVersion (a DELETED
        event's revision)."""
        key = (rt.api_version, kv.key, kv.mod_revision, shown_revision)
        found = self._objects.get(key)
        if found is None:
            found = decode_as(rt, kv)
            if shown_revision:
                found["metadata"]["resourceVersion"] = str(shown_revision)
            _remember(self._objects, key, found, self._size)
        return found

    def line(self, kind: str, obj: dict[str, Any]) -> bytes:
        """The JSON watch line for `obj` (an object this cache handed out)."""
        meta = obj["metadata"]
        key = (
            obj.get("apiVersion", ""),
            kind,
            int(meta.get("resourceVersion") or 0),
            meta.get("uid") or meta.get("name", ""),
        )
        found = self._lines.get(key)
        if found is None:
            found = orjson.dumps({"type": kind, "object": obj}) + b"\n"
            _remember(self._lines, key, found, self._size)
        return found


def _remember(cache: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    cache[key] = value
    if len(cache) > size:
        del cache[next(iter(cache))]  # dicts keep insertion order: the oldest entry goes


def _internal_error(exc: Exception) -> dict[str, Any]:
    return errors.ApiError(500, "InternalError", f"Internal error occurred: {exc}").body()


def _too_old(exc: CompactedError) -> dict[str, Any]:
    return errors.expired(f"too old resource version: {exc.requested} ({exc.compacted})").body()


class _EventEncoder:
    """One line per event. `shape` "table": a one-row Table with columns only on the first event;
    "metadata": PartialObjectMetadata; "": the object itself."""

    def __init__(self, rt: ResourceType, shape: str, include: str) -> None:
        self.rt = rt
        self.shape = shape
        self.include = include
        self.columns_sent = False

    def encode(self, kind: str, obj: dict[str, Any], shared: SharedDecodes | None = None) -> bytes:
        if shared is not None and not self.shape:
            return shared.line(kind, obj)
        if self.shape == "metadata":
            obj = codec.partial_metadata(obj)
        elif self.shape == "table":
            rv = obj["metadata"].get("resourceVersion", "")
            obj = build_table(
                self.rt.strategy,
                [obj],
                datetime.now(UTC),
                self.include,
                {"resourceVersion": rv},
                with_columns=not self.columns_sent,
            )
            self.columns_sent = True
        return orjson.dumps({"type": kind, "object": obj}) + b"\n"

    def bookmark(self, revision: int, initial_events_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        kind, api_version = self.rt.kind, self.rt.api_version
        if self.shape == "metadata":
            kind, api_version = "PartialObjectMetadata", "meta.k8s.io/v1"
        return (
            orjson.dumps({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": meta}})
            + b"\n"
        )

    def error(self, status: dict[str, Any]) -> bytes:
        return orjson.dumps({"type": "ERROR", "object": status}) + b"\n"
