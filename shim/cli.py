"""`kube-shim`: the command line.

`kube-shim up` runs a whole cluster in one process (API server, controllers, scheduler, node agents);
`kube-shim node|scheduler|controller-manager` run one component as its own process against any API server;
`kube-shim certs node` issues a separate node's serving certificate from a cluster's data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from shim import __version__, memtrace

DEFAULT_DATA_DIR = Path("~/.local/share/kube-shim")
DEFAULT_LISTEN = "127.0.0.1:6443"
NODE_DESCRIPTION = """\
Run node agent(s) against an API server. The node server (exec, attach, logs, port-forward of the node's pods)
serves only the API server, which proves itself with a certificate of the cluster CA (taken from the
kubeconfig) and checks the node's serving certificate against that CA and the node's address. Issue that
certificate on the machine that holds the cluster's data dir, for the address the node advertises:

  kube-shim certs node NAME --data-dir DIR --address NODE_IP
  kube-shim node --kubeconfig KUBECONFIG --name NAME --node-ip NODE_IP \\
      --tls-cert-file DIR/pki/nodes/NAME.crt --tls-private-key-file DIR/pki/nodes/NAME.key
"""

log = logging.getLogger("shim")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kube-shim` console script."""
    parser = argparse.ArgumentParser(prog="kube-shim", description="A Kubernetes-compatible control plane.")
    parser.add_argument("--version", action="version", version=f"kube-shim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run a whole cluster in this process")
    up.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state, PKI (default %(default)s)")
    up.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT to serve on (default %(default)s)")
    up.add_argument("--kubeconfig", type=Path, default=None,
                    help="kubeconfig to write (default: merged into ~/.kube/config as context kube-shim)")  # fmt: skip
    up.add_argument("--advertise-address", default=None, metavar="IP",
                    help="where pods reach the API server: served there too and named by the kubernetes service's "
                    "endpoints (default: the pods' host address 10.244.255.254, put on lo, with --runtime podman; "
                    "none with fake; `none`: pods get no way in)")  # fmt: skip
    up.add_argument("--store", default=None, help="store URL: sqlite:///PATH (default: in the data dir), "
                    "memory://, etcd://HOST:PORT[,HOST:PORT][/PREFIX]")  # fmt: skip
    up.add_argument("--compaction-interval", type=float, default=300.0, metavar="SECONDS",
                    help="how often the store forgets old history (default %(default)s)")  # fmt: skip
    up.add_argument("--compaction-keep", type=int, default=10_000, metavar="REVISIONS",
                    help="revisions of history kept for watch resume (default %(default)s)")  # fmt: skip
    _node_flags(up, default_count=1)
    up.add_argument("--no-scheduler", action="store_true",
                    help="leave scheduling to a separate `kube-shim scheduler`")  # fmt: skip
    up.add_argument("--no-controllers", action="store_true",
                    help="leave the controllers to a separate `kube-shim controller-manager`")  # fmt: skip
    up.add_argument("--dns-listen", type=_ip_and_port, default=None, metavar="IP:PORT",
                    help="where the cluster DNS serves (default: the pods' host address with --runtime podman, "
                    "else 127.0.0.1, on a free port; published in the kube-dns endpoints)")  # fmt: skip
    up.add_argument("--dns-upstream", action="append", type=_dns_upstream, default=None, metavar="IP[:PORT]",
                    help="resolver for names outside the cluster domain (repeatable; default: the nameservers "
                    "of /etc/resolv.conf)")  # fmt: skip

    node = commands.add_parser(
        "node",
        help="run a node agent against an API server",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=NODE_DESCRIPTION,
    )
    node.add_argument("--kubeconfig", type=Path, required=True,
                      help="how to reach the API server; must hold the cluster's CA certificate")  # fmt: skip
    node.add_argument("--server", default=None, help="API server URL (default: the kubeconfig's)")
    node.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR / "node")
    node.add_argument("--tls-cert-file", type=Path, default=None,
                      help="the node server's certificate, issued by the cluster CA (required; see above)")  # fmt: skip
    node.add_argument("--tls-private-key-file", type=Path, default=None, help="its private key (required)")
    node.add_argument("--cluster-dns", action="append", type=_ip_address, default=None, metavar="IP",
                      help="nameserver of ClusterFirst pods (repeatable; default: the kube-dns service's "
                      "ClusterIP, looked up in kube-system)")  # fmt: skip
    _node_flags(node, default_count=1)

    certs = commands.add_parser("certs", help="issue certificates from a cluster's data dir")
    certs_kinds = certs.add_subparsers(dest="kind", required=True)
    node_cert = certs_kinds.add_parser("node", help="a separate node's serving certificate")
    node_cert.add_argument("node_name", metavar="NAME", help="the node's name (its --name)")
    node_cert.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the cluster's")
    node_cert.add_argument("--address", action="append", required=True, metavar="ADDRESS",
                           help="IP or name the API server dials the node at: its --node-ip (repeatable)")  # fmt: skip

    for name, what in (("scheduler", "the scheduler"), ("controller-manager", "the controllers")):
        component = commands.add_parser(name, help=f"run {what} against an API server")
        component.add_argument("--kubeconfig", type=Path, required=True, help="how to reach the API server")
        component.add_argument("--server", default=None, help="API server URL (default: the kubeconfig's)")
    _network_flags(commands.choices["controller-manager"], service_range=False)
    for sub in (up, commands.choices["controller-manager"]):
        sub.add_argument("--cronjob-clock-scale", type=_clock_scale, default=1.0, metavar="N",
                         help="for tests: the CronJob controller's clock runs N times as fast as the wall clock, "
                         "so a `* * * * *` CronJob fires every 60/N seconds (default %(default)s)")  # fmt: skip

    for sub in commands.choices.values():
        sub.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runners: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
        "up": up_command,
        "node": node_command,
        "scheduler": scheduler_command,
        "controller-manager": controller_manager_command,
        "certs": certs_command,
    }
    return _run(runners[args.command](args))


def _node_flags(parser: argparse.ArgumentParser, default_count: int) -> None:
    parser.add_argument("--runtime", choices=("podman", "fake"), default="podman",
                        help="podman runs real containers; fake only pretends, for simulating many nodes")  # fmt: skip
    parser.add_argument("--nodes", type=int, default=default_count, metavar="N",
                        help="node agents to run here (0: control plane only; >1 needs --runtime fake)")  # fmt: skip
    parser.add_argument("--name", default=None, help="node name (default: this host's name)")
    parser.add_argument("--podman-socket", default=None,
                        help="use this Podman service (default: start one in the data dir)")  # fmt: skip
    parser.add_argument("--node-ip", default=None, help="the node's InternalIP (default: the primary address)")
    parser.add_argument("--allow-host-namespaces", type=_boolean, default=True, metavar="true|false",
                        help="run pods using hostNetwork, hostPID, hostIPC or hostPort (default true)")  # fmt: skip
    parser.add_argument("--allowed-host-path", action="append", default=[], metavar="PATH",
                        help="hostPath volumes may use paths under PATH (repeatable; none by default: a hostPath "
                        "of / in a root container owns the host)")  # fmt: skip
    parser.add_argument("--cluster-domain", default="cluster.local",
                        help="the cluster's DNS domain (default %(default)s)")  # fmt: skip
    parser.add_argument("--container-log-max-size", type=_byte_size, default=10 * 1024 * 1024, metavar="SIZE",
                        help="rotate a container's log at this size (default 10Mi, as kubelet)")  # fmt: skip
    _network_flags(parser)


def _network_flags(parser: argparse.ArgumentParser, service_range: bool = True) -> None:
    from shim.machinery.networks import LOAD_BALANCER_RANGE, SERVICE_CIDR

    if service_range:
        parser.add_argument("--service-cluster-ip-range", type=_ipv4_network, default=SERVICE_CIDR, metavar="CIDR",
                            help="where ClusterIPs come from; the service proxy makes it local to this host "
                            "(default %(default)s)")  # fmt: skip
    parser.add_argument("--load-balancer-ip-range", type=_ipv4_network, default=LOAD_BALANCER_RANGE, metavar="CIDR",
                        help="where LoadBalancer services get their address (default %(default)s)")  # fmt: skip


def _dns_upstream(text: str) -> tuple[str, int]:
    """A resolver's `IP`, `IP:PORT` or `[IPv6]:PORT`."""
    from shim.dns.forward import parse_upstream

    try:
        return parse_upstream(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not IP or IP:PORT ({exc})") from None


def _ip_and_port(text: str) -> tuple[str, int]:
    """`IP:PORT` (`[IPv6]:PORT`) with a port from 0 (any free one) to 65535."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65_535:
        raise argparse.ArgumentTypeError(f"{text!r} is not IP:PORT with a port from 0 to 65535")
    return _ip_address(host.strip("[]")), int(port)


def _ip_address(text: str) -> str:
    """An IP address, as written in a resolv.conf."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def _ipv4_network(text: str) -> Any:
    """An IPv4 CIDR such as 10.96.0.0/12."""
    import ipaddress

    try:
        network = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 CIDR: {exc}") from None
    if network.num_addresses < 4:
        raise argparse.ArgumentTypeError(f"{text!r} is too small (at least a /30)")
    return network


def _boolean(text: str) -> bool:
    """`true` or `false`, as kubelet's boolean flags."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return text.lower() == "true"


def _clock_scale(text: str) -> float:
    """A speed-up of a controller's clock: a number from 1 to 3600."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (1 to 3600)")
    return value


def _byte_size(text: str) -> int:
    """A Kubernetes quantity of bytes (10Mi, 1G, 65536) as an int."""
    from shim.machinery.quantity import QuantityError, parse_quantity

    try:
        value = parse_quantity(text).value
    except QuantityError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: {exc}") from None
    if value < 4096:
        raise argparse.ArgumentTypeError(f"{text!r} is too small for a log file (at least 4Ki)")
    return int(value)


def _run(coro: Awaitable[int]) -> int:
    import uvloop

    return uvloop.run(coro)  # type: ignore[arg-type]


# -- commands --------------------------------------------------------------------------------------------------


async def up_command(args: argparse.Namespace) -> int:
    """Start the cluster, write the kubeconfig, print how to reach it, run until SIGINT/SIGTERM."""
    from shim.apiserver.app import READY_CHECKS
    from shim.apiserver.auth import UserInfo, authentication_middleware
    from shim.apiserver.proxy import kubelet_client_context
    from shim.apiserver.server import ApiServer, ApiServerConfig, data_store_url
    from shim.client import ClusterAccess
    from shim.datadir import prepare_data_dir
    from shim.hostaddress import HOST_ADDRESS, HostAddressError, ensure_host_address
    from shim.kubeconfig import default_kubeconfig_path, kubectl_hint, write_kubeconfig
    from shim.machinery.networks import kubernetes_service_ip
    from shim.pki import ADMIN_GROUP, ADMIN_USER, ensure_node_certificate, ensure_pki
    from shim.store import StoreError

    started = time.monotonic()
    if (problem := _check_node_flags(args)) is not None:
        print(f"kube-shim: {problem}", file=sys.stderr)
        return 2
    data_dir = args.data_dir.expanduser()
    prepare_data_dir(data_dir, database=args.store is None)
    host, _, port_text = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        print(f"kube-shim: --listen wants HOST:PORT, not {args.listen!r}", file=sys.stderr)
        return 2
    try:
        advertise_address = _advertise_address(args)
    except ValueError as exc:
        print(f"kube-shim: {exc}", file=sys.stderr)
        return 2
    # Podman pods reach the control plane (the cluster DNS, and the API when advertised there) at the host
    # address; a cluster told to advertise nothing gives pods no way in at all
    if advertise_address == HOST_ADDRESS or (advertise_address is not None and args.runtime == "podman"):
        try:
            await asyncio.to_thread(ensure_host_address)
        except HostAddressError as exc:
            print(f"kube-shim: {exc}; or pass --advertise-address none (pods then cannot reach the control plane)",
                  file=sys.stderr)  # fmt: skip
            return 1
    # in-cluster clients dial the `kubernetes` service's ClusterIP or names, or the advertise address
    kubernetes_ip = kubernetes_service_ip(args.service_cluster_ip_range)
    pki = ensure_pki(data_dir, [host, kubernetes_ip, *([advertise_address] if advertise_address else [])])
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
            kubelet_client_ssl=kubelet_client_context(pki.admin_cert_path, pki.admin_key_path, ca_pem=pki.ca_cert_pem),
            advertise_address=advertise_address,
            service_cidr=args.service_cluster_ip_range,
        )
    )
    try:
        await server.start()
    except OSError as exc:
        print(f"kube-shim: cannot serve on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        await server.stop()
        return 1
    except StoreError as exc:
        print(f"kube-shim: cannot open the store: {exc}", file=sys.stderr)
        await server.stop()
        return 1
    _tune_gc()
    url_host = host if host not in ("0.0.0.0", "::") else socket.gethostname()
    url = f"https://{'[' + url_host + ']' if ':' in url_host else url_host}:{server.bound_port}"
    loopback = f"https://127.0.0.1:{server.bound_port}" if host in ("0.0.0.0", "::") else url
    access = ClusterAccess(server=loopback, ca_pem=pki.ca_cert_pem, token=pki.token)
    components = await _start_components(
        access,
        args,
        data_dir / "nodes",
        controllers=not args.no_controllers,
        scheduler=not args.no_scheduler,
        local_nodes=True,
        serving_certificate=functools.partial(ensure_node_certificate, data_dir),
        dns=True,
    )
    assert server.runner is not None
    server.runner.app[READY_CHECKS].extend(_ready_checks(components))
    default_path = default_kubeconfig_path()
    kubeconfig = (args.kubeconfig or default_path).expanduser()
    write_kubeconfig(kubeconfig, url, pki.ca_cert_pem, pki.token, merge=True)
    memtrace.install_from_environment()  # KUBE_SHIM_TRACEMALLOC: allocation snapshots on SIGUSR2
    stop = _stop_requested()  # before saying "serving": a SIGTERM from then on is a clean shutdown
    print(f"kube-shim {__version__} is serving {url} (ready in {time.monotonic() - started:.2f}s)", flush=True)
    print(f"kubeconfig: {kubeconfig}", flush=True)
    print(f"try: {kubectl_hint(kubeconfig, default_path)}", flush=True)
    await stop.wait()
    log.info("shutting down")
    await _stop_all(components)
    with contextlib.suppress(Exception):
        await server.stop()
    return 0


async def node_command(args: argparse.Namespace) -> int:
    """Run node agent(s) against the API server in the kubeconfig until SIGINT/SIGTERM."""
    from shim.pki import ServingCertificate

    if (problem := _check_node_flags(args)) is not None or args.nodes < 1:
        print(f"kube-shim: {problem or '--nodes must be at least 1'}", file=sys.stderr)
        return 2
    access = _access(args)
    if not access.ca_pem:
        print(f"kube-shim node: {args.kubeconfig} holds no certificate-authority data; the node server "
              "needs the cluster CA to know who may use it (the kubeconfig `kube-shim up` writes has it)",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.tls_cert_file is None or args.tls_private_key_file is None:
        problem = "the node server needs --tls-cert-file and --tls-private-key-file, issued by the cluster CA"
    else:
        problem = _check_key_pair(args.tls_cert_file, args.tls_private_key_file)
    if problem is not None:
        print(f"kube-shim node: {problem} (see `kube-shim node --help`)", file=sys.stderr)
        return 1
    certificate = ServingCertificate(args.tls_cert_file, args.tls_private_key_file)
    components = await _start_components(
        access, args, args.data_dir.expanduser(), serving_certificate=lambda _name, _hosts: certificate
    )
    stop = _stop_requested()
    print(f"kube-shim node: {args.nodes} node agent(s) registered with {access.server}", flush=True)
    await stop.wait()
    await _stop_all(components)
    return 0


async def certs_command(args: argparse.Namespace) -> int:
    """Issue (or reuse) a node's serving certificate from the cluster CA in the data dir; print where it is."""
    from shim.pki import ensure_node_certificate

    try:
        certificate = ensure_node_certificate(args.data_dir.expanduser(), args.node_name, args.address)
    except (ValueError, OSError) as exc:
        print(f"kube-shim certs: {exc}", file=sys.stderr)
        return 1
    print(f"--tls-cert-file {certificate.cert_path} --tls-private-key-file {certificate.key_path}", flush=True)
    return 0


async def scheduler_command(args: argparse.Namespace) -> int:
    from shim.client import ApiClient
    from shim.scheduler import Scheduler

    scheduler = Scheduler(ApiClient(_access(args), user_agent="kube-scheduler"))  # its own informer factory
    scheduler.start()
    stop = _stop_requested()
    print("kube-shim scheduler: running", flush=True)
    await stop.wait()
    await scheduler.stop()
    return 0


async def controller_manager_command(args: argparse.Namespace) -> int:
    from shim.client import ApiClient, SharedInformerFactory
    from shim.controllers.manager import ControllerManager

    client = ApiClient(_access(args), user_agent="kube-controller-manager")
    informers = SharedInformerFactory(client)
    controllers = ControllerManager(client, informers, args.load_balancer_ip_range, args.cronjob_clock_scale)
    controllers.start()
    stop = _stop_requested()
    print("kube-shim controller-manager: running", flush=True)
    await stop.wait()
    await informers.stop()
    await controllers.stop()
    return 0


# -- assembly ----------------------------------------------------------------------------------------------------


async def _start_components(
    access: Any,
    args: argparse.Namespace,
    nodes_dir: Path,
    controllers: bool = False,
    scheduler: bool = False,
    local_nodes: bool = False,
    serving_certificate: Callable[[str, list[str]], Any] | None = None,
    dns: bool = False,
) -> list[Any]:
    """Controllers and scheduler (as asked), then the node agents; returned in start order. They share one
    informer factory (one list+watch per resource in this process), first in the list so it stops last.

    `serving_certificate(node name, addresses)` gives each node server its certificate. `dns`: run the cluster
    DNS here too, and give this process's nodes its address (a separate node takes --cluster-dns or looks it up)."""
    from shim.client import ApiClient, SharedInformerFactory
    from shim.kubelet.config import KubeletOptions
    from shim.node import Node, NodeConfig
    from shim.runtime.fake import node_pod_cidr

    # every watch holds a connection: one per node (its pods) plus one per shared resource
    informers = _Informers(SharedInformerFactory(ApiClient(access, max_connections=args.nodes + 64)))
    components: list[Any] = [informers]
    if controllers:
        from shim.controllers.manager import ControllerManager

        manager = ControllerManager(
            ApiClient(access, user_agent="kube-controller-manager"),
            informers.factory,
            args.load_balancer_ip_range,
            args.cronjob_clock_scale,
        )
        manager.start()
        components.append(manager)
    if scheduler:
        from shim.scheduler import Scheduler

        running = Scheduler(ApiClient(access, user_agent="kube-scheduler"), informers=informers.factory)
        running.start()
        components.append(running)
    cluster_dns = tuple(getattr(args, "cluster_dns", None) or ())
    if dns:
        cluster_dns = (await _start_dns(access, args, informers.factory, components),)
    base = args.name or socket.gethostname()
    if args.nodes and args.runtime == "podman":
        # before the node agent runs pods: their services work from the start (simulated pods get no rules)
        components.append(_start_proxy(access, args, informers.factory, base))
    if args.nodes:
        # one client for all agents here (their watches are on the shared informers' client)
        client = ApiClient(access, user_agent="kubelet")
        for i in range(args.nodes):
            name = base if args.nodes == 1 else f"{base}-{i}"
            fake = args.runtime == "fake"
            # in-process nodes are this host, reached on loopback; a separate node advertises its primary
            # address (or --node-ip) and listens on all interfaces for the API server's streaming requests
            node_ip = args.node_ip or ("127.0.0.1" if local_nodes else None)
            options = KubeletOptions(
                node_ip=node_ip,
                allow_host_namespaces=args.allow_host_namespaces,
                allowed_host_paths=tuple(args.allowed_host_path),
                container_log_max_size=args.container_log_max_size,
                cluster_dns=cluster_dns,
                cluster_domain=args.cluster_domain,
            )
            if fake:
                # simulated nodes: no host checks, no per-container events flooding the API
                options.capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
                options.record_events = args.nodes <= 10
            assert serving_certificate is not None
            # the address the API server dials (the advertised InternalIP), and the node's name
            hosts = [host for host in (node_ip, name) if host]
            node = Node(client, NodeConfig(
                name=name, data_dir=nodes_dir / name, runtime=args.runtime, podman_socket=args.podman_socket,
                ca_pem=access.ca_pem, serving_certificate=await asyncio.to_thread(serving_certificate, name, hosts),
                listen_host=node_ip or "0.0.0.0", pod_cidr=node_pod_cidr(i) if fake else None, options=options,
            ), informers.factory)  # fmt: skip
            await node.start()
            components.append(node)
        components.append(_Closer(client))
    return components


async def _start_dns(access: Any, args: argparse.Namespace, informers: Any, components: list[Any]) -> str:
    """Start the cluster DNS on the shared informers and append it to `components`; its Service's cluster IP.
    Exits (status 1) when it cannot listen."""
    from shim.client import ApiClient
    from shim.dns import ClusterDns, DnsConfig
    from shim.dns.forward import host_upstreams
    from shim.dns.service import dns_service_ip
    from shim.hostaddress import HOST_ADDRESS

    cluster_ip = dns_service_ip(args.service_cluster_ip_range)
    upstreams = args.dns_upstream or host_upstreams()
    if args.dns_listen:
        candidates = [args.dns_listen]
    else:  # pods reach the host address; without it (fake runtime, or it could not be added) only the host can
        candidates = [(HOST_ADDRESS, 0), ("127.0.0.1", 0)] if args.runtime == "podman" else [("127.0.0.1", 0)]
    for i, (host, port) in enumerate(candidates):
        dns = ClusterDns(ApiClient(access, user_agent="kube-shim-dns"), informers, DnsConfig(
            listen_host=host, listen_port=port, domain=args.cluster_domain, upstreams=upstreams,
            cluster_ip=cluster_ip,
        ))  # fmt: skip
        try:
            await dns.start()
        except OSError as exc:
            await dns.stop()
            if i + 1 < len(candidates):
                log.warning("cluster DNS cannot listen on %s (%s); pods will not reach it", host, exc)
                continue
            print(f"kube-shim: the cluster DNS cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            raise SystemExit(1) from None
        components.append(dns)
        break
    return cluster_ip


def _start_proxy(access: Any, args: argparse.Namespace, informers: Any, node_name: str) -> Any:
    """The service proxy of the (one) Podman node of this process."""
    from shim.client import ApiClient
    from shim.pki import cluster_id
    from shim.proxy.proxy import ProxyConfig, ServiceProxy
    from shim.proxy.rules import Ranges
    from shim.runtime.podman_network import POD_NETWORK_RANGE

    ranges = Ranges(args.service_cluster_ip_range, args.load_balancer_ip_range, POD_NETWORK_RANGE)
    proxy = ServiceProxy(ApiClient(access, user_agent="kube-proxy"), informers,
                         ProxyConfig(node_name, cluster_id(access.ca_pem), ranges))  # fmt: skip
    proxy.start()
    return proxy


class _Closer:
    """Closes a shared client after the components that use it."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def stop(self) -> None:
        await self.client.close()


class _Informers:
    """The process's shared informer factory: stopped, and its client closed, after every component."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.client = factory.client

    async def stop(self) -> None:
        await self.factory.stop()
        await self.client.close()


def _ready_checks(components: list[Any]) -> list[tuple[str, Callable[[], str | None]]]:
    """A /readyz check per in-process component: it fails while one of its informers or loops keeps failing."""
    from shim.controllers.manager import ControllerManager
    from shim.dns import ClusterDns
    from shim.proxy.proxy import ServiceProxy
    from shim.scheduler import Scheduler

    names = {
        _Informers: "informers",
        ControllerManager: "controller-manager",
        Scheduler: "scheduler",
        ClusterDns: "dns",
        ServiceProxy: "service-proxy",
        _Closer: "node-agents",
    }
    return [(names[type(c)], _health_check(c.client)) for c in components if type(c) in names]


def _health_check(client: Any) -> Callable[[], str | None]:
    return lambda: "; ".join(client.health.problems()) or None


async def _stop_all(components: list[Any]) -> None:
    for component in reversed(components):
        with contextlib.suppress(Exception):
            await component.stop()


def _check_node_flags(args: argparse.Namespace) -> str | None:
    if args.nodes < 0:
        return "--nodes cannot be negative"
    if args.nodes > 1 and args.runtime != "fake":
        return "more than one node per process needs --runtime fake (each Podman node is its own process)"
    return None


def _advertise_address(args: argparse.Namespace) -> str | None:
    """The API server's --advertise-address: given, `none`, or by default the pods' host address on Podman."""
    import ipaddress

    from shim.hostaddress import HOST_ADDRESS

    if args.advertise_address is None:
        return HOST_ADDRESS if args.runtime == "podman" else None
    if args.advertise_address == "none":
        return None
    try:
        address = ipaddress.ip_address(args.advertise_address)
    except ValueError:
        raise ValueError(f"--advertise-address wants an IP address, not {args.advertise_address!r}") from None
    if address.is_loopback or address.is_unspecified or address.is_link_local or address.is_multicast:
        # the Endpoints API refuses such addresses, as kube's does: pods could not use them anyway
        raise ValueError(f"--advertise-address {address} is not an address pods can reach (loopback, "
                         "unspecified, link-local or multicast); give one of this host's other addresses")  # fmt: skip
    return str(address)


def _check_key_pair(cert_path: Path, key_path: Path) -> str | None:
    """Why a certificate and key cannot serve TLS, or None when they can."""
    import ssl

    for path in (cert_path, key_path):
        if not path.is_file():
            return f"{path}: no such file"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as exc:
        return f"{cert_path} and {key_path} are not a certificate and its key: {exc}"
    return None


def _access(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from shim.client import load_kubeconfig

    access = load_kubeconfig(args.kubeconfig)
    return replace(access, server=args.server.rstrip("/")) if args.server else access


def _tune_gc() -> None:
    # lists decode thousands of objects at once; the default gen-0 threshold (700) makes the cyclic GC
    # rescan every live object many times per list. Objects made at start-up never become garbage.
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _stop_requested() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (which no longer end the process at once)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
