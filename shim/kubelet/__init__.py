"""The node agent (kubelet): registers a Node, heartbeats its Lease, runs the pods bound to it."""

from shim.kubelet.config import KubeletOptions
from shim.kubelet.kubelet import Kubelet, run_node

__all__ = ["Kubelet", "KubeletOptions", "run_node"]
