"""The data dir holds every Secret (in `state.db`) and the cluster's keys, so only its owner may read it.

The directory is made 0700 and the files kube-shim keeps there 0600, on every start: a data dir created by an
older version (0755 directory, 0644 database and certificates) is tightened when the new one starts. The
database is created empty with mode 0600 before SQLite opens it, and SQLite gives its `-wal` and `-shm` files
the database's mode, so the database is never readable by others, not even for a moment.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
DATABASE = "state.db"
PRIVATE_FILES = (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm")


def prepare_data_dir(data_dir: Path, database: bool) -> None:
    """Create `data_dir` (0700), with an empty 0600 database if `database` and it has none; tighten what exists."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if database:  # SQLite takes an empty file for a new database
        os.close(os.open(data_dir / DATABASE, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    restrict_modes(data_dir)


def restrict_modes(data_dir: Path) -> None:
    """Mode 0700 for the data dir and its `pki/`, 0600 for the database files and everything in `pki/`."""
    os.chmod(data_dir, DIR_MODE)
    for name in PRIVATE_FILES:
        path = data_dir / name
        if path.is_file():
            os.chmod(path, FILE_MODE)
    pki = data_dir / "pki"
    if pki.is_dir():
        os.chmod(pki, DIR_MODE)
        for path in pki.rglob("*"):
            if path.is_symlink():  # not ours: chmod would change its target
                continue
            os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
