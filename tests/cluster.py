"""Start the real `kube-shim up` process for tests and drive it with the real kubectl binaries."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
KUBECTL_VERSIONS = ("1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33")
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """A running `kube-shim up` with its own data dir, port and kubeconfig."""

    data_dir: Path
    port: int
    kubeconfig: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubectl(self, *args: str, version: str = "1.33", stdin: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run the real kubectl of `version` against this cluster."""
        cache = self.data_dir / f"kubecache-{version}"
        cmd = [str(KUBECTL_DIR / f"kubectl.{version}"), "--kubeconfig", str(self.kubeconfig), *args]
        env = dict(os.environ, KUBECACHEDIR=str(cache), HOME=str(self.data_dir))
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_cluster(
    data_dir: Path, port: int | None = None, extra: tuple[str, ...] = (), nodes: tuple[str, ...] = ("--nodes", "0")
) -> Cluster:
    """Launch `kube-shim up` and return once it says it is serving (or fail with its output).

    By default the cluster has no node agents (the control plane alone); pass e.g.
    `nodes=("--runtime", "fake", "--nodes", "3")` for simulated nodes."""
    port = port or free_port()
    kubeconfig = data_dir / "kubeconfig"
    env = dict(os.environ, HOME=str(data_dir), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "shim.cli", "up", "--data-dir", str(data_dir / "state"),
           "--listen", f"127.0.0.1:{port}", "--kubeconfig", str(kubeconfig), *nodes, *extra]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    cluster = Cluster(data_dir, port, kubeconfig, process)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            cluster.output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            cluster.stop()
            raise AssertionError("kube-shim up did not become ready:\n" + "".join(cluster.output)) from None
        if line is None:
            raise AssertionError("kube-shim up exited:\n" + "".join(cluster.output))
        if " is serving " in line:
            return cluster
