"""Podman as the node agent's runtime: one Kubernetes pod = one Podman pod, driven through the REST service.

Request/response calls go through podman-py, which blocks, so they run in a thread pool of their own; what
streams or may last seconds (events, exec, attach, stop, removal) is spoken with asyncio on the same socket
(podman_stream), so that a long grace period never holds a thread another call needs. The workarounds
for Podman 4.3.1 come from docs/ENVIRONMENT.md: containers are stopped one by one (`pod.stop()` does nothing
on a degraded pod), every container runs with an init so SIGTERM reaches the app, ports and DNS go on the
pod, and OOM kills are read from the kernel log because Podman never reports them here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import podman
from podman.errors import APIError, ImageNotFound, NotFound

from shim.machinery.timefmt import format_time
from shim.runtime.base import (
    LABEL_CLUSTER,
    LABEL_CONTAINER_NAME,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerSpec,
    ContainerStatus,
    ExecResult,
    ExecSession,
    ImagePullError,
    Runtime,
    RuntimeEvent,
    RuntimeFailure,
    SandboxSpec,
    SandboxStatus,
)
from shim.runtime.image_ref import normalize_image
from shim.runtime.oom import OomWatcher
from shim.runtime.podman_network import ensure_pod_network, network_name
from shim.runtime.podman_service import PodmanService
from shim.runtime.podman_stream import STDERR, STDOUT, PodmanApiError, PodmanExecSession, PodmanStreams

log = logging.getLogger("shim.runtime.podman")

T = TypeVar("T")

CLIENT_TIMEOUT = 120.0  # seconds per podman-py call (the calls that may take longer are async)
PULL_TIMEOUT = 1800.0
WORKERS = 16  # threads for podman-py calls, each with its own pooled connection
PULL_WORKERS = 2  # image pulls at once: a pull may take minutes and must not hold a thread other calls need
OOM_RECORD_GRACE = 0.5  # how long an exit 137 waits for the kernel's OOM record before it is reported
EVENTS_RETRY_MIN, EVENTS_RETRY_MAX = 0.1, 5.0
IDENTITY_LABELS = (LABEL_POD_UID, LABEL_POD_NAMESPACE, LABEL_POD_NAME, LABEL_CLUSTER, LABEL_NODE)
STANDALONE = "standalone"  # the cluster id of a runtime used outside any cluster (tests, tools)
STATES = {
    "created": "created",
    "configured": "created",
    "initialized": "created",
    "running": "running",
    "paused": "running",
    "stopping": "running",
    "exited": "exited",
    "stopped": "exited",
}


@dataclass
class _Sandbox:
    name: str
    labels: dict[str, str]
    infra_id: str
    address: tuple[int, str | None] | None = None  # (infra PID, its IP): an address lasts as long as that run


class PodmanRuntime(Runtime):
    """The real runtime.

    `socket_path`: an existing Podman service to use; when None, a `podman system service` is started on
    `<data_dir>/podman.sock` with kube-shim's containers.conf (plus `env`, e.g. an isolated storage root) and
    stopped on close. Storage is the host's normal Podman storage unless `env` says otherwise, so an image the
    user built with `podman build` is usable at once. `network` is the Podman network for pods, created if
    missing (default `kube-shim-<cluster_id>-<node_name>`, a /24 of 10.244.0.0/16). Everything created is
    labelled with the pod's identity, `io.kubernetes.shim.cluster=<cluster_id>` and
    `io.kubernetes.shim.node=<node_name>`, and the runtime lists, adopts and hears of only what carries both:
    two clusters on one host (both with a node named after the host) leave each other's pods alone.
    """

    def __init__(
        self,
        socket_path: str | None,
        data_dir: Path,
        network: str | None,
        node_name: str,
        env: dict[str, str] | None = None,
        cluster_id: str = STANDALONE,
    ) -> None:
        self.node_name = node_name
        self.cluster_id = cluster_id
        self.owner = {LABEL_CLUSTER: cluster_id, LABEL_NODE: node_name}  # the labels of everything this node makes
        self.network = network or network_name(cluster_id, node_name)
        self.socket_path = socket_path or str(Path(data_dir) / "podman.sock")
        self._service = None if socket_path else PodmanService(Path(self.socket_path), Path(data_dir) / "podman", env)
        self._client = podman.PodmanClient(
            base_url=f"unix://{self.socket_path}", timeout=CLIENT_TIMEOUT, max_pool_size=WORKERS
        )
        self._streams = PodmanStreams(self.socket_path, self._client.api.path_prefix)
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="podman")
        self._pulls = ThreadPoolExecutor(PULL_WORKERS, thread_name_prefix="podman-pull")
        self._oom = OomWatcher()
        self._version = ""
        self._sandboxes: dict[str, _Sandbox] = {}
        self._subscribers: list[asyncio.Queue[RuntimeEvent | None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # lifecycle

    async def start(self) -> None:
        """Start the service (if ours), create the pod network if missing, and subscribe to Podman's events."""
        try:
            if self._service is not None:
                await self._call(self._service.start)
            self._version = (await self._call(self._client.version))["Version"]
            await self._call(ensure_pod_network, self._client, self.network, self.owner)
            self._oom.start()
            subscribed_ns = time.time_ns()
            self._spawn(self._pump_events(await self._open_events(since_ns=0), subscribed_ns))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop event delivery and the service we started; containers keep running."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._oom.stop()
        self._client.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._pulls.shutdown(wait=False, cancel_futures=True)
        if self._service is not None:
            await asyncio.to_thread(self._service.stop)

    async def version(self) -> str:
        """`podman://<server version>`."""
        return f"podman://{self._version}"

    # images

    async def ensure_image(self, image: str, pull_policy: str) -> str:
        """Make the image present per the pull policy; returns `sha256:<image id>`.

        `localhost/...` names are Podman's locally built images, which no registry serves: for them Always
        means "use the local image" (it is pulled, and fails, only when absent).
        """
        if pull_policy == "Always" and not normalize_image(image).startswith("localhost/"):
            return await self._pull_in_pool(image)
        image_id = await self._call(self._local_image_id, image)
        if image_id is not None:
            return image_id
        if pull_policy == "Never":
            raise ImagePullError(
                "ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never'
            )
        return await self._pull_in_pool(image)

    async def image_user(self, image: str) -> str:
        """The image's configured USER ("" when it sets none)."""
        return await self._call(self._image_user, image)

    # sandboxes

    async def create_sandbox(self, spec: SandboxSpec) -> str:
        """Create the Podman pod (hostname, ports, DNS, host aliases, network) and start its infra container."""
        labels = {
            **spec.labels,
            LABEL_POD_UID: spec.uid,
            LABEL_POD_NAMESPACE: spec.namespace,
            LABEL_POD_NAME: spec.name,
            **self.owner,
        }
        options: dict[str, Any] = {
            "labels": labels,
            "portmappings": [
                {
                    "container_port": port.container_port,
                    "host_port": port.host_port,
                    "host_ip": port.host_ip,
                    "protocol": port.protocol.lower(),
                }
                for port in spec.port_mappings
            ],
            "dns_server": spec.dns_servers,
            "dns_search": spec.dns_searches,
            "dns_option": spec.dns_options,
            "hostadd": [f"{host}:{ip}" for host, ip in spec.host_aliases],
        }
        if spec.host_network:  # the node's network and, as on Kubernetes, its hostname
            options["netns"] = options["utsns"] = {"nsmode": "host"}
        else:
            options["Networks"] = {self.network: {}}
            options["hostname"] = spec.hostname
        name = f"k8s_{spec.name}_{spec.namespace}_{secrets.token_hex(3)}"
        pod_id, infra_id = await self._call(self._create_pod, name, {k: v for k, v in options.items() if v})
        self._sandboxes[pod_id] = _Sandbox(name, labels, infra_id)
        return pod_id

    async def pod_cidrs(self) -> list[str]:
        """The subnets of the node's Podman network, which its pods get their addresses from."""
        network = await self._call(self._client.networks.get, self.network)
        return [entry["subnet"] for entry in network.attrs.get("subnets") or [] if entry.get("subnet")]

    async def sandbox_ip(self, sandbox_id: str) -> str | None:
        """The infra container's address (None with host networking or before the network is up)."""
        sandbox = await self._sandbox(sandbox_id)
        infra = await self._call(self._inspect_container, sandbox.infra_id)
        ip = _address(infra)
        if infra is not None:
            sandbox.address = ((infra.get("State") or {}).get("Pid", 0), ip)
        return ip

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """SIGKILL everything in the pod, then remove it (a missing pod is fine)."""
        # async: removing a pod can take seconds (its cgroup stays busy while exec conmons linger)
        with contextlib.suppress(PodmanApiError):  # nothing running (or already gone) is fine
            await self._streams.call("POST", f"/pods/{sandbox_id}/kill", {"signal": "SIGKILL"})
        try:
            await self._streams.call("DELETE", f"/pods/{sandbox_id}", {"force": "true"})
        except PodmanApiError as err:
            if err.status != 404:
                raise
        self._sandboxes.pop(sandbox_id, None)

    async def list_sandboxes(self) -> list[SandboxStatus]:
        """Every pod labelled with this cluster and node, with its containers (for adoption after a restart)."""
        # the list form: podman-py would spell a dict of several labels wrongly (ENVIRONMENT.md bug 5)
        owner_filter = [f"label={key}={value}" for key, value in self.owner.items()]
        pods = await self._call(self._client.pods.list, filters=owner_filter)
        containers = await self._call(self._client.containers.list, all=True, filters=owner_filter)
        statuses = []
        for pod in pods:
            if not self._is_ours(pod.attrs.get("Labels")):
                continue  # Podman ANDs the label filters; checked again because another node's pod must stay
            members = [c.attrs for c in containers if c.attrs.get("Pod") == pod.id]
            statuses.append(await self._sandbox_status(pod.id, pod.attrs["Labels"] or {}, members))
        return statuses

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        """The pod's state, IP and containers, or None if it is gone."""
        try:
            sandbox = await self._sandbox(sandbox_id)
        except RuntimeFailure:
            return None
        containers = await self._call(self._client.containers.list, all=True, filters={"pod": sandbox_id})
        if not containers:  # even its infra container is gone: the pod was removed behind our back
            self._sandboxes.pop(sandbox_id, None)
            return None
        return await self._sandbox_status(sandbox_id, sandbox.labels, [c.attrs for c in containers])

    # containers

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        """Create the container in the pod (not started); raises RuntimeFailure(CreateContainerError)."""
        sandbox = await self._sandbox(sandbox_id)
        identity = {key: sandbox.labels[key] for key in IDENTITY_LABELS if key in sandbox.labels}
        options = _container_options(spec)
        options["labels"] = {**spec.labels, **identity, LABEL_CONTAINER_NAME: spec.name}
        options["name"] = f"{sandbox.name}_{spec.name}_{secrets.token_hex(3)}"
        options["pod"] = sandbox_id
        return await self._call(self._create_container, spec, options)

    async def start_container(self, container_id: str) -> None:
        """Start a created container; raises RuntimeFailure(RunContainerError)."""
        await self._call(self._start_container, container_id)

    async def stop_container(self, container_id: str, grace_seconds: int) -> None:
        """SIGTERM (through the container's init), SIGKILL after the grace period; stopped or gone is fine."""
        try:  # async, not podman-py: a grace period must not hold one of the pool's threads
            await self._streams.call("POST", f"/containers/{container_id}/stop", {"timeout": str(grace_seconds)})
        except PodmanApiError as err:
            if err.status != 404:
                raise

    async def remove_container(self, container_id: str) -> None:
        """Remove the container, SIGKILLing it if it still runs (a missing one is fine); its log file stays."""
        try:
            await self._streams.call("DELETE", f"/containers/{container_id}", {"force": "true", "timeout": "0"})
        except PodmanApiError as err:
            if err.status != 404:
                raise

    # events

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Events from the moment of this call: `started`, `died` (with the exit code), and `oom` just before
        the `died` of an OOM-killed container. Ends when the runtime closes."""
        queue: asyncio.Queue[RuntimeEvent | None] = asyncio.Queue()
        self._subscribers.append(queue)
        return self._subscription(queue)

    # exec and attach

    async def exec(self, container_id: str, command: list[str], timeout: float | None = None) -> ExecResult:
        """Run `command` in the container and collect its output; raises TimeoutError after `timeout` seconds
        (the process is left running, as the kubelet does)."""
        chunks: dict[int, list[bytes]] = {STDOUT: [], STDERR: []}
        async with asyncio.timeout(timeout):
            session = await self.exec_stream(container_id, command, stdin=False, tty=False)
            try:
                async for stream, data in session.output():
                    chunks[stream].append(data)
                exit_code = await session.wait()
            finally:
                await session.close()
        return ExecResult(exit_code, b"".join(chunks[STDOUT]), b"".join(chunks[STDERR]))

    async def exec_stream(self, container_id: str, command: list[str], stdin: bool, tty: bool) -> ExecSession:
        """Start `command` in the container with its streams on a hijacked connection."""
        body = {"AttachStdin": stdin, "AttachStdout": True, "AttachStderr": True, "Cmd": command, "Tty": tty}
        exec_id = (await self._streams.call("POST", f"/containers/{container_id}/exec", body=body))["Id"]
        reader, writer = await self._streams.hijack(f"/exec/{exec_id}/start", {}, {"Detach": False, "Tty": tty})
        return PodmanExecSession(
            reader,
            writer,
            tty,
            exit_code=functools.partial(self._exec_exit_code, exec_id),
            resize=functools.partial(self._resize, f"/exec/{exec_id}/resize"),
        )

    async def attach(self, container_id: str, stdin: bool, tty: bool) -> ExecSession:
        """Attach to the main process (stdin needs a container created with `stdin=True`)."""
        query = {"stream": "true", "stdout": "true", "stderr": "true", "stdin": "true" if stdin else "false"}
        reader, writer = await self._streams.hijack(f"/containers/{container_id}/attach", query, None)
        return PodmanExecSession(
            reader,
            writer,
            tty,
            exit_code=functools.partial(self._streams.call, "POST", f"/containers/{container_id}/wait"),
            resize=functools.partial(self._resize, f"/containers/{container_id}/resize"),
        )

    # helpers: the thread pool

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking podman-py call in the runtime's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _pull_in_pool(self, image: str) -> str:
        """Pull on the pulls' own threads, so that slow pulls never starve the other calls."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pulls, self._pull, image)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # helpers: blocking podman-py calls (run in the pool)

    def _local_image_id(self, image: str) -> str | None:
        try:
            return "sha256:" + self._client.images.get(image).id
        except ImageNotFound:
            return None

    def _image_user(self, image: str) -> str:
        try:
            attrs = self._client.images.get(image).attrs
        except ImageNotFound as err:
            raise RuntimeFailure("CreateContainerConfigError", f'image "{image}" is not present') from err
        return (attrs.get("Config") or {}).get("User") or ""

    def _pull(self, image: str) -> str:
        reference = normalize_image(image)
        response = self._client.api.post("/images/pull", params={"reference": reference}, timeout=PULL_TIMEOUT)
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        errors = [line["error"] for line in lines if line.get("error")]
        if not response.ok or errors:
            raise ImagePullError("ErrImagePull", errors[-1] if errors else response.text.strip())
        return "sha256:" + next(line["id"] for line in reversed(lines) if line.get("id"))

    def _create_pod(self, name: str, options: dict[str, Any]) -> tuple[str, str]:
        try:
            pod = self._client.pods.create(name, **options)
        except APIError as err:
            raise RuntimeFailure("CreatePodSandboxError", _message(err)) from err
        try:
            pod.start()
        except APIError as err:
            with contextlib.suppress(APIError):
                pod.remove(force=True)
            raise RuntimeFailure("CreatePodSandboxError", _message(err)) from err
        return pod.id, pod.attrs["InfraContainerID"]

    def _inspect_pod(self, sandbox_id: str) -> _Sandbox:
        try:
            attrs = self._client.pods.get(sandbox_id).attrs
        except NotFound as err:
            raise RuntimeFailure("NotFound", f"no sandbox {sandbox_id}") from err
        return _Sandbox(attrs["Name"], attrs.get("Labels") or {}, attrs["InfraContainerID"])

    def _inspect_container(self, container_id: str) -> dict[str, Any] | None:
        try:
            return self._client.containers.get(container_id).attrs
        except NotFound:
            return None

    def _create_container(self, spec: ContainerSpec, options: dict[str, Any]) -> str:
        if spec.log_path:
            Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
        command = options.pop("command", None)
        try:
            return self._client.containers.create(spec.image, command, **options).id
        except APIError as err:
            raise RuntimeFailure("CreateContainerError", _message(err)) from err

    def _start_container(self, container_id: str) -> None:
        try:
            self._container(container_id).start()
        except APIError as err:
            raise RuntimeFailure("RunContainerError", _message(err)) from err

    def _container(self, container_id: str) -> Any:
        """A podman-py Container for an id, without the inspect `containers.get` would cost."""
        return self._client.containers.prepare_model({"Id": container_id})

    # helpers: exec

    async def _exec_exit_code(self, exec_id: str) -> int:
        try:
            state = await self._streams.call("GET", f"/exec/{exec_id}/json")
        except PodmanApiError as err:
            if err.status != 404:
                raise
            # Podman forgets a session exit_command_delay (5 s) after the process ends; only dozens of
            # simultaneous execs into one container delay the end of the stream that long
            raise RuntimeFailure(
                "ExecError", f"exec {exec_id}: Podman dropped the session before its exit code was read"
            ) from err
        if state.get("Running"):  # Podman ends the stream after recording the exit; only a lost link gets here
            raise RuntimeFailure("ExecError", f"exec {exec_id}: the stream ended before the process")
        return state["ExitCode"]

    async def _resize(self, path: str, width: int, height: int) -> None:
        await self._streams.call("POST", path, {"h": str(height), "w": str(width)})

    # helpers: state

    async def _sandbox(self, sandbox_id: str) -> _Sandbox:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            sandbox = self._sandboxes[sandbox_id] = await self._call(self._inspect_pod, sandbox_id)
        return sandbox

    async def _sandbox_status(
        self, sandbox_id: str, labels: dict[str, str], containers: list[dict[str, Any]]
    ) -> SandboxStatus:
        infra = next((c for c in containers if c.get("IsInfra")), None)
        ready = infra is not None and infra.get("State") == "running"
        ip = await self._infra_address(sandbox_id, infra) if ready and infra else None
        return SandboxStatus(
            id=sandbox_id,
            uid=labels.get(LABEL_POD_UID, ""),
            namespace=labels.get(LABEL_POD_NAMESPACE, ""),
            name=labels.get(LABEL_POD_NAME, ""),
            state="ready" if ready else "notready",
            ip=ip,
            containers=[self._container_status(c) for c in containers if not c.get("IsInfra")],
            labels=labels,
        )

    async def _infra_address(self, sandbox_id: str, infra: dict[str, Any]) -> str | None:
        """The running infra container's IP (from a `containers.list` item), inspected once per run of it:
        every sync asks, and an inspect costs as much as the list."""
        sandbox = self._sandboxes.get(sandbox_id)
        pid = infra.get("Pid", 0)
        if sandbox is not None and sandbox.address is not None and sandbox.address[0] == pid:
            return sandbox.address[1]
        ip = _address(await self._call(self._inspect_container, infra["Id"]))
        if sandbox is not None:
            sandbox.address = (pid, ip)
        return ip

    def _container_status(self, item: dict[str, Any]) -> ContainerStatus:
        """A ContainerStatus from a `containers.list` item (State there is a string)."""
        state = STATES.get(item.get("State", ""), "unknown")
        exited = state == "exited"
        labels = item.get("Labels") or {}
        return ContainerStatus(
            id=item["Id"],
            name=labels.get(LABEL_CONTAINER_NAME, ""),
            state=state,
            exit_code=item.get("ExitCode") if exited else None,
            started_at=_rfc3339(item.get("StartedAt", 0)),
            finished_at=_rfc3339(item.get("ExitedAt", 0)) if exited else None,
            oom_killed=exited and self._oom.is_oom_killed(item["Id"]),
            image=item.get("Image", ""),
            image_id="sha256:" + item.get("ImageID", ""),
            labels=labels,
        )

    # helpers: events

    async def _open_events(self, since_ns: int) -> AsyncIterator[dict[str, Any]]:
        # one label only: Podman ORs the values of one event filter key; the node is checked in _translate
        filters = {"label": [f"{LABEL_CLUSTER}={self.cluster_id}"], "type": ["container"], "event": ["start", "died"]}
        query = {"stream": "true", "filters": json.dumps(filters)}
        if since_ns:
            query["since"] = f"{since_ns // 10**9}.{since_ns % 10**9:09d}"
        return await self._streams.json_lines("/events", query)

    async def _pump_events(self, stream: AsyncIterator[dict[str, Any]], last_ns: int) -> None:
        """Fan Podman's events out to subscribers; when the stream ends, reopen it from the last event seen (the
        events log is a file, so what happened while the service was down is replayed)."""
        while True:
            async for event in stream:
                if event.get("timeNano", 0) <= last_ns:
                    continue  # replayed by `since` after a reconnect
                last_ns = event.get("timeNano", 0)
                self._translate(event)
            stream = await self._reopen_events(last_ns)

    async def _reopen_events(self, since_ns: int) -> AsyncIterator[dict[str, Any]]:
        delay = EVENTS_RETRY_MIN
        while True:
            try:
                return await self._open_events(since_ns)
            except (OSError, RuntimeFailure) as err:
                log.warning("podman event stream unavailable (%s); retrying in %.1f s", err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, EVENTS_RETRY_MAX)

    def _translate(self, event: dict[str, Any]) -> None:
        attributes = event.get("Actor", {}).get("Attributes", {})
        name = attributes.get(LABEL_CONTAINER_NAME)
        if not name or not self._is_ours(attributes):  # an infra container, or another node's
            return
        container_id = event.get("Actor", {}).get("ID") or event.get("id", "")
        uid = attributes.get(LABEL_POD_UID, "")
        if event.get("Action") == "start":
            self._publish(RuntimeEvent("started", uid, name, container_id))
        elif event.get("Action") == "died":
            exit_code = int(attributes.get("containerExitCode", -1))
            self._spawn(self._publish_death(RuntimeEvent("died", uid, name, container_id, exit_code)))

    async def _publish_death(self, died: RuntimeEvent) -> None:
        # the kernel logs the kill before conmon sees the exit, so the record is normally there already
        grace = OOM_RECORD_GRACE if died.exit_code == 137 else 0.0
        if await self._oom.wait_oom_killed(died.container_id, grace):
            self._publish(RuntimeEvent("oom", died.pod_uid, died.container_name, died.container_id, died.exit_code))
        self._publish(died)

    def _is_ours(self, labels: dict[str, str] | None) -> bool:
        """Whether something in Podman was made by this node of this cluster."""
        return all((labels or {}).get(key) == value for key, value in self.owner.items())

    def _publish(self, event: RuntimeEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    async def _subscription(self, queue: asyncio.Queue[RuntimeEvent | None]) -> AsyncIterator[RuntimeEvent]:
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._subscribers.remove(queue)


def _container_options(spec: ContainerSpec) -> dict[str, Any]:
    """podman-py `containers.create` keywords for a container spec (without name, pod and labels)."""
    options: dict[str, Any] = {
        "environment": spec.env,
        "mounts": [
            {"type": "bind", "source": m.host_path, "target": m.container_path, "read_only": m.read_only}
            for m in spec.mounts
        ],
        # catatonit as PID 1 forwards SIGTERM; `sleep` or `httpd` as PID 1 would ignore it (in the host's PID
        # namespace, or another container's, the app is no PID 1, and Podman refuses an init there)
        "init": not (spec.host_pid or spec.pid_namespace_of),
        "stop_timeout": spec.stop_timeout,  # also bounds `remove(force=True)`
        "read_only": spec.read_only_root,
        "privileged": spec.privileged,
        "cap_add": spec.capabilities_add,
        "cap_drop": spec.capabilities_drop,
        "no_new_privileges": spec.no_new_privileges,
        "tty": spec.tty,
        "stdin_open": spec.stdin,
    }
    # Kubernetes `command` replaces the image entrypoint (and drops its cmd); `args` replaces the cmd
    if spec.command:
        options["entrypoint"] = spec.command
        options["command"] = spec.args
    elif spec.args:
        options["command"] = spec.args
    if spec.working_dir:
        options["working_dir"] = spec.working_dir
    if spec.run_as_user is not None:
        group = f":{spec.run_as_group}" if spec.run_as_group is not None else ""
        options["user"] = f"{spec.run_as_user}{group}"
    if spec.memory_limit:
        options["mem_limit"] = options["memswap_limit"] = spec.memory_limit  # no swap, as on Kubernetes
    if spec.cpu_quota:
        options["cpu_quota"], options["cpu_period"] = spec.cpu_quota, spec.cpu_period
    if spec.cpu_shares:
        options["cpu_shares"] = spec.cpu_shares
    if spec.seccomp_profile:
        options["seccomp_profile_path"] = spec.seccomp_profile
    if spec.host_pid:
        options["pid_mode"] = "host"
    elif spec.pid_namespace_of:  # kubectl debug --target: the debugger sees the target's processes
        options["pid_mode"] = {"nsmode": "container", "value": spec.pid_namespace_of}  # podman-py's dict form
    if spec.host_ipc:
        options["ipc_mode"] = "host"  # per container: it overrides the IPC namespace the pod shares
    if spec.log_path:
        options["log_config"] = {"Type": "k8s-file", "Config": {"path": spec.log_path, "size": spec.log_max_size}}
    return options


def _address(infra: dict[str, Any] | None) -> str | None:
    """The first IP address of a container's networks."""
    networks = ((infra or {}).get("NetworkSettings") or {}).get("Networks") or {}
    return next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), None)


def _rfc3339(unix_seconds: int) -> str | None:
    if not unix_seconds or unix_seconds <= 0:
        return None
    return format_time(datetime.fromtimestamp(unix_seconds, UTC))


def _message(err: APIError) -> str:
    return err.explanation or str(err)
