"""kube-shim installed from its wheel (not the checkout) serves what it serves from a checkout: the packaged
OpenAPI documents are what `kubectl explain` and `kubectl apply` need."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.cluster import start_cluster

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed (without dependencies: the test venv has them) into a
    directory of its own."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    [wheel] = out.glob("kube_shim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "shim/apiserver/openapi_documents/v2/swagger.json.gz" in names
    assert "shim/apiserver/openapi_documents/v3/api__v1.json.gz" in names
    site = out / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return site


def test_the_installed_wheel_serves_explain_and_apply(installed: Path, tmp_path: Path) -> None:
    cluster = start_cluster(
        tmp_path / "cluster", nodes=("--runtime", "fake", "--nodes", "1"), env={"PYTHONPATH": str(installed)}
    )
    try:
        where = subprocess.run(
            [sys.executable, "-c", "import shim; print(shim.__file__)"],
            env={"PYTHONPATH": str(installed)}, cwd=tmp_path, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert where.startswith(str(installed)), where
        explained = cluster.kubectl("explain", "pod.spec")
        assert "containers" in explained.stdout
        manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-wheel"}, "data": {"a": "b"}}
        applied = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        assert applied.stdout.strip() == "configmap/from-wheel created"
    finally:
        cluster.stop()
