"""Real kubectl 1.27-1.33 against the real `kube-shim up`: the object lifecycle a user runs."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cluster import KUBECTL_VERSIONS, Cluster, LineReader
from tests.prerequisites import kubectl_path

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {{app: demo, tier: web}}
spec:
  containers:
  - name: main
    image: {image}
    ports:
    - containerPort: 80
"""


def kubectl_watch(cluster: Cluster, version: str, *args: str) -> tuple[subprocess.Popen[str], LineReader]:
    cache = cluster.data_dir / f"kubecache-{version}"
    cmd = [str(kubectl_path(version)), "--kubeconfig", str(cluster.kubeconfig), *args]
    env = {"KUBECACHEDIR": str(cache), "HOME": str(cluster.data_dir), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return process, LineReader(process)


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_pod_lifecycle_with_every_kubectl(cluster: Cluster, namespace: str, version: str) -> None:
    """create/apply → get (all output forms) → describe → re-apply → server-side apply → label/annotate/patch
    → get -w sees it → delete returns once DELETED is seen."""
    k = lambda *a, **kw: cluster.kubectl("-n", namespace, *a, version=version, **kw)  # noqa: E731
    assert "pod/app created" in k("apply", "-f", "-", stdin=POD.format(image="nginx:1.25")).stdout

    table = k("get", "pods").stdout
    assert table.split("\n")[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "app" in table and "0/1" in table and "Pending" in table
    wide = k("get", "pods", "-o", "wide").stdout.split("\n")[0]
    assert "NOMINATED NODE" in wide and "READINESS GATES" in wide
    as_yaml = k("get", "pod", "app", "-o", "yaml").stdout
    assert "imagePullPolicy: IfNotPresent" in as_yaml and "protocol: TCP" in as_yaml
    pod = json.loads(k("get", "pod", "app", "-o", "json").stdout)
    assert pod["spec"]["restartPolicy"] == "Always" and pod["metadata"]["uid"]
    assert k("get", "pod", "app", "-o", "jsonpath={.spec.containers[0].image}").stdout == "nginx:1.25"
    assert "app=demo,tier=web" in k("get", "pods", "--show-labels").stdout
    assert "app" in k("get", "pods", "--sort-by=.metadata.name").stdout
    everywhere = cluster.kubectl("get", "pods", "-A", version=version).stdout
    assert namespace in everywhere
    described = k("describe", "pod", "app").stdout
    assert "Image:" in described and "nginx:1.25" in described and "80/TCP" in described

    assert (
        "pod/app configured"
        in k("apply", "-f", "-", stdin=POD.format(image="nginx:1.27").replace("web", "frontend")).stdout
    )
    pod = json.loads(k("get", "pod", "app", "-o", "json").stdout)
    assert pod["metadata"]["labels"]["tier"] == "frontend"
    assert pod["spec"]["containers"][0]["image"] == "nginx:1.27"

    ssa = k("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=POD.format(image="nginx:1.28"))
    assert "serverside-applied" in ssa.stdout
    assert json.loads(k("get", "pod", "app", "-o", "json").stdout)["spec"]["containers"][0]["image"] == "nginx:1.28"

    watcher, lines = kubectl_watch(
        cluster, version, "-n", namespace, "get", "pod", "app", "-w", "--output-watch-events", "--show-labels"
    )
    try:
        lines.wait_for("app")
        k("label", "pod", "app", "stage=canary")
        lines.wait_for("stage=canary")
    finally:
        watcher.kill()
        watcher.wait()

    k("annotate", "pod", "app", "note=hello")
    k("patch", "pod", "app", "--type=merge", "-p", '{"metadata":{"labels":{"merge":"yes"}}}')
    k(
        "patch",
        "pod",
        "app",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/json","value":"yes"}]',
    )
    k("patch", "pod", "app", "-p", '{"spec":{"containers":[{"name":"main","image":"nginx:1.29"}]}}')
    pod = json.loads(k("get", "pod", "app", "-o", "json").stdout)
    assert pod["metadata"]["annotations"]["note"] == "hello"
    assert pod["metadata"]["labels"]["merge"] == pod["metadata"]["labels"]["json"] == "yes"
    assert pod["spec"]["containers"][0]["image"] == "nginx:1.29"
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]

    assert 'pod "app" deleted' in k("delete", "pod", "app", timeout=30).stdout
    assert k("get", "pod", "app", check=False).returncode != 0


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_typed_creates_run_expose_scale(cluster: Cluster, namespace: str, version: str) -> None:
    """`create deployment|configmap|secret|namespace` (protobuf bodies from 1.32), run, expose, scale."""
    k = lambda *a, **kw: cluster.kubectl("-n", namespace, *a, version=version, **kw)  # noqa: E731
    k("create", "deployment", "web", "--image=nginx", "--replicas=2", "--port=80")
    k("create", "configmap", "cfg", "--from-literal=a=b")
    k("create", "secret", "generic", "sec", "--from-literal=k=v")
    other = f"{namespace}-x"
    cluster.kubectl("create", "namespace", other, version=version)
    deployment = json.loads(k("get", "deploy", "web", "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] == "TCP"
    assert json.loads(k("get", "cm", "cfg", "-o", "json").stdout)["data"] == {"a": "b"}
    assert json.loads(k("get", "secret", "sec", "-o", "json").stdout)["data"] == {"k": "dg=="}
    assert "Active" in cluster.kubectl("get", "ns", other, version=version).stdout

    k("run", "solo", "--image=nginx", "--labels=run=solo", "--port=80")
    k("expose", "pod", "solo", "--port=8080", "--target-port=80")
    service = json.loads(k("get", "svc", "solo", "-o", "json").stdout)
    assert service["spec"]["selector"] == {"run": "solo"}
    assert service["spec"]["clusterIP"].startswith("10.")
    assert "deployment.apps/web scaled" in k("scale", "deployment", "web", "--replicas=3").stdout
    assert json.loads(k("get", "deploy", "web", "-o", "json").stdout)["spec"]["replicas"] == 3


def test_api_resources_and_explain(cluster: Cluster) -> None:
    resources = cluster.kubectl("api-resources").stdout
    for name in ("pods", "deployments", "leases", "priorityclasses", "namespaces"):
        assert name in resources
    for version in KUBECTL_VERSIONS:
        explained = cluster.kubectl("explain", "pod.spec.containers", version=version).stdout
        assert "image" in explained and "FIELDS" in explained.upper()


def test_wait_for_delete_and_namespace_delete_removes_contents(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "doomed")
    cluster.kubectl("-n", "doomed", "create", "configmap", "c1", "--from-literal=a=b")
    cluster.kubectl("-n", "doomed", "run", "p1", "--image=nginx")
    waiter, _ = kubectl_watch(cluster, "1.33", "-n", "doomed", "wait", "--for=delete", "cm/c1", "--timeout=60s")
    cluster.kubectl("delete", "namespace", "doomed", "--timeout=60s")
    assert waiter.wait(60) == 0
    gone = cluster.kubectl("get", "namespace", "doomed", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
