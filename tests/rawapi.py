"""Raw HTTPS to the real API server with the kubeconfig's credentials: any method, body and header.

The API tests need what a typed client hides (exact status codes, headers, malformed bodies, open watch
streams), so they speak HTTP directly, as kubectl and client-go do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from shim.client import load_kubeconfig

JSON = "application/json"


def configmaps(namespace: str) -> str:
    """The path of the namespace's ConfigMaps."""
    return f"/api/v1/namespaces/{namespace}/configmaps"


def pods(namespace: str) -> str:
    """The path of the namespace's Pods."""
    return f"/api/v1/namespaces/{namespace}/pods"


def deployments(namespace: str) -> str:
    """The path of the namespace's Deployments."""
    return f"/apis/apps/v1/namespaces/{namespace}/deployments"


@dataclass
class Reply:
    """One answer: HTTP status, headers and body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class RawApi:
    """One aiohttp session to the server named by a kubeconfig; `anonymous` sends no credentials."""

    def __init__(self, kubeconfig: Path, anonymous: bool = False) -> None:
        access = load_kubeconfig(kubeconfig)
        headers = {"Accept": JSON}
        if access.token and not anonymous:
            headers["Authorization"] = f"Bearer {access.token}"
        self.session = aiohttp.ClientSession(
            base_url=access.server,
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=access.ssl_context()),
            skip_auto_headers=("Content-Type",),
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = JSON,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send `body` (bytes as is, anything else as JSON) with `content_type` (None: no header at all)."""
        data = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
        sent = dict(headers or {})
        if content_type is not None and data is not None:
            sent["Content-Type"] = content_type
        async with self.session.request(method, path, data=data, params=params, headers=sent) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """`call` that must succeed; the decoded JSON answer."""
        reply = await self.call(method, path, body, **kwargs)
        assert reply.status < 300, f"{method} {path}: {reply.status} {reply.body!r}"
        return reply.json()

    async def watch(self, path: str, params: dict[str, str], headers: dict[str, str] | None = None) -> WatchStream:
        """Open a watch (`watch=true` is added) and return its event stream once the headers arrived."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        resp = await self.session.get(path, params={"watch": "true", **params}, headers=headers or {}, timeout=timeout)
        assert resp.status == 200, f"watch {path}: {resp.status} {await resp.read()!r}"
        return WatchStream(resp)


class WatchStream:
    """Events of one open watch, read one at a time with a deadline (no sleeps)."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self, timeout: float = 10) -> dict[str, Any] | None:
        """The next event, or None when the server closed the stream."""
        line = await asyncio.wait_for(self.resp.content.readline(), timeout)
        return orjson.loads(line) if line.strip() else None

    async def until(self, wanted: str, name: str, timeout: float = 10) -> list[dict[str, Any]]:
        """Events up to and including the first `wanted` event about object `name`."""
        seen = []
        while True:
            event = await self.next(timeout)
            assert event is not None, f"stream ended before {wanted} {name}: {seen}"
            seen.append(event)
            if event["type"] == wanted and event["object"]["metadata"].get("name") == name:
                return seen

    def close(self) -> None:
        self.resp.close()
