"""A pod's status as kubelet reports it, computed from what the runtime says (generateAPIPodStatus):
container statuses with state/lastState/ready/started/restartCount, the phase (getPhase) and the conditions.

Pure functions over plain data; the pod worker gathers the inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shim.kubelet.specs import LABEL_IMAGE, LABEL_RESTART_COUNT
from shim.machinery.timefmt import format_time, now_rfc3339
from shim.runtime.base import ContainerStatus, SandboxStatus

Obj = dict[str, Any]

_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)").fullmatch
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
# the conditions kubelet owns, in the order kubelet lists them
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def attempt_of(run: ContainerStatus) -> int:
    """Which run of its container this is (its restartCount when it started)."""
    try:
        return int(run.labels.get(LABEL_RESTART_COUNT, "0"))
    except ValueError:
        return 0


def runs_by_container(sandbox: SandboxStatus | None) -> dict[str, list[ContainerStatus]]:
    """Each container's runs in the sandbox, newest first."""
    runs: dict[str, list[ContainerStatus]] = {}
    for run in sandbox.containers if sandbox else ():
        runs.setdefault(run.name, []).append(run)
    for history in runs.values():
        history.sort(key=lambda r: (attempt_of(r), r.started_at or ""), reverse=True)
    return runs


def should_restart(runs: list[ContainerStatus], restart_policy: str) -> bool:
    """ShouldContainerBeRestarted: never started, or ended in a way the restart policy restarts."""
    if not runs:
        return True
    latest = runs[0]
    if latest.state == "running":
        return False
    if latest.state != "exited":
        return True  # created but never started, or unknown
    if restart_policy == "Never":
        return False
    return restart_policy != "OnFailure" or latest.exit_code != 0


def init_succeeded(runs: list[ContainerStatus]) -> bool:
    return bool(runs) and runs[0].state == "exited" and runs[0].exit_code == 0


@dataclass
class PodView:
    """Everything the status is computed from."""

    pod: Obj
    runs: dict[str, list[ContainerStatus]]
    runtime_scheme: str  # containerID prefix: "podman", "fake"
    host_ip: str
    pod_ips: list[str]
    sandbox_ready: bool
    start_time: str | None
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # container -> (reason, message)
    ready: dict[str, bool] = field(default_factory=dict)  # container id -> readiness probe result
    started: dict[str, bool] = field(default_factory=dict)  # container id -> startup probe result
    messages: dict[str, str] = field(default_factory=dict)  # container id -> termination message
    terminating: bool = False  # the pod is being stopped for good: nothing restarts (podIsTerminal)
    failure: tuple[str, str] | None = None  # pod-level (reason, message), e.g. DeadlineExceeded


def pod_status(view: PodView) -> Obj:
    """The status fields kubelet owns, as they should be now."""
    pod, spec = view.pod, view.pod["spec"]
    old = pod.get("status") or {}
    has_init = bool(spec.get("initContainers"))
    init_statuses = [_container_status(view, c, has_init, init=True) for c in spec.get("initContainers") or ()]
    statuses = sorted(
        (_container_status(view, c, has_init, init=False) for c in spec.get("containers") or ()),
        key=lambda s: s["name"],
    )
    phase = "Failed" if view.failure else pod_phase(spec, init_statuses, statuses, view.terminating)
    status: Obj = {
        "phase": phase,
        "conditions": _conditions(view, phase, init_statuses, statuses, old.get("conditions") or []),
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": view.start_time,
        "containerStatuses": statuses,
    }
    if view.pod_ips:
        status["podIP"] = view.pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in view.pod_ips]
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if spec.get("ephemeralContainers"):  # kept out of the phase and conditions: a debugger decides neither
        ephemeral = [_container_status(view, c, False, init=False) for c in spec["ephemeralContainers"]]
        for debugger in ephemeral:
            debugger["ready"] = False  # never probed, never counted as ready (kube leaves it false)
        status["ephemeralContainerStatuses"] = sorted(ephemeral, key=lambda s: s["name"])
    if view.failure:
        status["reason"], status["message"] = view.failure
    return status


def pod_phase(spec: Obj, init_statuses: list[Obj], statuses: list[Obj], terminating: bool) -> str:
    """kubelet's getPhase (restartable init containers, i.e. sidecars, are not modelled)."""
    policy = spec.get("restartPolicy", "Always")
    pending_init = failed_init = 0
    for status in init_statuses:
        state, last = status["state"], status["lastState"]
        if "running" in state:
            pending_init += 1
        elif "terminated" in state:
            failed_init += state["terminated"]["exitCode"] != 0
        elif "terminated" in last:
            failed_init += last["terminated"]["exitCode"] != 0
        else:
            pending_init += 1
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state = status["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"]["exitCode"] == 0
        elif "terminated" in status["lastState"]:
            stopped += 1
        else:
            waiting += 1
    if failed_init and policy == "Never":
        return "Failed"
    if (pending_init and not any(_has_started(s) for s in statuses)) or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if terminating:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _container_status(view: PodView, container: Obj, has_init: bool, init: bool) -> Obj:
    name = container["name"]
    runs = view.runs.get(name, [])
    default_reason = "PodInitializing" if has_init else "ContainerCreating"
    status: Obj = {
        "name": name,
        "state": {"waiting": {"reason": default_reason}},
        "lastState": {},
        "ready": False,
        "restartCount": 0,
        "image": container["image"],
        "imageID": "",
        "started": False,
    }
    if runs:
        latest = runs[0]
        status["restartCount"] = attempt_of(latest)
        status["image"] = latest.labels.get(LABEL_IMAGE, container["image"])  # what runs, until the new one does
        status["imageID"] = latest.image_id
        status["containerID"] = f"{view.runtime_scheme}://{latest.id}"
        status["state"] = _state(view, latest) or status["state"]
        if len(runs) > 1 and runs[1].state == "exited":
            status["lastState"] = _state(view, runs[1])
        running = latest.state == "running"
        started = running and view.started.get(latest.id, "startupProbe" not in container)
        status["started"] = started
        if init:
            status["ready"] = init_succeeded(runs)
        else:
            status["ready"] = started and view.ready.get(latest.id, "readinessProbe" not in container)
    reason = view.waiting.get(name)
    policy = view.pod["spec"].get("restartPolicy", "Always")
    restarts = not view.terminating and should_restart(runs, policy) and not (init and init_succeeded(runs))
    if reason and restarts:
        if "terminated" in status["state"]:
            status["lastState"] = status["state"]
        status["state"] = {"waiting": {"reason": reason[0], **({"message": reason[1]} if reason[1] else {})}}
    return status


def _state(view: PodView, run: ContainerStatus) -> Obj | None:
    if run.state == "running":
        return {"running": _present({"startedAt": _seconds(run.started_at)})}
    if run.state != "exited":
        return None
    code = run.exit_code or 0
    terminated = {
        "containerID": f"{view.runtime_scheme}://{run.id}",
        "exitCode": code,
        "finishedAt": _seconds(run.finished_at),
        "reason": "OOMKilled" if run.oom_killed else ("Completed" if code == 0 else "Error"),
        "startedAt": _seconds(run.started_at),
    }
    if view.messages.get(run.id):
        terminated["message"] = view.messages[run.id]
    return {"terminated": _present(terminated)}


def _present(fields: Obj) -> Obj:
    """Without the fields the runtime could not tell (an API status never carries nulls here)."""
    return {k: v for k, v in fields.items() if v is not None}


def _conditions(view: PodView, phase: str, init_statuses: list[Obj], statuses: list[Obj], old: list[Obj]) -> list[Obj]:
    spec = view.pod["spec"]
    make = _Conditions(old)
    incomplete = [s["name"] for s in init_statuses if not s["ready"]]
    if phase == "Succeeded":
        initialized = make("Initialized", True, "PodCompleted")
    elif incomplete and not any(_has_started(s) for s in statuses):
        message = f"containers with incomplete status: [{' '.join(incomplete)}]"
        initialized = make("Initialized", False, "ContainersNotInitialized", message)
    else:
        initialized = make("Initialized", True)
    unready = [s["name"] for s in sorted(statuses, key=lambda s: _spec_index(spec, s["name"])) if not s["ready"]]
    if phase in TERMINAL_PHASES:
        containers_ready = make("ContainersReady", False, "PodCompleted" if phase == "Succeeded" else "PodFailed")
    elif unready:
        message = f"containers with unready status: [{' '.join(unready)}]"
        containers_ready = make("ContainersReady", False, "ContainersNotReady", message)
    else:
        containers_ready = make("ContainersReady", True)
    return [
        make("PodReadyToStartContainers", view.sandbox_ready and phase not in TERMINAL_PHASES),
        initialized,
        _pod_ready(make, containers_ready, spec),
        containers_ready,
        make("PodScheduled", True),
    ]


class _Conditions:
    """Makes conditions that keep their lastTransitionTime while their status stays the same."""

    def __init__(self, old: list[Obj]) -> None:
        self.previous = {c.get("type"): c for c in old}

    def __call__(self, kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        value = "True" if ok else "False"
        before = self.previous.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == value else None
        made: Obj = {"type": kind, "status": value, "lastTransitionTime": since or now_rfc3339()}
        if reason:
            made["reason"] = reason
        if message:
            made["message"] = message
        return made


def _pod_ready(make: _Conditions, containers_ready: Obj, spec: Obj) -> Obj:
    """Ready = ContainersReady and every readiness gate's condition True."""
    if containers_ready["status"] != "True":
        return make("Ready", False, containers_ready.get("reason", ""), containers_ready.get("message", ""))
    for gate in spec.get("readinessGates") or ():
        kind = gate.get("conditionType", "")
        gate_condition = make.previous.get(kind)
        if gate_condition is None:
            message = f'corresponding condition of pod readiness gate "{kind}" does not exist.'
            return make("Ready", False, "ReadinessGatesNotReady", message)
        if gate_condition.get("status") != "True":
            message = f'the status of pod readiness gate "{kind}" is not "True", but {gate_condition.get("status")}'
            return make("Ready", False, "ReadinessGatesNotReady", message)
    return make("Ready", True)


def _has_started(status: Obj) -> bool:
    """HasAnyRegularContainerStarted, for one container: it runs, ran, or is waiting to run again."""
    return "waiting" not in status["state"] or "terminated" in status["lastState"]


def _spec_index(spec: Obj, name: str) -> int:
    return next((i for i, c in enumerate(spec.get("containers") or ()) if c["name"] == name), 0)


def _seconds(stamp: str | None) -> str | None:
    """An RFC 3339 time (any fraction, any offset) at the second precision the API shows, in UTC."""
    if not stamp:
        return None
    match = _STAMP(stamp)
    if match is None:
        return stamp
    base, offset = match.group(1), match.group(2)
    if offset in ("Z", "+00:00"):
        return base + "Z"
    return format_time(datetime.fromisoformat(base + offset))
