"""API fuzzing: generated requests to every served kind and verb never get a 5xx, never kill the process.

The kinds, their verbs and their schemas come from the server's own discovery and OpenAPI v3, so a new kind
is fuzzed without touching this file. Hypothesis generates paths, query strings, headers and bodies (JSON,
YAML and protobuf-ish bytes), half of them shaped by the kind's schema so they get past decoding into
validation, admission and the store. A fixed seed (derandomize) keeps CI reproducible; the example counts
keep the module within about 90 seconds.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.api import rss_megabytes
from shim.apiserver.protobuf import MAGIC
from tests.cluster import Cluster, start_cluster
from tests.protobuf_kit import envelope, field_bytes
from tests.rawapi import RawApi

NAMESPACE = "fuzz"
RSS_GROWTH_LIMIT_MB = 300
WATCH_READ_SECONDS = 0.3  # a watch answers its headers (and any early ERROR event) within this
FUZZ = settings(
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
    deadline=None,
    max_examples=1000,
    suppress_health_check=list(HealthCheck),
)
QUERY_KEYS = ["labelSelector", "fieldSelector", "resourceVersion", "resourceVersionMatch", "limit", "continue",
              "timeoutSeconds", "watch", "dryRun", "fieldManager", "fieldValidation", "propagationPolicy",
              "gracePeriodSeconds", "orphanDependents", "force", "includeObject", "allowWatchBookmarks",
              "sendInitialEvents", "pretty"]  # fmt: skip
CONTENT_TYPES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
                 "application/json-patch+json", "application/merge-patch+json",
                 "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                 "text/plain", ""]  # fmt: skip
QUERY_VALUES = [
    "true",
    "false",
    "0",
    "1",
    "-1",
    "All",
    "Strict",
    "Warn",
    "Ignore",
    "Exact",
    "NotOlderThan",
    "Orphan",
    "Background",
    "Foreground",
    "a=b",
    "a!=b",
    "a in (b)",
    "metadata.name=x",
    "Object",
    "None",
]
ACCEPTS = ["application/json", "application/json;as=Table;v=v1;g=meta.k8s.io",
           "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", "application/yaml", "*/*",
           "application/vnd.kubernetes.protobuf"]  # fmt: skip


@dataclass(frozen=True)
class Resource:
    """One served resource as discovery lists it, with the schema of its kind."""

    base: str  # /api/v1 or /apis/GROUP/VERSION
    name: str  # plural, or plural/subresource
    namespaced: bool
    verbs: tuple[str, ...]
    schema: dict[str, Any]
    seeds: tuple[dict[str, Any], ...]  # objects of this kind the server holds: valid bodies to mutate


class Server:
    """The fuzzed `kube-shim up` and one event loop to talk to it from synchronous Hypothesis tests."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self.api: RawApi = self.run(self._session())
        self.baseline_rss = rss_megabytes(cluster.process.pid)
        self.schemas: dict[str, dict[str, Any]] = {}
        self.answered: Counter[tuple[str, int]] = Counter()  # (method, status) of every fuzzed request
        self.resources = self.run(self._discover())

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def _session(self) -> RawApi:
        return RawApi(self.cluster.kubeconfig)

    async def _discover(self) -> list[Resource]:
        bases = ["/api/v1"]
        for group in (await self.api.ok("GET", "/apis"))["groups"]:
            bases += [f"/apis/{version['groupVersion']}" for version in group["versions"]]
        found = []
        for base in bases:
            document = await self.api.ok("GET", "/openapi/v3" + base)
            self.schemas.update(document["components"]["schemas"])
            for item in (await self.api.ok("GET", base))["resources"]:
                schema = next(
                    (s for s in document["components"]["schemas"].values()
                     if {"kind": item["kind"], "version": base.rsplit("/", 1)[1]}.items()
                     <= (s.get("x-kubernetes-group-version-kind") or [{}])[0].items()),
                    {},
                )  # fmt: skip
                seeds: list[dict[str, Any]] = []
                if "/" not in item["name"] and "list" in item["verbs"]:
                    seeds = (await self.api.ok("GET", f"{base}/{item['name']}", params={"limit": "3"}))["items"]
                verbs = tuple(item["verbs"])
                found.append(Resource(base, item["name"], item["namespaced"], verbs, schema, tuple(seeds)))
        return found

    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        """One request; a watch is read for a moment only (its status line and any early event)."""
        timeout = aiohttp.ClientTimeout(total=30)
        async with self.api.session.request(method, path, data=body, headers=headers, timeout=timeout) as resp:
            if "watch" in path and resp.status == 200:
                try:
                    first = await asyncio.wait_for(resp.content.readline(), WATCH_READ_SECONDS)
                except TimeoutError:
                    first = b""
                return resp.status, first
            return resp.status, await resp.read()

    def close(self) -> None:
        self.run(self.api.close())
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cluster = start_cluster(tmp_path_factory.mktemp("fuzz"))
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("create", "configmap", "present", "-n", NAMESPACE, "--from-literal=k=v")
    running = Server(cluster)
    yield running
    running.close()
    cluster.stop()


# -- strategies ------------------------------------------------------------------------------------------------

NAME_CHARS = string.ascii_lowercase + string.digits + "-."
names = st.one_of(st.sampled_from(["present", "a", "kube-root-ca.crt", "default", "kubernetes"]),
                  st.text(NAME_CHARS, min_size=1, max_size=20), st.text(max_size=30))  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                    st.text(max_size=40))  # fmt: skip
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


def schema_values(schema: dict[str, Any], schemas: dict[str, dict[str, Any]], depth: int = 0) -> st.SearchStrategy:
    """Values shaped by an OpenAPI v3 schema (right field names and mostly right types), with junk mixed in."""
    if "$ref" in schema or "allOf" in schema:
        ref = schema.get("$ref") or schema["allOf"][0]["$ref"]
        schema = schemas.get(ref.rsplit("/", 1)[1], {})
    junk = json_values if depth < 3 else scalars
    kind = schema.get("type")
    if depth > 5:
        return scalars
    if schema.get("properties"):
        fields = {key: schema_values(sub, schemas, depth + 1) for key, sub in schema["properties"].items()}
        return st.fixed_dictionaries({}, optional=fields) | junk
    if kind == "object" and "additionalProperties" in schema:
        values = schema_values(schema["additionalProperties"], schemas, depth + 1)
        return st.dictionaries(st.text(NAME_CHARS, max_size=12), values, max_size=3) | junk
    if kind == "array":
        return st.lists(schema_values(schema.get("items", {}), schemas, depth + 1), max_size=3) | junk
    typed = {"string": st.text(max_size=30) | st.sampled_from(["1", "100m", "1Gi", "TCP", "Always", "None"]),
             "integer": st.integers(-(2**40), 2**40), "number": st.floats(allow_nan=False),
             "boolean": st.booleans()}  # fmt: skip
    return typed.get(kind, junk) | scalars


@st.composite
def requests(draw: st.DrawFn, server: Server, body_format: str) -> tuple[str, str, bytes | None, dict[str, str]]:
    """(method, path, body, headers) for one served resource and one of its verbs. Most requests are well
    formed, about existing objects, so they get past decoding into validation and the store; the rest
    have random names, namespaces, query strings, headers and mangled paths."""
    well_formed = draw(st.integers(0, 9)) < 7
    resource = draw(st.sampled_from(server.resources))
    verb = draw(st.sampled_from(resource.verbs if well_formed else [*resource.verbs, "get", "create", "options"]))
    if verb in ("delete", "deletecollection") and draw(st.integers(0, 3)):
        verb = "get"  # deletes empty the server of the objects the other verbs need; keep them rarer
    plural, _, sub = resource.name.partition("/")
    seed = draw(st.sampled_from(resource.seeds)) if resource.seeds and (well_formed or draw(st.booleans())) else None
    if seed is not None:
        name, namespace = seed["metadata"]["name"], seed["metadata"].get("namespace") or NAMESPACE
    else:
        name = quote(draw(names), safe="")
        namespace = draw(st.sampled_from([NAMESPACE, NAMESPACE, "default", "kube-system", "missing"]))
    collection = f"{resource.base}/namespaces/{namespace}" if resource.namespaced else resource.base
    collection += "/" + plural
    item = f"{collection}/{name}"
    method, path = {
        "list": ("GET", collection), "watch": ("GET", collection), "create": ("POST", collection),
        "deletecollection": ("DELETE", collection), "get": ("GET", item), "update": ("PUT", item),
        "patch": ("PATCH", item), "delete": ("DELETE", item),
        "options": (draw(st.sampled_from(["OPTIONS", "HEAD"])), collection),
    }.get(verb, ("GET", collection))  # fmt: skip
    if sub:
        path = f"{item}/{sub}"
    if not well_formed and draw(st.integers(0, 3)) == 0:
        path = path.replace("/" + plural, "/" + quote(draw(st.text(max_size=10)), safe="/"), 1)
    values = st.sampled_from(QUERY_VALUES) if well_formed else st.text(max_size=20) | st.sampled_from(QUERY_VALUES)
    query = draw(st.dictionaries(st.sampled_from(QUERY_KEYS), values, max_size=2 if well_formed else 4))
    if verb == "watch":
        query["watch"] = "true"
    query["timeoutSeconds"] = "1"  # a watch must end: the fuzzer cannot wait for it
    path += "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items())
    accept = st.sampled_from(ACCEPTS[:3]) if well_formed else st.sampled_from(ACCEPTS) | st.text(max_size=20)
    headers = {"Accept": draw(accept.filter(str.isprintable))}
    body = None
    if method in ("POST", "PUT", "PATCH") or (method == "DELETE" and draw(st.booleans())):
        body, headers["Content-Type"] = draw(bodies(server, resource, body_format, method, well_formed))
    return method, path, body, headers


@st.composite
def bodies(
    draw: st.DrawFn, server: Server, resource: Resource, body_format: str, method: str, well_formed: bool
) -> tuple[bytes, str]:
    source = draw(st.sampled_from(["seed", "seed", "schema", "json"] if resource.seeds else ["schema", "json"]))
    value: Any
    if source == "seed":
        value = draw(mutated(draw(st.sampled_from(resource.seeds)), server, resource, rename=method == "POST"))
    elif source == "schema":
        value = draw(schema_values(resource.schema, server.schemas))
    else:
        value = draw(json_values)
    if isinstance(value, dict) and draw(st.booleans()):
        value.setdefault("metadata", {"name": draw(names)})
    if method == "PATCH":
        content_type = draw(st.sampled_from(CONTENT_TYPES[3:7]))
        if well_formed and draw(st.booleans()):  # a label change, as kubectl label sends it
            content_type = draw(st.sampled_from(CONTENT_TYPES[4:6]))
            label = draw(st.text(string.ascii_lowercase, min_size=1, max_size=5))
            value = {"metadata": {"labels": {draw(st.sampled_from("abc")): label}}}
        if content_type == "application/json-patch+json" and draw(st.booleans()):
            op = st.fixed_dictionaries({"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
                                        "path": st.text(max_size=20) | st.just("/metadata/labels"),
                                        "from": st.text(max_size=10), "value": json_values})  # fmt: skip
            value = draw(st.lists(op, max_size=4))
    else:
        content_type = draw(st.sampled_from(CONTENT_TYPES[:1] if well_formed else CONTENT_TYPES))
    if body_format == "yaml":
        return yaml.safe_dump(value).encode(), content_type if method == "PATCH" else "application/yaml"
    if body_format == "protobuf":
        raw = draw(st.binary(max_size=200))
        kind = draw(st.sampled_from([resource.schema.get("x-kubernetes-group-version-kind", [{}])[0].get("kind", ""),
                                     "Pod", "ConfigMap", "Nope"]))  # fmt: skip
        api_version = resource.base.removeprefix("/api/").removeprefix("/apis/")
        whole = envelope(api_version, kind, raw)
        fields = MAGIC + field_bytes(1, raw) + field_bytes(2, raw)
        body = draw(st.sampled_from([whole, whole[:-3], MAGIC + raw, fields]))
        return body, "application/vnd.kubernetes.protobuf"
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=100)), content_type  # not even text
    return json.dumps(value).encode(), content_type  # not orjson: integers beyond 64 bits are fair game


@st.composite
def mutated(draw: st.DrawFn, seed: dict[str, Any], server: Server, resource: Resource, rename: bool) -> dict[str, Any]:
    """A copy of a stored object with a fresh name (or not) and a few values replaced, added or removed."""
    value = orjson.loads(orjson.dumps(seed))
    meta = value.setdefault("metadata", {})
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    if rename:  # a create of a new object; an update keeps the name its URL has
        meta["name"] = draw(st.text(NAME_CHARS, min_size=1, max_size=20))
    for _ in range(draw(st.integers(0, 2))):
        containers = _containers(value)
        container = draw(st.sampled_from(containers))
        key = draw(st.sampled_from(list(container) or [0])) if draw(st.booleans()) else draw(st.text(max_size=8))
        if isinstance(container, list):
            key = key if isinstance(key, int) and key < len(container) else len(container) - 1
            if key < 0:
                continue
        if draw(st.integers(0, 3)) == 0:
            container.pop(key) if isinstance(container, list) else container.pop(key, None)
        else:
            container[key] = draw(schema_values(resource.schema, server.schemas, depth=4) | json_values)
    return value


def _containers(value: Any) -> list[Any]:
    """Every dict and list inside `value`, itself included."""
    found, stack = [], [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            found.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    return found


# -- tests -----------------------------------------------------------------------------------------------------


def check(server: Server, request: tuple[str, str, bytes | None, dict[str, str]]) -> None:
    method, path, body, headers = request
    status, answer = server.run(server.send(method, path, body, headers))
    server.answered[method, status] += 1
    assert status < 500, f"{method} {path} {headers} body={body[:300] if body else body!r}: {status} {answer[:500]!r}"
    if b'"type":"ERROR"' in answer[:200]:  # a watch that failed after its 200: the event carries the code
        assert orjson.loads(answer)["object"]["code"] < 500, answer
    assert server.cluster.process.poll() is None, "kube-shim up died:\n" + "".join(server.cluster.reader.seen[-30:])


def test_json_requests_to_every_kind_and_verb_are_never_a_5xx(server: Server) -> None:
    @FUZZ
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        check(server, data.draw(requests(server, "json")))

    fuzz()


def test_yaml_requests_are_never_a_5xx(server: Server) -> None:
    @settings(FUZZ, max_examples=400)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        check(server, data.draw(requests(server, "yaml")))

    fuzz()


def test_protobuf_requests_are_never_a_5xx(server: Server) -> None:
    @settings(FUZZ, max_examples=400)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        check(server, data.draw(requests(server, "protobuf")))

    fuzz()


def test_the_fuzzed_server_is_alive_ready_and_its_memory_bounded(server: Server) -> None:
    """Runs last: after every example above the server still serves, with resident memory bounded, and the
    examples were not all refused at the door: each verb succeeded at least once."""
    status, _ = server.run(server.send("GET", "/readyz", None, {}))
    assert status == 200
    succeeded = {method for (method, status), _ in server.answered.items() if status < 300}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= succeeded, server.answered  # the fuzzer reached the store
    assert rss_megabytes(server.cluster.process.pid) - server.baseline_rss < RSS_GROWTH_LIMIT_MB
