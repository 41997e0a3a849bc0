"""The downward API: pod fields and container resources as strings, for env vars and downwardAPI volumes."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from shim.machinery.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]").fullmatch
_DEFAULTED_BY_NODE = ("cpu", "memory", "ephemeral-storage")


class DownwardError(Exception):
    """A reference the node cannot resolve (the message is kubelet's)."""


@dataclass(frozen=True)
class PodAddresses:
    """What only the node knows about a pod: its IPs and its host's."""

    pod_ips: tuple[str, ...]
    host_ip: str


def field_value(pod: Obj, path: str, addresses: PodAddresses) -> str:
    """The value of a `fieldRef.fieldPath` (podFieldSelectorRuntimeValue + ExtractFieldPathAsString)."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    match path:
        case "spec.nodeName":
            return spec.get("nodeName", "")
        case "spec.serviceAccountName":
            return spec.get("serviceAccountName", "")
        case "status.hostIP":
            return addresses.host_ip
        case "status.hostIPs":
            return addresses.host_ip
        case "status.podIP":
            return addresses.pod_ips[0] if addresses.pod_ips else ""
        case "status.podIPs":
            return ",".join(addresses.pod_ips)
        case "metadata.name" | "metadata.namespace" | "metadata.uid":
            return meta.get(path.split(".")[1], "")
        case "metadata.labels" | "metadata.annotations":
            return format_map(meta.get(path.split(".")[1]) or {})
    if subscript := _SUBSCRIPT(path):
        return (meta.get(subscript.group(1)) or {}).get(subscript.group(2), "")
    raise DownwardError(f"unsupported fieldPath: {path}")


def format_map(values: dict[str, str]) -> str:
    """fieldpath.FormatMap: `key="value"` lines in key order, values quoted as Go's %q does."""
    return "\n".join(f"{key}={json.dumps(values[key], ensure_ascii=False)}" for key in sorted(values))


def resource_value(selector: Obj, pod: Obj, container: Obj | None, allocatable: dict[str, str]) -> str:
    """The value of a `resourceFieldRef` (ExtractContainerResourceValue): ceil(value / divisor).

    Limits a container leaves out read as the node's allocatable, as kubelet's defaultPodLimitsForDownwardAPI.
    `container` is the one the reference sits in; `selector.containerName` may name another.
    """
    name = selector.get("containerName")
    if name:
        spec = pod["spec"]
        everyone = (spec.get("containers") or []) + (spec.get("initContainers") or [])
        container = next((c for c in everyone if c["name"] == name), None)
    if container is None:
        raise DownwardError(f"container {name} not found")
    kind, _, resource = selector.get("resource", "").partition(".")
    if kind not in ("limits", "requests") or resource not in _DEFAULTED_BY_NODE:
        raise DownwardError(f"unsupported container resource : {selector.get('resource', '')}")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(resource)
    if raw is None and kind == "limits":
        raw = allocatable.get(resource)
    try:
        value = parse_quantity(raw).value if raw is not None else Fraction(0)
        divisor = parse_quantity(selector.get("divisor") or "0").value or Fraction(1)  # zero reads as 1
    except QuantityError as exc:
        raise DownwardError(str(exc)) from None
    if resource == "cpu":  # cpu compares milli-values, memory and storage whole units
        return str(math.ceil(math.ceil(value * 1000) / math.ceil(divisor * 1000)))
    return str(math.ceil(math.ceil(value) / math.ceil(divisor)))
