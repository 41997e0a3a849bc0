"""What the DaemonSet controller decides per node: should a daemon pod run there, which pod is up to date, and
the pod it creates for a node.

Follows `pkg/controller/daemon/util/daemonset_util.go` (the tolerations kube adds to daemon pods, the template
labels, the required node affinity on `metadata.name` that pins a pod to its node since 1.12) and
`NodeShouldRunDaemonPod` / `findUpdatedPodsOnNode` in `pkg/controller/daemon/`.
"""

from __future__ import annotations

import copy
from typing import Any

from shim.controllers.history import REVISION_HASH_LABEL
from shim.scheduler.terms import required_node_matcher, tolerates

Obj = dict[str, Any]

TEMPLATE_GENERATION_LABEL = "pod-template-generation"  # kube's DaemonSetTemplateGenerationKey
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"

# AddOrUpdateDaemonPodTolerations: node problems never evict a daemon pod, nor keep one off a node
_DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def template_generation(ds: Obj) -> str | None:
    """The DaemonSet's template generation as its pods' label carries it (None when unknown)."""
    value = (ds["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    return value if value and value.isdigit() else None


def add_daemon_tolerations(pod_spec: Obj) -> None:
    """Add (or replace, by key and effect) the tolerations every daemon pod gets, in place."""
    wanted = list(_DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        wanted.append(_HOST_NETWORK_TOLERATION)
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or ()]
    for toleration in wanted:
        same = [
            i
            for i, t in enumerate(tolerations)
            if t.get("key") == toleration["key"] and t.get("effect") == toleration["effect"]
        ]
        if same:
            tolerations[same[0]] = dict(toleration)
        else:
            tolerations.append(dict(toleration))
    pod_spec["tolerations"] = tolerations


def should_run(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """NodeShouldRunDaemonPod: (a daemon pod should be created there, one already there may keep running).

    A node the template's nodeName, nodeSelector or required node affinity rules out gets neither; an
    untolerated NoSchedule taint keeps new pods off but lets running ones stay; an untolerated NoExecute
    taint gets neither. The daemon tolerations count (a cordoned or not-ready node keeps its pods)."""
    pod_spec = copy.copy(ds["spec"]["template"].get("spec") or {})
    name = node["metadata"]["name"]
    if pod_spec.get("nodeName") and pod_spec["nodeName"] != name:
        return False, False
    matcher = required_node_matcher(pod_spec)
    if matcher is not None and not matcher(node["metadata"].get("labels") or {}, name):
        return False, False
    add_daemon_tolerations(pod_spec)
    tolerations = pod_spec["tolerations"]
    untolerated = [t for t in (node.get("spec") or {}).get("taints") or () if not tolerates(tolerations, t)]
    if any(t.get("effect") == "NoExecute" for t in untolerated):
        return False, False
    if any(t.get("effect") == "NoSchedule" for t in untolerated):
        return False, True
    return True, True


def daemon_pod_template(ds: Obj, hash_: str) -> Obj:
    """CreatePodTemplate: the DaemonSet's template with the daemon tolerations and its generation and hash labels."""
    template = copy.deepcopy(ds["spec"].get("template") or {})
    meta = template.setdefault("metadata", {})
    labels = meta.get("labels")
    if labels is None:
        labels = meta["labels"] = {}
    generation = template_generation(ds)
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = generation
    if hash_:
        labels[REVISION_HASH_LABEL] = hash_
    add_daemon_tolerations(template.setdefault("spec", {}))
    return template


def pin_to_node(pod_spec: Obj, node_name: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required node affinity becomes `metadata.name In [node]`
    (the controller already checked the template's own terms), so the scheduler binds it there."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    affinity = pod_spec.get("affinity")
    affinity = pod_spec["affinity"] = dict(affinity) if affinity else {}
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    required = dict(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    required["nodeSelectorTerms"] = [term]
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    affinity["nodeAffinity"] = node_affinity


def target_node(pod: Obj) -> str:
    """GetTargetNodeName: where a daemon pod runs, or the node its affinity pins it to while unscheduled."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or ():
        for field in term.get("matchFields") or ():
            values = field.get("values") or []
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""


def is_pod_updated(pod: Obj, hash_: str, generation: str | None) -> bool:
    """IsPodUpdated: the pod carries the current revision's hash, or the current template generation."""
    labels = pod["metadata"].get("labels") or {}
    hash_matches = bool(hash_) and labels.get(REVISION_HASH_LABEL) == hash_
    return hash_matches or (generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == generation)


def updated_and_old(pods: list[Obj], hash_: str, generation: str | None) -> tuple[Obj | None, Obj | None, bool]:
    """findUpdatedPodsOnNode: (the up-to-date pod, the old pod, ok); not ok when a node has two of either."""
    new = old = None
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if is_pod_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def by_age_and_phase(pod: Obj) -> tuple[int, str, str]:
    """podByCreationTimestampAndPhase: pods with a node first, then oldest first (by name on a tie)."""
    return (
        0 if (pod.get("spec") or {}).get("nodeName") else 1,
        pod["metadata"].get("creationTimestamp") or "",
        pod["metadata"].get("name", ""),
    )
