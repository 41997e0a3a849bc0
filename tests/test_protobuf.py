"""Protobuf request bodies from the real kubectl 1.32/1.33 decode to the JSON a JSON client would have sent.

A small recording server answers each write with 201 and the decoded body (kubectl takes a JSON reply) and
keeps what it saw. Observed with kubectl 1.32.5 and 1.33.1 (1.27-1.31 send JSON for all of these):
- `kubectl create deployment|configmap|secret generic/docker-registry|namespace|service clusterip/nodeport/
  externalname|serviceaccount|job|cronjob|priorityclass|ingress|poddisruptionbudget|quota|role|clusterrole|
  rolebinding|clusterrolebinding` POST `Content-Type: application/vnd.kubernetes.protobuf` with
  `Accept: application/vnd.kubernetes.protobuf,application/json` to the collection, query
  `fieldManager=kubectl-create&fieldValidation=Strict` (`dryRun=All` first with `--dry-run=server`).
- `kubectl create token` (POST serviceaccounts/NAME/token, no query), `kubectl auth can-i`
  (selfsubjectaccessreviews) and `kubectl auth whoami` (selfsubjectreviews) send protobuf too.
- `kubectl run` (fieldManager=kubectl-run) and `kubectl expose` (fieldManager=kubectl-expose) send JSON.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import kubernetes_validate
import orjson
import pytest
from aiohttp import web

from shim.apiserver import protobuf
from shim.apiserver.protobuf import MAGIC, ProtobufDecodeError, decode_object
from tests.protobuf_kit import envelope, field_bytes, field_varint
from tests.recorder import Kubectl, Recorded, Recorder, kubectl_for, recording_server


async def echo_created(request: web.Request, body: bytes) -> web.Response:
    """201 with the object decoded from a write, as JSON; 404 for anything else."""
    if request.method != "POST":
        return web.json_response({"kind": "Status", "status": "Failure", "code": 404}, status=404)
    obj = decode_object(body) if request.content_type == protobuf.CONTENT_TYPE else orjson.loads(body)
    return web.Response(body=orjson.dumps(obj), status=201, content_type="application/json")


class Creator:
    """Runs `kubectl create ...` and returns the one write it sent."""

    def __init__(self, kubectl: Kubectl, recorder: Recorder) -> None:
        self.kubectl = kubectl
        self.recorder = recorder

    async def create(self, *args: str) -> Recorded:
        seen = len(self.recorder.requests)
        code, output = await self.kubectl.run("create", *args)
        assert code == 0, output
        assert "created" in output, output
        writes = [r for r in self.recorder.requests[seen:] if r.method == "POST"]
        assert len(writes) == 1, writes
        return writes[0]


@pytest.fixture(params=["1.32", "1.33"])
async def creator(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Creator]:
    async with recording_server(echo_created) as recorder:
        yield Creator(kubectl_for(request.param, recorder.url, tmp_path), recorder)


def assert_protobuf_create(recorded: Recorded, path: str) -> dict:
    assert recorded.path == path
    assert recorded.query == {"fieldManager": "kubectl-create", "fieldValidation": "Strict"}
    assert recorded.headers["Content-Type"] == "application/vnd.kubernetes.protobuf"
    assert recorded.headers["Accept"] == "application/vnd.kubernetes.protobuf,application/json"
    assert recorded.body.startswith(MAGIC)
    return decode_object(recorded.body)


async def test_a_deployment_decodes_with_replicas_selector_and_container_ports(creator: Creator) -> None:
    recorded = await creator.create("deployment", "web", "--image=nginx", "--replicas=2", "--port=80")
    obj = assert_protobuf_create(recorded, "/apis/apps/v1/namespaces/default/deployments")
    assert obj["apiVersion"] == "apps/v1"
    assert obj["kind"] == "Deployment"
    assert obj["metadata"]["name"] == "web"
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert "creationTimestamp" not in obj["metadata"]  # the zero time gogo sends is JSON null: dropped
    spec = obj["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["template"]["metadata"]["labels"] == {"app": "web"}
    [container] = spec["template"]["spec"]["containers"]
    assert container["name"] == "nginx"
    assert container["image"] == "nginx"
    assert container["ports"] == [{"containerPort": 80}]  # gogo wrote hostPort 0: omitempty drops it
    assert not {"stdin", "tty", "stdinOnce"} & set(container)  # non-pointer false: dropped too
    assert "paused" not in spec and "minReadySeconds" not in spec
    assert container["resources"] == {}
    assert "imagePullPolicy" not in container  # gogo wrote "", a JSON client leaves it out
    assert spec["strategy"] == {}


async def test_a_pointer_zero_survives_where_non_pointer_zeros_are_dropped(creator: Creator) -> None:
    recorded = await creator.create("deployment", "none", "--image=nginx", "--replicas=0")
    spec = assert_protobuf_create(recorded, "/apis/apps/v1/namespaces/default/deployments")["spec"]
    assert spec["replicas"] == 0  # *int32: zero means zero replicas, not "unset"


async def test_a_service_keeps_an_int_target_port(creator: Creator) -> None:
    recorded = await creator.create("service", "clusterip", "svc", "--tcp=80:8080")
    obj = assert_protobuf_create(recorded, "/api/v1/namespaces/default/services")
    assert obj["kind"] == "Service"
    assert obj["metadata"]["labels"] == {"app": "svc"}
    assert obj["spec"]["type"] == "ClusterIP"
    assert obj["spec"]["selector"] == {"app": "svc"}
    [port] = obj["spec"]["ports"]
    assert port["name"] == "80-8080"
    assert port["protocol"] == "TCP"
    assert port["port"] == 80
    assert port["targetPort"] == 8080  # IntOrString type 0 -> a JSON number


async def test_a_configmap_and_a_secret_carry_their_data(creator: Creator) -> None:
    recorded = await creator.create("configmap", "c", "--from-literal=a=b")
    cm = assert_protobuf_create(recorded, "/api/v1/namespaces/default/configmaps")
    assert (cm["kind"], cm["metadata"]["name"], cm["data"]) == ("ConfigMap", "c", {"a": "b"})

    recorded = await creator.create("secret", "generic", "s", "--from-literal=k=v")
    secret = assert_protobuf_create(recorded, "/api/v1/namespaces/default/secrets")
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == "s"
    assert secret["data"] == {"k": base64.b64encode(b"v").decode()}  # []byte is base64 in JSON


async def test_cluster_scoped_and_small_kinds_decode(creator: Creator) -> None:
    recorded = await creator.create("namespace", "n")
    ns = assert_protobuf_create(recorded, "/api/v1/namespaces")
    assert (ns["apiVersion"], ns["kind"], ns["metadata"]["name"]) == ("v1", "Namespace", "n")

    recorded = await creator.create("priorityclass", "pc", "--value=10")
    pc = assert_protobuf_create(recorded, "/apis/scheduling.k8s.io/v1/priorityclasses")
    assert (pc["apiVersion"], pc["kind"]) == ("scheduling.k8s.io/v1", "PriorityClass")
    assert pc["value"] == 10
    assert "globalDefault" not in pc  # a non-pointer false, as JSON would omit it
    assert pc["preemptionPolicy"] == "PreemptLowerPriority"

    recorded = await creator.create("serviceaccount", "sa")
    sa = assert_protobuf_create(recorded, "/api/v1/namespaces/default/serviceaccounts")
    assert (sa["kind"], sa["metadata"]["name"]) == ("ServiceAccount", "sa")


async def test_a_job_gets_its_pod_template(creator: Creator) -> None:
    recorded = await creator.create("job", "j", "--image=busybox")
    job = assert_protobuf_create(recorded, "/apis/batch/v1/namespaces/default/jobs")
    assert (job["apiVersion"], job["kind"], job["metadata"]["name"]) == ("batch/v1", "Job", "j")
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    [container] = pod_spec["containers"]
    assert (container["name"], container["image"], container["resources"]) == ("j", "busybox", {})


def test_times_int_or_strings_and_unknown_fields_follow_the_json_form() -> None:
    time = field_varint(1, 1767323045)  # 2026-01-02T03:04:05Z
    micro = field_varint(1, 1767323045) + field_varint(2, 123456789)
    fields_v1 = field_bytes(1, b'{"f:metadata":{}}')
    managed = field_bytes(1, b"m") + field_bytes(4, time) + field_bytes(7, fields_v1)
    metadata = field_bytes(1, b"l") + field_bytes(8, time) + field_bytes(17, managed) + field_varint(99, 7)
    spec = field_bytes(3, micro) + field_varint(2, (-5) % (1 << 64))  # acquireTime, a negative int32
    lease = decode_object(envelope("coordination.k8s.io/v1", "Lease", field_bytes(1, metadata) + field_bytes(2, spec)))
    assert lease["metadata"] == {
        "name": "l",
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "managedFields": [{"manager": "m", "time": "2026-01-02T03:04:05Z", "fieldsV1": {"f:metadata": {}}}],
    }
    assert lease["spec"] == {"acquireTime": "2026-01-02T03:04:05.123456Z", "leaseDurationSeconds": -5}

    named_port = field_varint(1, 1) + field_bytes(3, b"http")
    port = field_varint(3, 80) + field_bytes(4, named_port) + field_bytes(2, b"")
    svc = decode_object(envelope("v1", "Service", field_bytes(2, field_bytes(1, port))))
    assert svc["spec"]["ports"] == [{"port": 80, "targetPort": "http"}]  # empty protocol dropped


def test_inline_structs_are_flattened_into_their_parent() -> None:
    key_ref = field_bytes(1, field_bytes(1, b"cm")) + field_bytes(2, b"k")  # ConfigMapKeySelector
    env = field_bytes(1, b"E") + field_bytes(3, field_bytes(3, key_ref))
    container = field_bytes(1, b"c") + field_bytes(7, env)
    volume = field_bytes(1, b"v") + field_bytes(2, field_bytes(2, b""))  # Volume{volumeSource{emptyDir{}}}
    pod_spec = field_bytes(2, container) + field_bytes(1, volume)
    pod = decode_object(envelope("v1", "Pod", field_bytes(2, pod_spec)))
    assert pod["spec"]["containers"][0]["env"] == [
        {"name": "E", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}
    ]
    assert pod["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]


def lease_acquired_at(time: bytes) -> bytes:
    return envelope("coordination.k8s.io/v1", "Lease", field_bytes(2, field_bytes(3, time)))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"kind":"Pod"}', "magic"),
        (envelope("v1", "Frobnicator", b""), "no protobuf decoding for kind 'Frobnicator'"),
        (envelope("v1", "Pod", b"\x0a\x05ab"), "past the end"),
        (MAGIC + b"\x0a", "varint"),
        (envelope("v1", "Pod", field_varint(1, 3)), "wire type 0"),
        (lease_acquired_at(field_varint(1, 1 << 62)), "timestamp out of range"),
        (
            envelope("v1", "Pod", field_bytes(1, field_bytes(17, field_bytes(7, field_bytes(1, b"{"))))),
            "JSON",
        ),
    ],
)
def test_malformed_bodies_raise_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufDecodeError, match=message):
        decode_object(body)


def upstream_definitions() -> dict:
    """The v1.33 OpenAPI definitions kubernetes-validate ships, keyed like `io.k8s.api.core.v1.Pod`."""
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.33.0-local"
    return orjson.loads((root / "_definitions.json").read_bytes())["$defs"]


def definition_name(message: str) -> str:
    """`k8s.io.api.core.v1.Pod` (protobuf) -> `io.k8s.api.core.v1.Pod` (OpenAPI)."""
    return "io.k8s." + message.removeprefix("k8s.io.")


def test_the_field_table_uses_the_json_names_of_the_upstream_schema() -> None:
    definitions = upstream_definitions()
    table = orjson.loads(Path(protobuf.__file__).with_name("protobuf_schema.json").read_bytes())
    messages = table["messages"]

    def json_names(message: str) -> set[str]:
        names: set[str] = set()
        for name, type_name, cardinality in messages[message].values():
            names |= json_names(type_name) if cardinality == "inline" else {name}
        return names

    checked, wrong = 0, {}
    for message in messages:
        properties = definitions.get(definition_name(message), {}).get("properties")
        if properties is None:  # custom JSON forms (Time, IntOrString, ...) and unserved envelopes
            continue
        checked += 1
        if unknown := json_names(message) - set(properties):
            wrong[message] = unknown
    assert wrong == {}
    assert checked > 250

    for api_version, kinds in table["kinds"].items():
        for kind, message in kinds.items():
            group, _, version = api_version.rpartition("/")
            gvks = definitions[definition_name(message)]["x-kubernetes-group-version-kind"]
            assert {"group": group, "version": version, "kind": kind} in gvks
