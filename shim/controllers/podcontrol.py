"""Creating and deleting a controller's pods with kube's events (kube's `RealPodControl` in controller_utils.go):
`SuccessfulCreate` "Created pod: NAME", `FailedCreate` "Error creating: ...", and the same for deletes; a
StatefulSet words them as its `StatefulPodControl` does (`PodEventWording` says how)."""

from __future__ import annotations

import asyncio
from typing import Any

from shim.client import ApiClient, ApiException
from shim.controllers.eventqueue import EventQueue
from shim.controllers.reconciler import namespace_terminating
from shim.machinery.resources import PODS

Obj = dict[str, Any]


class PodEventWording:
    """The messages of RealPodControl's events (ReplicaSets, DaemonSets, Jobs); `verb` is create or delete."""

    def succeeded(self, verb: str, owner: Obj, pod_name: str) -> str:
        return f"{verb.capitalize()}d pod: {pod_name}"

    def failed(self, verb: str, owner: Obj, pod_name: str, message: str) -> str:
        return f"Error {verb[:-1]}ing: {message}"


class PodControl:
    """Pod writes on behalf of an owner, each reported as an Event on the owner."""

    def __init__(self, client: ApiClient, events: EventQueue, wording: PodEventWording | None = None) -> None:
        self.client = client
        self.events = events
        self.wording = wording or PodEventWording()

    async def create(self, owner: Obj, pod: Obj) -> bool:
        """Create one pod in the owner's namespace; False when the namespace is going away (nothing to report)."""
        try:
            created = await self.client.create(PODS, pod, owner["metadata"]["namespace"])
        except ApiException as exc:
            if namespace_terminating(exc):
                return False
            name = pod["metadata"].get("name", "")
            self.events.emit(
                owner, "Warning", "FailedCreate", self.wording.failed("create", owner, name, api_message(exc))
            )
            raise
        message = self.wording.succeeded("create", owner, created["metadata"]["name"])
        self.events.emit(owner, "Normal", "SuccessfulCreate", message)
        return True

    async def delete(self, owner: Obj, pod: Obj) -> bool:
        """Delete one pod; False when it was gone already."""
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, pod["metadata"]["namespace"])
        except ApiException as exc:
            if exc.status == 404:
                return False
            self.events.emit(
                owner, "Warning", "FailedDelete", self.wording.failed("delete", owner, name, api_message(exc))
            )
            raise
        self.events.emit(owner, "Normal", "SuccessfulDelete", self.wording.succeeded("delete", owner, name))
        return True

    async def delete_all(self, owner: Obj, pods: list[Obj]) -> tuple[list[Obj], Exception | None]:
        """Delete `pods` concurrently: (those this did not delete, the first failure other than a 404).

        A controller stops expecting to see the deletion of the pods returned."""
        results = await asyncio.gather(*(self.delete(owner, pod) for pod in pods), return_exceptions=True)
        missed: list[Obj] = []
        failure: Exception | None = None
        for pod, result in zip(pods, results, strict=True):
            if result is True:
                continue
            missed.append(pod)
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation
                failure = failure or result
        return missed, failure


def api_message(exc: ApiException) -> str:
    """The message of the Status the API answered with (the exception's text without one)."""
    return str(exc.body.get("message") or exc)
