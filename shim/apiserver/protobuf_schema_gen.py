"""Generate `protobuf_schema.json`, the field table `protobuf.py` decodes Kubernetes protobuf bodies with.

Input is a directory of upstream `generated.proto` files laid out by import path, e.g.
`DIR/k8s.io/api/core/v1/generated.proto` and `DIR/k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`.
The .proto files are not committed. To refill DIR, fetch each file listed in `PROTO_FILES` from the
kubernetes/kubernetes repository (`staging/src/<path>`; kubernetes/api and kubernetes/apimachinery hold the
same files) at the release you target and save it under DIR/<path>. Comments may be stripped and messages
nothing reaches (lists, options) left out: only `package`, `message` and field lines are read. The committed
table comes from the Kubernetes 1.32 files; fields added later (1.33: DeploymentStatus.terminatingReplicas,
Lifecycle.stopSignal, PodStatus.observedGeneration, ...) are skipped as unknown until it is regenerated.

    python -m shim.apiserver.protobuf_schema_gen DIR

Output (`protobuf_schema.json` next to this file):
    {"kinds": {"apps/v1": {"Deployment": "k8s.io.api.apps.v1.Deployment", ...}, ...},
     "messages": {"k8s.io.api.apps.v1.Deployment": {"1": ["metadata", "<message>", "one"], ...}, ...}}
A field is [json name, scalar type or full message name, cardinality]; cardinality is "one", "many", "map"
(string keys; the type is the value's) or "inline" (a Go struct embedded with `json:",inline"`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

PROTO_FILES = [
    "k8s.io/apimachinery/pkg/runtime/generated.proto",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
    "k8s.io/apimachinery/pkg/api/resource/generated.proto",
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/batch/v1/generated.proto",
    "k8s.io/api/rbac/v1/generated.proto",
    "k8s.io/api/scheduling/v1/generated.proto",
    "k8s.io/api/policy/v1/generated.proto",
    "k8s.io/api/networking/v1/generated.proto",
    "k8s.io/api/coordination/v1/generated.proto",
    "k8s.io/api/events/v1/generated.proto",
    "k8s.io/api/authentication/v1/generated.proto",
    "k8s.io/api/authorization/v1/generated.proto",
]

# The API group each k8s.io/api package serves; "" is the legacy core group (apiVersion "v1").
API_GROUPS = {
    "core": "",
    "apps": "apps",
    "batch": "batch",
    "rbac": "rbac.authorization.k8s.io",
    "scheduling": "scheduling.k8s.io",
    "policy": "policy",
    "networking": "networking.k8s.io",
    "coordination": "coordination.k8s.io",
    "events": "events.k8s.io",
    "authentication": "authentication.k8s.io",
    "authorization": "authorization.k8s.io",
}

# Messages that carry ObjectMeta but are templates inside other objects, not kinds.
NOT_KINDS = {"PodTemplateSpec", "JobTemplateSpec", "PersistentVolumeClaimTemplate"}

# Go structs embedded with `json:",inline"`: their fields appear directly in the parent's JSON.
INLINE_FIELDS = {
    ("k8s.io.api.core.v1.ConfigMapEnvSource", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapKeySelector", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapProjection", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretEnvSource", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretKeySelector", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretProjection", "localObjectReference"),
    ("k8s.io.api.core.v1.Probe", "handler"),
    ("k8s.io.api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    ("k8s.io.api.core.v1.PersistentVolumeSpec", "persistentVolumeSource"),
    ("k8s.io.api.core.v1.Volume", "volumeSource"),
    ("k8s.io.api.networking.v1.IngressRule", "ingressRuleValue"),
}

# Protobuf names that differ from the Go struct's JSON tag.
JSON_NAMES = {
    ("k8s.io.api.networking.v1.IngressClassParametersReference", "aPIGroup"): "apiGroup",
    ("k8s.io.api.authentication.v1.BoundObjectReference", "uID"): "uid",
}

SCALARS = {"string", "bytes", "bool", "int32", "int64"}  # the scalar types protobuf.py decodes
UNKNOWN_ENVELOPE = "k8s.io.apimachinery.pkg.runtime.Unknown"

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_PACKAGE = re.compile(r"\bpackage\s+([\w.]+)\s*;")
_MESSAGE = re.compile(r"\bmessage\s+(\w+)\s*\{([^{}]*)\}")
_FIELD = re.compile(r"(optional|required|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)")
_MAP_FIELD = re.compile(r"map\s*<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)")

Field = list  # [json name, type, cardinality]


def main(argv: list[str]) -> int:
    """Read the .proto files under argv[1] and write protobuf_schema.json beside this module."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    messages: dict[str, dict[int, Field]] = {}
    for rel in PROTO_FILES:
        messages.update(parse_proto((Path(argv[1]) / rel).read_text()))
    schema = build_schema(messages)
    out = Path(__file__).with_name("protobuf_schema.json")
    out.write_text(render(schema))
    print(f"wrote {out}: {len(schema['messages'])} messages, {sum(map(len, schema['kinds'].values()))} kinds")
    return 0


def parse_proto(text: str) -> dict[str, dict[int, Field]]:
    """Messages of one proto2 file, keyed by full name, with each field's JSON name, type and cardinality."""
    text = _COMMENTS.sub("", text)
    package_match = _PACKAGE.search(text)
    if package_match is None:
        raise ValueError("no package statement")
    package = package_match.group(1)
    messages: dict[str, dict[int, Field]] = {}
    for name, body in _MESSAGE.findall(text):
        full = f"{package}.{name}"
        fields: dict[int, Field] = {}
        for key_type, value_type, field, number in _MAP_FIELD.findall(body):
            if key_type != "string":
                raise ValueError(f"{full}.{field}: map key {key_type} is not string")
            fields[int(number)] = _field(full, field, _resolve(package, value_type), "map")
        for label, type_name, field, number in _FIELD.findall(body):
            cardinality = "many" if label == "repeated" else "one"
            if (full, field) in INLINE_FIELDS:
                cardinality = "inline"
            fields[int(number)] = _field(full, field, _resolve(package, type_name), cardinality)
        messages[full] = fields
    return messages


def build_schema(messages: dict[str, dict[int, Field]]) -> dict:
    """The kinds table and every message reachable from a kind or the envelope; fails on a missing type."""
    kinds: dict[str, dict[str, str]] = {}
    for full, fields in messages.items():
        parts = full.split(".")  # k8s.io.api.<package>.<version>.<Kind>
        if parts[:3] != ["k8s", "io", "api"] or parts[-1] in NOT_KINDS:
            continue
        if fields.get(1, [None, None])[1] != "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta":
            continue
        group = API_GROUPS[parts[3]]
        api_version = f"{group}/{parts[4]}" if group else parts[4]
        kinds.setdefault(api_version, {})[parts[-1]] = full
    reachable: dict[str, dict[int, Field]] = {}
    pending = [UNKNOWN_ENVELOPE, *(full for table in kinds.values() for full in table.values())]
    while pending:
        full = pending.pop()
        if full in reachable:
            continue
        if full not in messages:
            raise ValueError(f"message {full} is referenced but not defined in the .proto files")
        reachable[full] = messages[full]
        pending.extend(type_name for _, type_name, _ in messages[full].values() if type_name not in SCALARS)
    return {
        "kinds": {version: dict(sorted(table.items())) for version, table in sorted(kinds.items())},
        "messages": {full: dict(sorted(reachable[full].items())) for full in sorted(reachable)},
    }


def render(schema: dict) -> str:
    """JSON with one message per line, so a regenerated table diffs readably."""
    lines = ['{"kinds": ' + json.dumps(schema["kinds"]) + ",", ' "messages": {']
    entries = [f"  {json.dumps(full)}: {json.dumps(fields)}" for full, fields in schema["messages"].items()]
    lines.append(",\n".join(entries))
    lines.append(" }}\n")
    return "\n".join(lines)


def _field(message: str, name: str, type_name: str, cardinality: str) -> Field:
    return [JSON_NAMES.get((message, name), name), type_name, cardinality]


def _resolve(package: str, type_name: str) -> str:
    """A field type as a scalar name or a full message name (leading dot = already fully qualified)."""
    if type_name in SCALARS:
        return type_name
    if type_name.islower():  # message names are CamelCase, scalar types are not
        raise ValueError(f"scalar type {type_name} is not one protobuf.py decodes")
    if type_name.startswith("."):
        return type_name[1:]
    return f"{package}.{type_name}"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
