"""Defaulting of a PodSpec, for pods and for the pod templates inside workloads.

Follows `pkg/apis/core/v1/defaults.go` and its generated declarative defaults: SetDefaults_PodSpec,
_Container, _Probe, _HTTPGetAction, _Volume and friends, the v1<->internal conversions that
show (`serviceAccount` mirrors `serviceAccountName`), and ResourceList rounding. SetDefaults_Pod (what only
a Pod gets, not a template) is `default_pod_only_fields`. Everything works in place on plain dicts.
"""

from __future__ import annotations

from typing import Any

from shim.machinery.quantity import canonicalize, canonicalize_resource_list

Obj = dict[str, Any]

DEFAULT_TERMINATION_GRACE_PERIOD = 30
SECRET_DEFAULT_MODE = 0o644  # serialised as 420
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and everything nested in it (containers, volumes, probes, ports, env)."""
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_TERMINATION_GRACE_PERIOD
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    _mirror_service_account(spec)
    for volume in spec.get("volumes") or ():
        _default_volume(volume)
    for key in CONTAINER_LISTS:
        for container in spec.get(key) or ():
            _default_container(container)
    if spec.get("overhead"):
        canonicalize_resource_list(spec["overhead"])


def default_pod_only_fields(spec: Obj) -> None:
    """SetDefaults_Pod: requests default to limits, service links on, host-network ports mirrored."""
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or ():
            resources = container.get("resources") or {}
            limits = resources.get("limits")
            if limits:
                requests = resources.setdefault("requests", {})
                for name, value in limits.items():
                    requests.setdefault(name, value)
            if spec.get("hostNetwork"):
                for port in container.get("ports") or ():
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort", 0)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True


def image_pull_policy(image: str) -> str:
    """The default pull policy: Always for `:latest` or no tag, IfNotPresent otherwise (digests included)."""
    return "Always" if _image_tag(image) == "latest" else "IfNotPresent"


def _image_tag(image: str) -> str:
    """The tag kubelet's parsers.ParseImageName finds: "latest" when absent, "" for a digest or a bad name."""
    name, _, digest = image.partition("@")
    components = name.split("/")
    if len(components) > 1 and ("." in components[0] or ":" in components[0] or components[0] == "localhost"):
        components = components[1:]  # a registry host may carry a port and upper case; the path may not
    last = components[-1]
    repository, _, tag = last.partition(":")
    if not repository or any(c != c.lower() for c in components[:-1]) or repository != repository.lower():
        return ""
    if tag:
        return tag
    return "" if digest else "latest"


def _mirror_service_account(spec: Obj) -> None:
    """The v1 conversion: serviceAccountName wins, the deprecated serviceAccount always echoes it."""
    name = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if name:
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name
    else:
        spec.pop("serviceAccount", None)


def _default_container(container: Obj) -> None:
    if not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = image_pull_policy(container.get("image") or "")
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    resources = container.get("resources")
    if resources is None:
        container["resources"] = {}
    else:
        for key in ("limits", "requests"):
            if resources.get(key):
                canonicalize_resource_list(resources[key])
    for port in container.get("ports") or ():
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for env in container.get("env") or ():
        source = env.get("valueFrom")
        if source:
            _default_field_refs(source)
    for probe_key in _PROBES:
        probe = container.get(probe_key)
        if probe is not None:
            _default_probe(probe)
    lifecycle = container.get("lifecycle")
    if lifecycle:
        for hook in ("postStart", "preStop"):
            if lifecycle.get(hook):
                _default_handler(lifecycle[hook])


def _default_probe(probe: Obj) -> None:
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if not probe.get(key):
            probe[key] = value
    _default_handler(probe)
    grpc = probe.get("grpc")
    if grpc is not None and grpc.get("service") is None:
        grpc["service"] = ""


def _default_handler(handler: Obj) -> None:
    http = handler.get("httpGet")
    if http is not None:
        if not http.get("path"):
            http["path"] = "/"
        if not http.get("scheme"):
            http["scheme"] = "HTTP"


def _default_field_refs(source: Obj) -> None:
    """An env var's valueFrom, or a downward API item: fieldRef.apiVersion v1, resourceFieldRef.divisor."""
    field_ref = source.get("fieldRef")
    if field_ref is not None and not field_ref.get("apiVersion"):
        field_ref["apiVersion"] = "v1"
    resource_ref = source.get("resourceFieldRef")
    if resource_ref is not None:
        # a zero Quantity is not omitted by Go's encoder, so kube always shows the divisor
        resource_ref["divisor"] = canonicalize(resource_ref.get("divisor") or "0")


def _default_volume(volume: Obj) -> None:
    if not any(key in volume for key in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = volume.get(key)
        if source is not None and source.get("defaultMode") is None:
            source["defaultMode"] = SECRET_DEFAULT_MODE
    for item in (volume.get("downwardAPI") or {}).get("items") or ():
        _default_field_refs(item)
    for projection in (volume.get("projected") or {}).get("sources") or ():
        token = projection.get("serviceAccountToken")
        if token is not None and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = 3600
        for item in (projection.get("downwardAPI") or {}).get("items") or ():
            _default_field_refs(item)
    host_path = volume.get("hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""
    empty_dir = volume.get("emptyDir")
    if empty_dir and empty_dir.get("sizeLimit") is not None:
        empty_dir["sizeLimit"] = canonicalize(empty_dir["sizeLimit"])
    claim_spec = ((volume.get("ephemeral") or {}).get("volumeClaimTemplate") or {}).get("spec")
    if claim_spec is not None and not claim_spec.get("volumeMode"):
        claim_spec["volumeMode"] = "Filesystem"
