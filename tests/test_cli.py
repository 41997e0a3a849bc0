"""`kube-shim up` refuses what it cannot do with a message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cluster import Cluster, free_port


def up(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shim.cli", "up", "--data-dir", str(data_dir), "--kubeconfig",
               str(data_dir.parent / "second-kubeconfig"), "--nodes", "0", *args]  # fmt: skip
    env = dict(os.environ, HOME=str(data_dir.parent))
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_a_second_up_on_the_same_data_dir_is_refused(cluster: Cluster) -> None:
    result = up(cluster.data_dir / "state", "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "in use by another process" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_port_in_use_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    result = up(tmp_path / "state", "--listen", f"127.0.0.1:{cluster.port}")
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{cluster.port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_several_podman_nodes_in_one_process_are_refused(tmp_path: Path) -> None:
    result = up(tmp_path / "state", "--nodes", "3")
    assert result.returncode == 2
    assert "needs --runtime fake" in result.stderr
