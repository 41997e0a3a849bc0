"""Run a `podman system service` on a unix socket (when the node agent is not given one), for as long as the
agent runs and not a moment longer.

The service reads kube-shim's own containers.conf (runc, explicit ulimits, cgroupfs, file events), which
this package ships beside this module, unless `CONTAINERS_CONF` in the environment names another one. Containers
outlive the service: conmon supervises them, and a new service on the same storage sees them again.

The service never outlives the agent, however the agent ends (SIGKILL, OOM, a crash): it is started with the
Linux parent-death signal, so the kernel sends it SIGTERM when its parent goes. The "parent" is the thread that
forked it, so one supervisor thread forks it and lives exactly as long as the service should; that thread also
starts a new service when the running one dies (killed, crashed), with back-off. The service's pid is written to
`<work_dir>/podman-service.pid` for operators.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
READY_DEADLINE = 20.0
STOP_DEADLINE = 10.0
RESTART_DELAY_MIN, RESTART_DELAY_MAX = 0.5, 30.0
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the NUL
PR_SET_PDEATHSIG = 1

log = logging.getLogger("shim.runtime.podman")


class PodmanService:
    """One `podman system service --time=0` process listening on `socket_path`, restarted when it dies.

    `env` is added to the process environment last, so a caller (a test) may point CONTAINERS_CONF and
    CONTAINERS_STORAGE_CONF at an isolated root.
    """

    def __init__(self, socket_path: Path, work_dir: Path, env: dict[str, str] | None = None) -> None:
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise ValueError(f"podman socket path is longer than {MAX_SOCKET_PATH} bytes: {socket_path}")
        self.socket_path = socket_path
        self.work_dir = work_dir
        self.env = env or {}
        self._process: subprocess.Popen[bytes] | None = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def pid(self) -> int | None:
        """The running service's pid (None when there is none)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def pid_file(self) -> Path:
        return self.work_dir / "podman-service.pid"

    def start(self) -> None:
        """Start the service and return once its socket accepts connections (or raise RuntimeError)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        first: list[BaseException | None] = []
        started = threading.Event()

        def report(error: BaseException | None) -> None:
            first.append(error)
            started.set()

        self._supervisor = threading.Thread(target=self._supervise, args=(report,), name="podman-service", daemon=True)
        self._supervisor.start()
        started.wait()
        if first[0] is not None:
            self._supervisor.join()
            raise first[0]

    def stop(self) -> None:
        """SIGTERM the service (SIGKILL after a deadline) and end its supervisor. Containers keep running."""
        self._stopping.set()
        _terminate(self._process)
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join()
        self._supervisor = None

    def _supervise(self, report: Callable[[BaseException | None], None]) -> None:
        """The supervisor thread: start the service, and start it again whenever it dies, until stopped."""
        delay = RESTART_DELAY_MIN
        try:
            self._launch()
        except BaseException as error:  # handed to start(), which raises it
            report(error)
            return
        report(None)
        while not self._stopping.is_set():
            assert self._process is not None
            began = time.monotonic()
            code = self._process.wait()
            if self._stopping.is_set():
                break
            if time.monotonic() - began > RESTART_DELAY_MAX:
                delay = RESTART_DELAY_MIN  # it ran a good while: this is not a crash loop
            log.warning("podman system service exited with %s; starting a new one in %.1f s", code, delay)
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, RESTART_DELAY_MAX)
            try:
                self._launch()
            except Exception as error:  # the supervisor must outlive any failed start: it retries, backing off
                log.warning("could not start podman system service: %s", error)
        _terminate(self._process)  # one started while stop() was under way
        self.pid_file.unlink(missing_ok=True)

    def _launch(self) -> None:
        """Fork the service (from the supervisor thread: its parent-death signal is tied to this thread)."""
        self.socket_path.unlink(missing_ok=True)
        env = {**os.environ, **self.env}
        env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
        with (self.work_dir / "podman-service.log").open("ab") as log_file:
            self._process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{self.socket_path}"],
                env=env,
                cwd=self.work_dir,  # conmon drops an `oom` file into the service's cwd
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the agent must not kill the service first
                preexec_fn=_die_with_parent(os.getpid()),  # only prctl runs between fork and exec
            )
        self.pid_file.write_text(f"{self._process.pid}\n")
        self._wait_ready(self._process)

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"podman system service exited with {process.returncode}; "
                    f"see {self.work_dir / 'podman-service.log'}"
                )
            if _accepts_connections(self.socket_path):
                return
            time.sleep(0.02)  # the service is ready in 40-80 ms; nothing to wait on but the socket
        _terminate(process)
        raise RuntimeError(f"podman system service did not listen on {self.socket_path} in {READY_DEADLINE} s")


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn asking the kernel to SIGTERM the child when the forking thread ends (the libc function is
    looked up here, before the fork, so the child only makes one call)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)

    return set_parent_death_signal


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _accepts_connections(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
