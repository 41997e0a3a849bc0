"""What kube's controllers and scheduler write, as a 1.33 cluster shows it (issue 18, item 23).

Where kube's expected text comes from:
- Namespace conditions: pkg/controller/namespace/deletion/status_condition_utils.go (`okReasons`, `okMessages`,
  `ProcessContentTotals`: "Some resources are remaining: pods. has 1 resource instances", "Some content in the
  namespace has finalizers remaining: <finalizer> in N resource instances", sorted; condition order is
  `conditionTypes`) and namespaced_resources_deleter.go (which content counts as remaining).
"""

from __future__ import annotations

import json
from typing import Any

from tests.cluster import Cluster, wait_until

HOLD = "example.com/hold"


def conditions(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    shown = json.loads(cluster.kubectl("get", "namespace", namespace, "-o", "json").stdout)
    return shown.get("status", {}).get("conditions") or []


def test_a_terminating_namespace_says_what_remains_and_which_finalizers_hold_it(
    cluster: Cluster, namespace: str
) -> None:
    held = {"metadata": {"finalizers": [HOLD]}}
    cluster.kubectl("create", "configmap", "kept", "-n", namespace)
    cluster.kubectl("run", "p", "-n", namespace, "--image=busybox", "--overrides", json.dumps(held))
    cluster.kubectl("patch", "configmap", "kept", "-n", namespace, "--type=merge", "-p", json.dumps(held))
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")

    def remaining_reported() -> list[dict[str, Any]] | None:
        found = conditions(cluster, namespace)
        return found if any(c["type"] == "NamespaceContentRemaining" for c in found) else None

    found = wait_until(remaining_reported, what="the namespace controller's conditions")
    assert all(c["lastTransitionTime"].endswith("Z") for c in found)
    assert [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in found] == [
        {
            "type": "NamespaceDeletionDiscoveryFailure",
            "status": "False",
            "reason": "ResourcesDiscovered",
            "message": "All resources successfully discovered",
        },
        {
            "type": "NamespaceDeletionGroupVersionParsingFailure",
            "status": "False",
            "reason": "ParsedGroupVersions",
            "message": "All legacy kube types successfully parsed",
        },
        {
            "type": "NamespaceDeletionContentFailure",
            "status": "False",
            "reason": "ContentDeleted",
            "message": "All content successfully deleted, may be waiting on finalization",
        },
        {
            "type": "NamespaceContentRemaining",
            "status": "True",
            "reason": "SomeResourcesRemain",
            "message": "Some resources are remaining: configmaps. has 1 resource instances, "
            "pods. has 1 resource instances",
        },
        {
            "type": "NamespaceFinalizersRemaining",
            "status": "True",
            "reason": "SomeFinalizersRemain",
            "message": f"Some content in the namespace has finalizers remaining: {HOLD} in 2 resource instances",
        },
    ]
    described = cluster.kubectl("describe", "namespace", namespace).stdout
    assert "NamespaceContentRemaining" in described and "SomeResourcesRemain" in described

    release = json.dumps({"metadata": {"finalizers": None}})
    for kind, name in (("configmap", "kept"), ("pod", "p")):
        cluster.kubectl("patch", kind, name, "-n", namespace, "--type=merge", "-p", release)
    gone = cluster.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=60s", check=False)
    assert gone.returncode == 0, gone.stderr
