"""From a DNS message to its answer: the cluster domain from the in-memory zone, everything else forwarded.

What CoreDNS's kubeadm Corefile does (`kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure;
fallthrough in-addr.arpa ip6.arpa }`, `cache 30`, then `forward . /etc/resolv.conf`): names in the cluster domain are
answered here, authoritatively, with NXDOMAIN for what does not exist and NODATA for a name that exists
without the asked type (both with the zone's SOA, whose TTL bounds negative caching); reverse names of
cluster addresses get their PTR and all other reverse names fall through to the upstreams, as does every
other name. An ExternalName Service's CNAME is followed, so a pod asking for its A record gets the target's.

Local answers are packed once per zone generation and question and reused with the query's ID (a bounded
cache), which is what makes thousands of queries per second possible in Python.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dnslib import AAAA, CLASS, EDNS0, NS, OPCODE, QTYPE, RCODE, RR, SOA, TXT, A, DNSHeader, DNSQuestion, DNSRecord

from shim.dns.cache import AnswerCache
from shim.dns.forward import Forwarder, ForwarderBusy
from shim.dns.records import TTL, Record, Zone, normalise

log = logging.getLogger("shim.dns")

SCHEMA_VERSION = "1.1.0"  # of the Kubernetes DNS specification, served as dns-version.<zone> TXT
PLAIN_UDP_SIZE = 512  # what a UDP answer may hold without EDNS (RFC 1035)
EDNS_UDP_SIZE = 1232  # what this server advertises and at most sends over UDP (DNS flag day 2020)
MAX_CNAME_CHAIN = 8
MAX_CACHED_ANSWERS = 10_000
REVERSE_SUFFIXES = (".in-addr.arpa", ".ip6.arpa")


@dataclass
class Query:
    """A parsed query: the message, its single question's normalised name and type, and the largest answer
    the client takes over UDP."""

    raw: bytes
    message: DNSRecord
    name: str
    qtype: int
    udp_size: int
    edns: bool


class Resolver:
    """Answers queries from `zone` (its cluster domain) and `forwarder` (the rest)."""

    def __init__(
        self,
        zone: Zone,
        forwarder: Forwarder,
        cache: AnswerCache | None = None,
        synced: Callable[[], bool] = lambda: True,
    ) -> None:
        """`synced()`: whether the zone holds the cluster yet; until then its names are answered SERVFAIL
        (which clients retry) rather than a NXDOMAIN they would cache."""
        self.zone = zone
        self.forwarder = forwarder
        self.synced = synced
        self.cache = cache if cache is not None else AnswerCache()
        self._serial_base = int(time.time())
        self._cache: dict[bytes, tuple[int, bytes]] = {}

    def parse(self, data: bytes) -> Query | bytes | None:
        """The query in `data`, or the error answer to send back (FORMERR, NOTIMP), or None to drop it
        (too short to answer, or itself an answer)."""
        if len(data) < 12 or data[2] & 0x80:
            return None
        try:
            message = DNSRecord.parse(data)
        except Exception:  # dnslib raises DNSError, but a hostile packet can trip others; none may escape
            return _error(data, RCODE.FORMERR)
        if message.header.opcode != OPCODE.QUERY:
            return _error(data, RCODE.NOTIMP)
        if len(message.questions) != 1:
            return _error(data, RCODE.FORMERR)
        question = message.questions[0]
        opt = next((rr for rr in message.ar if rr.rtype == QTYPE.OPT), None)
        udp_size = min(max(opt.rclass, PLAIN_UDP_SIZE), EDNS_UDP_SIZE) if opt is not None else PLAIN_UDP_SIZE
        try:
            name = normalise(str(question.qname))
        except Exception:
            return _error(data, RCODE.FORMERR)
        return Query(data, message, name, question.qtype, udp_size, opt is not None)

    def local(self, query: Query, over_tcp: bool) -> bytes | None:
        """The packed answer when the name is the cluster's (or a cluster address's PTR) or the upstream's
        answer is cached and fresh; None: forward it."""
        if not self.synced() and self._in_domain(query.name):
            return self._failure(query, RCODE.SERVFAIL, over_tcp)
        key = query.raw[2:] + (b"t" if over_tcp else b"u")
        cached = self._cache.get(key)
        if cached is not None and cached[0] == self.zone.generation:
            return query.raw[:2] + cached[1]
        reply = self._answer(query)
        if reply is None:
            cached = self.cache.get(query.name, query.qtype, query.message.q.qclass, query.message)
            return self._pack(cached, query, over_tcp) if cached is not None else None
        packed = self._pack(reply, query, over_tcp)
        if len(self._cache) >= MAX_CACHED_ANSWERS:
            self._cache.clear()  # crude but bounded; a full cache is rebuilt by the next queries
        self._cache[key] = (self.zone.generation, packed[2:])
        return packed

    async def remote(self, query: Query, over_tcp: bool) -> bytes:
        """The upstream answer, kept in the cache (SERVFAIL when no upstream answered, REFUSED when too many
        are out), with an ExternalName's CNAME chain in front when the name is one."""
        chain = self._cname_chain(query.name)
        try:
            if not chain:
                answer_bytes = await self.forwarder.forward(query.raw, over_tcp)
                self.cache.put(query.name, query.qtype, query.message.q.qclass, answer_bytes)
                return answer_bytes
            target = str(chain[-1].rdata.label)
            asked = DNSRecord(DNSHeader(rd=1), q=DNSQuestion(target, query.qtype))
            answer = DNSRecord.parse(await self.forwarder.forward(asked.pack(), over_tcp))
        except ForwarderBusy:
            return self._failure(query, RCODE.REFUSED, over_tcp)
        except Exception as exc:  # UpstreamFailed, or an upstream's answer dnslib cannot read
            log.debug("forwarding %s %s failed: %s", query.name, QTYPE.get(query.qtype), exc)
            return self._failure(query, RCODE.SERVFAIL, over_tcp)
        reply = query.message.reply(ra=1, aa=0)
        reply.header.rcode = answer.header.rcode
        reply.add_answer(*(self._rr(record, query) for record in chain), *answer.rr)
        return self._pack(reply, query, over_tcp)

    # -- the cluster domain ----------------------------------------------------------------------------------

    def _answer(self, query: Query) -> DNSRecord | None:
        name, qtype = query.name, query.qtype
        if name.endswith(REVERSE_SUFFIXES):
            ptrs = [r for r in self.zone.records(name) if r.rtype == QTYPE.PTR]
            if not ptrs or qtype not in (QTYPE.PTR, QTYPE.ANY):
                return None  # fall through to the upstreams, as CoreDNS's `fallthrough in-addr.arpa ip6.arpa`
            return self._reply(query, [self._rr(r, query) for r in ptrs])
        if not self._in_domain(name):
            return None
        records = self._synthesised(name) or self.zone.records(name)
        matching = [r for r in records if qtype in (r.rtype, QTYPE.ANY)]
        if matching:
            return self._reply(query, [self._rr(r, query) for r in matching])
        chain = self._cname_chain(name)
        if chain and qtype != QTYPE.CNAME:
            target = normalise(str(chain[-1].rdata.label))
            if not self._in_domain(target):
                return None  # the target is outside: `remote` follows it upstream
            found = [r for r in self.zone.records(target) if qtype in (r.rtype, QTYPE.ANY)]
            return self._reply(query, [self._rr(r, query) for r in (*chain, *found)])
        if records or self.zone.exists(name) or name in self._structural_names():
            return self._reply(query, [], negative=True)  # NODATA
        return self._reply(query, [], negative=True, rcode=RCODE.NXDOMAIN)

    def _in_domain(self, name: str) -> bool:
        return name == self.zone.domain or name.endswith("." + self.zone.domain)

    def _synthesised(self, name: str) -> list[Record]:
        """Records not kept in the zone: the apex's SOA and NS, dns-version, and `a-b-c-d.<ns>.pod.<zone>`."""
        domain = self.zone.domain
        if name == domain:
            return [Record(domain, QTYPE.SOA, self._soa()), Record(domain, QTYPE.NS, NS(f"ns.dns.{domain}."))]
        if name == f"dns-version.{domain}":
            return [Record(name, QTYPE.TXT, TXT(SCHEMA_VERSION))]
        labels = name[: -len(domain) - 1].split(".")
        if len(labels) == 3 and labels[2] == "pod":
            return _pod_record(name, labels[0])
        return []

    def _structural_names(self) -> tuple[str, ...]:
        domain = self.zone.domain
        return (f"svc.{domain}", f"pod.{domain}")

    def _cname_chain(self, name: str) -> list[Record]:
        """The CNAMEs from `name` on while they stay in the zone (at most MAX_CNAME_CHAIN)."""
        chain: list[Record] = []
        while len(chain) < MAX_CNAME_CHAIN:
            cnames = [r for r in self.zone.records(name) if r.rtype == QTYPE.CNAME]
            if not cnames:
                break
            chain.append(cnames[0])
            name = normalise(str(cnames[0].rdata.label))
        return chain

    # -- building answers ------------------------------------------------------------------------------------

    def _reply(self, query: Query, answers: list[RR], negative: bool = False, rcode: int = RCODE.NOERROR) -> DNSRecord:
        reply = query.message.reply(ra=1, aa=1)
        reply.header.rcode = rcode
        reply.add_answer(*answers)
        if negative:
            domain = self.zone.domain
            reply.add_auth(RR(domain + ".", QTYPE.SOA, CLASS.IN, TTL, self._soa()))
        return reply

    def _failure(self, query: Query, rcode: int, over_tcp: bool) -> bytes:
        reply = query.message.reply(ra=1, aa=0)
        reply.header.rcode = rcode
        return self._pack(reply, query, over_tcp)

    def _rr(self, record: Record, query: Query) -> RR:
        # the asked name keeps the client's letter case (resolvers that randomise it check the echo)
        owner = str(query.message.q.qname) if record.name == query.name else record.name + "."
        return RR(owner, record.rtype, CLASS.IN, TTL, record.rdata)

    def _soa(self) -> SOA:
        domain = self.zone.domain
        serial = (self._serial_base + self.zone.generation) % 2**32
        return SOA(f"ns.dns.{domain}.", f"hostmaster.{domain}.", (serial, 7200, 1800, 86400, TTL))

    def _pack(self, reply: DNSRecord, query: Query, over_tcp: bool) -> bytes:
        """The reply's wire form; over UDP cut to a bare truncated answer when it exceeds the client's size."""
        if query.edns:
            reply.add_ar(EDNS0(udp_len=EDNS_UDP_SIZE))
        packed = bytes(reply.pack())  # dnslib packs into a bytearray
        if over_tcp or len(packed) <= query.udp_size:
            return packed
        header = DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap, qr=1, tc=1)
        return bytes(DNSRecord(header, q=reply.q).pack())


def _pod_record(name: str, dashed: str) -> list[Record]:
    """`a-b-c-d.<ns>.pod.<zone>` -> a.b.c.d (and dashed IPv6), for any address (CoreDNS's `pods insecure`,
    which the spec's section 2.6 asks for)."""
    text = dashed.replace("-", ".") if dashed.count("-") == 3 else dashed.replace("-", ":")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return []
    if address.version == 4:
        return [Record(name, QTYPE.A, A(str(address)))]
    return [Record(name, QTYPE.AAAA, AAAA(str(address)))]


def _error(data: bytes, rcode: int) -> bytes:
    """A bare answer carrying only the query's ID and `rcode` (for queries too broken to echo back)."""
    header = DNSHeader(id=int.from_bytes(data[:2], "big"), qr=1, ra=1, rcode=rcode)
    if len(data) >= 3:
        header.rd = data[2] & 0x01
    return bytes(DNSRecord(header).pack())
