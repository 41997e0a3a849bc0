"""The node agent against a real `kube-shim up`, with the simulated runtime: the agent runs in the test's event
loop, talks to the API server over HTTPS like any other client, and its pods "run" in a FakeRuntime."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from shim.client import ApiClient
from shim.kubelet.backoff import Backoff, go_duration
from shim.kubelet.envvars import expand
from shim.machinery.resources import CONFIGMAPS, LEASES, NODES, PODS, SECRETS
from shim.runtime.base import ContainerSpec, ExecResult, SandboxSpec
from shim.runtime.fake import FakeRuntime
from tests import kubelet_kit
from tests.kubelet_kit import (
    DEADLINE,
    box,
    condition,
    container_status,
    is_running_and_ready,
    pod_manifest,
    running_node,
    runtime_id,
    wait_event,
    wait_for,
    wait_gone,
)

Obj = dict[str, Any]

api = kubelet_kit.api  # the fixture: pytest finds it by name in this module

# -- node ------------------------------------------------------------------------------------------------------


async def test_node_registers_ready_and_renews_its_lease(api: ApiClient, tmp_path: Path) -> None:
    async with running_node(api, tmp_path, kubelet_port=10555) as kubelet:
        node = await wait_for(api, NODES, None, kubelet.node_name, lambda n: condition(n, "Ready"))
        ready = condition(node, "Ready")
        assert (ready["status"], ready["reason"], ready["message"]) == (
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        )
        assert {c["type"]: c["status"] for c in node["status"]["conditions"]} == {
            "MemoryPressure": "False",
            "DiskPressure": "False",
            "PIDPressure": "False",
            "Ready": "True",
        }
        assert condition(node, "MemoryPressure")["reason"] == "KubeletHasSufficientMemory"
        assert node["status"]["capacity"]["pods"] == "110"
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10555
        info = node["status"]["nodeInfo"]
        assert info["containerRuntimeVersion"].startswith("fake://")
        assert info["kubeletVersion"].startswith("v1.33.")
        assert info["operatingSystem"] == "linux"
        assert {a["type"] for a in node["status"]["addresses"]} == {"InternalIP", "Hostname"}
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == kubelet.node_name

        first = await api.get(LEASES, kubelet.node_name, "kube-node-lease")
        assert first["spec"]["holderIdentity"] == kubelet.node_name
        assert first["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        renewals = [first["spec"]["renewTime"]]
        for _ in range(2):  # two renewals, each later than the one before
            lease = await wait_for(
                api,
                LEASES,
                "kube-node-lease",
                kubelet.node_name,
                lambda lease, last=renewals[-1]: lease["spec"]["renewTime"] > last,
            )
            renewals.append(lease["spec"]["renewTime"])


# -- pods ------------------------------------------------------------------------------------------------------


async def test_a_bound_pod_runs_with_an_ip_and_becomes_ready(api: ApiClient, tmp_path: Path, namespace: str) -> None:
    async with running_node(api, tmp_path) as kubelet:
        manifest = pod_manifest("web", kubelet.node_name, [box("app"), box("side", "sleep infinity")])
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "web", is_running_and_ready)

        status = pod["status"]
        assert status["podIP"].startswith("10.244.0.")
        assert status["podIPs"] == [{"ip": status["podIP"]}]
        assert status["hostIP"] and status["startTime"]
        assert [c["type"] for c in status["conditions"]][:4] == [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
        ]
        assert all(c["status"] == "True" for c in status["conditions"])
        assert [s["name"] for s in status["containerStatuses"]] == ["app", "side"]
        for state in status["containerStatuses"]:
            assert state["ready"] and state["started"] and state["restartCount"] == 0
            assert "running" in state["state"] and state["containerID"].startswith("fake://")
        assert status["qosClass"] == "BestEffort"
        await wait_event(api, namespace, "Started", "Started container app")
        created = await wait_event(api, namespace, "Created", "Created container: side")
        assert created["involvedObject"]["fieldPath"] == "spec.containers{side}"
        assert created["source"] == {"component": "kubelet", "host": kubelet.node_name}


async def test_init_containers_run_in_order_before_the_containers(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    async with running_node(api, tmp_path) as kubelet:
        manifest = pod_manifest(
            "ordered",
            kubelet.node_name,
            [box("app")],
            initContainers=[box("first", "sleep 2"), box("second", "sleep 0.2")],
        )
        await api.create(PODS, manifest, namespace)
        waiting = await wait_for(
            api,
            PODS,
            namespace,
            "ordered",
            lambda p: "running" in container_status(p, "first", init=True).get("state", {}),
        )
        assert waiting["status"]["phase"] == "Pending"
        assert container_status(waiting, "second", init=True)["state"] == {"waiting": {"reason": "PodInitializing"}}
        assert container_status(waiting, "app")["state"] == {"waiting": {"reason": "PodInitializing"}}
        initialized = condition(waiting, "Initialized")
        assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
        assert initialized["message"] == "containers with incomplete status: [first second]"

        pod = await wait_for(api, PODS, namespace, "ordered", is_running_and_ready)
        for name in ("first", "second"):
            done = container_status(pod, name, init=True)
            assert done["state"]["terminated"]["reason"] == "Completed"
            assert done["ready"] is True and done["started"] is False
        assert condition(pod, "Initialized")["status"] == "True"


async def test_a_failed_init_container_fails_a_never_restarting_pod(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    async with running_node(api, tmp_path) as kubelet:
        manifest = pod_manifest(
            "broken-init",
            kubelet.node_name,
            [box("app")],
            initContainers=[box("setup", "exit 7")],
            restartPolicy="Never",
        )
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "broken-init", lambda p: p["status"]["phase"] == "Failed")
        assert container_status(pod, "setup", init=True)["state"]["terminated"]["exitCode"] == 7
        assert container_status(pod, "app")["state"] == {"waiting": {"reason": "PodInitializing"}}


async def test_a_crashing_container_goes_into_crash_loop_back_off(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    async with running_node(api, tmp_path) as kubelet:
        await api.create(PODS, pod_manifest("crasher", kubelet.node_name, [box("app", "exit 3")]), namespace)
        delays: dict[int, str] = {}  # restartCount -> the back-off announced while waiting after that run

        def crash_looping_thrice(pod: Obj) -> bool:
            status = container_status(pod, "app")
            waiting = status.get("state", {}).get("waiting", {})
            if waiting.get("reason") == "CrashLoopBackOff":
                assert f"restarting failed container=app pod=crasher_{namespace}(" in waiting["message"]
                delays[status["restartCount"]] = waiting["message"].split()[1]
            return status.get("restartCount", 0) >= 3 and bool(waiting)

        pod = await wait_for(api, PODS, namespace, "crasher", crash_looping_thrice)
        status = container_status(pod, "app")
        terminated = status["lastState"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert status["ready"] is False
        # doubling from restart_backoff_initial (0.5 s) up to restart_backoff_max (2 s)
        assert 3 in delays and all(d == {1: "500ms", 2: "1s"}.get(n, "2s") for n, d in delays.items()), delays
        assert pod["status"]["phase"] == "Running"  # restartPolicy Always: the pod runs on
        await wait_event(api, namespace, "BackOff", "Back-off restarting failed container app in pod crasher_")


async def test_restart_policies_on_failure_and_never(api: ApiClient, tmp_path: Path, namespace: str) -> None:
    async with running_node(api, tmp_path) as kubelet:
        node = kubelet.node_name
        pods = {
            "done": pod_manifest("done", node, [box("app", "sleep 0.1", "exit 0")], restartPolicy="OnFailure"),
            "retry": pod_manifest("retry", node, [box("app", "exit 1")], restartPolicy="OnFailure"),
            "once": pod_manifest("once", node, [box("app", "exit 2")], restartPolicy="Never"),
            "oom": pod_manifest("oom", node, [box("app", "oom")], restartPolicy="Never"),
        }
        for manifest in pods.values():
            await api.create(PODS, manifest, namespace)

        done = await wait_for(api, PODS, namespace, "done", lambda p: p["status"]["phase"] == "Succeeded")
        terminated = container_status(done, "app")["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
        assert container_status(done, "app")["restartCount"] == 0
        assert condition(done, "Ready")["reason"] == "PodCompleted"

        retry = await wait_for(
            api, PODS, namespace, "retry", lambda p: container_status(p, "app").get("restartCount", 0) >= 1
        )
        assert retry["status"]["phase"] == "Running"

        once = await wait_for(api, PODS, namespace, "once", lambda p: p["status"]["phase"] == "Failed")
        assert container_status(once, "app")["state"]["terminated"]["exitCode"] == 2
        assert container_status(once, "app")["restartCount"] == 0

        oom = await wait_for(api, PODS, namespace, "oom", lambda p: p["status"]["phase"] == "Failed")
        terminated = container_status(oom, "app")["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")


# -- configuration -----------------------------------------------------------------------------------------------


async def test_env_is_resolved_from_configmaps_secrets_and_the_downward_api(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    runtime = FakeRuntime()
    await api.create(CONFIGMAPS, {"metadata": {"name": "cfg"}, "data": {"mode": "fast", "LEVEL": "3"}}, namespace)
    secret = {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret", "user": "admin"}}
    await api.create(SECRETS, secret, namespace)
    env = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "ABSENT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "GREETING", "value": "hello $(NAME) in $(MODE), $$(NOT) $(UNKNOWN)"},
    ]
    container = box("app", "echo $(GREETING)") | {
        "env": env,
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}},
    }
    async with running_node(api, tmp_path, runtime) as kubelet:
        manifest = pod_manifest("configured", kubelet.node_name, [container])
        manifest["metadata"]["labels"] = {"tier": "backend"}
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(
            api, PODS, namespace, "configured", lambda p: container_status(p, "app").get("containerID")
        )

        spec = runtime.spec_of(runtime_id(container_status(pod, "app")["containerID"]))
        assert spec is not None
        expected = {
            "MODE": "fast",
            "PASSWORD": "s3cret",
            "POD_IP": pod["status"]["podIP"],
            "NODE": kubelet.node_name,
            "NAME": "configured",
            "TIER": "backend",
            "MEM_MI": "64",
            "GREETING": "hello configured in fast, $(NOT) $(UNKNOWN)",
            "CFG_mode": "fast",
            "CFG_LEVEL": "3",
            "password": "s3cret",
            "user": "admin",
        }
        assert {k: spec.env.get(k) for k in expected} == expected
        assert "ABSENT" not in spec.env
        assert spec.env["KUBERNETES_SERVICE_HOST"]  # the service links of the default `kubernetes` service
        assert spec.command == ["sh", "-c", "echo hello configured in fast, $(NOT) $(UNKNOWN)"]
        assert spec.memory_limit == 64 * 1024 * 1024 and spec.cpu_quota == 25_000


async def test_a_missing_config_key_keeps_the_container_waiting(api: ApiClient, tmp_path: Path, namespace: str) -> None:
    await api.create(CONFIGMAPS, {"metadata": {"name": "cfg"}, "data": {"mode": "fast"}}, namespace)
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]
    async with running_node(api, tmp_path) as kubelet:
        await api.create(PODS, pod_manifest("keyless", kubelet.node_name, [box("app", env=env)]), namespace)
        pod = await wait_for(
            api,
            PODS,
            namespace,
            "keyless",
            lambda p: container_status(p, "app").get("state", {}).get("waiting", {}).get("message"),
        )
        assert container_status(pod, "app")["state"]["waiting"] == {
            "reason": "CreateContainerConfigError",
            "message": f"couldn't find key nope in ConfigMap {namespace}/cfg",
        }
        await wait_event(api, namespace, "Failed", f"Error: couldn't find key nope in ConfigMap {namespace}/cfg")


async def test_a_missing_configmap_volume_fails_to_mount_until_it_exists(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    container = box("app", volumeMounts=[{"name": "settings", "mountPath": "/etc/app"}])
    volumes = [{"name": "settings", "configMap": {"name": "late", "items": [{"key": "k", "path": "conf/k.txt"}]}}]
    async with running_node(api, tmp_path) as kubelet:
        created = await api.create(
            PODS, pod_manifest("mounting", kubelet.node_name, [container], volumes=volumes), namespace
        )
        event = await wait_event(api, namespace, "FailedMount")
        assert event["message"] == 'MountVolume.SetUp failed for volume "settings" : configmap "late" not found'
        assert event["type"] == "Warning"
        pending = await wait_for(api, PODS, namespace, "mounting", lambda p: container_status(p, "app"))
        assert pending["status"]["phase"] == "Pending"
        assert container_status(pending, "app")["state"] == {"waiting": {"reason": "ContainerCreating"}}

        await api.create(CONFIGMAPS, {"metadata": {"name": "late"}, "data": {"k": "value"}}, namespace)
        await wait_for(api, PODS, namespace, "mounting", is_running_and_ready)
        written = kubelet.data_dir / "pods" / created["metadata"]["uid"] / "volumes" / "settings" / "conf" / "k.txt"
        assert written.read_text() == "value"
        assert oct(written.stat().st_mode & 0o777) == oct(0o644)


async def test_a_projected_volume_joins_configmap_secret_and_downward_files(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    await api.create(CONFIGMAPS, {"metadata": {"name": "proj-cfg"}, "data": {"mode": "fast"}}, namespace)
    await api.create(SECRETS, {"metadata": {"name": "proj-secret"}, "stringData": {"token": "s3cret"}}, namespace)
    container = box("app", volumeMounts=[{"name": "all", "mountPath": "/etc/all"}])
    sources = [
        {"configMap": {"name": "proj-cfg", "items": [{"key": "mode", "path": "cfg/mode"}]}},
        {"secret": {"name": "proj-secret"}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
    ]
    volumes = [{"name": "all", "projected": {"sources": sources, "defaultMode": 0o600}}]
    async with running_node(api, tmp_path) as kubelet:
        created = await api.create(
            PODS, pod_manifest("projecting", kubelet.node_name, [container], volumes=volumes), namespace
        )
        await wait_for(api, PODS, namespace, "projecting", is_running_and_ready)
        volume = kubelet.data_dir / "pods" / created["metadata"]["uid"] / "volumes" / "all"
        written = {p.relative_to(volume).as_posix(): p.read_text() for p in volume.rglob("*") if p.is_file()}
        assert written == {"cfg/mode": "fast", "token": "s3cret", "name": "projecting"}
        assert oct((volume / "token").stat().st_mode & 0o777) == oct(0o600)


async def test_an_unpullable_image_backs_off(api: ApiClient, tmp_path: Path, namespace: str) -> None:
    runtime = FakeRuntime(unpullable={"registry.example/missing:1"})
    async with running_node(api, tmp_path, runtime) as kubelet:
        container = {"name": "app", "image": "registry.example/missing:1"}
        await api.create(PODS, pod_manifest("pull", kubelet.node_name, [container]), namespace)
        reasons = set()
        await wait_for(
            api,
            PODS,
            namespace,
            "pull",
            lambda p: (
                reasons.add(container_status(p, "app").get("state", {}).get("waiting", {}).get("reason"))
                or {"ErrImagePull", "ImagePullBackOff"} <= reasons
            ),
        )
        await wait_event(api, namespace, "Failed", 'Failed to pull image "registry.example/missing:1"')
        await wait_event(api, namespace, "BackOff", 'Back-off pulling image "registry.example/missing:1"')


# -- probes ------------------------------------------------------------------------------------------------------


async def test_readiness_gates_ready_and_liveness_failures_restart(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    runtime = FakeRuntime()
    runtime.exec_results[("check-ready",)] = ExecResult(1, b"not yet\n", b"")
    probe = {"periodSeconds": 1, "failureThreshold": 1}
    gated = box("app", readinessProbe={"exec": {"command": ["check-ready"]}, **probe})
    sick = box("app", livenessProbe={"exec": {"command": ["sh", "-c", "exit 1"]}, **probe})
    async with running_node(api, tmp_path, runtime) as kubelet:
        await api.create(PODS, pod_manifest("gated", kubelet.node_name, [gated]), namespace)
        await api.create(PODS, pod_manifest("sick", kubelet.node_name, [sick]), namespace)

        unready = await wait_for(api, PODS, namespace, "gated", lambda p: p["status"].get("phase") == "Running")
        assert condition(unready, "Ready")["status"] == "False"
        assert condition(unready, "ContainersReady")["message"] == "containers with unready status: [app]"
        await wait_event(api, namespace, "Unhealthy", "Readiness probe failed: not yet")
        runtime.exec_results[("check-ready",)] = ExecResult(0, b"", b"")
        await wait_for(api, PODS, namespace, "gated", is_running_and_ready)

        restarted = await wait_for(
            api, PODS, namespace, "sick", lambda p: container_status(p, "app").get("restartCount", 0) >= 1
        )
        assert container_status(restarted, "app")["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM
        await wait_event(api, namespace, "Killing", "Container app failed liveness probe, will be restarted")
        await wait_event(api, namespace, "Unhealthy", "Liveness probe failed")


# -- deletion and restarts -----------------------------------------------------------------------------------------


async def test_a_deleted_pod_stays_terminating_until_its_containers_stop(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    runtime = FakeRuntime()
    stubborn = box(
        "app", "trap '' TERM", "sleep infinity", lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo bye"]}}}
    )
    async with running_node(api, tmp_path, runtime) as kubelet:
        manifest = pod_manifest("stubborn", kubelet.node_name, [stubborn], terminationGracePeriodSeconds=2)
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "stubborn", is_running_and_ready)
        container_id = runtime_id(container_status(pod, "app")["containerID"])

        deaths = runtime.events()
        marked = await api.delete(PODS, "stubborn", namespace)
        assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 2
        still = await api.get(PODS, "stubborn", namespace)  # SIGTERM is ignored: the grace period must run out
        assert still["metadata"]["deletionTimestamp"]

        death = await asyncio.wait_for(anext(e async for e in deaths if e.container_id == container_id), DEADLINE)
        assert (death.kind, death.exit_code) == ("died", 137)  # SIGKILLed once the grace period was over
        assert (container_id, ["sh", "-c", "echo bye"]) in runtime.exec_log  # the preStop hook ran first
        await wait_gone(api, namespace, "stubborn")
        assert await runtime.list_sandboxes() == []
        assert not (kubelet.data_dir / "pods" / pod["metadata"]["uid"]).exists()
        await wait_event(api, namespace, "Killing", "Stopping container app")


async def test_a_restarted_agent_adopts_its_pods_and_removes_orphans(
    api: ApiClient, tmp_path: Path, namespace: str
) -> None:
    runtime = FakeRuntime()
    name = "kt-" + uuid.uuid4().hex[:8]
    async with running_node(api, tmp_path, runtime, name=name):
        for pod_name in ("keeper", "orphan"):
            await api.create(PODS, pod_manifest(pod_name, name, [box("app")]), namespace)
        keeper = await wait_for(api, PODS, namespace, "keeper", is_running_and_ready)
        await wait_for(api, PODS, namespace, "orphan", is_running_and_ready)
    # the agent is down: its pods keep running; one is force-deleted meanwhile
    await api.delete(PODS, "orphan", namespace, gracePeriodSeconds=0)
    assert len(await runtime.list_sandboxes()) == 2

    async with running_node(api, tmp_path, runtime, name=name) as kubelet:
        sandboxes = await runtime.list_sandboxes()
        assert [s.name for s in sandboxes] == ["keeper"]
        assert len(sandboxes[0].containers) == 1  # adopted, not started again
        assert kubelet.pod_lookup(namespace, "keeper") is not None
        adopted = await api.get(PODS, "keeper", namespace)
        before, after = container_status(keeper, "app"), container_status(adopted, "app")
        assert after["containerID"] == before["containerID"] and after["restartCount"] == 0
        assert is_running_and_ready(adopted)


# -- the pieces on their own -------------------------------------------------------------------------------------


def test_variable_references_expand_as_kubernetes_expands_them() -> None:
    env = {"A": "1", "B": "$(A)"}
    assert expand("x$(A)y", env) == "x1y"
    assert expand("$(B)", env) == "$(A)"  # values are not expanded again
    assert expand("$$(A) $(MISSING) $(A", env) == "$(A) $(MISSING) $(A"
    assert expand("cost: $5 $", env) == "cost: $5 $"


def test_restart_back_off_doubles_to_its_maximum_and_resets_after_a_quiet_spell() -> None:
    now = [1000.0]
    backoff = Backoff(10, 300, clock=lambda: now[0])
    delays = []
    for _ in range(7):
        backoff.next("c", now[0])
        delays.append(backoff.delay("c"))
        now[0] += 1
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.in_backoff_since("c", now[0])
    now[0] += 601  # ran for more than twice the maximum: the next crash starts over
    backoff.next("c", now[0])
    assert backoff.delay("c") == 10
    assert go_duration(10) == "10s" and go_duration(80) == "1m20s" and go_duration(300) == "5m0s"


async def test_the_fake_runtime_runs_its_little_language() -> None:
    runtime = FakeRuntime("10.250.0.0/29")
    events = runtime.events()
    sandbox = await runtime.create_sandbox(SandboxSpec("uid-1", "ns", "p", "p"))
    assert await runtime.sandbox_ip(sandbox) == "10.250.0.2"
    ids = {}
    for name, command in (
        ("quick", ["sh", "-c", "sleep 0.05; exit 4"]),
        ("server", ["nginx"]),
        ("chain", ["sh", "-c", "false && exit 9"]),
    ):
        ids[name] = await runtime.create_container(sandbox, ContainerSpec(name, "img", command=command))
        await runtime.start_container(ids[name])
    ended = {}
    while len(ended) < 2:
        event = await asyncio.wait_for(anext(events), DEADLINE)
        if event.kind == "died":
            ended[event.container_name] = event.exit_code
    assert ended == {"quick": 4, "chain": 1}
    assert (await runtime.exec(ids["server"], ["sh", "-c", "echo hi; exit 2"])).exit_code == 2
    assert await runtime.probe_port("10.250.0.2", 80)
    await runtime.stop_container(ids["server"], 30)
    status = await runtime.sandbox_status(sandbox)
    assert status is not None and {c.name: c.exit_code for c in status.containers}["server"] == 143
