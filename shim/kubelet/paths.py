"""Where the node agent keeps each pod's files under its data dir (kubelet's /var/lib/kubelet/pods/<uid>):
volumes, termination-message files and the containers' CRI-format logs (the layout the streaming server
reads them from, `logs.container_log_path`)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from shim.kubelet.logs import container_log_path
from shim.kubelet.mounts import unmount_under

log = logging.getLogger("shim.kubelet.paths")

PRIVATE_DIR_MODE = 0o750  # kubelet's pods/<uid> mode: other host users cannot look inside


@dataclass(frozen=True)
class PodPaths:
    data_dir: Path
    uid: str

    @property
    def root(self) -> Path:
        return self.data_dir / "pods" / self.uid

    def create(self) -> None:
        """Make the pod's directory, readable by root only (0750): its secret volumes and logs are the pod's alone,
        whatever modes the files inside need for the containers' users."""
        self.root.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        self.root.chmod(PRIVATE_DIR_MODE)  # mkdir's mode went through the umask (or the dir is older)

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / name

    def sub_path_mount(self, volume: str, container: str, index: int) -> Path:
        """Where the sub-path of a container's index-th volumeMount is bind-mounted (kubelet's volume-subpaths):
        inside the pod's own directory, which no container can write to."""
        return self.root / "volume-subpaths" / volume / container / str(index)

    def termination_log(self, container: str, attempt: int) -> Path:
        return self.root / "containers" / container / f"{attempt}.termination-log"

    def container_log(self, container: str, attempt: int) -> Path:
        """The log of one run of a container; `attempt` is its restartCount when it ran (kubelet's N.log)."""
        return container_log_path(self.data_dir, self.uid, container, attempt)

    def remove(self) -> None:
        """Drop everything the pod left on the node (its API object is gone). Its sub-path mounts are taken down
        first; while one stays, the files stay too (deleting through a mount would reach into its volume)."""
        if self.root.exists() and (left := unmount_under(self.root)):
            log.warning("pod %s: not removing %s: still mounted at %s", self.uid, self.root, ", ".join(left))
            return
        shutil.rmtree(self.root, ignore_errors=True)
