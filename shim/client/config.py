"""Where the API server is and how to prove who we are: read from a kubeconfig."""

from __future__ import annotations

import base64
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class ClusterAccess:
    """Server URL, trust and credentials of one kubeconfig context."""

    server: str
    ca_pem: bytes | None = None
    token: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    insecure: bool = False

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The client TLS context (False for plain http)."""
        if not self.server.startswith("https://"):
            return False
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode() if self.ca_pem else None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert_pem and self.client_key_pem:
            # the ssl module loads client certificates only from files
            with tempfile.NamedTemporaryFile("wb", suffix=".pem") as f:
                f.write(self.client_cert_pem + b"\n" + self.client_key_pem)
                f.flush()
                ctx.load_cert_chain(f.name)
        return ctx


def load_kubeconfig(path: Path, context: str | None = None) -> ClusterAccess:
    """The cluster and user of `context` (default: current-context) in the kubeconfig at `path`."""
    config: dict[str, Any] = yaml.safe_load(Path(path).expanduser().read_text()) or {}
    name = context or config.get("current-context")
    ctx = _named(config, "contexts", name)["context"]
    cluster = _named(config, "clusters", ctx["cluster"])["cluster"]
    user = _named(config, "users", ctx["user"])["user"] if ctx.get("user") else {}
    return ClusterAccess(
        server=cluster["server"].rstrip("/"),
        ca_pem=_data(cluster, "certificate-authority"),
        token=user.get("token") or (Path(user["tokenFile"]).read_text().strip() if user.get("tokenFile") else None),
        client_cert_pem=_data(user, "client-certificate"),
        client_key_pem=_data(user, "client-key"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def _named(config: dict[str, Any], section: str, name: str | None) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            return entry
    raise ValueError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _data(entry: dict[str, Any], field: str) -> bytes | None:
    if entry.get(f"{field}-data"):
        return base64.b64decode(entry[f"{field}-data"])
    if entry.get(field):
        return Path(entry[field]).read_bytes()
    return None
