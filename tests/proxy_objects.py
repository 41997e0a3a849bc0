"""Services and EndpointSlices as the service proxy reads them, for tests of its ruleset compiler."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

NODE = "node-a"


def service(name: str, cluster_ip: str = "10.96.1.1", ports: list[Obj] | None = None, **spec: Any) -> Obj:
    """A Service in namespace `ns` as the proxy reads it (ports default to http 80/TCP)."""
    status = spec.pop("status", {})
    return {
        "metadata": {"namespace": "ns", "name": name},
        "spec": {"clusterIP": cluster_ip, "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP"}], **spec},
        "status": status,
    }


def endpoint(ip: str, node: str = NODE, ready: bool = True, serving: bool | None = None,
             terminating: bool = False) -> Obj:  # fmt: skip
    """One endpoint of a slice, on `node`; serving follows ready unless given."""
    conditions = {"ready": ready, "serving": ready if serving is None else serving, "terminating": terminating}
    return {"addresses": [ip], "conditions": conditions, "nodeName": node}


def endpoint_slice(service_name: str, endpoints: list[Obj], ports: list[Obj] | None = None, name: str = "") -> Obj:
    """The EndpointSlice of Service `service_name` (ports default to http 8080/TCP)."""
    return {
        "metadata": {"namespace": "ns", "name": name or f"{service_name}-x",
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports or [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }  # fmt: skip
