"""Making a container's image present per its imagePullPolicy, with kubelet's events and pull back-off
(ErrImagePull, then ImagePullBackOff while the back-off lasts)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from shim.kubelet.backoff import Backoff, go_duration
from shim.runtime.base import ImagePullError, Runtime

Emit = Callable[[str, str, str], Awaitable[None]]  # (type, reason, message) about one container


class ImageUnavailable(Exception):
    """The container cannot start for want of its image; `reason` is its waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImagePuller:
    """kubelet's imageManager.EnsureImageExists over `Runtime.ensure_image`."""

    def __init__(self, runtime: Runtime, backoff: Backoff | None = None) -> None:
        self.runtime = runtime
        self.backoff = backoff or Backoff()

    async def ensure(self, pod_uid: str, container: dict[str, Any], emit: Emit) -> str:
        """The image id; raises ImageUnavailable (ErrImageNeverPull, ErrImagePull, ImagePullBackOff)."""
        image, policy = container["image"], container.get("imagePullPolicy") or "IfNotPresent"
        if policy != "Always":
            present = await self._present(image)
            if present is not None:
                await emit("Normal", "Pulled", f'Container image "{image}" already present on machine')
                return present
            if policy == "Never":
                message = f'Container image "{image}" is not present with pull policy of Never'
                await emit("Warning", "ErrImageNeverPull", message)
                raise ImageUnavailable("ErrImageNeverPull", message)
        key = f"{pod_uid}_{image}"
        if self.backoff.in_backoff_since_update(key):
            message = f'Back-off pulling image "{image}"'
            await emit("Normal", "BackOff", message)
            raise ImageUnavailable("ImagePullBackOff", message)
        await emit("Normal", "Pulling", f'Pulling image "{image}"')
        began = time.monotonic()
        try:
            image_id = await self.runtime.ensure_image(image, policy)
        except ImagePullError as exc:
            await emit("Warning", "Failed", f'Failed to pull image "{image}": {exc.message}')
            self.backoff.next(key)
            raise ImageUnavailable("ErrImagePull", exc.message) from None
        took = go_duration(round(time.monotonic() - began, 3))
        await emit("Normal", "Pulled", f'Successfully pulled image "{image}" in {took} ({took} including waiting)')
        return image_id

    def retry_in(self, pod_uid: str, image: str) -> float:
        """Seconds until a pull of `image` for the pod may be tried again."""
        return self.backoff.remaining_since_update(f"{pod_uid}_{image}")

    def forget_pod(self, pod_uid: str) -> None:
        self.backoff.forget_prefix(f"{pod_uid}_")

    async def _present(self, image: str) -> str | None:
        """The local image's id, or None: `Never` asks the runtime without pulling."""
        try:
            return await self.runtime.ensure_image(image, "Never")
        except ImagePullError:
            return None
