"""`pods/{name}/log|exec|attach|portforward`: find the pod's node and relay the request to its kubelet.

As kube-apiserver does: the API server checks the request (pod, container, options), turns it into kubelet's
URL (`/containerLogs/...`, `/exec/...?input=1&output=1`, `/portForward/...`) on the node's advertised address
and port, and relays. A log's body streams through as it comes (`follow` keeps it open). Exec, attach and
port-forward are upgrade requests (WebSocket or SPDY): the request head goes to the node as it is, and after
the node's `101 Switching Protocols` the two connections are spliced byte for byte, so the channel protocol
or SPDY session is between the client and the node; a refusal (any other status) is relayed with its body,
which is what kubectl prints after "unable to upgrade connection:".

The API server authenticates to kubelets with a client certificate (`KubeletClient`, installed on the app by
`install_kubelet_client`), and verifies their serving certificates against the cluster CA and the address it
dials, as kube-apiserver with `--kubelet-certificate-authority`: the address comes from the Node's status,
which its node writes, so a node could otherwise point the API server's exec and log requests anywhere.
A certificate that fails is a 500 InternalError saying why in Go's words, as kube-apiserver answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from shim.apiserver import errors, query
from shim.apiserver.errors import ApiError
from shim.apiserver.objects import ObjectStore
from shim.machinery.resources import NODES
from shim.streaming.http1 import parse_response_head
from shim.streaming.upgrade import accept_upgrade

DEFAULT_KUBELET_PORT = 10250
# kube-apiserver's --kubelet-preferred-address-types, with the addresses a node agent here reports first
PREFERRED_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS")
# request headers an upgrade needs on the node; never the caller's Authorization
UPGRADE_REQUEST_HEADERS = (
    "Connection",
    "Upgrade",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "X-Stream-Protocol-Version",
)
UPGRADE_RESPONSE_HEADERS = (
    "Connection",
    "Upgrade",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "X-Stream-Protocol-Version",
    "X-Accepted-Stream-Protocol-Versions",
)
_RELAYED_RESPONSE_HEADERS = {name.lower() for name in UPGRADE_RESPONSE_HEADERS}
# kubelet's path for each subresource (portforward's takes no container)
NODE_PATHS = {"log": "containerLogs", "exec": "exec", "attach": "attach", "portforward": "portForward"}
HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024
DIAL_TIMEOUT = 10.0
# OpenSSL's verify codes in Go's words (crypto/x509), which is what kubectl users know and search for
_UNKNOWN_AUTHORITY = "x509: certificate signed by unknown authority"
X509_REASONS = {
    2: _UNKNOWN_AUTHORITY,  # unable to get issuer certificate
    18: _UNKNOWN_AUTHORITY,  # self-signed certificate
    19: _UNKNOWN_AUTHORITY,  # self-signed certificate in chain
    20: _UNKNOWN_AUTHORITY,  # unable to get local issuer certificate
    21: _UNKNOWN_AUTHORITY,  # unable to verify the first certificate
    9: "x509: certificate has expired or is not yet valid",
    10: "x509: certificate has expired or is not yet valid",
}  # others (a certificate for another address: "IP address mismatch, ...") in OpenSSL's words


class KubeletClient:
    """How the API server reaches kubelets: one TLS client context (with its client certificate) and one
    HTTP session for log requests."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=DIAL_TIMEOUT))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


KUBELET_CLIENT = web.AppKey("kubelet_client", KubeletClient)


def kubelet_client_context(
    cert_path: Path | None = None, key_path: Path | None = None, *, ca_pem: bytes | None = None
) -> ssl.SSLContext:
    """TLS towards kubelets: our client certificate if given; their serving certificates must be issued by
    `ca_pem` (no CA: none is trusted) for the address dialled."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    context.set_alpn_protocols(["http/1.1"])
    if ca_pem is not None:
        context.load_verify_locations(cadata=ca_pem.decode())
    if cert_path is not None and key_path is not None:
        context.load_cert_chain(cert_path, key_path)
    return context


def install_kubelet_client(app: web.Application, ssl_context: ssl.SSLContext) -> None:
    """Give the API server app its kubelet credentials (call before the app starts)."""
    client = KubeletClient(ssl_context)
    app[KUBELET_CLIENT] = client

    async def close(_: web.Application) -> None:
        await client.close()

    app.on_cleanup.append(close)


async def proxy_to_node(
    request: web.Request, pod: dict[str, Any], subresource: str, objects: ObjectStore
) -> web.StreamResponse:
    """Serve `pods/{name}/{subresource}` (log, exec, attach, portforward) for `pod` through its node."""
    name = pod["metadata"]["name"]
    upgrade = subresource != "log"
    if request.method not in (("GET", "POST") if upgrade else ("GET",)):
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    q = request.query
    path = f"/{NODE_PATHS[subresource]}/{pod['metadata']['namespace']}/{name}"
    if subresource == "portforward":
        node_query = _port_forward_query(q)
    else:
        path += "/" + _validate_container(pod, q.get("container", ""))
        node_query = _log_query(name, q) if subresource == "log" else _command_query(q, subresource == "exec")
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        if subresource == "log":
            return web.Response(text="", content_type="text/plain")  # kube: no node yet, no log yet
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    host, port = await _kubelet_endpoint(objects, node_name)
    target = path + ("?" + urllib.parse.urlencode(node_query) if node_query else "")
    installed = request.app.get(KUBELET_CLIENT)
    # without installed credentials no node's certificate is trusted: the request fails with a clear 500
    client = installed or KubeletClient(kubelet_client_context())
    try:
        if not upgrade:
            return await _relay_log(request, client, host, port, target)
        if "upgrade" not in request.headers.get("Connection", "").lower():
            raise errors.bad_request("Upgrade request required")
        return await _relay_upgrade(request, client.ssl_context, host, port, target)
    finally:
        if installed is None:
            await client.close()


# -- checking the request (kube's pod strategy and PodLogOptions validation) -------------------------------------


def _validate_container(pod: dict[str, Any], container: str) -> str:
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    containers = spec.get("containers") or []
    kinds = ("initContainers", "containers", "ephemeralContainers")
    every = [c.get("name", "") for kind in kinds for c in spec.get(kind) or []]
    if not container:
        if len(containers) == 1:
            return containers[0].get("name", "")
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(every)}]"
        )
    if container not in every:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def _log_query(name: str, q: MultiMapping[str]) -> list[tuple[str, str]]:
    tail_lines, limit_bytes = query.parse_int(q, "tailLines"), query.parse_int(q, "limitBytes")
    since_seconds, since_time = query.parse_int(q, "sinceSeconds"), q.get("sinceTime")
    causes = []
    if tail_lines is not None and tail_lines < 0:
        causes.append(_invalid("tailLines", tail_lines, "must be greater than or equal to 0"))
    if limit_bytes is not None and limit_bytes < 1:
        causes.append(_invalid("limitBytes", limit_bytes, "must be greater than 0"))
    if since_seconds is not None and since_time:
        why = "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        causes.append(errors.cause("FieldValueForbidden", "", why))
    elif since_seconds is not None and since_seconds < 1:
        causes.append(_invalid("sinceSeconds", since_seconds, "must be greater than 0"))
    if causes:
        raise errors.invalid("", "PodLogOptions", name, causes)
    node: list[tuple[str, str]] = [
        (flag, "true") for flag in ("follow", "previous", "timestamps") if query.parse_bool(q, flag)
    ]
    if since_seconds is not None:
        node.append(("sinceSeconds", str(since_seconds)))
    if since_time:
        node.append(("sinceTime", _rfc3339(since_time)))
    for key, value in (("tailLines", tail_lines), ("limitBytes", limit_bytes)):
        if value is not None:
            node.append((key, str(value)))
    return node


def _command_query(q: MultiMapping[str], with_command: bool) -> list[tuple[str, str]]:
    flags = (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty"))
    node = [(node_name, "1") for api_name, node_name in flags if query.parse_bool(q, api_name)]
    if with_command:
        node += [("command", part) for part in q.getall("command", [])]
    return node


def _port_forward_query(q: MultiMapping[str]) -> list[tuple[str, str]]:
    ports = [port for value in q.getall("ports", []) for port in value.split(",") if port]
    for port in ports:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise errors.bad_request(f'invalid port "{port}": must be between 1 and 65535')
    return [("port", ",".join(ports))] if ports else []


def _invalid(field: str, value: int, why: str) -> dict[str, str]:
    return errors.cause("FieldValueInvalid", field, f"Invalid value: {value}: {why}")


def _rfc3339(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise errors.bad_request(
            f'parsing time "{text}" as "2006-01-02T15:04:05Z07:00": cannot parse "{text}" as "2006"'
        ) from None
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- finding the node -------------------------------------------------------------------------------------------


async def _kubelet_endpoint(objects: ObjectStore, node_name: str) -> tuple[str, int]:
    node = await objects.get(objects.registry.get(NODES), None, node_name)
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in reversed(status.get("addresses") or [])}
    host = next((addresses[kind] for kind in PREFERRED_ADDRESS_TYPES if addresses.get(kind)), None)
    if host is None:
        known = " ".join(f"{{{a.get('type')} {a.get('address')}}}" for a in status.get("addresses") or [])
        raise ApiError(500, "InternalError", f"no preferred addresses found; known addresses: [{known}]")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or DEFAULT_KUBELET_PORT
    return host, int(port)


# -- relaying ---------------------------------------------------------------------------------------------------


async def _relay_log(
    request: web.Request, client: KubeletClient, host: str, port: int, target: str
) -> web.StreamResponse:
    url = f"https://{_host_literal(host)}:{port}{target}"
    try:
        upstream = await client.session.get(url, ssl=client.ssl_context)
    except (aiohttp.ClientError, OSError) as exc:
        raise _dial_error(exc) from None
    async with upstream:
        if upstream.status != 200:
            message = (await upstream.text(errors="replace")).strip()
            raise ApiError(upstream.status, None, message or upstream.reason or "")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, aiohttp.ClientPayloadError):
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        return response


async def _relay_upgrade(
    request: web.Request, context: ssl.SSLContext, host: str, port: int, target: str
) -> web.StreamResponse:
    try:
        async with asyncio.timeout(DIAL_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=HEAD_LIMIT)
    except (OSError, TimeoutError) as exc:
        raise _dial_error(exc) from None
    try:
        writer.write(_request_head(request, host, port, target))
        status, headers = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
        if status != 101:
            return await _refusal(reader, status, headers)
        relayed = {k: v for k, v in headers.items() if k.lower() in _RELAYED_RESPONSE_HEADERS}
        connection, response = await accept_upgrade(request, relayed)
        to_node = asyncio.create_task(_client_to_node(connection, writer))
        to_client = asyncio.create_task(_node_to_client(reader, response))
        try:
            await asyncio.wait((to_node, to_client), return_when=asyncio.FIRST_COMPLETED)
        finally:
            to_node.cancel()
            to_client.cancel()
        return response
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise _dial_error(exc) from None
    finally:
        writer.close()


async def _client_to_node(connection: Any, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        async for chunk in connection:
            writer.write(chunk)
            await writer.drain()


async def _node_to_client(reader: asyncio.StreamReader, response: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(CHUNK):
            await response.write(data)


async def _refusal(reader: asyncio.StreamReader, status: int, headers: CIMultiDict[str]) -> web.Response:
    """The node's non-101 answer, relayed as it is (kubectl decodes a Status, else prints the text)."""
    length = int(headers.get("Content-Length") or 0)
    with contextlib.suppress(asyncio.IncompleteReadError):
        body = await reader.readexactly(min(length, HEAD_LIMIT)) if length else b""
    return web.Response(
        status=status, body=body, headers={"Content-Type": headers.get("Content-Type", "text/plain; charset=utf-8")}
    )


def _request_head(request: web.Request, host: str, port: int, target: str) -> bytes:
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {_host_literal(host)}:{port}"]
    for name in UPGRADE_REQUEST_HEADERS:
        lines += [f"{name}: {value}" for value in request.headers.getall(name, [])]
    if request.method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _dial_error(exc: BaseException) -> ApiError:
    failed = exc.certificate_error if isinstance(exc, aiohttp.ClientConnectorCertificateError) else exc
    if isinstance(failed, ssl.SSLCertVerificationError):
        reason = X509_REASONS.get(failed.verify_code, f"x509: {failed.verify_message}")
        return ApiError(500, "InternalError", f"error dialing backend: tls: failed to verify certificate: {reason}")
    return ApiError(500, "InternalError", f"error dialing backend: {exc}")


def _host_literal(host: str) -> str:
    return f"[{host}]" if ":" in host else host
