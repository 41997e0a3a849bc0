"""kube-shim: a Kubernetes-compatible control plane that runs pods as local Podman containers."""

__version__ = "0.1.0"
