"""The Pod Table printer: kube-apiserver's `printPod` (`pkg/printers/internalversion/printers.go`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from shim.apiserver.printers import (
    AGE_COLUMN,
    EMPTY,
    NAME_COLUMN,
    Cells,
    Column,
    Obj,
    column,
    human_duration,
    since,
    timestamp_us,
)

POD_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    column("Status", "The aggregate status of the containers in this pod."),
    column(
        "Restarts",
        (
            "The number of times the containers in this pod have been restarted and when the last "
            "container in this pod has restarted."
        ),
    ),
    AGE_COLUMN,
    column(
        "IP",
        ("podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        1,
    ),
    column(
        "Node",
        (
            "NodeName indicates in which node this pod is scheduled. If empty, this pod is a "
            "candidate for scheduling by the scheduler defined in schedulerName. Once this field is "
            "set, the kubelet for this node becomes responsible for the lifecycle of this pod. This "
            "field should not be used to express a desire for the pod to be scheduled on a specific "
            "node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"
        ),
        1,
    ),
    column(
        "Nominated Node",
        (
            "nominatedNodeName is set only when this pod preempts other pods on the node, but it "
            "cannot be scheduled right away as preemption victims receive their graceful termination "
            "periods. This field does not guarantee that the pod will be scheduled on this node. "
            "Scheduler may decide to place the pod elsewhere if other nodes become available sooner. "
            "Scheduler may also decide to give the resources on this node to a higher priority pod "
            "that is created after preemption. As a result, this field may be different than "
            "PodSpec.nodeName when the pod is scheduled."
        ),
        1,
    ),
    column(
        "Readiness Gates",
        (
            "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready "
            "when all its containers are ready AND all conditions specified in the readiness gates "
            'have status equal to "True" More info: '
            "https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates"
        ),
        1,
    ),
]

_NODE_LOST = "NodeLost"  # node.NodeUnreachablePodReason


def pod_cells(pod: Obj, now_us: int) -> Cells:
    """NAME READY STATUS RESTARTS AGE IP NODE NOMINATED-NODE READINESS-GATES, with printPod's status rules."""
    spec = pod.get("spec") or EMPTY
    status = pod.get("status") or EMPTY
    meta = pod.get("metadata") or EMPTY
    conditions = status.get("conditions") or ()
    init_specs = spec.get("initContainers") or ()
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"} if init_specs else ()
    total = len(spec.get("containers") or ()) + len(sidecars)

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in conditions:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_statuses = status.get("initContainerStatuses")
    init = _init_containers(init_statuses, len(init_specs), sidecars) if init_statuses else _NO_INIT
    blocked, ready, restarts, last_restart, sidecar_restarts, last_sidecar_restart = init
    if blocked is not None:
        reason = blocked
    if blocked is None or _condition_true(conditions, "Initialized"):
        # sidecars restart alongside the app containers, so only their restarts count from here on
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for container in reversed(status.get("containerStatuses") or ()):
            restarts += container.get("restartCount") or 0
            if container.get("lastState"):
                finished = _last_finished(container)
                if finished is not None and (last_restart is None or finished > last_restart):
                    last_restart = finished
            state = container.get("state") or EMPTY
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated)
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # a pod whose last container completed while another still runs is Running (or NotReady)
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") is not None:
        if status.get("reason") == _NODE_LOST:
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now_us - last_restart)} ago)"
    pod_ips = status.get("podIPs")
    gates = spec.get("readinessGates")
    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        since(meta.get("creationTimestamp"), now_us),
        (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        _readiness_gates(gates, conditions) if gates else "<none>",
    ]


InitProgress = tuple[str | None, int, int, int | None, int, int | None]
_NO_INIT: InitProgress = (None, 0, 0, None, 0, None)


def _init_containers(statuses: list[Obj], declared: int, sidecars: Collection[str]) -> InitProgress:
    """Walk init containers in order up to the first unfinished one.

    Returns the blocking reason (`Init:1/2`, `Init:CrashLoopBackOff`, ... or None when all are done), the
    ready sidecars, and the restarts and latest restart time, of all walked and of the sidecars alone.
    """
    ready = restarts = sidecar_restarts = 0
    last_restart = last_sidecar_restart = None
    for index, container in enumerate(statuses):
        count = container.get("restartCount") or 0
        finished = _last_finished(container)
        restarts += count
        if finished is not None and (last_restart is None or finished > last_restart):
            last_restart = finished
        is_sidecar = container.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += count
            if finished is not None and (last_sidecar_restart is None or finished > last_sidecar_restart):
                last_sidecar_restart = finished
        state = container.get("state") or EMPTY
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and (terminated.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and container.get("started"):
            ready += 1 if container.get("ready") else 0
            continue
        if terminated is not None:
            blocked = "Init:" + _terminated_reason(terminated)
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            blocked = "Init:" + waiting["reason"]
        else:
            blocked = f"Init:{index}/{declared}"
        return blocked, ready, restarts, last_restart, sidecar_restarts, last_sidecar_restart
    return None, ready, restarts, last_restart, sidecar_restarts, last_sidecar_restart


def pod_row_conditions(pod: Obj) -> list[dict[str, str]] | None:
    """The row's `conditions`: a finished pod is marked Completed (kubectl may hide such rows)."""
    phase = (pod.get("status") or EMPTY).get("phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return None


_POD_SUCCEEDED = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_POD_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]


def _terminated_reason(terminated: Obj) -> str:
    if terminated.get("reason"):
        return terminated["reason"]
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode') or 0}"


def _last_finished(container: Obj) -> int | None:
    terminated = (container.get("lastState") or EMPTY).get("terminated")
    finished = terminated.get("finishedAt") if terminated else None
    return timestamp_us(finished) if isinstance(finished, str) and finished else None


def _condition_true(conditions: Iterable[Obj], kind: str) -> bool:
    """A condition of this type has status True (conditions are unique per type in a valid pod)."""
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _readiness_gates(gates: list[Obj], conditions: Iterable[Obj]) -> str:
    by_type: dict[str, Obj] = {}
    for condition in conditions:
        by_type.setdefault(condition.get("type", ""), condition)
    passing = sum(1 for g in gates if (by_type.get(g.get("conditionType", "")) or EMPTY).get("status") == "True")
    return f"{passing}/{len(gates)}"
