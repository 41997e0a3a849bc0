"""`kube-shim`: the command line. `kube-shim up` runs the whole cluster in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
import time
from pathlib import Path

from shim import __version__

DEFAULT_DATA_DIR = Path("~/.local/share/kube-shim")
DEFAULT_LISTEN = "127.0.0.1:6443"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kube-shim` console script."""
    parser = argparse.ArgumentParser(prog="kube-shim", description="A Kubernetes-compatible control plane.")
    parser.add_argument("--version", action="version", version=f"kube-shim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the API server (and, as they land, every other component)")
    up.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state, PKI (default %(default)s)")
    up.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT to serve on (default %(default)s)")
    up.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig to write (default: merged into ~/.kube/config as context kube-shim)",
    )
    up.add_argument(
        "--store",
        default=None,
        help="store URL: sqlite:///PATH (default: in the data dir), memory://, etcd://HOST:PORT[,HOST:PORT][/PREFIX]",
    )
    up.add_argument(
        "--compaction-interval",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how often the store forgets old history (default %(default)s)",
    )
    up.add_argument(
        "--compaction-keep",
        type=int,
        default=10_000,
        metavar="REVISIONS",
        help="revisions of history kept for watch resume (default %(default)s)",
    )
    up.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "up":
        return _run(up_command(args))
    return 2


def _run(coro: object) -> int:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        return asyncio.run(coro)  # type: ignore[arg-type]


async def up_command(args: argparse.Namespace) -> int:
    """Start the cluster, write the kubeconfig, print how to reach it, run until SIGINT/SIGTERM."""
    from shim.apiserver.auth import UserInfo, authentication_middleware
    from shim.apiserver.server import ApiServer, ApiServerConfig, data_store_url
    from shim.client import ApiClient, ClusterAccess
    from shim.controllers.manager import ControllerManager
    from shim.kubeconfig import default_kubeconfig_path, kubectl_hint, write_kubeconfig
    from shim.pki import ADMIN_GROUP, ADMIN_USER, ensure_pki

    started = time.monotonic()
    data_dir = args.data_dir.expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    host, _, port_text = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        print(f"kube-shim: --listen wants HOST:PORT, not {args.listen!r}", file=sys.stderr)
        return 2
    pki = ensure_pki(data_dir, [host])
    tokens = {pki.token: UserInfo(ADMIN_USER, (ADMIN_GROUP,))}
    server = ApiServer(
        ApiServerConfig(
            host=host,
            port=port,
            store_url=args.store or data_store_url(data_dir),
            ssl_context=pki.ssl_server_context(),
            middlewares=[authentication_middleware(tokens)],
            compaction_interval=args.compaction_interval,
            compaction_keep=args.compaction_keep,
        )
    )
    try:
        await server.start()
    except OSError as exc:
        print(f"kube-shim: cannot serve on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        await server.stop()
        return 1
    # lists decode thousands of objects at once; the default gen-0 threshold (700) makes the cyclic GC
    # rescan every live object many times per list. Objects made at start-up never become garbage.
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    url_host = host if host not in ("0.0.0.0", "::") else socket.gethostname()
    url = f"https://{'[' + url_host + ']' if ':' in url_host else url_host}:{server.bound_port}"
    access = ClusterAccess(
        server=f"https://127.0.0.1:{server.bound_port}" if host in ("0.0.0.0", "::") else url,
        ca_pem=pki.ca_cert_pem,
        token=pki.token,
    )
    controllers = ControllerManager(ApiClient(access, user_agent="kube-controller-manager"))
    controllers.start()
    default_path = default_kubeconfig_path()
    kubeconfig = (args.kubeconfig or default_path).expanduser()
    write_kubeconfig(kubeconfig, url, pki.ca_cert_pem, pki.token, merge=True)
    print(f"kube-shim {__version__} is serving {url} (ready in {time.monotonic() - started:.2f}s)", flush=True)
    print(f"kubeconfig: {kubeconfig}", flush=True)
    print(f"try: {kubectl_hint(kubeconfig, default_path)}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("shim").info("shutting down")
    with contextlib.suppress(Exception):
        await controllers.stop()
    with contextlib.suppress(Exception):
        await server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
