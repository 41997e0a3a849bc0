"""Start and stop a `podman system service` on a unix socket (when the node agent is not given one).

The service reads kube-shim's own containers.conf (runc, explicit ulimits, cgroupfs, file events), which
this package ships beside this module. Containers outlive the service: conmon supervises them, and a new
service on the same storage sees them again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
READY_DEADLINE = 20.0
STOP_DEADLINE = 10.0
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the NUL


class PodmanService:
    """One `podman system service --time=0` process listening on `socket_path`.

    `env` is added to the process environment after CONTAINERS_CONF, so a caller (a test) may point
    CONTAINERS_CONF and CONTAINERS_STORAGE_CONF at an isolated root.
    """

    def __init__(self, socket_path: Path, work_dir: Path, env: dict[str, str] | None = None) -> None:
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise ValueError(f"podman socket path is longer than {MAX_SOCKET_PATH} bytes: {socket_path}")
        self.socket_path = socket_path
        self.work_dir = work_dir
        self.env = env or {}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the service and return once its socket accepts connections (or raise RuntimeError)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), **self.env}
        with (self.work_dir / "podman-service.log").open("ab") as log:
            self._process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{self.socket_path}"],
                env=env,
                cwd=self.work_dir,  # conmon drops an `oom` file into the service's cwd
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the agent must not kill the service first
            )
        self._wait_ready()

    def stop(self) -> None:
        """SIGTERM the service (SIGKILL after a deadline). Containers keep running."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"podman system service exited with {self._process.returncode}; "
                    f"see {self.work_dir / 'podman-service.log'}"
                )
            if _accepts_connections(self.socket_path):
                return
            time.sleep(0.02)  # the service is ready in 40-80 ms; nothing to wait on but the socket
        self.stop()
        raise RuntimeError(f"podman system service did not listen on {self.socket_path} in {READY_DEADLINE} s")


def _accepts_connections(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
