"""A node agent's streaming server for tests: the real `StreamingServer` on an event loop of its own thread.

The default runtime is the simulated one, except that exec runs the command as a real local process (so stdin,
stdout, stderr and exit codes are real) and the pod's address is 127.0.0.1 (so port-forward reaches servers the
test starts on loopback); any other runtime (real Podman) can stand in. The test decides each pod's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from shim.kubelet.logs import container_log_path
from shim.kubelet.server import PodRecord, StreamingServer
from shim.pki import ServingCertificate, ensure_node_certificate
from shim.runtime.base import LABEL_CONTAINER_NAME, ContainerSpec, ExecSession, Runtime, SandboxSpec
from shim.runtime.fake import FakeRuntime
from tests.cluster import Cluster
from tests.prerequisites import kubectl_path

T = TypeVar("T")
CALL_TIMEOUT = 30.0
WAIT = 20.0  # the longest any streamed output may take to show up
RUNNING: dict[str, Any] = {"restartCount": 0, "state": {"running": {"startedAt": "2026-11-21T10:00:00Z"}}}


class LocalExecRuntime(FakeRuntime):
    """The fake runtime with real processes for exec and every pod on 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.resizes: list[tuple[int, int]] = []
        self.resized = threading.Event()  # set by every terminal resize an exec receives

    async def sandbox_ip(self, sandbox_id: str) -> str | None:
        return "127.0.0.1" if await self.sandbox_status(sandbox_id) is not None else None

    def port_forward_refusal(self) -> str | None:
        return None  # its pods are on 127.0.0.1, where the test's own servers listen

    async def dial_pod(self, sandbox_id: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await Runtime.dial_pod(self, sandbox_id, port)  # a real dial, which the simulated runtime refuses

    async def exec_stream(self, container_id: str, command: list[str], stdin: bool, tty: bool) -> ExecSession:
        self._running(container_id)
        return await LocalProcess.start(command, stdin, self._resize)

    def _resize(self, width: int, height: int) -> None:
        self.resizes.append((width, height))
        self.resized.set()


class LocalProcess(ExecSession):
    """A local subprocess as an exec session: stdout and stderr as they come, then the exit code."""

    def __init__(self, process: asyncio.subprocess.Process, on_resize: Callable[[int, int], None]) -> None:
        self.process = process
        self.on_resize = on_resize

    @classmethod
    async def start(cls, command: list[str], stdin: bool, on_resize: Callable[[int, int], None]) -> LocalProcess:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process, on_resize)

    async def write_stdin(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        with contextlib.suppress(ConnectionError):
            await self.process.stdin.drain()

    async def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        chunks: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

        async def pump(stream: int, pipe: asyncio.StreamReader | None) -> None:
            assert pipe is not None
            while data := await pipe.read(65536):
                chunks.put_nowait((stream, data))
            chunks.put_nowait(None)

        tasks = [asyncio.create_task(pump(1, self.process.stdout)), asyncio.create_task(pump(2, self.process.stderr))]
        open_pipes = len(tasks)
        while open_pipes:
            chunk = await chunks.get()
            if chunk is None:
                open_pipes -= 1
            else:
                yield chunk

    async def resize(self, width: int, height: int) -> None:
        self.on_resize(width, height)

    async def wait(self) -> int:
        return await self.process.wait()


class StreamNode:
    """The streaming server and runtime of one test node, driven from synchronous test code."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        cluster: Cluster,
        make_runtime: Callable[[], Runtime] = LocalExecRuntime,
        serving_certificate: ServingCertificate | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """A node server trusting `cluster`'s CA, serving a certificate that CA issued for `host` unless given one."""
        self.name = name
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="stream-node", daemon=True)
        self._thread.start()
        self.pods: dict[tuple[str, str], PodRecord] = {}
        self._servers: list[asyncio.Server] = []
        self.runtime = self.call(_started(make_runtime))
        cluster_dir = cluster.data_dir / "state"
        self.server = StreamingServer(
            self.runtime,
            data_dir,
            lambda ns, name: self.pods.get((ns, name)),
            host,
            client_ca_pem=(cluster_dir / "pki" / "ca.crt").read_bytes(),
            serving_certificate=serving_certificate or ensure_node_certificate(cluster_dir, name, [host]),
        )
        self.call(self.server.start())

    @property
    def port(self) -> int:
        return self.server.port

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the node's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(CALL_TIMEOUT)

    def run_pod(self, pod: dict[str, Any], statuses: dict[str, dict[str, Any]]) -> PodRecord:
        """Start `pod`'s containers in the runtime, logging where the node keeps logs; report `statuses`."""
        meta = pod["metadata"]

        async def start() -> PodRecord:
            sandbox = await self.runtime.create_sandbox(
                SandboxSpec(meta["uid"], meta["namespace"], meta["name"], meta["name"])
            )
            ids = {}
            for container in pod["spec"]["containers"]:
                name = container["name"]
                spec = ContainerSpec(
                    name=name,
                    image=container["image"],
                    command=container.get("command", []),
                    args=container.get("args", []),
                    log_path=str(container_log_path(self.data_dir, meta["uid"], name, 0)),
                    labels={LABEL_CONTAINER_NAME: name},
                )
                ids[name] = await self.runtime.create_container(sandbox, spec)
                await self.runtime.start_container(ids[name])
            return PodRecord(pod, sandbox, ids)

        record = self.call(start())
        pod["status"] = {"containerStatuses": [{"name": name, **status} for name, status in statuses.items()]}
        self.pods[(meta["namespace"], meta["name"])] = record
        return record

    def stop_container(self, record: PodRecord, name: str) -> None:
        self.call(self.runtime.stop_container(record.containers[name], 0))

    def log_path(self, record: PodRecord, container: str, instance: int) -> Path:
        return container_log_path(self.data_dir, record.pod["metadata"]["uid"], container, instance)

    def echo_server(self) -> int:
        """A TCP server on 127.0.0.1 that sends back what it receives and closes after the client's EOF."""

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        async def start() -> int:
            server = await asyncio.start_server(echo, "127.0.0.1", 0)
            self._servers.append(server)
            return server.sockets[0].getsockname()[1]

        return self.call(start())

    def stop(self) -> None:
        """Stop the server, remove every pod from the runtime, close the runtime and the loop."""
        self.call(self.server.stop())
        for record in self.pods.values():
            if record.sandbox_id is not None:
                self.call(self.runtime.remove_sandbox(record.sandbox_id))
        self.call(self.runtime.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CALL_TIMEOUT)


async def _started(make_runtime: Callable[[], Runtime]) -> Runtime:
    runtime = make_runtime()
    await runtime.start()
    return runtime


# -- driving it through the cluster -----------------------------------------------------------------------------


def register_node(cluster: Cluster, node: StreamNode) -> None:
    """The Node object, advertising the streaming server as its kubelet endpoint (as the node agent does)."""
    cluster.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                           "metadata": {"name": node.name}}))  # fmt: skip
    status = {
        "addresses": [{"type": "InternalIP", "address": node.server.host}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": node.port}},
    }
    cluster.kubectl("patch", "node", node.name, "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": status}))  # fmt: skip


def start_pod(
    cluster: Cluster,
    node: StreamNode | None,
    namespace: str,
    name: str,
    containers: list[dict[str, Any]],
    statuses: dict[str, dict[str, Any]] | None = None,
) -> PodRecord | None:
    """Create the pod bound to `node` (None: unscheduled), mark it Running, and run it on the node.

    `statuses` are the container statuses the node reports (default: every container running)."""
    spec: dict[str, Any] = {"containers": containers}
    if node is not None:
        spec["nodeName"] = node.name
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    created = json.loads(cluster.kubectl("create", "-f", "-", "-o", "json", stdin=json.dumps(manifest)).stdout)
    if node is None:
        return None
    cluster.kubectl("patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge", "-p",
                    '{"status":{"phase":"Running"}}')  # fmt: skip
    return node.run_pod(created, statuses or {c["name"]: RUNNING for c in containers})


def kubectl_process(cluster: Cluster, version: str, *args: str, terminal: int | None = None) -> subprocess.Popen[str]:
    """A long-running kubectl (logs -f, port-forward) whose output the test reads as it comes; with `terminal`
    (a pty's fd) as its stdin, stdout and stderr instead of pipes."""
    env = dict(os.environ, KUBECACHEDIR=str(cluster.data_dir / f"kubecache-{version}"), HOME=str(cluster.data_dir))
    command = [str(kubectl_path(version)), "--kubeconfig", str(cluster.kubeconfig), *args]
    stdio = subprocess.PIPE if terminal is None else terminal
    return subprocess.Popen(command, stdin=terminal, stdout=stdio, stderr=stdio, text=True, env=env)


class Lines:
    """The lines a process prints, read by a thread so the test can wait for one with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + WAIT
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"never printed {text!r}; printed {self.seen!r}")


def exchange(port: int, message: bytes) -> bytes:
    """Send `message` through a forwarded local port, half-close, and read the answer to its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(message)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return bytes(received)
