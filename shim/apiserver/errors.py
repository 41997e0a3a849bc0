"""Kubernetes `Status` errors: every failure the API answers is one of these, never a bare 500."""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson
from aiohttp import web

from shim.store import StoreError, StoreUnavailableError

# HTTP code -> the reason kube-apiserver gives when nothing more specific applies
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(
    code: int,
    reason: str,
    message: str,
    details: dict[str, Any] | None = None,
    list_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A failure `Status` object as kube-apiserver writes it (`list_meta`: its ListMeta, e.g. a `continue`)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": list_meta or {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:  # kube writes `"details":{}` when it has a StatusDetails with nothing in it
        body["details"] = details
    body["code"] = code
    return body


def status_response(
    code: int,
    reason: str | None,
    message: str,
    details: dict[str, Any] | None = None,
    list_meta: dict[str, Any] | None = None,
) -> web.Response:
    """An aiohttp response carrying a failure `Status` with the same HTTP code."""
    body = status_body(code, reason or _REASONS.get(code, ""), message, details, list_meta)
    response = web.Response(status=code, body=orjson.dumps(body), content_type="application/json")
    retry_after = (details or {}).get("retryAfterSeconds")
    if retry_after:  # kube's responsewriters: a Status that suggests a delay says so in the header too
        response.headers["Retry-After"] = str(retry_after)
    return response


class ApiError(Exception):
    """An error the API answers with a `Status`; raise it anywhere under a handler."""

    def __init__(
        self,
        code: int,
        reason: str | None,
        message: str,
        details: dict[str, Any] | None = None,
        list_meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or _REASONS.get(code, "")
        self.message = message
        self.details = details
        self.list_meta = list_meta

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details, self.list_meta)

    def response(self) -> web.Response:
        return status_response(self.code, self.reason, self.message, self.details, self.list_meta)


def _details(name: str | None, group: str, kind: str, causes: list[dict] | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:  # omitempty: core-group objects carry no group
        details["group"] = group
    if kind:  # omitempty, as every StatusDetails field (an Invalid patch names no kind)
        details["kind"] = kind
    if causes:
        details["causes"] = causes
    return details


def _qualified(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(group: str, resource: str, name: str) -> ApiError:
    """404 for a named object (`pods "x" not found`)."""
    return ApiError(
        404, "NotFound", f'{_qualified(group, resource)} "{name}" not found', _details(name, group, resource)
    )


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(group, resource)} "{name}" already exists',
        _details(name, group, resource),
    )


def conflict(group: str, resource: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, resource)} "{name}": {why}',
        _details(name, group, resource),
    )


def forbidden(group: str, resource: str, name: str, why: str) -> ApiError:
    """403 for one object (`namespaces "default" is forbidden: this namespace may not be deleted`)."""
    return ApiError(
        403, "Forbidden", f'{_qualified(group, resource)} "{name}" is forbidden: {why}', _details(name, group, resource)
    )


def invalid(group: str, kind: str, name: str, causes: list[dict]) -> ApiError:
    """422 with causes, worded like kube: `Pod "x" is invalid: [spec.containers: Required value, ...]`."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', _details(name, group, kind, causes))


def not_found_here() -> ApiError:
    """kube's generic 404 for a path nothing serves (with an empty `details`, which kubectl debug reads)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str, list_meta: dict[str, Any] | None = None) -> ApiError:
    """410 Expired; an expired continue token's answer carries a fresh one in `list_meta`."""
    return ApiError(410, "Expired", message, list_meta=list_meta)


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """504 for a read at a revision the store has not reached (kube's NewTooLargeResourceVersionError)."""
    return ApiError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {requested}, current: {current}",
        {
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        },
    )


def from_store_error(exc: StoreError) -> ApiError:
    """A store failure no handler expected: 503 while the backend is unreachable or busy (the client may
    retry), else 500; both carry the cause, as kube's storage errors do."""
    if isinstance(exc, StoreUnavailableError):
        return ApiError(
            503, "ServiceUnavailable", f"the storage backend is unavailable: {exc}", {"retryAfterSeconds": 1}
        )
    return ApiError(500, "InternalError", f"Internal error occurred: {exc}")


def warning_value(text: str) -> str:
    """One `Warning` header value as kube writes it (`net.NewWarningHeader`): code 299, no agent, the text quoted
    with `"` and `\\` escaped; a text holding control characters is no warning at all (kube drops it), and
    could not go into a header anyway."""
    if any(unicodedata.category(c) == "Cc" for c in text):
        return ""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cause(reason: str, field: str, message: str) -> dict[str, str]:
    """One `StatusCause` (`FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, ...)."""
    return {"reason": reason, "message": message, "field": field}
