"""The kubeconfig `kube-shim up` writes, merged into an existing file the way kind and k3d do: only the
entries named after our context are replaced, every other cluster, user and context stays as it was.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from shim.pki import write_atomically


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: bytes,
    token: str | None,
    context: str = "kube-shim",
    merge: bool = True,
    set_current: bool = True,
    *,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
) -> None:
    """Writes cluster, user and context entries named `context` into the kubeconfig at `path`.

    The user authenticates with `token`, or with `client_cert_pem`/`client_key_pem` when given. With `merge`,
    the existing file keeps its other entries in their order; without it the file holds only ours. The file is
    replaced atomically with mode 0600, under the same `<path>.lock` kubectl takes while it edits.
    """
    if client_cert_pem is None and token is None:
        raise ValueError("a kubeconfig user needs a token or a client certificate")
    if (client_cert_pem is None) != (client_key_pem is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    user: dict[str, str] = {"token": token} if token is not None else {}
    if client_cert_pem is not None and client_key_pem is not None:
        user = {"client-certificate-data": _b64(client_cert_pem), "client-key-data": _b64(client_key_pem)}
    cluster = {"server": server, "certificate-authority-data": _b64(ca_pem)}
    entries = {
        "clusters": {"name": context, "cluster": cluster},
        "users": {"name": context, "user": user},
        "contexts": {"name": context, "context": {"cluster": context, "user": context}},
    }

    with _locked(path):
        config = _read(path) if merge else {}
        config.setdefault("apiVersion", "v1")
        config.setdefault("kind", "Config")
        for section, entry in entries.items():
            config[section] = _replace_or_append(config.get(section) or [], entry)
        if set_current:
            config["current-context"] = context
        write_atomically(path, yaml.safe_dump(config, sort_keys=False).encode(), 0o600)


def default_kubeconfig_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The file kubectl would merge a new context into: with several `KUBECONFIG` entries the first that
    exists (else the last), with one that one, otherwise `~/.kube/config` (kind's rule, from kubectl's).
    """
    paths = list(dict.fromkeys(p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p))
    if not paths:
        return Path(environ.get("HOME") or Path.home()) / ".kube" / "config"
    if len(paths) == 1:
        return Path(paths[0])
    return next((Path(p) for p in paths if Path(p).is_file()), Path(paths[-1]))


def kubectl_hint(path: Path, default_path: Path, context: str = "kube-shim") -> str:
    """The kubectl command line to print after writing `path`: kubectl finds the default file by itself."""
    if path.expanduser().absolute() == default_path.expanduser().absolute():
        return f"kubectl cluster-info --context {shlex.quote(context)}"
    return f"kubectl --kubeconfig {shlex.quote(str(path))} get nodes"


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    config = yaml.safe_load(text) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a kubeconfig (expected a mapping at the top level)")
    return config


def _replace_or_append(entries: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Our entry in place of the one with the same name, or at the end if there is none."""
    if any(existing.get("name") == entry["name"] for existing in entries):
        return [entry if existing.get("name") == entry["name"] else existing for existing in entries]
    return [*entries, entry]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Holds `<path>.lock`, the lock file client-go (kubectl config ...) and kind create while writing."""
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise RuntimeError(f"{lock} exists: another program is writing {path} (if not, remove it)") from None
    os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
