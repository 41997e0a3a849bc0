"""Shared fixtures: one real `kube-shim up` process per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, start_cluster
from tests.dns_upstream import FakeUpstream, fake_upstream
from tests.prerequisites import MISSING
from tests.rawapi import RawApi


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The real `kube-shim up`, serving HTTPS on a free loopback port, with its kubeconfig."""
    running = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def compacting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A second server that compacts every 0.2 s down to the newest revision (expired tokens and revisions)."""
    running = start_cluster(
        tmp_path_factory.mktemp("compacting"), extra=("--compaction-interval", "0.2", "--compaction-keep", "1")
    )
    yield running
    running.stop()


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A server of the test's own on an in-memory store: nothing another test made is in it (counts of nodes
    and pods in its messages are exactly the test's)."""
    running = start_cluster(tmp_path, extra=("--store", "memory://"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dns_upstream() -> Iterator[FakeUpstream]:
    """A fake upstream resolver on 127.0.0.1 (tests.dns_upstream) for a module's cluster DNS to forward to."""
    with fake_upstream() as running:
        yield running


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[RawApi]:
    """Raw HTTPS to the session's cluster with its admin credentials (exact codes, headers and bodies)."""
    raw = RawApi(cluster.kubeconfig)
    yield raw
    await raw.close()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, so tests sharing the cluster do not see each other's objects."""
    name = "t-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    # pods need the `default` service account, which a controller adds just after the namespace (kube's
    # e2e framework waits for it the same way)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    yield name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Where every prerequisite must be there (KUBE_SHIM_REQUIRE_ALL=1, as CI sets it), a skip for a missing one
    fails instead: a CI run that silently tested less is worse than a red one."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("KUBE_SHIM_REQUIRE_ALL") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if MISSING in reason:
            report.outcome = "failed"
            report.longrepr = f"{reason} (KUBE_SHIM_REQUIRE_ALL=1: every prerequisite must be installed)"
