"""An isolated Podman root for tests: its own storage, state, locks and networks, and its own API service.

Nothing in the host's Podman storage is seen or touched: storage.conf points the graph and run roots into a
private directory, and containers.conf (kube-shim's own, plus the isolation keys) moves the tmp dir, volume
path and network configs there and uses file locks, because a fresh root's first "refresh" frees every lock
in the machine-wide shm segment (ENVIRONMENT.md §1.1).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import podman

from shim.runtime.podman_service import CONTAINERS_CONF, PodmanService
from tests.images import ensure_test_image

PODMAN = shutil.which("podman")
RESET_DEADLINE = 120.0


class PodmanEnv:
    """A private Podman root under a fresh temporary directory, with `podman system service` on a socket there.

    Use as a context manager, or `start()` / `stop()`; `stop()` removes every container, image and network of
    the root and the directory itself.
    """

    def __init__(self) -> None:
        # short and under /tmp: the service socket path must fit in 108 bytes
        self.root = Path(tempfile.mkdtemp(prefix="kshim-podman-"))
        self.socket_path = self.root / "podman.sock"
        self.env = {
            "CONTAINERS_CONF": str(self.root / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf"),
        }
        self.service = PodmanService(self.socket_path, self.root / "service", self.env)

    @property
    def base_url(self) -> str:
        """The podman-py base URL of the service."""
        return f"unix://{self.socket_path}"

    def start(self) -> PodmanEnv:
        """Write the configuration and start the service (removing the root again if that fails)."""
        try:
            self._write_config()
            self.service.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the service, then delete everything in the root (containers, images, networks, the overlay mount)."""
        self.service.stop()
        try:
            subprocess.run(
                [PODMAN or "podman", "system", "reset", "-f"],
                env={**os.environ, **self.env},
                cwd=self.root,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=RESET_DEADLINE,
                check=False,
            )
        finally:
            # each root bind-mounts <graphroot>/overlay onto itself; a leftover mount would keep the dir busy
            subprocess.run(["umount", str(self.root / "storage" / "overlay")], stderr=subprocess.DEVNULL, check=False)
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PodmanEnv:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _write_config(self) -> None:
        root = self.root
        storage = {"storage": {"driver": "overlay", "graphroot": f"{root}/storage", "runroot": f"{root}/run/storage"}}
        (root / "storage.conf").write_text(render_toml(storage))
        containers = tomllib.loads(CONTAINERS_CONF.read_text())
        containers.setdefault("engine", {}).update(
            tmp_dir=f"{root}/run/libpod", volume_path=f"{root}/storage/volumes", lock_type="file"
        )
        containers.setdefault("network", {}).update(network_config_dir=f"{root}/networks")
        (root / "containers.conf").write_text(render_toml(containers))


@contextlib.contextmanager
def podman_root_with_test_image() -> Iterator[PodmanEnv]:
    """A started PodmanEnv holding the busybox test image, stopped (and removed) afterwards."""
    with PodmanEnv() as env:
        with podman.PodmanClient(base_url=env.base_url) as client:
            ensure_test_image(client)
        yield env


def render_toml(tables: dict[str, dict[str, object]]) -> str:
    """TOML for one level of tables whose values are strings, numbers or lists (JSON spells those the same)."""
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"
