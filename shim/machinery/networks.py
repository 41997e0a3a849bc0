"""The cluster's default address ranges, shared by the API server (which allocates ClusterIPs), the
load-balancer controller and the service proxy. Each is a flag of `kube-shim up` and `kube-shim node`."""

from __future__ import annotations

import ipaddress

SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")  # kube's --service-cluster-ip-range default
LOAD_BALANCER_RANGE = ipaddress.IPv4Network("10.112.0.0/24")  # just after the service CIDR


def kubernetes_service_ip(service_cidr: ipaddress.IPv4Network) -> str:
    """The `kubernetes` Service's ClusterIP: the first address of the service CIDR, as in kube."""
    return str(service_cidr.network_address + 1)
