"""A runtime that only pretends, for simulating many nodes and thousands of pods on one machine (like kwok).

Sandboxes get addresses from a per-node range and containers "run" at once. What a container does is read
from its command line, in a tiny shell-like language (the program is `command + args`; `sh -c SCRIPT` runs
SCRIPT, anything else is one statement):

    sleep N          wait N seconds (suffixes s, m, h, d; `sleep infinity` waits forever)
    exit N           end with exit code N
    true | :         status 0            false   status 1
    echo WORDS       print WORDS (to the CRI log file, when the container has one)
    oom              end as the kernel's OOM killer would: exit code 137, OOMKilled
    trap ACTION TERM on SIGTERM run ACTION (`trap '' TERM` ignores it, so a stop waits for the grace period)
    anything else    a long-running program (a server): runs until stopped

Statements are separated by `;`, `&&` (stop at the first non-zero status) or newlines; the program ends with
the status of its last statement. A program with no statements (the image's default) runs until stopped, and
so does one whose last statement is a server. SIGTERM ends a container at once with code 143 unless trapped.
`exec` (probes and hooks) runs the same language to completion (unknown commands succeed); `exec_results`
overrides the result of given command lines and `exec_log` records every exec, for tests. Network probes ask
`probe_port`: a pod "listens" on every port while one of its containers runs. `spec_of` shows what a container
was created with.

Nothing a client asks for runs or goes anywhere: an interactive exec (`kubectl exec`) runs nothing, writes
SIMULATED_EXEC to stderr and ends with exit code 126 (the shell's "command cannot be executed"), and
port-forward is refused before any stream is opened (the pod addresses are made up, so dialling one would
send traffic to whoever owns that address on the host's real network). An attach with stdin echoes what
arrives, one without prints nothing until the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import itertools
import shlex
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shim import __version__
from shim.machinery.timefmt import now_rfc3339_micro
from shim.runtime.base import (
    LABEL_CONTAINER_NAME,
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

SIGTERM_EXIT = 143
SIGKILL_EXIT = 137
_SHELLS = frozenset({"sh", "/bin/sh", "bash", "/bin/bash", "ash", "/bin/ash"})
_FOREVER = float("inf")
_Printer = Callable[[str], None]
SIMULATED_EXEC_EXIT = 126
SIMULATED_EXEC = "kube-shim: {command}: not run: this pod's node is simulated (fake runtime), no process runs in it"
SIMULATED_NETWORK = (
    "this pod's node is simulated (fake runtime): its pod address is made up and nothing listens there, "
    "so no connection is made"
)


def node_pod_cidr(index: int) -> str:
    """The /24 pod range of the index-th simulated node: 10.244.0.0/24, 10.244.1.0/24, ... (65536 nodes)."""
    base = int(ipaddress.IPv4Address("10.244.0.0")) + index * 256
    return f"{ipaddress.IPv4Address(base)}/24"


class FakeRuntime(Runtime):
    """An in-memory Runtime. One per simulated node; cheap enough for thousands of pods in one process."""

    def __init__(self, pod_cidr: str = "10.244.0.0/24", unpullable: set[str] | None = None) -> None:
        network = ipaddress.ip_network(pod_cidr)
        self.pod_cidr = str(network)
        self._free_ips = [str(ip) for ip in itertools.islice(network.hosts(), 1, None)]  # .1 is the gateway
        self._free_ips.reverse()
        self.unpullable: set[str] = set(unpullable or ())
        self.images: set[str] = set()
        self.image_users: dict[str, str] = {}  # an image's USER (none set: root)
        self.exec_results: dict[tuple[str, ...], ExecResult] = {}
        self.exec_log: list[tuple[str, list[str]]] = []  # (container id, command) of every exec, in order
        self._sandboxes: dict[str, _Sandbox] = {}
        self._by_ip: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._subscribers: list[asyncio.Queue[RuntimeEvent]] = []
        self._ids = itertools.count(1)
        self._id_prefix = hashlib.sha256(pod_cidr.encode()).hexdigest()[:8]

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for subscriber in self._subscribers:
            subscriber.put_nowait(_CLOSED)

    async def version(self) -> str:
        return f"fake://{__version__}"

    # -- images ------------------------------------------------------------------------------------------------

    async def ensure_image(self, image: str, pull_policy: str) -> str:
        present = image in self.images
        if pull_policy == "Never" and not present:
            raise ImagePullError(
                "ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never'
            )
        if pull_policy == "Always" or not present:
            if image in self.unpullable:
                raise ImagePullError(
                    "ErrImagePull", f"failed to pull image {image!r}: manifest unknown (simulated by the fake runtime)"
                )
            self.images.add(image)
        return "sha256:" + hashlib.sha256(image.encode()).hexdigest()

    async def image_user(self, image: str) -> str:
        return self.image_users.get(image, "")

    # -- sandboxes ---------------------------------------------------------------------------------------------

    async def create_sandbox(self, spec: SandboxSpec) -> str:
        if not spec.host_network and not self._free_ips:
            raise RuntimeFailure("CreatePodSandboxError", "the fake node's pod address range is exhausted")
        sandbox = _Sandbox(self._new_id(), spec, None if spec.host_network else self._free_ips.pop())
        self._sandboxes[sandbox.id] = sandbox
        if sandbox.ip:
            self._by_ip[sandbox.ip] = sandbox
        return sandbox.id

    async def sandbox_ip(self, sandbox_id: str) -> str | None:
        sandbox = self._sandboxes.get(sandbox_id)
        return sandbox.ip if sandbox else None

    async def remove_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return
        for container in sandbox.containers:
            container.end(SIGKILL_EXIT, quiet=True)
            self._containers.pop(container.id, None)
        if sandbox.ip:
            del self._by_ip[sandbox.ip]
            self._free_ips.append(sandbox.ip)

    async def list_sandboxes(self) -> list[SandboxStatus]:
        return [sandbox.status() for sandbox in self._sandboxes.values()]

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        sandbox = self._sandboxes.get(sandbox_id)
        return sandbox.status() if sandbox else None

    # -- containers --------------------------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise RuntimeFailure("CreateContainerError", f"no sandbox {sandbox_id}")
        try:
            program = parse_program([*spec.command, *spec.args])
        except ValueError as exc:
            raise RuntimeFailure("CreateContainerError", f"fake runtime cannot parse the command: {exc}") from None
        container = _Container(self._new_id(), sandbox, spec, program, self._publish)
        sandbox.containers.append(container)
        self._containers[container.id] = container
        return container.id

    async def start_container(self, container_id: str) -> None:
        container = self._container(container_id)
        if container.state != "created":
            raise RuntimeFailure("RunContainerError", f"container {container_id} is {container.state}")
        container.start()

    async def stop_container(self, container_id: str, grace_seconds: int) -> None:
        container = self._containers.get(container_id)
        if container is not None and container.state == "running":
            await container.stop(grace_seconds)

    async def remove_container(self, container_id: str) -> None:
        container = self._containers.pop(container_id, None)
        if container is not None:
            container.end(SIGKILL_EXIT, quiet=True)
            container.sandbox.containers.remove(container)

    # -- events, exec, probes ----------------------------------------------------------------------------------

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Events from the moment of this call until the runtime closes."""
        queue: asyncio.Queue[RuntimeEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        return self._subscription(queue)

    async def exec(self, container_id: str, command: list[str], timeout: float | None = None) -> ExecResult:
        self._running(container_id)
        self.exec_log.append((container_id, list(command)))
        if (preset := self.exec_results.get(tuple(command))) is not None:
            return preset
        output: list[str] = []
        code = await asyncio.wait_for(_run_to_end(parse_program(command), output.append), timeout)
        return ExecResult(code, "".join(f"{line}\n" for line in output).encode(), b"")

    async def exec_stream(self, container_id: str, command: list[str], stdin: bool, tty: bool) -> ExecSession:
        """Runs nothing: SIMULATED_EXEC on stderr, exit code 126."""
        self._running(container_id)
        message = SIMULATED_EXEC.format(command=shlex.join(command)) + "\n"
        return _FakeSession(echo=False, output=(2, message.encode()), exit_code=SIMULATED_EXEC_EXIT)

    async def attach(self, container_id: str, stdin: bool, tty: bool) -> ExecSession:
        """The main process echoes stdin (with stdin) or prints nothing until the client leaves."""
        self._running(container_id)
        return _FakeSession(echo=stdin)

    async def pod_cidrs(self) -> list[str]:
        return [self.pod_cidr]

    def port_forward_refusal(self) -> str | None:
        return SIMULATED_NETWORK

    async def dial_pod(self, sandbox_id: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Never dials: the pod's address is made up (see port_forward_refusal)."""
        raise OSError(SIMULATED_NETWORK)

    async def probe_port(self, ip: str, port: int) -> bool:
        """Whether a connection to ip:port would be accepted: some container of the pod with that IP runs."""
        sandbox = self._by_ip.get(ip)
        return sandbox is not None and any(c.state == "running" for c in sandbox.containers)

    def spec_of(self, container_id: str) -> ContainerSpec | None:
        """What a container was created with (its resolved env, mounts, limits): for tests and debugging."""
        container = self._containers.get(container_id)
        return container.spec if container else None

    # -- helpers -----------------------------------------------------------------------------------------------

    def _new_id(self) -> str:
        return hashlib.sha256(f"{self._id_prefix}-{next(self._ids)}".encode()).hexdigest()

    def _container(self, container_id: str) -> _Container:
        container = self._containers.get(container_id)
        if container is None:
            raise RuntimeFailure("ContainerNotFound", f"no container {container_id}")
        return container

    def _running(self, container_id: str) -> _Container:
        container = self._container(container_id)
        if container.state != "running":
            raise RuntimeFailure("ContainerNotRunning", f"container {container_id} is not running")
        return container

    async def _subscription(self, queue: asyncio.Queue[RuntimeEvent]) -> AsyncIterator[RuntimeEvent]:
        try:
            while (event := await queue.get()) is not _CLOSED:
                yield event
        finally:
            self._subscribers.remove(queue)

    def _publish(self, event: RuntimeEvent) -> None:
        for subscriber in self._subscribers:
            subscriber.put_nowait(event)


_CLOSED = RuntimeEvent("closed", "", "", "")


def parse_program(argv: list[str]) -> list[list[str]]:
    """The statements of a command line: `sh -c SCRIPT` is split into statements, anything else is one.

    A statement that follows `&&` starts with the marker "&&". Raises ValueError on unbalanced quotes.
    """
    if len(argv) >= 3 and argv[0] in _SHELLS and argv[1] == "-c":
        return _parse_script(argv[2])
    return [argv] if argv else []


def _parse_script(script: str) -> list[list[str]]:
    lexer = shlex.shlex(script.replace("\n", ";"), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    statements: list[list[str]] = []
    current: list[str] = []
    for token in lexer:
        if token in (";", "&&"):
            if current:
                statements.append(current)
            current = ["&&"] if token == "&&" else []
        else:
            current.append(token)
    if current and current != ["&&"]:
        statements.append(current)
    return statements


async def _run_to_end(program: list[list[str]], out: _Printer) -> int:
    """Run a program that is not a container's main process (exec): servers count as success."""
    status = 0
    for statement in program:
        if statement[0] == "&&":
            if status != 0:
                return status
            statement = statement[1:]
        verdict = _statement(statement, out)
        if isinstance(verdict, _Exit):
            return verdict.code
        if isinstance(verdict, float):
            if verdict == _FOREVER:
                await asyncio.Event().wait()
            await asyncio.sleep(verdict)
            status = 0
        else:
            status = 0 if verdict is None else verdict
    return status


@dataclass
class _Exit:
    code: int
    oom: bool = False


def _statement(words: list[str], out: _Printer) -> int | float | _Exit | None:
    """One statement: an exit status (int), a delay (float), an exit (_Exit) or None for "a server"."""
    if not words:
        return 0
    verb, rest = words[0].rsplit("/", 1)[-1], words[1:]
    if verb == "sleep":
        return _seconds(rest[0] if rest else "0")
    if verb == "exit":
        return _Exit(int(rest[0]) if rest and rest[0].isdigit() else 0)
    if verb in ("true", ":"):
        return 0
    if verb == "false":
        return 1
    if verb == "echo":
        out(" ".join(rest))
        return 0
    if verb == "oom":
        return _Exit(SIGKILL_EXIT, oom=True)
    return None


def _seconds(text: str) -> float:
    """`sleep`'s argument: 1.5, 10s, 2m, 1h, 1d or infinity (anything unreadable sleeps not at all)."""
    if text == "infinity":
        return _FOREVER
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:], 1)
    try:
        return float(text.rstrip("smhd")) * scale
    except ValueError:
        return 0.0


@dataclass
class _Sandbox:
    id: str
    spec: SandboxSpec
    ip: str | None
    containers: list[_Container] = field(default_factory=list)

    def status(self) -> SandboxStatus:
        spec = self.spec
        return SandboxStatus(
            id=self.id,
            uid=spec.uid,
            namespace=spec.namespace,
            name=spec.name,
            state="ready",
            ip=self.ip,
            containers=[c.status() for c in self.containers],
            labels=dict(spec.labels),
        )


class _Container:
    """One simulated process: runs its program with timers, ends on exit, stop or removal."""

    def __init__(
        self,
        id_: str,
        sandbox: _Sandbox,
        spec: ContainerSpec,
        program: list[list[str]],
        publish: Callable[[RuntimeEvent], None],
    ) -> None:
        self.id = id_
        self.sandbox = sandbox
        self.spec = spec
        self.program = program
        self.state = "created"
        self.exit_code: int | None = None
        self.oom_killed = False
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.term_action: list[list[str]] | None = None  # None = default (exit 143); [] = ignore
        self._publish = publish
        self._task: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()

    def start(self) -> None:
        self.state = "running"
        self.started_at = now_rfc3339_micro()
        self._publish(self._event("started"))
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, grace_seconds: int) -> None:
        """SIGTERM (run the trap), then SIGKILL after the grace period."""
        action = self.term_action
        if action is None:
            self.end(SIGTERM_EXIT)
            return
        handler = asyncio.get_running_loop().create_task(self._on_term(action)) if action else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), grace_seconds)
        self.end(SIGKILL_EXIT)
        if handler is not None:
            handler.cancel()

    async def _on_term(self, action: list[list[str]]) -> None:
        self.end(await _run_to_end(action, self._log))

    def end(self, code: int, oom: bool = False, quiet: bool = False) -> None:
        if self.state == "exited":
            return
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self.state = "exited"
        self.exit_code = code
        self.oom_killed = oom
        self.finished_at = now_rfc3339_micro()
        self._ended.set()
        if not quiet:
            self._publish(self._event("oom" if oom else "died"))

    def status(self) -> ContainerStatus:
        return ContainerStatus(
            id=self.id,
            name=self.spec.labels.get(LABEL_CONTAINER_NAME, self.spec.name),
            state=self.state,
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
            oom_killed=self.oom_killed,
            image=self.spec.image,
            image_id="sha256:" + hashlib.sha256(self.spec.image.encode()).hexdigest(),
            labels=dict(self.spec.labels),
        )

    async def _run(self) -> None:
        """The main process: statements in order; a server (or nothing at all) keeps it running."""
        status = 0
        for statement in self.program or [["pause"]]:
            if statement[0] == "&&":
                if status != 0:
                    break
                statement = statement[1:]
            if statement[:1] == ["trap"]:
                self._trap(statement[1:])
                status = 0
                continue
            verdict = _statement(statement, self._log)
            if verdict is None:
                await self._ended.wait()
                return
            if isinstance(verdict, _Exit):
                self.end(verdict.code, oom=verdict.oom)
                return
            if isinstance(verdict, float):
                if verdict == _FOREVER:
                    await self._ended.wait()
                    return
                await asyncio.sleep(verdict)
                status = 0
            else:
                status = verdict
        self.end(status)

    def _trap(self, words: list[str]) -> None:
        if len(words) >= 2 and "TERM" in words[1:]:
            self.term_action = _parse_script(words[0])

    def _log(self, line: str) -> None:
        """Append a stdout line in the CRI log format, as a real runtime's log driver would."""
        if self.spec.log_path:
            path = Path(self.spec.log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000+00:00")
            with path.open("a") as f:
                f.write(f"{stamp} stdout F {line}\n")

    def _event(self, kind: str) -> RuntimeEvent:
        return RuntimeEvent(kind, self.sandbox.spec.uid, self.status().name, self.id, self.exit_code)


class _FakeSession(ExecSession):
    """An interactive session that runs no program: `echo` sends stdin back until it closes; otherwise it
    writes `output` (if any) and ends with `exit_code`, or (no exit code) waits until the client leaves."""

    def __init__(self, echo: bool, output: tuple[int, bytes] | None = None, exit_code: int | None = None) -> None:
        self._chunks: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._echo = echo
        self._code: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if output is not None:
            self._chunks.put_nowait(output)
        if exit_code is not None:
            self._finish(exit_code)

    async def write_stdin(self, data: bytes) -> None:
        if self._echo:
            self._chunks.put_nowait((1, data))

    async def close_stdin(self) -> None:
        if self._echo:
            self._finish(0)

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def resize(self, width: int, height: int) -> None:
        return None

    async def wait(self) -> int:
        return await self._code

    def _finish(self, code: int) -> None:
        if not self._code.done():
            self._chunks.put_nowait(None)
            self._code.set_result(code)
