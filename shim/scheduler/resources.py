"""What a pod asks for and what a node offers, as integers (milli-CPU, bytes, counts).

Follows `k8s.io/component-helpers/resource.PodRequests`: containers add up, each init container runs alone
(so the pod needs the largest of them), restartable init containers (sidecars) keep running alongside
everything started after them, and the RuntimeClass overhead is added on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from shim.machinery.quantity import QuantityError, parse_quantity

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: what scoring assumes for a container without
# requests, so that many best-effort pods do not all pile onto one node
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Obj = dict[str, Any]


@dataclass(slots=True)
class Resources:
    """An amount of each resource; `scalars` holds extended resources and hugepages by name."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    scalars: dict[str, int] = field(default_factory=dict)

    def add(self, other: Resources, sign: int = 1) -> None:
        """In place: self += sign * other."""
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        for name, value in other.scalars.items():
            self.scalars[name] = self.scalars.get(name, 0) + sign * value

    def at_least(self, other: Resources) -> None:
        """In place: each resource becomes the larger of the two (an init container's turn)."""
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral_storage = max(self.ephemeral_storage, other.ephemeral_storage)
        for name, value in other.scalars.items():
            self.scalars[name] = max(self.scalars.get(name, 0), value)

    def copy(self) -> Resources:
        return Resources(self.milli_cpu, self.memory, self.ephemeral_storage, dict(self.scalars))

    @property
    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage or any(self.scalars.values()))


def resource_list(values: Obj | None) -> Resources:
    """A ResourceList (`{"cpu": "500m", "memory": "1Gi"}`) as integers; `pods` is not a resource here."""
    out = Resources()
    for name, raw in (values or {}).items():
        if name == CPU:
            out.milli_cpu = milli_value(raw)
        elif name == MEMORY:
            out.memory = value(raw)
        elif name == EPHEMERAL_STORAGE:
            out.ephemeral_storage = value(raw)
        elif name != PODS:
            out.scalars[name] = value(raw)
    return out


def pod_requests(spec: Obj) -> Resources:
    """PodRequests: what the pod needs reserved on its node."""
    return _pod_total(spec, lambda c: resource_list((c.get("resources") or {}).get("requests")))


def pod_non_zero_requests(spec: Obj) -> tuple[int, int]:
    """(milli-CPU, memory) with the scheduler's defaults for containers that request none; for scoring."""
    total = _pod_total(spec, _non_zero_container_requests)
    return total.milli_cpu, total.memory


def node_allocatable(node: Obj) -> tuple[Resources, int]:
    """A node's status.allocatable (capacity when allocatable is missing) and how many pods it takes."""
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    pods = allocatable.get(PODS)
    return resource_list(allocatable), value(pods) if pods is not None else 0


@lru_cache(maxsize=4096)
def value(raw: Any) -> int:
    """Quantity.Value(): rounded up to a whole unit; an unreadable quantity counts as 0."""
    try:
        return -(-parse_quantity(raw).value // 1)
    except QuantityError:
        return 0


@lru_cache(maxsize=4096)
def milli_value(raw: Any) -> int:
    """Quantity.MilliValue(): thousandths, rounded up."""
    try:
        return -(-(parse_quantity(raw).value * 1000) // 1)
    except QuantityError:
        return 0


def _pod_total(spec: Obj, requests_of: Any) -> Resources:
    total = Resources()
    for container in spec.get("containers") or ():
        total.add(requests_of(container))
    sidecars = Resources()  # restartable init containers started so far keep running
    init_peak = Resources()
    for container in spec.get("initContainers") or ():
        requests = requests_of(container)
        if container.get("restartPolicy") == "Always":
            total.add(requests)
            sidecars.add(requests)
            running = sidecars.copy()
        else:
            running = sidecars.copy()
            running.add(requests)
        init_peak.at_least(running)
    total.at_least(init_peak)
    total.add(resource_list(spec.get("overhead")))
    return total


def _non_zero_container_requests(container: Obj) -> Resources:
    requests = (container.get("resources") or {}).get("requests") or {}
    out = resource_list(requests)
    if CPU not in requests:
        out.milli_cpu = DEFAULT_MILLI_CPU_REQUEST
    if MEMORY not in requests:
        out.memory = DEFAULT_MEMORY_REQUEST
    return out
