"""What tests need from the machine, said once. A test whose prerequisite is missing is skipped with a reason
that starts with `MISSING`; where every prerequisite must be there (CI: `.ci/run` installs them all and sets
`KUBE_SHIM_REQUIRE_ALL=1`), `conftest.py` turns such a skip into a failure, so nothing is skipped silently."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

MISSING = "missing prerequisite: "
KUBECTL_DIR = Path(os.environ.get("KUBE_SHIM_KUBECTL_DIR", "/usr/lib/google-cloud-sdk/bin"))


def kubectl_path(version: str = "1.33") -> Path:
    """The real kubectl of one minor version (`KUBE_SHIM_KUBECTL_DIR` overrides where they are)."""
    return KUBECTL_DIR / f"kubectl.{version}"


needs_podman = [
    pytest.mark.podman,
    pytest.mark.skipif(shutil.which("podman") is None, reason=MISSING + "podman (apt-get install podman runc)"),
    pytest.mark.skipif(os.geteuid() != 0, reason=MISSING + "root (these tests drive root Podman)"),
]
needs_nftables = [
    pytest.mark.skipif(shutil.which("nft") is None, reason=MISSING + "nft (apt-get install nftables)"),
    pytest.mark.skipif(os.geteuid() != 0, reason=MISSING + "root (nft checks rulesets against the kernel)"),
]
needs_conntrack = pytest.mark.skipif(
    shutil.which("conntrack") is None or os.geteuid() != 0,
    reason=MISSING + "conntrack, run as root (apt-get install conntrack)",
)
needs_etcd = [
    pytest.mark.etcd,
    pytest.mark.skipif(shutil.which("etcd") is None, reason=MISSING + "etcd (apt-get install etcd-server)"),
]
needs_kubectl = pytest.mark.skipif(not kubectl_path().exists(), reason=MISSING + f"kubectl at {kubectl_path()}")
