"""Facts about the machine the node agent runs on: capacity, OS, addresses, and resource pressure."""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

# kubelet's default hard eviction thresholds: what allocatable holds back, and when pressure is reported
EVICTION_MEMORY_AVAILABLE = 100 * 1024 * 1024  # memory.available<100Mi
EVICTION_NODEFS_AVAILABLE = 0.10  # nodefs.available<10%
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class HostFacts:
    """What a Node reports about its machine."""

    hostname: str
    cpus: int
    memory_bytes: int
    storage_bytes: int
    kernel_version: str
    os_image: str
    architecture: str
    machine_id: str
    system_uuid: str
    boot_id: str


def host_facts(data_dir: Path) -> HostFacts:
    """Read the host's capacity and identity (the filesystem holding `data_dir` is the node's storage)."""
    fs = os.statvfs(data_dir)
    machine_id = _read("/etc/machine-id")
    return HostFacts(
        hostname=socket.gethostname(),
        cpus=len(os.sched_getaffinity(0)),
        memory_bytes=_meminfo().get("MemTotal", 0),
        storage_bytes=fs.f_blocks * fs.f_frsize,
        kernel_version=platform.release(),
        os_image=_os_release().get("PRETTY_NAME", "Linux"),
        architecture=_ARCHITECTURES.get(platform.machine(), platform.machine()),
        machine_id=machine_id,
        system_uuid=_read("/sys/class/dmi/id/product_uuid") or machine_id,
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
    )


def primary_ip() -> str:
    """The address other machines reach this one at: the source address of the default route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # a UDP "connect" only picks the route; no packet is sent
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


@dataclass(frozen=True)
class Pressure:
    memory: bool
    disk: bool


def pressure(data_dir: Path) -> Pressure:
    """Whether available memory or disk is below kubelet's default eviction thresholds."""
    fs = os.statvfs(data_dir)
    disk_free = fs.f_bavail / fs.f_blocks if fs.f_blocks else 1.0
    return Pressure(
        memory=_meminfo().get("MemAvailable", EVICTION_MEMORY_AVAILABLE) < EVICTION_MEMORY_AVAILABLE,
        disk=disk_free < EVICTION_NODEFS_AVAILABLE,
    )


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    values = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return values


def _os_release() -> dict[str, str]:
    fields = {}
    for line in _read("/etc/os-release").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip().strip('"')
    return fields


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""
