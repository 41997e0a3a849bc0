"""A busybox pod that runs this machine's Python: the host's interpreter and this virtual environment mounted
read-only at the same paths (busybox has no Python), so a test can run the official client, or any script, in a
real pod. The node must allow those host paths (`--allowed-host-path`, see `HOST_PATH_FLAGS`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.images import TEST_IMAGE

Obj = dict[str, Any]

HOST_PATHS = ("/usr", "/lib", "/lib64", sys.prefix)
HOST_PATH_FLAGS = tuple(flag for path in HOST_PATHS for flag in ("--allowed-host-path", path))
PYTHON = str(Path(sys.prefix) / "bin" / "python")


def python_pod(name: str, script: str, volumes: Sequence[Obj] = (), mounts: Sequence[Obj] = (), **spec: Any) -> Obj:
    """A run-once pod whose one container runs `script` with the host's Python; `volumes`/`mounts` are added."""
    all_volumes, all_mounts = list(volumes), list(mounts)
    for i, path in enumerate(HOST_PATHS):
        all_volumes.append({"name": f"host-{i}", "hostPath": {"path": path, "type": "Directory"}})
        all_mounts.append({"name": f"host-{i}", "mountPath": path, "readOnly": True})
    container = {"name": "python", "image": TEST_IMAGE, "imagePullPolicy": "Never",
                 "command": [PYTHON, "-c", script], "volumeMounts": all_mounts}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], "volumes": all_volumes, "restartPolicy": "Never", **spec}}  # fmt: skip
