"""The test image: `FROM scratch` around Debian's static busybox (no registry is reachable here).

The root filesystem is made in Python (busybox, one symlink per applet: sh, sleep, httpd, nc, wget, cat, ...;
/etc/passwd and /etc/group; /tmp 1777) and imported through the API, which takes about 70 ms. Building is
skipped when the tag is already present.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile

import podman

TEST_IMAGE = "localhost/kube-shim-test:busybox"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def ensure_test_image(client: podman.PodmanClient) -> str:
    """Import the busybox test image into the client's storage unless it is there; returns its tag."""
    if not client.images.exists(TEST_IMAGE):
        response = client.api.post(
            "/images/import",
            params={"reference": TEST_IMAGE, "changes": ['CMD ["/bin/sh"]', "ENV PATH=/bin"]},
            data=busybox_rootfs(),
            headers={"Content-Type": "application/x-tar"},
        )
        response.raise_for_status()
    return TEST_IMAGE


def busybox_rootfs() -> bytes:
    """A tar of the image's root filesystem."""
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            tar.addfile(_entry(directory, tarfile.DIRTYPE, mode))
        with open(BUSYBOX, "rb") as binary:
            data = binary.read()
        tar.addfile(_entry("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        for applet in applets:
            if applet != "busybox":
                link = _entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777)
                link.linkname = "busybox"
                tar.addfile(link)
        for name, content in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            tar.addfile(_entry(name, tarfile.REGTYPE, 0o644, len(content)), io.BytesIO(content))
    return out.getvalue()


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    return info
