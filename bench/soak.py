"""Soak test: many clients of mixed verbs against the real `kube-shim up --nodes 0` for minutes on end.

Run from the repo root: `python -m bench.soak [--minutes 10] [--clients 50] [--store URL]`.

Each client loops over a weighted mix of verbs on ConfigMaps in one namespace:
- create: a ConfigMap of its own (each client keeps at most OWN_OBJECTS, so the store stays the same size);
- update: GET then PUT of one of SHARED_OBJECTS ConfigMaps every client updates, with the resourceVersion it
  read, so 409 Conflicts happen and are expected (counted apart from errors);
- patch: a merge patch of one of its own ConfigMaps; delete: one of its own;
- list: the namespace's ConfigMaps, 100 a page; watch: a watch from the listed resourceVersion, read for
  WATCH_SECONDS (its latency is the time to the response headers).

Every minute it prints p50/p99 latency per verb, the answers that were not what the verb expects, and the
server's RSS. RSS is judged after a warm-up the run observes: until the store's bounded structures are full,
its memory grows by design. Those are the watch window (the newest DEFAULT_WINDOW events with their values:
full once that many revisions were written) and the history kept for watch resume (at its steady size once the
first compaction forgot the oldest revisions: a list at the first revision answers 410 Gone). At the end: zero
unexpected answers, and whether every RSS sample after the warm-up stayed within 10 %. The exit code is 1 when
either fails, or when the run ends before the warm-up did.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import uvloop

from bench.api import CpuSnapshot, Failures, api_session, print_failures, rss_megabytes
from shim.client.config import load_kubeconfig
from shim.store.logstore import DEFAULT_WINDOW
from tests.cluster import start_cluster

NAMESPACE = "soak"
PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
OWN_OBJECTS = 20
SHARED_OBJECTS = 10
WATCH_SECONDS = 1.0
RSS_FLAT_WITHIN = 0.10
RSS_SAMPLE_SECONDS = 5.0
# The history the store keeps for watches grows until the first compaction: with the server's default of 5
# minutes a 10-minute soak would spend half its time warming up. Every minute, the warm-up ends after about
# one (--compaction-interval 300 soaks the default).
COMPACTION_INTERVAL = 60.0
VERBS = {"create": 20, "update": 15, "patch": 20, "delete": 10, "list": 25, "watch": 10}  # weights
# what each verb expects; anything else is an unexpected answer (409 is expected of update: counted apart)
EXPECTED = {"create": 201, "update": 200, "patch": 200, "delete": 200, "list": 200, "watch": 200}
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


@dataclass
class Minute:
    """What one minute of the run saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    unexpected: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    rss: list[float] = field(default_factory=list)


@dataclass
class WarmUp:
    """When the store's bounded structures were seen full (seconds into the run), and the RSS samples after."""

    first_revision: int  # the revision of the first write of the run
    window_full: float | None = None
    compacted: float | None = None
    settled: list[float] = field(default_factory=list)

    @property
    def ended(self) -> float | None:
        if self.window_full is None or self.compacted is None:
            return None
        return max(self.window_full, self.compacted)


@dataclass
class Soak:
    """The shared state of one run: per-minute figures, and every unexpected answer's first body."""

    started: float
    length: int  # minutes of the run (a partial last minute counts as one)
    warm_up: WarmUp
    minutes: list[Minute] = field(default_factory=list)
    failures: Failures = field(default_factory=Failures)

    def current(self) -> Minute:
        # requests still in flight at the deadline land in the last minute, not a minute of their own
        index = min(int((time.monotonic() - self.started) // 60), self.length - 1)
        while len(self.minutes) <= index:
            self.minutes.append(Minute())
        return self.minutes[index]

    def record(self, verb: str, seconds: float, status: int, body: bytes) -> None:
        minute = self.current()
        minute.latencies[verb].append(seconds)
        if verb == "update" and status == 409:
            minute.conflicts += 1
        elif status != EXPECTED[verb]:
            minute.unexpected[verb] += 1
            self.failures.record(verb, status, body)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--store", default=None, help="the server's --store (default: its SQLite)")
    parser.add_argument(
        "--compaction-interval",
        type=float,
        default=COMPACTION_INTERVAL,
        help=f"the server's --compaction-interval in seconds (default {COMPACTION_INTERVAL:g})",
    )
    args = parser.parse_args()
    sys.exit(uvloop.run(run(args.minutes, args.clients, args.store, args.compaction_interval)))


async def run(minutes: float, clients: int, store: str | None, compaction_interval: float) -> int:
    """Start the server, soak it, print the figures; 0 when the run passed."""
    print(
        f"soak: {clients} clients for {minutes:g} min against kube-shim up --nodes 0, "
        f"compacting every {compaction_interval:g}s",
        flush=True,
    )
    extra = ("--compaction-interval", str(compaction_interval), *(("--store", store) if store else ()))
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        cluster = await asyncio.to_thread(start_cluster, Path(tmp), None, extra)
        try:
            async with api_session(load_kubeconfig(cluster.kubeconfig)) as api:
                first_revision = await prepare(api)
                soak = Soak(time.monotonic(), max(math.ceil(minutes), 1), WarmUp(first_revision))
                cpu = CpuSnapshot.take(cluster.process.pid)
                deadline = soak.started + minutes * 60
                workers = [asyncio.create_task(client(api, soak, i, deadline)) for i in range(clients)]
                sampler = asyncio.create_task(sample_rss(api, soak, cluster.process, deadline))
                await asyncio.gather(*workers, sampler)
                print(f"\n({cpu.busy_since()})")
            alive = cluster.process.poll() is None
        finally:
            cluster.stop()
    return report(soak, alive)


async def prepare(api: aiohttp.ClientSession) -> int:
    """The namespace and the shared objects; the revision of the first write."""
    status, body = await request(api, "POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    if status != 201:
        raise SystemExit(f"creating the namespace {NAMESPACE} answered {status}: {body!r}")
    for i in range(SHARED_OBJECTS):
        await request(api, "POST", PATH, {"metadata": {"name": f"shared-{i}"}, "data": {"n": "0"}})
    return int(orjson.loads(body)["metadata"]["resourceVersion"])


async def client(api: aiohttp.ClientSession, soak: Soak, number: int, deadline: float) -> None:
    """One client: weighted random verbs until the deadline."""
    rng = random.Random(number)
    own: list[str] = []
    serial = 0
    verbs, weights = list(VERBS), list(VERBS.values())
    while time.monotonic() < deadline:
        verb = rng.choices(verbs, weights)[0]
        if (verb == "create" and len(own) >= OWN_OBJECTS) or (verb in ("patch", "delete") and not own):
            verb = "list"
        started = time.perf_counter()
        if verb == "create":
            serial += 1
            name = f"c{number}-{serial}"
            status, body = await request(api, "POST", PATH, {"metadata": {"name": name}, "data": {"v": "1" * 100}})
            if status == 201:
                own.append(name)
        elif verb == "update":
            status, body = await update_shared(api, f"{PATH}/shared-{rng.randrange(SHARED_OBJECTS)}")
        elif verb == "patch":
            patch = {"metadata": {"labels": {"round": str(rng.randrange(1000))}}}
            status, body = await request(api, "PATCH", f"{PATH}/{rng.choice(own)}", patch, MERGE_PATCH)
        elif verb == "delete":
            name = own.pop(rng.randrange(len(own)))
            status, body = await request(api, "DELETE", f"{PATH}/{name}")
        elif verb == "list":
            status, body = await request(api, "GET", PATH + "?limit=100")
        else:
            status, body, waited = await watch(api)
            soak.record(verb, waited, status, body)
            continue
        soak.record(verb, time.perf_counter() - started, status, body)


async def update_shared(api: aiohttp.ClientSession, path: str) -> tuple[int, bytes]:
    """GET, then PUT with the resourceVersion read: a 409 when another client updated it in between."""
    status, body = await request(api, "GET", path)
    if status != 200:
        return status, body
    obj = orjson.loads(body)
    obj["data"] = {"n": str(int(obj.get("data", {}).get("n", "0")) + 1)}
    return await request(api, "PUT", path, obj)


async def watch(api: aiohttp.ClientSession) -> tuple[int, bytes, float]:
    """A watch from the current list's resourceVersion, read for WATCH_SECONDS: the status, the first ERROR
    event if one came (an expired resourceVersion would send one), and the seconds its headers took."""
    status, body = await request(api, "GET", PATH + "?limit=1")
    if status != 200:
        return status, body, 0.0
    version = orjson.loads(body)["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "30"}
    sent = time.perf_counter()
    try:
        async with api.get(PATH, params=params) as response:
            waited = time.perf_counter() - sent
            try:
                async with asyncio.timeout(WATCH_SECONDS):
                    async for line in response.content:
                        if b'"type":"ERROR"' in line:
                            return 500, line, waited
            except TimeoutError:
                pass  # the watch stayed open, as it should
            return response.status, b"", waited
    except aiohttp.ClientError as exc:
        return 599, repr(exc).encode(), time.perf_counter() - sent


async def request(
    api: aiohttp.ClientSession, method: str, path: str, body: object = None, content_type: str = JSON
) -> tuple[int, bytes]:
    data = None if body is None else orjson.dumps(body)
    headers = {"Content-Type": content_type} if data is not None else {}
    try:
        async with api.request(method, path, data=data, headers=headers) as response:
            return response.status, await response.read()
    except aiohttp.ClientError as exc:
        return 599, repr(exc).encode()  # no answer at all: unexpected whatever the verb


async def sample_rss(api: aiohttp.ClientSession, soak: Soak, server: subprocess.Popen[str], deadline: float) -> None:
    """The server's RSS every few seconds into the current minute (and, once warmed up, into the samples
    judged); a line per minute as each one ends. A server that died has no RSS: the report says it DIED."""
    printed = 0
    print_header()
    while server.poll() is None:
        rss = rss_megabytes(server.pid)
        soak.current().rss.append(rss)
        if soak.warm_up.ended is not None:
            soak.warm_up.settled.append(rss)
        else:
            await observe_warm_up(api, soak)
        while printed < len(soak.minutes) - 1:
            print_minute(printed + 1, soak.minutes[printed])
            printed += 1
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(RSS_SAMPLE_SECONDS, max(deadline - time.monotonic(), 0)))
    for index in range(printed, len(soak.minutes)):
        print_minute(index + 1, soak.minutes[index])


async def observe_warm_up(api: aiohttp.ClientSession, soak: Soak) -> None:
    """Note when the store's watch window filled and when its first compaction happened, as the API shows them."""
    warm_up, now = soak.warm_up, time.monotonic() - soak.started
    if warm_up.window_full is None:
        status, body = await request(api, "GET", PATH + "?limit=1")
        if status == 200 and int(orjson.loads(body)["metadata"]["resourceVersion"]) >= (
            warm_up.first_revision + DEFAULT_WINDOW
        ):
            warm_up.window_full = now
    if warm_up.compacted is None:
        exact = f"{PATH}?limit=1&resourceVersion={warm_up.first_revision}&resourceVersionMatch=Exact"
        if (await request(api, "GET", exact))[0] == 410:  # Gone: the history before it is forgotten
            warm_up.compacted = now


def print_header() -> None:
    cells = "".join(f"{verb:>18}" for verb in VERBS)
    print(f"\n{'min':>4}{cells}{'conflicts':>11}{'unexpected':>12}{'RSS MB':>9}")
    print(f"{'':>4}" + "".join(f"{'n p50/p99 ms':>18}" for _ in VERBS), flush=True)


def print_minute(number: int, minute: Minute) -> None:
    cells = ""
    for verb in VERBS:
        samples = sorted(minute.latencies.get(verb, []))
        if samples:
            p50, p99 = statistics.median(samples) * 1000, samples[int(len(samples) * 0.99)] * 1000
            cells += f"{len(samples):>7} {p50:>4.0f}/{p99:<5.0f}"
        else:
            cells += f"{'-':>18}"
    rss = f"{minute.rss[-1]:.0f}" if minute.rss else "-"
    print(f"{number:>4}{cells}{minute.conflicts:>11}{sum(minute.unexpected.values()):>12}{rss:>9}", flush=True)


def report(soak: Soak, alive: bool) -> int:
    """The verdict: unexpected answers, RSS flatness after warm-up, the server still running."""
    unexpected = sum(sum(m.unexpected.values()) for m in soak.minutes)
    conflicts = sum(m.conflicts for m in soak.minutes)
    requests = sum(len(v) for m in soak.minutes for v in m.latencies.values())
    print(f"\nrequests: {requests}, expected update conflicts: {conflicts}, unexpected answers: {unexpected}")
    print_failures(soak.failures)
    warm_up, settled = soak.warm_up, soak.warm_up.settled
    window = "not yet" if warm_up.window_full is None else f"at {warm_up.window_full:.0f} s"
    compacted = "not yet" if warm_up.compacted is None else f"at {warm_up.compacted:.0f} s"
    print(f"warm-up: the store's watch window ({DEFAULT_WINDOW} events) full {window}, first compaction {compacted}")
    spread = (max(settled) - min(settled)) / min(settled) if len(settled) > 1 else 0.0
    flat = len(settled) > 1 and spread <= RSS_FLAT_WITHIN
    if settled:
        figures = f"{min(settled):.0f}..{max(settled):.0f} MB in {len(settled)} samples: spread {spread:.1%}"
        verdict = "flat" if flat else "NOT flat"
        print(f"RSS after the warm-up ({warm_up.ended:.0f} s): {figures}, {verdict} (within 10 %)")
    else:
        print("RSS after the warm-up: no samples (the run ended before the warm-up did): NOT judged")
    print(f"server process {'still running' if alive else 'DIED'}")
    passed = unexpected == 0 and flat and alive
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    main()
