"""One process per SQLite store: a second opener is refused instead of interleaving revisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.store import StoreError
from shim.store.sqlite import open_sqlite_store


async def test_a_second_opener_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = await open_sqlite_store(path)
    await first.create("/k", b"v")
    with pytest.raises(StoreError, match="in use by another process"):
        await open_sqlite_store(path)
    await first.close()
    second = await open_sqlite_store(path)
    assert (await second.get("/k")) is not None
    await second.close()
