"""Probes and lifecycle handlers: exec, httpGet and tcpSocket actions against a container, and the worker
that runs one probe of one container on its schedule (initialDelaySeconds, periodSeconds, timeoutSeconds,
successThreshold, failureThreshold), as kubelet's prober does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urljoin, urlsplit

import aiohttp

from shim.runtime.base import Runtime, RuntimeFailure

Obj = dict[str, Any]

USER_AGENT = "kube-probe/1.33"
MAX_OUTPUT = 10 * 1024  # kubelet keeps at most 10 KiB of a probe's output
MAX_REDIRECTS = 10
_REDIRECTS = {301, 302, 303, 307, 308}


class Verdict(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"  # the probe could not be run; its previous result stands
    WARNING = "warning"  # a success with something to report (a redirect to another host, not followed)


@runtime_checkable
class SimulatedNetwork(Protocol):
    """A runtime whose pod addresses are not real (the fake): it says whether a connection would succeed."""

    async def probe_port(self, ip: str, port: int) -> bool: ...


@dataclass
class ActionTarget:
    """Where a probe or hook runs: the container, its pod's IP, and the node's HTTP client."""

    runtime: Runtime
    container: Obj
    container_id: str
    pod_ip: str
    http: aiohttp.ClientSession


async def run_action(action: Obj, target: ActionTarget, timeout: float) -> tuple[Verdict, str]:
    """Run a probe's or hook's handler once; the verdict and the output (or the error) to report."""
    if "exec" in action:
        return await _exec(action["exec"].get("command") or [], target, timeout)
    if "httpGet" in action:
        return await _http_get(action["httpGet"], target, timeout)
    if "tcpSocket" in action:
        return await _tcp_socket(action["tcpSocket"], target, timeout)
    if "sleep" in action:
        await asyncio.sleep(min(action["sleep"].get("seconds", 0), timeout))
        return Verdict.SUCCESS, ""
    return Verdict.UNKNOWN, "this node runs exec, httpGet and tcpSocket handlers only"


class ProbeWorker:
    """One probe (liveness, readiness or startup) of one run of a container, as an asyncio task.

    `on_result(kind, success)` is called when the probe's result changes (after its thresholds);
    `on_report(kind, verdict, output)` after every failed attempt (for the Unhealthy event) and every success
    with a warning (ProbeWarning). A liveness or startup probe that reaches its failure threshold stops: the
    container will be restarted and get a new worker.
    """

    def __init__(
        self,
        kind: str,
        probe: Obj,
        target: ActionTarget,
        started_at: float,
        is_started: Callable[[], bool],
        on_result: Callable[[str, bool], None],
        on_report: Callable[[str, Verdict, str], Awaitable[None]],
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.target = target
        self.started_at = started_at
        self.is_started = is_started
        self.on_result = on_result
        self.on_report = on_report
        self.result: bool | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        probe = self.probe
        period = max(probe.get("periodSeconds", 10), 1)
        timeout = max(probe.get("timeoutSeconds", 1), 1)
        thresholds = {True: probe.get("successThreshold", 1), False: probe.get("failureThreshold", 3)}
        delay = self.started_at + probe.get("initialDelaySeconds", 0) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        last: bool | None = None
        streak = 0
        while True:
            if self.kind == "startup" or self.is_started():
                verdict, output = await run_action(probe, self.target, timeout)
                if verdict is not Verdict.UNKNOWN:
                    ok = verdict is not Verdict.FAILURE
                    if verdict is not Verdict.SUCCESS:
                        await self.on_report(self.kind, verdict, output)
                    streak = streak + 1 if ok == last else 1
                    last = ok
                    if streak >= thresholds[ok] and self.result != ok:
                        self.result = ok
                        self.on_result(self.kind, ok)
                        if (not ok and self.kind in ("liveness", "startup")) or (ok and self.kind == "startup"):
                            return
            await asyncio.sleep(period)


# -- handlers ---------------------------------------------------------------------------------------------------


async def _exec(command: list[str], target: ActionTarget, timeout: float) -> tuple[Verdict, str]:
    try:
        result = await target.runtime.exec(target.container_id, command, timeout)
    except TimeoutError:
        return Verdict.FAILURE, f"command {' '.join(command)!r} timed out"
    except RuntimeFailure as exc:
        return Verdict.UNKNOWN, exc.message
    output = (result.stdout + result.stderr)[:MAX_OUTPUT].decode(errors="replace")
    return (Verdict.SUCCESS if result.exit_code == 0 else Verdict.FAILURE), output


async def _http_get(action: Obj, target: ActionTarget, timeout: float) -> tuple[Verdict, str]:
    host = action.get("host") or target.pod_ip
    port = _port(action.get("port"), target.container)
    if port is None:
        return Verdict.FAILURE, f"couldn't find port: {action.get('port')}"
    if isinstance(target.runtime, SimulatedNetwork):
        return await _simulated(target.runtime, host, port)
    path = action.get("path") or "/"
    scheme = (action.get("scheme") or "HTTP").lower()
    url = f"{scheme}://{_join(host, port)}{path if path.startswith('/') else '/' + path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    headers.update({h["name"]: h.get("value", "") for h in action.get("httpHeaders") or ()})
    try:
        async with asyncio.timeout(timeout):
            status, body = await _get_following_local_redirects(target.http, url, headers)
        if 300 <= status < 400:  # a redirect to another host, which is not followed
            return Verdict.WARNING, f"Probe terminated redirects, Response body: {body}"
        if 200 <= status < 400:
            return Verdict.SUCCESS, body
        return Verdict.FAILURE, f"HTTP probe failed with statuscode: {status}"
    except TimeoutError:
        return (
            Verdict.FAILURE,
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
        )
    except (aiohttp.ClientError, OSError) as exc:
        return Verdict.FAILURE, f'Get "{url}": {_dial_error(host, port, exc)}'


async def _get_following_local_redirects(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, str]:
    """GET `url`, following redirects only while they stay on the same host, as kubelet's prober does (a pod
    must not make the node send requests elsewhere); the last response's status and the start of its body."""
    current, host = url, urlsplit(url).hostname
    for _ in range(MAX_REDIRECTS + 1):
        async with http.get(current, headers=headers, ssl=False, allow_redirects=False) as response:
            body = (await response.content.read(MAX_OUTPUT)).decode(errors="replace")
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return response.status, body
            following = urljoin(current, location)
            if urlsplit(following).hostname != host:
                return response.status, body
            current = following
    raise aiohttp.ClientError(f"stopped after {MAX_REDIRECTS} redirects")


async def _tcp_socket(action: Obj, target: ActionTarget, timeout: float) -> tuple[Verdict, str]:
    host = action.get("host") or target.pod_ip
    port = _port(action.get("port"), target.container)
    if port is None:
        return Verdict.FAILURE, f"couldn't find port: {action.get('port')}"
    if isinstance(target.runtime, SimulatedNetwork):
        return await _simulated(target.runtime, host, port)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return Verdict.FAILURE, f"dial tcp {_join(host, port)}: i/o timeout"
    except OSError as exc:
        return Verdict.FAILURE, _dial_error(host, port, exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Verdict.SUCCESS, ""


async def _simulated(network: SimulatedNetwork, host: str, port: int) -> tuple[Verdict, str]:
    if await network.probe_port(host, port):
        return Verdict.SUCCESS, ""
    return Verdict.FAILURE, f"dial tcp {_join(host, port)}: connect: connection refused"


def _port(port: Any, container: Obj) -> int | None:
    """An IntOrString port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    return next((p["containerPort"] for p in container.get("ports") or () if p.get("name") == port), None)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(host: str, port: int, exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
        return f"dial tcp {_join(host, port)}: connect: connection refused"
    return f"dial tcp {_join(host, port)}: {exc}"
