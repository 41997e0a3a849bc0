"""The OpenAPI documents kube-shim serves, loaded once from `openapi_documents/` beside this module (the
package ships them; `openapi/generate.py` in the repository writes them).

Routes and headers, as kube-apiserver answers them (kube-openapi `handler3`):
- `GET /openapi/v3` -> `v3_index()` as `application/json`, with `Etag: "<sha512 of the body>"`.
- `GET /openapi/v3/<gv>` -> `v3_document(gv)` bytes as `application/json` with `Etag: "<hash>"`
  (quoted) and `Vary: Accept`. When the query has `hash=`: if it equals the document hash, add
  `Cache-Control: public, immutable` and `Expires` one year ahead; if it differs, answer
  `301 Moved Permanently` to the current `serverRelativeURL`. An unknown `<gv>` is a 404 Status.
- Every other response (the index, unhashed documents, the whole API) carries kube-apiserver's
  default `Cache-Control: no-cache, private`.
- `GET /openapi/v2` -> `swagger_v2()`: gnostic protobuf when `Accept` asks for protobuf (kubectl accepts
  nothing else there, see kubectl-wire G3), JSON otherwise.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path
from typing import Any

import orjson

OPENAPI_DIR = Path(__file__).resolve().with_name("openapi_documents")


def v3_index() -> dict[str, Any]:
    """The `/openapi/v3` discovery document: each group-version with its hashed URL."""
    return {
        "paths": {
            gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"} for gv, (_, digest) in _v3_served().items()
        }
    }


def v3_document(gv_path: str) -> tuple[bytes, str] | None:
    """The OpenAPI v3 document for `gv_path` (`api/v1`, `apis/apps/v1`) as JSON bytes and its hash."""
    return _v3_served().get(gv_path)


@functools.cache
def swagger_v2() -> dict[str, Any]:
    """The Swagger 2.0 document of every served group-version (`definitions`, `#/definitions/` refs).

    Loaded once and shared: do not mutate it.
    """
    return _read(OPENAPI_DIR / "v2" / "swagger.json.gz")


@functools.cache
def component_schemas() -> dict[str, dict[str, Any]]:
    """Every `components.schemas` entry of the v3 documents, by name (`io.k8s.api.core.v1.Pod`).

    Loaded once and shared: do not mutate it.
    """
    merged: dict[str, dict[str, Any]] = {}
    for document in _v3_documents().values():
        merged.update(document["components"]["schemas"])
    return merged


@functools.cache
def _v3_documents() -> dict[str, dict[str, Any]]:
    return {
        path.name.removesuffix(".json.gz").replace("__", "/"): _read(path)
        for path in sorted((OPENAPI_DIR / "v3").glob("*.json.gz"))
    }


@functools.cache
def _v3_served() -> dict[str, tuple[bytes, str]]:
    served = {}
    for gv, document in _v3_documents().items():
        body = orjson.dumps(document)
        # kube-openapi's etag: uppercase hex SHA-512 of the served JSON
        served[gv] = (body, hashlib.sha512(body).hexdigest().upper())
    return served


def _read(path: Path) -> dict[str, Any]:
    return orjson.loads(gzip.decompress(path.read_bytes()))
