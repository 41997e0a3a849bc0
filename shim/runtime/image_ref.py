"""Image reference normalisation, as Docker, Podman and the kubelet spell a short name in full."""

from __future__ import annotations

DEFAULT_REGISTRY = "docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"


def normalize_image(reference: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest`; `quay.io/x/y` -> `quay.io/x/y:latest`; digests kept."""
    first, slash, rest = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, reference
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    if "@" not in path and ":" not in path.rpartition("/")[2]:
        path = f"{path}:{DEFAULT_TAG}"
    return f"{registry}/{path}"
