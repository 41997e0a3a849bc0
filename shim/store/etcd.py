"""The etcd v3 backend: the Store contract over a real etcd cluster, revisions mapped straight to etcd's.

Every write is one etcd transaction, so compare-and-swap is etcd's own; reads and watches use etcd's
MVCC directly. An optional key prefix namespaces the keys so several clusters can share one etcd, but
compaction stays global to that etcd (as it is for kube-apiservers sharing one).

aetcd supplies the gRPC channel and the generated etcd stubs, which this module calls directly: aetcd's
helpers drop `revision`, `limit` and `count_only`, and its watcher queues events without bound, ends a
watch silently when the stream closes, and serialises watch creation. Each watch here is its own gRPC
stream on the shared channel, read by a task into a bounded queue (LogStore's), so a watcher that stops
reading is cut off with `CompactedError` instead of growing without limit.
"""

from __future__ import annotations

import asyncio
import builtins
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import aetcd
from aetcd import rpc
from aetcd.utils import prefix_range_end

from shim.store.base import (
    CompactedError,
    ConflictError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    Store,
    StoreError,
    StoreUnavailableError,
)
from shim.store.logstore import DEFAULT_WATCHER_BACKLOG, WatchQueue

if TYPE_CHECKING:
    import grpc.aio

DEFAULT_TIMEOUT = 10.0
# etcd's rpctypes.ErrGRPCCompacted / ErrGRPCFutureRev, both sent as OUT_OF_RANGE
COMPACTED_DETAIL = "etcdserver: mvcc: required revision has been compacted"
FUTURE_DETAIL = "etcdserver: mvcc: required revision is a future revision"
CHANNEL_OPTIONS = {
    "grpc.max_receive_message_length": 2**31 - 1,  # a big list is one message, as in kube-apiserver
    "grpc.keepalive_time_ms": 30_000,  # notice a dead member even while only watching
    "grpc.keepalive_timeout_ms": 10_000,
    # gRPC's reconnect backoff grows to 2 minutes; a restarted etcd must be used again within seconds
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2_000,
}

Response = TypeVar("Response")


async def open_etcd_store(
    endpoints: list[str],
    prefix: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    watcher_backlog: int = DEFAULT_WATCHER_BACKLOG,
) -> EtcdStore:
    """Connect to the etcd members at `endpoints` (`http://host:port` or `host:port`).

    Every key is stored as `prefix + key`. `timeout` bounds each request in seconds; `watcher_backlog` is
    how many undelivered events a watch may hold before it is cut off. Raises `StoreError` when etcd does
    not answer.
    """
    host, port = _grpc_target(endpoints)
    client = aetcd.Client(host, port, timeout=timeout, options=CHANNEL_OPTIONS)
    await client.connect()  # builds the channel and stubs; the first request dials
    store = EtcdStore(client, prefix, ", ".join(endpoints), timeout, watcher_backlog)
    try:
        await store.current_revision()
    except BaseException:
        await store.close()
        raise
    return store


class EtcdStore(Store):
    """A `Store` over etcd v3. Create with `await open_etcd_store(...)`."""

    def __init__(self, client: aetcd.Client, prefix: str, where: str, timeout: float, watcher_backlog: int) -> None:
        self._client = client
        self._kv_stub = client.kvstub
        self._watch_stub = rpc.WatchStub(client.channel)
        self._prefix = prefix.encode()
        self._where = where
        self._timeout = timeout
        self._watcher_backlog = watcher_backlog
        self._watches: dict[WatchQueue, asyncio.Task[None]] = {}  # live watches and their readers
        self._compacted = 0  # highest compaction point seen so far; etcd only ever raises it
        self._closed = False

    # -- reads ---------------------------------------------------------------------------------------------

    async def get(self, key: str, revision: int | None = None) -> KeyValue | None:
        request = rpc.RangeRequest(key=self._key(key), revision=revision or 0)
        response = await self._call(self._kv_stub.Range, request, revision)
        return self._kv(response.kvs[0]) if response.kvs else None

    async def list(
        self,
        prefix: str,
        revision: int | None = None,
        limit: int | None = None,
        continue_from: str | None = None,
    ) -> ListResult:
        start = prefix if continue_from is None or continue_from < prefix else continue_from
        low, high = self._range(prefix)
        request = rpc.RangeRequest(
            key=self._key(start) or low, range_end=high, revision=revision or 0, limit=limit or 0
        )
        response = await self._call(self._kv_stub.Range, request, revision)
        items = [self._kv(kv) for kv in response.kvs]
        return ListResult(items, revision or response.header.revision, response.more)

    async def current_revision(self) -> int:
        response = await self._call(self._kv_stub.Range, self._probe(0))
        return response.header.revision

    async def compacted_revision(self) -> int:
        """etcd does not report its compaction point, but reads below it fail: find the lowest readable
        revision. What this client compacted or saw in a compacted error is a lower bound, so one probe
        usually confirms it; otherwise a binary search up to the current revision finds the new point."""
        low = max(self._compacted, 1)
        if await self._readable(low):
            return self._compacted
        high = await self.current_revision()  # the current revision is always readable
        while high - low > 1:
            middle = (low + high) // 2
            if await self._readable(middle):
                high = middle
            else:
                low = middle
        self._compacted = max(self._compacted, high)
        return high

    async def _readable(self, revision: int) -> bool:
        try:
            await self._kv_stub.Range(self._probe(revision), timeout=self._timeout)
        except rpc.AioRpcError as exc:
            if exc.details() == COMPACTED_DETAIL:
                return False
            raise await self._store_error(exc, revision) from exc
        return True

    def _probe(self, revision: int) -> rpc.RangeRequest:
        """The cheapest read there is: count one key, to learn a header revision or provoke an error."""
        return rpc.RangeRequest(key=self._prefix or b"\0", revision=revision, count_only=True)

    # -- writes --------------------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        etcd_key = self._key(key)
        response = await self._txn([_absent(etcd_key)], [_put(etcd_key, value)], [])
        if not response.succeeded:
            raise KeyExistsError(key)
        revision = response.header.revision
        return KeyValue(key, value, revision, revision)

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        etcd_key = self._key(key)
        response = await self._txn(
            [_present(etcd_key), _modified_at(etcd_key, expected_mod_revision)],
            [_put(etcd_key, value), _get(etcd_key, keys_only=True)],  # the read-back learns create_revision
            [_get(etcd_key)],
        )
        if not response.succeeded:
            raise self._swap_failure(key, expected_mod_revision, response)
        written = response.responses[1].response_range.kvs[0]
        return KeyValue(key, value, written.create_revision, written.mod_revision)

    async def delete(self, key: str, expected_mod_revision: int | None = None) -> KeyValue:
        etcd_key = self._key(key)
        compare = [_present(etcd_key)]
        if expected_mod_revision is not None:
            compare.append(_modified_at(etcd_key, expected_mod_revision))
        delete = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=etcd_key, prev_kv=True))
        response = await self._txn(compare, [delete], [_get(etcd_key)])
        if not response.succeeded:
            raise self._swap_failure(key, expected_mod_revision, response)
        deleted = response.responses[0].response_delete_range.prev_kvs[0]
        return KeyValue(key, deleted.value, deleted.create_revision, response.header.revision)

    async def _txn(
        self,
        compare: builtins.list[rpc.Compare],
        success: builtins.list[rpc.RequestOp],
        failure: builtins.list[rpc.RequestOp],
    ) -> rpc.TxnResponse:
        request = rpc.TxnRequest(compare=compare, success=success, failure=failure)
        return await self._call(self._kv_stub.Txn, request)

    def _swap_failure(self, key: str, expected: int | None, response: rpc.TxnResponse) -> StoreError:
        """The failure branch read the key: absent means not found, present means someone else wrote it."""
        current = response.responses[0].response_range.kvs
        if not current or expected is None:
            return KeyNotFoundError(key)
        return ConflictError(key, expected, self._kv(current[0]))

    # -- watch ---------------------------------------------------------------------------------------------

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        if self._closed:
            raise StoreError("store is closed")
        low, high = self._range(prefix)
        create = rpc.WatchCreateRequest(key=low, range_end=high, start_revision=from_revision + 1, prev_kv=True)
        queue = WatchQueue(prefix, self._watcher_backlog)
        call = self._watch_stub.Watch()
        self._watches[queue] = asyncio.create_task(self._read_watch(call, create, queue, from_revision))
        try:
            while True:
                yield await queue.next()
        finally:
            self._watches.pop(queue).cancel()
            call.cancel()

    async def _read_watch(
        self, call: grpc.aio.StreamStreamCall, create: rpc.WatchCreateRequest, queue: WatchQueue, last: int
    ) -> None:
        """Move one etcd watch stream's events into `queue`; every way the stream can end fails the queue."""
        try:
            await call.write(rpc.WatchRequest(create_request=create))
            async for response in call:
                if response.compact_revision:
                    self._compacted = max(self._compacted, response.compact_revision)
                    queue.fail(CompactedError(last, response.compact_revision))
                    return
                if response.canceled:
                    queue.fail(StoreError(f"etcd {self._where} canceled the watch: {response.cancel_reason}"))
                    return
                for event in response.events:
                    queue.push(self._event(event))
                    last = event.kv.mod_revision
            queue.fail(StoreError(f"etcd {self._where} ended the watch"))
        except rpc.AioRpcError as exc:
            queue.fail(await self._store_error(exc, None))
        except Exception as exc:  # anything else too: the watcher must end, never wait forever
            queue.fail(StoreError(f"etcd {self._where} watch failed: {exc!r}"))

    def _event(self, event: rpc.Event) -> Event:
        previous = self._kv(event.prev_kv) if event.HasField("prev_kv") else None
        if event.type == rpc.Event.DELETE:
            # etcd's tombstone carries no create_revision; the previous version has it
            created = previous.create_revision if previous else 0
            deleted = KeyValue(self._unkey(event.kv.key), b"", created, event.kv.mod_revision)
            return Event(EventType.DELETE, deleted, previous)
        return Event(EventType.PUT, self._kv(event.kv), previous)

    # -- compaction and lifecycle ----------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """etcd's compaction (not waiting for the physical one); it applies to every user of this etcd."""
        if revision <= self._compacted:
            return
        try:
            await self._call(self._kv_stub.Compact, rpc.CompactionRequest(revision=revision), revision)
        except CompactedError:
            return  # another user of this etcd already compacted at or beyond `revision`
        self._compacted = revision

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for queue, reader in self._watches.items():
            reader.cancel()
            queue.fail(StoreError("store is closed"))
        await self._client.close()

    # -- etcd plumbing ---------------------------------------------------------------------------------------

    async def _call(
        self,
        method: Callable[..., Awaitable[Response]],
        request: Any,
        revision: int | None = None,
    ) -> Response:
        """One unary request, with gRPC's errors turned into the store's."""
        if self._closed:
            raise StoreError("store is closed")
        try:
            return await method(request, timeout=self._timeout)
        except rpc.AioRpcError as exc:
            raise await self._store_error(exc, revision) from exc

    async def _store_error(self, exc: rpc.AioRpcError, revision: int | None) -> StoreError:
        details, code = exc.details(), exc.code()
        if self._closed:  # closing the channel cancels whatever was in flight
            return StoreError("store is closed")
        if details == COMPACTED_DETAIL:
            return CompactedError(revision or 0, await self.compacted_revision())
        if details == FUTURE_DETAIL:
            return FutureRevisionError(revision or 0, await self.current_revision())
        if code == rpc.StatusCode.UNAVAILABLE:
            return StoreUnavailableError(f"etcd {self._where} is unavailable: {details}")
        if code == rpc.StatusCode.DEADLINE_EXCEEDED:
            return StoreUnavailableError(f"etcd {self._where} did not answer within {self._timeout}s")
        return StoreError(f"etcd {self._where} failed ({code.name}): {details}")

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _unkey(self, etcd_key: bytes) -> str:
        return etcd_key[len(self._prefix) :].decode()

    def _range(self, prefix: str) -> tuple[bytes, bytes]:
        """etcd's [key, range_end) for every key under `prefix`; b"\\0" as both means "all keys"."""
        full = self._key(prefix)
        return (full, prefix_range_end(full)) if full else (b"\0", b"\0")

    def _kv(self, kv: rpc.KeyValue) -> KeyValue:
        return KeyValue(self._unkey(kv.key), kv.value, kv.create_revision, kv.mod_revision)


def _grpc_target(endpoints: list[str]) -> tuple[str, int]:
    """aetcd's (host, port) for `endpoints`. aetcd dials f"{host}:{port}", so several members become one
    gRPC multi-address target (`ipv4:a:1,b:2`) and the channel fails over between them."""
    if not endpoints:
        raise ValueError("no etcd endpoints given")
    addresses = [_host_port(endpoint) for endpoint in endpoints]
    if len(addresses) == 1:
        return addresses[0]
    families = set()
    for host, _ in addresses:
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ValueError(f"several etcd endpoints must be IP addresses, not {host!r}") from None
    if len(families) > 1:
        raise ValueError("several etcd endpoints must all be IPv4 or all IPv6")
    listed = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in addresses)
    host, _, port = f"ipv{families.pop()}:{listed}".rpartition(":")
    return host, int(port)


def _host_port(endpoint: str) -> tuple[str, int]:
    url = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    if url.scheme not in ("", "http"):
        raise ValueError(f"etcd endpoint {endpoint!r}: only plain http is supported")
    if url.hostname is None or url.port is None:
        raise ValueError(f"etcd endpoint {endpoint!r} needs a host and a port")
    return url.hostname, url.port


def _absent(key: bytes) -> rpc.Compare:
    return rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=0)


def _present(key: bytes) -> rpc.Compare:
    return rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.GREATER, create_revision=0)


def _modified_at(key: bytes, revision: int) -> rpc.Compare:
    return rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision)


def _put(key: bytes, value: bytes) -> rpc.RequestOp:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))


def _get(key: bytes, keys_only: bool = False) -> rpc.RequestOp:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=keys_only))
