"""Logs, exec, attach and port-forward end to end: the real kubectl (1.27 speaks SPDY, 1.33 WebSockets) and the
Python client against the real `kube-shim up`, which proxies to a node's streaming server (`tests/streamnode.py`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import ssl
import struct
import termios
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream

from shim.apiserver.proxy import kubelet_client_context
from shim.kubelet.logs import LogOptions, stream_log
from shim.kubelet.server import PodRecord, StreamingServer
from shim.pki import Pki, ensure_node_certificate, ensure_pki
from shim.runtime.fake import FakeRuntime
from tests.cluster import Cluster, free_port
from tests.streamnode import RUNNING, WAIT, Lines, StreamNode, exchange, kubectl_process, register_node, start_pod

# a CRI log: a stdout line, a stderr line, and a line the runtime wrote in two parts (P, then F)
LOG = [
    ("2026-11-21T10:00:00.000000001+00:00", "stdout", "F", "first"),
    ("2026-11-21T10:00:01.5+00:00", "stderr", "F", "second"),
    ("2026-11-21T10:00:02.000000003+00:00", "stdout", "P", "thi"),
    ("2026-11-21T10:00:02.000000004+00:00", "stdout", "F", "rd"),
]


@pytest.fixture(scope="module")
def node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamNode]:
    """A Node object whose advertised kubelet endpoint is a streaming server in this test process."""
    streaming = StreamNode("stream-" + uuid.uuid4().hex[:6], tmp_path_factory.mktemp("node"), cluster)
    register_node(cluster, streaming)
    yield streaming
    streaming.stop()


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def busybox(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "image": "busybox"} for name in names]


def write_log(node: StreamNode, record: PodRecord, container: str, instance: int, entries: list[tuple]) -> None:
    path = node.log_path(record, container, instance)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.writelines(" ".join(entry) + "\n" for entry in entries)


# -- logs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_kubectl_logs_reads_the_cri_log_with_tail_timestamps_limit_since_and_previous(
    cluster: Cluster, node: StreamNode, namespace: str, version: str
) -> None:
    restarted = {**RUNNING, "restartCount": 1, "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    record = start_pod(cluster, node, namespace, "logger", busybox("main"), {"main": restarted})
    assert record is not None
    write_log(node, record, "main", 0, [("2026-11-21T09:59:00.0+00:00", "stdout", "F", "from the crashed run")])
    write_log(node, record, "main", 1, LOG)

    def logs(*flags: str) -> str:
        return cluster.kubectl("logs", "-n", namespace, "logger", *flags, version=version).stdout

    assert logs() == "first\nsecond\nthird\n"
    assert logs("--tail=2") == "third\n"  # kubelet counts the file's lines: the two parts of "third"
    assert logs("--tail=3") == "second\nthird\n"
    assert logs("--timestamps") == (
        "2026-11-21T10:00:00.000000001Z first\n"
        "2026-11-21T10:00:01.500000000Z second\n"
        "2026-11-21T10:00:02.000000003Z third\n"
    )
    assert logs("--limit-bytes=8") == "first\nse"
    assert logs("--since-time=2026-11-21T10:00:01Z") == "second\nthird\n"
    assert logs("--previous") == "from the crashed run\n"


def test_kubectl_logs_follow_streams_new_lines_until_the_container_stops(
    cluster: Cluster, node: StreamNode, namespace: str
) -> None:
    record = start_pod(cluster, node, namespace, "follower", busybox("main"))
    assert record is not None
    write_log(node, record, "main", 0, LOG[:1])
    process = kubectl_process(cluster, "1.33", "logs", "-f", "-n", namespace, "follower")
    try:
        lines = Lines(process)
        lines.wait_for("first")
        write_log(node, record, "main", 0, [("2026-11-21T10:00:05.0+00:00", "stdout", "F", "appended later")])
        lines.wait_for("appended later")
        node.stop_container(record, "main")
        assert process.wait(WAIT) == 0
    finally:
        process.kill()


def test_log_errors_say_what_kube_says(
    cluster: Cluster, node: StreamNode, namespace: str, core: client.CoreV1Api
) -> None:
    waiting = {"restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
    start_pod(cluster, node, namespace, "pair", busybox("main", "side"), {"main": RUNNING, "side": waiting})
    start_pod(cluster, None, namespace, "pending", busybox("main"))

    failed = cluster.kubectl("logs", "-n", namespace, "pair", "-c", "side", check=False)
    assert failed.returncode == 1
    assert 'container "side" in pod "pair" is waiting to start: ContainerCreating' in failed.stderr
    failed = cluster.kubectl("logs", "-n", namespace, "pair", "-c", "main", "--previous", check=False)
    assert 'previous terminated container "main" in pod "pair" not found' in failed.stderr
    with pytest.raises(ApiException) as unnamed:
        core.read_namespaced_pod_log("pair", namespace)
    assert unnamed.value.status == 400
    assert "a container name must be specified for pod pair, choose one of: [main side]" in unnamed.value.body
    with pytest.raises(ApiException) as invalid:
        core.read_namespaced_pod_log("pair", namespace, container="nope")
    assert "container nope is not valid for pod pair" in invalid.value.body
    with pytest.raises(ApiException) as negative:
        core.read_namespaced_pod_log("pair", namespace, container="main", tail_lines=-1)
    assert negative.value.status == 422 and "must be greater than or equal to 0" in negative.value.body
    assert core.read_namespaced_pod_log("pending", namespace) == ""  # no node yet: no log yet, as in kube


# -- exec and attach --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.29", "1.33"])
def test_kubectl_exec_prints_output_and_returns_the_exit_code(
    cluster: Cluster, node: StreamNode, namespace: str, version: str
) -> None:
    start_pod(cluster, node, namespace, "shell", busybox("main"))
    result = cluster.kubectl("exec", "-n", namespace, "shell", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3",
                             version=version, check=False)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hi\n"
    assert "oops\n" in result.stderr and "command terminated with exit code 3" in result.stderr

    fed = cluster.kubectl("exec", "-i", "-n", namespace, "shell", "--", "cat", version=version,
                          stdin="hello\nworld\n")  # fmt: skip
    assert fed.stdout == "hello\nworld\n"


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_kubectl_exec_with_a_terminal_sends_its_size_and_input(
    cluster: Cluster, node: StreamNode, namespace: str, version: str
) -> None:
    start_pod(cluster, node, namespace, "terminal", busybox("main"))
    node.runtime.resized.clear()
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # 40 rows, 100 columns
    process = kubectl_process(cluster, version, "exec", "-it", "-n", namespace, "terminal", "--",
                              "sh", "-c", "read line; echo got $line; exit 4", terminal=terminal)  # fmt: skip
    os.close(terminal)
    try:
        assert node.runtime.resized.wait(WAIT), "kubectl never sent the terminal size"
        assert (100, 40) in node.runtime.resizes
        os.write(controller, b"typed\n")  # raw mode: kubectl sends the bytes as they are
        assert process.wait(WAIT) == 4
        assert b"got typed" in read_all(controller)
    finally:
        process.kill()
        os.close(controller)


def read_all(fd: int) -> bytes:
    """Everything left in a pty whose other side is closed."""
    received = bytearray()
    with contextlib.suppress(OSError):  # EIO: no writer is left
        while chunk := os.read(fd, 65536):
            received += chunk
    return bytes(received)


def test_kubectl_exec_into_a_stopped_container_or_unscheduled_pod_is_refused(
    cluster: Cluster, node: StreamNode, namespace: str
) -> None:
    record = start_pod(cluster, node, namespace, "stopped", busybox("main"))
    assert record is not None
    node.stop_container(record, "main")
    start_pod(cluster, None, namespace, "pending", busybox("main"))

    for version in ("1.27", "1.33"):
        failed = cluster.kubectl("exec", "-n", namespace, "stopped", "--", "true", version=version, check=False)
        assert failed.returncode == 1
        assert 'unable to upgrade connection: container not found ("main")' in failed.stderr
    failed = cluster.kubectl("exec", "-n", namespace, "pending", "--", "true", check=False)
    assert "pod pending does not have a host assigned" in failed.stderr


def test_kubectl_attach_feeds_stdin_to_the_main_process(cluster: Cluster, node: StreamNode, namespace: str) -> None:
    start_pod(cluster, node, namespace, "attached", busybox("main"))
    # the simulated runtime's main process echoes what it reads, and ends when stdin closes
    result = cluster.kubectl("attach", "-i", "-n", namespace, "attached", stdin="ping\n")
    assert "ping\n" in result.stdout


def test_python_client_exec_over_v5_and_v4(cluster: Cluster, node: StreamNode, namespace: str,
                                           core: client.CoreV1Api) -> None:  # fmt: skip
    start_pod(cluster, node, namespace, "pyexec", busybox("main"))
    for protocol in ("v5.channel.k8s.io", "v4.channel.k8s.io"):
        session = stream(core.connect_get_namespaced_pod_exec, "pyexec", namespace,
                         command=["sh", "-c", "head -n 1; echo err >&2; exit 7"], stdin=True, stdout=True,
                         stderr=True, tty=False, _preload_content=False,
                         _headers={"sec-websocket-protocol": protocol})  # fmt: skip
        assert session.subprotocol == protocol
        session.write_stdin("typed\n")  # a TEXT frame, as the Python client sends stdin
        session.run_forever(timeout=WAIT)
        assert session.read_stdout() == "typed\n"
        assert session.read_stderr() == "err\n"
        assert session.returncode == 7
    output = stream(core.connect_get_namespaced_pod_exec, "pyexec", namespace, command=["echo", "hi"],
                    stderr=True, stdin=False, stdout=True, tty=False)  # fmt: skip
    assert output == "hi\n"


# -- port-forward -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_kubectl_port_forward_reaches_the_pods_port(
    cluster: Cluster, node: StreamNode, namespace: str, version: str
) -> None:
    start_pod(cluster, node, namespace, "web", busybox("main"))
    target, local = node.echo_server(), free_port()
    process = kubectl_process(cluster, version, "port-forward", "-n", namespace, "pod/web", f"{local}:{target}")
    try:
        Lines(process).wait_for(f"Forwarding from 127.0.0.1:{local}")
        for message in (b"hello", bytes(range(256)) * 4096):  # one small, one of 1 MiB
            assert exchange(local, message) == message
    finally:
        process.terminate()
        process.wait(WAIT)


def test_python_client_port_forward(cluster: Cluster, node: StreamNode, namespace: str, core: client.CoreV1Api) -> None:
    start_pod(cluster, node, namespace, "pyweb", busybox("main"))
    target = node.echo_server()
    forwarded = portforward(core.connect_get_namespaced_pod_portforward, "pyweb", namespace, ports=str(target))
    sock = forwarded.socket(target)
    sock.settimeout(WAIT)
    sock.sendall(b"ping")
    assert sock.recv(4) == b"ping"
    sock.close()
    assert forwarded.error(target) is None


# -- the node server on its own ---------------------------------------------------------------------------------


async def test_the_node_server_serves_only_cluster_ca_certificates_of_system_masters(tmp_path: Path) -> None:
    cluster_pki = ensure_pki(tmp_path / "cluster", ["127.0.0.1"])
    stranger = ensure_pki(tmp_path / "stranger", ["127.0.0.1"])
    server = StreamingServer(
        FakeRuntime(),
        tmp_path / "node",
        lambda ns, name: None,
        client_ca_pem=cluster_pki.ca_cert_pem,
        serving_certificate=ensure_node_certificate(tmp_path / "cluster", "node-a", ["127.0.0.1"]),
    )
    await server.start()
    ca = cluster_pki.ca_cert_pem

    async def health(context: ssl.SSLContext) -> int:
        url = f"https://127.0.0.1:{server.port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
            return response.status

    try:
        assert await health(kubelet_client_context(ca_pem=ca)) == 401
        admin = (cluster_pki.admin_cert_path, cluster_pki.admin_key_path)
        assert await health(kubelet_client_context(*admin, ca_pem=ca)) == 200
        viewer = issue_client_certificate(cluster_pki, tmp_path, "viewer", "developers")
        assert await health(kubelet_client_context(*viewer, ca_pem=ca)) == 403
        with pytest.raises(aiohttp.ClientError):
            await health(kubelet_client_context(stranger.admin_cert_path, stranger.admin_key_path, ca_pem=ca))
    finally:
        await server.stop()


async def test_tail_of_a_log_longer_than_one_read(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text("".join(f"2026-11-21T10:00:00.0+00:00 stdout F line {n}\n" for n in range(20_000)))
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)

    async def running() -> bool:
        return False

    await stream_log(path, LogOptions(tail_lines=3), write, running)
    assert b"".join(written) == b"line 19997\nline 19998\nline 19999\n"


def issue_client_certificate(pki: Pki, directory: Path, user: str, group: str) -> tuple[Path, Path]:
    """A client certificate for `user` in `group`, signed by the cluster CA."""
    ca_key = serialization.load_pem_private_key(pki.ca_key_path.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group), x509.NameAttribute(NameOID.COMMON_NAME, user)]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = directory / f"{user}.crt", directory / f"{user}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path
