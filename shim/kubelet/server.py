"""The node agent's streaming server (kubelet's port 10250): logs, exec, attach and port-forward of its pods.

Only the API server calls it: `kubectl logs|exec|attach|port-forward` go to the API server, which proxies to
the pod's node at the address and port the Node object advertises (`status.addresses`,
`status.daemonEndpoints.kubeletEndpoint.Port`). Paths and query parameters are kubelet's:

    GET      /containerLogs/{namespace}/{pod}/{container}?follow=true&tailLines=N&...
    GET|POST /exec/{namespace}/{pod}/{container}?command=...&input=1&output=1&error=1&tty=1
    GET|POST /attach/{namespace}/{pod}/{container}?input=1&output=1&error=1&tty=1
    GET|POST /portForward/{namespace}/{pod}?port=80,8080      (port only in the WebSocket channel form)

Trust, as kubelet with `--client-ca-file`, `--anonymous-auth=false` and `--tls-cert-file`: the server speaks
TLS only, with a serving certificate signed by the cluster CA (`kube-shim up` issues its nodes' own; a separate
node is given one), which the API server verifies, names included, as kube-apiserver with
`--kubelet-certificate-authority`. Callers prove who they are with a client certificate signed by the cluster
CA (`client_ca_pem`, which every node has from its kubeconfig); one in the `system:masters` group (the API
server's kubelet-client certificate) may do everything, anyone else gets 401/403. There is no open mode: the
server refuses to start without the CA or its certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import web
from aiohttp.typedefs import Handler

from shim.kubelet.logs import LogOptions, LogUnavailable, container_log_path, log_instance, stream_log
from shim.kubelet.portforward import serve_port_forward
from shim.kubelet.streams import CommandOptions, serve_remote_command
from shim.pki import ServingCertificate
from shim.runtime.base import Runtime

AUTHORIZED_GROUP = "system:masters"


class PodRecord(NamedTuple):
    """What the node agent knows of one of its pods (a plain 3-tuple works as well)."""

    pod: dict[str, Any]  # the API object, status included
    sandbox_id: str | None  # None until the sandbox exists
    containers: dict[str, str]  # container name -> id of its newest instance


PodLookup = Callable[[str, str], "tuple[dict[str, Any], str | None, dict[str, str]] | None"]
"""`pod_lookup(namespace, name)`: the pod's record if this node runs it, else None. Called on every request."""


class StreamingServer:
    """The HTTPS server; `start()` binds (port 0 picks a free one, then in `.port`), `stop()` closes it."""

    def __init__(
        self,
        runtime: Runtime,
        data_dir: Path,
        pod_lookup: PodLookup,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_ca_pem: bytes | None,
        serving_certificate: ServingCertificate | None,
    ) -> None:
        if not client_ca_pem:
            raise ValueError("the node server needs the cluster CA, to know who may exec into and read its pods")
        if serving_certificate is None:
            raise ValueError("the node server needs a serving certificate signed by the cluster CA")
        self.runtime = runtime
        self.data_dir = Path(data_dir)
        self.pod_lookup = pod_lookup
        self.host = host
        self.port = port
        self.client_ca_pem = client_ca_pem
        self.serving_certificate = serving_certificate
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        for method in ("GET", "POST"):
            app.router.add_route(method, "/exec/{namespace}/{pod}/{container}", self._exec)
            app.router.add_route(method, "/attach/{namespace}/{pod}/{container}", self._attach)
            app.router.add_route(method, "/portForward/{namespace}/{pod}", self._port_forward)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family, backlog=128)
        self.port = sock.getsockname()[1]
        context = serving_context(self.serving_certificate, self.client_ca_pem)
        await web.SockSite(self._runner, sock, ssl_context=context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ----------------------------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        namespace, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        record = self._lookup(namespace, name)
        if record is None:
            return web.Response(status=404, text=f'pod "{name}" does not exist')
        if container not in _container_names(record.pod):
            return web.Response(status=404, text=f'container "{container}" not found in pod "{name}"')
        try:
            options = LogOptions.from_query(request.query)
            instance = log_instance(record.pod, container, options.previous)
        except (ValueError, LogUnavailable) as exc:
            return web.Response(status=400, text=str(exc))
        uid = record.pod.get("metadata", {}).get("uid", "")
        path = container_log_path(self.data_dir, uid, container, instance)
        followed_id = record.containers.get(container)

        async def still_running() -> bool:
            return followed_id is not None and await self._running_container(namespace, name, container) == followed_id

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        follow = options.follow and not options.previous  # a previous instance never writes again
        with contextlib.suppress(ConnectionError):  # the client stopped reading
            await stream_log(path, dataclasses.replace(options, follow=follow), response.write, still_running)
        return response

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        return await self._remote_command(request, attach=False)

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        return await self._remote_command(request, attach=True)

    async def _remote_command(self, request: web.Request, attach: bool) -> web.StreamResponse:
        namespace, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            options = CommandOptions.from_node_query(request.query)
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        if self._lookup(namespace, name) is None:
            return web.Response(status=404, text="pod does not exist")
        container_id = await self._running_container(namespace, name, container)
        if container_id is None:
            # kubelet's words; kubectl shows them as "unable to upgrade connection: container not found (...)"
            return web.Response(status=500, text=f'container not found ("{container}")')
        if attach:
            return await serve_remote_command(
                request, options, lambda: self.runtime.attach(container_id, options.stdin, options.tty), False
            )
        return await serve_remote_command(
            request,
            options,
            lambda: self.runtime.exec_stream(container_id, options.command, options.stdin, options.tty),
            True,
        )

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        namespace, name = request.match_info["namespace"], request.match_info["pod"]
        record = self._lookup(namespace, name)
        if record is None:
            return web.Response(status=404, text="pod does not exist")
        uid = record.pod.get("metadata", {}).get("uid", "")
        describe = f"{name}_{namespace}, uid {uid}"
        refusal = self.runtime.port_forward_refusal()
        if refusal is not None:  # refused before the upgrade: the client is told at once, and nothing is dialled
            return web.Response(status=400, text=f"unable to forward ports of pod {describe}: {refusal}")
        sandbox_id = record.sandbox_id
        address = await self.runtime.sandbox_ip(sandbox_id) if sandbox_id else None
        if not sandbox_id or not address:
            return web.Response(status=500, text=f"pod {describe} has no network address yet")

        async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await self.runtime.dial_pod(sandbox_id, port)

        return await serve_port_forward(request, dial, describe)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _lookup(self, namespace: str, name: str) -> PodRecord | None:
        found = self.pod_lookup(namespace, name)
        return PodRecord(*found) if found is not None else None

    async def _running_container(self, namespace: str, name: str, container: str) -> str | None:
        """The id of the container's newest instance if it is running now (asked of the runtime, not the pod)."""
        record = self._lookup(namespace, name)
        if record is None or record.sandbox_id is None or container not in record.containers:
            return None
        container_id = record.containers[container]
        status = await self.runtime.sandbox_status(record.sandbox_id)
        running = status is not None and any(c.id == container_id and c.state == "running" for c in status.containers)
        return container_id if running else None

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        user, groups = _certificate_subject(request)
        if user is None:
            return web.Response(status=401, text="Unauthorized")
        if AUTHORIZED_GROUP not in groups:
            return web.Response(status=403, text=f"Forbidden (user={user}, verb=*, resource=nodes, subresource=proxy)")
        return await handler(request)


def serving_context(certificate: ServingCertificate, client_ca_pem: bytes) -> ssl.SSLContext:
    """TLS for the streaming server: its CA-signed certificate, client certificates checked against the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate.cert_path, certificate.key_path)
    context.set_alpn_protocols(["http/1.1"])  # upgrades (SPDY, WebSocket) exist only in HTTP/1.1
    context.load_verify_locations(cadata=client_ca_pem.decode())
    context.verify_mode = ssl.CERT_OPTIONAL  # a missing certificate is a clean 401, not a failed handshake
    return context


def _certificate_subject(request: web.Request) -> tuple[str | None, tuple[str, ...]]:
    """CN and O entries of the caller's CA-verified certificate (the TLS layer verified it or there is none)."""
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    if not peer:
        return None, ()
    names = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
    groups = tuple(value for rdn in peer.get("subject", ()) for key, value in rdn if key == "organizationName")
    return (names[0] if names else None), groups


def _container_names(pod: dict[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    return {
        c.get("name", "")
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    }
