"""One worker per pod: every change to the pod (API event, runtime event, probe result, timer) wakes it, and
it syncs serially: volumes, sandbox, init containers in order, then containers, restarts with back-off,
probes, and finally the status, written through `pods/{name}/status` only when it changed. A pod marked for
deletion is stopped within its grace period (preStop hooks first), and its API object is then deleted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from shim.client import ApiClient, ApiException
from shim.client.events import EventRecorder
from shim.kubelet.backoff import Backoff, go_duration
from shim.kubelet.config import KubeletOptions
from shim.kubelet.downward import PodAddresses
from shim.kubelet.envvars import ContainerConfigError, container_env
from shim.kubelet.eviction import exceeded_empty_dir, size_limits
from shim.kubelet.images import ImagePuller, ImageUnavailable
from shim.kubelet.paths import PodPaths
from shim.kubelet.podstatus import (
    KUBELET_CONDITIONS,
    TERMINAL_PHASES,
    PodView,
    attempt_of,
    init_succeeded,
    now_rfc3339,
    pod_status,
    runs_by_container,
    should_restart,
)
from shim.kubelet.prober import ActionTarget, ProbeWorker, Verdict, run_action
from shim.kubelet.refs import ReferencedObjects, ServiceLister
from shim.kubelet.specs import (
    DEFAULT_GRACE_SECONDS,
    LABEL_HASH,
    container_hash,
    container_spec,
    host_namespaces,
    sandbox_spec,
)
from shim.kubelet.volumes import MountError, PreparedVolume, container_mounts, prepare_volumes
from shim.machinery.resources import PODS
from shim.runtime.base import ContainerStatus, Runtime, RuntimeFailure, SandboxStatus

Obj = dict[str, Any]
Runs = dict[str, list[ContainerStatus]]
Emit = Callable[[str, str, str], Awaitable[None]]

log = logging.getLogger("shim.kubelet.pods")

MIN_STOP_GRACE = 2  # kubelet always gives a container this long between SIGTERM and SIGKILL
RETRY_MIN, RETRY_MAX = 1.0, 10.0  # retrying what waits on the API (a missing ConfigMap) or failed
MAX_MESSAGE = 4096  # bytes of a termination message kubelet keeps
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048  # terminationMessagePolicy FallbackToLogsOnError
_PROBES = (("liveness", "livenessProbe"), ("readiness", "readinessProbe"), ("startup", "startupProbe"))
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass
class NodeContext:
    """What every pod worker of one node shares."""

    client: ApiClient
    runtime: Runtime
    node_name: str
    data_dir: Path
    options: KubeletOptions
    recorder: EventRecorder
    images: ImagePuller
    restarts: Backoff  # CrashLoopBackOff, keyed by pod uid and container name
    http: aiohttp.ClientSession  # for httpGet probes and hooks
    host_ip: str
    allocatable: dict[str, str]
    runtime_scheme: str  # the containerID prefix, from the runtime's version ("podman")
    services: ServiceLister  # the namespace's services, for the service environment variables
    cluster_dns: Callable[[], tuple[str, ...]]  # the nameservers of ClusterFirst pods, as now known
    events_in_flight: set[asyncio.Task[None]] = field(default_factory=set)  # held until written


class PodWorker:
    """Keeps one pod's containers as its spec and restart policy say, and reports what they do."""

    def __init__(self, node: NodeContext, pod: Obj, sandbox: SandboxStatus | None = None) -> None:
        self.node = node
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.paths = PodPaths(node.data_dir, self.uid)
        self.gone = False  # the API object was deleted
        self.sandbox_id = sandbox.id if sandbox else None
        self.pod_ip = sandbox.ip if sandbox else None
        # container name -> id of its newest run; an adopted sandbox's are known at once, so that exec and
        # logs reach its containers before the first sync
        self.newest: dict[str, str] = _newest(runs_by_container(sandbox))
        self._volumes: dict[str, PreparedVolume] | None = None
        self._waiting: dict[str, tuple[str, str]] = {}  # container -> (reason, message) until it runs
        self._ready: dict[str, bool] = {}  # container id -> readiness result
        self._started: dict[str, bool] = {}  # container id -> startup result
        self._unhealthy: dict[str, str] = {}  # container id -> the probe kind that failed it
        self._messages: dict[str, str] = {}  # container id -> termination message
        self._redefined: set[str] = set()  # containers stopped because their definition changed: start them anew
        self._probes: dict[tuple[str, str], ProbeWorker] = {}
        self._terminal = False
        self._retry = RETRY_MIN
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = math.inf
        self._task: asyncio.Task[None] | None = None
        self._refresh_volumes = False
        self._next_measure = 0.0  # monotonic time of the next emptyDir usage measurement
        self._sent: Obj | None = None  # the status last written, to write each change once

    # -- driving -----------------------------------------------------------------------------------------------

    def start(self, on_done: Callable[[str], None]) -> None:
        """Run until the pod is gone from the node; then `on_done(uid)`."""
        self._task = asyncio.get_running_loop().create_task(self._run(on_done))
        self.wake()

    async def stop(self) -> None:
        """Stop working on the pod (the agent is shutting down); its containers keep running."""
        self._cancel_probes()
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def update(self, pod: Obj) -> None:
        """A copy of the pod from the API; a version not seen before wakes the worker."""
        if _rv(pod) > _rv(self.pod):
            self.pod = pod
            self.wake()

    def deleted(self) -> None:
        """The API object is gone: stop everything at once."""
        self.gone = True
        self.wake()

    def resync(self) -> None:
        """The periodic safety-net sync, which also refreshes configMap/secret/downwardAPI volumes."""
        self._refresh_volumes = True
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def wake_after(self, delay: float) -> None:
        """Sync again in `delay` seconds (the earliest of all requested wake-ups wins)."""
        due = time.monotonic() + delay
        if due >= self._timer_due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer, self._timer_due = None, math.inf
        self.wake()

    async def _run(self, on_done: Callable[[str], None]) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if await self._sync():
                    break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the pod's worker alive; the sync is simply tried again
                log.warning("pod %s: sync failed: %s", self._name(), exc, exc_info=not isinstance(exc, OSError))
                self.wake_after(self._backoff_retry())
        self._cancel_probes()
        on_done(self.uid)

    # -- the sync --------------------------------------------------------------------------------------------

    async def _sync(self) -> bool:
        """One pass; True when the pod is finished on this node (stopped, cleaned up, deleted)."""
        pod = self.pod
        if self.gone or pod["metadata"].get("deletionTimestamp"):
            await self._terminate()
            return True
        if self._terminal:
            return False
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            await self._release()  # it finished before (maybe before an agent restart): never run it again
            return False
        refused = host_namespaces(pod) if not self.node.options.allow_host_namespaces else []
        if refused:
            await self._reject("HostNamespacesForbidden", f"this node does not allow {', '.join(refused)}")
            return False
        refs = ReferencedObjects(self.node.client, pod["metadata"]["namespace"], self.node.services)
        if not await self._ensure_volumes(refs) or not await self._ensure_sandbox():
            return False
        assert self.sandbox_id is not None
        sandbox = await self.node.runtime.sandbox_status(self.sandbox_id)
        if sandbox is None or sandbox.state != "ready":
            await self._replace_sandbox()
            return False
        runs = runs_by_container(sandbox)
        deadline = self._deadline_left()
        if deadline is not None and deadline <= 0:
            await self._exceed_deadline(runs)
            return False
        if deadline is not None:
            self.wake_after(deadline)
        if await self._kill_redefined(runs):
            runs = await self._runs()  # what was stopped starts again in this sync, from its new definition
        killed = await self._kill_unhealthy(runs)
        started = await self._start_next(runs, refs)
        if killed or started:
            runs = await self._runs()
        self.newest = _newest(runs)
        self._sync_probes(runs)
        status = self._status(runs)
        await self._report(status)
        if not self._waiting:  # nothing is waiting on a retry: the next problem starts retrying fast again
            self._retry = RETRY_MIN
        if status["phase"] in TERMINAL_PHASES:
            await self._release()
        else:
            await self._enforce_size_limits()
        return False

    async def _reject(self, reason: str, message: str) -> None:
        """kubelet's rejectPod: the pod fails before anything of it runs, with the reason as its status."""
        message = f"Pod was rejected: {message}"
        await self._event("Warning", reason, message)
        await self._report(self._status({}, failure=(reason, message)))
        await self._release()

    async def _enforce_size_limits(self) -> None:
        """Evict the pod once an emptyDir outgrew its sizeLimit (measured every volume_stats_interval)."""
        limits = size_limits(self.pod)
        now, interval = time.monotonic(), self.node.options.volume_stats_interval
        if not limits or now < self._next_measure:  # a walk of the volumes per period, however often it syncs
            return
        self._next_measure = now + interval
        message = await asyncio.to_thread(exceeded_empty_dir, self.paths, limits)
        if message is None:
            self.wake_after(interval)
            return
        await self._event("Warning", "Evicted", message)
        await self._stop_all(await self._runs(), 0, forced=True)
        await self._report(self._status(await self._runs(), failure=("Evicted", message)))
        await self._release()

    async def _exceed_deadline(self, runs: Runs) -> None:
        """activeDeadlineSeconds passed: stop everything and fail the pod."""
        message = "Pod was active on the node longer than the specified deadline"
        await self._event("Normal", "DeadlineExceeded", message)
        await self._stop_all(runs, self._grace())
        await self._report(self._status(await self._runs(), failure=("DeadlineExceeded", message)))
        await self._release()

    async def _ensure_volumes(self, refs: ReferencedObjects) -> bool:
        if self._volumes is not None and not self._refresh_volumes:
            return True
        allowed = self.node.options.allowed_host_paths
        addresses, allocatable = self._addresses(), self.node.allocatable
        try:
            self._volumes = await prepare_volumes(self.pod, self.paths, refs, addresses, allocatable, allowed)
        except MountError as exc:
            await self._event("Warning", "FailedMount", exc.event_message)
            if self._volumes is None:  # nothing runs yet: say why in the status, retry soon
                await self._report(self._status({}))
            self.wake_after(self._backoff_retry())
            return self._volumes is not None
        self._refresh_volumes = False
        return True

    async def _ensure_sandbox(self) -> bool:
        if self.sandbox_id is not None:
            return True
        spec = sandbox_spec(self.pod, self.node.cluster_dns(), self.node.options.cluster_domain)
        try:
            self.sandbox_id = await self.node.runtime.create_sandbox(spec)
            self.pod_ip = await self.node.runtime.sandbox_ip(self.sandbox_id)
        except RuntimeFailure as exc:
            await self._event("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc.message}")
            self.wake_after(self._backoff_retry())
            return False
        if self.pod_ip is None and self.pod["spec"].get("hostNetwork"):
            self.pod_ip = self.node.host_ip
        return True

    async def _replace_sandbox(self) -> None:
        """The sandbox died (or vanished): kill what is left and start over, as kubelet does."""
        await self._event("Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
        self._cancel_probes()
        if self.sandbox_id is not None:
            await self.node.runtime.remove_sandbox(self.sandbox_id)
        self.sandbox_id = None
        self.wake()

    async def _runs(self) -> Runs:
        assert self.sandbox_id is not None
        return runs_by_container(await self.node.runtime.sandbox_status(self.sandbox_id))

    # -- starting ----------------------------------------------------------------------------------------------

    async def _start_next(self, runs: Runs, refs: ReferencedObjects) -> bool:
        """Start what should run now: the next init container, or every container that (re)starts."""
        spec = self.pod["spec"]
        policy = spec.get("restartPolicy", "Always")
        for container in spec.get("initContainers") or ():
            history = runs.get(container["name"], [])
            if init_succeeded(history):
                continue
            if history and history[0].state == "running":
                return False
            if history and history[0].state == "exited" and policy == "Never":
                return False  # the pod has failed
            return await self._start(container, history, refs)
        changed = False
        for container in spec.get("containers") or ():
            history = runs.get(container["name"], [])
            if should_restart(history, policy) or container["name"] in self._redefined:
                changed |= await self._start(container, history, refs)
        for container in spec.get("ephemeralContainers") or ():
            if not runs.get(container["name"]):  # a debugger runs once and is never restarted
                changed |= await self._start(container, [], refs, runs)
        return changed

    async def _start(
        self, container: Obj, history: list[ContainerStatus], refs: ReferencedObjects, runs: Runs | None = None
    ) -> bool:
        """Start one run of the container (after its restart back-off). True when the runtime changed.

        `runs` (the pod's, for an ephemeral container) holds the run of the container it targets."""
        runtime, name = self.node.runtime, container["name"]
        latest = history[0] if history else None
        changed = False
        if latest is not None and latest.state == "exited":
            if await self._backing_off(container, latest):
                return False
        elif latest is not None:  # created but never started (a failed start): replace it
            await runtime.remove_container(latest.id)
            changed = True
        attempt = attempt_of(latest) + 1 if latest else self._first_attempt(name)
        if not await self._launch(container, attempt, refs, _target_id(container, runs or {})):
            return changed
        self._redefined.discard(name)
        for old in history[1:]:  # keep the newest dead run (for `logs --previous`), drop older ones
            await runtime.remove_container(old.id)
        return True

    async def _backing_off(self, container: Obj, latest: ContainerStatus) -> bool:
        """kubelet's doBackOff: a restart waits out the container's back-off, counted from when it died. The
        back-off is the definition's (kube's key holds the container's hash): a new image starts afresh."""
        name = container["name"]
        key = f"{self.uid}/{name}/{container_hash(container)}"
        finished = _epoch(latest.finished_at) or time.time()
        restarts = self.node.restarts
        if restarts.in_backoff_since(key, finished):
            delay = go_duration(restarts.delay(key))
            waiting = f"back-off {delay} restarting failed container={name} pod={self._name_uid()}"
            self._waiting[name] = ("CrashLoopBackOff", waiting)
            message = f"Back-off restarting failed container {name} in pod {self._name_uid()}"
            await self._event("Warning", "BackOff", message, self._field_path(name))
            self.wake_after(restarts.remaining_since(key, finished) + 0.01)
            return True
        restarts.next(key, finished)
        return False

    async def _launch(self, container: Obj, attempt: int, refs: ReferencedObjects, target_id: str = "") -> bool:
        """Pull, configure, create and start one run; on failure the waiting reason says why. `target_id` is the
        container whose PID namespace an ephemeral container joins (its targetContainerName's running one)."""
        node, name, pod = self.node, container["name"], self.pod
        field_path = self._field_path(name)

        async def emit(type_: str, reason: str, message: str) -> None:
            await self._event(type_, reason, message, field_path)

        try:
            await node.images.ensure(self.uid, container, emit)
        except ImageUnavailable as exc:
            self._waiting[name] = (exc.reason, exc.message)
            await emit("Warning", "Failed", f"Error: {exc.reason}")
            retry_in = node.images.retry_in(self.uid, container["image"])
            # soon after a failed pull, to show ImagePullBackOff; then when the pull back-off ends
            self.wake_after(RETRY_MIN if exc.reason == "ErrImagePull" else retry_in or self._backoff_retry())
            return False
        try:
            env = await container_env(pod, container, refs, self._addresses(), node.allocatable, self._warn)
            mounts = container_mounts(container, self._volumes or {}, env, self.paths, attempt)
            log_path = self.paths.container_log(name, attempt)
            image_user = await self._image_user_if_needed(container)
            spec = container_spec(pod, container, env, mounts, attempt, str(log_path), node.options, image_user)
            spec.pid_namespace_of = target_id
        except ContainerConfigError as exc:
            return await self._failed_start(name, "CreateContainerConfigError", str(exc), emit)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        assert self.sandbox_id is not None
        try:
            container_id = await node.runtime.create_container(self.sandbox_id, spec)
        except RuntimeFailure as exc:
            return await self._failed_start(name, exc.reason or "CreateContainerError", exc.message, emit)
        await emit("Normal", "Created", f"Created container: {name}")
        try:
            await node.runtime.start_container(container_id)
        except RuntimeFailure as exc:
            await self._failed_start(name, "RunContainerError", exc.message, emit)
            return True
        await emit("Normal", "Started", f"Started container {name}")
        self._waiting.pop(name, None)
        hook = (container.get("lifecycle") or {}).get("postStart")
        if hook:
            verdict, _ = await run_action(hook, self._target(container, container_id), self._grace())
            if verdict is Verdict.FAILURE:
                await emit("Warning", "FailedPostStartHook", "PostStartHook failed")
                await node.runtime.stop_container(container_id, self._grace())
        return True

    async def _failed_start(self, name: str, reason: str, message: str, emit: Emit) -> bool:
        self._waiting[name] = (reason, message)
        await emit("Warning", "Failed", f"Error: {message}")
        self.wake_after(self._backoff_retry())
        return False

    async def _image_user_if_needed(self, container: Obj) -> str:
        """The image's USER when runAsNonRoot must be checked against it (no runAsUser set), else ""."""
        pod_security = self.pod["spec"].get("securityContext") or {}
        security = container.get("securityContext") or {}
        non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        if not non_root or security.get("runAsUser", pod_security.get("runAsUser")) is not None:
            return ""
        try:
            return await self.node.runtime.image_user(container["image"])
        except RuntimeFailure as exc:
            raise ContainerConfigError(f"cannot verify the image's user for runAsNonRoot: {exc.message}") from None

    def _first_attempt(self, name: str) -> int:
        """The run number of a container with no run on this node: after the API's count when it ran before
        (its runtime state was lost), so that log files are never reused."""
        status = self._api_container_status(name)
        ran = status.get("containerID") or "terminated" in (status.get("lastState") or {})
        return status.get("restartCount", 0) + 1 if ran else 0

    # -- probes and liveness -----------------------------------------------------------------------------------

    def _sync_probes(self, runs: Runs) -> None:
        """One probe worker per probe of every running container; workers of ended runs go."""
        wanted = set()
        for container in self.pod["spec"].get("containers") or ():
            history = runs.get(container["name"]) or []
            if not history or history[0].state != "running":
                continue
            run = history[0]
            for kind, key in _PROBES:
                if key in container:
                    wanted.add((run.id, kind))
                    if (run.id, kind) not in self._probes:
                        self._start_probe(container, run, kind, container[key])
        for stale in [k for k in self._probes if k not in wanted]:
            self._probes.pop(stale).cancel()
        live = {run.id for history in runs.values() for run in history}
        for results in (self._ready, self._started, self._unhealthy, self._messages):
            for container_id in [c for c in results if c not in live]:
                del results[container_id]

    def _start_probe(self, container: Obj, run: ContainerStatus, kind: str, probe: Obj) -> None:
        container_id = run.id
        previous = self._api_container_status(container["name"])
        if previous.get("containerID", "").endswith(container_id):  # adopted: keep what the API shows
            self._ready.setdefault(container_id, bool(previous.get("ready")))
            if previous.get("started"):
                self._started.setdefault(container_id, True)

        def on_result(kind: str, ok: bool) -> None:
            if kind == "readiness":
                self._ready[container_id] = ok
            elif kind == "startup":
                self._started[container_id] = ok
            if not ok and kind in ("liveness", "startup"):
                self._unhealthy[container_id] = kind
            self.wake()

        async def on_report(kind: str, verdict: Verdict, output: str) -> None:
            if verdict is Verdict.WARNING:
                reason, message = "ProbeWarning", f"{kind.capitalize()} probe warning: {output}"
            else:
                reason, message = "Unhealthy", f"{kind.capitalize()} probe failed: {output}"
            await self._event("Warning", reason, message, self._field_path(container["name"]))

        worker = ProbeWorker(
            kind,
            probe,
            self._target(container, container_id),
            _epoch(run.started_at) or time.time(),
            lambda: self._started.get(container_id, "startupProbe" not in container),
            on_result,
            on_report,
        )
        if self._ready.get(container_id) and kind == "readiness":
            worker.result = True
        self._probes[(container_id, kind)] = worker
        worker.start()

    async def _kill_redefined(self, runs: Runs) -> bool:
        """kube's computePodActions: a running container whose definition changed since it was created (its image,
        by `kubectl set image`) is stopped and started again from the new one, whatever the restart policy."""
        killed = False
        for container in self.pod["spec"].get("containers") or ():
            name = container["name"]
            history = runs.get(name) or []
            if not history or history[0].state != "running":
                continue
            created_from = history[0].labels.get(LABEL_HASH)
            if created_from is None or created_from == container_hash(container):  # None: made before hashes
                continue
            message = f"Container {name} definition changed, will be restarted"
            await self._event("Normal", "Killing", message, self._field_path(name))
            self._redefined.add(name)
            await self._stop_container(container, history[0], self._grace())
            killed = True
        return killed

    async def _kill_unhealthy(self, runs: Runs) -> bool:
        """Stop the containers a liveness or startup probe failed; the restart policy then restarts them."""
        killed = False
        for container in self.pod["spec"].get("containers") or ():
            history = runs.get(container["name"]) or []
            if not history or history[0].state != "running" or history[0].id not in self._unhealthy:
                continue
            run, name = history[0], container["name"]
            kind = self._unhealthy.pop(run.id)
            probe = container.get(f"{kind}Probe") or {}
            grace = probe.get("terminationGracePeriodSeconds", self._grace())
            message = f"Container {name} failed {kind} probe, will be restarted"
            await self._event("Normal", "Killing", message, self._field_path(name))
            await self._stop_container(container, run, grace)
            killed = True
        return killed

    def _cancel_probes(self) -> None:
        for worker in self._probes.values():
            worker.cancel()
        self._probes.clear()

    # -- stopping ----------------------------------------------------------------------------------------------

    async def _terminate(self) -> None:
        """Stop the pod for good (its deletion): its containers within the grace period, then its sandbox and
        files; then report the final status and delete the API object, so that its disappearance means that
        nothing of it is left on the node."""
        self._cancel_probes()
        final = None
        if self.sandbox_id is not None:
            await self._stop_all(await self._runs(), 1 if self.gone else self._grace(), forced=self.gone)
            final = self._status(await self._runs(), terminating=True)
            await self.node.runtime.remove_sandbox(self.sandbox_id)
            self.sandbox_id = None
        self.paths.remove()
        self.node.restarts.forget_prefix(f"{self.uid}/")
        self.node.images.forget_pod(self.uid)
        if final is not None and not self.gone:
            await self._report(final)
        if self.gone:
            return
        meta = self.pod["metadata"]
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        try:
            await self.node.client.delete(PODS, meta["name"], meta["namespace"], **options)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or a new pod of the same name
                raise

    async def _release(self) -> None:
        """A finished pod keeps its status but not its sandbox (its address and processes go)."""
        self._terminal = True
        self._cancel_probes()
        if self.sandbox_id is not None:
            await self.node.runtime.remove_sandbox(self.sandbox_id)
            self.sandbox_id = None

    async def _stop_all(self, runs: Runs, grace: int, forced: bool = False) -> None:
        spec = self.pod["spec"]
        running = [
            (container, runs[container["name"]][0])
            for key in _CONTAINER_LISTS
            for container in spec.get(key) or ()
            if runs.get(container["name"]) and runs[container["name"]][0].state == "running"
        ]
        for container, _ in running:
            name = container["name"]
            await self._event("Normal", "Killing", f"Stopping container {name}", self._field_path(name))
        await asyncio.gather(*(self._stop_container(c, run, grace, forced) for c, run in running))

    async def _stop_container(self, container: Obj, run: ContainerStatus, grace: int, forced: bool = False) -> None:
        """preStop hook (within the grace period), then SIGTERM and SIGKILL after what is left of it."""
        began = time.monotonic()
        hook = (container.get("lifecycle") or {}).get("preStop")
        if hook and not forced and grace > 0:
            verdict, _ = await run_action(hook, self._target(container, run.id), grace)
            if verdict is Verdict.FAILURE:
                field_path = self._field_path(container["name"])
                await self._event("Warning", "FailedPreStopHook", "PreStopHook failed", field_path)
        left = grace - math.floor(time.monotonic() - began)
        await self.node.runtime.stop_container(run.id, left if forced else max(left, MIN_STOP_GRACE))

    # -- status ------------------------------------------------------------------------------------------------

    def _status(self, runs: Runs, terminating: bool = False, failure: tuple[str, str] | None = None) -> Obj:
        for history in runs.values():
            for run in history:
                if run.state == "exited" and run.id not in self._messages:
                    self._messages[run.id] = self._termination_message(run)
        api = self.pod.get("status") or {}
        return pod_status(
            PodView(
                pod=self.pod,
                runs=runs,
                runtime_scheme=self.node.runtime_scheme,
                host_ip=self.node.host_ip,
                pod_ips=[self.pod_ip] if self.pod_ip else [],
                sandbox_ready=self.sandbox_id is not None,
                start_time=api.get("startTime") or now_rfc3339(),
                waiting=self._waiting,
                ready=self._ready,
                started=self._started,
                messages=self._messages,
                terminating=terminating,
                failure=failure,
            )
        )

    async def _report(self, status: Obj) -> None:
        """PATCH pods/{name}/status when what kubelet owns differs from what the API has (each change once:
        what the server stores may differ in form from what was sent)."""
        if status == self._sent:
            return
        current = self.pod.get("status") or {}
        foreign = [c for c in current.get("conditions") or () if c.get("type") not in KUBELET_CONDITIONS]
        status = {**status, "conditions": status["conditions"] + foreign}
        changes = {k: v for k, v in status.items() if current.get(k) != v}
        for key in ("podIP", "podIPs", "initContainerStatuses", "ephemeralContainerStatuses", "reason", "message"):
            if key in current and key not in status:
                changes[key] = None
        if not changes:
            return
        meta = self.pod["metadata"]
        patch = {"metadata": {"uid": self.uid}, "status": changes}
        try:
            updated = await self.node.client.patch(PODS, meta["name"], patch, meta["namespace"], subresource="status")
        except ApiException as exc:
            if exc.status == 404:
                self.deleted()
                return
            raise
        self._sent = status
        if _rv(updated) > _rv(self.pod):
            self.pod = updated

    def _termination_message(self, run: ContainerStatus) -> str:
        """What the container wrote to its terminationMessagePath, or (FallbackToLogsOnError) its log's tail."""
        container = self._container(run.name)
        if container is None:
            return ""
        attempt = attempt_of(run)
        message = _read_tail(self.paths.termination_log(run.name, attempt), MAX_MESSAGE)
        if not message and run.exit_code and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            lines = _read_tail(self.paths.container_log(run.name, attempt), 64 * 1024).splitlines()
            message = "\n".join(line.split(" ", 3)[-1] for line in lines[-FALLBACK_LINES:])[-FALLBACK_BYTES:]
        return message

    # -- helpers -----------------------------------------------------------------------------------------------

    def _grace(self) -> int:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        return max(int(grace), 0)

    def _deadline_left(self) -> float | None:
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        started = _epoch((self.pod.get("status") or {}).get("startTime"))
        if deadline is None or started is None:
            return None
        return started + deadline - time.time()

    def _backoff_retry(self) -> float:
        delay, self._retry = self._retry, min(self._retry * 2, RETRY_MAX)
        return delay

    def _addresses(self) -> PodAddresses:
        return PodAddresses(tuple([self.pod_ip] if self.pod_ip else ()), self.node.host_ip)

    def _target(self, container: Obj, container_id: str) -> ActionTarget:
        return ActionTarget(self.node.runtime, container, container_id, self.pod_ip or "", self.node.http)

    def _container(self, name: str) -> Obj | None:
        spec = self.pod["spec"]
        everyone = [c for key in _CONTAINER_LISTS for c in spec.get(key) or ()]
        return next((c for c in everyone if c["name"] == name), None)

    def _field_path(self, name: str) -> str:
        """The event's fieldPath for a container: spec.containers{name}, spec.initContainers{name} or
        spec.ephemeralContainers{name}."""
        spec = self.pod["spec"]
        key = next((k for k in _CONTAINER_LISTS if any(c["name"] == name for c in spec.get(k) or ())), "containers")
        return f"spec.{key}{{{name}}}"

    def _api_container_status(self, name: str) -> Obj:
        status = self.pod.get("status") or {}
        statuses = (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
        return next((s for s in statuses if s.get("name") == name), {})

    def _name(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    def _name_uid(self) -> str:
        """format.Pod: name_namespace(uid)."""
        meta = self.pod["metadata"]
        return f"{meta['name']}_{meta['namespace']}({self.uid})"

    async def _event(self, type_: str, reason: str, message: str, field_path: str | None = None) -> None:
        """Record an event in the background, as kubelet's broadcaster does: a write never delays the sync."""
        if self.node.options.record_events:
            ref = {"kind": "Pod", "apiVersion": "v1", "metadata": self.pod["metadata"]}
            write = self.node.recorder.event(ref, type_, reason, message, field_path)
            task = asyncio.get_running_loop().create_task(write)
            self.node.events_in_flight.add(task)
            task.add_done_callback(self.node.events_in_flight.discard)

    async def _warn(self, reason: str, message: str) -> None:
        await self._event("Warning", reason, message)


def _target_id(container: Obj, runs: Runs) -> str:
    """The running container an ephemeral container targets (targetContainerName), or ""."""
    history = runs.get(container.get("targetContainerName") or "") or []
    return history[0].id if history and history[0].state == "running" else ""


def _newest(runs: Runs) -> dict[str, str]:
    """Container name -> id of its newest run."""
    return {name: history[0].id for name, history in runs.items() if history}


def _rv(pod: Obj) -> int:
    try:
        return int(pod["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _read_tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - limit, 0))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
