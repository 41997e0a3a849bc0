"""Server-side Tables: the columns and cells kubectl prints, as kube-apiserver 1.33 computes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shim.apiserver.printers import epoch_us, human_duration
from shim.apiserver.registry import Strategy
from shim.apiserver.resources import build_registry
from shim.apiserver.tables import build_table

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
REGISTRY = build_registry()


def strategy(group: str, resource: str) -> Strategy:
    """The served kind's strategy; any other resource gets the base strategy (kube's default convertor)."""
    found = [r.strategy for r in REGISTRY.resources if (r.group, r.plural) == (group, resource)]
    return found[0] if found else Strategy()


def table_cells(group: str, resource: str, obj: dict[str, Any], now: datetime) -> list[Any]:
    return strategy(group, resource).printer(obj, epoch_us(now))


def table_columns(group: str, resource: str) -> list[dict[str, Any]]:
    return strategy(group, resource).table_columns


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    name: str = "web-1",
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    init_specs: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A pod as the kubelet reports it; `containers` are containerStatuses."""
    statuses = containers if containers is not None else [running("app")]
    obj: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "1f0c3b1e-0000-4000-8000-000000000001",
            "resourceVersion": "42",
            "labels": {"app": "web"},
            "creationTimestamp": ago(minutes=90),
        },
        "spec": {
            "containers": [{"name": s["name"], "image": "nginx:1.27"} for s in statuses],
            "nodeName": "node-1",
            "restartPolicy": "Always",
        },
        "status": {
            "phase": phase,
            "podIP": "10.244.0.20",
            "podIPs": [{"ip": "10.244.0.20"}],
            "conditions": conditions
            if conditions is not None
            else [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": statuses,
        },
    }
    if init is not None:
        obj["status"]["initContainerStatuses"] = init
        obj["spec"]["initContainers"] = init_specs or [{"name": s["name"], "image": "busybox"} for s in init]
    for key, value in extra.items():
        section, field = key.split("__")
        obj[section][field] = value
    return obj


def running(name: str, ready: bool = True, restarts: int = 0, last_finished: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": name,
        "ready": ready,
        "started": True,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=4)}},
    }
    if last_finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": last_finished}}
    return status


def waiting(name: str, reason: str, restarts: int = 0, last_finished: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": name,
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": "back-off 5m0s restarting failed container"}},
    }
    if last_finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": last_finished}}
    return status


def terminated(name: str, exit_code: int = 0, reason: str = "", signal: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "finishedAt": ago(minutes=1)}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


def pod_row(obj: dict[str, Any]) -> list[Any]:
    return table_cells("", "pods", obj, NOW)


# -- ages ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "shown"),
    [
        (timedelta(seconds=0), "0s"),
        (timedelta(seconds=-1.5), "0s"),  # up to 2s of clock skew still reads as now
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=70), "70s"),
        (timedelta(seconds=119.9), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(seconds=190), "3m10s"),
        (timedelta(minutes=70), "70m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=20), "3h20m"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=49), "2d1h"),
        (timedelta(hours=8 * 24 + 2), "8d"),
        (timedelta(days=367), "367d"),
        (timedelta(hours=365 * 2 * 24 + 25), "2y1d"),
        (timedelta(hours=365 * 8 * 24 + 2), "8y"),
    ],
)
def test_ages_read_like_duration_human_duration(elapsed: timedelta, shown: str) -> None:
    assert human_duration(elapsed // timedelta(microseconds=1)) == shown


# -- pods ----------------------------------------------------------------------------------------------------


def test_a_running_pod_shows_ready_status_restarts_age_and_the_wide_columns() -> None:
    assert pod_row(pod()) == [
        "web-1",
        "1/1",
        "Running",
        "0",
        "90m",
        "10.244.0.20",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_restarts_say_when_the_last_container_restarted() -> None:
    restarted = pod(containers=[running("app", restarts=3, last_finished=ago(minutes=5))])
    assert pod_row(restarted)[1:4] == ["1/1", "Running", "3 (5m ago)"]


def test_a_crashlooping_pod_shows_the_waiting_reason() -> None:
    crashing = pod(containers=[waiting("app", "CrashLoopBackOff", restarts=5, last_finished=ago(seconds=130))])
    assert pod_row(crashing)[:4] == ["web-1", "0/1", "CrashLoopBackOff", "5 (2m10s ago)"]


def test_a_pending_pod_without_statuses_shows_its_phase_and_none_placeholders() -> None:
    pending = pod(phase="Pending", containers=[], conditions=[])
    pending["spec"]["containers"] = [{"name": "app", "image": "nginx"}]
    del pending["spec"]["nodeName"], pending["status"]["podIP"], pending["status"]["podIPs"]
    assert pod_row(pending) == ["web-1", "0/1", "Pending", "0", "90m", "<none>", "<none>", "<none>", "<none>"]


def test_a_pod_waiting_on_scheduling_gates_says_so() -> None:
    gated = pod(
        phase="Pending",
        containers=[],
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
    )
    assert pod_row(gated)[2] == "SchedulingGated"


@pytest.mark.parametrize(
    ("init", "status"),
    [
        ([running("setup", ready=False)], "Init:0/1"),
        ([terminated("fetch"), running("setup", ready=False)], "Init:1/2"),
        ([waiting("setup", "PodInitializing")], "Init:0/1"),
        ([waiting("setup", "CrashLoopBackOff", restarts=2)], "Init:CrashLoopBackOff"),
        ([terminated("setup", exit_code=1, reason="Error")], "Init:Error"),
        ([terminated("setup", exit_code=3)], "Init:ExitCode:3"),
        ([terminated("setup", exit_code=137, signal=9)], "Init:Signal:9"),
    ],
)
def test_an_initializing_pod_shows_init_progress(init: list[dict[str, Any]], status: str) -> None:
    initializing = pod(
        phase="Pending",
        containers=[waiting("app", "PodInitializing")],
        init=init,
        conditions=[{"type": "Initialized", "status": "False"}],
    )
    assert pod_row(initializing)[1:3] == ["0/1", status]


def test_restarts_of_a_blocking_init_container_are_counted() -> None:
    crashing_init = pod(
        phase="Pending",
        containers=[waiting("app", "PodInitializing")],
        init=[waiting("setup", "CrashLoopBackOff", restarts=4, last_finished=ago(minutes=3))],
        conditions=[],
    )
    assert pod_row(crashing_init)[2:4] == ["Init:CrashLoopBackOff", "4 (3m ago)"]


def test_a_started_sidecar_counts_as_a_ready_container_and_its_restarts_stay() -> None:
    sidecar = running("proxy", restarts=1, last_finished=ago(minutes=20))
    with_sidecar = pod(
        init=[sidecar],
        init_specs=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
        containers=[running("app")],
    )
    assert pod_row(with_sidecar)[1:4] == ["2/2", "Running", "1 (20m ago)"]


def test_a_finished_pod_shows_completed_and_is_marked_in_the_row_conditions() -> None:
    done = pod(phase="Succeeded", containers=[terminated("app", reason="Completed")], conditions=[])
    table = build_table(strategy("", "pods"), [done], NOW)
    assert table["rows"][0]["cells"][1:3] == ["0/1", "Completed"]
    assert table["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_a_failed_container_without_reason_shows_its_exit_code_or_signal() -> None:
    assert pod_row(pod(phase="Failed", containers=[terminated("app", exit_code=2)]))[2] == "ExitCode:2"
    assert pod_row(pod(phase="Failed", containers=[terminated("app", exit_code=137, signal=9)]))[2] == "Signal:9"
    assert "conditions" not in build_table(strategy("", "pods"), [pod()], NOW)["rows"][0]


def test_a_completed_container_beside_a_running_one_reads_running_or_not_ready() -> None:
    statuses = [running("app"), terminated("job", reason="Completed")]  # kube walks statuses last to first
    assert pod_row(pod(containers=statuses))[1:3] == ["1/2", "Running"]
    not_ready = pod(containers=statuses, conditions=[{"type": "Ready", "status": "False"}])
    assert pod_row(not_ready)[2] == "NotReady"


def test_a_deleted_pod_shows_terminating_until_it_has_finished() -> None:
    deleting = pod()
    deleting["metadata"]["deletionTimestamp"] = ago(seconds=10)
    assert pod_row(deleting)[2] == "Terminating"
    finished = pod(phase="Succeeded", containers=[terminated("app", reason="Completed")])
    finished["metadata"]["deletionTimestamp"] = ago(seconds=10)
    assert pod_row(finished)[2] == "Completed"


def test_a_pod_on_a_lost_node_reads_node_lost_then_unknown_once_deleted() -> None:
    lost = pod(status__reason="NodeLost", containers=[])
    lost["spec"]["containers"] = [{"name": "app", "image": "nginx"}]
    assert pod_row(lost)[2] == "NodeLost"
    lost["metadata"]["deletionTimestamp"] = ago(seconds=10)
    assert pod_row(lost)[2] == "Unknown"


def test_readiness_gates_count_the_true_conditions() -> None:
    gated = pod(
        spec__readinessGates=[{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}],
        conditions=[{"type": "Ready", "status": "False"}, {"type": "example.com/lb", "status": "True"}],
    )
    assert pod_row(gated)[8] == "1/2"


def test_the_pod_ip_falls_back_to_pod_ip_when_pod_ips_is_absent() -> None:
    single = pod()
    del single["status"]["podIPs"]
    assert pod_row(single)[5] == "10.244.0.20"


# -- other kinds ---------------------------------------------------------------------------------------------


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(hours=49)},
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db", "cache"]}],
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.27"},
                        {"name": "log", "image": "busybox"},
                    ]
                },
            },
        },
        "status": status,
    }


def test_a_deployment_shows_ready_of_desired_up_to_date_and_available() -> None:
    cells = table_cells("apps", "deployments", deployment(readyReplicas=2, updatedReplicas=3, availableReplicas=2), NOW)
    assert cells == [
        "web",
        "2/3",
        3,
        2,
        "2d1h",
        "nginx,log",
        "nginx:1.27,busybox",
        "app=web,tier notin (cache,db)",
    ]


def test_a_new_deployment_without_status_counts_zero() -> None:
    assert table_cells("apps", "deployments", deployment(), NOW)[1:4] == ["0/3", 0, 0]


def test_a_replicaset_shows_desired_current_ready_and_its_selector() -> None:
    rs = deployment(replicas=3, readyReplicas=1)
    rs["spec"]["selector"] = {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}}
    cells = table_cells("apps", "replicasets", rs, NOW)
    assert cells == [
        "web",
        3,
        3,
        1,
        "2d1h",
        "nginx,log",
        "nginx:1.27,busybox",
        "app=web,pod-template-hash=5d4f",
    ]
    rs["spec"]["selector"] = {}
    assert table_cells("apps", "replicasets", rs, NOW)[7] == "<none>"


def node(**extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {
            "name": "node-1",
            "creationTimestamp": ago(days=3, hours=4),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"},
        },
        "spec": {},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "192.168.1.10"},
                {"type": "Hostname", "address": "node-1"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.33.1",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-18-amd64",
                "containerRuntimeVersion": "podman://5.4.0",
            },
        },
    }
    obj.update(extra)
    return obj


def test_a_node_shows_status_roles_version_and_its_system_info() -> None:
    assert table_cells("", "nodes", node(), NOW) == [
        "node-1",
        "Ready",
        "control-plane,worker",
        "3d4h",
        "v1.33.1",
        "192.168.1.10",
        "<none>",
        "Debian GNU/Linux 12 (bookworm)",
        "6.1.0-18-amd64",
        "podman://5.4.0",
    ]


def test_a_cordoned_unready_node_and_a_node_without_status() -> None:
    cordoned = node(spec={"unschedulable": True})
    cordoned["status"]["conditions"][1]["status"] = "Unknown"
    assert table_cells("", "nodes", cordoned, NOW)[1] == "NotReady,SchedulingDisabled"
    bare = {"metadata": {"name": "new", "creationTimestamp": ago(seconds=5)}}
    assert table_cells("", "nodes", bare, NOW) == [
        "new",
        "Unknown",
        "<none>",
        "5s",
        "",
        "<none>",
        "<none>",
        "<unknown>",
        "<unknown>",
        "<unknown>",
    ]


def service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(minutes=7)},
        "spec": spec,
        "status": status or {"loadBalancer": {}},
    }


def test_services_show_type_cluster_ip_external_ip_ports_and_selector() -> None:
    cluster_ip = service(
        {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"tier": "front", "app": "web"},
        }
    )
    assert table_cells("", "services", cluster_ip, NOW) == [
        "web",
        "ClusterIP",
        "10.96.0.10",
        "<none>",
        "80/TCP,53/UDP",
        "7m",
        "app=web,tier=front",
    ]
    node_port = service(
        {
            "type": "NodePort",
            "clusterIPs": ["10.96.0.11"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
        }
    )
    assert table_cells("", "services", node_port, NOW)[3:5] == ["<none>", "80:30080/TCP"]
    headless = service({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]})
    assert table_cells("", "services", headless, NOW)[2:5] == ["None", "<none>", "<none>"]


def test_load_balancer_and_external_name_services_show_their_external_address() -> None:
    pending = service(
        {
            "type": "LoadBalancer",
            "clusterIPs": ["10.96.0.12"],
            "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}],
        }
    )
    assert table_cells("", "services", pending, NOW)[3] == "<pending>"
    ready = service(
        pending["spec"],
        {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}},
    )
    assert table_cells("", "services", ready, NOW)[3] == "203.0.113.9,lb.example.com"
    external = service({"type": "ExternalName", "externalName": "db.example.com"})
    assert table_cells("", "services", external, NOW)[1:5] == [
        "ExternalName",
        "<none>",
        "db.example.com",
        "<none>",
    ]


def test_endpoints_list_three_addresses_then_count_the_rest() -> None:
    addresses = [{"ip": f"10.244.0.{i}"} for i in range(1, 4)]
    endpoints = {
        "metadata": {"name": "web", "creationTimestamp": ago(minutes=1)},
        "subsets": [{"addresses": addresses, "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}],
    }
    assert table_cells("", "endpoints", endpoints, NOW) == [
        "web",
        "10.244.0.1:80,10.244.0.2:80,10.244.0.3:80 + 3 more...",
        "60s",
    ]
    assert table_cells("", "endpoints", {"metadata": {"name": "none"}}, NOW) == [
        "none",
        "<none>",
        "<unknown>",
    ]


def test_small_core_kinds() -> None:
    created = {"creationTimestamp": ago(days=10)}
    assert table_cells(
        "", "namespaces", {"metadata": {"name": "dev", **created}, "status": {"phase": "Active"}}, NOW
    ) == ["dev", "Active", "10d"]
    configmap = {
        "metadata": {"name": "cfg", **created},
        "data": {"a": "1", "b": "2"},
        "binaryData": {"c": "AA=="},
    }
    assert table_cells("", "configmaps", configmap, NOW) == ["cfg", 3, "10d"]
    secret = {
        "metadata": {"name": "tls", **created},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""},
    }
    assert table_cells("", "secrets", secret, NOW) == ["tls", "kubernetes.io/tls", 2, "10d"]
    assert table_cells("", "serviceaccounts", {"metadata": {"name": "default", **created}}, NOW) == [
        "default",
        0,
        "10d",
    ]
    lease = {"metadata": {"name": "node-1", **created}, "spec": {"holderIdentity": "node-1"}}
    assert table_cells("coordination.k8s.io", "leases", lease, NOW) == ["node-1", "node-1", "10d"]
    priority = {
        "metadata": {"name": "high", **created},
        "value": 1000,
        "globalDefault": False,
        "preemptionPolicy": "Never",
    }
    assert table_cells("scheduling.k8s.io", "priorityclasses", priority, NOW) == [
        "high",
        1000,
        False,
        "10d",
        "Never",
    ]


def test_a_core_event_shows_last_seen_object_source_and_count() -> None:
    event = {
        "metadata": {"name": "web-1.17c2a", "namespace": "default"},
        "involvedObject": {
            "kind": "Pod",
            "name": "web-1",
            "namespace": "default",
            "fieldPath": "spec.containers{app}",
        },
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(minutes=20),
        "lastTimestamp": ago(minutes=2),
        "count": 7,
        "type": "Warning",
    }
    assert table_cells("", "events", event, NOW) == [
        "2m",
        "Warning",
        "BackOff",
        "pod/web-1",
        "spec.containers{app}",
        "kubelet, node-1",
        "Back-off restarting failed container",
        "20m",
        7,
        "web-1.17c2a",
    ]


def test_a_new_style_event_uses_event_time_series_and_reporting_controller() -> None:
    event = {
        "metadata": {"name": "web.1", "namespace": "default"},
        "eventTime": (NOW - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "series": {
            "count": 4,
            "lastObservedTime": (NOW - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
        "reportingController": "default-scheduler",
        "reportingInstance": "sched-1",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "note": "0/1 nodes are available",
        "reason": "FailedScheduling",
        "type": "Warning",
    }
    assert table_cells("events.k8s.io", "events", event, NOW) == [
        "30s",
        "Warning",
        "FailedScheduling",
        "pod/web",
        "",
        "default-scheduler, sched-1",
        "0/1 nodes are available",
        "3m",
        4,
        "web.1",
    ]


def test_endpointslices_show_address_type_ports_and_endpoints() -> None:
    created = {"creationTimestamp": ago(hours=5)}
    eps = {
        "metadata": {"name": "web-abcde", **created},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "named"}],
        "endpoints": [{"addresses": ["10.244.0.5"]}, {"addresses": ["10.244.0.6"]}],
    }
    assert table_cells("discovery.k8s.io", "endpointslices", eps, NOW) == [
        "web-abcde",
        "IPv4",
        "80,named",
        "10.244.0.5,10.244.0.6",
        "5h",
    ]


def test_resources_without_a_printer_get_the_default_name_and_created_at() -> None:
    limits = {"metadata": {"name": "limits", "creationTimestamp": "2024-04-30T08:15:00Z"}}
    assert [c["name"] for c in table_columns("", "limitranges")] == ["Name", "Created At"]
    assert table_columns("", "limitranges")[1]["type"] == "date"
    assert table_cells("", "limitranges", limits, NOW) == ["limits", "2024-04-30T08:15:00Z"]


# -- columns -------------------------------------------------------------------------------------------------


def names_and_priorities(group: str, resource: str) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in table_columns(group, resource)]


def test_column_definitions_match_kube() -> None:
    assert names_and_priorities("", "pods") == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    assert names_and_priorities("", "events") == [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ]
    assert names_and_priorities("scheduling.k8s.io", "priorityclasses") == [
        ("Name", 0),
        ("Value", 0),
        ("Global-Default", 0),
        ("Age", 0),
        ("PreemptionPolicy", 0),
    ]
    assert [c["name"] for c in table_columns("apps", "deployments") if c["priority"] == 0] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    name = table_columns("", "pods")[0]
    assert name["format"] == "name" and name["type"] == "string"
    assert name["description"].startswith("Name must be unique within a namespace.")
    assert table_columns("", "pods")[1] == {
        "name": "Ready",
        "type": "string",
        "format": "",
        "description": "The aggregate readiness state of this pod for accepting traffic.",
        "priority": 0,
    }


def test_every_printer_fills_exactly_its_columns() -> None:
    for rt in REGISTRY.resources:
        empty = {"metadata": {"name": "x"}}
        assert len(rt.strategy.printer(empty, epoch_us(NOW))) == len(rt.strategy.table_columns), rt.qualified
    assert len(Strategy().printer({"metadata": {"name": "x"}}, epoch_us(NOW))) == len(Strategy().table_columns)


# -- whole tables --------------------------------------------------------------------------------------------


def test_a_list_table_carries_list_meta_columns_and_partial_object_metadata() -> None:
    p = pod()
    table = build_table(strategy("", "pods"), [p], NOW, list_meta={"resourceVersion": "121", "continue": "abc"})
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "121", "continue": "abc"}
    assert table["columnDefinitions"] == table_columns("", "pods")
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": p["metadata"],
    }


def test_include_object_selects_the_full_object_or_nothing() -> None:
    p = pod()
    assert build_table(strategy("", "pods"), [p], NOW, include_object="Object")["rows"][0]["object"] is p
    assert build_table(strategy("", "pods"), [p], NOW, include_object="None")["rows"][0]["object"] is None
    assert (
        build_table(strategy("", "pods"), [p], NOW, include_object="")["rows"][0]["object"]["kind"]
        == "PartialObjectMetadata"
    )
    with pytest.raises(ValueError) as bad:
        build_table(strategy("", "pods"), [p], NOW, include_object="Everything")
    assert str(bad.value) == (
        'Unable to convert to Table as requested: includeObject: Invalid value: "Everything": '
        "must be 'Metadata', 'Object', 'None', or empty"
    )


def test_watch_events_after_the_first_carry_null_column_definitions() -> None:
    event_table = build_table(
        strategy("", "pods"), [pod()], NOW, list_meta={"resourceVersion": "7"}, with_columns=False
    )
    assert event_table["columnDefinitions"] is None
    assert event_table["metadata"] == {"resourceVersion": "7"}
    assert len(event_table["rows"]) == 1


def test_an_empty_list_is_a_table_with_no_rows() -> None:
    table = build_table(strategy("apps", "deployments"), [], NOW, list_meta={"resourceVersion": "9", "continue": ""})
    assert table["rows"] == [] and table["metadata"] == {"resourceVersion": "9"}
