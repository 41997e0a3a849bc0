"""Nothing a pod or a streaming client does grows without bound on the node, and a probe never sends the node's
requests to another host: container logs rotate at the node's maximum size (real Podman), an emptyDir over its
sizeLimit gets its pod evicted, SPDY header blocks, open streams and unread stream data are bounded, WebSocket
messages too, and an httpGet probe follows redirects only on its own host."""

from __future__ import annotations

import asyncio
import os
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from shim.client import ApiClient
from shim.kubelet.logs import LogOptions, stream_log
from shim.kubelet.spdy import (
    DICTIONARY,
    MAX_STREAM_BUFFER,
    MAX_STREAMS,
    PING,
    RST_REFUSED_STREAM,
    RST_STREAM,
    SYN_STREAM,
    SpdySession,
)
from shim.kubelet.streams import MAX_WEBSOCKET_MESSAGE, STDIN, V5_PROTOCOL, CommandOptions, serve_remote_command
from shim.machinery.resources import PODS
from shim.runtime.podman import PULL_WORKERS, WORKERS
from tests import kubelet_kit, podman_cluster
from tests.cluster import free_port, wait_until
from tests.kubelet_kit import (
    DEADLINE,
    box,
    container_status,
    is_running_and_ready,
    pod_manifest,
    running_node,
    runtime_id,
    wait_event,
    wait_for,
)
from tests.podman_cluster import busybox, podman_runtime
from tests.podman_env import PodmanEnv
from tests.prerequisites import needs_podman
from tests.streamnode import LocalProcess

# the Podman root with the test image, and the API client, shared with the other node tests
podman_root = podman_cluster.podman_env
api = kubelet_kit.api

podman_only = needs_podman
Obj = dict[str, Any]
CALL_DEADLINE = 5.0  # a runtime call that is not stuck behind others answers well within this


def new_node() -> str:
    return "kl-" + uuid.uuid4().hex[:6]


# -- container logs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", [pytest.param("podman", marks=podman_only)])
async def test_a_container_log_is_rotated_at_the_nodes_maximum_size_and_followed_across(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str, runtime: str
) -> None:
    node, max_size = new_node(), 64 * 1024
    # a first line; then, once told, about 440 KB of output and a last line
    script = (
        "echo first; until [ -e /tmp/go ]; do sleep 0.1; done; "
        f"i=0; while [ $i -lt 4000 ]; do echo {'x' * 100} $i; i=$((i+1)); done; echo done; exec sleep 3600"
    )
    node_runtime = podman_runtime(podman_root, tmp_path, node)
    followed: list[bytes] = []

    async def collect(data: bytes) -> None:
        followed.append(data)

    async def still_running() -> bool:
        return True

    async with running_node(api, tmp_path, node_runtime, name=node, container_log_max_size=max_size):
        created = await api.create(PODS, pod_manifest("chatty", node, [busybox("app", script)]), namespace)
        log = tmp_path / node / "pods" / created["metadata"]["uid"] / "logs" / "app" / "0.log"
        follower = asyncio.create_task(stream_log(log, LogOptions(follow=True), collect, still_running))
        try:
            pod = await wait_for(api, PODS, namespace, "chatty", lambda p: p["status"].get("phase") == "Running")
            await asyncio.to_thread(wait_until, lambda: b"first\n" in b"".join(followed), DEADLINE, "the first line")
            container_id = runtime_id(container_status(pod, "app")["containerID"])
            assert (await node_runtime.exec(container_id, ["touch", "/tmp/go"], DEADLINE)).exit_code == 0
            # `kubectl logs -f` goes on in each new file the runtime rotates to, up to the last line
            await asyncio.to_thread(wait_until, lambda: b"done\n" in b"".join(followed), DEADLINE, "the last line")
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        size = log.stat().st_size
    assert size <= max_size, size
    assert container_status(pod, "app")["restartCount"] == 0


# -- image pulls ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", [pytest.param("podman", marks=podman_only)])
async def test_stalled_image_pulls_leave_the_runtime_free_for_other_calls(
    podman_root: PodmanEnv, tmp_path: Path, runtime: str
) -> None:
    connections: list[asyncio.StreamWriter] = []

    async def stall(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # a registry that accepts and never answers

    registry = await asyncio.start_server(stall, "127.0.0.1", 0)
    address = f"127.0.0.1:{registry.sockets[0].getsockname()[1]}"
    node_runtime = podman_runtime(podman_root, tmp_path, new_node())
    await node_runtime.start()
    # more pulls than the runtime has threads for all of its calls
    images = [f"{address}/stalled/image-{i}:1" for i in range(WORKERS + 4)]
    pulls = [asyncio.create_task(node_runtime.ensure_image(image, "Always")) for image in images]
    try:
        await asyncio.to_thread(wait_until, lambda: len(connections) >= PULL_WORKERS, DEADLINE, "pulls in flight")
        listed = await asyncio.wait_for(node_runtime.list_sandboxes(), CALL_DEADLINE)
        assert listed == []
    finally:
        for pull in pulls:
            pull.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)
        registry.close()
        for writer in connections:
            writer.close()
        await node_runtime.close()


# -- emptyDir sizeLimit -------------------------------------------------------------------------------------------


async def test_a_pod_whose_empty_dir_outgrows_its_size_limit_is_evicted(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    async with running_node(api, tmp_path, volume_stats_interval=0.2) as kubelet:
        volumes = [{"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}}, {"name": "free", "emptyDir": {}}]
        manifest = pod_manifest("hoarder", kubelet.node_name, [box("app")], volumes=volumes)
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "hoarder", is_running_and_ready)
        root = tmp_path / kubelet.node_name / "pods" / pod["metadata"]["uid"] / "volumes"
        # what the (simulated) container writes: the volume without a limit may hold anything
        (root / "free" / "blob").write_bytes(os.urandom(2 * 1024 * 1024))
        (root / "cache" / "small").write_bytes(os.urandom(512 * 1024))
        (root / "cache" / "blob").write_bytes(os.urandom(1024 * 1024))
        evicted = await wait_for(api, PODS, namespace, "hoarder", lambda p: p["status"].get("phase") == "Failed")
        message = 'Usage of EmptyDir volume "cache" exceeds the limit "1Mi". '
        assert (evicted["status"]["reason"], evicted["status"]["message"]) == ("Evicted", message)
        assert "terminated" in container_status(evicted, "app")["state"]
        event = await wait_event(api, namespace, "Evicted", message)
        assert event["type"] == "Warning"


@pytest.mark.parametrize("runtime", [pytest.param("podman", marks=podman_only)])
async def test_a_container_filling_its_empty_dir_past_the_limit_gets_its_pod_evicted(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str, runtime: str
) -> None:
    node = new_node()
    filler = busybox(
        "filler",
        "dd if=/dev/zero of=/cache/blob bs=1048576 count=3 && exec sleep 3600",
        volumeMounts=[{"name": "cache", "mountPath": "/cache"}],
    )
    volumes = [{"name": "cache", "emptyDir": {"sizeLimit": "2Mi"}}]
    node_runtime = podman_runtime(podman_root, tmp_path, node)
    async with running_node(api, tmp_path, node_runtime, name=node, volume_stats_interval=0.2):
        await api.create(PODS, pod_manifest("filler", node, [filler], volumes=volumes), namespace)
        evicted = await wait_for(api, PODS, namespace, "filler", lambda p: p["status"].get("phase") == "Failed")
    assert evicted["status"]["reason"] == "Evicted"
    assert evicted["status"]["message"] == 'Usage of EmptyDir volume "cache" exceeds the limit "2Mi". '
    assert container_status(evicted, "filler")["state"]["terminated"]["exitCode"] == 137  # killed at once


# -- probes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", [pytest.param("podman", marks=podman_only)])
async def test_an_http_probe_follows_redirects_only_on_its_own_host(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str, runtime: str
) -> None:
    node, port = new_node(), free_port()
    hits: dict[str, int] = {"ok": 0, "elsewhere": 0}

    async def redirect_away(_: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{port}/elsewhere")

    async def redirect_here(_: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    def counted(key: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_: web.Request) -> web.Response:
            hits[key] += 1
            return web.Response(text=key)

        return handler

    here, elsewhere = web.Application(), web.Application()
    here.add_routes([web.get("/away", redirect_away), web.get("/hop", redirect_here), web.get("/ok", counted("ok"))])
    elsewhere.add_routes([web.get("/elsewhere", counted("elsewhere"))])
    probe = {"periodSeconds": 1, "timeoutSeconds": 2}
    far = busybox(
        "far",
        "exec sleep 3600",
        readinessProbe={"httpGet": {"host": "127.0.0.1", "port": port, "path": "/away"}, **probe},
    )
    near = busybox(
        "near",
        "exec sleep 3600",
        readinessProbe={"httpGet": {"host": "127.0.0.1", "port": port, "path": "/hop"}, **probe},
    )
    node_runtime = podman_runtime(podman_root, tmp_path, node)
    async with (
        serving(here, "127.0.0.1", port),
        serving(elsewhere, "127.0.0.2", port),
        running_node(api, tmp_path, node_runtime, name=node),
    ):
        await api.create(PODS, pod_manifest("redirected", node, [far, near]), namespace)
        await wait_for(api, PODS, namespace, "redirected", is_running_and_ready)
        event = await wait_event(api, namespace, "ProbeWarning")
    # a redirect to another host is not followed: it counts as success, with a warning, as in kube
    assert event["message"].startswith("Readiness probe warning: Probe terminated redirects, Response body:")
    assert event["type"] == "Warning"
    assert hits["elsewhere"] == 0 and hits["ok"] >= 1


# -- SPDY -----------------------------------------------------------------------------------------------------


async def test_a_spdy_header_block_inflating_past_its_bound_ends_the_session() -> None:
    deflate = _header_deflater()
    # 8 MiB of header value in a few KiB on the wire
    bomb = struct.pack(">II", 1, 4) + b"name" + struct.pack(">I", 8 << 20) + bytes(8 << 20)
    frames = [_syn_stream(deflate, 1, bomb)]
    session, _, _ = _session(frames)
    try:
        assert await asyncio.wait_for(session.accept(), DEADLINE) is None
        assert session.ended.is_set()
    finally:
        await session.close()


async def test_a_spdy_session_refuses_streams_past_its_bound() -> None:
    deflate = _header_deflater()
    headers = struct.pack(">II", 1, 10) + b"streamtype" + struct.pack(">I", 4) + b"data"
    frames = [_syn_stream(deflate, 1 + 2 * i, headers) for i in range(MAX_STREAMS + 10)]
    session, sent, _ = _session(frames)
    try:
        accepted = []
        while (stream := await asyncio.wait_for(session.accept(), DEADLINE)) is not None:
            accepted.append(stream)
    finally:
        await session.close()
    assert len(accepted) == MAX_STREAMS
    refused = [frame for frame in sent if _control_kind(frame) == RST_STREAM]
    assert [struct.unpack_from(">II", frame, 8) for frame in refused] == [
        (1 + 2 * i, RST_REFUSED_STREAM) for i in range(MAX_STREAMS, MAX_STREAMS + 10)
    ]


async def test_unread_spdy_stream_data_stops_the_session_reading() -> None:
    deflate = _header_deflater()
    headers = struct.pack(">II", 1, 10) + b"streamtype" + struct.pack(">I", 5) + b"stdin"
    chunk = bytes(64 * 1024)
    full = MAX_STREAM_BUFFER // len(chunk)  # data frames that fill the stream's buffer
    frames = [_syn_stream(deflate, 1, headers)]
    frames += [struct.pack(">II", 1, len(chunk)) + chunk for _ in range(4 * full)]
    frames.append(_control_frame(PING, struct.pack(">I", 1)))  # answered when the session reads it
    # frame 1 + full is the first the full stream cannot take: the session waits there for the stream's reader
    session, sent, reached = _session(frames, mark=1 + full)
    try:
        stream = await asyncio.wait_for(session.accept(), DEADLINE)
        assert stream is not None
        await asyncio.wait_for(reached.wait(), DEADLINE)
        assert not any(_control_kind(frame) == PING for frame in sent), "the session read past a full stream"
        received = 0
        while received < 4 * full * len(chunk):
            received += len(await asyncio.wait_for(stream.read(), DEADLINE))
        await asyncio.to_thread(wait_until, lambda: any(_control_kind(f) == PING for f in sent), DEADLINE)
    finally:
        await session.close()


def _header_deflater() -> Any:
    return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)


def _syn_stream(deflate: Any, stream_id: int, header_block: bytes) -> bytes:
    block = deflate.compress(header_block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return _control_frame(SYN_STREAM, struct.pack(">II", stream_id, 0) + b"\0\0" + block)


def _control_frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8003, kind, len(payload)) + payload


def _control_kind(frame: bytes) -> int | None:
    first, kind = struct.unpack_from(">HH", frame)
    return kind if first & 0x8000 else None


def _session(frames: list[bytes], mark: int = -1) -> tuple[SpdySession, list[bytes], asyncio.Event]:
    """A session reading `frames` one at a time; what it sends; an event set when it takes frame `mark`."""
    sent: list[bytes] = []
    reached = asyncio.Event()

    async def send(data: bytes) -> None:
        sent.append(data)

    async def chunks() -> AsyncIterator[bytes]:
        for index, frame in enumerate(frames):
            if index == mark:
                reached.set()
            yield frame

    return SpdySession(send, chunks()), sent, reached


# -- WebSocket ------------------------------------------------------------------------------------------------


async def test_a_websocket_message_over_the_bound_closes_the_exec_stream() -> None:
    processes: list[LocalProcess] = []

    async def start() -> LocalProcess:
        process = await LocalProcess.start(["cat"], True, lambda width, height: None)
        processes.append(process)
        return process

    async def handler(request: web.Request) -> web.StreamResponse:
        options = CommandOptions(stdin=True, stdout=True, stderr=False, tty=False, command=["cat"])
        return await serve_remote_command(request, options, start, report_exit_code=True)

    app, port = web.Application(), free_port()
    app.add_routes([web.get("/exec", handler)])
    try:
        async with serving(app, "127.0.0.1", port), aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/exec"
            async with http.ws_connect(url, protocols=[V5_PROTOCOL], max_msg_size=0) as ws:
                await ws.send_bytes(bytes((STDIN,)) + b"small\n")
                echoed = await asyncio.wait_for(ws.receive(), DEADLINE)
                assert (echoed.type, echoed.data) == (WSMsgType.BINARY, b"\x01small\n")
                await ws.send_bytes(bytes((STDIN,)) + bytes(MAX_WEBSOCKET_MESSAGE + 1))
                closed = await asyncio.wait_for(ws.receive(), DEADLINE)
        assert closed.type == WSMsgType.CLOSE and closed.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG, closed
    finally:
        for process in processes:
            if process.process.returncode is None:
                process.process.kill()
                await process.process.wait()


@asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[None]:
    """An aiohttp application listening on host:port for the block's duration."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()
