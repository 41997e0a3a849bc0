"""A real etcd member on free loopback ports in its own directory, for tests and benchmarks.

Synchronous on purpose: a session-scoped pytest fixture and the benchmark can both use it without
sharing an event loop with the code under test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ETCD_BINARY = shutil.which("etcd")
STARTUP_DEADLINE = 30.0
STOP_DEADLINE = 10.0


class EtcdServer:
    """One single-member etcd cluster listening on 127.0.0.1; use as a context manager or start/stop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.address = ""  # host:port of the client URL
        self._process: subprocess.Popen[bytes] | None = None
        self._ports: tuple[int, ...] = ()

    def start(self) -> str:
        """Start etcd and return its client URL once `/health` answers true."""
        if ETCD_BINARY is None:
            raise RuntimeError("the etcd binary is not installed (Debian package etcd-server)")
        # a restart (start after stop) keeps the ports, so clients reconnect to the same address
        client_port, peer_port = self._ports = self._ports or tuple(free_ports(2))
        self.address = f"127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "etcd.log").open("wb")
        self._process = subprocess.Popen(
            [
                ETCD_BINARY,
                "--name=default",
                f"--data-dir={self.directory / 'data'}",
                f"--listen-client-urls={self.endpoint}",
                f"--advertise-client-urls={self.endpoint}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--logger=zap",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_healthy()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        """The client URL."""
        return f"http://{self.address}"

    def stop(self) -> None:
        """Stop etcd (SIGTERM, then SIGKILL after a deadline)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self._process.returncode}:\n{self._log_tail()}")
            if _is_healthy(self.endpoint):
                return
            time.sleep(0.05)  # polling a child process we do not control: no event to wait on
        self.stop()
        raise RuntimeError(f"etcd not healthy after {STARTUP_DEADLINE}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return (self.directory / "etcd.log").read_text(errors="replace")[-2000:]


def _is_healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/health", timeout=1) as response:
            return b'"true"' in response.read()
    except (OSError, urllib.error.URLError):
        return False


def free_ports(count: int) -> list[int]:
    """Ports the kernel considers free right now (all held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
