"""Under steady churn with compaction on, the SQLite files stay bounded: freed pages are reused, the WAL is
checkpointed and cut back, instead of growing with every write ever made (kine's best-known failure)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shim.store.compactor import Compactor
from shim.store.sqlite import WAL_SIZE_LIMIT, open_sqlite_store

KEYS = 1000
UPDATES = 100_000
WRITERS = 50  # concurrent writers, so that group commit shares each fsync among many writes
VALUE_SIZE = 512
COMPACT_EVERY = 5000  # revisions
KEEP_REVISIONS = 1000

# At most every key's live row, the kept window and one interval of new rows are retained; twice that
# covers row and page overhead (the index, half-full pages), and the WAL is capped at WAL_SIZE_LIMIT.
# Without compaction, or if freed pages were not reused, the values alone would be UPDATES * VALUE_SIZE
# (51 MB): an order of magnitude more.
RETAINED_BYTES = (KEYS + KEEP_REVISIONS + COMPACT_EVERY) * VALUE_SIZE
SIZE_BOUND = 2 * RETAINED_BYTES + WAL_SIZE_LIMIT


@pytest.mark.slow
async def test_database_files_stay_bounded_under_100k_updates_with_compaction(tmp_path: Path) -> None:
    db = tmp_path / "churn.db"
    store = await open_sqlite_store(db)
    compactor = Compactor(store, keep_revisions=KEEP_REVISIONS)
    sizes: list[int] = []

    async def write(writer: int) -> dict[str, bytes]:
        keys = [f"/registry/configmaps/churn/{k}" for k in range(writer, KEYS, WRITERS)]
        latest = {key: await store.create(key, value(key, 0)) for key in keys}
        for i in range(1, UPDATES // WRITERS + 1):
            key = keys[i % len(keys)]
            kv = latest[key] = await store.update(key, value(key, i), latest[key].mod_revision)
            if kv.mod_revision % COMPACT_EVERY == 0:
                sizes.append(files_size(db))  # the peak: just before compaction
                await compactor.compact_now()
                sizes.append(files_size(db))
        return {key: kv.value for key, kv in latest.items()}

    try:
        written = await asyncio.gather(*(write(w) for w in range(WRITERS)))
        final = {key: data for latest in written for key, data in latest.items()}
        assert await store.compacted_revision() >= UPDATES - COMPACT_EVERY - KEEP_REVISIONS
        assert {kv.key: kv.value for kv in (await store.list("/registry/configmaps/churn/")).items} == final
    finally:
        await store.close()

    print(f"churn: files peaked at {max(sizes) / 2**20:.1f} MiB (bound {SIZE_BOUND / 2**20:.1f} MiB)")
    assert len(sizes) >= 2 * (UPDATES // COMPACT_EVERY)
    assert max(sizes) <= SIZE_BOUND


def value(key: str, i: int) -> bytes:
    return f"{key}={i};".encode().ljust(VALUE_SIZE, b".")


def files_size(db: Path) -> int:
    """The database plus its write-ahead log."""
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
