"""The served kinds behave as kube-apiserver 1.33: defaults, admission, validation messages, QoS, Scale."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from shim.apiserver import errors
from shim.apiserver.errors import ApiError
from shim.apiserver.kinds.apps import apply_scale, scale_from
from shim.apiserver.kinds.eviction import validate_eviction
from shim.apiserver.kinds.meta import NameRule, validate_object_meta, validate_object_meta_update
from shim.apiserver.kinds.pods import admit_pod_priority, qos_class
from shim.apiserver.resources import build_registry
from shim.machinery.quantity import canonicalize

REGISTRY = build_registry()
SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def resource(group: str, plural: str) -> Any:
    rt = REGISTRY.lookup(group, "v1", plural)
    assert rt is not None
    return rt


def create(group: str, plural: str, body: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    """The create pipeline as kube runs it: decode+default, admission, prepare, validate (raises 422)."""
    rt = resource(group, plural)
    obj = copy.deepcopy(body)
    if rt.namespaced:
        obj.setdefault("metadata", {})["namespace"] = namespace
    rt.strategy.default(obj)
    if plural == "pods":
        admit_pod_priority(obj, None)
    rt.strategy.prepare_for_create(obj)
    causes = validate_object_meta(obj, rt.namespaced, rt.strategy.name_rule) + rt.strategy.validate(obj)
    if causes:
        raise errors.invalid(rt.group, rt.kind, obj["metadata"].get("name", ""), causes)
    return obj


def update(group: str, plural: str, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """The main-endpoint update pipeline: status kept, prepare, default, validate (raises 422)."""
    rt = resource(group, plural)
    obj = copy.deepcopy(new)
    if rt.strategy.has_status_subresource:
        obj["status"] = copy.deepcopy(old.get("status"))
    rt.strategy.prepare_for_update(obj, old)
    rt.strategy.default(obj)
    causes = validate_object_meta_update(obj, old) + rt.strategy.validate_update(obj, old)
    if causes:
        raise errors.invalid(rt.group, rt.kind, obj["metadata"].get("name", ""), causes)
    return obj


def rejected(call: Any, *args: Any) -> str:
    with pytest.raises(ApiError) as info:
        call(*args)
    assert info.value.code == 422
    return info.value.message


def kubectl_run_body(name: str = "nginx", image: str = "nginx") -> dict[str, Any]:
    """What `kubectl run nginx --image=nginx` POSTs (kubectl-wire.md §4)."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": None, "labels": {"run": name}},
        "spec": {
            "containers": [{"name": name, "image": image, "resources": {}}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
        },
        "status": {},
    }


def deployment_body(name: str = "web", labels: dict[str, str] | None = None) -> dict[str, Any]:
    """What `kubectl create deployment web --image=nginx --replicas=2` sends (kubectl-wire.md §5)."""
    labels = labels or {"app": name}
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "creationTimestamp": None, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": labels},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
            },
            "strategy": {},
        },
        "status": {},
    }


# -- pods ------------------------------------------------------------------------------------------------


def test_a_kubectl_run_pod_reads_back_as_a_real_cluster_shows_it() -> None:
    pod = create("", "pods", kubectl_run_body())
    # `kubectl get pod nginx -o yaml` on 1.33, minus the kube-api-access token volume and its mount
    assert pod["spec"] == {
        "containers": [
            {
                "image": "nginx",
                "imagePullPolicy": "Always",
                "name": "nginx",
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }
        ],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": "default",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
        "tolerations": [
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "tolerationSeconds": 300,
            },
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "tolerationSeconds": 300,
            },
        ],
    }
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("localhost:5000/team/app", "Always"),
        ("registry.example:5000/app:v2", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy_defaults_to_always_only_for_latest(image: str, policy: str) -> None:
    pod = create("", "pods", kubectl_run_body(image=image))
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_container_ports_probes_and_env_get_their_defaults() -> None:
    body = kubectl_run_body()
    body["spec"]["containers"][0].update(
        ports=[{"containerPort": 80}],
        readinessProbe={"httpGet": {"port": 80}},
        env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    )
    container = create("", "pods", body)["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert container["readinessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert container["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}


def test_a_pod_that_states_its_own_tolerations_for_unready_nodes_keeps_them() -> None:
    body = kubectl_run_body()
    body["spec"]["tolerations"] = [{"operator": "Exists"}]
    assert create("", "pods", body)["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_a_pod_named_with_an_underscore_is_invalid_with_kubes_message() -> None:
    body = kubectl_run_body(name="Bad_Name")
    body["spec"]["containers"][0]["name"] = "web"
    message = rejected(create, "", "pods", body)
    assert message == f'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_ERROR}'


def test_kubectl_run_with_a_bad_name_also_names_its_container_badly() -> None:
    message = rejected(create, "", "pods", kubectl_run_body(name="Bad_Name"))
    assert message == (
        f'Pod "Bad_Name" is invalid: [metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_ERROR}, '
        'spec.containers[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 label must consist of lower '
        "case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. "
        "'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')]"
    )


def test_a_pod_without_containers_is_invalid() -> None:
    body = kubectl_run_body()
    body["spec"]["containers"] = []
    assert rejected(create, "", "pods", body) == 'Pod "nginx" is invalid: spec.containers: Required value'


def test_two_containers_with_one_name_are_a_duplicate() -> None:
    body = kubectl_run_body()
    body["spec"]["containers"].append({"name": "nginx", "image": "busybox"})
    message = rejected(create, "", "pods", body)
    assert message == 'Pod "nginx" is invalid: spec.containers[1].name: Duplicate value: "nginx"'


def test_several_problems_are_listed_in_brackets() -> None:
    body = kubectl_run_body()
    body["spec"]["containers"][0].update(image="", ports=[{"containerPort": 70000, "protocol": "tcp"}])
    body["spec"]["restartPolicy"] = "Sometimes"
    message = rejected(create, "", "pods", body)
    assert message == (
        'Pod "nginx" is invalid: ['
        "spec.containers[0].image: Required value, "
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive, "
        'spec.containers[0].ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP", '
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"]'
    )


def test_a_label_value_with_a_space_is_invalid() -> None:
    body = kubectl_run_body()
    body["metadata"]["labels"] = {"tier": "front end"}
    message = rejected(create, "", "pods", body)
    assert message.startswith('Pod "nginx" is invalid: metadata.labels: Invalid value: "front end": a valid label')


def test_a_pod_may_change_its_image_and_nothing_else_in_its_spec() -> None:
    pod = create("", "pods", kubectl_run_body())
    newer = copy.deepcopy(pod)
    newer["spec"]["containers"][0]["image"] = "nginx:1.27"
    assert update("", "pods", newer, pod)["spec"]["containers"][0]["image"] == "nginx:1.27"

    changed = copy.deepcopy(pod)
    changed["spec"]["dnsPolicy"] = "Default"
    message = rejected(update, "", "pods", changed, pod)
    assert message.startswith(
        'Pod "nginx" is invalid: spec: Forbidden: pod updates may not change fields other than '
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
    )
    assert '- \tdnsPolicy: "ClusterFirst"' in message and '+ \tdnsPolicy: "Default"' in message


def test_a_pod_update_may_not_add_a_container() -> None:
    pod = create("", "pods", kubectl_run_body())
    more = copy.deepcopy(pod)
    more["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    message = rejected(update, "", "pods", more, pod)
    assert message == 'Pod "nginx" is invalid: spec.containers: Forbidden: pod updates may not add or remove containers'


def test_a_put_that_drops_the_default_tolerations_gets_them_back() -> None:
    pod = create("", "pods", kubectl_run_body())
    bare = copy.deepcopy(pod)
    del bare["spec"]["tolerations"]
    assert update("", "pods", bare, pod)["spec"]["tolerations"] == pod["spec"]["tolerations"]


def test_priority_admission_takes_the_value_of_the_named_class() -> None:
    pod = kubectl_run_body()
    pod["spec"]["priorityClassName"] = "high"
    admit_pod_priority(pod, {"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"})
    assert (pod["spec"]["priority"], pod["spec"]["preemptionPolicy"]) == (1000, "Never")

    missing = kubectl_run_body()
    missing["spec"]["priorityClassName"] = "nope"
    with pytest.raises(ApiError) as info:
        admit_pod_priority(missing, None)
    assert (info.value.code, info.value.message) == (
        403,
        'pods "nginx" is forbidden: no PriorityClass with name nope was found',
    )


def test_a_bad_quantity_is_a_decode_error() -> None:
    body = kubectl_run_body()
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "lots"}}
    with pytest.raises(ApiError) as info:
        create("", "pods", body)
    assert info.value.code == 400
    assert info.value.message == (
        'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


def test_requests_above_limits_are_invalid() -> None:
    body = kubectl_run_body()
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}
    message = rejected(create, "", "pods", body)
    assert message == (
        'Pod "nginx" is invalid: spec.containers[0].resources.requests: Invalid value: "1": '
        "must be less than or equal to cpu limit of 500m"
    )


# -- QoS ---------------------------------------------------------------------------------------------------


def containers_with(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"containers": [{"name": f"c{i}", "image": "x", "resources": r} for i, r in enumerate(resources)]}


def test_qos_is_best_effort_without_cpu_or_memory() -> None:
    assert qos_class(containers_with({}, {"limits": {"ephemeral-storage": "1Gi"}})) == "BestEffort"


def test_qos_is_guaranteed_when_limits_equal_requests_everywhere() -> None:
    full = {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0.5", "memory": "128Mi"}}
    assert qos_class(containers_with(full, full)) == "Guaranteed"


def test_qos_counts_missing_requests_as_the_limits() -> None:
    assert qos_class(containers_with({"limits": {"cpu": "1", "memory": "1Gi"}})) == "Guaranteed"


def test_qos_is_burstable_when_a_container_lacks_a_limit() -> None:
    full = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert qos_class(containers_with(full, {"requests": {"cpu": "100m"}})) == "Burstable"
    assert qos_class(containers_with({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})) == (
        "Burstable"
    )


def test_a_created_pod_reports_its_qos_class() -> None:
    body = kubectl_run_body()
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "0.25", "memory": "1024Mi"}}
    pod = create("", "pods", body)
    assert pod["status"]["qosClass"] == "Guaranteed"
    # requests default to limits, and quantities come back in canonical form
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "250m", "memory": "1Gi"},
        "requests": {"cpu": "250m", "memory": "1Gi"},
    }


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("0.5", "500m"),
        ("1000m", "1"),
        ("1000", "1k"),
        ("1536Mi", "1536Mi"),
        ("2048Ki", "2Mi"),
        ("129e6", "129e6"),
        (2, "2"),
        ("100Mi", "100Mi"),
        ("1.5Gi", "1536Mi"),
    ],
)
def test_quantities_are_written_back_in_canonical_form(raw: Any, canonical: str) -> None:
    assert canonicalize(raw) == canonical


# -- apps --------------------------------------------------------------------------------------------------


def test_a_deployment_and_its_pod_template_get_kubes_defaults() -> None:
    deployment = create("apps", "deployments", deployment_body())
    spec = deployment["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"], spec["replicas"]) == (10, 600, 2)
    assert spec["template"] == {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "image": "nginx",
                    "imagePullPolicy": "Always",
                    "name": "nginx",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        },
    }
    assert deployment["status"] == {}


def test_a_replica_set_defaults_to_one_replica_and_reports_zero() -> None:
    body = deployment_body()
    body.update(kind="ReplicaSet")
    del body["spec"]["replicas"], body["spec"]["strategy"]
    replica_set = create("apps", "replicasets", body)
    assert (replica_set["spec"]["replicas"], replica_set["status"]) == (1, {"replicas": 0})


def test_a_selector_that_misses_the_template_labels_is_invalid() -> None:
    message = rejected(create, "apps", "deployments", deployment_body(labels={"app": "other"}))
    assert message == (
        'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"other"}: `selector` does not match template `labels`'
    )


def test_a_deployment_without_a_selector_is_invalid() -> None:
    body = deployment_body()
    del body["spec"]["selector"]
    assert (
        rejected(create, "apps", "deployments", body)
        == 'Deployment.apps "web" is invalid: spec.selector: Required value'
    )


def test_an_empty_selector_is_invalid() -> None:
    body = deployment_body()
    body["spec"]["selector"] = {}
    assert rejected(create, "apps", "deployments", body) == (
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        "map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: "
        "empty selector is invalid for deployment"
    )


def test_a_deployments_selector_may_not_change() -> None:
    deployment = create("apps", "deployments", deployment_body())
    moved = copy.deepcopy(deployment)
    moved["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "front"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    assert rejected(update, "apps", "deployments", moved, deployment) == (
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        'map[string]string{"app":"web", "tier":"front"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "field is immutable"
    )


def test_an_annotation_change_is_a_new_deployment_generation() -> None:
    deployment = create("apps", "deployments", deployment_body())
    deployment["metadata"]["generation"] = 1
    noted = copy.deepcopy(deployment)
    noted["metadata"]["annotations"] = {"note": "x"}
    assert update("apps", "deployments", noted, deployment)["metadata"]["generation"] == 2


def test_the_scale_of_a_deployment_carries_its_selector_as_a_string() -> None:
    deployment = create("apps", "deployments", deployment_body())
    deployment["metadata"].update(uid="u1", resourceVersion="7", creationTimestamp="2025-01-01T00:00:00Z")
    deployment["status"] = {"replicas": 2}
    scale = scale_from(deployment, resource("apps", "deployments"))
    assert scale == {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "u1",
            "resourceVersion": "7",
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": {"replicas": 2},
        "status": {"replicas": 2, "selector": "app=web"},
    }
    apply_scale(deployment, {"spec": {"replicas": 5}})
    assert deployment["spec"]["replicas"] == 5


# -- services, namespaces, config ---------------------------------------------------------------------------


def test_a_kubectl_expose_service_gets_the_single_stack_defaults() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}, "name": "web"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"app": "web"}},
        "status": {"loadBalancer": {}},
    }
    spec = create("", "services", body)["spec"]
    assert {
        k: spec[k] for k in ("type", "sessionAffinity", "internalTrafficPolicy", "ipFamilyPolicy", "ipFamilies")
    } == {
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": ["IPv4"],
    }


def test_a_node_port_outside_the_range_is_invalid() -> None:
    body = {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}}
    assert rejected(create, "", "services", body) == (
        'Service "np" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid '
        "range. The range of valid ports is 30000-32767"
    )


def test_an_update_keeps_the_allocated_cluster_ip_and_refuses_a_new_one() -> None:
    service = create("", "services", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    service["spec"].update(clusterIP="10.96.0.20", clusterIPs=["10.96.0.20"])
    applied = copy.deepcopy(service)
    del applied["spec"]["clusterIP"], applied["spec"]["clusterIPs"]
    assert update("", "services", applied, service)["spec"]["clusterIPs"] == ["10.96.0.20"]

    moved = copy.deepcopy(service)
    moved["spec"].update(clusterIP="10.96.0.21", clusterIPs=["10.96.0.21"])
    assert rejected(update, "", "services", moved, service) == (
        'Service "web" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.0.21"}: may not change once set'
    )


def test_a_service_name_must_be_a_dns_1035_label() -> None:
    message = rejected(create, "", "services", {"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}})
    assert message.startswith('Service "1web" is invalid: metadata.name: Invalid value: "1web": a DNS-1035 label')


def test_a_namespace_is_born_active_with_the_kubernetes_finalizer() -> None:
    namespace = create("", "namespaces", {"metadata": {"name": "team-a"}})
    assert namespace["spec"] == {"finalizers": ["kubernetes"]}
    assert namespace["status"] == {"phase": "Active"}
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert rejected(create, "", "namespaces", {"metadata": {"name": "a.b"}}) == (
        'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots'
    )


def test_secret_string_data_becomes_base64_data() -> None:
    secret = create("", "secrets", {"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "héllo"}})
    assert "stringData" not in secret
    assert secret["type"] == "Opaque"
    assert secret["data"] == {"a": "eA==", "b": base64.b64encode("héllo".encode()).decode()}


def test_a_secret_keeps_its_type_and_an_immutable_one_its_data() -> None:
    secret = create("", "secrets", {"metadata": {"name": "s"}, "data": {"a": "eA=="}, "immutable": True})
    retyped = copy.deepcopy(secret)
    retyped["type"] = "kubernetes.io/tls"
    retyped["data"] = {"tls.crt": "eA==", "tls.key": "eA=="}
    assert rejected(update, "", "secrets", retyped, secret) == (
        'Secret "s" is invalid: [type: Invalid value: "kubernetes.io/tls": field is immutable, '
        "data: Forbidden: field is immutable when `immutable` is set]"
    )


def test_a_config_map_over_one_mebibyte_is_too_long() -> None:
    big = {"metadata": {"name": "big"}, "data": {"blob": "x" * (1024 * 1024 + 1)}}
    assert (
        rejected(create, "", "configmaps", big)
        == 'ConfigMap "big" is invalid: Too long: must have at most 1048576 bytes'
    )
    with pytest.raises(ApiError) as info:
        create("", "configmaps", {"metadata": {"name": "b"}, "data": {"bad key": "v"}})
    assert info.value.details is not None
    assert info.value.details["causes"][0]["field"] == "data[bad key]"


def test_an_event_needs_only_a_path_segment_name() -> None:
    event = {"metadata": {"name": "web:1.17"}, "involvedObject": {"kind": "Pod", "namespace": "default"}}
    assert create("", "events", event)["reportingComponent"] == ""
    message = rejected(create, "", "events", {"metadata": {"name": "a/b"}, "involvedObject": {"namespace": "other"}})
    assert message == (
        'Event "a/b" is invalid: [metadata.name: Invalid value: "a/b": may not contain \'/\', '
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace]'
    )


def test_an_eviction_for_another_pod_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as info:
        validate_eviction({"metadata": {"name": "other"}}, "nginx")
    assert (info.value.code, info.value.message) == (400, "name in URL does not match name in Eviction object")


def test_every_served_kind_has_the_name_rule_kube_uses() -> None:
    rules = {(rt.group, rt.plural): rt.strategy.name_rule for rt in REGISTRY.resources}
    assert rules[("", "namespaces")] is NameRule.LABEL
    assert rules[("", "services")] is NameRule.DNS1035_LABEL
    assert rules[("", "events")] is NameRule.PATH_SEGMENT
    assert rules[("apps", "deployments")] is NameRule.SUBDOMAIN
