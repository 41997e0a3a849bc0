"""Watch: newline-terminated JSON events over a chunked response, resumable from any retained revision."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from shim.apiserver import codec, errors, query
from shim.apiserver.handlers import ResourceHandlers, Target, include_object
from shim.apiserver.objects import decode_as
from shim.apiserver.registry import ResourceType
from shim.apiserver.tables import build_table
from shim.store import CompactedError, Event, EventType, FutureRevisionError, KeyValue, StoreError

log = logging.getLogger("shim.apiserver")

MIN_REQUEST_TIMEOUT = 1800  # kube-apiserver's --min-request-timeout: watches end after 1-2x this
BOOKMARK_INTERVAL = 60.0


class Watcher:
    """Serves `?watch=true` for any resource."""

    def __init__(self, handlers: ResourceHandlers, bookmark_interval: float = BOOKMARK_INTERVAL) -> None:
        self.handlers = handlers
        self.store = handlers.objects.store
        self.bookmark_interval = bookmark_interval
        self.active = 0  # open watches, for /metrics
        self.shared = SharedDecodes()

    async def serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        q = request.query
        accept = self.handlers.filter_for(request, rt)
        if target.name is not None:  # GET .../pods/NAME?watch=true watches one object
            name = target.name
            base = accept
            accept = lambda obj: obj["metadata"].get("name") == name and (base is None or base(obj))  # noqa: E731
        timeout = query.parse_int(q, "timeoutSeconds")
        if timeout is None or timeout <= 0:
            timeout = random.randint(MIN_REQUEST_TIMEOUT, 2 * MIN_REQUEST_TIMEOUT)
        bookmarks = query.parse_bool(q, "allowWatchBookmarks")
        as_table = codec.wants_table(request)
        include = include_object(request)
        rv = q.get("resourceVersion") or ""
        try:
            start = int(rv) if rv else 0
        except ValueError:
            raise errors.bad_request(f'invalid resource version "{rv}"') from None

        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        encoder = _EventEncoder(rt, as_table, include)
        prefix = rt.key_prefix(target.namespace if rt.namespaced else None)
        self.active += 1
        try:
            await asyncio.wait_for(self._stream(response, encoder, prefix, start, accept, bookmarks), timeout)
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
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        encoder: _EventEncoder,
        prefix: str,
        start: int,
        accept: Any,
        bookmarks: bool,
    ) -> None:
        if start == 0:
            # "0" or unset: the current state as synthetic ADDED events, then changes after it
            page = await self.store.list(prefix)
            for kv in page.items:
                obj = decode_as(encoder.rt, kv)
                if accept is None or accept(obj):
                    await response.write(encoder.encode("ADDED", obj))
            start = page.revision
        last = start
        events = self.store.watch(prefix, start)
        pending: asyncio.Task[Event] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({pending}, timeout=self.bookmark_interval)
                if not done:
                    if bookmarks:
                        await response.write(encoder.bookmark(last))
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
            await events.aclose()


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
    """One line per event; Table watches get a one-row Table with columns only on the first event."""

    def __init__(self, rt: ResourceType, as_table: bool, include: str) -> None:
        self.rt = rt
        self.as_table = as_table
        self.include = include
        self.columns_sent = False

    def encode(self, kind: str, obj: dict[str, Any], shared: SharedDecodes | None = None) -> bytes:
        if shared is not None and not self.as_table:
            return shared.line(kind, obj)
        if self.as_table:
            rv = obj["metadata"].get("resourceVersion", "")
            obj = build_table(
                self.rt.group,
                self.rt.plural,
                [obj],
                datetime.now(UTC),
                self.include,
                {"resourceVersion": rv},
                with_columns=not self.columns_sent,
            )
            self.columns_sent = True
        return orjson.dumps({"type": kind, "object": obj}) + b"\n"

    def bookmark(self, revision: int) -> bytes:
        obj = {
            "kind": self.rt.kind,
            "apiVersion": self.rt.api_version,
            "metadata": {"resourceVersion": str(revision)},
        }
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    def error(self, status: dict[str, Any]) -> bytes:
        return orjson.dumps({"type": "ERROR", "object": status}) + b"\n"
