"""Store failures reach clients as Kubernetes `Status` objects, and the cluster recovers when the store does.

- A damaged `state.db` stops `kube-shim up` with one line naming the file and what to do, not a traceback.
- With the etcd backend, etcd stopped: requests get 503 ServiceUnavailable and `/readyz` fails; etcd
  restarted: everything serves again, and a watcher that resumes from its last resourceVersion sees every
  object, created before the outage or after it, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.cluster import Cluster, free_port, start_cluster
from tests.etcd_server import ETCD_BINARY, EtcdServer
from tests.rawapi import RawApi, Reply

OUTAGE_DEADLINE = 30.0  # for the server to notice etcd is gone, and to serve again once it is back
NAMESPACE = "faults"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


# -- a damaged SQLite store ------------------------------------------------------------------------------------


def up_once(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `kube-shim up` on `data_dir` expecting it to exit by itself (it must not start serving)."""
    cmd = [sys.executable, "-m", "shim.cli", "up", "--data-dir", str(data_dir), "--listen",
           f"127.0.0.1:{free_port()}", "--kubeconfig", str(data_dir.parent / "kubeconfig"), "--nodes", "0"]  # fmt: skip
    env = {"HOME": str(data_dir.parent), "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def garbage_file(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "state.db").write_bytes(bytes(range(256)) * 64)


def damaged_pages(data_dir: Path) -> None:
    """A real store, written by a real server, whose pages after the header were overwritten."""
    start_cluster(data_dir.parent).stop()  # its data dir is <dir>/state
    with (data_dir / "state.db").open("r+b") as db:
        db.seek(100)  # past SQLite's file header, into the first page's b-tree and beyond
        db.write(b"\xa5" * 20_000)


def foreign_database(data_dir: Path) -> None:
    """A valid SQLite file of some other program."""
    data_dir.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(data_dir / "state.db")) as db:
        db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, something TEXT)")
        db.commit()


@pytest.mark.parametrize("damage", [garbage_file, damaged_pages, foreign_database])
def test_a_damaged_state_db_gives_one_line_naming_the_file_and_what_to_do(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    data_dir = tmp_path / "state"
    damage(data_dir)
    result = up_once(data_dir)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("kube-shim: cannot open the store"), line
    assert str(data_dir / "state.db") in line, line
    assert "move it away to start empty, or restore a backup" in line, line


# -- etcd stopped and restarted --------------------------------------------------------------------------------


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    if ETCD_BINARY is None:
        raise AssertionError("the etcd binary is required (Debian package etcd-server)")
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def etcd_cluster(tmp_path: Path, etcd: EtcdServer) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path / "cluster", extra=("--store", f"etcd://{etcd.address}/faults"))
    yield cluster
    cluster.stop()


@pytest.fixture
async def api(etcd_cluster: Cluster) -> AsyncIterator[RawApi]:
    raw = RawApi(etcd_cluster.kubeconfig)
    yield raw
    await raw.close()


class ResumingWatcher:
    """A watch client as client-go's reflector is: on a broken stream it watches again from the last
    resourceVersion it saw, and relists only when that version is gone (410)."""

    def __init__(self, api: RawApi, path: str, resource_version: str) -> None:
        self.api = api
        self.path = path
        self.resource_version = resource_version
        self.added: list[str] = []
        self.restarts = 0
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, AssertionError):
                await self._watch_once()
            self.restarts += 1
            await asyncio.sleep(0.2)  # back off before the next attempt, as a reflector does

    async def _watch_once(self) -> None:
        params = {"watch": "true", "resourceVersion": self.resource_version, "allowWatchBookmarks": "true"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.api.session.get(self.path, params=params, timeout=timeout) as resp:
            if resp.status != 200:
                return
            async for line in resp.content:
                event = orjson.loads(line)
                if event["type"] == "ERROR":
                    assert event["object"]["code"] != 410, "the watcher's resourceVersion was compacted away"
                    return
                meta = event["object"]["metadata"]
                self.resource_version = meta["resourceVersion"]
                if event["type"] == "ADDED":
                    self.added.append(meta["name"])
                    self.changed.set()

    async def wait_for(self, names: list[str]) -> None:
        async with asyncio.timeout(OUTAGE_DEADLINE):
            while not set(names) <= set(self.added):
                self.changed.clear()
                await self.changed.wait()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def poll(api: RawApi, method: str, path: str, until: int, body: object = None) -> Reply:
    """Send the request until it is answered with status `until` (the server notices etcd within seconds)."""
    async with asyncio.timeout(OUTAGE_DEADLINE):
        while True:
            reply = await api.call(method, path, body)
            if reply.status == until:
                return reply
            await asyncio.sleep(0.1)


def assert_unavailable(reply: Reply) -> None:
    body = reply.json()
    assert (reply.status, body["kind"], body["reason"], body["code"]) == (503, "Status", "ServiceUnavailable", 503)
    assert "etcd" in body["message"]


async def test_etcd_down_gives_503_and_readyz_fails_then_everything_recovers_without_losing_an_event(
    etcd: EtcdServer, etcd_cluster: Cluster, api: RawApi
) -> None:
    await api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    listed = await api.ok("GET", CONFIGMAPS)
    watcher = ResumingWatcher(api, CONFIGMAPS, listed["metadata"]["resourceVersion"])
    before = [f"before-{i}" for i in range(3)]
    for name in before:
        await api.ok("POST", CONFIGMAPS, {"metadata": {"name": name}})
    await watcher.wait_for(before)

    etcd.stop()
    assert_unavailable(await poll(api, "GET", CONFIGMAPS, 503))
    assert_unavailable(await api.call("POST", CONFIGMAPS, {"metadata": {"name": "during"}}))
    assert_unavailable(await api.call("GET", CONFIGMAPS + "/before-0"))
    assert_unavailable(await api.call("PATCH", CONFIGMAPS + "/before-0", {"data": {"a": "b"}},
                                      content_type="application/merge-patch+json"))  # fmt: skip
    readyz = await api.call("GET", "/readyz", params={"verbose": "1"}, content_type=None)
    assert readyz.status == 500 and b"[-]etcd failed" in readyz.body, readyz.body
    assert etcd_cluster.process.poll() is None

    etcd.start()
    await poll(api, "GET", CONFIGMAPS, 200)
    assert (await api.call("GET", "/readyz", content_type=None)).status == 200
    after = [f"after-{i}" for i in range(3)]
    for name in after:
        await api.ok("POST", CONFIGMAPS, {"metadata": {"name": name}})
    await watcher.wait_for(after)
    await watcher.stop()
    ours = [name for name in watcher.added if name.startswith(("before-", "after-"))]  # not the controllers'
    assert sorted(ours) == sorted(before + after), watcher.added  # each exactly once, none lost
    assert watcher.restarts >= 1  # the outage did break the stream: the resume was exercised
    names = {item["metadata"]["name"] for item in (await api.ok("GET", CONFIGMAPS))["items"]}
    assert set(before + after) <= names
