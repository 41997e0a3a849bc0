"""Cluster DNS throughput and latency: queries/s, p50 and p99 with N concurrent clients, on this machine.

Run from the repo root: `python -m bench.dns [--clients N] [--seconds S] [--services N]`.
A real `kube-shim up --runtime fake` serves DNS on a loopback port and forwards to a fake upstream resolver
(dnslib's threaded server on 127.0.0.1, tests.dns_upstream); N services are created with kubectl. Each client
is one UDP socket asking one question at a time (send, wait for the answer with the same ID), as a pod's
resolver does; the clients run in this process on uvloop. Four phases:

- service names: `svc-<i>.bench.svc.cluster.local`, round robin (answers come from the server's answer cache,
  which is what pods asking the same names get);
- service names in random letter case: every question is new to the cache, so each answer is computed and
  packed (the cost of a first question);
- forwarded names, cached: `<n>.example.test` for 250 names, answered from the cache of upstream answers;
- forwarded names, each new: a different name per question, each one sent to the fake upstream (whose own
  speed, a threaded dnslib server, bounds this one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop
from dnslib import DNSRecord

from tests.cluster import Cluster, start_cluster, wait_until
from tests.dns_upstream import UPSTREAM_ZONE, fake_upstream, free_udp_and_tcp_port

NAMESPACE = "bench"
DOMAIN = "cluster.local"
TARGET_QPS = 5_000
QUERY_TIMEOUT = 2.0
CASE_VARIANTS = 20_000  # random-case questions prepared per run (more than the server's answer cache holds)


@dataclass
class Phase:
    name: str
    answered: int
    failed: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.answered / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")


def main() -> None:
    """Parse the flags, run the three phases, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.dns", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase (default %(default)s)")
    parser.add_argument("--services", type=int, default=100, help="services created (default %(default)s)")
    args = parser.parse_args()
    print(f"DNS benchmark: Python {platform.python_version()}, uvloop; {os.cpu_count()} cores, {args.clients} clients")
    print(f"load average before the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with fake_upstream() as upstream, tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        port = free_udp_and_tcp_port()
        cluster = start_cluster(
            Path(tmp),
            nodes=("--runtime", "fake", "--nodes", "0"),
            extra=("--dns-listen", f"127.0.0.1:{port}", "--dns-upstream", f"127.0.0.1:{upstream.port}"),
        )
        try:
            names = create_services(cluster, port, args.services)
            phases = uvloop.run(run_phases(port, names, args.clients, args.seconds))
        finally:
            cluster.stop()
    print()
    print(f"{'phase':<40} {'queries/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    for phase in phases:
        print(
            f"{phase.name:<40} {phase.rate:>10.0f} {phase.percentile(0.50):>8.2f} {phase.percentile(0.99):>8.2f}"
            f" {phase.failed:>7}"
        )
    verdict = "meets" if phases[0].rate >= TARGET_QPS else "misses"
    print(f"\nservice names: {phases[0].rate:.0f} q/s {verdict} the target of {TARGET_QPS} q/s")


def create_services(cluster: Cluster, port: int, count: int) -> list[str]:
    """`count` ClusterIP services in the bench namespace; their names once the last one resolves."""
    cluster.kubectl("create", "namespace", NAMESPACE)
    items = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }
        for i in range(count)
    ]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    names = [f"svc-{i}.{NAMESPACE}.svc.{DOMAIN}" for i in range(count)]

    def resolved() -> bool:
        reply = DNSRecord.parse(DNSRecord.question(names[-1]).send("127.0.0.1", port, timeout=2))
        return bool(reply.rr)

    wait_until(resolved, 60, "the last service to resolve")
    return names


async def run_phases(port: int, names: list[str], clients: int, seconds: float) -> list[Phase]:
    service_packets = [_question(name) for name in names]
    mixed_case = [_question(_random_case(random.choice(names))) for _ in range(CASE_VARIANTS)]
    forwarded = [_question(f"{n}.{UPSTREAM_ZONE}") for n in range(1, 251)]
    new_names = [_question(f"n{n}.{UPSTREAM_ZONE}") for n in range(CASE_VARIANTS)]
    phases = []
    for name, packets in (
        ("service names (cached answers)", service_packets),
        ("service names, random case (computed)", mixed_case),
        ("forwarded names, cached", forwarded),
        ("forwarded names, each new (upstream)", new_names),
    ):
        await _run(port, packets[:200], clients, 0.5)  # warm-up, untimed
        phases.append(await _run(port, packets, clients, seconds, name))
        print(f"  {name}: done", flush=True)
    return phases


async def _run(port: int, packets: list[bytes], clients: int, seconds: float, name: str = "") -> Phase:
    loop = asyncio.get_running_loop()
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    failures = [0]

    async def client(index: int) -> None:
        transport, protocol = await loop.create_datagram_endpoint(_Client, remote_addr=("127.0.0.1", port))
        try:
            i = index
            while time.perf_counter() < deadline:
                packet = packets[i % len(packets)]
                i += clients
                query_id = random.getrandbits(16)
                started = time.perf_counter()
                protocol.expect(query_id)
                transport.sendto(struct.pack("!H", query_id) + packet)
                try:
                    answer = await asyncio.wait_for(protocol.answer, QUERY_TIMEOUT)
                except TimeoutError:
                    failures[0] += 1
                    continue
                if answer[3] & 0x0F not in (0, 3):  # NOERROR or NXDOMAIN count as answers
                    failures[0] += 1
                    continue
                latencies.append(time.perf_counter() - started)
        finally:
            transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return Phase(name, len(latencies), failures[0], time.perf_counter() - started, latencies)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.query_id = -1

    def expect(self, query_id: int) -> None:
        self.query_id = query_id
        self.answer = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 12 and struct.unpack_from("!H", data)[0] == self.query_id and not self.answer.done():
            self.answer.set_result(data)


def _question(name: str) -> bytes:
    """A query for `name` A without its 2-byte ID (each send puts a fresh one in front)."""
    return bytes(DNSRecord.question(name).pack())[2:]


def _random_case(name: str) -> str:
    return "".join(c.upper() if random.random() < 0.5 else c for c in name)


if __name__ == "__main__":
    main()
