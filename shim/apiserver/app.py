"""The aiohttp application: routes, error handling, metrics. The one door to the store."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from shim import __version__
from shim.apiserver import codec, errors, openapi
from shim.apiserver.discovery import Discovery
from shim.apiserver.errors import ApiError, status_response
from shim.apiserver.handlers import ResourceHandlers, resolve
from shim.apiserver.metrics import Metrics
from shim.apiserver.objects import ObjectStore
from shim.apiserver.registry import Registry
from shim.apiserver.subresources import Subresources
from shim.apiserver.watch import Watcher
from shim.store import Store, StoreError

log = logging.getLogger("shim.apiserver")

KUBE_MAJOR, KUBE_MINOR, KUBE_PATCH = "1", "33", "1"

OBJECTS = web.AppKey("objects", ObjectStore)
RESOURCE = web.RequestKey("resource", str)  # for metrics: which resource a request addressed
COLLECTION = web.RequestKey("collection", bool)  # for metrics: a GET of a collection is kube's verb LIST
DEPRECATION = web.RequestKey("deprecation", str)  # the Warning a deprecated resource's responses carry
ReadyCheck = tuple[str, Callable[[], str | None]]  # a /readyz check: its name, and the problem (None: fine)
READY_CHECKS = web.AppKey("ready_checks", list[ReadyCheck])  # components running in this process add theirs

STORE_CHECK_TIMEOUT = 2.0  # seconds /readyz waits for the store before calling it failed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def version_info() -> dict[str, str]:
    """`/version`: the Kubernetes minor whose API is served (kubectl's dispatcher picks its binary by it)."""
    return {
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.{KUBE_PATCH}+kube-shim-{__version__}",
        "gitCommit": "kube-shim",
        "gitTreeState": "clean",
        "buildDate": "2026-11-21T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def build_app(
    store: Store,
    registry: Registry,
    middlewares: list[Any] | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> web.Application:
    """The API server application over `store`, serving every resource in `registry`."""
    metrics = Metrics()
    objects = ObjectStore(store, registry)
    handlers = ResourceHandlers(registry, objects, None, None)
    handlers.subresources = Subresources(handlers)
    watcher = Watcher(handlers)
    handlers.watcher = watcher
    discovery = Discovery(registry)

    app = web.Application(
        middlewares=[_observe(metrics), _errors, *(middlewares or [])],
        client_max_size=codec.MAX_BODY_BYTES + 1,
    )
    app[OBJECTS] = objects
    app[READY_CHECKS] = []
    app.on_response_prepare.append(_warn_deprecated)

    async def resource(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        target = resolve(registry, info.get("group", ""), info.get("version", "v1"), info["rest"])
        request[RESOURCE] = target.rt.plural + (f"/{target.subresource}" if target.subresource else "")
        request[COLLECTION] = target.name is None
        if target.rt.deprecation:
            request[DEPRECATION] = target.rt.deprecation
        return await handlers.handle(request, target)

    async def health(request: web.Request) -> web.Response:
        endpoint = request.path.split("/")[1]  # healthz, livez or readyz
        store_problem = await _store_problem(store)
        checks: list[ReadyCheck] = [("ping", lambda: None), ("log", lambda: None)]
        checks.append(("etcd", lambda: store_problem))  # kube's name for its storage check
        if endpoint == "readyz":
            checks.append(("ready", lambda: None if ready() else "still starting"))
            components: list[ReadyCheck] = app[READY_CHECKS]
            checks.extend(components)
        return _health_report(request, endpoint, checks)

    async def version(request: web.Request) -> web.Response:
        return codec.json_response(version_info())

    async def metrics_text(request: web.Request) -> web.Response:
        revision = await store.current_revision()
        text = metrics.render(
            {
                "apiserver_registered_watchers": ("Open watch streams.", lambda: watcher.active),
                "etcd_current_revision": ("The store's newest revision.", lambda: revision),
            },
            watcher.active_by_resource,
        )
        return web.Response(text=text, content_type="text/plain")

    r = app.router
    for path in ("/healthz", "/livez", "/readyz"):
        r.add_get(path, health)
        r.add_get(path + "/{check:.*}", health)
    r.add_get("/version", version)
    r.add_get("/metrics", metrics_text)
    r.add_get("/api", discovery.core)
    r.add_get("/api/", discovery.core)
    r.add_get("/apis", discovery.groups_list)
    r.add_get("/apis/", discovery.groups_list)
    r.add_get("/api/{version}", discovery.resources)
    r.add_get("/apis/{group}", discovery.group)
    r.add_get("/apis/{group}/{version}", discovery.resources)
    r.add_get("/openapi/v3", openapi_v3_index)
    r.add_get("/openapi/v3/{path:.+}", openapi_v3_document)
    r.add_get("/openapi/v2", openapi_v2)
    r.add_route("*", "/api/{version}/{rest:.+}", resource)
    r.add_route("*", "/apis/{group}/{version}/{rest:.+}", resource)
    return app


def _health_report(request: web.Request, endpoint: str, checks: list[ReadyCheck]) -> web.Response:
    """kube's /healthz, /livez and /readyz: `ok`; or, when a check fails or `?verbose` is asked, one
    `[+]name ok` or `[-]name failed: reason withheld` line per check (the reason goes to the log, as kube
    does), then `<endpoint> check passed|failed`."""
    wanted = request.match_info.get("check")
    results = [(name, check()) for name, check in checks if not wanted or name == wanted]
    if wanted and not results:
        raise ApiError(404, "NotFound", f"no {endpoint} check named {wanted!r}")
    for name, problem in results:
        if problem:
            log.warning("%s check %s failed: %s", endpoint, name, problem)
    failed = any(problem for _, problem in results)
    if not failed and "verbose" not in request.query:
        return web.Response(text="ok")
    lines = [f"[-]{name} failed: reason withheld" if problem else f"[+]{name} ok" for name, problem in results]
    lines.append(f"{endpoint} check failed" if failed else f"{endpoint} check passed")
    return web.Response(status=500 if failed else 200, text="\n".join(lines) + "\n")


async def _store_problem(store: Store) -> str | None:
    """Why the store cannot serve now (the cheapest read fails or hangs), or None."""
    try:
        await asyncio.wait_for(store.current_revision(), STORE_CHECK_TIMEOUT)
    except (StoreError, TimeoutError) as exc:
        return str(exc) or "no answer within the check's timeout"
    return None


# -- OpenAPI ---------------------------------------------------------------------------------------------------


async def openapi_v3_index(request: web.Request) -> web.Response:
    return codec.json_response(openapi.v3_index(), headers={"Cache-Control": "no-cache, private"})


async def openapi_v3_document(request: web.Request) -> web.Response:
    found = openapi.v3_document(request.match_info["path"])
    if found is None:
        raise errors.not_found_here()
    body, digest = found
    hashed = request.query.get("hash") == digest
    headers = {
        "Cache-Control": "public, immutable" if hashed else "no-cache, private",
        "Etag": f'"{digest}"',
    }
    return web.Response(body=body, content_type="application/json", headers=headers)


async def openapi_v2(request: web.Request) -> web.Response:
    """The gnostic protobuf form to whoever asks for protobuf (kubectl, which cannot parse JSON here:
    kubectl-wire.md G3), the Swagger JSON to everyone else, as kube-apiserver negotiates it."""
    from shim.apiserver.openapi_v2 import CONTENT_TYPE

    headers = {"Cache-Control": "no-cache, private"}
    if "protobuf" in request.headers.get("Accept", ""):
        return web.Response(body=_swagger_v2_protobuf(), content_type=CONTENT_TYPE, headers=headers)
    return web.Response(body=_swagger_v2_json(), content_type="application/json", headers=headers)


@functools.cache
def _swagger_v2_json() -> bytes:
    return orjson.dumps(openapi.swagger_v2())


@functools.cache
def _swagger_v2_protobuf() -> bytes:
    from shim.apiserver.openapi_v2 import encode_swagger_v2

    return encode_swagger_v2(openapi.swagger_v2())


async def _warn_deprecated(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer about a deprecated resource warns, as kube's deprecation filter does (kubectl prints it)."""
    deprecation = request.get(DEPRECATION)
    if deprecation:
        response.headers.add("Warning", errors.warning_value(deprecation))


# -- middlewares -------------------------------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as a Kubernetes Status: never an HTML page or a traceback."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except StoreError as exc:
        log.warning("store failure serving %s %s: %s", request.method, request.path_qs, exc)
        return errors.from_store_error(exc).response()
    except web.HTTPRequestEntityTooLarge:
        return status_response(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
    except web.HTTPNotFound:
        return status_response(404, "NotFound", "the server could not find the requested resource", {})
    except web.HTTPMethodNotAllowed:
        return status_response(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )
    except web.HTTPException as exc:
        return status_response(exc.status, None, exc.reason)
    except (ConnectionResetError, TimeoutError) as exc:
        raise web.HTTPServiceUnavailable() from exc
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path_qs)
        return status_response(500, "InternalError", "Internal error occurred: an unexpected error; see the server log")


def _observe(metrics: Metrics) -> Any:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        response = await handler(request)
        resource = request.get(RESOURCE)
        if resource:
            verb = "WATCH" if "watch" in request.query or "/watch/" in request.path else request.method
            if verb == "GET" and request.get(COLLECTION):
                verb = "LIST"
            metrics.observe(verb, resource, response.status, time.monotonic() - started)
        return response

    return observe
