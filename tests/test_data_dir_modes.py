"""The data dir keeps every Secret (`state.db`) and the cluster's keys: only its owner may read any of it."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.cluster import start_cluster


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_makes_the_data_dir_private_and_tightens_an_old_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)  # as an older kube-shim left it
    state.chmod(0o755)
    cluster = start_cluster(tmp_path)
    try:
        cluster.kubectl("create", "secret", "generic", "s", "--from-literal=password=hunter2")  # a WAL write
        database = [state / name for name in ("state.db", "state.db-wal", "state.db-shm")]
        pki = sorted((state / "pki").iterdir())
        assert {p.name for p in pki} >= {"ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "token"}
        assert mode(state) == 0o700
        assert mode(state / "pki") == 0o700
        assert {str(p): mode(p) for p in [*database, *pki, cluster.kubeconfig]} == {
            str(p): 0o600 for p in [*database, *pki, cluster.kubeconfig]
        }
    finally:
        assert cluster.stop() == 0

    # files an older version wrote world-readable are tightened on the next start
    (state / "pki" / "ca.crt").chmod(0o644)
    (state / "state.db").chmod(0o644)
    state.chmod(0o755)
    cluster = start_cluster(tmp_path, port=cluster.port)
    try:
        assert (mode(state), mode(state / "pki" / "ca.crt"), mode(state / "state.db")) == (0o700, 0o600, 0o600)
    finally:
        assert cluster.stop() == 0
