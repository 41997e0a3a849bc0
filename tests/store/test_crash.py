"""An acknowledged write to the SQLite store survives SIGKILL of the process that made it.

Run as a script, this file is the child: it writes to the store as fast as it can from many concurrent
writers and prints each acknowledged key and revision as soon as the write returns.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from pathlib import Path

import pytest

from shim.store.sqlite import open_sqlite_store

WRITERS = 32
ACKS_BEFORE_KILL = 20_000
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_every_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        str(db),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    acked: dict[str, int] = {}
    try:
        async with asyncio.timeout(60):
            while len(acked) < ACKS_BEFORE_KILL:
                line = await child.stdout.readline()
                assert line.endswith(b"\n"), "the writer ended before it was killed"
                record_ack(acked, line)
    finally:
        child.send_signal(signal.SIGKILL)
    # acks printed between the last line read and the kill count too
    for line in (await child.stdout.read()).splitlines(keepends=True):
        if line.endswith(b"\n"):
            record_ack(acked, line)
    assert await child.wait() == -signal.SIGKILL

    store = await open_sqlite_store(db)
    try:
        assert await store.current_revision() >= max(acked.values())
        stored = {kv.key: kv.mod_revision for kv in (await store.list("/crash/")).items}
        assert {key: stored.get(key) for key in acked} == acked
    finally:
        await store.close()


def record_ack(acked: dict[str, int], line: bytes) -> None:
    key, revision = line.decode().split()
    acked[key] = int(revision)


async def write_until_killed(db: str) -> None:
    """The child: create keys from `WRITERS` concurrent tasks forever, printing each acknowledgement."""
    store = await open_sqlite_store(db)

    async def write(writer: int) -> None:
        for i in itertools.count():
            kv = await store.create(f"/crash/{writer}/{i}", b"x" * 100)
            print(kv.key, kv.mod_revision, flush=True)

    await asyncio.gather(*(write(w) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(write_until_killed(sys.argv[1]))
