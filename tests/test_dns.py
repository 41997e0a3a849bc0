"""Cluster DNS: a real `kube-shim up --runtime fake` serving DNS on loopback, asked with dnslib, forwarding to a
fake upstream resolver (a dnslib server on 127.0.0.1) the test runs. Changes are created with the real kubectl
and waited for by asking again until the answer changes (with a deadline)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord

from shim.client import ApiClient, load_kubeconfig
from shim.dns.cache import AnswerCache
from shim.dns.forward import Forwarder, ForwarderBusy, UpstreamFailed
from shim.dns.records import Record, Zone
from shim.dns.resolver import Query, Resolver
from shim.kubelet.specs import sandbox_spec
from shim.machinery.resources import PODS
from shim.runtime.base import SandboxSpec
from shim.runtime.fake import FakeRuntime
from tests.cluster import Cluster, free_port, start_cluster, wait_until
from tests.dns_upstream import BIG_TXT, UPSTREAM_ZONE, FakeUpstream, free_udp_and_tcp_port
from tests.kubelet_kit import running_node, wait_for

DOMAIN = "cluster.local"
CHANGE_DEADLINE = 15.0


@dataclasses.dataclass
class DnsCluster:
    cluster: Cluster
    dns_port: int

    def ask(self, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
        """One query to the cluster DNS and its parsed answer."""
        packet = DNSRecord.question(name, qtype).send("127.0.0.1", self.dns_port, tcp=tcp, timeout=5)
        return DNSRecord.parse(packet)

    def answers(self, name: str, qtype: str = "A") -> list[str]:
        """The answer section's data, sorted."""
        return sorted(str(rr.rdata) for rr in self.ask(name, qtype).rr)

    def wait_for(self, name: str, qtype: str, wanted: Any, of: Any = None) -> DNSRecord:
        """Ask until `of(answer)` (default: the sorted answer data) equals `wanted`."""
        of = of or (lambda reply: sorted(str(rr.rdata) for rr in reply.rr))
        last: list[Any] = []

        def matches() -> DNSRecord | None:
            reply = self.ask(name, qtype)
            last[:] = [of(reply)]
            return reply if of(reply) == wanted else None

        try:
            return wait_until(matches, CHANGE_DEADLINE, f"{name} {qtype} to be {wanted}")
        except AssertionError:
            raise AssertionError(f"{name} {qtype}: wanted {wanted}, last answer {last}") from None

    def apply(self, *objects: dict[str, Any]) -> None:
        listed = {"apiVersion": "v1", "kind": "List", "items": objects}
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(listed))


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory, dns_upstream: FakeUpstream) -> Iterator[DnsCluster]:
    """`kube-shim up` with a fake node, its DNS on a loopback port, forwarding to the fake upstream."""
    port = free_udp_and_tcp_port()
    cluster = start_cluster(
        tmp_path_factory.mktemp("dns"),
        nodes=("--runtime", "fake", "--nodes", "1"),
        extra=("--dns-listen", f"127.0.0.1:{port}", "--dns-upstream", f"127.0.0.1:{dns_upstream.port}"),
    )
    yield DnsCluster(cluster, port)
    cluster.stop()


@pytest.fixture
def ns(dns: DnsCluster) -> str:
    name = "d-" + uuid.uuid4().hex[:8]
    dns.cluster.kubectl("create", "namespace", name)
    # pods need the `default` service account, which a controller adds just after the namespace
    dns.cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    return name


def service(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def endpoint_slice(service_name: str, namespace: str, endpoints: list[dict[str, Any]], ports: list[Any]) -> Any:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": service_name + "-manual",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


# -- services --------------------------------------------------------------------------------------------------


def test_a_service_resolves_to_its_cluster_ip_with_srv_and_ptr_and_goes_away_with_it(dns: DnsCluster, ns: str) -> None:
    dns.apply(
        service("web", ns, ports=[{"name": "http", "port": 80, "targetPort": 8080}]),
        service("bare", ns, ports=[{"port": 9000}]),
    )
    cluster_ip = dns.cluster.kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout
    fqdn = f"web.{ns}.svc.{DOMAIN}"

    reply = dns.wait_for(fqdn, "A", [cluster_ip])
    assert reply.header.aa == 1 and reply.rr[0].ttl == 5
    assert dns.answers(f"WEB.{ns.upper()}.svc.Cluster.Local") == [cluster_ip]  # names compare without case
    srv = dns.ask(f"_http._tcp.{fqdn}", "SRV")
    assert [(rr.rdata.port, str(rr.rdata.target)) for rr in srv.rr] == [(80, fqdn + ".")]
    reverse = ".".join(reversed(cluster_ip.split("."))) + ".in-addr.arpa"
    assert dns.answers(reverse, "PTR") == [fqdn + "."]
    # the name exists without AAAA (an IPv4 service): NODATA, not NXDOMAIN; the unnamed port has no SRV
    nodata = dns.ask(fqdn, "AAAA")
    assert (nodata.header.rcode, nodata.rr, [rr.rtype for rr in nodata.auth]) == (RCODE.NOERROR, [], [QTYPE.SOA])
    assert dns.ask(f"_9000._tcp.bare.{ns}.svc.{DOMAIN}", "SRV").header.rcode == RCODE.NXDOMAIN

    dns.cluster.kubectl("delete", "svc", "web", "-n", ns)
    dns.wait_for(fqdn, "A", RCODE.NXDOMAIN, of=lambda r: r.header.rcode)


def test_a_headless_service_answers_its_ready_endpoints_by_address_and_hostname(dns: DnsCluster, ns: str) -> None:
    fqdn = f"db.{ns}.svc.{DOMAIN}"
    dns.apply(service("db", ns, clusterIP="None", ports=[{"name": "pg", "port": 5432}]))
    assert dns.ask(fqdn).header.rcode == RCODE.NXDOMAIN  # no ready endpoints yet: the spec's NXDOMAIN
    ready, not_ready = {"ready": True}, {"ready": False}
    dns.apply(
        endpoint_slice(
            "db",
            ns,
            [
                {"addresses": ["10.1.0.1"], "hostname": "db-0", "conditions": ready},
                {"addresses": ["10.1.0.2"], "conditions": {}},  # unset `ready` counts as ready
                {"addresses": ["10.1.0.3"], "hostname": "db-2", "conditions": not_ready},
            ],
            [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        )
    )

    dns.wait_for(fqdn, "A", ["10.1.0.1", "10.1.0.2"])
    assert dns.answers(f"db-0.{fqdn}") == ["10.1.0.1"]
    assert dns.answers(f"10-1-0-2.{fqdn}") == ["10.1.0.2"]  # no hostname: named by its dashed address
    assert dns.ask(f"db-2.{fqdn}").header.rcode == RCODE.NXDOMAIN
    srv = dns.ask(f"_pg._tcp.{fqdn}", "SRV")
    assert sorted((rr.rdata.port, str(rr.rdata.target)) for rr in srv.rr) == [
        (5432, f"10-1-0-2.{fqdn}."),
        (5432, f"db-0.{fqdn}."),
    ]
    assert dns.answers("1.0.1.10.in-addr.arpa", "PTR") == [f"db-0.{fqdn}."]

    # publishNotReadyAddresses: the not-ready endpoint too
    dns.cluster.kubectl("patch", "svc", "db", "-n", ns, "-p", '{"spec": {"publishNotReadyAddresses": true}}')
    dns.wait_for(fqdn, "A", ["10.1.0.1", "10.1.0.2", "10.1.0.3"])
    assert dns.answers(f"db-2.{fqdn}") == ["10.1.0.3"]

    dns.cluster.kubectl("delete", "endpointslice", "db-manual", "-n", ns)
    dns.wait_for(fqdn, "A", RCODE.NXDOMAIN, of=lambda r: r.header.rcode)


def test_a_pod_with_hostname_and_subdomain_gets_a_record_under_its_headless_service(dns: DnsCluster, ns: str) -> None:
    dns.apply(
        service("pets", ns, clusterIP="None", selector={"app": "pets"}, ports=[{"port": 80}]),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pet", "namespace": ns, "labels": {"app": "pets"}},
            "spec": {"hostname": "pet-0", "subdomain": "pets", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    dns.cluster.kubectl("wait", "--for=condition=Ready", "pod/pet", "-n", ns, "--timeout=60s")
    pod_ip = dns.cluster.kubectl("get", "pod", "pet", "-n", ns, "-o", "jsonpath={.status.podIP}").stdout
    dns.wait_for(f"pet-0.pets.{ns}.svc.{DOMAIN}", "A", [pod_ip])
    assert dns.answers(f"pets.{ns}.svc.{DOMAIN}") == [pod_ip]


def test_an_external_name_service_is_a_cname_whose_target_is_resolved_upstream(
    dns: DnsCluster, ns: str, dns_upstream: FakeUpstream
) -> None:
    fqdn = f"ext.{ns}.svc.{DOMAIN}"
    dns.apply(service("ext", ns, type="ExternalName", externalName=f"7.{UPSTREAM_ZONE}"))
    dns.wait_for(fqdn, "CNAME", [f"7.{UPSTREAM_ZONE}."])
    reply = dns.ask(fqdn, "A")
    chain = [(QTYPE[rr.rtype], str(rr.rdata)) for rr in reply.rr]
    assert chain == [("CNAME", f"7.{UPSTREAM_ZONE}."), ("A", "192.0.2.7")]


def test_pod_names_the_schema_version_and_the_zone_apex(dns: DnsCluster) -> None:
    assert dns.answers(f"10-244-3-7.default.pod.{DOMAIN}") == ["10.244.3.7"]
    assert dns.ask(f"10-244-3-999.default.pod.{DOMAIN}").header.rcode == RCODE.NXDOMAIN
    assert dns.answers(f"dns-version.{DOMAIN}", "TXT") == ['"1.1.0"']
    soa = dns.ask(DOMAIN, "SOA")
    assert [QTYPE[rr.rtype] for rr in soa.rr] == ["SOA"] and str(soa.rr[0].rdata.mname) == f"ns.dns.{DOMAIN}."
    assert dns.answers(DOMAIN, "NS") == [f"ns.dns.{DOMAIN}."]


def test_names_in_the_cluster_domain_that_do_not_exist_are_nxdomain_with_the_soa(dns: DnsCluster) -> None:
    for name in (f"nope.default.svc.{DOMAIN}", f"www.example.com.default.svc.{DOMAIN}", f"x.{DOMAIN}"):
        reply = dns.ask(name)
        assert reply.header.rcode == RCODE.NXDOMAIN, name
        assert [(QTYPE[rr.rtype], rr.ttl) for rr in reply.auth] == [("SOA", 5)]
    # names that exist without records of their own (the zone's structure) are NODATA
    for name in (f"svc.{DOMAIN}", f"default.svc.{DOMAIN}", f"kubernetes.default.svc.{DOMAIN}"):
        reply = dns.ask(name, "TXT")
        assert (reply.header.rcode, reply.rr) == (RCODE.NOERROR, []), name


def test_the_kubernetes_service_resolves(dns: DnsCluster) -> None:
    assert dns.answers(f"kubernetes.default.svc.{DOMAIN}") == ["10.96.0.1"]


# -- forwarding --------------------------------------------------------------------------------------------------


def test_other_names_are_forwarded_to_the_upstream(dns: DnsCluster, dns_upstream: FakeUpstream) -> None:
    reply = dns.ask(f"42.{UPSTREAM_ZONE}")
    assert (reply.header.rcode, [str(rr.rdata) for rr in reply.rr]) == (RCODE.NOERROR, ["192.0.2.42"])
    assert f"42.{UPSTREAM_ZONE}" in dns_upstream.zone.asked
    assert dns.ask("nowhere.invalid").header.rcode == RCODE.NXDOMAIN  # the upstream's NXDOMAIN, passed on
    # a reverse name that is no cluster address falls through to the upstream too
    dns.ask("9.9.9.9.in-addr.arpa", "PTR")
    assert dns_upstream.zone.asked[-1] == "9.9.9.9.in-addr.arpa"


def test_a_truncated_upstream_answer_is_truncated_over_udp_and_whole_over_tcp(dns: DnsCluster) -> None:
    over_udp = dns.ask(f"big.{UPSTREAM_ZONE}", "TXT")
    assert over_udp.header.tc == 1 and over_udp.rr == []
    over_tcp = dns.ask(f"big.{UPSTREAM_ZONE}", "TXT", tcp=True)
    assert (over_tcp.header.tc, len(over_tcp.rr)) == (0, len(BIG_TXT))


def test_an_upstream_that_is_down_gives_servfail_at_once(tmp_path: Path) -> None:
    port, closed = free_udp_and_tcp_port(), free_port()  # nothing listens on `closed`: refused at once
    cluster = start_cluster(
        tmp_path, nodes=("--runtime", "fake", "--nodes", "0"),
        extra=("--dns-listen", f"127.0.0.1:{port}", "--dns-upstream", f"127.0.0.1:{closed}"),
    )  # fmt: skip
    try:
        started = time.monotonic()
        reply = DnsCluster(cluster, port).ask(f"1.{UPSTREAM_ZONE}")
        assert reply.header.rcode == RCODE.SERVFAIL
        assert time.monotonic() - started < 1.5  # not the 2 s forward timeout
    finally:
        cluster.stop()


async def test_an_upstream_that_never_answers_fails_after_the_timeout_and_the_queue_is_bounded() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers
    try:
        forwarder = Forwarder([silent.getsockname()], timeout=0.3, max_in_flight=1)
        query = DNSRecord.question("1.example.test").pack()
        started = time.monotonic()
        first = asyncio.ensure_future(forwarder.forward(query, over_tcp=False))
        await asyncio.sleep(0)  # let it take the one slot
        with pytest.raises(ForwarderBusy):
            await forwarder.forward(query, over_tcp=False)
        with pytest.raises(UpstreamFailed):
            await first
        assert 0.3 <= time.monotonic() - started < 1.0
    finally:
        silent.close()


# -- robustness ----------------------------------------------------------------------------------------------------


def test_malformed_packets_get_formerr_or_are_dropped_and_the_server_carries_on(dns: DnsCluster) -> None:
    header_only = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)  # claims a question it lacks
    two_questions = DNSRecord.question("a.test").pack()[:4] + b"\x00\x02" + DNSRecord.question("a.test").pack()[6:]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        for packet, rcode in ((header_only, RCODE.FORMERR), (two_questions, RCODE.FORMERR)):
            sock.sendto(packet, ("127.0.0.1", dns.dns_port))
            reply = DNSRecord.parse(sock.recv(4096))
            assert (reply.header.id, reply.header.rcode) == (struct.unpack("!H", packet[:2])[0], rcode)
        notify = DNSRecord.question("a.test")
        notify.header.opcode = 4
        sock.sendto(notify.pack(), ("127.0.0.1", dns.dns_port))
        assert DNSRecord.parse(sock.recv(4096)).header.rcode == RCODE.NOTIMP
        for junk in (b"", b"\x00", b"\xff" * 11, bytes(range(256)) * 4, b"\x00\x01\x80" + b"\x00" * 20):
            sock.sendto(junk, ("127.0.0.1", dns.dns_port))  # too short, or itself an answer: dropped
    # over TCP: a message cut short, a connection that stops after the length, then junk
    for payload in (struct.pack("!H", 100) + b"\x01\x02", struct.pack("!H", 40), struct.pack("!H", 5) + b"abcde"):
        with socket.create_connection(("127.0.0.1", dns.dns_port), timeout=2) as conn:
            conn.sendall(payload)
    assert dns.answers(f"kubernetes.default.svc.{DOMAIN}") == ["10.96.0.1"]
    assert dns.ask(f"kubernetes.default.svc.{DOMAIN}", tcp=True).rr[0].rdata == A("10.96.0.1")


def test_a_big_local_answer_is_truncated_over_udp_and_whole_over_tcp(dns: DnsCluster, ns: str) -> None:
    addresses = [f"10.2.{i // 200}.{i % 200 + 1}" for i in range(60)]
    dns.apply(
        service("many", ns, clusterIP="None", ports=[{"port": 80}]),
        endpoint_slice("many", ns, [{"addresses": [ip]} for ip in addresses], [{"port": 80, "protocol": "TCP"}]),
    )
    fqdn = f"many.{ns}.svc.{DOMAIN}"
    wait_until(lambda: len(dns.ask(fqdn, tcp=True).rr) == 60, CHANGE_DEADLINE, "60 addresses over TCP")
    over_udp = dns.ask(fqdn)
    assert over_udp.header.tc == 1 and over_udp.rr == []


# -- the kube-dns service and the kubelet ----------------------------------------------------------------------------


def test_the_kube_dns_service_has_the_tenth_address_and_comes_back_when_deleted(dns: DnsCluster) -> None:
    def kube_dns() -> dict[str, Any]:
        out = dns.cluster.kubectl("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    svc = wait_until(kube_dns, CHANGE_DEADLINE, "the kube-dns service")
    assert svc["spec"]["clusterIP"] == "10.96.0.10" and "selector" not in svc["spec"]
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
    ports = [(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in svc["spec"]["ports"]]
    assert ports == [
        ("dns", 53, "UDP", dns.dns_port),
        ("dns-tcp", 53, "TCP", dns.dns_port),
    ]
    # a loopback listen address is published nowhere (pods could not use it; the Endpoints API refuses it)
    assert dns.cluster.kubectl("get", "endpoints", "kube-dns", "-n", "kube-system", check=False).returncode != 0

    dns.cluster.kubectl("delete", "svc", "kube-dns", "-n", "kube-system")
    back = wait_until(lambda: (s := kube_dns()) and s["metadata"]["uid"] != svc["metadata"]["uid"] and s, 15, "it")
    assert back["spec"]["clusterIP"] == "10.96.0.10"


def test_the_kube_dns_service_takes_the_tenth_address_of_the_service_range(tmp_path: Path) -> None:
    port = free_udp_and_tcp_port()
    cluster = start_cluster(
        tmp_path, nodes=("--runtime", "fake", "--nodes", "0", "--service-cluster-ip-range", "10.100.0.0/16"),
        extra=("--dns-listen", f"127.0.0.1:{port}"),
    )  # fmt: skip
    try:
        DnsCluster(cluster, port).wait_for(f"kube-dns.kube-system.svc.{DOMAIN}", "A", ["10.100.0.10"])
    finally:
        cluster.stop()


def test_readyz_reports_the_dns_component(dns: DnsCluster) -> None:
    assert "[+]dns ok" in dns.cluster.kubectl("get", "--raw", "/readyz?verbose").stdout.splitlines()


def test_a_restart_on_another_port_repoints_the_kube_dns_service(tmp_path: Path) -> None:
    nodes = ("--runtime", "fake", "--nodes", "0")
    first, second = free_udp_and_tcp_port(), free_udp_and_tcp_port()
    cluster = start_cluster(tmp_path, nodes=nodes, extra=("--dns-listen", f"127.0.0.1:{first}"))
    wait_until(lambda: _dns_target_port(cluster) == first, CHANGE_DEADLINE, f"targetPort {first}")
    cluster.stop()
    cluster = start_cluster(tmp_path, port=cluster.port, nodes=nodes, extra=("--dns-listen", f"127.0.0.1:{second}"))
    try:
        wait_until(lambda: _dns_target_port(cluster) == second, CHANGE_DEADLINE, f"targetPort {second}")
    finally:
        cluster.stop()


def test_a_restart_without_a_port_asked_for_serves_on_the_port_the_service_names(tmp_path: Path) -> None:
    nodes, listen = ("--runtime", "fake", "--nodes", "0"), ("--dns-listen", "127.0.0.1:0")
    cluster = start_cluster(tmp_path, nodes=nodes, extra=listen)
    try:
        port = wait_until(lambda: _dns_target_port(cluster), CHANGE_DEADLINE, "the kube-dns service")
    finally:
        cluster.stop()
    cluster = start_cluster(tmp_path, port=cluster.port, nodes=nodes, extra=listen)
    try:
        assert DnsCluster(cluster, port).answers(f"kube-dns.kube-system.svc.{DOMAIN}") == ["10.96.0.10"]
        assert _dns_target_port(cluster) == port
    finally:
        cluster.stop()


def _dns_target_port(cluster: Cluster) -> int | None:
    out = cluster.kubectl("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json", check=False)
    ports = json.loads(out.stdout)["spec"]["ports"] if out.returncode == 0 else []
    return next((p["targetPort"] for p in ports if p["name"] == "dns"), None)


class _RecordingRuntime(FakeRuntime):
    """The fake runtime, keeping the sandbox specs it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.sandboxes: dict[str, SandboxSpec] = {}

    async def create_sandbox(self, spec: SandboxSpec) -> str:
        self.sandboxes[spec.name] = spec
        return await super().create_sandbox(spec)


async def test_a_node_without_cluster_dns_gives_cluster_first_pods_the_kube_dns_service(
    dns: DnsCluster, ns: str, tmp_path: Path
) -> None:
    """kubelet's --cluster-dns unset (a separate `kube-shim node`): the address comes from the kube-dns Service."""
    runtime = _RecordingRuntime()
    async with (
        ApiClient(load_kubeconfig(dns.cluster.kubeconfig)) as api,
        running_node(api, tmp_path, runtime=runtime) as kubelet,
    ):
        for name, policy in (("first", "ClusterFirst"), ("default", "Default")):
            pod = {
                "metadata": {"name": name},
                "spec": {
                    "nodeName": kubelet.node_name,
                    "dnsPolicy": policy,
                    "containers": [{"name": "c", "image": "busybox"}],
                },
            }
            await api.create(PODS, pod, ns)
        for name in ("first", "default"):
            await wait_for(api, PODS, ns, name, lambda p: p.get("status", {}).get("phase") == "Running")
    first, default = runtime.sandboxes["first"], runtime.sandboxes["default"]
    assert first.dns_servers == ["10.96.0.10"]
    assert first.dns_searches == [f"{ns}.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN]
    assert first.dns_options == ["ndots:5"]
    assert (default.dns_servers, default.dns_searches) == ([], [])  # the host's resolv.conf


def test_dns_policies_and_dns_config_make_resolv_conf_as_kubelet_does() -> None:
    def dns_of(**spec: Any) -> tuple[list[str], list[str], list[str]]:
        pod = {"metadata": {"uid": "u", "namespace": "team", "name": "p"}, "spec": {"containers": [], **spec}}
        sandbox = sandbox_spec(pod, ("10.96.0.10",), "corp.local")
        return sandbox.dns_servers, sandbox.dns_searches, sandbox.dns_options

    cluster = (["10.96.0.10"], ["team.svc.corp.local", "svc.corp.local", "corp.local"], ["ndots:5"])
    assert dns_of() == cluster
    assert dns_of(hostNetwork=True) == ([], [], [])  # ClusterFirst on the host network: the host's resolvers
    assert dns_of(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet") == cluster
    assert dns_of(dnsPolicy="Default") == ([], [], [])
    config = {"nameservers": ["1.1.1.1"], "searches": ["x.test"], "options": [{"name": "ndots", "value": "2"}]}
    assert dns_of(dnsPolicy="None", dnsConfig=config) == (["1.1.1.1"], ["x.test"], ["ndots:2"])
    assert dns_of(dnsConfig={"options": [{"name": "edns0"}]})[2] == ["ndots:5", "edns0"]


# -- the zone ----------------------------------------------------------------------------------------------------


def test_the_zone_forgets_a_services_names_and_their_parents_when_it_goes() -> None:
    zone = Zone("cluster.local")
    web = [Record(f"_http._tcp.web.ns.svc.{DOMAIN}", QTYPE.A, A("10.96.0.5"))]
    zone.replace("ns/web", web)
    assert zone.exists(f"_tcp.web.ns.svc.{DOMAIN}") and zone.exists(f"ns.svc.{DOMAIN}")
    generation = zone.generation
    zone.replace("ns/web", list(web))
    assert zone.generation == generation  # the same records: nothing changed, cached answers stay valid
    zone.replace("ns/web", [])
    assert not zone.exists(f"ns.svc.{DOMAIN}") and zone.records(web[0].name) == []


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--dns-listen", "localhost:53", "'localhost' is not an IP address"),
        ("--dns-listen", "127.0.0.1:70000", "is not IP:PORT with a port from 0 to 65535"),
        ("--dns-upstream", "1.2.3.4:0", "'1.2.3.4:0' is not IP or IP:PORT (port 0 out of range)"),
    ],
)
def test_bad_dns_flags_are_refused_with_a_reason(tmp_path: Path, flag: str, value: str, says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shim.cli", "up", "--data-dir", str(tmp_path), flag, value],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and says in done.stderr, done.stderr


def test_no_packet_makes_the_resolver_raise() -> None:
    """Thousands of mutations of real queries (bytes flipped, cut, spliced): each parses to a query, an error
    answer or nothing, and a query gets an answer or goes upstream, without an exception."""
    zone = Zone(DOMAIN)
    zone.replace("ns/web", [Record(f"web.ns.svc.{DOMAIN}", QTYPE.A, A("10.96.0.5"))])
    resolver = Resolver(zone, Forwarder([]))
    seeds = [
        bytes(DNSRecord.question(name, qtype).pack())
        for name, qtype in ((f"web.ns.svc.{DOMAIN}", "A"), ("5.0.96.10.in-addr.arpa", "PTR"), ("x.test", "TXT"))
    ]
    rng = random.Random(10)
    for _ in range(3000):
        packet = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        if rng.random() < 0.3:
            packet = packet[: rng.randrange(len(packet) + 1)] + bytes(
                rng.randrange(256) for _ in range(rng.randrange(8))
            )
        parsed = resolver.parse(bytes(packet))
        if isinstance(parsed, Query):
            for over_tcp in (False, True):
                answer = resolver.local(parsed, over_tcp)
                assert answer is None or answer[:2] == packet[:2]


# -- the cache of upstream answers --------------------------------------------------------------------------------


def test_upstream_answers_are_cached_for_their_ttl_capped_and_aged() -> None:
    now = [100.0]
    cache = AnswerCache(max_entries=2, clock=lambda: now[0])
    question = DNSRecord.question("a.example.test")

    def upstream_answer(name: str, ttl: int, rcode: int = RCODE.NOERROR, soa: tuple[int, int] | None = None) -> bytes:
        reply = DNSRecord.question(name).reply()
        reply.header.rcode = rcode
        if rcode == RCODE.NOERROR and soa is None:
            reply.add_answer(RR(name, QTYPE.A, rdata=A("192.0.2.1"), ttl=ttl))
        if soa is not None:
            times = (1, 3600, 600, 86400, soa[1])
            reply.add_auth(RR("example.test", QTYPE.SOA, rdata=SOA("ns.", "h.", times), ttl=soa[0]))
        return bytes(reply.pack())

    cache.put("a.example.test", QTYPE.A, 1, upstream_answer("a.example.test", 300))
    now[0] += 10
    hit = cache.get("a.example.test", QTYPE.A, 1, question)
    assert hit is not None and hit.header.id == question.header.id and [rr.ttl for rr in hit.rr] == [20]  # 30 - 10
    now[0] += 20
    assert cache.get("a.example.test", QTYPE.A, 1, question) is None  # past the 30 s cap

    # negative answers live for the SOA's negative TTL; failures, truncation and TTL 0 not at all
    cache.put("n.example.test", QTYPE.A, 1, upstream_answer("n.example.test", 0, RCODE.NXDOMAIN, soa=(60, 8)))
    now[0] += 7
    negative = cache.get("n.example.test", QTYPE.A, 1, question)
    assert negative is not None and negative.header.rcode == RCODE.NXDOMAIN and negative.auth[0].ttl == 1
    now[0] += 1
    assert cache.get("n.example.test", QTYPE.A, 1, question) is None
    truncated = DNSRecord.parse(upstream_answer("t.example.test", 300))
    truncated.header.tc = 1
    for name, raw in (
        ("f.example.test", upstream_answer("f.example.test", 300, RCODE.SERVFAIL)),
        ("t.example.test", bytes(truncated.pack())),
        ("z.example.test", upstream_answer("z.example.test", 0)),
        ("g.example.test", b"\x00\x01garbage"),
    ):
        cache.put(name, QTYPE.A, 1, raw)
        assert cache.get(name, QTYPE.A, 1, question) is None, name

    # bounded: the oldest answer goes first
    for name in ("1.example.test", "2.example.test", "3.example.test"):
        cache.put(name, QTYPE.A, 1, upstream_answer(name, 300))
    assert len(cache) == 2 and cache.get("1.example.test", QTYPE.A, 1, question) is None


def test_a_name_asked_twice_is_forwarded_once(dns: DnsCluster, dns_upstream: FakeUpstream) -> None:
    name = f"77.{UPSTREAM_ZONE}"
    first, second = dns.ask(name), dns.ask(name.upper())
    assert [str(rr.rdata) for rr in first.rr] == [str(rr.rdata) for rr in second.rr] == ["192.0.2.77"]
    assert str(second.q.qname) == name.upper() + "."  # the question as this client asked it
    assert list(dns_upstream.zone.asked).count(name) == 1


def test_until_the_first_lists_are_in_cluster_names_are_servfail_not_nxdomain() -> None:
    synced = [False]
    resolver = Resolver(Zone(DOMAIN), Forwarder([]), synced=lambda: synced[0])
    query = resolver.parse(bytes(DNSRecord.question(f"web.ns.svc.{DOMAIN}").pack()))
    assert isinstance(query, Query)
    answer = resolver.local(query, over_tcp=False)
    assert answer is not None and DNSRecord.parse(answer).header.rcode == RCODE.SERVFAIL
    outside = resolver.parse(bytes(DNSRecord.question("www.example.test").pack()))
    assert isinstance(outside, Query) and resolver.local(outside, over_tcp=False) is None  # forwarded meanwhile
    synced[0] = True
    answer = resolver.local(query, over_tcp=False)
    assert answer is not None and DNSRecord.parse(answer).header.rcode == RCODE.NXDOMAIN
