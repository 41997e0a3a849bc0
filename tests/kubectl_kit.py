"""Driving the cluster the way a user does, with the real kubectl: applying manifests, reading objects as JSON,
waiting for pods, running a command in a pod, and what `kubectl debug` says."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.cluster import Cluster

Obj = dict[str, Any]

WAIT_TIMEOUT = "--timeout=60s"


def pod(name: str, containers: list[Obj], **spec: Any) -> Obj:
    """A pod manifest for `kubectl apply` (the scheduler picks the node)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers, **spec}}


def apply(cluster: Cluster, namespace: str, *manifests: Obj) -> None:
    """`kubectl apply` the manifests into the namespace, as one List."""
    listed = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(listed))


def json_of(cluster: Cluster, *args: str) -> Obj:
    """What `kubectl ARGS -o json` prints, parsed."""
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def get(cluster: Cluster, namespace: str, *what: str) -> Obj:
    """`kubectl get WHAT` in the namespace, parsed."""
    return json_of(cluster, "get", *what, "-n", namespace)


def wait_ready(cluster: Cluster, namespace: str, name: str) -> None:
    """`kubectl wait` until the pod is Ready (or fail after WAIT_TIMEOUT)."""
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", namespace, WAIT_TIMEOUT)


def pod_when(cluster: Cluster, namespace: str, name: str, jsonpath: str) -> Obj:
    """The pod once `kubectl wait --for=jsonpath=...` says the path has that value (or, without `=`, exists)."""
    cluster.kubectl("wait", "-n", namespace, f"pod/{name}", WAIT_TIMEOUT, f"--for=jsonpath={jsonpath}")
    return json_of(cluster, "get", "pod", name, "-n", namespace)


def from_pod(cluster: Cluster, namespace: str, pod: str, script: str, check: bool = True) -> str:
    """What `sh -c SCRIPT` prints in the pod (`kubectl exec`)."""
    return cluster.kubectl("exec", pod, "-n", namespace, "--", "sh", "-c", script, check=check).stdout


def debugger_name(debug: subprocess.CompletedProcess[str]) -> str:
    """The name `kubectl debug` gave the ephemeral container (it says so on stdout or, with -i, stderr)."""
    said = debug.stdout + debug.stderr
    assert "Defaulting debug container name to " in said, debug
    name = said.split("Defaulting debug container name to ", 1)[1].split(".\n", 1)[0]
    assert name.startswith("debugger-"), said
    return name
