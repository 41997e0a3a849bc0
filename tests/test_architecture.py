"""The components and the API server meet only in shared packages (`shim.machinery`, `shim.streaming`).

A component (scheduler, controllers, node agent, client, runtime) never imports `shim.apiserver`, so it can run
without loading the server; the server never imports node-agent code. Checked twice: what a fresh interpreter
actually loads, and every import line in the source. Tests and benchmarks share helpers through helper modules,
never by importing a test module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SHIM = Path(__file__).resolve().parent.parent / "shim"
COMPONENTS = ("scheduler", "controllers", "kubelet", "client", "runtime")

# every module of the package, as a process that imports the component would load them
_LOADED = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
if sys.argv[2] == "all":
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(package: str, everything: bool) -> list[str]:
    """The modules a fresh interpreter holds after importing `package` (and, if asked, all its submodules)."""
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, package, "all" if everything else "package"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=SHIM.parent,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("component", ["scheduler", "controllers", "client"])
def test_importing_a_component_loads_neither_the_api_server_nor_aiohttp_web(component: str) -> None:
    loaded = loaded_modules(f"shim.{component}", everything=False)
    assert [m for m in loaded if m == "shim.apiserver" or m.startswith("shim.apiserver.")] == []
    assert "aiohttp.web" not in loaded


@pytest.mark.parametrize("component", COMPONENTS)
def test_no_module_of_a_component_loads_the_api_server(component: str) -> None:
    # the node agent's streaming server is an aiohttp.web server of its own, so only shim.apiserver is checked
    loaded = loaded_modules(f"shim.{component}", everything=True)
    assert f"shim.{component}" in loaded
    assert [m for m in loaded if m == "shim.apiserver" or m.startswith("shim.apiserver.")] == []


def imported_modules(path: Path) -> set[str]:
    """Every absolute module an `import` or `from ... import` statement in the file names (anywhere in it)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the project imports absolutely)"
            names.add(node.module or "")
    return names


def offending_imports(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """`file: module` for each import under shim/<package> of a module in (or below) a forbidden package."""
    found = []
    for path in sorted((SHIM / package).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(SHIM.parent)}: {name}")
    return found


@pytest.mark.parametrize("component", COMPONENTS)
def test_no_component_source_imports_the_api_server(component: str) -> None:
    assert (SHIM / component).is_dir()
    assert offending_imports(component, ("shim.apiserver",)) == []


def test_the_api_server_source_imports_no_node_agent_or_runtime_code() -> None:
    assert offending_imports("apiserver", ("shim.kubelet", "shim.runtime", "shim.node")) == []


def test_shared_machinery_imports_neither_the_server_nor_the_node_agent_nor_aiohttp_web() -> None:
    assert offending_imports("machinery", ("shim.apiserver", "shim.kubelet", "shim.runtime", "aiohttp")) == []
    loaded = loaded_modules("shim.machinery", everything=True)
    assert [m for m in loaded if m.startswith(("shim.apiserver", "shim.kubelet", "aiohttp"))] == []


def test_the_static_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    # the check itself can fail: a lazy import inside a function is still an import line
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from shim.apiserver.errors import ApiError\n    return ApiError\n")
    assert "shim.apiserver.errors" in imported_modules(module)


def private_runtime_imports(path: Path) -> list[str]:
    """`module.name` for each private name (`_x`) the file imports from shim.runtime."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shim.runtime"):
            found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
    return found


def test_the_cli_uses_only_public_names_of_the_runtimes(tmp_path: Path) -> None:
    assert private_runtime_imports(SHIM / "cli.py") == []
    module = tmp_path / "reaching.py"
    module.write_text("from shim.runtime.fake import _now\n")
    assert private_runtime_imports(module) == ["shim.runtime.fake._now"]


def imported_test_modules(path: Path) -> list[str]:
    """Each `tests.test_*` module the file imports (`import tests.test_x`, `from tests.test_x import ...`,
    `from tests import test_x`), anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("tests.test_")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.test_"):
            found.append(node.module or "")
        elif isinstance(node, ast.ImportFrom) and node.module == "tests":
            found += [f"tests.{alias.name}" for alias in node.names if alias.name.startswith("test_")]
    return found


def test_no_test_or_bench_module_imports_a_test_module() -> None:
    # shared helpers live in helper modules (tests/cluster.py, tests/kubelet_kit.py, ...): a test module imported
    # elsewhere runs its module-level code and fixtures twice and hides what the helpers are
    sources = sorted((SHIM.parent / "tests").glob("*.py")) + sorted((SHIM.parent / "bench").glob("*.py"))
    assert len(sources) > 50
    found = [f"{path.relative_to(SHIM.parent)}: {name}" for path in sources for name in imported_test_modules(path)]
    assert found == []


def test_the_test_module_check_sees_every_spelling(tmp_path: Path) -> None:
    module = tmp_path / "helper.py"
    module.write_text(
        "import tests.test_a\nfrom tests.test_b import x\nfrom tests import cluster, test_c\n"
        "def f():\n    from tests.test_d import y\n"
    )
    assert sorted(imported_test_modules(module)) == ["tests.test_a", "tests.test_b", "tests.test_c", "tests.test_d"]
