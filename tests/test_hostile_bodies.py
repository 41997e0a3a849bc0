"""A hostile body gets a 4xx `Status` and nothing else: the process stays up, serving, with bounded memory.

Each body of the corpus goes to a real `kube-shim up` on create, update and every patch type. Before the
bounds, a 50 KB YAML of `[` crashed the whole process, an alias bomb or a JSON patch of copies blew up its
memory, and JSON nested a few hundred levels reached a recursive walker or orjson's encoder and became a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from bench.api import rss_megabytes
from shim.apiserver.bodylimits import MAX_DEPTH
from shim.apiserver.codec import MAX_BODY_BYTES
from tests.cluster import Cluster, start_cluster
from tests.protobuf_kit import envelope, field_bytes
from tests.rawapi import RawApi, Reply

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
NAMESPACE = "hostile"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
RSS_GROWTH_LIMIT_MB = 300  # what the whole corpus may add to the server's resident memory


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of this module's own: a body that kills the process must not take other tests with it."""
    cluster = start_cluster(tmp_path_factory.mktemp("hostile"))
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("create", "configmap", "target", "-n", NAMESPACE, "--from-literal=k=v")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def baseline_rss(own_cluster: Cluster) -> float:
    """The server's resident memory before any hostile body (every test asks for it through `api`)."""
    return rss_megabytes(own_cluster.process.pid)


@pytest.fixture
async def api(own_cluster: Cluster, baseline_rss: float) -> AsyncIterator[RawApi]:
    raw = RawApi(own_cluster.kubeconfig)
    yield raw
    await raw.close()


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text of `depth` nested arrays around `leaf`."""
    return "[" * depth + leaf + "]" * depth


def configmap(name: str, extra: str) -> bytes:
    """A ConfigMap body with an unknown field `x` whose value is the JSON text `extra` (unknown fields are
    walked for duplicate keys and warned about, so any value reaches the server's walkers)."""
    return f'{{"metadata":{{"name":"{name}"}},"x":{extra}}}'.encode()


def yaml_block(depth: int) -> bytes:
    """Block-style YAML mappings nested `depth` deep (no brackets at all)."""
    return ("metadata:\n  name: deep\ndata:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(depth))).encode()


def alias_bomb(levels: int = 9, width: int = 9) -> bytes:
    """The billion laughs: each level an array of `width` aliases of the level below."""
    lines = ["metadata: {name: bomb}", "x:", '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    return "\n".join(lines).encode() + b"\n"


def string_alias_bomb() -> bytes:
    """One 100 KB string referenced 100 times: 10 MB once expanded, from a 100 KB body."""
    refs = ", ".join(["*s"] * 100)
    return f"metadata: {{name: strings}}\nx:\n  s: &s {'x' * 100_000}\n  all: [{refs}]\n".encode()


def protobuf_managed_fields(raw: bytes) -> bytes:
    """A protobuf ConfigMap whose one managedFields entry carries `raw` as its FieldsV1 JSON."""
    managed = field_bytes(1, b"m") + field_bytes(7, field_bytes(1, raw))
    metadata = field_bytes(1, b"proto") + field_bytes(17, managed)
    return envelope("v1", "ConfigMap", field_bytes(1, metadata))


def protobuf_configmap() -> bytes:
    metadata = field_bytes(1, b"proto-cm")
    entry = field_bytes(1, b"key") + field_bytes(2, b"value")
    return envelope("v1", "ConfigMap", field_bytes(1, metadata) + field_bytes(2, entry))


# (id, content type, body) sent as a whole object: POST to create, PUT to update
OBJECT_BODIES = [
    ("deep-json-arrays", JSON, configmap("deep", nested(100_000))),
    ("deep-json-objects", JSON, configmap("deep", '{"a":' * 5000 + "1" + "}" * 5000)),
    ("json-over-max-depth", JSON, configmap("deep", nested(MAX_DEPTH))),
    ("json-1000-deep", JSON, configmap("deep", nested(1000))),
    ("deep-yaml-flow", YAML, b"[" * 50_000),
    ("deep-yaml-flow-closed", YAML, f"metadata: {{name: deep}}\ndata: {nested(5000)}\n".encode()),
    ("deep-yaml-block", YAML, yaml_block(400)),
    ("yaml-alias-bomb", YAML, alias_bomb()),
    ("yaml-string-alias-bomb", YAML, string_alias_bomb()),
    ("yaml-huge-integer", YAML, b"metadata: {name: n}\nrevision: 1" + b"0" * 5000 + b"\n"),
    ("yaml-binary-not-text", YAML, b"metadata: {name: bin}\ndata: !!binary /w==\n"),
    ("huge-string-name", JSON, b'{"metadata":{"name":"' + b"x" * (MAX_BODY_BYTES - 100) + b'"}}'),
    ("invalid-utf8-json", JSON, b'{"metadata":{"name":"\xff\xfe"}}'),
    ("invalid-utf8-yaml", YAML, b"metadata:\n  name: \xff\xfe\n"),
    ("truncated-protobuf", PROTOBUF, protobuf_configmap()[:-3]),
    ("protobuf-bad-utf8", PROTOBUF, envelope("v1", "ConfigMap", field_bytes(1, field_bytes(1, b"\xff")))),
    ("protobuf-deep-fields-v1", PROTOBUF, protobuf_managed_fields(nested(1000).encode())),
    ("over-the-cap", JSON, b" " * (MAX_BODY_BYTES + 1)),
]

DEEP = nested(1000)
DEEP_YAML = f"data: {nested(5000)}\n".encode()
# (id, patch content type, body)
PATCH_BODIES = [
    ("json-patch-deep", JSON_PATCH, f'[{{"op":"add","path":"/data/k","value":{DEEP}}}]'.encode()),
    ("json-patch-deep-arrays", JSON_PATCH, b"[" * 100_000),
    ("merge-patch-deep", MERGE, f'{{"data":{{"k":{DEEP}}}}}'.encode()),
    ("strategic-patch-deep", STRATEGIC, f'{{"data":{{"k":{DEEP}}}}}'.encode()),
    ("apply-deep-json", APPLY, f'{{"apiVersion":"v1","kind":"ConfigMap","data":{DEEP}}}'.encode()),
    ("apply-deep-yaml", APPLY, DEEP_YAML),
    ("apply-yaml-flow-open", APPLY, b"[" * 50_000),
    ("apply-alias-bomb", APPLY, alias_bomb()),
    ("merge-patch-invalid-utf8", MERGE, b'{"data":{"k":"\xff"}}'),
    ("patch-over-the-cap", MERGE, b" " * (MAX_BODY_BYTES + 1)),
]


def assert_4xx_status(reply: Reply) -> dict:
    assert 400 <= reply.status < 500, (reply.status, reply.body[:500])
    body = reply.json()
    assert (body["kind"], body["status"], body["code"]) == ("Status", "Failure", reply.status)
    return body


async def assert_alive(cluster: Cluster, api: RawApi) -> None:
    assert cluster.process.poll() is None, "kube-shim up died:\n" + "".join(cluster.reader.seen[-30:])
    reply = await api.call("GET", "/readyz", content_type=None)
    assert reply.status == 200, reply.body


@pytest.mark.parametrize(("content_type", "body"), [b[1:] for b in OBJECT_BODIES], ids=[b[0] for b in OBJECT_BODIES])
async def test_a_hostile_object_body_is_a_4xx_on_create_and_update(
    own_cluster: Cluster, api: RawApi, content_type: str, body: bytes
) -> None:
    assert_4xx_status(await api.call("POST", CONFIGMAPS, body, content_type=content_type))
    assert_4xx_status(await api.call("PUT", CONFIGMAPS + "/target", body, content_type=content_type))
    await assert_alive(own_cluster, api)


@pytest.mark.parametrize(("content_type", "body"), [b[1:] for b in PATCH_BODIES], ids=[b[0] for b in PATCH_BODIES])
async def test_a_hostile_patch_body_is_a_4xx(own_cluster: Cluster, api: RawApi, content_type: str, body: bytes) -> None:
    params = {"fieldManager": "hostile"} if content_type == APPLY else None
    assert_4xx_status(await api.call("PATCH", CONFIGMAPS + "/target", body, content_type=content_type, params=params))
    await assert_alive(own_cluster, api)


async def test_json_patch_copies_cannot_multiply_the_object(own_cluster: Cluster, api: RawApi) -> None:
    """Each copy doubles the object; 40 of them would need a terabyte, so the accumulated copies are capped."""
    await api.ok("POST", CONFIGMAPS, {"metadata": {"name": "copies"}, "data": {"a": "x" * 1000}})
    copies = [{"op": "copy", "from": "/data", "path": f"/data/c{i}"} for i in range(40)]
    reply = await api.call("PATCH", CONFIGMAPS + "/copies", copies, content_type=JSON_PATCH)
    [cause] = assert_4xx_status(reply)["details"]["causes"]  # a patch that does not apply: kube's generic 422
    assert "copies of this patch exceeded max size" in cause["message"]
    await assert_alive(own_cluster, api)


async def test_json_patches_cannot_add_up_to_an_object_deeper_than_the_limit(own_cluster: Cluster, api: RawApi) -> None:
    half = MAX_DEPTH // 2
    await api.ok("POST", CONFIGMAPS, {"metadata": {"name": "stacked"}})
    value = orjson.loads(nested(half))
    ops = [{"op": "add", "path": "/x", "value": value}, {"op": "add", "path": "/x" + "/0" * half, "value": value}]
    reply = await api.call("PATCH", CONFIGMAPS + "/stacked", ops, content_type=JSON_PATCH)
    assert "exceeded max depth" in assert_4xx_status(reply)["message"]
    await assert_alive(own_cluster, api)


def deep_managed_fields(depth: int) -> dict:
    """A ConfigMap with a managedFields entry whose fieldsV1 (free-form JSON) makes the object `depth` deep."""
    fields: dict = {}
    for _ in range(depth - 5):  # the object, metadata, managedFields, its entry and the innermost {} are 5
        fields = {"f:a": fields}
    entry = {"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields}
    return {"metadata": {"name": "deepest", "managedFields": [entry]}}


async def test_an_object_at_the_depth_limit_is_stored_and_served_in_every_form(
    own_cluster: Cluster, api: RawApi
) -> None:
    """The limit is not a trap: the deepest object accepted reads back as JSON, in lists, Tables and watches."""
    assert_4xx_status(await api.call("POST", CONFIGMAPS, deep_managed_fields(MAX_DEPTH + 1)))
    created = await api.ok("POST", CONFIGMAPS, deep_managed_fields(MAX_DEPTH))
    fields = created["metadata"]["managedFields"][0]["fieldsV1"]
    assert (await api.ok("GET", CONFIGMAPS + "/deepest"))["metadata"]["managedFields"][0]["fieldsV1"] == fields
    items = (await api.ok("GET", CONFIGMAPS))["items"]
    assert "deepest" in [item["metadata"]["name"] for item in items]
    table = "application/json;as=Table;v=v1;g=meta.k8s.io"
    rows = (await api.ok("GET", CONFIGMAPS, params={"includeObject": "Object"}, headers={"Accept": table}))["rows"]
    assert "deepest" in [row["object"]["metadata"]["name"] for row in rows]
    stream = await api.watch(CONFIGMAPS, {"fieldSelector": "metadata.name=deepest"})
    try:
        event = await stream.next()
        assert event is not None and event["object"]["metadata"]["managedFields"][0]["fieldsV1"] == fields
    finally:
        stream.close()
    patched = await api.ok("PATCH", CONFIGMAPS + "/deepest", {"data": {"k": "v"}}, content_type=STRATEGIC)
    assert patched["data"] == {"k": "v"}
    await assert_alive(own_cluster, api)


async def test_the_corpus_leaves_memory_bounded(own_cluster: Cluster, api: RawApi, baseline_rss: float) -> None:
    """Runs last in this module: the corpus above, and three more rounds of it, leave the memory bounded."""
    for _ in range(3):
        for _, content_type, body in OBJECT_BODIES:
            await api.call("POST", CONFIGMAPS, body, content_type=content_type)
    await assert_alive(own_cluster, api)
    assert rss_megabytes(own_cluster.process.pid) - baseline_rss < RSS_GROWTH_LIMIT_MB
