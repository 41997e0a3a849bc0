"""kube-shim installed from its wheel into a fresh virtual environment (not the checkout, not the test
environment) serves what it serves from a checkout: the packaged OpenAPI documents are what `kubectl explain`
and `kubectl apply` need."""

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
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtual environment that has the wheel built from this checkout installed,
    with its dependencies, as `pip install kube_shim-*.whl` installs it for a user."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    [wheel] = out.glob("kube_shim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "shim/apiserver/openapi_documents/v2/swagger.json.gz" in names
    assert "shim/apiserver/openapi_documents/v3/api__v1.json.gz" in names
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return python


def test_the_installed_wheel_serves_explain_and_apply(venv_python: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(venv_python), "-c", "import shim; print(shim.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(venv_python.parents[1])), where
    cluster = start_cluster(tmp_path / "cluster", nodes=("--runtime", "fake", "--nodes", "1"), python=str(venv_python))
    try:
        explained = cluster.kubectl("explain", "pod.spec")
        assert "containers" in explained.stdout
        manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-wheel"}, "data": {"a": "b"}}
        applied = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        assert applied.stdout.strip() == "configmap/from-wheel created"
    finally:
        cluster.stop()
