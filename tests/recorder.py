"""A recording HTTP server on 127.0.0.1 and a runner for the real kubectl binaries, for wire-level tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.prerequisites import kubectl_path

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """What a recording server has seen so far, and its base URL."""

    url: str
    requests: list[Recorded] = field(default_factory=list)


@asynccontextmanager
async def recording_server(handler: Handler) -> AsyncIterator[Recorder]:
    """Serve every path with `handler(request, body)` on a free 127.0.0.1 port, recording each request."""
    recorder = Recorder(url="")

    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        return await handler(request, body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder.url = f"http://127.0.0.1:{port}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


@dataclass
class Kubectl:
    """One real kubectl binary pointed at a server through its own kubeconfig and discovery cache."""

    binary: Path
    kubeconfig: Path
    cache_dir: Path

    async def run(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        """Run kubectl with ARGS; return its exit code and combined stdout and stderr."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.cache_dir)}
        proc = await asyncio.create_subprocess_exec(
            str(self.binary), *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode or 0, output.decode()


def kubectl_for(version: str, server_url: str, workdir: Path) -> Kubectl:
    """The kubectl of `version` (e.g. "1.27") with a kubeconfig for `server_url`; skips if not installed."""
    binary = kubectl_path(version)
    if not binary.exists():
        pytest.skip(f"kubectl {version} is not installed")
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: '{server_url}'}}}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]\n"
        "current-context: x\n"
    )
    return Kubectl(binary, kubeconfig, workdir / "cache")
