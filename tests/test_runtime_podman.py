"""The Podman runtime against a real Podman service in an isolated root, with the busybox test image."""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import podman
import pytest

from shim.runtime.base import (
    ContainerSpec,
    ImagePullError,
    Mount,
    PortMapping,
    RuntimeEvent,
    SandboxSpec,
)
from shim.runtime.image_ref import normalize_image
from shim.runtime.podman import PodmanRuntime
from shim.runtime.podman_network import POD_NETWORK_RANGE, free_subnet
from tests.images import TEST_IMAGE, ensure_test_image
from tests.podman_env import PodmanEnv
from tests.prerequisites import needs_podman

pytestmark = needs_podman

DEADLINE = 30.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def podman_root() -> Iterator[PodmanEnv]:
    """A private Podman root and service for this module, holding the busybox test image."""
    with PodmanEnv() as env:
        with podman.PodmanClient(base_url=env.base_url) as client:
            ensure_test_image(client)
        yield env


@pytest.fixture
async def runtime(podman_root: PodmanEnv, tmp_path: Path) -> AsyncIterator[PodmanRuntime]:
    """A runtime for a node of its own, connected to the module's service.

    Its pods stay until the module's root is reset: removing a pod within seconds of an exec in it takes
    Podman ~3.4 s (the exec's conmon keeps the pod cgroup busy), which would double this module's run time.
    """
    runtime = PodmanRuntime(str(podman_root.socket_path), tmp_path, None, node_name=f"test-{uuid.uuid4().hex[:8]}")
    await runtime.start()
    yield runtime
    await runtime.close()


def sandbox_spec(name: str, **extra: object) -> SandboxSpec:
    return SandboxSpec(uid=str(uuid.uuid4()), namespace="default", name=name, hostname=name, **extra)


def container(name: str, command: list[str], log_dir: Path, **extra: object) -> ContainerSpec:
    return ContainerSpec(name=name, image=TEST_IMAGE, command=command, log_path=str(log_dir / f"{name}.log"), **extra)


async def start_pod(runtime: PodmanRuntime, sandbox: SandboxSpec, *containers: ContainerSpec) -> tuple[str, list[str]]:
    """Create and start a sandbox and its containers; returns the sandbox id and the container ids."""
    sandbox_id = await runtime.create_sandbox(sandbox)
    ids = []
    for spec in containers:
        ids.append(await runtime.create_container(sandbox_id, spec))
        await runtime.start_container(ids[-1])
    return sandbox_id, ids


async def next_event(events: AsyncIterator[RuntimeEvent], kind: str, container_id: str) -> RuntimeEvent:
    async with asyncio.timeout(DEADLINE):
        async for event in events:
            if event.kind == kind and event.container_id == container_id:
                return event
    raise AssertionError(f"the event stream ended before a {kind} event of {container_id}")


async def eventually(probe: Callable[[], T | Awaitable[T]]) -> T:
    """The first truthy result of `probe` (sync or async), retried until the deadline (a server still starting)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            result = probe()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.05)


def log_text(path: Path) -> str:
    """The messages of a CRI-format log file (`<time> <stream> <P|F> <message>`), joined."""
    if not path.exists():
        return ""
    parts = []
    for line in path.read_text().splitlines():
        _, _, tag, message = line.split(" ", 3)
        parts.append(message + ("\n" if tag == "F" else ""))
    return "".join(parts)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def http_get(host: str, port: int) -> bytes:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return b""
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    try:
        return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()


# pods and containers


async def test_containers_of_a_pod_share_localhost(runtime: PodmanRuntime, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the web container\n")
    sandbox_id, (_, client_id) = await start_pod(
        runtime,
        sandbox_spec("shared"),
        container("web", ["httpd", "-f", "-p", "80", "-h", "/www"], tmp_path, mounts=[Mount(str(www), "/www", True)]),
        container("client", ["sleep", "3600"], tmp_path),
    )
    fetch = ["sh", "-c", r"printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 127.0.0.1 80"]

    async def page() -> bytes:
        return (await runtime.exec(client_id, fetch)).stdout

    assert b"hello from the web container" in await eventually(page)
    assert ipaddress.ip_address(await runtime.sandbox_ip(sandbox_id)) in POD_NETWORK_RANGE


async def test_a_container_sees_its_env_working_dir_user_and_mounts(runtime: PodmanRuntime, tmp_path: Path) -> None:
    given, out = tmp_path / "given", tmp_path / "out"
    given.mkdir()
    out.mkdir()
    out.chmod(0o777)
    (given / "file").write_text("from the host\n")
    script = 'echo "$GREETING $(pwd) $(id -u)"; cat /in/file; touch /in/new || echo ro'
    events = runtime.events()
    _, (container_id,) = await start_pod(
        runtime,
        sandbox_spec("envs"),
        container(
            "main",
            ["sh", "-c", f"({script}) > /out/seen"],
            tmp_path,
            env={"GREETING": "hi"},
            working_dir="/tmp",
            run_as_user=65534,
            mounts=[Mount(str(given), "/in", read_only=True), Mount(str(out), "/out")],
        ),
    )
    assert (await next_event(events, "died", container_id)).exit_code == 0
    assert (out / "seen").read_text() == "hi /tmp 65534\nfrom the host\nro\n"
    assert not (given / "new").exists()


async def test_a_pod_gets_its_hostname_dns_settings_and_host_aliases(runtime: PodmanRuntime, tmp_path: Path) -> None:
    sandbox = sandbox_spec(
        "named",
        dns_servers=["10.96.0.10"],
        dns_searches=["default.svc.cluster.local"],
        dns_options=["ndots:5"],
        host_aliases=[("db.example", "10.1.2.3")],
    )
    _, (container_id,) = await start_pod(runtime, sandbox, container("main", ["sleep", "3600"], tmp_path))
    show = "hostname; cat /etc/resolv.conf; grep db.example /etc/hosts"
    seen = (await runtime.exec(container_id, ["sh", "-c", show])).stdout.decode().split()
    expected = "named search default.svc.cluster.local nameserver 10.96.0.10 options ndots:5 10.1.2.3 db.example"
    assert seen == expected.split()


async def test_command_replaces_the_entrypoint_and_args_follow(runtime: PodmanRuntime, tmp_path: Path) -> None:
    events = runtime.events()
    spec = container("main", ["sh", "-c"], tmp_path, args=["echo $0 $1", "first", "second"])
    _, (container_id,) = await start_pod(runtime, sandbox_spec("cmd"), spec)
    await next_event(events, "died", container_id)
    assert log_text(Path(spec.log_path)) == "first second\n"


async def test_the_exit_code_of_a_failing_container_comes_as_an_event(runtime: PodmanRuntime, tmp_path: Path) -> None:
    events = runtime.events()
    sandbox_id, (container_id,) = await start_pod(
        runtime, sandbox_spec("fails"), container("main", ["sh", "-c", "echo bye >&2; exit 3"], tmp_path)
    )
    died = await next_event(events, "died", container_id)
    assert (died.kind, died.container_name, died.exit_code) == ("died", "main", 3)
    status = await runtime.sandbox_status(sandbox_id)
    assert status is not None
    (main,) = status.containers
    assert (main.state, main.exit_code, main.oom_killed) == ("exited", 3, False)
    assert main.finished_at is not None
    assert log_text(tmp_path / "main.log") == "bye\n"


async def test_a_container_over_its_memory_limit_is_reported_oom_killed(runtime: PodmanRuntime, tmp_path: Path) -> None:
    events = runtime.events()
    hog = container("hog", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], tmp_path, memory_limit=16 << 20)
    sandbox_id, (container_id,) = await start_pod(runtime, sandbox_spec("oom"), hog)
    oom = await next_event(events, "oom", container_id)
    died = await next_event(events, "died", container_id)
    assert (oom.exit_code, died.exit_code) == (137, 137)
    status = await runtime.sandbox_status(sandbox_id)
    assert status is not None and status.containers[0].oom_killed


async def test_stop_sends_term_and_kills_after_the_grace_period(runtime: PodmanRuntime, tmp_path: Path) -> None:
    polite = 'trap "echo term; exit 0" TERM; echo ready; while true; do sleep 1 & wait; done'
    stubborn = 'trap "echo term" TERM; echo ready; while true; do sleep 1 & wait; done'
    events = runtime.events()
    _, (polite_id, stubborn_id) = await start_pod(
        runtime,
        sandbox_spec("grace"),
        container("polite", ["sh", "-c", polite], tmp_path),
        container("stubborn", ["sh", "-c", stubborn], tmp_path),
    )
    for name in ("polite", "stubborn"):  # a TERM sent before the trap is installed would be lost
        await eventually(lambda name=name: "ready" in log_text(tmp_path / f"{name}.log"))
    await asyncio.gather(runtime.stop_container(polite_id, 30), runtime.stop_container(stubborn_id, 1))
    assert (await next_event(events, "died", polite_id)).exit_code == 0
    assert (await next_event(events, "died", stubborn_id)).exit_code == 137
    assert log_text(tmp_path / "stubborn.log") == "ready\nterm\n"
    await runtime.stop_container(polite_id, 30)  # stopping a stopped container is a no-op


async def test_events_from_while_the_service_was_down_arrive_after_it_returns(
    runtime: PodmanRuntime, podman_root: PodmanEnv, tmp_path: Path
) -> None:
    control = tmp_path / "control"
    control.mkdir()
    script = "while [ ! -e /control/go ]; do sleep 0.1; done; touch /control/done; exit 6"
    events = runtime.events()
    spec = container("main", ["sh", "-c", script], tmp_path, mounts=[Mount(str(control), "/control")])
    _, (container_id,) = await start_pod(runtime, sandbox_spec("outage"), spec)
    await asyncio.to_thread(podman_root.service.stop)
    try:
        (control / "go").touch()
        await eventually((control / "done").exists)
    finally:
        await asyncio.to_thread(podman_root.service.start)
    assert (await next_event(events, "died", container_id)).exit_code == 6


# exec and attach


async def test_exec_returns_output_and_exit_code(runtime: PodmanRuntime, tmp_path: Path) -> None:
    _, (container_id,) = await start_pod(runtime, sandbox_spec("exec"), container("main", ["sleep", "3600"], tmp_path))
    result = await runtime.exec(container_id, ["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (result.exit_code, result.stdout, result.stderr) == (4, b"out\n", b"err\n")
    assert (await runtime.exec(container_id, ["no-such-binary"])).exit_code == 127
    with pytest.raises(TimeoutError):
        await runtime.exec(container_id, ["sleep", "30"], timeout=0.5)


async def test_interactive_exec_feeds_stdin(runtime: PodmanRuntime, tmp_path: Path) -> None:
    _, (container_id,) = await start_pod(runtime, sandbox_spec("cat"), container("main", ["sleep", "3600"], tmp_path))
    session = await runtime.exec_stream(container_id, ["sh", "-c", "cat; echo done >&2; exit 5"], stdin=True, tty=False)
    await session.write_stdin(b"hello\n")
    await session.write_stdin(b"world\n")
    await session.close_stdin()
    received: dict[int, bytes] = {1: b"", 2: b""}
    async with asyncio.timeout(DEADLINE):
        async for stream, data in session.output():
            received[stream] += data
        assert await session.wait() == 5
    assert received == {1: b"hello\nworld\n", 2: b"done\n"}


async def test_exec_with_a_tty_follows_resizes(runtime: PodmanRuntime, tmp_path: Path) -> None:
    _, (container_id,) = await start_pod(runtime, sandbox_spec("tty"), container("main", ["sleep", "3600"], tmp_path))
    session = await runtime.exec_stream(container_id, ["sh"], stdin=True, tty=True)
    await session.resize(100, 40)
    await session.write_stdin(b"stty size; exit 3\n")
    output = b""
    async with asyncio.timeout(DEADLINE):
        async for stream, data in session.output():
            assert stream == 1  # a TTY merges stderr into stdout
            output += data
        assert await session.wait() == 3
    assert b"40 100" in output


async def test_attach_reaches_the_main_process(runtime: PodmanRuntime, tmp_path: Path) -> None:
    script = 'read line; echo "got $line"; exit 7'
    _, (container_id,) = await start_pod(
        runtime, sandbox_spec("attach"), container("main", ["sh", "-c", script], tmp_path, stdin=True)
    )
    session = await runtime.attach(container_id, stdin=True, tty=False)
    await session.write_stdin(b"hi\n")
    output = b""
    async with asyncio.timeout(DEADLINE):
        async for _, data in session.output():
            output += data
        assert await session.wait() == 7
    assert output == b"got hi\n"


# adoption, ports, removal


async def test_a_new_runtime_adopts_the_pods_of_its_node_only(
    runtime: PodmanRuntime, podman_root: PodmanEnv, tmp_path: Path
) -> None:
    spec = sandbox_spec("adopted")
    sandbox_id, (container_id,) = await start_pod(runtime, spec, container("main", ["sleep", "3600"], tmp_path))
    same_node = PodmanRuntime(str(podman_root.socket_path), tmp_path / "b", None, runtime.node_name)
    other_node = PodmanRuntime(str(podman_root.socket_path), tmp_path / "c", None, f"{runtime.node_name}-other")
    for agent in (same_node, other_node):
        await agent.start()
    try:
        (adopted,) = await same_node.list_sandboxes()
        assert (adopted.id, adopted.uid, adopted.name, adopted.state) == (sandbox_id, spec.uid, "adopted", "ready")
        assert [(c.id, c.name, c.state) for c in adopted.containers] == [(container_id, "main", "running")]
        assert adopted.ip == await runtime.sandbox_ip(sandbox_id)
        assert await other_node.list_sandboxes() == []
        assert (await same_node.exec(container_id, ["true"])).exit_code == 0
    finally:
        for agent in (same_node, other_node):
            await agent.close()


async def test_a_port_mapping_on_loopback_reaches_the_pod(runtime: PodmanRuntime, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("published\n")
    port = free_port()
    httpd = ["httpd", "-f", "-p", "80", "-h", "/www"]
    web = container("web", httpd, tmp_path, mounts=[Mount(str(tmp_path / "www"), "/www")])
    await start_pod(runtime, sandbox_spec("ports", port_mappings=[PortMapping(80, port, "TCP", "127.0.0.1")]), web)
    assert b"published" in await eventually(lambda: http_get("127.0.0.1", port))


async def test_remove_sandbox_leaves_nothing(runtime: PodmanRuntime, podman_root: PodmanEnv, tmp_path: Path) -> None:
    stubborn = container("main", ["sh", "-c", "trap '' TERM; sleep 3600"], tmp_path, stop_timeout=300)
    stubborn_too = container("other", ["sh", "-c", "trap '' TERM; sleep 3600"], tmp_path, stop_timeout=300)
    sandbox_id, (container_id, _) = await start_pod(runtime, sandbox_spec("gone"), stubborn, stubborn_too)
    async with asyncio.timeout(DEADLINE):  # SIGKILL at once, not after the 300 s grace
        await runtime.remove_container(container_id)
    status = await runtime.sandbox_status(sandbox_id)
    assert status is not None and [c.name for c in status.containers] == ["other"]
    await runtime.remove_sandbox(sandbox_id)
    assert await runtime.sandbox_status(sandbox_id) is None
    assert await runtime.list_sandboxes() == []
    with podman.PodmanClient(base_url=podman_root.base_url) as client:
        left = client.containers.list(all=True, filters={"label": f"io.kubernetes.shim.node={runtime.node_name}"})
    assert left == []
    await runtime.remove_sandbox(sandbox_id)  # removing again is a no-op


# images and the service


async def test_images_follow_the_pull_policy(runtime: PodmanRuntime) -> None:
    image_id = await runtime.ensure_image("kube-shim-test:busybox", "IfNotPresent")
    assert image_id.startswith("sha256:")
    assert await runtime.ensure_image(TEST_IMAGE, "Never") == image_id
    assert await runtime.ensure_image(TEST_IMAGE, "Always") == image_id  # localhost/ has no registry
    with pytest.raises(ImagePullError) as never:
        await runtime.ensure_image("localhost/absent:1", "Never")
    assert never.value.reason == "ErrImageNeverPull"
    with pytest.raises(ImagePullError) as failed:
        await runtime.ensure_image("127.0.0.1:1/absent:1", "IfNotPresent")
    assert failed.value.reason == "ErrImagePull"
    assert "connection refused" in failed.value.message


async def test_the_runtime_starts_and_stops_its_own_service(podman_root: PodmanEnv, tmp_path: Path) -> None:
    runtime = PodmanRuntime(None, tmp_path, None, f"own-{uuid.uuid4().hex[:8]}", env=podman_root.env)
    await runtime.start()
    try:
        assert re.fullmatch(r"podman://\d+\.\d+\.\d+.*", await runtime.version())
        assert (await runtime.ensure_image(TEST_IMAGE, "Never")).startswith("sha256:")
    finally:
        await runtime.close()
    with socket.socket(socket.AF_UNIX) as probe, pytest.raises(OSError):
        probe.connect(runtime.socket_path)


def test_short_image_names_are_spelled_in_full() -> None:
    assert normalize_image("busybox") == "docker.io/library/busybox:latest"
    assert normalize_image("user/app:1") == "docker.io/user/app:1"
    assert normalize_image("quay.io/org/app") == "quay.io/org/app:latest"
    assert normalize_image("localhost:5000/app@sha256:ab") == "localhost:5000/app@sha256:ab"
    assert normalize_image("localhost/app") == "localhost/app:latest"


def test_each_node_gets_its_own_subnet(tmp_path: Path) -> None:
    index, subnet = free_subnet("node-a", [], tmp_path)
    assert free_subnet("node-a", [], tmp_path) == (index, subnet)  # deterministic
    assert subnet.subnet_of(POD_NETWORK_RANGE) and subnet.prefixlen == 24
    next_index, next_subnet = free_subnet("node-a", [subnet], tmp_path)  # taken by another root's bridge
    assert next_subnet != subnet and next_index == (index + 1) % 256
    (tmp_path / f"kshim{next_index}").mkdir()  # a bridge of that name exists on the host
    assert free_subnet("node-a", [subnet], tmp_path)[0] == (index + 2) % 256
