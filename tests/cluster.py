"""Start the real `kube-shim up` process for tests and drive it with the real kubectl binaries."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.prerequisites import kubectl_path

KUBECTL_VERSIONS = ("1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33")
READY_TIMEOUT = 30.0

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 60, what: str = "the condition") -> T:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


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
    reader: LineReader  # its output

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubectl(self, *args: str, version: str = "1.33", stdin: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run the real kubectl of `version` against this cluster."""
        cache = self.data_dir / f"kubecache-{version}"
        cmd = [str(kubectl_path(version)), "--kubeconfig", str(self.kubeconfig), *args]
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
    data_dir: Path,
    port: int | None = None,
    extra: tuple[str, ...] = (),
    nodes: tuple[str, ...] = ("--nodes", "0"),
    env: dict[str, str] | None = None,
    python: str = sys.executable,
) -> Cluster:
    """Launch `kube-shim up` and return once it says it is serving (or fail with its output).

    By default the cluster has no node agents (the control plane alone); pass e.g.
    `nodes=("--runtime", "fake", "--nodes", "3")` for simulated nodes. `env` adds to the environment; `python`
    is the interpreter that runs it (e.g. one of a virtual environment the wheel was installed into)."""
    port = port or free_port()
    kubeconfig = data_dir / "kubeconfig"
    env = dict(os.environ, HOME=str(data_dir), PYTHONUNBUFFERED="1", **(env or {}))
    cmd = [python, "-m", "shim.cli", "up", "--data-dir", str(data_dir / "state"),
           "--listen", f"127.0.0.1:{port}", "--kubeconfig", str(kubeconfig), *nodes, *extra]  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    # run from the data dir: the package must come from where it is installed, never from the checkout
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=data_dir)
    cluster = Cluster(data_dir, port, kubeconfig, process, LineReader(process))
    try:
        cluster.reader.wait_for(" is serving ", READY_TIMEOUT)
    except AssertionError:
        cluster.stop()
        raise AssertionError("kube-shim up did not become ready:\n" + "".join(cluster.reader.seen)) from None
    return cluster


def launch(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    """`kube-shim ARGS` (a component: scheduler, controller-manager, node) as its own process, a client of
    the cluster through its kubeconfig; its output merged into stdout."""
    env = dict(os.environ, HOME=str(cluster.data_dir))
    command = [sys.executable, "-m", "shim.cli", *args, "--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


class LineReader:
    """Lines of a running process, readable with a deadline (no sleeps)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 20) -> str:
        """The first line (not read before) containing `text`; AssertionError when the deadline or EOF comes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {self.seen}") from None
            if line is None:
                raise AssertionError(f"process ended before {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line
