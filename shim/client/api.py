"""Async REST calls against the Kubernetes API, with errors raised as `ApiException` carrying the Status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from shim.client.config import ClusterAccess
from shim.client.health import HealthRegistry
from shim.machinery.resources import Resource

Obj = dict[str, Any]

# The API accepts objects of up to 3 MiB; JSON's escapes (a control character in YAML becomes `\u0001`)
# can make the stored form larger, and the watch event wraps it: leave room, but keep a bound.
MAX_WATCH_EVENT_BYTES = 8 * 1024 * 1024


class WatchEventTooLarge(Exception):
    """A watch event longer than the client accepts; the watcher should relist."""


class ApiException(Exception):
    """A non-2xx answer; `status` is the HTTP code, `reason` the Status reason, `body` the Status."""

    def __init__(self, status: int, body: Obj) -> None:
        self.status = status
        self.body = body
        self.reason = body.get("reason", "")
        super().__init__(f"{status} {self.reason}: {body.get('message', '')}")


class ApiClient:
    """One aiohttp session to one API server. Use as an async context manager or call `close()`."""

    def __init__(
        self,
        access: ClusterAccess,
        user_agent: str = "kube-shim",
        max_connections: int = 64,
        max_watch_event_bytes: int = MAX_WATCH_EVENT_BYTES,
    ) -> None:
        """`max_connections` bounds concurrent requests; every open watch holds one (0 = no bound).
        `health` collects the state of the loops (informers, workers) of the component using this client."""
        self.access = access
        self.max_watch_event_bytes = max_watch_event_bytes
        self.health = HealthRegistry()
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if access.token:
            headers["Authorization"] = f"Bearer {access.token}"
        self._session = aiohttp.ClientSession(
            base_url=access.server,
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=access.ssl_context(), limit=max_connections),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One call; the decoded JSON answer, or ApiException."""
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else None
        async with self._session.request(method, path, data=data, params=params, headers=headers) as resp:
            raw = await resp.read()
            payload = orjson.loads(raw) if raw else {}
            if resp.status >= 400:
                raise ApiException(resp.status, payload if isinstance(payload, dict) else {})
            return payload

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        return await self.request("GET", res.path(namespace, name))

    async def list(self, res: Resource, namespace: str | None = None, **params: str) -> Obj:
        return await self.request("GET", res.path(namespace), params=params or None)

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        return await self.request("POST", res.path(namespace), obj)

    async def replace(
        self, res: Resource, obj: Obj, namespace: str | None = None, subresource: str | None = None
    ) -> Obj:
        return await self.request("PUT", res.path(namespace, obj["metadata"]["name"], subresource), obj)

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        subresource: str | None = None,
        content_type: str = "application/merge-patch+json",
    ) -> Obj:
        return await self.request("PATCH", res.path(namespace, name, subresource), patch, content_type=content_type)

    async def delete(self, res: Resource, name: str, namespace: str | None = None, **options: Any) -> Obj:
        return await self.request("DELETE", res.path(namespace, name), options or None)

    async def delete_collection(self, res: Resource, namespace: str | None = None, **options: Any) -> Obj:
        return await self.request("DELETE", res.path(namespace), options or None)

    async def watch(
        self, res: Resource, namespace: str | None = None, resource_version: str = "", **params: str
    ) -> AsyncIterator[Obj]:
        """Watch events as dicts (`type`, `object`) until the server ends the stream; WatchEventTooLarge
        for an event beyond `max_watch_event_bytes`."""
        query = {"watch": "true", "allowWatchBookmarks": "true", **params}
        if resource_version:
            query["resourceVersion"] = resource_version
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._session.get(res.path(namespace), params=query, timeout=timeout) as resp:
            if resp.status >= 400:
                raise ApiException(resp.status, orjson.loads(await resp.read() or b"{}"))
            async for line in _lines(resp.content, self.max_watch_event_bytes):
                yield orjson.loads(line)


async def _lines(content: aiohttp.StreamReader, limit: int) -> AsyncIterator[bytes]:
    """The non-blank lines of a stream, each at most `limit` bytes (aiohttp's own readline stops at 128 KiB)."""
    buffer = bytearray()
    async for chunk in content.iter_any():
        scanned = len(buffer)  # the part before holds no newline
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", max(start, scanned))) >= 0:
            if end - start > limit:
                raise WatchEventTooLarge(f"watch event of {end - start} bytes exceeds the limit of {limit}")
            line = bytes(buffer[start:end])
            start = end + 1
            if line.strip():
                yield line
        del buffer[:start]
        if len(buffer) > limit:
            raise WatchEventTooLarge(f"watch event of more than {limit} bytes (the limit)")
    if bytes(buffer).strip():
        yield bytes(buffer)
