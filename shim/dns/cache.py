"""Upstream answers kept for as long as they say, at most 30 s (kubeadm's Corefile: `cache 30`).

Pods ask the same outside names again and again (every lookup, often A and AAAA together); the cache spares
the upstream and answers in microseconds. A positive answer lives for its smallest TTL, a negative one
(NXDOMAIN, or NODATA) for its SOA's negative TTL (RFC 2308), both capped; a hit is served with the TTLs
aged by the time it spent here. Failures (SERVFAIL, REFUSED), truncated answers and answers without a TTL
to go by are never kept. The cache holds a bounded number of answers and drops the oldest first.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

MAX_TTL = 30  # seconds (CoreDNS cache's cap as kubeadm configures it)
MAX_ENTRIES = 10_000

Key = tuple[str, int, int]


class AnswerCache:
    """Upstream answers by question (name, type, class)."""

    def __init__(
        self, max_entries: int = MAX_ENTRIES, max_ttl: int = MAX_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.clock = clock
        self._entries: dict[Key, tuple[float, int, DNSRecord]] = {}  # key -> (stored at, ttl, answer)

    def get(self, name: str, qtype: int, qclass: int, query: DNSRecord) -> DNSRecord | None:
        """A reply to `query` from the cached answer to its question, TTLs aged; None when none is fresh."""
        key = (name, qtype, qclass)
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored, ttl, answer = entry
        age = int(self.clock() - stored)
        if age >= ttl:
            del self._entries[key]
            return None
        reply = query.reply(ra=1, aa=0)
        reply.header.rcode = answer.header.rcode
        reply.add_answer(*(_aged(rr, ttl, age) for rr in answer.rr))
        reply.add_auth(*(_aged(rr, ttl, age) for rr in answer.auth))
        reply.add_ar(*(_aged(rr, ttl, age) for rr in answer.ar if rr.rtype != QTYPE.OPT))
        return reply

    def put(self, name: str, qtype: int, qclass: int, raw: bytes) -> None:
        """Keep the upstream's answer `raw` to that question, if it may be kept."""
        try:
            answer = DNSRecord.parse(raw)
        except Exception:  # the client gets it as it is; only what parses is kept
            return
        ttl = _cache_ttl(answer)
        if ttl is None:
            return
        key = (name, qtype, qclass)
        self._entries.pop(key, None)
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest stored
        self._entries[key] = (self.clock(), min(ttl, self.max_ttl), answer)

    def __len__(self) -> int:
        return len(self._entries)


def _cache_ttl(answer: DNSRecord) -> int | None:
    """How long an answer may be kept: positive by its smallest TTL, negative by its SOA; None: not at all."""
    if answer.header.tc or answer.header.rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
        return None
    if answer.header.rcode == RCODE.NOERROR and answer.rr:
        ttl = min(rr.ttl for rr in answer.rr)
    else:
        soas = [rr for rr in answer.auth if rr.rtype == QTYPE.SOA]
        if not soas:
            return None
        ttl = min(soas[0].ttl, soas[0].rdata.times[-1])
    return ttl if ttl > 0 else None


def _aged(rr: Any, kept_for: int, age: int) -> Any:
    """A copy of `rr` whose TTL is what is left of its time here (never beyond the cache's own)."""
    aged = copy.copy(rr)
    aged.ttl = max(min(rr.ttl, kept_for) - age, 0)
    return aged
